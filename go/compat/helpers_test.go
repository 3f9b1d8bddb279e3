package diffid_test

// Test helpers: the package's four entry points run on one blob, tar payloads, gzip by the
// standard library.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"diffid.dev/go/diffid"
)

// oddPieces is the Writer's piece-size cycle: tiny, odd, just under a page, just over 64 KiB.
var oddPieces = []int{1, 7, 4093, 1, 65537, 13, 1 << 20}

// writeInPieces feeds blob to a new Writer in oddPieces-sized pieces.
func writeInPieces(blob []byte, opts ...diffid.Option) (*diffid.Result, error) {
	w, err := diffid.NewWriter(opts...)
	if err != nil {
		return nil, err
	}
	for i := 0; len(blob) > 0; i++ {
		n := min(oddPieces[i%len(oddPieces)], len(blob))
		m, err := w.Write(blob[:n])
		if err != nil {
			w.Close()
			return nil, err
		}
		if m != n {
			w.Close()
			return nil, errors.New("short write without error")
		}
		blob = blob[n:]
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return w.Result()
}

type entryPoint struct {
	name string
	run  func(t *testing.T, blob []byte, opts ...diffid.Option) (*diffid.Result, error)
}

var entryPoints = []entryPoint{
	{"DigestBytes", func(t *testing.T, blob []byte, opts ...diffid.Option) (*diffid.Result, error) {
		return diffid.DigestBytes(blob, opts...)
	}},
	{"DigestFile", func(t *testing.T, blob []byte, opts ...diffid.Option) (*diffid.Result, error) {
		path := filepath.Join(t.TempDir(), "layer")
		if err := os.WriteFile(path, blob, 0o644); err != nil {
			t.Fatal(err)
		}
		return diffid.DigestFile(path, opts...)
	}},
	{"DigestReader", func(t *testing.T, blob []byte, opts ...diffid.Option) (*diffid.Result, error) {
		return diffid.DigestReader(bytes.NewReader(blob), opts...)
	}},
	{"Writer", func(t *testing.T, blob []byte, opts ...diffid.Option) (*diffid.Result, error) {
		return writeInPieces(blob, opts...)
	}},
}

type tarEntry struct {
	name     string
	typeflag byte
	body     []byte
	link     string
}

func buildTar(entries []tarEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typeflag, Mode: 0o644, ModTime: mtime, Linkname: e.link,
			Uname: "root", Gname: "root", Format: tar.FormatPAX}
		switch e.typeflag {
		case tar.TypeDir:
			hdr.Mode = 0o755
		case tar.TypeReg:
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			panic(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func textBytes(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d: the quick brown fox jumps over the lazy dog %x\n", i, i*i)
	}
	return b.Bytes()[:n]
}

var smallEntries = []tarEntry{
	{name: "etc/", typeflag: tar.TypeDir},
	{name: "etc/hostname", typeflag: tar.TypeReg, body: []byte("diffid\n")},
	{name: "etc/empty", typeflag: tar.TypeReg},
	{name: "etc/localtime", typeflag: tar.TypeSymlink, link: "/usr/share/zoneinfo/UTC"},
	{name: "etc/hostname.hard", typeflag: tar.TypeLink, link: "etc/hostname"},
	{name: "usr/share/doc/" + strings.Repeat("long-name-", 20) + "/README", typeflag: tar.TypeReg, body: textBytes(3000)},
}

func goGzip(data []byte, hdr gzip.Header, level int) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, level)
	zw.Header = hdr
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}
