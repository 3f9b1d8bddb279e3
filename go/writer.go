package diffid

// #include "diffid.h"
import "C"

import (
	"context"
	"io"
	"runtime"
	"sync"
	"unsafe"
)

// Writer digests a layer blob written to it, for callers that receive the blob in pieces
// (an HTTP body, a pipe, a tee next to a file being written). It is an io.WriteCloser and an
// io.ReaderFrom. Close ends the blob; Result then returns the digests.
//
// A Writer is meant for one goroutine at a time (calls from several are serialised, never
// unsafe). Write, ReadFrom and Result after Close, and Result before Close, return errors
// wrapping ErrMisuse. A Writer that is not closed is freed by a finalizer, but its worker
// threads run until then: always Close it.
type Writer struct {
	mu     sync.Mutex // serialises Write, ReadFrom, Close and Result
	closed bool
	res    *Result
	err    error // the first failure; every later call returns it

	ctx  context.Context
	stop func() bool // unregisters the context callback

	// handleMu guards s against being freed while cancel uses it. cancel takes only this
	// lock, never mu, so that it can interrupt a Write blocked in the library.
	handleMu sync.Mutex
	s        *C.diffid_stream
	opts     *C.diffid_options
}

// NewWriter returns a Writer that digests what is written to it.
func NewWriter(opts ...Option) (*Writer, error) {
	return NewWriterContext(context.Background(), opts...)
}

// NewWriterContext is NewWriter with cancellation: once ctx is done the library stops
// (interrupting a Write in progress), and Write, Close and Result return an error that
// wraps both ErrCancelled and ctx's error.
func NewWriterContext(ctx context.Context, opts ...Option) (*Writer, error) {
	if ctx == nil {
		return nil, errorf(CodeInvalidArgument, "nil context")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	copts, err := cfg.cOptions()
	if err != nil {
		return nil, err
	}
	var s *C.diffid_stream
	if code := Code(C.diffid_stream_new(copts, &s)); code != CodeOK || s == nil {
		C.diffid_options_free(copts)
		if code == CodeOK {
			code = CodeInternal
		}
		return nil, newError(code, "cannot create a stream")
	}
	w := &Writer{ctx: ctx, s: s, opts: copts}
	runtime.SetFinalizer(w, (*Writer).release)
	if ctx.Done() != nil {
		w.stop = context.AfterFunc(ctx, w.cancel)
	}
	return w, nil
}

// cancel asks the library to stop the stream; safe from any goroutine at any time.
func (w *Writer) cancel() {
	w.handleMu.Lock()
	if w.s != nil {
		C.diffid_stream_cancel(w.s)
	}
	w.handleMu.Unlock()
}

// release frees the C objects. Called by Close, abort and the finalizer.
func (w *Writer) release() {
	w.handleMu.Lock()
	C.diffid_stream_free(w.s) // NULL is a no-op
	C.diffid_options_free(w.opts)
	w.s, w.opts = nil, nil
	w.handleMu.Unlock()
	runtime.SetFinalizer(w, nil)
}

// cancelledError adds the context's error as the cause of a cancellation error, when it is
// the reason.
func (w *Writer) cancelledError(e *Error) *Error {
	if e.Kind == CodeCancelled && w.ctx.Err() != nil {
		e.cause = context.Cause(w.ctx)
	}
	return e
}

// checkContext fails the writer if its context is done, without waiting for the
// asynchronous callback to reach the library.
func (w *Writer) checkContext() error {
	if w.ctx.Err() == nil {
		return nil
	}
	w.cancel()
	return w.cancelledError(newError(CodeCancelled, "cancelled: "+context.Cause(w.ctx).Error()))
}

// fail records err as the writer's error, finishing the stream first to get the library's
// own message when code came from diffid_stream_write.
func (w *Writer) fail(code Code) error {
	var r *C.diffid_result
	fcode := C.diffid_stream_finish(w.s, &r)
	runtime.KeepAlive(w)
	_, err := takeResult(fcode, r)
	e, ok := err.(*Error)
	if !ok || e.Kind == CodeOK || e.Message == "" {
		e = newError(code, "write failed: "+code.String())
	}
	w.err = w.cancelledError(e)
	w.release()
	return w.err
}

// Write passes p to the library, which copies it before returning. It never returns a
// short count without an error.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := w.checkContext(); err != nil {
		w.err = err
		w.release()
		return 0, err
	}
	code := Code(C.diffid_stream_write(w.s, (*C.uint8_t)(unsafe.Pointer(&p[0])), C.size_t(len(p))))
	runtime.KeepAlive(p)
	runtime.KeepAlive(w)
	if code != CodeOK {
		return 0, w.fail(code)
	}
	return len(p), nil
}

func (w *Writer) usable() error {
	if w.closed {
		return errorf(CodeMisuse, "Writer used after Close")
	}
	return w.err
}

// readBufs holds ReadFrom's buffers: 1 MiB per call amortises the cgo call.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// ReadFrom writes everything r yields until io.EOF, and returns the number of bytes read.
// An error from r is returned as an *Error of code CodeIO wrapping it; the Writer stays
// usable (Close would digest what was written so far).
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	var total int64
	for {
		if err := w.beforeRead(); err != nil {
			return total, err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, &Error{Kind: CodeIO, Offset: OffsetUnknown, Message: "reading input: " + rerr.Error(), cause: rerr}
		}
	}
}

// beforeRead fails early (before a possibly long Read) on a closed, failed or cancelled
// writer.
func (w *Writer) beforeRead() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if err := w.checkContext(); err != nil {
		w.err = err
		w.release()
		return err
	}
	return nil
}

// Close ends the blob and waits for the library to finish. It returns the digest's error, if
// any (the same as Result's). Close is idempotent: later calls return the same.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.stop != nil {
		w.stop()
	}
	if w.err == nil {
		if err := w.checkContext(); err != nil {
			w.err = err
		} else {
			var r *C.diffid_result
			code := C.diffid_stream_finish(w.s, &r)
			runtime.KeepAlive(w)
			res, err := takeResult(code, r)
			if e, ok := err.(*Error); ok {
				err = w.cancelledError(e)
			}
			w.res, w.err = res, err
		}
	}
	w.release()
	return w.err
}

// abort frees the writer without finishing the digest (DigestReader after a read error).
func (w *Writer) abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		if w.stop != nil {
			w.stop()
		}
		if w.err == nil {
			w.err = errorf(CodeMisuse, "Writer aborted")
		}
		w.release()
	}
}

// Result returns the digests of everything written, after Close. It returns the same error
// as Close when the blob could not be digested.
func (w *Writer) Result() (*Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		return nil, errorf(CodeMisuse, "Result called before Close")
	}
	if w.err != nil {
		return nil, w.err
	}
	r := *w.res
	return &r, nil
}
