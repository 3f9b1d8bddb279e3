package diffid

// #include <stdlib.h>
// #include "diffid.h"
import "C"

import (
	"math"

	digest "github.com/opencontainers/go-digest"
)

// Format is the compression format detected from a blob's first bytes.
type Format string

// The formats. The names are those of the C library (diffid_result_format_name) and of
// containers/image's pkg/compression/types, except that containers/image spells xz "Xz"
// (see Format.AlgorithmName).
const (
	FormatNone  Format = "none" // not compressed: the DiffID is the blob digest
	FormatGzip  Format = "gzip"
	FormatBzip2 Format = "bzip2"
	FormatXz    Format = "xz"
	FormatZstd  Format = "zstd"
)

// AlgorithmName returns containers/image's name of the format's compression algorithm
// (compressiontypes.GzipAlgorithmName, ...): "gzip", "bzip2", "Xz", "zstd", and "" for
// FormatNone.
func (f Format) AlgorithmName() string {
	switch f {
	case FormatNone:
		return ""
	case FormatXz:
		return "Xz"
	}
	return string(f)
}

// Compressed reports whether f is a compression format (anything but FormatNone).
func (f Format) Compressed() bool { return f != FormatNone }

// The OCI layer media types an importer records, as containers/image's tarball transport
// (v5.34.3 and later) chooses them.
const (
	MediaTypeLayer     = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
)

// Result is what an importer records for one layer blob.
type Result struct {
	// Format is the compression format, detected from the first bytes exactly as
	// containers/image's compression.DetectCompressionFormat does.
	Format Format
	// MediaType is the OCI layer media type containers/image's tarball transport records:
	// +gzip for gzip, +zstd for zstd, plain tar when uncompressed, and (as containers/image
	// does, "incorrect, but we have no good options") +gzip for bzip2 and xz.
	MediaType string
	// BlobDigest and BlobSize cover every raw byte of the blob.
	BlobDigest digest.Digest
	BlobSize   int64
	// DiffID and DiffSize cover the whole decompressed stream, tar padding and any bytes
	// after the end-of-archive marker included. For FormatNone they equal the blob's.
	DiffID   digest.Digest
	DiffSize int64
	// Tar is the verdict of Go's archive/tar rules on the decompressed stream.
	Tar Tar
	// Warnings are what is no error but an importer may want to know, in the order found
	// (each kind once); nil for most layers.
	Warnings []Warning
}

// Warning is something surprising about a layer that is not an error: containers/image
// accepts the layer and the digests do not depend on it.
type Warning struct {
	// Code is stable: "empty_layer" (no tar entries), "compressed_after_skippable_frame"
	// (a zstd frame behind a leading skippable frame, as pzstd writes: the format stays
	// FormatNone, as in containers/image), "extractor_dependent_entry" (a GNU sparse or
	// dump-directory entry, which some extractors do not apply), "data_after_end_marker"
	// (non-zero bytes after the tar end marker). New codes may come.
	Code string
	// Message says what and where, for a person.
	Message string
}

// Tar is the tar verdict on a layer's decompressed stream.
type Tar struct {
	// Valid: archive/tar reads the stream to its end (or end-of-archive marker) without error.
	Valid bool
	// Entries is the number of headers read (up to the error, when not Valid).
	Entries int64
	// EndMarker: the stream has the two zero blocks that end a tar archive.
	EndMarker bool
	// Err says what was wrong when not Valid, and is "" otherwise.
	Err string
}

var formatsByNumber = [...]Format{FormatNone, FormatGzip, FormatBzip2, FormatXz, FormatZstd}

func goString(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// takeResult turns what a diffid_digest_* or diffid_stream_finish call returned into Go
// values, and frees r. r may be nil (then code alone describes the failure).
func takeResult(code C.diffid_code, r *C.diffid_result) (*Result, error) {
	if r == nil {
		c := Code(code)
		if c == CodeOK {
			c = CodeInternal
		}
		return nil, newError(c, "the library returned no result ("+c.String()+")")
	}
	defer C.diffid_result_free(r)
	if c := Code(C.diffid_result_code(r)); c != CodeOK {
		return nil, resultError(c, r)
	}
	if c := Code(code); c != CodeOK { // a result that says OK under a failing call: trust the call
		return nil, resultError(c, r)
	}
	res := &Result{
		MediaType:  goString(C.diffid_result_media_type(r)),
		BlobDigest: digest.Digest(goString(C.diffid_result_blob_digest(r))),
		BlobSize:   int64(C.diffid_result_blob_size(r)),
		DiffID:     digest.Digest(goString(C.diffid_result_diff_id(r))),
		DiffSize:   int64(C.diffid_result_diff_size(r)),
		Tar: Tar{
			Valid:     bool(C.diffid_result_tar_valid(r)),
			Entries:   int64(C.diffid_result_tar_entries(r)),
			EndMarker: bool(C.diffid_result_tar_end_marker(r)),
			Err:       goString(C.diffid_result_tar_error(r)),
		},
	}
	for i := C.size_t(0); i < C.diffid_result_warning_count(r); i++ {
		res.Warnings = append(res.Warnings, Warning{
			Code:    goString(C.diffid_result_warning_code(r, i)),
			Message: goString(C.diffid_result_warning(r, i)),
		})
	}
	if n := int(C.diffid_result_format(r)); n >= 0 && n < len(formatsByNumber) {
		res.Format = formatsByNumber[n]
	} else {
		res.Format = Format(goString(C.diffid_result_format_name(r)))
	}
	return res, nil
}

// resultError is the error an error result r holds, as code c.
func resultError(c Code, r *C.diffid_result) *Error {
	e := newError(c, goString(C.diffid_result_error(r)))
	e.Format = Format(goString(C.diffid_result_format_name(r)))
	if off := uint64(C.diffid_result_error_offset(r)); off != uint64(C.DIFFID_OFFSET_UNKNOWN) && off <= math.MaxInt64 {
		e.Offset = int64(off)
	}
	return e
}

// cName is the C library's name of c (diffid_code_name), "" for a number that is no code.
// The tests check that Code.String agrees with it.
func (c Code) cName() string {
	return goString(C.diffid_code_name(C.diffid_code(c)))
}
