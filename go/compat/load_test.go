package diffid_test

// Load: many goroutines digesting different layers at once, a thousand layers in a row, and
// the process-wide worker budget under both. Run under -race by `make test`.

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"diffid.dev/go/diffid"
)

// workerThreads counts the process's diffid worker threads (every one is named "diffid-…");
// -1 without /proc.
func workerThreads() int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return -1
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

// workerBudget is the library's default budget: DIFFID_WORKERS, else the number of cores.
func workerBudget() int {
	if n, err := strconv.Atoi(strings.TrimSpace(os.Getenv("DIFFID_WORKERS"))); err == nil && n > 0 {
		return n
	}
	return runtime.NumCPU()
}

// sampleWorkers records the most diffid worker threads seen at once until stop is called.
func sampleWorkers(t *testing.T) (most *atomic.Int64, stop func()) {
	if workerThreads() < 0 {
		t.Skip("no /proc/self/task to count threads in")
	}
	most = &atomic.Int64{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			n := int64(workerThreads())
			if n > most.Load() {
				most.Store(n)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	return most, func() { close(done); wg.Wait() }
}

// loadLayer is layer i of the load test: its own files, 100 KiB to 1.1 MiB of them (the
// larger ones take the library's threaded path), in one of the formats by turn.
func loadLayer(i int) layerCase {
	size := (100 + (i*151)%1000) << 10
	payload := buildTar([]tarEntry{
		{name: fmt.Sprintf("layer-%d/", i), typeflag: tar.TypeDir},
		{name: fmt.Sprintf("layer-%d/random", i), typeflag: tar.TypeReg, body: randomBytes(int64(1000+i), size/2)},
		{name: fmt.Sprintf("layer-%d/text", i), typeflag: tar.TypeReg, body: textBytes(size / 2)},
	})
	type form struct {
		name string
		argv []string
	}
	forms := []form{
		{"gzip", []string{"gzip", "-c", "-1"}},
		{"zstd", []string{"zstd", "-c", "-q", "-1"}},
		{"xz-blocks", []string{"xz", "-c", "-0", "-T2", "--block-size=128KiB"}},
		{"bzip2", []string{"bzip2", "-c", "-1"}},
		{"tar", nil},
		{"zstd-frames", []string{"zstd", "-c", "-q", "-1"}},
	}
	f := forms[i%len(forms)]
	name := fmt.Sprintf("load-%d/%s", i, f.name)
	switch {
	case f.argv == nil:
		return layerCase{name, payload}
	case f.name == "zstd-frames":
		blob := concatEach(thirds(payload), func(p []byte) []byte { b, _ := runTool(p, f.argv...); return b })
		return layerCase{name, blob}
	}
	blob, ok := runTool(payload, f.argv...)
	if !ok {
		return layerCase{name + "/as-tar", payload}
	}
	return layerCase{name, blob}
}

// TestLoad64Goroutines: 64 goroutines digest 64 different layers at once, twice each,
// through every entry point with the default threads (so they compete for the budget). Each
// gets containers/image's answer, and the process never runs more diffid worker threads than
// the budget.
func TestLoad64Goroutines(t *testing.T) {
	const n = 64
	layers := make([]layerCase, n)
	refs := make([]reference, n)
	for i := range n {
		layers[i] = loadLayer(i)
		ref, err := referenceDigest(layers[i].blob, digest.SHA256)
		if err != nil {
			t.Fatalf("%s: containers/image: %v", layers[i].name, err)
		}
		refs[i] = ref
	}
	most, stop := sampleWorkers(t)
	var wg sync.WaitGroup
	errs := make(chan error, n*2)
	start := make(chan struct{})
	for g := range n {
		wg.Go(func() {
			<-start
			for round := range 2 {
				ep := entryPoints[(g+round)%len(entryPoints)]
				res, err := ep.run(t, layers[g].blob)
				if err != nil {
					errs <- fmt.Errorf("%s %s: %v", ep.name, layers[g].name, err)
				} else if d := sameAsReference(res, refs[g]); d != "" {
					errs <- fmt.Errorf("%s %s: %s", ep.name, layers[g].name, d)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	stop()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	budget := workerBudget()
	t.Logf("at most %d diffid worker threads at once, budget %d", most.Load(), budget)
	if most.Load() > int64(budget) {
		t.Errorf("%d diffid worker threads at once: over the budget of %d", most.Load(), budget)
	}
	if most.Load() == 0 {
		t.Errorf("no diffid worker thread was ever seen: the test did not load the budget")
	}
	if left := workerThreads(); left > 0 {
		t.Errorf("%d diffid worker threads left after every call returned", left)
	}
}

// rssKiB is the process's resident set size.
func rssKiB(t *testing.T) int64 {
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
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestThousandLayersFlatMemory: 1,000 small layers in a row, in every format and through
// every entry point, each right, with resident memory flat from the 200th to the 1,000th and
// no worker thread left behind. A leak of one 512 KiB chunk per call would add 400 MiB.
func TestThousandLayersFlatMemory(t *testing.T) {
	const n = 1000
	var layers []layerCase
	var refs []reference
	for i := range 4 {
		payload := buildTar([]tarEntry{
			{name: fmt.Sprintf("small-%d", i), typeflag: tar.TypeReg, body: textBytes(8<<10 + i*1000)},
			{name: fmt.Sprintf("small-%d.bin", i), typeflag: tar.TypeReg, body: randomBytes(int64(i), 4<<10)},
		})
		for _, c := range compressors {
			if blob, ok := c.fn(payload); ok {
				ref, err := referenceDigest(blob, digest.SHA256)
				if err != nil {
					continue // a damaged form: not what this test is about
				}
				layers = append(layers, layerCase{fmt.Sprintf("small-%d/%s", i, c.name), blob})
				refs = append(refs, ref)
			}
		}
	}
	if len(layers) < 12 {
		t.Fatalf("only %d small layers", len(layers))
	}
	var at200 int64
	for i := range n {
		k := i % len(layers)
		ep := entryPoints[i%len(entryPoints)]
		res, err := ep.run(t, layers[k].blob, diffid.WithThreads(1+i%3))
		if err != nil {
			t.Fatalf("layer %d (%s) via %s: %v", i, layers[k].name, ep.name, err)
		}
		if d := sameAsReference(res, refs[k]); d != "" {
			t.Fatalf("layer %d (%s) via %s: %s", i, layers[k].name, ep.name, d)
		}
		if i == 199 {
			debug.FreeOSMemory() // what earlier tests left in Go's heap goes back first
			at200 = rssKiB(t)
		}
	}
	debug.FreeOSMemory()
	at1000 := rssKiB(t)
	t.Logf("%d layers; resident %d KiB after 200, %d KiB after %d", len(layers), at200, at1000, n)
	if grew := at1000 - at200; grew > 16<<10 {
		t.Errorf("resident memory grew %d KiB from the 200th layer to the %dth", grew, n)
	}
	if left := workerThreads(); left > 0 {
		t.Errorf("%d diffid worker threads left after every call returned", left)
	}
}
