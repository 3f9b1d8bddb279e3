package diffid_test

// The references the tests compare against:
//
//   - containers/image itself: referenceDigest follows tarball/tarball_src.go of
//     containers/image >= v5.34.3 (the version with the fixed DiffID), exactly as
//     tests/oracle/main.go does, in process: DetectCompressionFormat picks the decompressor,
//     the blob digest is teed off the raw bytes, the DiffID off everything io.Copy reads out
//     of the decompressor, and archive/tar reads the same decompressed stream for the tar
//     verdict;
//   - the format's reference C decoder, run as its command-line program (gzip, bzip2, xz,
//     zstd), which says whether the stream is valid at all.
//
// compat.md's policy: accept exactly what both accept.

import (
	"archive/tar"
	"bytes"
	_ "crypto/sha256" // register the hashes with go-digest
	_ "crypto/sha512"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"

	"github.com/containers/image/v5/pkg/compression"
	compressiontypes "github.com/containers/image/v5/pkg/compression/types"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"diffid.dev/go/diffid"
)

// reference is containers/image's answer for one blob.
type reference struct {
	Format     diffid.Format
	MediaType  string
	BlobDigest digest.Digest
	BlobSize   int64
	DiffID     digest.Digest
	DiffSize   int64
	TarValid   bool
	TarEntries int64
	TarErr     string
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// referenceDigest computes what containers/image's tarball transport records for blob.
// On failure it still returns the detected format (if detection got that far).
func referenceDigest(blob []byte, alg digest.Algorithm) (reference, error) {
	var ref reference
	blobDigester := alg.Digester()
	blobCount := &countingWriter{}
	var reader io.Reader = io.TeeReader(bytes.NewReader(blob), io.MultiWriter(blobDigester.Hash(), blobCount))

	var diffDigester digest.Digester
	diffCount := blobCount
	err := func() error { // A scope for defer, as in tarball_src.go
		format, decompressor, reader, err := compression.DetectCompressionFormat(reader)
		if err != nil {
			return err
		}
		if decompressor != nil {
			switch format.Name() {
			case compressiontypes.GzipAlgorithmName:
				ref.Format, ref.MediaType = diffid.FormatGzip, imgspecv1.MediaTypeImageLayerGzip
			case compressiontypes.ZstdAlgorithmName:
				ref.Format, ref.MediaType = diffid.FormatZstd, imgspecv1.MediaTypeImageLayerZstd
			case compressiontypes.Bzip2AlgorithmName:
				ref.Format, ref.MediaType = diffid.FormatBzip2, imgspecv1.MediaTypeImageLayerGzip
			case compressiontypes.XzAlgorithmName:
				ref.Format, ref.MediaType = diffid.FormatXz, imgspecv1.MediaTypeImageLayerGzip
			default:
				return fmt.Errorf("unexpected format %q", format.Name())
			}
			uncompressed, err := decompressor(reader)
			if err != nil {
				return err
			}
			defer uncompressed.Close()
			diffDigester = alg.Digester()
			diffCount = &countingWriter{}
			reader = io.TeeReader(uncompressed, io.MultiWriter(diffDigester.Hash(), diffCount))
		} else {
			ref.Format, ref.MediaType = diffid.FormatNone, imgspecv1.MediaTypeImageLayer
			diffDigester = blobDigester
		}

		// archive/tar reads the same bytes; it never changes what is digested.
		pr, pw := io.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			ref.TarValid = true
			tr := tar.NewReader(pr)
			for {
				_, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err == nil {
					ref.TarEntries++
					_, err = io.Copy(io.Discard, tr)
				}
				if err != nil {
					ref.TarValid, ref.TarErr = false, err.Error()
					break
				}
			}
			_, _ = io.Copy(io.Discard, pr)
		}()
		_, copyErr := io.Copy(io.Discard, io.TeeReader(reader, pw))
		pw.CloseWithError(copyErr)
		<-done
		return copyErr
	}()
	if err != nil {
		return ref, err
	}
	if blobCount.n != int64(len(blob)) {
		// containers/image would hash only part of the blob; never observed, make it loud.
		return ref, fmt.Errorf("reference consumed %d of %d bytes", blobCount.n, len(blob))
	}
	ref.BlobDigest, ref.BlobSize = blobDigester.Digest(), int64(len(blob))
	ref.DiffID, ref.DiffSize = diffDigester.Digest(), diffCount.n
	return ref, nil
}

