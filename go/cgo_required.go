//go:build !cgo

package diffid

// The package calls the C library libdiffid through cgo. Without cgo (CGO_ENABLED=0, or a
// cross build without a C compiler) this file is the only one compiled and the build stops
// on the undefined name below, which says what to do.

var _ = diffid_requires_cgo__build_with_CGO_ENABLED_1_and_libdiffid_installed
