package dropin

// BenchmarkImport: an importer's whole job per layer file: read the blob from a file,
// extract every entry (write the files) with containers/storage's
// archive.ApplyUncompressedLayer, and record the compressed and uncompressed digests and
// sizes. "diffid" is ApplyDiff (one diffid.DecompressStream); "storage" is what
// containers/storage's applyDiffWithOptions does: tee the blob into a sha256 digester and a
// counter, archive.DecompressStream (which runs pigz or zstd when they are on PATH, as
// Podman does), tee the decoded stream into a second digester and counter, apply, drain.
// (containers/storage also writes a tar-split file; neither side does here.)
//
// The layer is a tar of installed files (/usr/share, then /usr/lib, up to
// DIFFID_BENCH_LAYER_MIB, default 64 MiB), compressed as registries serve them
// (DIFFID_BENCH_FORMATS=gzip,zstd keeps only those formats, skipping the others'
// compression as well as their runs; DIFFID_BENCH_DIFFID_FIRST=1 runs the diffid row of
// each format before the storage row, to check that the order does not decide;
// DIFFID_BENCH_EXTRACT_DIR=/dev/shm extracts into a tmpfs, see extractDir). Run:
//
//	cd go/dropin && go test -tags exclude_graphdriver_btrfs -run '^$' -bench Import -benchtime 3x
//
// and compare the two rows of each format (b.SetBytes is the decoded size, so MB/s is
// decoded bytes per second). read-ns/op is the part of ns/op the extraction spent inside
// Read of the decoded stream: decoding and digesting as the importer waits for them (the
// rest, writing the files, is the same code on both sides); cpu-ns/op is the CPU time of
// the whole job, pigz and zstd included. The extracted trees stay on disk (in the
// benchmark's temporary directory, about the layer's size per op and side) until every row
// has run: see the loop for why.

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containers/storage/pkg/archive"
	digest "github.com/opencontainers/go-digest"
)

var (
	benchOnce    sync.Once
	benchPayload string // path of the uncompressed layer
	benchErr     error
)

// benchLayer writes a tar of installed files to dir, up to limit bytes of file contents.
func benchLayer(dir string, limit int64) (string, error) {
	path := filepath.Join(dir, "layer.tar")
	out, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer out.Close()
	tw := tar.NewWriter(out)
	var total int64
	errFull := io.EOF
	for _, root := range []string{"/usr/share", "/usr/lib"} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable: skip
			}
			if total >= limit {
				return errFull
			}
			fi, err := d.Info()
			if err != nil || !(fi.Mode().IsRegular() || fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0) {
				return nil
			}
			link := ""
			if fi.Mode()&fs.ModeSymlink != 0 {
				if link, err = os.Readlink(p); err != nil {
					return nil
				}
			}
			var body []byte
			if fi.Mode().IsRegular() {
				if body, err = os.ReadFile(p); err != nil {
					return nil
				}
			}
			h, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return nil
			}
			h.Name = p[1:]
			if fi.IsDir() {
				h.Name += "/"
			}
			h.Size = int64(len(body))
			h.Uname, h.Gname = "", ""
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := tw.Write(body); err != nil {
				return err
			}
			total += int64(len(body))
			return nil
		})
		if err != nil && err != errFull {
			return "", err
		}
	}
	return path, tw.Close()
}

// benchFormats: the compressions of the benchmark, as registries and tarballs have them.
var benchFormats = []struct {
	name string
	argv []string
}{
	{"gzip", []string{"gzip", "-c", "-6", "-n"}},
	{"zstd", []string{"zstd", "-c", "-q", "-3"}},
	{"xz", []string{"xz", "-c", "-6"}},                                    // one block, as `xz` writes by default
	{"xz-blocks", []string{"xz", "-c", "-6", "-T2", "--block-size=8MiB"}}, // as `xz -T` writes
	{"bzip2", []string{"bzip2", "-c", "-9"}},
}

