package diffid_test

// Generated layer blobs: tar payloads built with archive/tar, compressed in every format by
// the system programs (gzip, bzip2, xz, zstd) and by the Go encoders of containers/image's
// dependencies, in the shapes importers meet (multi-member gzip, multi-stream and
// multi-block xz, multi-frame zstd with skippable frames), then damaged (trailing bytes,
// truncation, a flipped byte).

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"os/exec"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/ulikunitz/xz"
)

type layerCase struct {
	name string
	blob []byte
}

// payloads are the decompressed streams.
func payloads() []layerCase {
	small := buildTar(smallEntries)
	medium := buildTar([]tarEntry{
		{name: "bin/", typeflag: tar.TypeDir},
		// incompressible enough that every compressed form is over the 512 KiB from which
		// the library starts its worker threads
		{name: "bin/random", typeflag: tar.TypeReg, body: randomBytes(1, 600<<10)},
		{name: "share/text", typeflag: tar.TypeReg, body: textBytes(400 << 10)},
		{name: "share/zeros", typeflag: tar.TypeReg, body: make([]byte, 100<<10)},
	})
	blocked := append(append([]byte{}, small...), make([]byte, 10240-len(small)%10240)...) // GNU tar's record size
	noEnd := small[:len(small)-1024]
	afterEnd := append(append([]byte{}, small...), "bytes after the end-of-archive marker\n"...)
	zeroThenData := append(append(append([]byte{}, noEnd...), make([]byte, 512)...), bytes.Repeat([]byte("x"), 512)...)
	return []layerCase{
		{"empty", nil},
		{"emptytar", buildTar(nil)},
		{"small", small},
		{"medium", medium},
		{"blocked", blocked},
		{"noend", noEnd},
		{"afterend", afterEnd},
		{"zerothendata", zeroThenData},
		{"nottar", bytes.Repeat([]byte("this is not a tar archive\n"), 100)},
	}
}

// runTool runs a compressor program; ok is false when it is not installed.
func runTool(stdin []byte, argv ...string) ([]byte, bool) {
	if _, err := exec.LookPath(argv[0]); err != nil {
		missingTools.Store(argv[0], struct{}{})
		return nil, false
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		panic(fmt.Sprintf("%v: %v: %s", argv, err, stderr.String()))
	}
	return out, true
}

func goPgzip(data []byte) []byte {
	var buf bytes.Buffer
	zw := pgzip.NewWriter(&buf)
	zw.SetConcurrency(100<<10, 4)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

func goXz(data []byte) []byte {
	var buf bytes.Buffer
	zw, err := xz.NewWriter(&buf)
	if err != nil {
		panic(err)
	}
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

func goZstd(data []byte, crc bool) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(crc))
	if err != nil {
		panic(err)
	}
	defer enc.Close()
	return enc.EncodeAll(data, nil)
}

// skippable is a zstd skippable frame (what zstd:chunked uses for its table of contents).
func skippable(magicLow byte, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.LittleEndian.PutUint32(b, 0x184D2A50|uint32(magicLow&0xf))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(payload)))
	return append(b, payload...)
}

// thirds splits data into three pieces (some possibly empty).
func thirds(data []byte) [][]byte {
	n := len(data)
	return [][]byte{data[:n/3], data[n/3 : 2*n/3], data[2*n/3:]}
}

// concatEach compresses every piece separately and concatenates the results.
func concatEach(pieces [][]byte, f func([]byte) []byte) []byte {
	var out []byte
	for _, p := range pieces {
		out = append(out, f(p)...)
	}
	return out
}

type compressor struct {
	name string
	fn   func([]byte) ([]byte, bool)
}

func tool(argv ...string) func([]byte) ([]byte, bool) {
	return func(d []byte) ([]byte, bool) { return runTool(d, argv...) }
}

func goOnly(f func([]byte) []byte) func([]byte) ([]byte, bool) {
	return func(d []byte) ([]byte, bool) { return f(d), true }
}

// multi compresses each third with argv and concatenates the streams.
func multi(argv ...string) func([]byte) ([]byte, bool) {
	return func(d []byte) ([]byte, bool) {
		var out []byte
		for _, p := range thirds(d) {
			c, ok := runTool(p, argv...)
			if !ok {
				return nil, false
			}
			out = append(out, c...)
		}
		return out, true
	}
}

