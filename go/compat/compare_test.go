package diffid_test

// The comparison with containers/image: every generated layer and every file of
// tests/data/peers, through every entry point of the package.

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"diffid.dev/go/diffid"
)

// tally counts the outcomes of a comparison run.
type tally struct {
	cases, agreed           atomic.Int64
	accepted, rejected      atomic.Int64
	goOnly, cOnly           atomic.Int64 // accepted by only containers/image / only the C decoder
	entryPoints, pointsOK   atomic.Int64
	mu                      sync.Mutex
	goOnlyNames, cOnlyNames []string
	toolDisagrees           []string
}

// upstreamExpects is the verdict of the reference C decoder's project on its own test file,
// from its name (see corpus/peers/README.md): xz-utils' good-* must decode and bad-*,
// unsupported-* must fail; zstd's golden-decompression--* must decode and
// golden-decompression-errors--* must fail. nil when the name says nothing.
func upstreamExpects(rel string) *bool {
	base := filepath.Base(rel)
	yes, no := true, false
	switch {
	case strings.HasPrefix(base, "good-"), strings.HasPrefix(base, "golden-decompression--"):
		return &yes
	case strings.HasPrefix(base, "bad-"), strings.HasPrefix(base, "unsupported-"),
		strings.HasPrefix(base, "golden-decompression-errors--"):
		return &no
	}
	return nil
}

func (s *tally) log(t *testing.T, what string) {
	t.Helper()
	sort.Strings(s.goOnlyNames)
	sort.Strings(s.cOnlyNames)
	t.Logf("%s: %d of %d cases agreed with containers/image under compat.md's policy (%d of %d entry-point checks); "+
		"%d accepted with identical format, media type, digests, sizes and tar verdict, %d rejected by both us and the references; "+
		"%d accepted by containers/image but rejected by the C decoder (we reject): %v; "+
		"%d rejected by containers/image but accepted by the C decoder (we reject): %d",
		what, s.agreed.Load(), s.cases.Load(), s.pointsOK.Load(), s.entryPoints.Load(),
		s.accepted.Load(), s.rejected.Load(), s.goOnly.Load(), s.goOnlyNames, s.cOnly.Load(), len(s.cOnlyNames))
	if len(s.toolDisagrees) > 0 {
		sort.Strings(s.toolDisagrees)
		t.Logf("%s: the installed decoder programs disagree with their upstream's expectation on %v; upstream's expectation was used",
			what, s.toolDisagrees)
	}
	if n := len(s.cOnlyNames); n > 0 {
		t.Logf("%s: rejected by containers/image only: %s", what, strings.Join(s.cOnlyNames, " "))
	}
	missingTools.Range(func(k, _ any) bool {
		t.Errorf("%s is not installed: the cases needing it were not checked against it", k)
		return true
	})
}

// sameAsReference reports how res differs from containers/image's answer ("" if it does not).
func sameAsReference(res *diffid.Result, ref reference) string {
	var diffs []string
	check := func(what string, got, want any) {
		if got != want {
			diffs = append(diffs, what+": got "+toString(got)+", want "+toString(want))
		}
	}
	check("format", res.Format, ref.Format)
	check("media type", res.MediaType, ref.MediaType)
	check("blob digest", res.BlobDigest, ref.BlobDigest)
	check("blob size", res.BlobSize, ref.BlobSize)
	check("DiffID", res.DiffID, ref.DiffID)
	check("diff size", res.DiffSize, ref.DiffSize)
	check("tar valid", res.Tar.Valid, ref.TarValid)
	check("tar entries", res.Tar.Entries, ref.TarEntries)
	if res.Tar.Valid != (res.Tar.Err == "") {
		diffs = append(diffs, "tar error "+toString(res.Tar.Err)+" with valid="+toString(res.Tar.Valid))
	}
	return strings.Join(diffs, "; ")
}

// compareCase checks every entry point against the expected outcome of blob and counts.
func compareCase(t *testing.T, s *tally, blob []byte, alg digest.Algorithm, opts ...diffid.Option) {
	t.Helper()
	compareVerdict(t, s, judge(blob, alg), blob, opts...)
}

func compareVerdict(t *testing.T, s *tally, v verdict, blob []byte, opts ...diffid.Option) {
	t.Helper()
	if v.contentMismatch != nil {
		t.Errorf("the references disagree: %v", v.contentMismatch)
	}
	s.cases.Add(1)
	ok := true
	for _, ep := range entryPoints {
		s.entryPoints.Add(1)
		res, err := ep.run(t, blob, opts...)
		switch {
		case v.accept() && err != nil:
			t.Errorf("%s: error %v, but %s", ep.name, err, v)
			ok = false
		case v.accept():
			if d := sameAsReference(res, v.ref); d != "" {
				t.Errorf("%s: %s", ep.name, d)
				ok = false
			} else {
				s.pointsOK.Add(1)
			}
		case err == nil:
			t.Errorf("%s: accepted (DiffID %s), but %s", ep.name, res.DiffID, v)
			ok = false
		default:
			var e *diffid.Error
			if !errors.As(err, &e) || e.Kind.Sentinel() == nil || !errors.Is(err, e.Kind.Sentinel()) {
				t.Errorf("%s: error %v (%T) is not a *diffid.Error with a sentinel", ep.name, err, err)
				ok = false
			} else {
				s.pointsOK.Add(1)
			}
		}
	}
	if !ok {
		return
	}
	s.agreed.Add(1)
	switch {
	case v.accept():
		s.accepted.Add(1)
	default:
		s.rejected.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.goOK && !v.cOK {
		s.goOnly.Add(1)
		s.goOnlyNames = append(s.goOnlyNames, t.Name())
	}
	if !v.goOK && v.cOK && !v.cMissing {
		s.cOnly.Add(1)
		s.cOnlyNames = append(s.cOnlyNames, t.Name())
	}
}

func TestGeneratedLayersAgainstContainersImage(t *testing.T) {
	var s tally
	t.Run("case", func(t *testing.T) {
		for _, c := range generatedCases() {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				compareCase(t, &s, c.blob, digest.SHA256)
			})
		}
	})
	s.log(t, "generated layers (sha256)")
	if s.cases.Load() < 300 {
		t.Errorf("only %d generated cases: compressors missing?", s.cases.Load())
	}
}