// cpuTime is the user + system CPU time of this process (every thread) and of its
// children that have been waited for.
func cpuTime() time.Duration {
	var d time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err == nil {
			d += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return d
}

// timedReader adds the time spent in Read to *d: the time the extraction waits for the
// decoded stream (decoding and digesting, when they run inside Read).
type timedReader struct {
	r io.Reader
	d *time.Duration
}

func (t timedReader) Read(p []byte) (int, error) {
	start := time.Now()
	n, err := t.r.Read(p)
	*t.d += time.Since(start)
	return n, err
}

// storageImport is containers/storage's applyDiff without tar-split.
func storageImport(dest string, from io.Reader, wrap func(io.Reader) io.Reader) (Recorded, error) {
	cd, ud := digest.Canonical.Digester(), digest.Canonical.Digester()
	cc, uc := &counter{}, &counter{}
	decoded, err := archive.DecompressStream(io.TeeReader(from, io.MultiWriter(cd.Hash(), cc)))
	if err != nil {
		return Recorded{}, err
	}
	defer decoded.Close()
	teed := wrap(io.TeeReader(decoded, io.MultiWriter(ud.Hash(), uc)))
	size, err := archive.ApplyUncompressedLayer(dest, teed, &archive.TarOptions{})
	if err != nil {
		return Recorded{}, err
	}
	if _, err := io.Copy(io.Discard, teed); err != nil {
		return Recorded{}, err
	}
	return Recorded{CompressedDigest: cd.Digest(), CompressedSize: cc.n,
		UncompressedDigest: ud.Digest(), UncompressedSize: uc.n, Size: size}, nil
}

// benchSide is one way of importing: a row of each format.
type benchSide struct {
	name string
	fn   func(string, io.Reader, func(io.Reader) io.Reader) (Recorded, error)
}

func BenchmarkImport(b *testing.B) {
	limit := int64(64)
	if v, err := strconv.ParseInt(os.Getenv("DIFFID_BENCH_LAYER_MIB"), 10, 64); err == nil && v > 0 {
		limit = v
	}
	dir := b.TempDir()
	benchOnce.Do(func() { benchPayload, benchErr = benchLayer(dir, limit<<20) })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	payload, err := os.ReadFile(benchPayload)
	if err != nil {
		b.Fatal(err)
	}
	sides := []benchSide{
		{"storage", storageImport},
		{"diffid", func(d string, r io.Reader, w func(io.Reader) io.Reader) (Recorded, error) {
			return applyDiff(d, r, nil, w)
		}},
	}
	if os.Getenv("DIFFID_BENCH_DIFFID_FIRST") != "" {
		sides[0], sides[1] = sides[1], sides[0] // the control for an order effect
	}
	// Where the layers are extracted: DIFFID_BENCH_EXTRACT_DIR (e.g. /dev/shm, a tmpfs: no
	// disk and no ext4 inode allocator in the figures), else the benchmark's temporary
	// directory.
	extractDir := dir
	if d := os.Getenv("DIFFID_BENCH_EXTRACT_DIR"); d != "" {
		if extractDir, err = os.MkdirTemp(d, "diffid-bench-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(extractDir) })
	}
	only := strings.Fields(strings.ReplaceAll(os.Getenv("DIFFID_BENCH_FORMATS"), ",", " "))
	for _, f := range benchFormats {
		if len(only) > 0 && !slices.Contains(only, f.name) {
			continue // not asked for: do not spend minutes compressing it
		}
		blob := run(b, payload, f.argv...)
		path := filepath.Join(dir, "layer."+f.name)
		if err := os.WriteFile(path, blob, 0o644); err != nil {
			b.Fatal(err)
		}
		var want Recorded
		for _, side := range sides {
			b.Run(f.name+"/"+side.name, func(b *testing.B) {
				b.SetBytes(int64(len(payload)))
				var inRead, cpu time.Duration
				wrap := func(r io.Reader) io.Reader { return timedReader{r, &inRead} }
				for range b.N {
					b.StopTimer()
					dest, err := os.MkdirTemp(extractDir, "extract-")
					if err != nil {
						b.Fatal(err)
					}
					file, err := os.Open(path)
					if err != nil {
						b.Fatal(err)
					}
					cpu0 := cpuTime()
					b.StartTimer()
					rec, err := side.fn(dest, file, wrap)
					b.StopTimer()
					cpu += cpuTime() - cpu0
					file.Close()
					if err != nil {
						b.Fatal(err)
					}
					rec.CompressionType = 0
					if want == (Recorded{}) {
						want = rec
					} else if rec != want {
						b.Fatalf("%s recorded %+v, the first row %+v", side.name, rec, want)
					}
					// dest is not removed here but with dir, once every row has run: ext4
					// skips inodes deleted in the last 30 s (5 min while their table block
					// is dirty) when it allocates new ones, and the scan past thousands of
					// them (recently_deleted, find_inode_bit) made the creates of whichever
					// side ran after a removal several times slower. That was the whole
					// of the gap this benchmark once showed for gzip and zstd.
					b.StartTimer()
				}
				// the part of ns/op the extraction spent waiting in Read
				b.ReportMetric(float64(inRead.Nanoseconds())/float64(b.N), "read-ns/op")
				// CPU time of the whole job per op: the process's threads (diffid's too)
				// and the children it waited for (pigz, zstd), user + system. Steadier than
				// ns/op on a loaded machine.
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
