//go:build cgo && diffid_static

package diffid

// With the diffid_static build tag the package links libdiffid.a, through the
// diffid-static.pc that `make install` writes beside diffid.pc: the program needs no
// libdiffid.so at run time. libdiffid.a exports only the diffid_* functions (its bundled
// liblzma, zstd and ISA-L are local to it), so it links beside other cgo packages that use
// the system's liblzma or libzstd without either binding to the other's copy.

// #cgo pkg-config: diffid-static
import "C"
