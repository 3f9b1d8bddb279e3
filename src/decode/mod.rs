//! The decoders, one file per format, behind one small trait.
//!
//! A decoder is fed the compressed bytes in pieces of any size and writes decoded bytes into
//! the output buffers it is given. It checks everything the format lets it check (CRCs,
//! sizes, stream structure) and knows where the compressed data must end: bytes after it are
//! an error unless the caller opted out (lenient gzip).

use crate::detect::Format;
use crate::error::Result;
use crate::options::Options;

mod bzip2;
mod gzip;
mod xz;
mod zstd;

/// A streaming decoder of one compressed format.
pub(crate) trait Decode: Send {
    /// Decodes from `input` into `output` and returns `(consumed, produced)`.
    ///
    /// When both `input` and `output` are non-empty, at least one of the two is non-zero.
    /// Errors carry the offset in the compressed input where they were found.
    fn decode(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)>;

    /// The input is exhausted. Writes decoded bytes still held inside the decoder into
    /// `output` and returns `(produced, done)`; `done` means the compressed data ended
    /// exactly where a complete stream (member, frame) ended and nothing is left to write.
    /// When it can neither produce nor finish, it returns an error (`Truncated` most often).
    fn finish(&mut self, output: &mut [u8]) -> Result<(usize, bool)>;
}

/// A decoder for `format` configured by `opts`, or `None` for uncompressed blobs.
pub(crate) fn new_decoder(format: Format, opts: &Options) -> Result<Option<Box<dyn Decode>>> {
    Ok(Some(match format {
        Format::None => return Ok(None),
        Format::Gzip => Box::new(gzip::GzipDecoder::new(opts.lenient_gzip)),
        Format::Bzip2 => Box::new(bzip2::Bzip2Decoder::new()),
        Format::Xz => Box::new(xz::XzDecoder::new(opts)?),
        Format::Zstd => Box::new(zstd::ZstdDecoder::new()?),
    }))
}
