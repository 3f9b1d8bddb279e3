//! bzip2 streams made rather than read: a one-block stream around a piece cut from the
//! input (and its decoding), and a synthetic stream prefix that puts a sequential decoder in the state it has at
//! a block start, its CRC forged to match.

use std::sync::atomic::{AtomicBool, Ordering};

use bzip2::{Action, Compress, Compression, Status};

use super::scan::{EOS_MAGIC, bits};

/// The most one block decodes to: 900 000 bytes after the first run-length stage, where 5
/// bytes stand for up to 259.
const BLOCK_OUT_MAX: usize = 900_000 / 5 * 259 + 5;

/// Writes bits, most significant first.
pub(super) struct BitWriter {
    pub(super) out: Vec<u8>,
    /// Bits used in the last byte of `out` (0 = all 8).
    used: u32,
}

impl BitWriter {
    pub(super) fn with_capacity(n: usize) -> BitWriter {
        BitWriter {
            out: Vec::with_capacity(n),
            used: 0,
        }
    }

    /// Appends the low `n <= 32` bits of `v`.
    pub(super) fn put(&mut self, v: u64, n: u32) {
        for i in (0..n).rev() {
            if self.used == 0 {
                self.out.push(0);
            }
            let bit = (v >> i) as u8 & 1;
            let last = self.out.last_mut().expect("a byte");
            *last |= bit << (7 - self.used);
            self.used = (self.used + 1) % 8;
        }
    }

    /// Appends `n` bits of `src` from bit `from`. `self` must be byte-aligned.
    pub(super) fn copy(&mut self, src: &[u8], from: u64, n: u64) {
        debug_assert_eq!(self.used, 0);
        let (at, shift) = ((from / 8) as usize, (from % 8) as u32);
        let whole = (n / 8) as usize;
        if shift == 0 {
            self.out.extend_from_slice(&src[at..at + whole]);
        } else {
            self.out.extend(
                src[at..at + whole]
                    .iter()
                    .zip(&src[at + 1..])
                    .map(|(&a, &b)| (a << shift) | (b >> (8 - shift))),
            );
        }
        let rest = (n % 8) as u32;
        if rest > 0 {
            self.put(bits(src, from + whole as u64 * 8, rest), rest);
        }
    }
}

/// A one-block stream of `level` holding the `n` bits of `src` from bit `from` (a block),
/// ended by the end-of-stream magic and `crc` as the combined CRC (a one-block stream's
/// combined CRC is its block's CRC).
pub(super) fn piece_stream(level: u8, src: &[u8], from: u64, n: u64, crc: u32) -> Vec<u8> {
    let mut w = BitWriter::with_capacity(n as usize / 8 + 16);
    w.out.extend_from_slice(b"BZh");
    w.out.push(b'0' + level);
    w.copy(src, from, n);
    w.put(EOS_MAGIC >> 16, 32);
    w.put(EOS_MAGIC & 0xffff, 16);
    w.put(u64::from(crc), 32);
    w.out
}

/// Decodes a one-block stream into `out` (its length set to what was decoded). `Err` if it
/// is not exactly one valid stream.
pub(super) fn decode_piece(
    stream: &[u8],
    out: &mut Vec<u8>,
    stop: &AtomicBool,
) -> std::result::Result<(), ()> {
    let mut d = super::raw::Decompress::new();
    out.clear();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(());
        }
        if out.capacity() - out.len() < 1 << 16 {
            if out.len() > BLOCK_OUT_MAX {
                return Err(());
            }
            out.reserve(out.len().max(1 << 20));
        }
        let (in0, out0) = (d.total_in() as usize, out.len());
        match d.decompress_vec(&stream[in0..], out) {
            Ok(Status::StreamEnd) => {
                // Also what containers/image's decoder accepts (see `gocheck.rs`): what the
                // notes say, else Go's reading of the stream.
                let notes = d.notes();
                return if d.total_in() as usize == stream.len()
                    && (super::gocheck::go_reads_alike(&notes) || {
                        let mut go = super::gocheck::GoCheck::full();
                        go.feed(stream, &notes).is_ok() && go.finish().is_ok()
                    }) {
                    Ok(())
                } else {
                    Err(())
                };
            }
            Ok(_) if d.total_in() as usize == in0 && out.len() == out0 => return Err(()),
            Ok(_) => {}
            Err(_) => return Err(()),
        }
    }
}

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04C1_1DB7
            } else {
                c << 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u32; 256] = crc_table();

/// One byte into a bzip2 CRC-32 register (start at `!0`, the CRC is the final `!register`).
#[inline]
pub(super) fn crc_update(c: u32, b: u8) -> u32 {
    (c << 8) ^ CRC_TABLE[usize::from((c >> 24) as u8 ^ b)]
}

/// bzip2's CRC-32 (polynomial 0x04C11DB7, most significant bit first).
pub(super) fn bz_crc(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, &b| crc_update(c, b))
}

/// Four bytes that, appended to `data`, give the bzip2 CRC `target` (the CRC is affine in
/// them, and the map is invertible).
pub(super) fn forge_crc(data: &[u8], target: u32) -> [u8; 4] {
    let crc_with = |x: u32| {
        let mut v = data.to_vec();
        v.extend_from_slice(&x.to_be_bytes());
        bz_crc(&v)
    };
    let base = crc_with(0);
    // Gaussian elimination: a basis of the columns, each with the bits of x that make it.
    let mut basis: Vec<(u32, u32)> = Vec::new();
    for i in 0..32 {
        let (mut col, mut mask) = (crc_with(1 << i) ^ base, 1u32 << i);
        for &(b, m) in &basis {
            if col ^ b < col {
                col ^= b;
                mask ^= m;
            }
        }
        if col != 0 {
            basis.push((col, mask));
            basis.sort_by_key(|a| std::cmp::Reverse(a.0));
        }
    }
    let (mut rest, mut x) = (target ^ base, 0u32);
    for &(b, m) in &basis {
        if rest ^ b < rest {
            rest ^= b;
            x ^= m;
        }
    }
    debug_assert_eq!(rest, 0);
    x.to_be_bytes()
}

/// The start of a synthetic stream of `level`: its header and one block whose CRC is
/// `crc`, `bits` long with `bits % 8 == align`, and how many bytes the block decodes to.
/// `None` if no such block was found (it always is, in practice, within a few tries).
pub(super) fn synthetic_prefix(level: u8, crc: u32, align: u64) -> Option<(Vec<u8>, u64, usize)> {
    for attempt in 0..1024u32 {
        let mut content: Vec<u8> = (0..attempt % 97)
            .map(|i| (attempt.wrapping_mul(2_654_435_761) >> (i % 24)) as u8 ^ i as u8)
            .collect();
        let tail = forge_crc(&content, crc);
        content.extend_from_slice(&tail);
        let mut c = Compress::new(Compression::new(1), 30);
        let mut out = Vec::with_capacity(content.len() * 2 + 1024);
        if !matches!(
            c.compress_vec(&content, &mut out, Action::Finish),
            Ok(Status::StreamEnd)
        ) {
            continue;
        }
        // The stream ends with the end-of-stream magic, the CRC and up to 7 padding bits.
        let total = out.len() as u64 * 8;
        let Some(eos) = (total.saturating_sub(87)..=total.saturating_sub(80))
            .find(|&b| b >= 32 + 48 && bits(&out, b, 48) == EOS_MAGIC)
        else {
            continue;
        };
        if eos % 8 == align {
            out.truncate(eos.div_ceil(8) as usize);
            out[3] = b'0' + level;
            return Some((out, eos, content.len()));
        }
    }
    None
}
