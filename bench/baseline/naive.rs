//! The naive sequential baseline `make bench` compares diffid with: what one would write
//! first in Rust. Read the file, hash the raw bytes, decode with the usual crate's `Read`
//! adapter, hash the decoded bytes, all on one thread, through `std::io::copy`. No tar
//! parsing. The same crates the library uses (flate2 with zlib-rs, zstd, liblzma one
//! thread, bzip2 pure Rust, sha2).
//!
//!     cargo run --release --example naive -- FILE...
//!
//! Prints `BLOB_DIGEST DIFF_ID FILE` per file (sha256).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};

use sha2::{Digest, Sha256};

/// A reader that hashes what passes through it.
struct Tee<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that only hashes.
struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn digest(path: &str) -> io::Result<(String, String)> {
    let file = File::open(path)?;
    let mut blob = BufReader::with_capacity(
        1 << 20,
        Tee {
            inner: file,
            hash: Sha256::new(),
        },
    );
    let head = blob.fill_buf_copy()?;
    let format = if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        "gzip"
    } else if head.starts_with(b"BZh") {
        "bzip2"
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        "xz"
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else {
        "none"
    };
    let mut diff = HashWriter(Sha256::new());
    {
        let mut decoder: Box<dyn Read + '_> = match format {
            "gzip" => Box::new(flate2::bufread::MultiGzDecoder::new(&mut blob)),
            "bzip2" => Box::new(bzip2::bufread::MultiBzDecoder::new(&mut blob)),
            "xz" => Box::new(liblzma::bufread::XzDecoder::new(&mut blob)),
            "zstd" => Box::new(zstd::stream::read::Decoder::with_buffer(&mut blob)?),
            _ => Box::new(&mut blob),
        };
        io::copy(&mut decoder, &mut diff)?;
    }
    // The decoder may stop at the end of the compressed data: hash whatever follows too.
    io::copy(&mut blob, &mut io::sink())?;
    let blob_digest = hex(&blob.into_inner().hash.finalize());
    let diff_id = if format == "none" {
        blob_digest.clone()
    } else {
        hex(&diff.0.finalize())
    };
    Ok((blob_digest, diff_id))
}

trait FillCopy {
    fn fill_buf_copy(&mut self) -> io::Result<Vec<u8>>;
}

impl<R: Read> FillCopy for BufReader<R> {
    /// The first bytes, for detection, without consuming them.
    fn fill_buf_copy(&mut self) -> io::Result<Vec<u8>> {
        use io::BufRead;
        Ok(self.fill_buf()?.iter().take(8).copied().collect())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    let mut status = 0;
    for path in std::env::args().skip(1) {
        match digest(&path) {
            Ok((blob, diff)) => println!("sha256:{blob} sha256:{diff} {path}"),
            Err(e) => {
                eprintln!("naive: {path}: {e}");
                status = 1;
            }
        }
    }
    std::process::exit(status);
}
