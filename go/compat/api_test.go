package diffid_test

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"diffid.dev/go/diffid"
)

func toString(v any) string { return fmt.Sprintf("%v", v) }

const emptySHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestVersion(t *testing.T) {
	if v := diffid.Version(); v == "" {
		t.Fatal("empty version")
	} else {
		t.Logf("libdiffid %s", v)
	}
}

func TestEmptyInput(t *testing.T) {
	for _, ep := range entryPoints {
		res, err := ep.run(t, nil)
		if err != nil {
			t.Fatalf("%s: %v", ep.name, err)
		}
		if res.Format != diffid.FormatNone || res.BlobDigest != emptySHA256 || res.DiffID != emptySHA256 ||
			res.BlobSize != 0 || res.DiffSize != 0 || res.MediaType != diffid.MediaTypeLayer {
			t.Errorf("%s: %+v", ep.name, res)
		}
	}
}

func TestFormatNames(t *testing.T) {
	for f, want := range map[diffid.Format]string{diffid.FormatNone: "", diffid.FormatGzip: "gzip",
		diffid.FormatBzip2: "bzip2", diffid.FormatXz: "Xz", diffid.FormatZstd: "zstd"} {
		if got := f.AlgorithmName(); got != want {
			t.Errorf("%s.AlgorithmName() = %q, want %q", f, got, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := map[string]diffid.Option{
		"algorithm md5":   diffid.WithAlgorithm("md5"),
		"algorithm 384":   diffid.WithAlgorithm(digest.SHA384),
		"max size -1":     diffid.WithMaxSize(-1),
		"memory limit -1": diffid.WithMemoryLimit(-1),
		"threads -1":      diffid.WithThreads(-1),
	}
	for name, opt := range bad {
		if _, err := diffid.DigestBytes(nil, opt); !errors.Is(err, diffid.ErrInvalidArgument) {
			t.Errorf("%s: DigestBytes: %v, want ErrInvalidArgument", name, err)
		}
		if _, err := diffid.NewWriter(opt); !errors.Is(err, diffid.ErrInvalidArgument) {
			t.Errorf("%s: NewWriter: %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := diffid.DigestFile("a\x00b"); !errors.Is(err, diffid.ErrInvalidArgument) {
		t.Errorf("NUL in path: %v", err)
	}
	// Every valid option together.
	blob := goGzip(buildTar(smallEntries), gzipHeader(), 6)
	for _, threads := range []int{0, 1, 2, 7} {
		res, err := diffid.DigestBytes(blob, diffid.WithAlgorithm(digest.SHA256), diffid.WithLenientGzip(), diffid.WithFullXz(),
			diffid.WithMaxSize(1<<30), diffid.WithMemoryLimit(256<<20), diffid.WithThreads(threads), diffid.WithRequireTar(), nil)
		if err != nil {
			t.Fatalf("threads %d: %v", threads, err)
		}
		if ref, _ := referenceDigest(blob, digest.SHA256); sameAsReference(res, ref) != "" {
			t.Errorf("threads %d: %s", threads, sameAsReference(res, ref))
		}
	}
}

// Warnings reach Go: an empty layer, zstd behind a leading skippable frame (format none, as
// containers/image says), GNU sparse and dump-directory entries, data after the end marker.
func TestWarnings(t *testing.T) {
	codes := func(blob []byte) (diffid.Format, []string) {
		t.Helper()
		res, err := diffid.DigestBytes(blob)
		if err != nil {
			t.Fatal(err)
		}
		var c []string
		for _, w := range res.Warnings {
			if w.Message == "" {
				t.Errorf("warning %s without a message", w.Code)
			}
			c = append(c, w.Code)
		}
		return res.Format, c
	}
	tarball := buildTar(smallEntries)
	if f, c := codes(tarball); len(c) != 0 || f != diffid.FormatNone {
		t.Errorf("a plain layer: %s %v", f, c)
	}
	if _, c := codes(nil); !reflect.DeepEqual(c, []string{"empty_layer"}) {
		t.Errorf("empty input: %v", c)
	}
	// pzstd's first frame: skippable, 4 bytes of payload.
	pz := append([]byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4}, goZstd(tarball, true)...)
	if f, c := codes(pz); f != diffid.FormatNone || len(c) == 0 || c[0] != "compressed_after_skippable_frame" {
		t.Errorf("pzstd: %s %v", f, c)
	}
	// Two empty regular files in GNU format, retyped 'D' and 'S' (Go's writer makes neither),
	// their header checksums recomputed.
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, name := range []string{"dump", "sparse"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatGNU}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	typed := b.Bytes()
	for i, typ := range []byte{'D', 'S'} {
		h := typed[i*512 : (i+1)*512]
		h[156] = typ
		copy(h[148:156], "        ")
		sum := 0
		for _, c := range h {
			sum += int(c)
		}
		copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	}
	if _, c := codes(goGzip(typed, gzipHeader(), 6)); !reflect.DeepEqual(c, []string{"extractor_dependent_entry", "extractor_dependent_entry"}) {
		t.Errorf("sparse and dump-dir entries: %v", c)
	}
	after := append(clone(tarball), "trailing bytes"...)
	if _, c := codes(goGzip(after, gzipHeader(), 6)); !reflect.DeepEqual(c, []string{"data_after_end_marker"}) {
		t.Errorf("data after the end marker: %v", c)
	}
}

// 0 means one thing per option in every interface: no limit for the maximum size, the
// default (1 GiB) for the memory limit.
func TestZeroLimits(t *testing.T) {
	tarball := buildTar(smallEntries)
	for _, blob := range [][]byte{tarball, goGzip(tarball, gzipHeader(), 6), goXz(tarball)} {
		res, err := diffid.DigestBytes(blob, diffid.WithMaxSize(0), diffid.WithMemoryLimit(0))
		if err != nil || res.DiffID != digest.FromBytes(tarball) {
			t.Errorf("max size 0, memory limit 0: %v %v", res, err)
		}
		if _, err := diffid.DigestBytes(blob, diffid.WithMaxSize(1)); !errors.Is(err, diffid.ErrLimitExceeded) {
			t.Errorf("max size 1: %v, want ErrLimitExceeded", err)
		}
	}
}

// An error carries its kind, the blob's format and the offset of the fault as fields.
func TestErrorFields(t *testing.T) {
	tarball := buildTar(smallEntries)
	gz := goGzip(tarball, gzipHeader(), 6)
	notTar := []byte("not a tar, not at all, not even close................")
	cases := []struct {
		name   string
		blob   []byte
		opts   []diffid.Option
		kind   diffid.Code
		format diffid.Format
		offset int64
	}{
		// The trailer is the last 8 bytes; its CRC32 comes first.
		{"gzip bad crc", func() []byte { b := clone(gz); b[len(b)-8] ^= 1; return b }(), nil,
			diffid.CodeCorrupt, diffid.FormatGzip, int64(len(gz) - 8)},
		// A cut input: the fault is where it ends.
		{"gzip truncated", gz[:len(gz)-9], nil, diffid.CodeTruncated, diffid.FormatGzip, int64(len(gz) - 9)},
		// Bytes after the last member: where they start.
		{"gzip trailing", append(clone(gz), "garbage"...), nil, diffid.CodeTrailingData, diffid.FormatGzip, int64(len(gz))},
		{"require tar, gzip", goGzip(notTar, gzipHeader(), 6), []diffid.Option{diffid.WithRequireTar()},
			diffid.CodeInvalidTar, diffid.FormatGzip, diffid.OffsetUnknown},
		{"require tar, uncompressed", notTar, []diffid.Option{diffid.WithRequireTar()},
			diffid.CodeInvalidTar, diffid.FormatNone, diffid.OffsetUnknown},
		{"max size, uncompressed", tarball, []diffid.Option{diffid.WithMaxSize(10)},
			diffid.CodeLimitExceeded, diffid.FormatNone, diffid.OffsetUnknown},
	}
	for _, c := range cases {
		for _, ep := range entryPoints {
			_, err := ep.run(t, c.blob, c.opts...)
			var e *diffid.Error
			if !errors.As(err, &e) {
				t.Errorf("%s: %s: %v is no *diffid.Error", c.name, ep.name, err)
				continue
			}
			if e.Kind != c.kind || e.Format != c.format || e.Offset != c.offset || !errors.Is(err, c.kind.Sentinel()) {
				t.Errorf("%s: %s: kind %v format %q offset %d, want %v %q %d (%v)", c.name, ep.name,
					e.Kind, e.Format, e.Offset, c.kind, c.format, c.offset, err)
			}
		}
	}
	// Not read at all: no format, no offset.
	_, err := diffid.DigestFile(filepath.Join(t.TempDir(), "missing"))
	var e *diffid.Error
	if !errors.As(err, &e) || e.Format != "" || e.Offset != diffid.OffsetUnknown {
		t.Errorf("missing file: %#v", err)
	}
}

func TestBLAKE3(t *testing.T) {
	blob := goZstd(buildTar(smallEntries), true)
	res, err := diffid.DigestBytes(blob, diffid.WithAlgorithm(diffid.BLAKE3))
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobDigest.Algorithm() != diffid.BLAKE3 || res.DiffID.Algorithm() != diffid.BLAKE3 ||
		len(res.BlobDigest.Encoded()) != 64 || len(res.DiffID.Encoded()) != 64 || res.BlobDigest == res.DiffID {
		t.Errorf("blake3 digests %s %s", res.BlobDigest, res.DiffID)
	}
	plain, err := diffid.DigestBytes(buildTar(smallEntries), diffid.WithAlgorithm(diffid.BLAKE3))
	if err != nil {
		t.Fatal(err)
	}
	if plain.BlobDigest != res.DiffID || plain.DiffID != plain.BlobDigest {
		t.Errorf("the DiffID of the zstd layer %s is not the digest of its tar %s", res.DiffID, plain.BlobDigest)
	}
	// Against an independent reference: BLAKE3's official test vectors (input byte i is
	// i % 251; the values of its test_vectors.json, computed by its C reference code), as
	// the blob digest of the bytes and as the DiffID of their zstd and gzip forms.
	vectors := []struct {
		n   int
		hex string
	}{
		{0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
		{1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
		{1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"},
		{1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
		{31744, "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47"},
		{102400, "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085"},
	}
	input := make([]byte, 102400)
	for i := range input {
		input[i] = byte(i % 251)
	}
	for _, v := range vectors {
		want := digest.Digest("blake3:" + v.hex)
		data := input[:v.n]
		for name, blob := range map[string][]byte{"plain": data, "zstd": goZstd(data, true), "gzip": goGzip(data, gzipHeader(), 6)} {
			res, err := diffid.DigestBytes(blob, diffid.WithAlgorithm(diffid.BLAKE3))
			if err != nil {
				t.Fatalf("%d bytes, %s: %v", v.n, name, err)
			}
			if res.DiffID != want {
				t.Errorf("%d bytes, %s: DiffID %s, BLAKE3's test vector %s", v.n, name, res.DiffID, want)
			}
		}
	}
}

func TestErrorKinds(t *testing.T) {
	tarball := buildTar(smallEntries)
	gz := goGzip(tarball, gzipHeader(), 6)
	cases := []struct {
		name string
		blob []byte
		opts []diffid.Option
		want error
	}{
		{"gzip trailing garbage", append(clone(gz), "garbage"...), nil, diffid.ErrTrailingData},
		{"gzip truncated", gz[:len(gz)-9], nil, diffid.ErrTruncated},
		{"gzip bad crc", func() []byte { b := clone(gz); b[len(b)-8] ^= 1; return b }(), nil, diffid.ErrCorrupt},
		{"max size", gz, []diffid.Option{diffid.WithMaxSize(1000)}, diffid.ErrLimitExceeded},
		{"require tar", goGzip([]byte("not a tar, not at all, not even close................"), gzipHeader(), 6),
			[]diffid.Option{diffid.WithRequireTar()}, diffid.ErrInvalidTar},
	}
	for _, c := range cases {
		for _, ep := range entryPoints {
			_, err := ep.run(t, c.blob, c.opts...)
			var e *diffid.Error
			if !errors.Is(err, c.want) || !errors.As(err, &e) || e.Message == "" {
				t.Errorf("%s: %s: %v, want %v with a message", c.name, ep.name, err, c.want)
			}
		}
	}
	// WithLenientGzip accepts the trailing bytes; the DiffID is that of the members.
	res, err := diffid.DigestBytes(append(clone(gz), 0, 0, 0, 0), diffid.WithLenientGzip())
	if err != nil || res.DiffID != digest.FromBytes(tarball) {
		t.Errorf("lenient gzip: %v %v", res, err)
	}
	// A file that does not exist.
	if _, err := diffid.DigestFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, diffid.ErrIO) {
		t.Errorf("missing file: %v", err)
	}
	// A reader error reaches the caller, wrapped.
	boom := errors.New("boom")
	_, err = diffid.DigestReader(io.MultiReader(bytes.NewReader(gz[:100]), errReader{boom}))
	if !errors.Is(err, boom) || !errors.Is(err, diffid.ErrIO) {
		t.Errorf("reader error: %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestTarVerdict(t *testing.T) {
	small := buildTar(smallEntries)
	for _, c := range []struct {
		name      string
		blob      []byte
		valid     bool
		endMarker bool
	}{
		{"with end marker", small, true, true},
		{"without end marker", small[:len(small)-1024], true, false},
		{"zero block then data", append(append(clone(small[:len(small)-1024]), make([]byte, 512)...), bytes.Repeat([]byte{1}, 512)...), false, false},
	} {
		res, err := diffid.DigestBytes(goZstd(c.blob, true))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.Tar.Valid != c.valid || res.Tar.EndMarker != c.endMarker || res.Tar.Entries != int64(len(smallEntries)) {
			t.Errorf("%s: tar %+v", c.name, res.Tar)
		}
	}
}

func TestWriterMisuse(t *testing.T) {
	w, err := diffid.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Result(); !errors.Is(err, diffid.ErrMisuse) {
		t.Errorf("Result before Close: %v", err)
	}
	if n, err := w.Write(nil); n != 0 || err != nil {
		t.Errorf("empty Write: %d %v", n, err)
	}
	if _, err := w.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	res, err := w.Result()
	if err != nil || res.DiffID != digest.FromString("hello") {
		t.Errorf("Result: %v %v", res, err)
	}
	if _, err := w.Write([]byte("more")); !errors.Is(err, diffid.ErrMisuse) {
		t.Errorf("Write after Close: %v", err)
	}
	if _, err := w.ReadFrom(bytes.NewReader([]byte("more"))); !errors.Is(err, diffid.ErrMisuse) {
		t.Errorf("ReadFrom after Close: %v", err)
	}
	// The Result is a copy.
	res.DiffID = "changed"
	if again, _ := w.Result(); again.DiffID == "changed" {
		t.Error("Result shares its value")
	}

	// A failed writer keeps failing with the same error, through Close and Result.
	w, _ = diffid.NewWriter()
	gz := goGzip(buildTar(smallEntries), gzipHeader(), 6)
	var werr error
	for _, chunk := range [][]byte{gz, []byte("trailing garbage")} {
		if _, err := w.Write(chunk); err != nil {
			werr = err
			break
		}
	}
	cerr := w.Close()
	if !errors.Is(cerr, diffid.ErrTrailingData) || (werr != nil && werr.Error() != cerr.Error()) {
		t.Errorf("write error %v, close error %v", werr, cerr)
	}
	if _, err := w.Result(); err == nil || err.Error() != cerr.Error() {
		t.Errorf("Result after failure: %v", err)
	}
	if err := w.Close(); err == nil || err.Error() != cerr.Error() {
		t.Errorf("second Close after failure: %v", err)
	}
}

// TestWriterConcurrentMisuse: calls from several goroutines are serialised, never unsafe.
func TestWriterConcurrentMisuse(t *testing.T) {
	w, err := diffid.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				if i == 7 && j == 25 {
					w.Close()
				}
				w.Write([]byte("some bytes"))
				w.Result()
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWriterFinalizer: writers dropped without Close are freed by their finalizer.
// TestWriterFinalizer: Writers abandoned mid-stream, with worker threads running, are
// released by their finalizer: the threads end and nothing is left.
func TestWriterFinalizer(t *testing.T) {
	// Several 512 KiB chunks of gzip, so that a Writer with threads starts workers.
	blob := goGzip(buildTar([]tarEntry{
		{name: "random", typeflag: tar.TypeReg, body: randomBytes(5, 3<<20)},
	}), gzipHeader(), 1)
	func() {
		for range 10 {
			w, err := diffid.NewWriter(diffid.WithThreads(2))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(blob[:len(blob)/2]); err != nil {
				t.Fatal(err)
			}
		}
	}()
	if n := workerThreads(t); n == 0 {
		t.Fatal("no worker thread started: the finalizers would have nothing to end")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		runtime.GC()
		n := workerThreads(t)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d worker threads of abandoned Writers still running: the finalizer did not release them", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWriterReadFrom(t *testing.T) {
	blob := goGzip(buildTar(smallEntries), gzipHeader(), 6)
	w, err := diffid.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(w, io.MultiReader(bytes.NewReader(blob[:10]), bytes.NewReader(blob[10:])))
	if err != nil || n != int64(len(blob)) {
		t.Fatalf("io.Copy: %d %v", n, err)
	}
	w.Close()
	res, err := w.Result()
	ref, _ := referenceDigest(blob, digest.SHA256)
	if err != nil || sameAsReference(res, ref) != "" {
		t.Errorf("%v %s", err, sameAsReference(res, ref))
	}
}

// infiniteReader yields zeros forever: a blob that never ends.
type infiniteReader struct{}

func (infiniteReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestCancelReader(t *testing.T) {
	for _, cause := range []string{"cancel", "deadline"} {
		var ctx context.Context
		var cancel context.CancelFunc
		if cause == "cancel" {
			ctx, cancel = context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
		} else {
			ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
		}
		start := time.Now()
		// A gzip stream of zeros that never ends, so the library is busy decoding.
		_, err := diffid.DigestReaderContext(ctx, io.MultiReader(bytes.NewReader(gzipHeaderOnly()), infiniteDeflate()))
		cancel()
		if !errors.Is(err, diffid.ErrCancelled) || !errors.Is(err, ctx.Err()) {
			t.Errorf("%s: %v, want ErrCancelled wrapping %v", cause, err, ctx.Err())
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: took %v", cause, d)
		}
	}
	// Cancelled before it starts.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := diffid.DigestReaderContext(ctx, infiniteReader{}); !errors.Is(err, context.Canceled) {
		t.Errorf("pre-cancelled: %v", err)
	}
}

// TestCancelWriterDuringWrite: cancelling the context interrupts a Write blocked in the
// library, from another goroutine.
func TestCancelWriterDuringWrite(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := diffid.NewWriterContext(ctx, diffid.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		big := make([]byte, 64<<20)
		for {
			if _, err := w.Write(big); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, diffid.ErrCancelled) || !errors.Is(err, context.Canceled) {
			t.Errorf("Write: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Write not interrupted by cancellation")
	}
	if err := w.Close(); !errors.Is(err, diffid.ErrCancelled) {
		t.Errorf("Close: %v", err)
	}
	if _, err := w.Result(); !errors.Is(err, diffid.ErrCancelled) {
		t.Errorf("Result: %v", err)
	}
}

// TestConcurrent: many goroutines digest different layers at once, through every entry
// point, each getting containers/image's answer.
func TestConcurrent(t *testing.T) {
	var layers []layerCase
	var refs []reference
	for _, c := range generatedCases() {
		if len(layers) == 16 {
			break
		}
		if v := judge(c.blob, digest.SHA256); v.accept() && len(c.blob) > 1000 {
			layers, refs = append(layers, c), append(refs, v.ref)
		}
	}
	// reuse the same 16 layers with different goroutines, 4 rounds each
	var wg sync.WaitGroup
	errs := make(chan error, 16*4*len(entryPoints))
	for g := range 16 {
		wg.Go(func() {
			for round := range 4 {
				i := (g + round) % len(layers)
				ep := entryPoints[(g+round)%len(entryPoints)]
				res, err := ep.run(t, layers[i].blob, diffid.WithThreads(1+g%4))
				if err != nil {
					errs <- fmt.Errorf("%s %s: %v", ep.name, layers[i].name, err)
				} else if d := sameAsReference(res, refs[i]); d != "" {
					errs <- fmt.Errorf("%s %s: %s", ep.name, layers[i].name, d)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDigestReaderFile(t *testing.T) {
	blob := goXz(buildTar(smallEntries))
	path := filepath.Join(t.TempDir(), "layer.tar.xz")
	if err := os.WriteFile(path, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := diffid.DigestReader(f)
	ref, _ := referenceDigest(blob, digest.SHA256)
	if err != nil || sameAsReference(res, ref) != "" {
		t.Errorf("%v %s", err, sameAsReference(res, ref))
	}
	// Like any io.Reader, the file is read from its current offset to its end.
	plain := buildTar(smallEntries)
	if err := os.WriteFile(path, append([]byte("prefix to skip"), plain...), 0o644); err != nil {
		t.Fatal(err)
	}
	f2, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if _, err := f2.Seek(int64(len("prefix to skip")), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	res, err = diffid.DigestReader(f2)
	if err != nil || res.BlobDigest != digest.FromBytes(plain) || res.BlobSize != int64(len(plain)) {
		t.Errorf("from an offset: %+v %v", res, err)
	}
	if off, _ := f2.Seek(0, io.SeekCurrent); off != int64(len("prefix to skip")+len(plain)) {
		t.Errorf("offset after DigestReader: %d", off)
	}
	// A pipe (not a regular file) goes through the stream.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { pw.Write(blob); pw.Close() }()
	res, err = diffid.DigestReader(pr)
	pr.Close()
	if err != nil || sameAsReference(res, ref) != "" {
		t.Errorf("pipe: %v %s", err, sameAsReference(res, ref))
	}
}

func gzipHeader() gzip.Header {
	return gzip.Header{Name: "layer.tar", ModTime: time.Unix(1700000000, 0)}
}

// gzipHeaderOnly is a minimal gzip member header.
func gzipHeaderOnly() []byte { return []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff} }

// infiniteDeflate is a deflate stream of zeros that never ends: after a first flushed
// segment, a second flushed segment (which only refers back to zeros) repeats forever.
func infiniteDeflate() io.Reader {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, 6)
	zeros := make([]byte, 1<<20)
	fw.Write(zeros)
	fw.Flush()
	first := clone(buf.Bytes())
	buf.Reset()
	fw.Write(zeros)
	fw.Flush()
	return io.MultiReader(bytes.NewReader(first), &repeatReader{seg: clone(buf.Bytes())})
}

type repeatReader struct {
	seg []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.seg[r.off:])
		n += c
		r.off = (r.off + c) % len(r.seg)
	}
	return n, nil
}
