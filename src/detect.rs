//! Format detection: the first bytes of the blob, exact prefixes, nothing else — the same
//! rule as containers/image's `compression.DetectCompressionFormat`.

use std::fmt;

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Format {
    /// Not compressed (or not a compression we recognise): the blob is the tar stream.
    None = 0,
    Gzip = 1,
    Bzip2 = 2,
    Xz = 3,
    Zstd = 4,
}

/// How many leading bytes detection looks at.
pub const DETECT_LEN: usize = 8;

const PREFIXES: [(&[u8], Format); 4] = [
    (&[0x1f, 0x8b, 0x08], Format::Gzip),
    (b"BZh", Format::Bzip2),
    (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Format::Xz),
    (&[0x28, 0xb5, 0x2f, 0xfd], Format::Zstd),
];

/// The format of a blob whose first bytes are `head` (at least [`DETECT_LEN`] bytes, or the
/// whole blob when it is shorter). Anything without one of the four magic prefixes — an
/// empty blob, a leading zstd skippable frame, `.lzma`, lz4, a bare `1F 8B` — is
/// [`Format::None`].
pub fn detect(head: &[u8]) -> Format {
    PREFIXES
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map_or(Format::None, |&(_, format)| format)
}

impl Format {
    /// The lowercase name used by the CLI, the C ABI and the Go package:
    /// `none`, `gzip`, `bzip2`, `xz`, `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Format::None => "none",
            Format::Gzip => "gzip",
            Format::Bzip2 => "bzip2",
            Format::Xz => "xz",
            Format::Zstd => "zstd",
        }
    }

    /// The layer media type containers/image (v5.34.3 and later) records for a blob of this
    /// format. bzip2 and xz have no OCI media type; like containers/image we report `+gzip`
    /// for them.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::None => "application/vnd.oci.image.layer.v1.tar",
            Format::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Format::Gzip | Format::Bzip2 | Format::Xz => {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            }
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefixes_only() {
        assert_eq!(detect(b""), Format::None);
        assert_eq!(detect(&[0x1f, 0x8b]), Format::None);
        assert_eq!(detect(&[0x1f, 0x8b, 0x07]), Format::None);
        assert_eq!(detect(&[0x1f, 0x8b, 0x08]), Format::Gzip);
        assert_eq!(detect(b"BZh9"), Format::Bzip2);
        assert_eq!(detect(b"BZ"), Format::None);
        assert_eq!(
            detect(&[0xfd, b'7', b'z', b'X', b'Z', 0x00, 0, 4]),
            Format::Xz
        );
        assert_eq!(detect(&[0xfd, b'7', b'z', b'X', b'Z', 0x01]), Format::None);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd, 0x24]), Format::Zstd);
        // A leading skippable frame, LZMA-alone and lz4 are not detected.
        assert_eq!(detect(&[0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]), Format::None);
        assert_eq!(detect(&[0x5d, 0, 0, 0x80, 0]), Format::None);
        assert_eq!(detect(&[0x04, 0x22, 0x4d, 0x18]), Format::None);
    }
}
