// Package diffid computes a container image layer's blob digest, DiffID and tar verdict in
// one multi-threaded pass, bit for bit as containers/image (Podman, Skopeo, Buildah) does.
//
// A layer blob is a tar stream, plain or compressed with gzip, bzip2, xz or zstd. Importers
// record two digests: the blob digest over the raw bytes and the DiffID over the
// decompressed stream. containers/image computes them by teeing the blob through a hash,
// a decompressor and a second hash; one call of this package replaces that code:
//
//	res, err := diffid.DigestFile("layer.tar.xz")
//	if err != nil {
//		return err // errors.Is(err, diffid.ErrCorrupt), diffid.ErrTruncated, ...
//	}
//	fmt.Println(res.BlobDigest, res.BlobSize, res.DiffID, res.MediaType)
//
// An importer that also extracts the layer reads the decoded stream from DecompressStream,
// an io.ReadCloser that drops in for containers/storage's archive.DecompressStream, and gets
// the same Result after io.EOF: one pass decodes, digests and hands the tar over.
//
// The work runs in the Rust library libdiffid through cgo, on its own threads: reading,
// hashing the blob, decompressing, hashing the DiffID and parsing the tar overlap.
//
// # Which inputs are errors
//
// The library accepts exactly the inputs that both containers/image's Go decoders and the
// format's reference C decoder (zlib, bzip2, xz-utils, zstd) accept, and never returns a
// digest of a partially decoded stream. In particular three inputs that containers/image
// accepts are errors here because xz-utils or zstd reject them as corrupt: xz-utils'
// test files bad-1-lzma2-7.xz and bad-1-vli-1.xz, and zstd's
// golden-decompression-errors/off0.bin.zst. Trailing bytes after a gzip, bzip2, xz or zstd
// stream are an error (WithLenientGzip relaxes this for gzip); xz filter chains other than a
// lone LZMA2 are an error unless WithFullXz is given.
//
// # Memory and threads
//
// Go memory is passed to C only for the duration of a call; the library copies what it
// keeps. All functions are safe for concurrent use; a Writer is used by one goroutine at a
// time, except that its context may be cancelled from anywhere.
package diffid

// The C library is found through pkg-config: link.go, link_static.go.

// #include <stdlib.h>
// #include "diffid.h"
import "C"

import (
	"context"
	"errors"
	// The hashes of the digests this package returns, registered for go-digest: a caller's
	// res.DiffID.Validate() or .Verifier() works without importing them itself.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"io"
	"os"
	"runtime"
	"strings"
	"unsafe"
)

// Version returns the version of the linked C library, e.g. "0.1.0".
func Version() string {
	return C.GoString(C.diffid_version())
}

// withOptions builds the C options of opts, runs call with them and frees them.
func withOptions(opts []Option, call func(*C.diffid_options) (*Result, error)) (*Result, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	copts, err := cfg.cOptions()
	if err != nil {
		return nil, err
	}
	defer C.diffid_options_free(copts) // NULL is a no-op
	return call(copts)
}

// DigestFile digests the file at path. The library opens and reads it itself, on its own
// threads.
//
// A file that cannot be opened gives an *Error of code CodeIO that wraps the *fs.PathError
// os.Open returns for it: errors.Is(err, fs.ErrNotExist) (or fs.ErrPermission) holds, and
// errors.As finds the *fs.PathError.
func DigestFile(path string, opts ...Option) (*Result, error) {
	if strings.IndexByte(path, 0) >= 0 {
		return nil, errorf(CodeInvalidArgument, "path %q contains a NUL byte", path)
	}
	res, err := withOptions(opts, func(copts *C.diffid_options) (*Result, error) {
		cpath := C.CString(path)
		defer C.free(unsafe.Pointer(cpath))
		var r *C.diffid_result
		code := C.diffid_digest_file(cpath, copts, &r)
		return takeResult(code, r)
	})
	var e *Error
	if err != nil && errors.As(err, &e) && e.Kind == CodeIO && e.cause == nil {
		// The library reports the open failure as text. Open the file again to hand the
		// caller Go's own error for it; if it opens now, the library's error stands.
		f, oerr := os.Open(path)
		if oerr != nil {
			return nil, &Error{Kind: CodeIO, Offset: OffsetUnknown, Message: oerr.Error(), cause: oerr}
		}
		f.Close()
	}
	return res, err
}

