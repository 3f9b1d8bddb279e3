package diffid_test

// DecompressStream: the decoded stream of every format equals the reference C decoder's
// output (`DEC -dc`, run here) and its Result equals DigestReader's; bad blobs end in an
// error, never io.EOF; Close and cancellation mid-stream; a slow consumer of a bomb keeps
// resident memory flat. The helpers are this file's own (ds*), so that the file needs
// nothing but the package, the standard library and the system's compressor programs.

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"diffid.dev/go/diffid"
)

// dsTar is a tar archive of a directory, a text file, an incompressible file and a symlink;
// size scales the two files.
func dsTar(t testing.TB, seed int64, size int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	random := make([]byte, size/2)
	rand.New(rand.NewSource(seed)).Read(random)
	var text bytes.Buffer
	for i := 0; text.Len() < size/2; i++ {
		fmt.Fprintf(&text, "line %d of layer %d: the quick brown fox jumps over the lazy dog\n", i, seed)
	}
	hdrs := []struct {
		h    tar.Header
		body []byte
	}{
		{tar.Header{Name: "dir/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "dir/text", Typeflag: tar.TypeReg, Mode: 0o644}, text.Bytes()},
		{tar.Header{Name: "dir/random", Typeflag: tar.TypeReg, Mode: 0o600}, random},
		{tar.Header{Name: "dir/link", Typeflag: tar.TypeSymlink, Linkname: "text"}, nil},
	}
	for _, e := range hdrs {
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

// dsRun runs a program with stdin; it skips the test when the program is not installed.
func dsRun(t testing.TB, stdin []byte, argv ...string) []byte {
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

// dsFormat is one way of compressing a layer, and the reference decoder of the format.
type dsFormat struct {
	name string
	comp []string // nil: uncompressed
	dec  []string // the reference C decoder; nil: the blob itself
	// multi: compress each third separately and concatenate (members, streams, frames)
	multi bool
}

var dsFormats = []dsFormat{
	{name: "none"},
	{name: "gzip", comp: []string{"gzip", "-c", "-n"}, dec: []string{"gzip", "-dc"}},
	{name: "gzip-members", comp: []string{"gzip", "-c", "-1"}, dec: []string{"gzip", "-dc"}, multi: true},
	{name: "bzip2", comp: []string{"bzip2", "-c", "-1"}, dec: []string{"bzip2", "-dc"}},
	{name: "bzip2-streams", comp: []string{"bzip2", "-c", "-1"}, dec: []string{"bzip2", "-dc"}, multi: true},
	{name: "xz", comp: []string{"xz", "-c", "-1"}, dec: []string{"xz", "-dc"}},
	{name: "xz-blocks", comp: []string{"xz", "-c", "-1", "-T2", "--block-size=96KiB"}, dec: []string{"xz", "-dc"}},
	{name: "xz-streams", comp: []string{"xz", "-c", "-1"}, dec: []string{"xz", "-dc"}, multi: true},
	{name: "zstd", comp: []string{"zstd", "-c", "-q", "-3"}, dec: []string{"zstd", "-dc", "--memory=512MB"}},
	{name: "zstd-frames", comp: []string{"zstd", "-c", "-q", "-3"}, dec: []string{"zstd", "-dc", "--memory=512MB"}, multi: true},
}

func (f dsFormat) compress(t testing.TB, payload []byte) []byte {
	if f.comp == nil {
		return payload
	}
	if !f.multi {
		return dsRun(t, payload, f.comp...)
	}
	var out []byte
	n := len(payload)
	for _, p := range [][]byte{payload[:n/3], payload[n/3 : 2*n/3], payload[2*n/3:]} {
		out = append(out, dsRun(t, p, f.comp...)...)
	}
	return out
}

// decodedDigest is the sha256 of the reference decoder's output, computed with
// crypto/sha256 (never with diffid).
func (f dsFormat) decodedDigest(t testing.TB, blob []byte) string {
	out := blob
	if f.dec != nil {
		out = dsRun(t, blob, f.dec...)
	}
	sum := sha256.Sum256(out)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// dsDrain reads rd to its end with reads of the given size and returns the sha256 of what
// it read, the count and the error that ended it (nil for io.EOF).
func dsDrain(rd io.Reader, size int) (string, int64, error) {
	h := sha256.New()
	buf := make([]byte, size)
	var n int64
	for {
		m, err := rd.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		if err == io.EOF {
			return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
		}
		if err != nil {
			return "", n, err
		}
	}
}

// dsSources are the ways a blob reaches DecompressStream: a regular *os.File (the library
// reads the descriptor), an io.Reader (the feeding goroutine), and a reader returning
// one byte, then half of what is asked (the feeding goroutine with odd pieces).
var dsSources = []struct {
	name string
	open func(t *testing.T, blob []byte) io.Reader
}{
	{"file", func(t *testing.T, blob []byte) io.Reader {
		path := filepath.Join(t.TempDir(), "layer")
		if err := os.WriteFile(path, blob, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}},
	{"reader", func(t *testing.T, blob []byte) io.Reader { return bytes.NewReader(blob) }},
	{"halfreader", func(t *testing.T, blob []byte) io.Reader {
		return io.MultiReader(iotest.OneByteReader(bytes.NewReader(blob[:min(1, len(blob))])),
			iotest.HalfReader(bytes.NewReader(blob[min(1, len(blob)):])))
	}},
}

// TestDecompressStreamFormats: every format, small and large (the library's threaded
// path), from every kind of source, read in pieces of several sizes: the decoded bytes are
// the reference decoder's, io.EOF comes once at the end, and Result equals DigestReader's.
func TestDecompressStreamFormats(t *testing.T) {
	payloads := map[string][]byte{"small": dsTar(t, 1, 20<<10), "large": dsTar(t, 2, 3<<20)}
	for _, pname := range []string{"small", "large"} {
		for _, f := range dsFormats {
			t.Run(pname+"/"+f.name, func(t *testing.T) {
				blob := f.compress(t, payloads[pname])
				want := f.decodedDigest(t, blob)
				ref, err := diffid.DigestReader(bytes.NewReader(blob))
				if err != nil {
					t.Fatalf("DigestReader: %v", err)
				}
				if string(ref.DiffID) != want {
					t.Fatalf("DigestReader's DiffID %s, the reference decoder's output %s", ref.DiffID, want)
				}
				for i, src := range dsSources {
					readSize := []int{32 << 10, 4093, 1 << 20}[i]
					rd, err := diffid.DecompressStream(src.open(t, blob))
					if err != nil {
						t.Fatalf("%s: DecompressStream: %v", src.name, err)
					}
					if _, err := rd.Result(); !errors.Is(err, diffid.ErrMisuse) {
						t.Errorf("%s: Result before EOF: %v, want ErrMisuse", src.name, err)
					}
					got, n, err := dsDrain(rd, readSize)
					if err != nil {
						t.Fatalf("%s: Read: %v", src.name, err)
					}
					if got != want || n != ref.DiffSize {
						t.Errorf("%s: decoded %d bytes, %s; the reference decoder %d bytes, %s", src.name, n, got, ref.DiffSize, want)
					}
					if m, err := rd.Read(make([]byte, 10)); m != 0 || err != io.EOF {
						t.Errorf("%s: Read after EOF: %d, %v", src.name, m, err)
					}
					res, err := rd.Result()
					if err != nil {
						t.Fatalf("%s: Result: %v", src.name, err)
					}
					if !reflect.DeepEqual(*res, *ref) {
						t.Errorf("%s: Result %+v, DigestReader %+v", src.name, *res, *ref)
					}
					if err := rd.Close(); err != nil {
						t.Errorf("%s: Close: %v", src.name, err)
					}
					if res2, err := rd.Result(); err != nil || !reflect.DeepEqual(*res2, *ref) {
						t.Errorf("%s: Result after Close: %v", src.name, err)
					}
				}
			})
		}
	}
}

// TestDecompressStreamBadBlobs: truncated, corrupt and trailing-data blobs of every format
// make Read return an error of the right kind, never io.EOF, from every kind of source;
// DigestReader rejects the same blobs, and Result returns the Read error.
func TestDecompressStreamBadBlobs(t *testing.T) {
	payload := dsTar(t, 3, 2<<20)
	for _, f := range dsFormats {
		if f.comp == nil {
			continue
		}
		blob := f.compress(t, payload)
		damages := []struct {
			name string
			blob []byte
			want []error
		}{
			{"truncated-half", blob[:len(blob)/2], []error{diffid.ErrTruncated, diffid.ErrCorrupt}},
			{"truncated-1", blob[:len(blob)-1], []error{diffid.ErrTruncated, diffid.ErrCorrupt}},
			{"trailing-garbage", append(bytes.Clone(blob), "garbage\n"...), []error{diffid.ErrTrailingData, diffid.ErrCorrupt}},
			// the last bytes are the trailer: gzip ISIZE, xz stream footer, bzip2 stream CRC,
			// zstd checksum; the middle is coded data
			{"flip-last", flip(blob, len(blob)-2), []error{diffid.ErrCorrupt}},
			{"flip-middle", flip(blob, len(blob)/2), []error{diffid.ErrCorrupt, diffid.ErrTruncated}},
		}
		for _, d := range damages {
			t.Run(f.name+"/"+d.name, func(t *testing.T) {
				_, derr := diffid.DigestReader(bytes.NewReader(d.blob))
				if derr == nil {
					t.Fatalf("DigestReader accepts the damaged blob")
				}
				for _, src := range dsSources[:2] {
					rd, err := diffid.DecompressStream(src.open(t, d.blob))
					if err != nil {
						t.Fatalf("%s: DecompressStream: %v", src.name, err)
					}
					_, n, err := dsDrain(rd, 64<<10)
					if err == nil {
						t.Fatalf("%s: io.EOF after %d bytes of a damaged blob", src.name, n)
					}
					if !isAny(err, d.want) {
						t.Errorf("%s: %v, want one of %v", src.name, err, d.want)
					}
					var e *diffid.Error
					if !errors.As(err, &e) || e.Message == "" {
						t.Errorf("%s: %v is not an *Error with a message", src.name, err)
					}
					if _, rerr := rd.Result(); rerr == nil || rerr.Error() != err.Error() {
						t.Errorf("%s: Result: %v, want the Read error", src.name, rerr)
					}
					if m, again := rd.Read(make([]byte, 10)); m != 0 || again == nil || again == io.EOF {
						t.Errorf("%s: Read after the error: %d, %v", src.name, m, again)
					}
					rd.Close()
				}
			})
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x55
	return c
}

func isAny(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// TestDecompressStreamSourceError: an error of the source reaches Read as an ErrIO error
// wrapping it, after the bytes decoded before it, and never as io.EOF.
func TestDecompressStreamSourceError(t *testing.T) {
	blob := dsRun(t, dsTar(t, 4, 1<<20), "zstd", "-c", "-q")
	boom := errors.New("connection reset by the registry")
	src := io.MultiReader(bytes.NewReader(blob[:len(blob)/2]), iotest.ErrReader(boom))
	rd, err := diffid.DecompressStream(src)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	_, _, err = dsDrain(rd, 32<<10)
	if !errors.Is(err, boom) || !errors.Is(err, diffid.ErrIO) {
		t.Errorf("Read: %v, want ErrIO wrapping %v", err, boom)
	}
}

// dsThreads counts the process's diffid worker threads (each is named "diffid-…").
func dsThreads(t *testing.T) int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		// Only Linux lists threads there; where it should and cannot, the check would
		// pass without counting anything, so it fails instead.
		if runtime.GOOS == "linux" {
			t.Fatalf("counting threads: %v", err)
		}
		t.Skip("no /proc/self/task on " + runtime.GOOS)
	}
	n := 0
	for _, task := range tasks {
		comm, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "comm"))
		if err == nil && strings.HasPrefix(string(comm), "diffid-") {
			n++
		}
	}
	return n
}

// dsWaitNoThreads waits for every diffid worker thread to end: they are joined before the
// call returns, but the kernel may list a joined thread for a moment, and a loaded machine
// (-race, CI) stretches that moment; 30 s is a hang, not a slow machine.
func dsWaitNoThreads(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for dsThreads(t) > 0 {
		if time.Now().After(deadline) {
			t.Errorf("%s: %d diffid worker threads still running", what, dsThreads(t))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dsGzipHeader() []byte { return []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff} }

// dsInfiniteDeflate is a deflate stream of zeros that never ends: after a first flushed
// segment, a second flushed segment (which only refers back to zeros) repeats forever.
func dsInfiniteDeflate() io.Reader {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, 6)
	zeros := make([]byte, 1<<20)
	fw.Write(zeros)
	fw.Flush()
	first := bytes.Clone(buf.Bytes())
	buf.Reset()
	fw.Write(zeros)
	fw.Flush()
	seg := bytes.Clone(buf.Bytes())
	off := 0
	return io.MultiReader(bytes.NewReader(first), dsReaderFunc(func(p []byte) (int, error) {
		for n := 0; n < len(p); {
			c := copy(p[n:], seg[off:])
			n += c
			off = (off + c) % len(seg)
		}
		return len(p), nil
	}))
}

type dsReaderFunc func([]byte) (int, error)

func (f dsReaderFunc) Read(p []byte) (int, error) { return f(p) }

// dsBomb is a gzip blob of members each decoding to 64 MiB of zeros, decoding to n*64 MiB.
func dsBomb(t testing.TB, n int) []byte {
	member := dsRun(t, make([]byte, 64<<20), "gzip", "-c", "-1")
	return bytes.Repeat(member, n)
}

// TestDecompressStreamCloseEarly: Close after part of the stream, from every kind of
// source and format, and Close from another goroutine while Read is blocked: every worker
// thread ends, Close is idempotent, and Read after Close is an ErrMisuse error.
func TestDecompressStreamCloseEarly(t *testing.T) {
	payload := dsTar(t, 5, 4<<20)
	for _, f := range dsFormats {
		blob := f.compress(t, payload)
		for _, src := range dsSources[:2] {
			for _, after := range []int{0, 1, 1 << 20} {
				rd, err := diffid.DecompressStream(src.open(t, blob))
				if err != nil {
					t.Fatal(err)
				}
				if after > 0 {
					if _, err := io.ReadFull(rd, make([]byte, after)); err != nil {
						t.Fatalf("%s/%s: %v", f.name, src.name, err)
					}
				}
				if err := rd.Close(); err != nil {
					t.Errorf("%s/%s: Close: %v", f.name, src.name, err)
				}
				if err := rd.Close(); err != nil {
					t.Errorf("%s/%s: second Close: %v", f.name, src.name, err)
				}
				if _, err := rd.Read(make([]byte, 1)); !errors.Is(err, diffid.ErrMisuse) {
					t.Errorf("%s/%s: Read after Close: %v", f.name, src.name, err)
				}
				if _, err := rd.Result(); err == nil {
					t.Errorf("%s/%s: Result after an early Close succeeds", f.name, src.name)
				}
			}
		}
	}
	dsWaitNoThreads(t, "after the early Closes")

	// Close while a Read is blocked: a source that yields a gzip header and then nothing.
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write(dsGzipHeader())
	rd, err := diffid.DecompressStream(pr)
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() { _, err := rd.Read(make([]byte, 4096)); readErr <- err }()
	time.Sleep(100 * time.Millisecond)
	closed := make(chan struct{})
	go func() { rd.Close(); close(closed) }()
	select {
	case err := <-readErr:
		if err == nil || err == io.EOF {
			t.Errorf("blocked Read after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a blocked Read")
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the blocked source")
	}
	dsWaitNoThreads(t, "after Close during a blocked Read")
}

// TestDecompressStreamContext: cancelling the context (from another goroutine, while the
// consumer reads a stream that never ends) and a deadline end Read with an error wrapping
// both ErrCancelled and the context's error; a context done before the first Read fails it
// too.
func TestDecompressStreamContext(t *testing.T) {
	never := func() io.Reader { return io.MultiReader(bytes.NewReader(dsGzipHeader()), dsInfiniteDeflate()) }
	ctx, cancel := context.WithCancel(context.Background())
	rd, err := diffid.DecompressStreamContext(ctx, never())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rd, make([]byte, 1<<20)); err != nil {
		t.Fatalf("before the cancellation: %v", err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, _, err = dsDrain(rd, 1<<20)
	if !errors.Is(err, diffid.ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v, want ErrCancelled wrapping context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel: took %v", d)
	}
	rd.Close()

	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rd, err = diffid.DecompressStreamContext(ctx, never())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err = dsDrain(rd, 1<<20); !errors.Is(err, diffid.ErrCancelled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v, want ErrCancelled wrapping context.DeadlineExceeded", err)
	}
	rd.Close()

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	rd, err = diffid.DecompressStreamContext(ctx, bytes.NewReader(dsTar(t, 6, 1000)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Read(make([]byte, 100)); !errors.Is(err, context.Canceled) {
		t.Errorf("pre-cancelled: %v", err)
	}
	rd.Close()
	dsWaitNoThreads(t, "after the cancellations")
}

func dsRSSKiB(t *testing.T) int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kib
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestDecompressStreamSlowConsumerBomb: a 2 GiB gzip bomb (about 2 MiB of blob), read by a
// consumer that takes 64 KiB at a time and stalls for a second twice. The decoders run
// ahead only by the bounded queue: resident memory does not grow between the first 256 MiB
// and the end (nor during the stalls), from a file and from a reader.
func TestDecompressStreamSlowConsumerBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 4 GiB")
	}
	blob := dsBomb(t, 32)
	const total = 32 * 64 << 20
	for _, src := range dsSources[:2] {
		runtime.GC()
		debug.FreeOSMemory()
		rd, err := diffid.DecompressStream(src.open(t, blob))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		var n, base, peak int64
		for {
			m, err := rd.Read(buf)
			n += int64(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: after %d bytes: %v", src.name, n, err)
			}
			for _, stall := range []int64{512 << 20, 1536 << 20} {
				if n-int64(m) < stall && n >= stall {
					time.Sleep(time.Second) // the library must wait, not buffer
				}
			}
			if n-int64(m) < 256<<20 && n >= 256<<20 {
				base = dsRSSKiB(t)
			}
			if n > 256<<20 && n%(32<<20) < int64(m) {
				peak = max(peak, dsRSSKiB(t))
			}
		}
		if n != total {
			t.Errorf("%s: %d bytes decoded, want %d", src.name, n, total)
		}
		res, err := rd.Result()
		if err != nil || res.DiffSize != total {
			t.Errorf("%s: Result %+v, %v", src.name, res, err)
		}
		rd.Close()
		t.Logf("%s: resident %d KiB after 256 MiB, at most %d KiB up to %d MiB", src.name, base, peak, total>>20)
		if grew := peak - base; grew > 64<<10 {
			t.Errorf("%s: resident memory grew %d KiB while a slow consumer read the bomb", src.name, grew)
		}
	}
}

// TestDecompressStreamFinalizer: a Reader dropped mid-stream without Close (its feeding
// goroutine blocked in the library, its source never ending) is freed by the finalizer:
// its worker threads end.
func TestDecompressStreamFinalizer(t *testing.T) {
	func() {
		rd, err := diffid.DecompressStream(io.MultiReader(bytes.NewReader(dsGzipHeader()), dsInfiniteDeflate()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rd, make([]byte, 4<<20)); err != nil {
			t.Fatal(err)
		}
		if dsThreads(t) == 0 {
			t.Fatal("no diffid worker thread while the stream is open")
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for dsThreads(t) > 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	if n := dsThreads(t); n > 0 {
		t.Errorf("%d diffid worker threads left after the forgotten Reader was collected", n)
	}
}
