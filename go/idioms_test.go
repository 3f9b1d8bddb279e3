package diffid_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"diffid.dev/go/diffid"
)

// gzipLayer is a small gzip layer and its tar, made by the standard library.
func gzipLayer(t *testing.T) (blob, tarball []byte) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	body := bytes.Repeat([]byte("layer file contents\n"), 4096)
	if err := tw.WriteHeader(&tar.Header{Name: "etc/data", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tb.Bytes())
	zw.Close()
	return gz.Bytes(), tb.Bytes()
}

func sha256Of(b []byte) digest.Digest {
	return digest.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256(b)))
}

// A missing file is fs.ErrNotExist, through DigestFile and DigestFileContext, with Go's own
// *fs.PathError and message; it is still a diffid ErrIO.
func TestMissingFileIsErrNotExist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-layer.tar.gz")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for name, digestFile := range map[string]func() (*diffid.Result, error){
		"DigestFile":                    func() (*diffid.Result, error) { return diffid.DigestFile(path) },
		"DigestFileContext":             func() (*diffid.Result, error) { return diffid.DigestFileContext(ctx, path) },
		"DigestFileContext(Background)": func() (*diffid.Result, error) { return diffid.DigestFileContext(context.Background(), path) },
	} {
		res, err := digestFile()
		if res != nil || err == nil {
			t.Fatalf("%s: %v, %v", name, res, err)
		}
		if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, diffid.ErrIO) {
			t.Errorf("%s: %v: not both fs.ErrNotExist and diffid.ErrIO", name, err)
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != path || pe.Op != "open" {
			t.Errorf("%s: %v: no *fs.PathError for open %s (%#v)", name, err, path, pe)
		}
		var de *diffid.Error
		if !errors.As(err, &de) || de.Kind != diffid.CodeIO {
			t.Errorf("%s: %v: not a *diffid.Error of CodeIO", name, err)
		}
		if want := "diffid: open " + path + ": no such file or directory"; err.Error() != want {
			t.Errorf("%s: message %q, want %q", name, err.Error(), want)
		}
	}
}

// A read error the library meets (a directory opens, but read(2) fails with EISDIR) keeps the
// library's message, without Rust's "(os error 21)".
func TestLibraryIOErrorHasNoRustText(t *testing.T) {
	dir := t.TempDir()
	_, err := diffid.DigestFile(dir)
	if !errors.Is(err, diffid.ErrIO) {
		t.Fatalf("digesting a directory: %v, want ErrIO", err)
	}
	if strings.Contains(err.Error(), "os error") || !strings.Contains(strings.ToLower(err.Error()), "directory") {
		t.Errorf("message %q: want the OS's words, not Rust's (os error N)", err)
	}
}

func TestDigestFileContext(t *testing.T) {
	blob, tarball := gzipLayer(t)
	path := filepath.Join(t.TempDir(), "layer.tar.gz")
	if err := os.WriteFile(path, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, c := range []context.Context{ctx, context.Background()} {
		res, err := diffid.DigestFileContext(c, path, diffid.WithThreads(2))
		if err != nil {
			t.Fatal(err)
		}
		if res.Format != diffid.FormatGzip || res.BlobDigest != sha256Of(blob) || res.BlobSize != int64(len(blob)) ||
			res.DiffID != sha256Of(tarball) || res.DiffSize != int64(len(tarball)) || !res.Tar.Valid || res.Tar.Entries != 1 {
			t.Errorf("%+v, want gzip %s (%d) %s (%d), a valid tar of 1 entry", res, sha256Of(blob), len(blob), sha256Of(tarball), len(tarball))
		}
	}
	// A context already done: no digest, both errors.
	cancel()
	res, err := diffid.DigestFileContext(ctx, path)
	if res != nil || !errors.Is(err, diffid.ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, %v; want ErrCancelled and context.Canceled", res, err)
	}
	// Cancelled by a deadline while the library digests a gzip stream that never ends.
	endless := filepath.Join(t.TempDir(), "endless.gz")
	if err := os.WriteFile(endless, endlessGzip(16<<30), 0o644); err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	res, err = diffid.DigestFileContext(dctx, endless)
	if res != nil || !errors.Is(err, diffid.ErrCancelled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v, %v; want ErrCancelled and context.DeadlineExceeded", res, err)
	}
}

// endlessGzip is a multi-member gzip stream of members 64 MiB of zeros each, n bytes in all
// decompressed; it takes seconds to digest, from a small file.
func endlessGzip(n int) []byte {
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestSpeed)
	zero := make([]byte, 1<<20)
	for range 64 {
		zw.Write(zero)
	}
	zw.Close()
	return bytes.Repeat(member.Bytes(), n/(64<<20))
}

// AlgorithmName gives containers/image's compressiontypes names (go/compat checks them
// against containers/image's own constants).
func TestAlgorithmName(t *testing.T) {
	for f, want := range map[diffid.Format]string{
		diffid.FormatNone: "", diffid.FormatGzip: "gzip", diffid.FormatBzip2: "bzip2",
		diffid.FormatXz: "Xz", diffid.FormatZstd: "zstd",
	} {
		if got := f.AlgorithmName(); got != want {
			t.Errorf("%s.AlgorithmName() = %q, want %q", f, got, want)
		}
	}
}
