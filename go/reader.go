package diffid

// #include "diffid.h"
import "C"

import (
	"context"
	"io"
	"os"
	"runtime"
	"sync"
	"unsafe"
)

// Reader is the decoded stream of a layer blob: an io.ReadCloser that yields the
// decompressed tar (the bytes the DiffID covers) while the library computes both digests and
// the tar verdict in the same pass. It is what DecompressStream returns; it drops in where
// containers/storage's archive.DecompressStream, containerd's compression.DecompressStream
// or moby's archive.DecompressStream is called.
//
// The contract:
//
//   - Read never ends with a clean io.EOF on a bad stream. A corrupt, truncated or
//     over-limit blob, trailing bytes, or a failing source make Read return an error (an
//     *Error; errors.Is(err, ErrCorrupt), ErrTruncated, ...). The library does every final
//     check (gzip CRC32 and ISIZE, the xz index and check, the zstd checksum, the bzip2
//     stream CRC, trailing bytes) before it reports the end of the stream, so io.EOF means
//     the whole blob was verified; the decoded bytes before the error have already been
//     delivered, so a consumer must treat an error as "discard what was extracted".
//   - Back-pressure: the library decodes ahead of the consumer only by a bounded queue (a
//     few MiB of chunks, plus the decoder's window); a consumer that stops reading stops
//     the decoders and, for a non-file source, the goroutine that reads the source.
//   - Close may be called at any time, also before the end and from another goroutine while
//     Read is blocked: it cancels the library, joins its threads and frees everything. It
//     is idempotent. A Reader that is neither read to the end nor closed is freed by a
//     finalizer, but its threads run until then: always Close it.
//   - Result, after Read has returned io.EOF, gives the same Result as DigestReader on the
//     same bytes.
//
// A Reader is meant for one goroutine at a time (Read calls are serialised, never unsafe);
// Close and the context's cancellation work from any goroutine.
type Reader struct {
	*readerState
}

// readerState is the Reader's state. The goroutine feeding the source holds only this
// inner value, so a forgotten Reader can still be collected and finalized while that
// goroutine is blocked in the library.
type readerState struct {
	mu     sync.Mutex // serialises Read, Close and Result
	closed bool
	eof    bool
	res    *Result
	err    error // the first failure; every later Read returns it

	ctx  context.Context
	stop func() bool // unregisters the context callback

	// handleMu guards h against being freed while cancel uses it; cancel takes only this
	// lock, so it can interrupt a Read or a feed write blocked in the library.
	handleMu sync.Mutex
	h        *C.diffid_reader
	opts     *C.diffid_options

	// feedMu is held by the feeding goroutine around each call into the library, and by
	// release before it frees h: the goroutine never uses a freed handle, and release
	// never waits for a Read of the source (only for a library call, which cancel ends).
	feedMu   sync.Mutex
	feedErr  error // the source's read error (under feedMu)
	released bool  // h is freed (under feedMu)

	file *os.File // the source when the library reads its descriptor; kept open until release
}

// DecompressStream returns the decoded stream of the layer blob r yields: gzip, bzip2, xz
// and zstd are detected and decoded as containers/image does (an uncompressed blob is
// passed through), with every decoder's parallelism, while the blob digest, the DiffID and
// the tar verdict are computed in the same pass; Result gives them after io.EOF.
//
// When r is an *os.File open on a regular file, the library reads its descriptor on its
// own threads (from the current offset; the file must stay open until the Reader is
// closed or has reached the end). Any other io.Reader is read by a goroutine that copies
// its bytes into the library; an error from r becomes the Reader's error (an *Error of code
// CodeIO wrapping it). The Reader never calls r.Close.
//
// The error is non-nil only for invalid options or when the library cannot start; a bad
// blob is reported by Read. See Reader for the contract.
func DecompressStream(r io.Reader, opts ...Option) (*Reader, error) {
	return DecompressStreamContext(context.Background(), r, opts...)
}

