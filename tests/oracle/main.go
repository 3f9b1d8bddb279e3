// Command oracle is the test-only reference for diffid: it computes a layer
// blob's digest and DiffID with containers/image's own code, following the
// code path of tarball/tarball_src.go (NewImageSource) in containers/image
// >= v5.34.3, where DetectCompressionFormat picks the decompressor and the
// DiffID is the digest of everything io.Copy reads out of it.
//
// Usage: oracle [-algorithm sha256|sha512] FILE...   ("-" reads stdin)
//        oracle image -out DIR ... LAYER...          (see image.go)
//
// One JSON object per line per file; exit status 0 if every file succeeded,
// 1 if any failed, 2 on a usage error.
package main

import (
	"archive/tar"
	"bytes"
	_ "crypto/sha256" // register the hashes with go-digest
	_ "crypto/sha512"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/containers/image/v5/pkg/compression"
	compressionTypes "github.com/containers/image/v5/pkg/compression/types"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

type tarVerdict struct {
	Valid   bool    `json:"valid"`
	Entries int     `json:"entries"`
	Error   *string `json:"error"`
}

type success struct {
	File       string     `json:"file"`
	Format     string     `json:"format"`
	MediaType  string     `json:"media_type"`
	BlobDigest string     `json:"blob_digest"`
	BlobSize   int64      `json:"blob_size"`
	DiffID     string     `json:"diff_id"`
	DiffSize   int64      `json:"diff_size"`
	Tar        tarVerdict `json:"tar"`
}

type failure struct {
	File   string  `json:"file"`
	Format *string `json:"format"` // null if the input could not even be opened
	Error  string  `json:"error"`
}

// counter is an io.Writer that only counts bytes.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// formatName maps containers/image's algorithm names to ours.
func formatName(algo compression.Algorithm, compressed bool) string {
	if !compressed {
		return "none"
	}
	switch algo.Name() {
	case compressionTypes.GzipAlgorithmName:
		return "gzip"
	case compressionTypes.Bzip2AlgorithmName:
		return "bzip2"
	case compressionTypes.XzAlgorithmName:
		return "xz"
	case compressionTypes.ZstdAlgorithmName, compressionTypes.ZstdChunkedAlgorithmName:
		return "zstd"
	default:
		return "unknown:" + algo.Name()
	}
}

// tarCheck parses the decompressed stream with archive/tar and then drains
// the pipe, so the digesting side never blocks on it.
func tarCheck(pr *io.PipeReader, out chan<- tarVerdict) {
	v := tarVerdict{Valid: true}
	fail := func(err error) {
		msg := err.Error()
		v.Valid = false
		v.Error = &msg
	}
	tr := tar.NewReader(pr)
	for {
		_, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fail(err)
			break
		}
		v.Entries++
		if _, err := io.Copy(io.Discard, tr); err != nil {
			fail(err)
			break
		}
	}
	_, _ = io.Copy(io.Discard, pr)
	out <- v
}

