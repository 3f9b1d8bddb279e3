//! Finding the block and end-of-stream magics, which start at any bit offset.

use std::collections::VecDeque;

pub(super) const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
pub(super) const EOS_MAGIC: u64 = 0x1772_4538_5090;

/// `n <= 57` bits of `buf` from bit `bit` (most significant first), zero past its end.
pub(super) fn bits(buf: &[u8], bit: u64, n: u32) -> u64 {
    let at = (bit / 8) as usize;
    let mut w = [0u8; 8];
    let avail = buf.len().saturating_sub(at).min(8);
    w[..avail].copy_from_slice(&buf[at..at + avail]);
    (u64::from_be_bytes(w) << (bit % 8)) >> (64 - n)
}

/// For each byte value, the (magic, bit shift) pairs whose third byte it is: a magic at bit
/// `8 * i + k` has its byte `i + 2` equal to `(magic >> (24 + k)) & 0xff`.
const fn magic_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut k = 0;
    while k < 8 {
        t[((BLOCK_MAGIC >> (24 + k)) & 0xff) as usize] |= 1 << k;
        t[((EOS_MAGIC >> (24 + k)) & 0xff) as usize] |= 1 << (8 + k);
        k += 1;
    }
    t
}

static MAGIC_TABLE: [u16; 256] = magic_table();

/// Appends to `found` the bit offsets (relative to `buf`) in `from..to` where a block or
/// end-of-stream magic starts; the 48 bits from each `to - 1` must be in `buf`.
pub(super) fn scan(buf: &[u8], from: u64, to: u64, found: &mut VecDeque<u64>) {
    if from >= to {
        return;
    }
    // The third byte of a magic at bit b is byte b / 8 + 2.
    let first = (from / 8 + 2) as usize;
    let last = ((to - 1) / 8 + 2) as usize;
    for (j, &b) in buf[first..=last].iter().enumerate() {
        let hits = MAGIC_TABLE[usize::from(b)];
        if hits == 0 {
            continue;
        }
        let byte = (first + j - 2) as u64 * 8;
        for k in 0..8u64 {
            let bit = byte + k;
            if bit < from || bit >= to {
                continue;
            }
            let want = match (hits >> k & 1 != 0, hits >> (8 + k) & 1 != 0) {
                (false, false) => continue,
                (true, false) => Some(BLOCK_MAGIC),
                (false, true) => Some(EOS_MAGIC),
                (true, true) => None,
            };
            let got = bits(buf, bit, 48);
            if want.map_or(got == BLOCK_MAGIC || got == EOS_MAGIC, |m| got == m) {
                found.push_back(bit);
            }
        }
    }
}