// DecompressStreamContext is DecompressStream with cancellation: once ctx is done the
// library stops, and Read (also one in progress) returns an error that wraps both
// ErrCancelled and ctx's error.
func DecompressStreamContext(ctx context.Context, r io.Reader, opts ...Option) (*Reader, error) {
	if ctx == nil {
		return nil, errorf(CodeInvalidArgument, "nil context")
	}
	if r == nil {
		return nil, errorf(CodeInvalidArgument, "nil io.Reader")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	copts, err := cfg.cOptions()
	if err != nil {
		return nil, err
	}
	s := &readerState{ctx: ctx, opts: copts}
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if err := s.newFd(f); err != nil {
				C.diffid_options_free(copts)
				return nil, err
			}
		}
	}
	if s.h == nil {
		var h *C.diffid_reader
		if code := Code(C.diffid_reader_new_pipe(copts, &h)); code != CodeOK || h == nil {
			C.diffid_options_free(copts)
			if code == CodeOK {
				code = CodeInternal
			}
			return nil, newError(code, "cannot create a decoding reader")
		}
		s.h = h
		go s.feed(r)
	}
	rd := &Reader{s}
	runtime.SetFinalizer(rd, func(rd *Reader) { rd.readerState.release() })
	if ctx.Done() != nil {
		s.stop = context.AfterFunc(ctx, s.cancel)
	}
	return rd, nil
}

// newFd opens the library's reader on f's descriptor.
func (s *readerState) newFd(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return &Error{Kind: CodeIO, Offset: OffsetUnknown, Message: "reading input: " + err.Error(), cause: err}
	}
	var code Code
	var h *C.diffid_reader
	cerr := sc.Control(func(fd uintptr) {
		code = Code(C.diffid_reader_new_fd(C.int(fd), s.opts, &h))
	})
	if cerr != nil {
		return &Error{Kind: CodeIO, Offset: OffsetUnknown, Message: "reading input: " + cerr.Error(), cause: cerr}
	}
	if code != CodeOK || h == nil {
		if code == CodeOK {
			code = CodeInternal
		}
		return newError(code, "cannot create a decoding reader on the file")
	}
	s.h, s.file = h, f
	return nil
}

// feedBufs holds the feeding goroutine's buffers: 1 MiB per call amortises the cgo call.
var feedBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// feed copies src into the library until EOF (then ends the input), a read error (then
// cancels the library, which Read reports as that error), or the library refusing more
// (it failed, or was cancelled or closed).
func (s *readerState) feed(src io.Reader) {
	bp := feedBufs.Get().(*[]byte)
	defer feedBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		s.feedMu.Lock()
		if s.released {
			s.feedMu.Unlock()
			return
		}
		if n > 0 {
			// The library copies the bytes before returning (cgo's pointer rules hold:
			// buf is Go memory passed for the duration of the call only).
			code := Code(C.diffid_reader_write(s.h, (*C.uint8_t)(unsafe.Pointer(&buf[0])), C.size_t(n)))
			runtime.KeepAlive(buf)
			if code != CodeOK {
				s.feedMu.Unlock()
				return // Read reports the library's own error
			}
		}
		switch {
		case rerr == io.EOF:
			C.diffid_reader_close_input(s.h)
			s.feedMu.Unlock()
			return
		case rerr != nil:
			s.feedErr = rerr
			s.feedMu.Unlock()
			s.cancel()
			return
		}
		s.feedMu.Unlock()
	}
}

// cancel asks the library to stop; safe from any goroutine at any time.
func (s *readerState) cancel() {
	s.handleMu.Lock()
	if s.h != nil {
		C.diffid_reader_cancel(s.h)
	}
	s.handleMu.Unlock()
}