var compressors = []compressor{
	{"none", goOnly(func(d []byte) []byte { return d })},
	{"gzip-go", goOnly(func(d []byte) []byte { return goGzip(d, gzip.Header{}, gzip.DefaultCompression) })},
	{"gzip-go-header", goOnly(func(d []byte) []byte {
		return goGzip(d, gzip.Header{Name: "layer.tar", Comment: "a comment", Extra: []byte("XYextra"), ModTime: time.Unix(1700000000, 0), OS: 3}, gzip.BestCompression)
	})},
	{"gzip-go-stored", goOnly(func(d []byte) []byte { return goGzip(d, gzip.Header{}, gzip.NoCompression) })},
	{"gzip-go-multimember", goOnly(func(d []byte) []byte {
		return concatEach(thirds(d), func(p []byte) []byte { return goGzip(p, gzip.Header{}, 6) })
	})},
	{"gzip-go-emptymembers", goOnly(func(d []byte) []byte {
		empty := goGzip(nil, gzip.Header{}, 6)
		return append(append(append([]byte{}, empty...), goGzip(d, gzip.Header{}, 6)...), empty...)
	})},
	{"gzip-pgzip", goOnly(goPgzip)},
	{"gzip-cli", tool("gzip", "-n", "-c")},
	{"gzip-cli-1", tool("gzip", "-1", "-c")},
	{"gzip-cli-multimember", multi("gzip", "-c")},
	{"bzip2-cli", tool("bzip2", "-c")},
	{"bzip2-cli-1", tool("bzip2", "-1", "-c")},
	{"bzip2-cli-multistream", multi("bzip2", "-c")},
	{"xz-cli", tool("xz", "-c")},
	{"xz-cli-check-none", tool("xz", "-c", "--check=none")},
	{"xz-cli-check-crc32", tool("xz", "-c", "--check=crc32")},
	{"xz-cli-check-sha256", tool("xz", "-c", "--check=sha256")},
	{"xz-cli-blocks", tool("xz", "-c", "--block-size=32KiB")},
	{"xz-cli-threads", tool("xz", "-c", "-T4", "--block-size=200KiB")},
	{"xz-cli-multistream", multi("xz", "-c")},
	{"xz-cli-padded", func(d []byte) ([]byte, bool) {
		parts, ok := multi("xz", "-c")(d)
		if !ok {
			return nil, false
		}
		one, _ := runTool(d, "xz", "-c")
		// stream, 4 zero bytes of padding, stream, 8 zero bytes
		return append(append(append(append([]byte{}, one...), 0, 0, 0, 0), parts...), make([]byte, 8)...), true
	}},
	{"xz-cli-badpadding", func(d []byte) ([]byte, bool) {
		one, ok := runTool(d, "xz", "-c")
		return append(one, 0, 0, 0), ok // padding must come in groups of 4
	}},
	{"xz-cli-bcj", tool("xz", "-c", "--x86", "--lzma2")},
	{"xz-cli-delta", tool("xz", "-c", "--delta=dist=4", "--lzma2")},
	{"xz-go", goOnly(goXz)},
	{"zstd-cli", tool("zstd", "-q", "-c")},
	{"zstd-cli-19", tool("zstd", "-q", "-19", "-c")},
	{"zstd-cli-nocheck", tool("zstd", "-q", "--no-check", "-c")},
	{"zstd-cli-long", tool("zstd", "-q", "--long=27", "-c")},
	{"zstd-cli-multiframe", multi("zstd", "-q", "-c")},
	{"zstd-go", goOnly(func(d []byte) []byte { return goZstd(d, true) })},
	{"zstd-go-nocrc", goOnly(func(d []byte) []byte { return goZstd(d, false) })},
	{"zstd-go-skippable", goOnly(func(d []byte) []byte {
		// frame, skippable frame, frame, empty skippable frame: zstd:chunked's shape
		p := thirds(d)
		out := append(goZstd(p[0], true), skippable(0, []byte("table of contents"))...)
		out = append(out, goZstd(append(append([]byte{}, p[1]...), p[2]...), true)...)
		return append(out, skippable(15, nil)...)
	})},
	{"zstd-go-leadingskippable", goOnly(func(d []byte) []byte {
		// not detected as zstd: containers/image treats it as uncompressed
		return append(skippable(3, []byte("toc")), goZstd(d, true)...)
	})},
}

// damaged variants of a compressed blob.
var mutations = []struct {
	name string
	fn   func([]byte) []byte
}{
	{"plus1zero", func(b []byte) []byte { return append(clone(b), 0) }},
	{"plus4zeros", func(b []byte) []byte { return append(clone(b), 0, 0, 0, 0) }},
	{"plus512zeros", func(b []byte) []byte { return append(clone(b), make([]byte, 512)...) }},
	{"plusgarbage", func(b []byte) []byte { return append(clone(b), "garbage\n"...) }},
	{"plusmagic", func(b []byte) []byte { return append(clone(b), b[:min(len(b), 4)]...) }},
	{"truncatedhalf", func(b []byte) []byte { return clone(b[:len(b)/2]) }},
	{"truncated1", func(b []byte) []byte { return clone(b[:max(len(b)-1, 0)]) }},
	{"truncated10", func(b []byte) []byte { return clone(b[:min(len(b), 10)]) }},
	{"flipmiddle", func(b []byte) []byte {
		c := clone(b)
		if len(c) > 0 {
			c[len(c)/2] ^= 0x55
		}
		return c
	}},
}

var mediumMutations = map[string]bool{"plusgarbage": true, "truncatedhalf": true, "flipmiddle": true}

func clone(b []byte) []byte { return append([]byte{}, b...) }

var (
	casesOnce sync.Once
	cases     []layerCase
)

// generatedCases returns every payload in every compressor, and the damaged variants of the
// small and medium payloads.
func generatedCases() []layerCase {
	casesOnce.Do(func() {
		for _, p := range payloads() {
			for _, c := range compressors {
				blob, ok := c.fn(p.blob)
				if !ok {
					continue
				}
				name := p.name + "/" + c.name
				cases = append(cases, layerCase{name, blob})
				for _, m := range mutations {
					// every damage on the small layer; the medium one (which takes the
					// threaded path) gets one of each kind, to keep -race runs short
					if p.name == "small" || (p.name == "medium" && mediumMutations[m.name]) {
						cases = append(cases, layerCase{name + "/" + m.name, m.fn(blob)})
					}
				}
			}
		}
	})
	return cases
}
