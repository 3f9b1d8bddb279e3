// Package registertest checks that the digests package diffid returns can be validated and
// verified by a program that imports no hash package itself: go-digest finds a hash only
// when something in the program imports crypto/sha256 (crypto/sha512), and package diffid
// does. This test binary imports neither; the package's other tests do (and would hide it).
package registertest

import (
	"bytes"
	"compress/gzip"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"diffid.dev/go/diffid"
)

func TestReturnedDigestsValidate(t *testing.T) {
	payload := bytes.Repeat([]byte("not a tar, but a stream to digest\n"), 1000)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(payload)
	zw.Close()
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		if !alg.Available() {
			t.Errorf("%s is not available to go-digest in a program that imports diffid", alg)
			continue
		}
		res, err := diffid.DigestBytes(gz.Bytes(), diffid.WithAlgorithm(alg))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []digest.Digest{res.BlobDigest, res.DiffID} {
			if err := d.Validate(); err != nil {
				t.Errorf("%s: Validate: %v", d, err)
			}
		}
		// The digests verify the bytes they were computed from, and not others.
		for _, c := range []struct {
			d    digest.Digest
			data []byte
		}{{res.BlobDigest, gz.Bytes()}, {res.DiffID, payload}} {
			v := c.d.Verifier()
			v.Write(c.data)
			if !v.Verified() {
				t.Errorf("%s does not verify its %d bytes", c.d, len(c.data))
			}
			v = c.d.Verifier()
			v.Write(c.data[1:])
			if v.Verified() {
				t.Errorf("%s verifies other bytes", c.d)
			}
		}
	}
}
