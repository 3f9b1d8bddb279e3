package dropin

// Against containers/storage v1.59.1 itself: layers in every format extracted through
// diffid.DecompressStream and through containers/storage's own archive.DecompressStream give
// identical trees and DiffIDs, and ApplyDiff records what a real containers/storage store
// (vfs driver) records when it applies the same blob.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containers/storage"
	"github.com/containers/storage/pkg/archive"
	"github.com/containers/storage/pkg/reexec"
	storagetypes "github.com/containers/storage/types"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"diffid.dev/go/diffid"
)

func TestMain(m *testing.M) {
	// containers/storage's vfs driver applies layers in a re-executed, chrooted copy of
	// the test binary (chrootarchive's "storage-applyLayer").
	if reexec.Init() {
		return
	}
	os.Exit(m.Run())
}

// layerTar is a layer as importers meet them: directories, regular files of several modes
// (setuid, setgid, sticky, private), owners, a 3 MiB incompressible file (the library's
// threaded path), empty files, symlinks, a hard link, a long name, user xattrs (PAX
// SCHILY.xattr records), a whiteout, and bytes after the end-of-archive marker.
func layerTar(t testing.TB) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	random := make([]byte, 3<<20)
	rand.New(rand.NewSource(7)).Read(random)
	var text bytes.Buffer
	for i := 0; text.Len() < 1<<20; i++ {
		fmt.Fprintf(&text, "%d: a text file that compresses well\n", i)
	}
	xattrs := map[string]string{"SCHILY.xattr.user.origin": "diffid test", "SCHILY.xattr.user.empty": ""}
	entries := []struct {
		h    tar.Header
		body []byte
	}{
		{tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "usr/bin/tool", Typeflag: tar.TypeReg, Mode: 0o4755}, random[:100<<10]},
		{tar.Header{Name: "usr/bin/group-tool", Typeflag: tar.TypeReg, Mode: 0o2711, Gid: 5}, []byte("#!/bin/sh\n")},
		{tar.Header{Name: "usr/lib/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "usr/lib/random.bin", Typeflag: tar.TypeReg, Mode: 0o644}, random},
		{tar.Header{Name: "usr/lib/text", Typeflag: tar.TypeReg, Mode: 0o644, PAXRecords: xattrs}, text.Bytes()},
		{tar.Header{Name: "usr/lib/empty", Typeflag: tar.TypeReg, Mode: 0o600}, nil},
		{tar.Header{Name: "usr/lib/text.link", Typeflag: tar.TypeSymlink, Linkname: "text"}, nil},
		{tar.Header{Name: "usr/lib/abs.link", Typeflag: tar.TypeSymlink, Linkname: "/usr/lib/random.bin"}, nil},
		// with the mode of its target, as GNU tar writes it: containers/storage chmods the
		// target to a hard link's mode when the link's name resolves from its working
		// directory, which it does in the store's chroot and not in a plain untar
		{tar.Header{Name: "usr/lib/text.hard", Typeflag: tar.TypeLink, Linkname: "usr/lib/text", Mode: 0o644}, nil},
		{tar.Header{Name: "usr/lib/" + strings.Repeat("a-long-name-", 15), Typeflag: tar.TypeReg, Mode: 0o640}, []byte("long\n")},
		{tar.Header{Name: "home/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "home/user/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 1000, Gid: 1000}, nil},
		{tar.Header{Name: "home/user/.profile", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1000, Gid: 1000}, []byte("export X=1\n")},
		{tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}, nil},
		{tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "etc/.wh.removed", Typeflag: tar.TypeReg, Mode: 0o600}, nil},
	}
	for _, e := range entries {
		h := e.h
		h.ModTime, h.Size, h.Format = mtime, int64(len(e.body)), tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func run(t testing.TB, stdin []byte, argv ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(argv[0]); err != nil {
		t.Skipf("%s is not installed", argv[0])
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v: %s", argv, err, stderr.String())
	}
	return out
}

// formats compress a layer in every format, in the shapes the parallel decoders take.
var formats = []struct {
	name  string
	argv  []string
	multi bool // compress each half separately and concatenate
}{
	{name: "none"},
	{name: "gzip", argv: []string{"gzip", "-c", "-n", "-6"}},
	{name: "gzip-members", argv: []string{"gzip", "-c", "-1"}, multi: true},
	{name: "bzip2", argv: []string{"bzip2", "-c", "-1"}},
	{name: "xz", argv: []string{"xz", "-c", "-1"}},
	{name: "xz-blocks", argv: []string{"xz", "-c", "-1", "-T2", "--block-size=256KiB"}},
	{name: "zstd", argv: []string{"zstd", "-c", "-q", "-3"}},
	{name: "zstd-frames", argv: []string{"zstd", "-c", "-q", "-3"}, multi: true},
}

func compress(t testing.TB, payload []byte, argv []string, multi bool) []byte {
	switch {
	case argv == nil:
		return payload
	case !multi:
		return run(t, payload, argv...)
	}
	h := len(payload) / 2
	return append(run(t, payload[:h], argv...), run(t, payload[h:], argv...)...)
}

func writeFile(t testing.TB, blob []byte) string {
	path := filepath.Join(t.TempDir(), "layer")
	if err := os.WriteFile(path, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// node is what the comparison sees of one extracted path.
type node struct {
	Mode     fs.FileMode
	UID, GID uint32
	Size     int64
	Content  string // sha256 of a regular file
	Link     string // symlink target
	Mtime    int64  // not for symlinks (archive.Untar sets them with lutimes where it can)
	Nlink    uint64
	Xattrs   map[string]string
}

// tree describes every path under root.
func tree(t *testing.T, root string) map[string]node {
	out := map[string]node{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		n := node{Mode: fi.Mode(), UID: st.Uid, GID: st.Gid, Nlink: uint64(st.Nlink), Xattrs: xattrs(t, path)}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			n.Size, n.Content, n.Mtime = fi.Size(), hex.EncodeToString(sum[:]), fi.ModTime().UnixNano()
		case fi.Mode()&fs.ModeSymlink != 0:
			n.Link, err = os.Readlink(path)
			if err != nil {
				return err
			}
		case fi.IsDir():
			n.Mtime = fi.ModTime().UnixNano()
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func xattrs(t *testing.T, path string) map[string]string {
	sz, err := unix.Llistxattr(path, nil)
	if err != nil || sz == 0 {
		return nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(path, buf)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		v := make([]byte, 4096)
		n, err := unix.Lgetxattr(path, name, v)
		if err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
		out[name] = string(v[:n])
	}
	return out
}

// sameTree reports every difference between two trees.
func sameTree(t *testing.T, what string, got, want map[string]node) {
	t.Helper()
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		g, gok := got[n]
		w, wok := want[n]
		switch {
		case !gok:
			t.Errorf("%s: %s missing", what, n)
		case !wok:
			t.Errorf("%s: %s extra", what, n)
		case fmt.Sprint(g) != fmt.Sprint(w):
			t.Errorf("%s: %s is %+v, want %+v", what, n, g, w)
		}
	}
}

// untarOptions: what an unprivileged importer would pass is not needed as the tests run
// as root; the defaults apply owners and xattrs exactly as containers/storage does.
func untarOptions() *archive.TarOptions { return &archive.TarOptions{} }

// TestExtractSameAsContainersStorage: every format, extracted with containers/storage's
// pkg/archive untar, once from diffid.DecompressStream and once from containers/storage's
// archive.DecompressStream (the compressed and decoded streams teed into sha256 digesters,
// as layers.go does): identical trees (names, modes, owners, contents, link targets, hard
// links, mtimes, xattrs), and identical blob digests and DiffIDs.
func TestExtractSameAsContainersStorage(t *testing.T) {
	payload := layerTar(t)
	// the trailing bytes after the end marker are part of the DiffID
	payload = append(payload, make([]byte, 10240)...)
	xattrsWork := checkUserXattrs(t)
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			path := writeFile(t, compress(t, payload, f.argv, f.multi))

			// containers/storage
			file, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			blobDigester, diffDigester := digest.Canonical.Digester(), digest.Canonical.Digester()
			blobCount, diffCount := &counter{}, &counter{}
			decoded, err := archive.DecompressStream(io.TeeReader(file, io.MultiWriter(blobDigester.Hash(), blobCount)))
			if err != nil {
				t.Fatal(err)
			}
			teed := io.TeeReader(decoded, io.MultiWriter(diffDigester.Hash(), diffCount))
			refDir := t.TempDir()
			if err := archive.UntarUncompressed(teed, refDir, untarOptions()); err != nil {
				t.Fatalf("containers/storage: %v", err)
			}
			if _, err := io.Copy(io.Discard, teed); err != nil {
				t.Fatal(err)
			}
			decoded.Close()

			// diffid
			file2, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer file2.Close()
			for _, src := range []struct {
				name string
				r    io.Reader
			}{{"file", file2}, {"reader", bytes.NewReader(mustRead(t, path))}} {
				rd, err := diffid.DecompressStream(src.r)
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				if err := archive.UntarUncompressed(rd, dir, untarOptions()); err != nil {
					t.Fatalf("%s: diffid: %v", src.name, err)
				}
				if _, err := io.Copy(io.Discard, rd); err != nil {
					t.Fatalf("%s: %v", src.name, err)
				}
				res, err := rd.Result()
				if err != nil {
					t.Fatalf("%s: %v", src.name, err)
				}
				rd.Close()
				if res.BlobDigest != blobDigester.Digest() || res.BlobSize != blobCount.n ||
					res.DiffID != diffDigester.Digest() || res.DiffSize != diffCount.n {
					t.Errorf("%s: diffid %s %d, %s %d; containers/storage %s %d, %s %d", src.name,
						res.BlobDigest, res.BlobSize, res.DiffID, res.DiffSize,
						blobDigester.Digest(), blobCount.n, diffDigester.Digest(), diffCount.n)
				}
				want := tree(t, refDir)
				sameTree(t, src.name, tree(t, dir), want)
				if xattrsWork && len(want["usr/lib/text"].Xattrs) == 0 {
					t.Errorf("containers/storage set no xattr on usr/lib/text: the comparison of xattrs did not run")
				}
			}
		})
	}
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func mustRead(t testing.TB, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkUserXattrs reports whether the temporary directory's filesystem takes user xattrs.
func checkUserXattrs(t *testing.T) bool {
	p := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, "user.probe", []byte("1"), 0); err != nil {
		t.Logf("no user xattrs on %s (%v): xattrs are compared only as far as the filesystem keeps them", filepath.Dir(p), err)
		return false
	}
	return true
}

// newStore is a real containers/storage store with the vfs driver in a temporary
// directory.
func newStore(t *testing.T) storage.Store {
	if os.Geteuid() != 0 {
		t.Skip("a containers/storage store needs root (the vfs driver chroots to apply a layer)")
	}
	root := t.TempDir()
	store, err := storage.GetStore(storagetypes.StoreOptions{
		RunRoot:         filepath.Join(root, "run"),
		GraphRoot:       filepath.Join(root, "graph"),
		GraphDriverName: "vfs",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Shutdown(true) })
	return store
}

// TestApplyDiffRecordsWhatContainersStorageRecords: the same blob applied by a real
// containers/storage store (PutLayer, vfs driver) and by ApplyDiff: the recorded compressed
// digest and size, uncompressed digest and size, compression type and applied size are
// equal, and the layer's directory in the store has the tree ApplyDiff extracted.
func TestApplyDiffRecordsWhatContainersStorageRecords(t *testing.T) {
	store := newStore(t)
	payload := append(layerTar(t), "bytes after the end-of-archive marker"...)
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			blob := compress(t, payload, f.argv, f.multi)
			layer, size, err := store.PutLayer("", "", nil, "", false, nil, bytes.NewReader(blob))
			if err != nil {
				t.Fatalf("containers/storage: %v", err)
			}
			want := Recorded{
				CompressedDigest:   layer.CompressedDigest,
				CompressedSize:     layer.CompressedSize,
				UncompressedDigest: layer.UncompressedDigest,
				UncompressedSize:   layer.UncompressedSize,
				CompressionType:    layer.CompressionType,
				Size:               size,
			}
			if want.CompressedDigest != digest.FromBytes(blob) || want.CompressedSize != int64(len(blob)) {
				t.Fatalf("containers/storage recorded %s %d for a blob of %d bytes", want.CompressedDigest, want.CompressedSize, len(blob))
			}
			file, err := os.Open(writeFile(t, blob))
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			dir := t.TempDir()
			got, err := ApplyDiff(dir, file, nil)
			if err != nil {
				t.Fatalf("ApplyDiff: %v", err)
			}
			if got != want {
				t.Errorf("ApplyDiff recorded %+v\ncontainers/storage %+v", got, want)
			}
			mnt, err := store.Mount(layer.ID, "")
			if err != nil {
				t.Fatal(err)
			}
			defer store.Unmount(layer.ID, true)
			sameTree(t, "ApplyDiff vs the store's layer", tree(t, dir), tree(t, mnt))
		})
	}
}

// TestApplyDiffBadBlob: a damaged blob makes ApplyDiff fail with diffid's error and record
// nothing, as containers/storage fails PutLayer; a truncated one never gets a digest.
func TestApplyDiffBadBlob(t *testing.T) {
	payload := layerTar(t)
	for _, f := range formats[1:] {
		blob := compress(t, payload, f.argv, f.multi)
		for name, bad := range map[string][]byte{
			"truncated": blob[:len(blob)-3],
			"trailing":  append(bytes.Clone(blob), "garbage"...),
		} {
			rec, err := ApplyDiff(t.TempDir(), bytes.NewReader(bad), nil)
			if err == nil || rec != (Recorded{}) {
				t.Errorf("%s/%s: ApplyDiff recorded %+v, %v", f.name, name, rec, err)
			}
		}
	}
}