// cTools are the reference C decoders' command-line programs. --memory=512MB raises zstd's
// default 128 MiB window limit to the 512 MiB that containers/image allows.
var cTools = map[diffid.Format][]string{
	diffid.FormatGzip:  {"gzip", "-dc"},
	diffid.FormatBzip2: {"bzip2", "-dc"},
	diffid.FormatXz:    {"xz", "-dc"},
	diffid.FormatZstd:  {"zstd", "-dc", "--memory=512MB"},
}

var missingTools sync.Map // tool name -> struct{}, reported once

// cDecode runs the reference C decoder of format f on blob. ok is false when the program
// fails or warns (gzip's and bzip2's "trailing garbage ignored", xz's "unsupported check"):
// a warning means the tool did not accept the stream as it is. For FormatNone it returns
// blob. available is false when the program is not installed.
func cDecode(f diffid.Format, blob []byte) (out []byte, ok bool, why string, available bool) {
	if f == diffid.FormatNone {
		return blob, true, "", true
	}
	argv := cTools[f]
	if _, err := exec.LookPath(argv[0]); err != nil {
		missingTools.Store(argv[0], struct{}{})
		return nil, false, "", false
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(blob)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	msg := strings.TrimSpace(stderr.String())
	if err != nil || msg != "" {
		if msg == "" && err != nil {
			msg = err.Error()
		}
		return nil, false, msg, true
	}
	return stdout.Bytes(), true, "", true
}

// verdict is the expected outcome of one case under compat.md's policy.
type verdict struct {
	ref      reference // containers/image's answer (valid when goOK)
	goOK     bool
	goErr    error
	cOK      bool
	cWhy     string
	cOut     []byte
	cMissing bool
	// contentMismatch: both accept but decode different bytes (never expected).
	contentMismatch error
	// cToolDisagrees: the installed program's verdict differs from upstream's expectation.
	cToolDisagrees bool
}

// accept: both containers/image and the reference C decoder accept the blob.
func (v verdict) accept() bool { return v.goOK && v.cOK }

func (v verdict) String() string {
	g := "accepts"
	if !v.goOK {
		g = "rejects (" + v.goErr.Error() + ")"
	}
	c := "accepts"
	if v.cMissing {
		c = "not installed"
	} else if !v.cOK {
		c = "rejects (" + v.cWhy + ")"
	}
	return "containers/image " + g + "; C decoder " + c
}

// judge computes the expected outcome for blob with the default options.
func judge(blob []byte, alg digest.Algorithm) verdict { return judgeAs(blob, alg, nil) }

// judgeAs is judge with the reference C decoder's verdict given by the caller (upstream's
// expectation for its own test files) instead of the installed program's; the program
// still provides the decoded bytes when it accepts.
func judgeAs(blob []byte, alg digest.Algorithm, cExpect *bool) verdict {
	var v verdict
	v.ref, v.goErr = referenceDigest(blob, alg)
	v.goOK = v.goErr == nil
	format := v.ref.Format
	if format == "" {
		format = detect(blob)
	}
	var available bool
	v.cOut, v.cOK, v.cWhy, available = cDecode(format, blob)
	if !available {
		v.cMissing = true
		v.cOK = true // only containers/image's verdict is known
	}
	if cExpect != nil {
		if !*cExpect {
			v.cWhy = "upstream's test expects a failure"
			if v.cOK {
				v.cWhy += " (the installed program accepts it)"
			}
		}
		if v.cOK != *cExpect && !v.cMissing {
			v.cToolDisagrees = true
		}
		v.cOK, v.cMissing = *cExpect, false
		if !v.cOK || v.cToolDisagrees {
			v.cOut = nil
		}
	}
	if v.cOut == nil && v.cOK {
		return v // nothing to cross-check the content with
	}
	if v.goOK && v.cOK && !v.cMissing && format != diffid.FormatNone {
		// Both accept: they must also agree on the bytes, or the references themselves differ.
		if got := alg.FromBytes(v.cOut); got != v.ref.DiffID {
			v.contentMismatch = fmt.Errorf("containers/image's DiffID %s, the C decoder's output %s", v.ref.DiffID, got)
		}
	}
	return v
}

// detect mirrors compat.md's detection table (used only when containers/image failed
// before telling the format).
func detect(b []byte) diffid.Format {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b, 0x08}):
		return diffid.FormatGzip
	case bytes.HasPrefix(b, []byte("BZh")):
		return diffid.FormatBzip2
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return diffid.FormatXz
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return diffid.FormatZstd
	}
	return diffid.FormatNone
}
