package diffid

import (
	"errors"
	"fmt"
	"regexp"
)

// Code is a failure kind of the C library (diffid_code). The numbers are those of the C ABI
// and are never reused.
type Code uint32

// The codes of the C ABI, in its order.
const (
	CodeOK              Code = 0
	CodeInvalidArgument Code = 1
	CodeIO              Code = 2
	CodeCorrupt         Code = 3
	CodeTruncated       Code = 4
	CodeTrailingData    Code = 5
	CodeUnsupported     Code = 6
	CodeLimitExceeded   Code = 7
	CodeCancelled       Code = 8
	CodeInvalidTar      Code = 9
	CodeMisuse          Code = 10
	CodeInternal        Code = 11
	CodeDigestMismatch  Code = 12
)

// The sentinel errors, one per failure code. Every error this package returns is an *Error,
// and errors.Is(err, ErrCorrupt) (and so on) tells which kind it is.
var (
	// ErrInvalidArgument: an option or argument was invalid.
	ErrInvalidArgument = errors.New("diffid: invalid argument")
	// ErrIO: reading the input failed.
	ErrIO = errors.New("diffid: I/O error")
	// ErrCorrupt: the compressed data is corrupt (bad header, checksum or coded data).
	ErrCorrupt = errors.New("diffid: corrupt compressed data")
	// ErrTruncated: the compressed data ended before the stream did.
	ErrTruncated = errors.New("diffid: truncated compressed data")
	// ErrTrailingData: bytes follow the end of the compressed data.
	ErrTrailingData = errors.New("diffid: trailing data after the compressed stream")
	// ErrUnsupported: well-formed data that containers/image does not accept by default
	// (an xz filter chain other than a lone LZMA2, a zstd dictionary, ...).
	ErrUnsupported = errors.New("diffid: unsupported feature")
	// ErrLimitExceeded: WithMaxSize, WithMemoryLimit or the 512 MiB zstd window limit.
	ErrLimitExceeded = errors.New("diffid: limit exceeded")
	// ErrCancelled: the operation was cancelled (its context was done).
	ErrCancelled = errors.New("diffid: cancelled")
	// ErrInvalidTar: the decoded stream is not a valid tar archive and WithRequireTar was given.
	ErrInvalidTar = errors.New("diffid: not a valid tar archive")
	// ErrMisuse: an object was used against its contract (Write after Close, ...).
	ErrMisuse = errors.New("diffid: misuse")
	// ErrInternal: a bug in the library. Please report it.
	ErrInternal = errors.New("diffid: internal error")
	// ErrDigestMismatch: the blob digest or DiffID differs from the one given with
	// WithExpectBlobDigest or WithExpectDiffID.
	ErrDigestMismatch = errors.New("diffid: digest mismatch")
)

var sentinels = [...]error{
	CodeInvalidArgument: ErrInvalidArgument,
	CodeIO:              ErrIO,
	CodeCorrupt:         ErrCorrupt,
	CodeTruncated:       ErrTruncated,
	CodeTrailingData:    ErrTrailingData,
	CodeUnsupported:     ErrUnsupported,
	CodeLimitExceeded:   ErrLimitExceeded,
	CodeCancelled:       ErrCancelled,
	CodeInvalidTar:      ErrInvalidTar,
	CodeMisuse:          ErrMisuse,
	CodeInternal:        ErrInternal,
	CodeDigestMismatch:  ErrDigestMismatch,
}

var codeNames = [...]string{
	CodeOK:              "ok",
	CodeInvalidArgument: "invalid_argument",
	CodeIO:              "io",
	CodeCorrupt:         "corrupt",
	CodeTruncated:       "truncated",
	CodeTrailingData:    "trailing_data",
	CodeUnsupported:     "unsupported",
	CodeLimitExceeded:   "limit_exceeded",
	CodeCancelled:       "cancelled",
	CodeInvalidTar:      "invalid_tar",
	CodeMisuse:          "misuse",
	CodeInternal:        "internal",
	CodeDigestMismatch:  "digest_mismatch",
}

// String returns the code's short stable name ("corrupt", "trailing_data", ...).
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint32(c))
}

// Sentinel returns the sentinel error of c (ErrCorrupt for CodeCorrupt, ...), or nil for
// CodeOK and for codes this version does not know.
func (c Code) Sentinel() error {
	if c != CodeOK && int(c) < len(sentinels) {
		return sentinels[c]
	}
	return nil
}

// OffsetUnknown is Error.Offset when the error concerns no place in the input.
const OffsetUnknown int64 = -1

// Error is the error type of this package: the kind of failure, the blob's format, the
// offset of the fault and the library's message, which names the format and what was wrong
// where ("xz: block padding is not zero at block 1 of stream 1 (byte 0x55) (at compressed
// byte 74131)").
type Error struct {
	// Kind is the failure code; errors.Is(err, Kind.Sentinel()) holds.
	Kind Code
	// Format is the blob's detected format, FormatNone for an uncompressed blob; "" only
	// when the input could not be read at all (or for an invalid option).
	Format Format
	// Offset is the byte offset in the blob (the compressed input, from 0) of the fault:
	// the exact byte when the decoder knows it (a non-zero xz block padding byte, a gzip
	// trailer, the end of a truncated input), else the start of the smallest unit holding
	// it (a zstd block, a gzip member, ...), which Message names. OffsetUnknown (-1) when
	// the error concerns no place in the input (an option, a cancel, the maximum size, an
	// invalid tar stream).
	Offset  int64
	Message string
	cause   error // e.g. the context's error, or the reader's
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "diffid: " + e.Kind.String()
	}
	return "diffid: " + e.Message
}

// Is reports whether target is the sentinel of e's code, so that
// errors.Is(err, diffid.ErrTruncated) works.
func (e *Error) Is(target error) bool {
	s := e.Kind.Sentinel()
	return s != nil && target == s
}

// Unwrap returns the underlying cause, if any: the context's error for a cancelled
// operation (so errors.Is(err, context.Canceled) holds too), or the reader's error.
func (e *Error) Unwrap() error { return e.cause }

// osErrorSuffix is how Rust's std::io::Error ends its text (" (os error 2)"); the message
// before it already says the same in words.
var osErrorSuffix = regexp.MustCompile(` \(os error [0-9]+\)`)

// newError makes the *Error of a library failure, its message without Rust's os error suffix.
func newError(code Code, msg string) *Error {
	return &Error{Kind: code, Offset: OffsetUnknown, Message: osErrorSuffix.ReplaceAllString(msg, "")}
}

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Kind: code, Offset: OffsetUnknown, Message: fmt.Sprintf(format, args...)}
}
