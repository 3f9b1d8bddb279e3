//! What verifying an image found: one [`ImageReport`] per image, one [`LayerReport`] per
//! layer, and a [`Problem`] for each failed check.

use std::fmt;

use crate::detect::Format;
use crate::error::ErrorKind;

/// Which check failed. The names ([`ProblemKind::name`]) are stable: the CLI prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// A blob named by a descriptor or a manifest is not in the image.
    MissingBlob,
    /// A blob's size differs from its descriptor's `size`.
    SizeMismatch,
    /// A blob's content does not hash to the digest naming it (its descriptor, its
    /// `blobs/<alg>/<hex>` path).
    DigestMismatch,
    /// A layer's DiffID differs from the config's `rootfs.diff_ids` entry at its position.
    DiffIdMismatch,
    /// The manifest and the config's `rootfs.diff_ids` list different numbers of layers.
    LayerCount,
    /// A layer's media type does not name the compression detected from its bytes.
    MediaTypeMismatch,
    /// A layer could not be decoded (corrupt, truncated, a limit hit ...): the error's kind.
    Decode(ErrorKind),
    /// A manifest or config is not valid JSON of its type, or names a blob in a way that
    /// cannot be followed (an invalid digest, an unsafe path).
    Invalid,
}

impl ProblemKind {
    /// A short, stable, lowercase name: `missing_blob`, `size_mismatch`, `digest_mismatch`,
    /// `diff_id_mismatch`, `layer_count`, `media_type_mismatch`, `invalid`, and for a decode
    /// error the [`ErrorKind::name`] of the error (`corrupt`, `truncated`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::MissingBlob => "missing_blob",
            ProblemKind::SizeMismatch => "size_mismatch",
            ProblemKind::DigestMismatch => "digest_mismatch",
            ProblemKind::DiffIdMismatch => "diff_id_mismatch",
            ProblemKind::LayerCount => "layer_count",
            ProblemKind::MediaTypeMismatch => "media_type_mismatch",
            ProblemKind::Decode(kind) => kind.name(),
            ProblemKind::Invalid => "invalid",
        }
    }
}

/// One failed check: which, and a message naming the file and both values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(kind: ProblemKind, message: impl Into<String>) -> Self {
        Problem {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

/// One layer of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerReport {
    /// Position in the manifest, from 0 (base layer).
    pub index: usize,
    /// Where the blob is inside the image (`blobs/sha256/…`, `<id>/layer.tar`).
    pub path: String,
    /// The media type the manifest gives it (a `docker save` manifest gives none).
    pub media_type: Option<String>,
    /// Detected compression, when the blob could be read.
    pub format: Option<Format>,
    /// The blob's size in bytes, when it exists.
    pub size: Option<u64>,
    /// The computed blob digest and DiffID, when the blob decoded.
    pub blob_digest: Option<String>,
    pub diff_id: Option<String>,
    /// Failed checks; empty when the layer is verified.
    pub problems: Vec<Problem>,
}

impl LayerReport {
    /// Whether every check of this layer passed.
    pub fn verified(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One image: a manifest, its config, its layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReport {
    /// A name for people: the reference name or repo tag when the image has one, else the
    /// manifest digest (or config file of a `docker save` archive).
    pub name: String,
    /// The manifest's digest (OCI layouts; `None` for a classic `docker save` entry).
    pub manifest: Option<String>,
    /// `os/arch[/variant]`, from the index descriptor or else the config, when known.
    pub platform: Option<String>,
    /// The config's path in the image.
    pub config: Option<String>,
    /// Failed checks of the manifest and config (digest, size, JSON, layer count).
    pub problems: Vec<Problem>,
    pub layers: Vec<LayerReport>,
}

impl ImageReport {
    /// Whether the manifest, the config and every layer passed every check.
    pub fn verified(&self) -> bool {
        self.problems.is_empty() && self.layers.iter().all(LayerReport::verified)
    }

    /// Every problem of the image and of its layers, image first.
    pub fn all_problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .chain(self.layers.iter().flat_map(|l| l.problems.iter()))
    }
}
