//! What the `diffid` tool says about itself: `--version` (the library's version and each
//! decoder backend's, so that a report says exactly which code decoded a layer), and the
//! shell completions and man page generated from its clap definitions (the hidden
//! `--generate-completions SHELL` and `--generate-man`, which `make` runs and `make install`
//! installs).

use std::ffi::CStr;
use std::io::{self, Write};

use clap::Command;
use clap_complete::Shell;

/// The text `diffid --version` prints after the tool's name: the library version, then one
/// line per format with the decoder and its version. liblzma and libzstd report their own
/// (they are built from the source bundled in liblzma-sys and zstd-sys); ISA-L, zlib-rs,
/// rapidgzip-core and the bzip2 decoder are named by the crate that carries them (Cargo.lock's
/// version, from build.rs), with the patched copies the build uses instead said so.
pub fn long_version() -> String {
    // SAFETY: lzma_version_string returns a pointer to a static NUL-terminated string.
    let lzma = unsafe { CStr::from_ptr(liblzma_sys::lzma_version_string()) }.to_string_lossy();
    let one = if cfg!(feature = "isal") {
        format!(
            "ISA-L igzip (isal-sys {}; its inflate from vendor/isa-l, patched to reject \
             incomplete Huffman codes)",
            env!("DIFFID_VERSION_ISAL_SYS")
        )
    } else {
        format!("zlib-rs {}", env!("DIFFID_VERSION_ZLIB_RS"))
    };
    let gzip = format!(
        "{one}; one member on several workers: rapidgzip-core {} (patched, \
         third_party/rapidgzip-core)",
        env!("DIFFID_VERSION_RAPIDGZIP_CORE")
    );
    format!(
        "{} (library {})\n\
         gzip:  {gzip}\n\
         bzip2: bzip2 crate {} (libbz2-rs-sys {}, patched to note what Go's decoder reads \
         otherwise, third_party/libbz2-rs-sys)\n\
         xz:    liblzma {lzma} (liblzma-sys {})\n\
         zstd:  libzstd {} (zstd-sys {})",
        env!("CARGO_PKG_VERSION"),
        diffid::VERSION,
        env!("DIFFID_VERSION_BZIP2"),
        env!("DIFFID_VERSION_LIBBZ2_RS_SYS"),
        env!("DIFFID_VERSION_LIBLZMA_SYS"),
        zstd::zstd_safe::version_string(),
        env!("DIFFID_VERSION_ZSTD_SYS"),
    )
}

/// Writes the completion script of `shell` for `command` to standard output.
pub fn completions(shell: Shell, mut command: Command) -> io::Result<()> {
    let mut out = io::stdout().lock();
    clap_complete::generate(shell, &mut command, "diffid", &mut out);
    out.flush()
}

/// Writes the man page (roff, section 1) of `command` to standard output.
pub fn man_page(command: Command) -> io::Result<()> {
    let mut out = io::stdout().lock();
    clap_mangen::Man::new(command).render(&mut out)?;
    out.flush()
}