// DigestFileContext is DigestFile with cancellation: when ctx is done, the digest stops and
// the error wraps both ErrCancelled and ctx's error. The file is opened here (an open
// failure wraps its *fs.PathError, as in DigestFile) and its bytes are passed to the library
// as DigestReaderContext passes a reader's. With a context that is never done
// (context.Background()), it is DigestFile.
func DigestFileContext(ctx context.Context, path string, opts ...Option) (*Result, error) {
	if ctx.Done() == nil {
		return DigestFile(path, opts...)
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Kind: CodeCancelled, Offset: OffsetUnknown, Message: "cancelled: " + context.Cause(ctx).Error(), cause: err}
	}
	if strings.IndexByte(path, 0) >= 0 {
		return nil, errorf(CodeInvalidArgument, "path %q contains a NUL byte", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Kind: CodeIO, Offset: OffsetUnknown, Message: err.Error(), cause: err}
	}
	defer f.Close()
	return DigestReaderContext(ctx, f, opts...)
}

// zeroByte gives an empty slice a valid address to pass to C.
var zeroByte [1]byte

// DigestBytes digests a blob held in memory. b is only read, and only during the call.
func DigestBytes(b []byte, opts ...Option) (*Result, error) {
	return withOptions(opts, func(copts *C.diffid_options) (*Result, error) {
		p := &zeroByte[0]
		if len(b) > 0 {
			p = &b[0]
		}
		var r *C.diffid_result
		code := C.diffid_digest_buffer((*C.uint8_t)(unsafe.Pointer(p)), C.size_t(len(b)), copts, &r)
		runtime.KeepAlive(b)
		return takeResult(code, r)
	})
}

// DigestReader digests everything r yields until io.EOF. An error from r is returned
// wrapped in an *Error of code CodeIO (errors.Is works for both).
//
// When r is an *os.File open on a regular file, the library reads its descriptor itself
// (from the current offset to the end, leaving the offset there) instead of copying the
// bytes through Go.
func DigestReader(r io.Reader, opts ...Option) (*Result, error) {
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return digestFd(f, opts)
		}
	}
	return DigestReaderContext(context.Background(), r, opts...)
}

// digestFd digests an open regular file through diffid_digest_fd.
func digestFd(f *os.File, opts []Option) (*Result, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, &Error{Kind: CodeIO, Offset: OffsetUnknown, Message: "reading input: " + err.Error(), cause: err}
	}
	var res *Result
	var derr error
	// Control keeps the descriptor open (a concurrent Close waits) while the library reads it.
	cerr := sc.Control(func(fd uintptr) {
		res, derr = withOptions(opts, func(copts *C.diffid_options) (*Result, error) {
			var r *C.diffid_result
			code := C.diffid_digest_fd(C.int(fd), copts, &r)
			return takeResult(code, r)
		})
	})
	if cerr != nil {
		return nil, &Error{Kind: CodeIO, Offset: OffsetUnknown, Message: "reading input: " + cerr.Error(), cause: cerr}
	}
	return res, derr
}

// DigestReaderContext is DigestReader with cancellation: when ctx is done, the digest stops
// (even in the middle of the library's work) and the error wraps both ErrCancelled and
// ctx's error. A Read call of r that blocks is not interrupted; the digest stops after it
// returns.
func DigestReaderContext(ctx context.Context, r io.Reader, opts ...Option) (*Result, error) {
	w, err := NewWriterContext(ctx, opts...)
	if err != nil {
		return nil, err
	}
	if _, err := w.ReadFrom(r); err != nil {
		w.abort()
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return w.Result()
}