// digestLayer mirrors tarball_src.go's per-file loop body. input is the raw
// blob; size is what the transport records as the blob size (file size from
// Stat, or len(stdin)).
func digestLayer(name string, input io.Reader, size int64, alg digest.Algorithm) (any, bool) {
	// Set up to digest the file as it is.
	blobIDdigester := alg.Digester()
	blobRead := &counter{}
	var reader io.Reader = io.TeeReader(input, io.MultiWriter(blobIDdigester.Hash(), blobRead))

	var layerType, formatStr string
	var diffIDdigester digest.Digester
	diffRead := blobRead
	var tarResult tarVerdict

	err := func() error { // A scope for defer, as in tarball_src.go
		format, decompressor, reader, err := compression.DetectCompressionFormat(reader)
		if err != nil {
			return err
		}
		formatStr = formatName(format, decompressor != nil)
		if decompressor != nil {
			uncompressed, err := decompressor(reader)
			if err != nil {
				return err
			}
			defer uncompressed.Close()
			// It is compressed, so the diffID is the digest of the uncompressed version
			diffIDdigester = alg.Digester()
			diffRead = &counter{}
			reader = io.TeeReader(uncompressed, io.MultiWriter(diffIDdigester.Hash(), diffRead))
			switch format.Name() {
			case compressionTypes.GzipAlgorithmName:
				layerType = imgspecv1.MediaTypeImageLayerGzip
			case compressionTypes.ZstdAlgorithmName:
				layerType = imgspecv1.MediaTypeImageLayerZstd
			default: // tarball_src.go: "This is incorrect, but we have no good options, and it is what this transport was historically doing."
				layerType = imgspecv1.MediaTypeImageLayerGzip
			}
		} else {
			// It is not compressed, so the diffID and the blobID are going to be the same
			diffIDdigester = blobIDdigester
			layerType = imgspecv1.MediaTypeImageLayer
		}

		// Oracle addition: feed the same decompressed bytes to archive/tar.
		// It only observes the stream; it never changes what is digested.
		pr, pw := io.Pipe()
		verdict := make(chan tarVerdict, 1)
		go tarCheck(pr, verdict)
		_, copyErr := io.Copy(io.Discard, io.TeeReader(reader, pw))
		if copyErr != nil {
			pw.CloseWithError(copyErr)
		} else {
			pw.Close()
		}
		tarResult = <-verdict

		if copyErr != nil {
			return fmt.Errorf("error reading %q: %w", name, copyErr)
		}
		return nil
	}()
	if err != nil {
		f := failure{File: name, Error: err.Error()}
		if formatStr != "" {
			f.Format = &formatStr
		}
		return f, false
	}

	if blobRead.n != size {
		// Would mean containers/image's blob digest covers only part of the
		// file. Never observed; make it loud rather than silently diverge.
		fmt.Fprintf(os.Stderr, "oracle: warning: %s: decoder consumed %d of %d bytes; blob_digest covers only the consumed bytes, as in containers/image\n", name, blobRead.n, size)
	}

	return success{
		File:       name,
		Format:     formatStr,
		MediaType:  layerType,
		BlobDigest: blobIDdigester.Digest().String(),
		BlobSize:   size,
		DiffID:     diffIDdigester.Digest().String(),
		DiffSize:   diffRead.n,
		Tar:        tarResult,
	}, true
}

func processFile(name string, alg digest.Algorithm, stdin func() ([]byte, error)) (any, bool) {
	if name == "-" {
		data, err := stdin()
		if err != nil {
			return failure{File: name, Error: err.Error()}, false
		}
		return digestLayer(name, bytes.NewReader(data), int64(len(data)), alg)
	}
	file, err := os.Open(name)
	if err != nil {
		return failure{File: name, Error: err.Error()}, false
	}
	defer file.Close()
	fileinfo, err := file.Stat()
	if err != nil {
		return failure{File: name, Error: fmt.Sprintf("error reading size of %q: %v", name, err)}, false
	}
	if !fileinfo.Mode().IsRegular() {
		return failure{File: name, Error: "not a regular file"}, false
	}
	return digestLayer(name, file, fileinfo.Size(), alg)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "image" {
		if err := imageMain(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "oracle image: %v\n", err)
			os.Exit(1)
		}
		return
	}
	algName := flag.String("algorithm", "sha256", "digest algorithm: sha256 or sha512")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [-algorithm sha256|sha512] FILE...   (\"-\" is stdin)\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	var alg digest.Algorithm
	switch *algName {
	case "sha256":
		alg = digest.SHA256
	case "sha512":
		alg = digest.SHA512
	default:
		fmt.Fprintf(os.Stderr, "oracle: unsupported -algorithm %q\n", *algName)
		os.Exit(2)
	}
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}

	// stdin is read once, fully, like `podman import -` / the tarball transport.
	var stdinData []byte
	var stdinErr error
	stdinRead := false
	stdin := func() ([]byte, error) {
		if !stdinRead {
			stdinData, stdinErr = io.ReadAll(os.Stdin)
			stdinRead = true
		}
		return stdinData, stdinErr
	}

	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	allOK := true
	for _, name := range flag.Args() {
		res, ok := processFile(name, alg, stdin)
		allOK = allOK && ok
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(os.Stderr, "oracle: %v\n", errors.Unwrap(err))
			os.Exit(2)
		}
	}
	if !allOK {
		os.Exit(1)
	}
}