func TestGeneratedLayersSHA512(t *testing.T) {
	var s tally
	t.Run("case", func(t *testing.T) {
		for _, c := range generatedCases() {
			if !strings.HasPrefix(c.name, "small/") || strings.Count(c.name, "/") > 1 {
				continue
			}
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				compareCase(t, &s, c.blob, digest.SHA512, diffid.WithAlgorithm(digest.SHA512))
			})
		}
	})
	s.log(t, "generated layers (sha512)")
}

// The peer corpus vendored in the repository (its README gives sources and licences).
const peersDir = "../../tests/data/peers"

func peerFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(peersDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "licenses" {
			return filepath.SkipDir
		}
		if !d.IsDir() && !strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil || len(files) == 0 {
		// The corpus is part of the repository: missing is a failure, not a skip.
		t.Fatalf("peer corpus %s not readable or empty: %v", peersDir, err)
	}
	sort.Strings(files)
	return files
}

func TestPeerCorpusAgainstContainersImage(t *testing.T) {
	files := peerFiles(t)
	var s tally
	t.Run("file", func(t *testing.T) {
		for _, path := range files {
			rel, _ := filepath.Rel(peersDir, path)
			t.Run(rel, func(t *testing.T) {
				t.Parallel()
				blob, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				expect := upstreamExpects(rel)
				if detect(blob) == diffid.FormatNone {
					expect = nil // not detected as compressed: plain data for everyone
				}
				v := judgeAs(blob, digest.SHA256, expect)
				if v.cToolDisagrees {
					s.mu.Lock()
					s.toolDisagrees = append(s.toolDisagrees, rel)
					s.mu.Unlock()
				}
				compareVerdict(t, &s, v, blob)
			})
		}
	})
	s.log(t, "peer corpus")

	// compat.md's three measured cases: containers/image accepts, the C decoder rejects, we reject.
	for _, name := range []string{"xz/bad-1-lzma2-7.xz", "xz/bad-1-vli-1.xz", "zstd/golden-decompression-errors--off0.bin.zst"} {
		blob, err := os.ReadFile(filepath.Join(peersDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := referenceDigest(blob, digest.SHA256); err != nil {
			t.Errorf("%s: containers/image now rejects it (%v): update compat.md", name, err)
		}
		if res, err := diffid.DigestBytes(blob); err == nil {
			t.Errorf("%s: accepted with DiffID %s, must be rejected", name, res.DiffID)
		} else if !errors.Is(err, diffid.ErrCorrupt) {
			t.Logf("%s: rejected as %v", name, err)
		}
	}

	// containers/image's fixtures all decode to the same payload.
	want, err := os.ReadFile(filepath.Join(peersDir, "cimage", "Hello.uncompressed"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Hello.gz", "Hello.bz2", "Hello.xz", "Hello.zst"} {
		res, err := diffid.DigestFile(filepath.Join(peersDir, "cimage", name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if res.DiffID != digest.FromBytes(want) || res.DiffSize != int64(len(want)) {
			t.Errorf("%s: DiffID %s size %d, want the digest of Hello.uncompressed", name, res.DiffID, res.DiffSize)
		}
	}
}

// TestFullXz: with WithFullXz the answer for an xz blob is xz-utils' (filter chains
// included); without it, containers/image's.
func TestFullXz(t *testing.T) {
	var blobs []layerCase
	for _, path := range peerFiles(t) {
		if strings.HasSuffix(path, ".xz") {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			blobs = append(blobs, layerCase{filepath.Base(path), b})
		}
	}
	for _, c := range generatedCases() {
		if strings.Contains(c.name, "/xz-") {
			blobs = append(blobs, c)
		}
	}
	agreed, accepted, total := 0, 0, 0
	for _, c := range blobs {
		if detect(c.blob) != diffid.FormatXz {
			continue // not an xz blob at all (plain data, decoded as such)
		}
		total++
		out, ok, why, available := cDecode(diffid.FormatXz, c.blob)
		if !available {
			t.Fatal("xz is not installed: WithFullXz cannot be checked against it")
		}
		if want := upstreamExpects(c.name); want != nil && *want != ok {
			t.Errorf("%s: the installed xz says %v (%s), xz-utils' tests expect %v", c.name, ok, why, *want)
		}
		res, err := diffid.DigestBytes(c.blob, diffid.WithFullXz())
		switch {
		case ok && err != nil:
			t.Errorf("%s: xz-utils accepts it, WithFullXz gives %v", c.name, err)
		case ok && (res.DiffID != digest.FromBytes(out) || res.DiffSize != int64(len(out)) || res.BlobDigest != digest.FromBytes(c.blob)):
			t.Errorf("%s: DiffID %s size %d, xz -dc gives %s size %d", c.name, res.DiffID, res.DiffSize, digest.FromBytes(out), len(out))
		case !ok && err == nil:
			t.Errorf("%s: xz-utils rejects it (%s), WithFullXz accepts it", c.name, why)
		default:
			agreed++
			if ok {
				accepted++
			}
		}
	}
	t.Logf("full xz: %d of %d xz blobs agreed with xz-utils (%d accepted with xz -dc's DiffID)", agreed, total, accepted)
}
