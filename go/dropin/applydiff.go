// Package dropin shows, and tests against containers/storage v1.59.1 itself, that
// diffid.DecompressStream drops in where containers/storage calls its own
// archive.DecompressStream: the same extracted trees, the same DiffIDs, and ApplyDiff, the
// one-pass shape of containers/storage's layerStore.applyDiffWithOptions, records what
// containers/storage records for a layer.
//
// The module is separate from diffid.dev/go/diffid so that the package's users never
// download containers/storage. Its tests build containers/storage without the btrfs
// driver's cgo (-tags exclude_graphdriver_btrfs, as `make test-go` passes), the way
// Podman is commonly built.
package dropin

import (
	"fmt"
	"io"

	"github.com/containers/storage/pkg/archive"
	digest "github.com/opencontainers/go-digest"

	"diffid.dev/go/diffid"
)

// Recorded is what containers/storage records for a layer it applies (the Layer fields of
// the same names) and what ApplyDiff returns.
type Recorded struct {
	// CompressedDigest and CompressedSize cover every byte of the blob.
	CompressedDigest digest.Digest
	CompressedSize   int64
	// UncompressedDigest (the DiffID) and UncompressedSize cover the whole decoded stream.
	UncompressedDigest digest.Digest
	UncompressedSize   int64
	// CompressionType is containers/storage's name of the format (archive.Compression).
	CompressionType archive.Compression
	// Size is what containers/storage's driver reports for the applied layer: the bytes of
	// the regular files' contents (archive.UnpackLayer's count).
	Size int64
}

// ApplyDiff extracts the layer blob from into the directory dest, in one pass, and records
// its digests and sizes. It does what containers/storage's applyDiffWithOptions does (tee
// the blob into a digester and a counter, archive.DecompressStream, tee the decoded stream
// into a second digester and counter, apply it with the driver's
// archive.ApplyUncompressedLayer), with one diffid.DecompressStream in place of the tees and
// the decompressor: the decoders run on the library's threads and the digests are computed
// beside them.
//
// opts are TarOptions for archive.ApplyUncompressedLayer (nil: the defaults, which need
// root to set owners; pass IgnoreChownErrors or ID mappings when unprivileged). On any
// error nothing is recorded; what was extracted before it stays in dest, as with
// containers/storage, whose caller removes the layer.
func ApplyDiff(dest string, from io.Reader, opts *archive.TarOptions) (Recorded, error) {
	return applyDiff(dest, from, opts, nil)
}

// applyDiff is ApplyDiff; wrap, when not nil, wraps the decoded stream (the benchmark
// times the reads with it).
func applyDiff(dest string, from io.Reader, opts *archive.TarOptions, wrap func(io.Reader) io.Reader) (Recorded, error) {
	rd, err := diffid.DecompressStream(from)
	if err != nil {
		return Recorded{}, err
	}
	defer rd.Close() // after an error: stops the decoders and joins their threads
	if opts == nil {
		opts = &archive.TarOptions{}
	}
	var stream io.Reader = rd
	if wrap != nil {
		stream = wrap(rd)
	}
	size, err := archive.ApplyUncompressedLayer(dest, stream, opts)
	if err != nil {
		return Recorded{}, err
	}
	// The tar reader stops at the end-of-archive marker; the DiffID covers the whole
	// stream (containers/storage's tar-split reads the rest too), and Result needs io.EOF,
	// which comes only after the library has verified every check of the blob.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return Recorded{}, err
	}
	res, err := rd.Result()
	if err != nil {
		return Recorded{}, err
	}
	ct, err := compressionType(res.Format)
	if err != nil {
		return Recorded{}, err
	}
	return Recorded{
		CompressedDigest:   res.BlobDigest,
		CompressedSize:     res.BlobSize,
		UncompressedDigest: res.DiffID,
		UncompressedSize:   res.DiffSize,
		CompressionType:    ct,
		Size:               size,
	}, nil
}

// compressionType maps diffid's format to containers/storage's archive.Compression.
func compressionType(f diffid.Format) (archive.Compression, error) {
	switch f {
	case diffid.FormatNone:
		return archive.Uncompressed, nil
	case diffid.FormatGzip:
		return archive.Gzip, nil
	case diffid.FormatBzip2:
		return archive.Bzip2, nil
	case diffid.FormatXz:
		return archive.Xz, nil
	case diffid.FormatZstd:
		return archive.Zstd, nil
	}
	return 0, fmt.Errorf("format %q has no containers/storage name", f)
}
