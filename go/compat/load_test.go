package diffid_test

// Load: many goroutines digesting different layers at once, a thousand layers in a row, and
// the process-wide worker budget under both. Run under -race by `make test`.

import (
	"archive/tar"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"diffid.dev/go/diffid"
)

// workerThreads counts the process's running diffid worker threads (see workerNames).
func workerThreads(t testing.TB) int {
	return len(workerNames(t))
}

// workerNames lists the process's running diffid worker threads (every one is named
// "diffid-…"), sorted. A thread that has begun to exit (PF_EXITING, 0x4, in the flags field of
// /proc/self/task/TID/stat) is not counted: the kernel sets that flag before the futex wake
// that lets the library's join return, and lists the thread until it has reaped it, a moment
// later; counting the listing right after a call returned raced that reaping.
func workerNames(t testing.TB) []string {
	const pfExiting = 0x4
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatalf("cannot count threads: %v", err)
	}
	var names []string
	for _, task := range tasks {
		stat, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "stat"))
		if err != nil {
			continue // gone between the listing and the read
		}
		// "pid (comm) state ppid pgrp session tty_nr tpgid flags ...": comm may hold spaces.
		open, close := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
		if open < 0 || close < open {
			t.Fatalf("unexpected %s/stat: %q", task.Name(), stat)
		}
		fields := strings.Fields(string(stat[close+1:]))
		if len(fields) < 7 {
			t.Fatalf("unexpected %s/stat: %q", task.Name(), stat)
		}
		flags, err := strconv.ParseUint(fields[6], 10, 64)
		if err != nil {
			t.Fatalf("unexpected %s/stat: %q", task.Name(), stat)
		}
		if name := string(stat[open+1 : close]); strings.HasPrefix(name, "diffid-") && flags&pfExiting == 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
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
	workerThreads(t) // fails the test without /proc
	most = &atomic.Int64{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			n := int64(workerThreads(t))
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
	if left := workerThreads(t); left > 0 {
		t.Errorf("%d diffid worker threads left after every call returned", left)
	}
}

// rssKiB is the process's resident set size.
func rssKiB(t *testing.T) int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatalf("cannot measure memory: %v", err)
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
	// And two layers of several 512 KiB chunks, so that calls with threads start workers
	// (the small ones never do): the thread check below then has something to check.
	for i := range 2 {
		payload := buildTar([]tarEntry{
			{name: fmt.Sprintf("big-%d.bin", i), typeflag: tar.TypeReg, body: randomBytes(int64(100+i), 1<<20)},
			{name: fmt.Sprintf("big-%d.txt", i), typeflag: tar.TypeReg, body: textBytes(1 << 20)},
		})
		argv := [][]string{{"zstd", "-c", "-q", "-1"}, {"xz", "-c", "-0", "-T2", "--block-size=256KiB"}}[i]
		blob, ok := runTool(payload, argv...)
		if !ok {
			t.Fatalf("%s is needed", argv[0])
		}
		ref, err := referenceDigest(blob, digest.SHA256)
		if err != nil {
			t.Fatalf("big-%d: containers/image: %v", i, err)
		}
		layers = append(layers, layerCase{fmt.Sprintf("big-%d/%s", i, argv[0]), blob})
		refs = append(refs, ref)
	}
	most, stop := sampleWorkers(t)
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
	stop()
	if most.Load() == 0 {
		t.Errorf("no diffid worker thread was seen: the thread check below checks nothing")
	}
	debug.FreeOSMemory()
	at1000 := rssKiB(t)
	t.Logf("%d layers; resident %d KiB after 200, %d KiB after %d", len(layers), at200, at1000, n)
	if grew := at1000 - at200; grew > 16<<10 {
		t.Errorf("resident memory grew %d KiB from the 200th layer to the %dth", grew, n)
	}
	if left := workerThreads(t); left > 0 {
		t.Errorf("%d diffid worker threads left after every call returned", left)
	}
}

// TestStageLayouts: which stage runs on which worker thread for a layer that does not split
// (gzip), by the tokens a call gets: with 2, the decoder alone on one worker and both hashes
// on the other ("diffid-decode", "diffid-hashes"); with 3 and 4, the blob hash, the decoder
// and the DiffID stage on a thread each. Three tokens are more than a 2-core machine's
// default budget gives, and the budget is fixed once per process, so this test runs itself
// again with DIFFID_WORKERS=4; the child checks each answer against containers/image and
// requires that exactly the layout's threads ran.
func TestStageLayouts(t *testing.T) {
	if os.Getenv("DIFFID_STAGE_LAYOUTS_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStageLayouts$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "DIFFID_WORKERS=4", "DIFFID_STAGE_LAYOUTS_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestStageLayouts") {
			t.Fatalf("the child with DIFFID_WORKERS=4 failed: %v\n%s", err, out)
		}
		t.Logf("child: %s", strings.TrimSpace(string(out)))
		return
	}
	if workerBudget() != 4 {
		t.Fatalf("budget %d, want 4", workerBudget())
	}
	blob := goGzip(buildTar([]tarEntry{
		{name: "random", typeflag: tar.TypeReg, body: randomBytes(77, 3<<20)},
		{name: "text", typeflag: tar.TypeReg, body: textBytes(1 << 20)},
	}), gzipHeader(), 1)
	ref, err := referenceDigest(blob, digest.SHA256)
	if err != nil {
		t.Fatalf("containers/image: %v", err)
	}
	three := []string{"diffid-blob", "diffid-decode", "diffid-diff"}
	for _, layout := range []struct {
		threads int
		names   []string // sorted
	}{
		{2, []string{"diffid-decode", "diffid-hashes"}},
		{3, three},
		{4, three},
	} {
		w, err := diffid.NewWriter(diffid.WithThreads(layout.threads))
		if err != nil {
			t.Fatal(err)
		}
		seen, last := false, []string(nil)
		for off := 0; off < len(blob); off += 64 << 10 {
			end := min(off+64<<10, len(blob))
			if _, err := w.Write(blob[off:end]); err != nil {
				t.Fatal(err)
			}
			last = workerNames(t)
			seen = seen || slices.Equal(last, layout.names)
		}
		// A thread names itself when the scheduler first runs it; on a loaded machine every
		// chunk can be queued before that. Every stage thread waits on its channel until
		// Close, so each does get named: wait for them (30 s at most) rather than race them.
		for deadline := time.Now().Add(30 * time.Second); !seen && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
			last = workerNames(t)
			seen = slices.Equal(last, layout.names)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		res, err := w.Result()
		if err != nil {
			t.Fatal(err)
		}
		if d := sameAsReference(res, ref); d != "" {
			t.Errorf("threads %d: %s", layout.threads, d)
		}
		if !seen {
			t.Errorf("threads %d: the worker threads were never exactly %v (last seen: %v)",
				layout.threads, layout.names, last)
		}
		if left := workerNames(t); len(left) > 0 {
			t.Errorf("threads %d: %v left after Close", layout.threads, left)
		}
	}
}
