//! Warnings: what a layer has that is no error (containers/image accepts it, and the digests
//! do not depend on it) but that an importer may want to know.

use std::fmt;

/// Something surprising about a layer that is not an error. Carried in
/// [`Report::warnings`](crate::Report::warnings), in the order found; each kind at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The layer has no tar entries (an empty blob, or a tar archive of nothing but its end
    /// marker): it adds nothing to an image's file system.
    EmptyLayer,
    /// The blob starts with a zstd skippable frame followed by a zstd frame (as `pzstd`
    /// writes): containers/image detects formats by the first bytes alone, so it takes the
    /// blob for an uncompressed stream, and so does this library (format none, the DiffID is
    /// the blob digest), but the content is compressed. `frame_len` is the skippable frame's
    /// length; the zstd frame starts there.
    CompressedAfterSkippableFrame {
        /// Bytes of the skippable frame, header included.
        frame_len: u64,
    },
    /// An entry of a type that some extractors do not apply or apply differently: GNU sparse
    /// files (`S`), GNU dump directories (`D`). `offset` is its header's offset in the
    /// decoded stream; `typeflag` its type byte.
    ExtractorDependentEntry {
        /// Offset of the entry's header in the decoded stream.
        offset: u64,
        /// The type byte (`b'S'` or `b'D'`).
        typeflag: u8,
    },
    /// Bytes other than zeros follow the tar end-of-archive marker, from `offset` of the
    /// decoded stream on: Go's `archive/tar` (and so containers/image) stops at the marker
    /// and ignores them; other tools may not.
    DataAfterEndMarker {
        /// Offset of the first non-zero byte after the marker in the decoded stream.
        offset: u64,
    },
}

impl Warning {
    /// A short, stable, lowercase name of the kind: `empty_layer`,
    /// `compressed_after_skippable_frame`, `extractor_dependent_entry`,
    /// `data_after_end_marker`. Used as the `code` of the CLI's JSON and by C and Go.
    pub fn code(&self) -> &'static str {
        match self {
            Warning::EmptyLayer => "empty_layer",
            Warning::CompressedAfterSkippableFrame { .. } => "compressed_after_skippable_frame",
            Warning::ExtractorDependentEntry { .. } => "extractor_dependent_entry",
            Warning::DataAfterEndMarker { .. } => "data_after_end_marker",
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::EmptyLayer => f.write_str("empty layer: the tar stream has no entries"),
            Warning::CompressedAfterSkippableFrame { frame_len } => write!(
                f,
                "a zstd frame follows a leading {frame_len}-byte skippable frame: the blob \
                 is zstd-compressed, but containers/image (and so this report) takes it for \
                 an uncompressed stream"
            ),
            Warning::ExtractorDependentEntry { offset, typeflag } => {
                let what = match typeflag {
                    b'S' => "a GNU sparse file",
                    b'D' => "a GNU dump directory",
                    _ => "an unusual entry",
                };
                write!(
                    f,
                    "{what} (type '{}') at decoded byte {offset}: some extractors do not \
                     apply it or apply it differently",
                    char::from(*typeflag)
                )
            }
            Warning::DataAfterEndMarker { offset } => write!(
                f,
                "data after the tar end-of-archive marker, from decoded byte {offset}: \
                 containers/image ignores it, other tools may not"
            ),
        }
    }
}

/// Looks at the first bytes of a blob detected as uncompressed: the warning when they are a
/// zstd skippable frame followed by a zstd frame.
pub(crate) fn skippable_then_zstd(head: &[u8]) -> Option<Warning> {
    const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
    const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
    const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    let magic = u32::from_le_bytes(head.get(..4)?.try_into().ok()?);
    if magic & SKIPPABLE_MASK != SKIPPABLE_MAGIC {
        return None;
    }
    let len = u64::from(u32::from_le_bytes(head.get(4..8)?.try_into().ok()?)) + 8;
    let at = usize::try_from(len).ok()?;
    (head.get(at..at.checked_add(4)?)? == ZSTD_MAGIC)
        .then_some(Warning::CompressedAfterSkippableFrame { frame_len: len })
}
