//go:build cgo && !diffid_static

package diffid

// The C library is found through pkg-config, the convention of the cgo packages Podman,
// Buildah and CRI-O build with (libseccomp-golang: `#cgo pkg-config: libseccomp`), and a
// build tag chooses how to link. `pkg-config --cflags --libs diffid` names the header
// directory and the shared library libdiffid.so. Nothing points outside the module, so a
// vendored copy of the package builds as it is. Set PKG_CONFIG_PATH for a library installed
// under a prefix pkg-config does not search (`make install` puts diffid.pc in
// PREFIX/lib/pkgconfig); at run time the dynamic linker must find libdiffid.so.0 (an rpath,
// ld.so.conf or LD_LIBRARY_PATH). Build with -tags diffid_static to link libdiffid.a
// instead (link_static.go).

// #cgo pkg-config: diffid
import "C"
