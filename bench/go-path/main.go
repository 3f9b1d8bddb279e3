// Command gopath is the Go peer `make bench` times diffid against: a layer's blob digest
// and DiffID computed the way containers/image computes them (tarball/tarball_src.go,
// v5.34.3 and later), serially on one goroutine, with no tar parsing:
//
//  1. tee the raw bytes into the blob digester (go-digest, crypto/sha256);
//  2. compression.DetectCompressionFormat picks the decompressor (pgzip, compress/bzip2,
//     ulikunitz/xz, klauspost zstd, at the versions containers/image v5.36.2 pins);
//  3. io.Copy(io.Discard, ...) through a tee into the DiffID digester.
//
// tests/oracle does the same and also parses the tar; this variant leaves that out, so it
// measures exactly what an image import spends on the two digests.
//
// Usage: gopath FILE...   prints "BLOB_DIGEST DIFF_ID FILE" per file.
package main

import (
	_ "crypto/sha256" // register SHA-256 with go-digest
	"fmt"
	"io"
	"os"

	"github.com/containers/image/v5/pkg/compression"
	digest "github.com/opencontainers/go-digest"
)

func digestFile(name string) (digest.Digest, digest.Digest, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	blob := digest.Canonical.Digester()
	var reader io.Reader = io.TeeReader(f, blob.Hash())
	_, decompressor, reader, err := compression.DetectCompressionFormat(reader)
	if err != nil {
		return "", "", err
	}
	diff := blob
	if decompressor != nil {
		uncompressed, err := decompressor(reader)
		if err != nil {
			return "", "", err
		}
		defer uncompressed.Close()
		diff = digest.Canonical.Digester()
		reader = io.TeeReader(uncompressed, diff.Hash())
	}
	if _, err := io.Copy(io.Discard, reader); err != nil {
		return "", "", fmt.Errorf("error reading %q: %w", name, err)
	}
	return blob.Digest(), diff.Digest(), nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gopath FILE...")
		os.Exit(2)
	}
	status := 0
	for _, name := range os.Args[1:] {
		b, d, err := digestFile(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gopath: %s: %v\n", name, err)
			status = 1
			continue
		}
		fmt.Printf("%s %s %s\n", b, d, name)
	}
	os.Exit(status)
}