// release cancels and frees the library's reader (which joins its threads) and the
// options. Called by Close, after the end, on a failure, and by the finalizer.
func (s *readerState) release() {
	s.cancel() // ends a feed write blocked in the library
	s.feedMu.Lock()
	s.handleMu.Lock()
	C.diffid_reader_free(s.h) // NULL is a no-op; cancels and joins
	C.diffid_options_free(s.opts)
	s.h, s.opts = nil, nil
	s.released = true
	s.handleMu.Unlock()
	s.feedMu.Unlock()
	if s.file != nil {
		runtime.KeepAlive(s.file) // the library read its descriptor until now
		s.file = nil
	}
	if s.stop != nil {
		s.stop()
	}
}

// Read reads decoded bytes into p. It returns io.EOF only after the whole blob was decoded
// and verified; see Reader for the contract.
func (rd *Reader) Read(p []byte) (int, error) {
	s := rd.readerState
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return 0, errorf(CodeMisuse, "Read after Close")
	case s.err != nil:
		return 0, s.err
	case s.eof:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	}
	if s.ctx.Err() != nil {
		return 0, s.fail(newError(CodeCancelled, "cancelled: "+context.Cause(s.ctx).Error()))
	}
	var n C.size_t
	code := Code(C.diffid_reader_read(s.h, (*C.uint8_t)(unsafe.Pointer(&p[0])), C.size_t(len(p)), &n))
	runtime.KeepAlive(p)
	if code != CodeOK {
		return 0, s.fail(newError(code, "read failed: "+code.String()))
	}
	if n > 0 {
		return int(n), nil
	}
	// The end of a fully verified stream: take the result and let the threads go.
	var r *C.diffid_result
	fcode := C.diffid_reader_finish(s.h, &r)
	res, err := takeResult(fcode, r)
	if err != nil {
		return 0, s.fail(err.(*Error))
	}
	s.eof, s.res = true, res
	s.release()
	return 0, io.EOF
}

// fail records the Reader's error: the library's own message when finish has one, the
// source's error when the library was cancelled because of it, the context's when it was
// cancelled by it. It releases the library's reader.
func (s *readerState) fail(e *Error) error {
	if s.h != nil && e.Kind != CodeMisuse {
		var r *C.diffid_result
		fcode := C.diffid_reader_finish(s.h, &r)
		if _, err := takeResult(fcode, r); err != nil {
			if fe, ok := err.(*Error); ok && fe.Kind != CodeOK && fe.Message != "" && fe.Kind != CodeMisuse {
				e = fe
			}
		}
	}
	s.feedMu.Lock()
	feedErr := s.feedErr
	s.feedMu.Unlock()
	switch {
	case feedErr != nil && (e.Kind == CodeCancelled || e.Kind == CodeIO):
		e = &Error{Kind: CodeIO, Offset: OffsetUnknown, Message: "reading input: " + feedErr.Error(), cause: feedErr}
	case e.Kind == CodeCancelled && s.ctx.Err() != nil:
		e.cause = context.Cause(s.ctx)
	}
	s.err = e
	s.release()
	return e
}

// Close stops the decoding (when the end was not reached), joins the library's threads and
// frees its memory. It may be called from any goroutine, also while Read is blocked (which
// then returns an error). It returns nil: a Reader closed early is not a failure. Later
// calls return nil too.
//
// Close does not wait for a Read of the source that is in progress (an io.Reader cannot be
// interrupted); the goroutine doing it returns as soon as that Read does, without using the
// source again.
func (rd *Reader) Close() error {
	s := rd.readerState
	s.cancel() // a Read blocked in the library returns, so mu can be taken
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.release()
	runtime.SetFinalizer(rd, nil)
	return nil
}

// Result returns the digests and the tar verdict of the blob, once Read has returned
// io.EOF (also after Close). Before that it returns an error wrapping ErrMisuse, and after
// a failure the Read error.
func (rd *Reader) Result() (*Result, error) {
	s := rd.readerState
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if !s.eof {
		return nil, errorf(CodeMisuse, "Result called before Read returned io.EOF")
	}
	r := *s.res
	return &r, nil
}
