package diffid

// #include <stdlib.h>
// #include "diffid.h"
import "C"

import (
	"math"
	"unsafe"

	digest "github.com/opencontainers/go-digest"
)

// BLAKE3 is the go-digest name of the BLAKE3 algorithm ("blake3"), as registered by
// github.com/opencontainers/go-digest/blake3. go-digest v1.0.0 has no constant for it and
// cannot check such a digest (Validate returns digest.ErrDigestUnsupported); the package
// registers the hashes of SHA-256 and SHA-512 digests with go-digest (it imports
// crypto/sha256 and crypto/sha512), so those validate and verify in any program.
const BLAKE3 digest.Algorithm = "blake3"

// An Option changes how a layer is digested. Options validate their arguments: a bad value
// makes the function it is passed to return an error wrapping ErrInvalidArgument.
type Option func(*config) error

// config is the Go side of diffid_options. The zero value is the library's default, which is
// what Podman computes.
type config struct {
	algorithm   digest.Algorithm // "" means SHA-256
	lenientGzip bool
	fullXz      bool
	maxSize     uint64 // 0: no limit
	memoryLimit uint64 // 0: the library's default (1 GiB)
	threads     uint32 // 0: one per core
	requireTar  bool
	expectBlob  digest.Digest // "": no check
	expectDiff  digest.Digest // "": no check
}

// WithAlgorithm selects the digest algorithm of both the blob digest and the DiffID:
// digest.SHA256 (the default, digest.Canonical), digest.SHA512 or BLAKE3.
func WithAlgorithm(alg digest.Algorithm) Option {
	return func(c *config) error {
		switch alg {
		case digest.SHA256, digest.SHA512, BLAKE3:
			c.algorithm = alg
			return nil
		}
		return errorf(CodeInvalidArgument, "unsupported digest algorithm %q (want sha256, sha512 or blake3)", string(alg))
	}
}

// WithLenientGzip accepts (and ignores) bytes after the last gzip member, as pigz, igzip and
// moby do. Off by default, because containers/image rejects such blobs.
func WithLenientGzip() Option {
	return func(c *config) error { c.lenientGzip = true; return nil }
}

// WithFullXz accepts xz filter chains other than a lone LZMA2 (BCJ, delta, ARM64, ...) and
// decodes them as the xz program does. Off by default, because containers/image rejects them.
func WithFullXz() Option {
	return func(c *config) error { c.fullXz = true; return nil }
}

// WithMaxSize fails the digest with ErrLimitExceeded once the decoded stream exceeds n
// bytes. 0 means no limit (as without this option, and as 0 means in C, Rust and the CLI);
// n must not be negative.
func WithMaxSize(n int64) Option {
	return func(c *config) error {
		if n < 0 {
			return errorf(CodeInvalidArgument, "maximum size must not be negative, not %d", n)
		}
		c.maxSize = uint64(n)
		return nil
	}
}

// WithMemoryLimit caps the memory a decoder may allocate for its window or dictionary, in
// bytes; a stream that needs more fails with ErrLimitExceeded. The default is 1 GiB, and 0
// means the default (as in C, Rust and the CLI); n must not be negative. (zstd windows are
// limited to 512 MiB regardless, as in containers/image.)
func WithMemoryLimit(n int64) Option {
	return func(c *config) error {
		if n < 0 {
			return errorf(CodeInvalidArgument, "memory limit must not be negative, not %d", n)
		}
		c.memoryLimit = uint64(n)
		return nil
	}
}

// WithThreads sets the number of worker threads. 0, the default, means one per core; n must
// not be negative.
func WithThreads(n int) Option {
	return func(c *config) error {
		if n < 0 || uint64(n) > math.MaxUint32 {
			return errorf(CodeInvalidArgument, "thread count %d out of range", n)
		}
		c.threads = uint32(n)
		return nil
	}
}

// WithRequireTar makes a decoded stream that is not a valid tar archive an error
// (ErrInvalidTar). Without it the tar verdict is only reported, in Result.Tar.
func WithRequireTar() Option {
	return func(c *config) error { c.requireTar = true; return nil }
}

// WithExpectBlobDigest makes a blob whose digest is not d fail with ErrDigestMismatch (and
// give no Result). d must be a valid digest (d.Validate) of the algorithm computed.
func WithExpectBlobDigest(d digest.Digest) Option {
	return func(c *config) error {
		if err := d.Validate(); err != nil {
			return errorf(CodeInvalidArgument, "expected blob digest %q: %v", string(d), err)
		}
		c.expectBlob = d
		return nil
	}
}

// WithExpectDiffID makes a blob whose DiffID is not d (the image config's rootfs.diff_ids
// entry) fail with ErrDigestMismatch, like WithExpectBlobDigest.
func WithExpectDiffID(d digest.Digest) Option {
	return func(c *config) error {
		if err := d.Validate(); err != nil {
			return errorf(CodeInvalidArgument, "expected DiffID %q: %v", string(d), err)
		}
		c.expectDiff = d
		return nil
	}
}

// setDigest passes d (or NULL for "") to a diffid_options_set_expect_* function; the C side
// copies the string before it returns.
func setDigest(set func(*C.char) C.diffid_code, d digest.Digest) C.diffid_code {
	if d == "" {
		return set(nil)
	}
	s := C.CString(string(d))
	defer C.free(unsafe.Pointer(s))
	return set(s)
}

func newConfig(opts []Option) (config, error) {
	var c config
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	return c, nil
}

// cOptions builds the C options of c. It returns nil (the C library's defaults) for the zero
// config. The caller frees the result with C.diffid_options_free.
func (c *config) cOptions() (*C.diffid_options, error) {
	if *c == (config{}) {
		return nil, nil
	}
	var o *C.diffid_options
	if code := Code(C.diffid_options_new(&o)); code != CodeOK || o == nil {
		return nil, newError(code, "cannot allocate options")
	}
	alg := 0
	switch c.algorithm {
	case digest.SHA512:
		alg = 1
	case BLAKE3:
		alg = 2
	}
	steps := []struct {
		what string
		code C.diffid_code
	}{
		{"algorithm", C.diffid_options_set_algorithm(o, C.diffid_algorithm(alg))},
		{"lenient gzip", C.diffid_options_set_lenient_gzip(o, C.bool(c.lenientGzip))},
		{"full xz", C.diffid_options_set_full_xz(o, C.bool(c.fullXz))},
		{"maximum size", C.diffid_options_set_max_size(o, C.uint64_t(c.maxSize))},
		{"memory limit", C.diffid_options_set_memory_limit(o, C.uint64_t(c.memoryLimit))},
		{"threads", C.diffid_options_set_threads(o, C.uint32_t(c.threads))},
		{"require tar", C.diffid_options_set_require_tar(o, C.bool(c.requireTar))},
		{"expected blob digest", setDigest(func(s *C.char) C.diffid_code {
			return C.diffid_options_set_expect_blob_digest(o, s)
		}, c.expectBlob)},
		{"expected DiffID", setDigest(func(s *C.char) C.diffid_code {
			return C.diffid_options_set_expect_diff_id(o, s)
		}, c.expectDiff)},
	}
	for _, s := range steps {
		if code := Code(s.code); code != CodeOK {
			C.diffid_options_free(o)
			return nil, errorf(code, "cannot set option %s", s.what)
		}
	}
	return o, nil
}
