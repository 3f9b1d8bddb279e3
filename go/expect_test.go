package diffid_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"diffid.dev/go/diffid"
)

// TestExpectedDigests: the digests Go's own sha256 computes pass; the DiffID expected as
// the blob digest (the old tarball-transport mix-up) and the other way round fail with
// ErrDigestMismatch and no Result, through DigestBytes and through a Writer; an invalid
// digest is refused by the option itself.
func TestExpectedDigests(t *testing.T) {
	tarData := []byte(strings.Repeat("layer bytes ", 100000))
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(tarData); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	blob := buf.Bytes()
	blobDigest := digest.FromBytes(blob)
	diffID := digest.FromBytes(tarData)

	res, err := diffid.DigestBytes(blob, diffid.WithExpectBlobDigest(blobDigest), diffid.WithExpectDiffID(diffID))
	if err != nil {
		t.Fatalf("matching digests: %v", err)
	}
	if res.DiffID != diffID || res.BlobDigest != blobDigest {
		t.Fatalf("got %s %s", res.BlobDigest, res.DiffID)
	}

	for _, opt := range []diffid.Option{diffid.WithExpectBlobDigest(diffID), diffid.WithExpectDiffID(blobDigest)} {
		res, err := diffid.DigestBytes(blob, opt)
		if !errors.Is(err, diffid.ErrDigestMismatch) || res != nil {
			t.Fatalf("mismatch: got %v, %v; want ErrDigestMismatch and no result", res, err)
		}
		w, err := diffid.NewWriter(opt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(blob); err != nil && !errors.Is(err, diffid.ErrDigestMismatch) {
			t.Fatal(err)
		}
		if err := w.Close(); !errors.Is(err, diffid.ErrDigestMismatch) {
			t.Fatalf("Writer: got %v, want ErrDigestMismatch", err)
		}
	}
	if diffid.CodeDigestMismatch.String() != "digest_mismatch" {
		t.Fatalf("name %q", diffid.CodeDigestMismatch.String())
	}

	for _, bad := range []digest.Digest{"sha256:abc", "nope", ""} {
		if _, err := diffid.DigestBytes(blob, diffid.WithExpectDiffID(bad)); !errors.Is(err, diffid.ErrInvalidArgument) {
			t.Fatalf("%q: got %v, want ErrInvalidArgument", bad, err)
		}
	}
}
