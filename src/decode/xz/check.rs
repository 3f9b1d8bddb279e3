//! The integrity check of an xz stream, and its running value over one block's data.

use liblzma_sys as lz;
use sha2::{Digest as _, Sha256};

/// The integrity check of a stream: the four types containers/image knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    None,
    Crc32,
    Crc64,
    Sha256,
}

impl Check {
    pub(super) fn from_id(id: u8) -> Option<Check> {
        match id {
            0x00 => Some(Check::None),
            0x01 => Some(Check::Crc32),
            0x04 => Some(Check::Crc64),
            0x0a => Some(Check::Sha256),
            _ => None,
        }
    }

    pub(super) fn size(self) -> usize {
        match self {
            Check::None => 0,
            Check::Crc32 => 4,
            Check::Crc64 => 8,
            Check::Sha256 => 32,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Check::None => "none",
            Check::Crc32 => "CRC32",
            Check::Crc64 => "CRC64",
            Check::Sha256 => "SHA-256",
        }
    }

    pub(super) fn lzma(self) -> lz::lzma_check {
        match self {
            Check::None => lz::LZMA_CHECK_NONE,
            Check::Crc32 => lz::LZMA_CHECK_CRC32,
            Check::Crc64 => lz::LZMA_CHECK_CRC64,
            Check::Sha256 => lz::LZMA_CHECK_SHA256,
        }
    }
}

/// The running integrity check of one block's decoded data. We compute it ourselves (liblzma
/// is told to ignore it) so that a mismatch gets its own message instead of liblzma's one
/// "data is corrupt" code.
pub(super) enum CheckState {
    None,
    Crc32(crc32fast::Hasher),
    Crc64(u64),
    Sha256(Box<Sha256>),
}

impl CheckState {
    pub(super) fn new(check: Check) -> CheckState {
        match check {
            Check::None => CheckState::None,
            Check::Crc32 => CheckState::Crc32(crc32fast::Hasher::new()),
            Check::Crc64 => CheckState::Crc64(0),
            Check::Sha256 => CheckState::Sha256(Box::default()),
        }
    }

    pub(super) fn update(&mut self, data: &[u8]) {
        match self {
            CheckState::None => {}
            CheckState::Crc32(h) => h.update(data),
            CheckState::Crc64(crc) => {
                // SAFETY: `data` is a valid slice for reads of `data.len()` bytes and
                // lzma_crc64 only reads that range.
                *crc = unsafe { lz::lzma_crc64(data.as_ptr(), data.len(), *crc) };
            }
            CheckState::Sha256(h) => h.update(data),
        }
    }

    /// The check value as it is stored after the block (little-endian CRCs).
    pub(super) fn finish(&mut self) -> Vec<u8> {
        match std::mem::replace(self, CheckState::None) {
            CheckState::None => Vec::new(),
            CheckState::Crc32(h) => h.finalize().to_le_bytes().to_vec(),
            CheckState::Crc64(crc) => crc.to_le_bytes().to_vec(),
            CheckState::Sha256(h) => h.finalize().to_vec(),
        }
    }
}
