//! The decoders, one file per format, behind one small trait.
//!
//! A decoder is fed the compressed bytes in pieces of any size and writes decoded bytes into
//! the output buffers it is given. It checks everything the format lets it check (CRCs,
//! sizes, stream structure) and knows where the compressed data must end: bytes after it are
//! an error unless the caller opted out (lenient gzip).

use crate::budget::Permit;
use crate::detect::Format;
use crate::error::Result;
use crate::options::Options;

mod bzip2;
mod gzip;
mod parallel;
#[cfg(test)]
mod test_util;
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

/// The threads a decoder may add to its own: the budget tokens it starts with, and the most
/// helpers it may run (taking the missing tokens from the budget later, if they come free).
pub(crate) struct Helpers {
    pub(crate) permit: Permit,
    pub(crate) max: usize,
}

impl Helpers {
    /// No helper: the decoder works alone, on its caller's thread.
    pub(crate) fn none() -> Helpers {
        Helpers {
            permit: Permit::none(),
            max: 0,
        }
    }

    /// Starts with the tokens of `permit` (maybe none) and may grow, taking tokens from the
    /// budget when jobs wait, to one helper fewer than the call's threads.
    pub(crate) fn up_to(opts: &Options, permit: Permit) -> Helpers {
        Helpers {
            permit,
            max: opts.resolved_threads().saturating_sub(1),
        }
    }
}

/// A decoder for `format` configured by `opts`, or `None` for uncompressed blobs. Decoders
/// that can split their input (xz, zstd, bzip2) decode on `helpers` too; with none, or for
/// inputs that do not split, they decode sequentially. Either way the output is the same, and
/// so is every error's kind and offset; only the wording of a corrupt zstd frame may differ
/// (libzstd names the first check that fails, which depends on whether it decodes the frame
/// whole or streams it).
pub(crate) fn new_decoder(
    format: Format,
    opts: &Options,
    helpers: Helpers,
) -> Result<Option<Box<dyn Decode>>> {
    let parallel = helpers.max > 0;
    Ok(Some(match format {
        Format::None => return Ok(None),
        Format::Gzip => Box::new(gzip::GzipDecoder::new(opts.lenient_gzip)),
        Format::Bzip2 if parallel => match bzip2::ParBzip2Decoder::new(helpers) {
            Some(par) => Box::new(par),
            None => Box::new(bzip2::Bzip2Decoder::new()),
        },
        Format::Bzip2 => Box::new(bzip2::Bzip2Decoder::new()),
        Format::Xz => Box::new(xz::XzDecoder::with_helpers(opts, helpers)?),
        Format::Zstd if parallel => {
            let log = zstd::window_log(opts.decoder_memory_limit);
            match zstd::ParZstdDecoder::new(helpers, log) {
                Some(par) => Box::new(par),
                None => Box::new(zstd::ZstdDecoder::new(log)?),
            }
        }
        Format::Zstd => Box::new(zstd::ZstdDecoder::new(zstd::window_log(
            opts.decoder_memory_limit,
        ))?),
    }))
}

/// Whether the input whose first bytes are `prefix` (one or more whole pipeline chunks) is
/// likely to be decoded in parallel: several xz blocks with sizes in their headers, bzip2
/// (blocks), several small zstd frames. The pipeline then gives the decoder helper threads and
/// takes the DiffID stage onto the decoding thread; otherwise it keeps the stages on threads
/// of their own. `None`: the prefix does not tell yet (a zstd frame without a content size
/// that has not ended in it); the pipeline reads on, up to a limit.
pub(crate) fn splits(format: Format, prefix: &[u8]) -> Option<bool> {
    match format {
        Format::Bzip2 => Some(true),
        Format::Xz => Some(xz::splits(prefix)),
        Format::Zstd => zstd::splits(prefix),
        Format::None | Format::Gzip => Some(false),
    }
}
