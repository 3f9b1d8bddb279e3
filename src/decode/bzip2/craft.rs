//! A small bzip2 block writer for tests: blocks the `bzip2` program never writes but libbzip2
//! reads (a randomised bit, a run-length count of 0 followed by the run's byte, Huffman tables
//! that are not complete codes), each with correct block and stream CRCs.

use super::forge::{BitWriter, bz_crc};
use super::scan::{BLOCK_MAGIC, EOS_MAGIC};

/// One block: `pre_rle` is the block's text *after* bzip2's first run-length stage (written
/// as is, canonical or not).
pub(super) struct Block {
    pub(super) pre_rle: Vec<u8>,
    pub(super) randomised: bool,
    /// Code lengths of each table (2 to 6 tables), `None` for a complete code; every group of
    /// 50 symbols uses table `use_table`.
    pub(super) tables: Vec<Option<Vec<u8>>>,
    pub(super) use_table: usize,
}

impl Block {
    pub(super) fn plain(pre_rle: &[u8]) -> Block {
        Block {
            pre_rle: pre_rle.to_vec(),
            randomised: false,
            tables: vec![None, None],
            use_table: 0,
        }
    }
}

/// What libbzip2 decodes `pre_rle` to: four equal bytes are followed by a count of more.
pub(super) fn libbzip2_output(pre_rle: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut last, mut run, mut i) = (None, 0, 0);
    while i < pre_rle.len() {
        let b = pre_rle[i];
        i += 1;
        out.push(b);
        if last == Some(b) {
            run += 1;
        } else {
            (last, run) = (Some(b), 1);
        }
        if run == 4 {
            if let Some(&k) = pre_rle.get(i) {
                out.extend(std::iter::repeat_n(b, usize::from(k)));
                i += 1;
            }
            (last, run) = (None, 0);
        }
    }
    out
}

/// A complete prefix code's lengths for `m >= 3` symbols.
pub(super) fn complete_lengths(m: usize) -> Vec<u8> {
    let k = usize::BITS - 1 - m.leading_zeros();
    let short = (1usize << (k + 1)) - m;
    (0..m)
        .map(|i| if i < short { k as u8 } else { k as u8 + 1 })
        .collect()
}

/// A stream of block size `level` holding `blocks`.
pub(super) fn stream(level: u8, blocks: &[Block]) -> Vec<u8> {
    let mut w = BitWriter::with_capacity(4096);
    w.out.extend_from_slice(b"BZh");
    w.out.push(b'0' + level);
    let mut combined = 0u32;
    for b in blocks {
        let crc = bz_crc(&libbzip2_output(&b.pre_rle));
        combined = combined.rotate_left(1) ^ crc;
        block(&mut w, b, crc);
    }
    w.put(EOS_MAGIC >> 16, 32);
    w.put(EOS_MAGIC & 0xffff, 16);
    w.put(u64::from(combined), 32);
    w.out
}

fn block(w: &mut BitWriter, b: &Block, crc: u32) {
    let p = &b.pre_rle;
    let n = p.len();
    // BWT by sorting the rotations.
    let mut rows: Vec<usize> = (0..n).collect();
    rows.sort_by(|&x, &y| {
        (0..n)
            .map(|i| p[(x + i) % n])
            .cmp((0..n).map(|i| p[(y + i) % n]))
    });
    let orig = rows.iter().position(|&r| r == 0).expect("row 0");
    let last: Vec<u8> = rows.iter().map(|&r| p[(r + n - 1) % n]).collect();
    // Move-to-front over the bytes used, zero runs as RUNA (0) / RUNB (1), then the end.
    let mut used = [false; 256];
    for &c in p {
        used[usize::from(c)] = true;
    }
    let mut list: Vec<u8> = (0..=255u8).filter(|&c| used[usize::from(c)]).collect();
    let in_use = list.len();
    let mut syms: Vec<u16> = Vec::new();
    let mut zeros = 0usize;
    let flush = |zeros: &mut usize, syms: &mut Vec<u16>| {
        if *zeros == 0 {
            return;
        }
        let mut z = *zeros - 1;
        loop {
            syms.push((z & 1) as u16);
            if z < 2 {
                break;
            }
            z = (z - 2) / 2;
        }
        *zeros = 0;
    };
    for &c in &last {
        let j = list.iter().position(|&x| x == c).expect("in the list");
        if j == 0 {
            zeros += 1;
            continue;
        }
        flush(&mut zeros, &mut syms);
        list.copy_within(0..j, 1);
        list[0] = c;
        syms.push(j as u16 + 1);
    }
    flush(&mut zeros, &mut syms);
    let alphabet = in_use + 2;
    syms.push(alphabet as u16 - 1);
    let tables: Vec<Vec<u8>> = b
        .tables
        .iter()
        .map(|t| t.clone().unwrap_or_else(|| complete_lengths(alphabet)))
        .collect();

    w.put(BLOCK_MAGIC >> 16, 32);
    w.put(BLOCK_MAGIC & 0xffff, 16);
    w.put(u64::from(crc), 32);
    w.put(u64::from(b.randomised), 1);
    w.put(orig as u64, 24);
    let ranges: u64 = (0..16)
        .filter(|r| (0..16).any(|s| used[16 * r + s]))
        .fold(0, |m, r| m | 1 << (15 - r));
    w.put(ranges, 16);
    for r in 0..16 {
        if ranges & (1 << (15 - r)) != 0 {
            let bits = (0..16)
                .filter(|&s| used[16 * r + s])
                .fold(0u64, |m, s| m | 1 << (15 - s));
            w.put(bits, 16);
        }
    }
    w.put(tables.len() as u64, 3);
    let selectors = syms.len().div_ceil(50);
    w.put(selectors as u64, 15);
    // Every selector names `use_table`: the first as its place in 0, 1, ..., then 0.
    for i in 0..selectors {
        let j = if i == 0 { b.use_table } else { 0 };
        for _ in 0..j {
            w.put(1, 1);
        }
        w.put(0, 1);
    }
    for t in &tables {
        let mut cur = t[0];
        w.put(u64::from(cur), 5);
        for &l in t {
            while cur < l {
                w.put(0b10, 2);
                cur += 1;
            }
            while cur > l {
                w.put(0b11, 2);
                cur -= 1;
            }
            w.put(0, 1);
        }
    }
    // libbzip2's canonical codes of the table used.
    let lens = &tables[b.use_table];
    let mut codes = vec![0u32; alphabet];
    let mut next = 0u32;
    for len in 1..=20u8 {
        for (i, &l) in lens.iter().enumerate() {
            if l == len {
                codes[i] = next;
                next += 1;
            }
        }
        next <<= 1;
    }
    for &s in &syms {
        w.put(
            u64::from(codes[usize::from(s)]),
            u32::from(lens[usize::from(s)]),
        );
    }
}

/// bzip2's first run-length stage as the `bzip2` program does it: runs of 4 to 255 equal
/// bytes become the byte four times and a count of the rest.
pub(super) fn rle1(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let run = text[i..].iter().take(255).take_while(|&&c| c == b).count();
        if run >= 4 {
            out.extend_from_slice(&[b, b, b, b, (run - 4) as u8]);
        } else {
            out.extend(std::iter::repeat_n(b, run));
        }
        i += run;
    }
    out
}
