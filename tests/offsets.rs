//! Errors say where: a fault injected at a known place in every format is reported with the
//! unit it is in (member, frame, block, stream) and the right offset in the blob, on the
//! sequential path (one thread) and on the parallel ones (several small zstd frames, xz
//! blocks with sizes in their headers, bzip2 blocks).
//!
//! The places are computed here from the blob's own structure, parsed by this file (gzip
//! member lengths, zstd block headers, the xz index), never taken from diffid.

mod common;

use common::*;
use diffid::{Error, ErrorKind, Format, Options, digest_bytes};

/// The error of digesting `blob` with `threads` threads (1: sequential; 4: the parallel
/// decoders, when the input splits).
fn error(blob: &[u8], threads: usize) -> Error {
    let opts = Options {
        threads,
        ..Options::default()
    };
    digest_bytes(blob, &opts).expect_err("a faulty blob must not digest")
}

/// The same error, whatever the threads; returned for the checks.
fn same_error(blob: &[u8]) -> Error {
    let one = error(blob, 1);
    for threads in [2, 4] {
        let many = error(blob, threads);
        assert_eq!(
            (many.kind(), many.offset()),
            (one.kind(), one.offset()),
            "{threads} threads: {many} / 1 thread: {one}"
        );
    }
    one
}

fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    rng.bytes(len, true)
}

// ---- gzip ---------------------------------------------------------------------------------

#[test]
fn gzip_faults_in_the_second_member() {
    let a = gzip(&payload(1, 300_000));
    let b = gzip(&payload(2, 700_000));
    let blob = [a.clone(), b.clone()].concat();
    let end = blob.len();

    // The trailer's CRC32 (its first 4 bytes) of member 2.
    let mut bad = blob.clone();
    bad[end - 8] ^= 1;
    let e = same_error(&bad);
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert_eq!(e.format(), Some(Format::Gzip));
    assert_eq!(e.offset(), Some((end - 8) as u64), "{e}");
    assert!(e.message().contains("member 2"), "{e}");
    assert!(
        e.message().contains(&format!("starts at byte {}", a.len())),
        "{e}"
    );

    // ISIZE (the trailer's last 4 bytes).
    let mut bad = blob.clone();
    bad[end - 4] ^= 1;
    let e = same_error(&bad);
    assert_eq!(e.offset(), Some((end - 4) as u64), "{e}");

    // Cut inside member 2's deflate data: the fault is where the input ends.
    let cut = a.len() + b.len() / 2;
    let e = same_error(&blob[..cut]);
    assert_eq!(e.kind(), ErrorKind::Truncated, "{e}");
    assert_eq!(e.offset(), Some(cut as u64), "{e}");
    assert!(e.message().contains("member 2"), "{e}");

    // Invalid deflate data in member 2 (a block type 3 at its first deflate byte, after the
    // 10-byte header): at or after that byte, inside member 2.
    let mut bad = blob.clone();
    bad[a.len() + 10] |= 0b110;
    let e = same_error(&bad);
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let at = e.offset().unwrap();
    assert!(
        at >= (a.len() + 10) as u64 && at < end as u64,
        "{e}: not inside member 2's data"
    );
}

// ---- zstd ---------------------------------------------------------------------------------

/// `(start, is_checksum)` of every block and checksum of the zstd frame at `at` in `blob`,
/// and the frame's end.
fn zstd_units(blob: &[u8], at: usize) -> (Vec<(usize, bool)>, usize) {
    assert_eq!(&blob[at..at + 4], &[0x28, 0xb5, 0x2f, 0xfd]);
    let fhd = blob[at + 4];
    let single = fhd & 0x20 != 0;
    let fcs = match fhd >> 6 {
        0 => usize::from(single),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let mut pos = at + 5 + usize::from(!single) + [0, 1, 2, 4][usize::from(fhd & 3)] + fcs;
    let mut units = Vec::new();
    loop {
        let h = u32::from_le_bytes([blob[pos], blob[pos + 1], blob[pos + 2], 0]);
        let (last, kind, size) = (h & 1 != 0, (h >> 1) & 3, (h >> 3) as usize);
        units.push((pos, false));
        pos += 3 + if kind == 1 { 1 } else { size };
        if last {
            break;
        }
    }
    if fhd & 4 != 0 {
        units.push((pos, true));
        pos += 4;
    }
    (units, pos)
}

#[test]
fn zstd_faults_name_the_block_and_frame() {
    // Small frames (the parallel decoder cuts them out), the second with several blocks.
    let frames: Vec<Vec<u8>> = (0..6)
        .map(|i| zstd(&payload(10 + i, 400_000), &["--check", "-1"]))
        .collect();
    let blob = frames.concat();
    let f2 = frames[0].len();
    let (units, f2_end) = zstd_units(&blob, f2);
    assert_eq!(f2_end, f2 + frames[1].len());
    let blocks: Vec<usize> = units.iter().filter(|u| !u.1).map(|u| u.0).collect();
    assert!(blocks.len() >= 3, "want a frame of several blocks");
    let checksum = units.last().unwrap().0;

    // The content checksum of frame 2.
    let mut bad = blob.clone();
    bad[checksum] ^= 1;
    let e = same_error(&bad);
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert_eq!(e.format(), Some(Format::Zstd));
    assert_eq!(e.offset(), Some(checksum as u64), "{e}");
    assert!(e.message().contains("checksum of frame 2"), "{e}");

    // A byte in the middle of block 3 of frame 2: libzstd finds it in that block (or, if the
    // damage decodes, by the checksum); never at another place.
    let mut bad = blob.clone();
    let mid = (blocks[2] + blocks[3.min(blocks.len() - 1)].max(blocks[2] + 8)) / 2;
    for b in &mut bad[mid..mid + 4] {
        *b ^= 0x5a;
    }
    let e = same_error(&bad);
    let at = e.offset().unwrap() as usize;
    if at == checksum {
        assert!(e.message().contains("checksum of frame 2"), "{e}");
    } else {
        assert_eq!(at, blocks[2], "{e}");
        assert!(e.message().contains("block 3 of frame 2"), "{e}");
    }

    // Cut inside block 2 of frame 2.
    let cut = blocks[1] + 100;
    let e = same_error(&blob[..cut]);
    assert_eq!(e.kind(), ErrorKind::Truncated, "{e}");
    assert_eq!(e.offset(), Some(cut as u64), "{e}");
    assert!(e.message().contains("block 2 of frame 2"), "{e}");
    assert!(
        e.message()
            .contains(&format!("starts at byte {}", blocks[1])),
        "{e}"
    );

    // Bytes after the last frame that are no frame: where they start.
    let e = same_error(&[blob.clone(), b"garbage!".to_vec()].concat());
    assert_eq!(e.kind(), ErrorKind::TrailingData, "{e}");
    assert_eq!(e.offset(), Some(blob.len() as u64), "{e}");
}

#[test]
fn zstd_one_large_frame_is_not_byte_0() {
    // One frame (as `zstd` writes any file): a checksum fault 0.8 MB in is not "byte 0".
    let blob = zstd(&payload(20, 3_000_000), &["--check", "-3"]);
    let (units, end) = zstd_units(&blob, 0);
    assert_eq!(end, blob.len());
    let checksum = units.last().unwrap().0;
    let mut bad = blob.clone();
    bad[checksum + 2] ^= 0x80;
    let e = same_error(&bad);
    assert_eq!(e.offset(), Some(checksum as u64), "{e}");
    let cut = blob.len() / 2;
    let e = same_error(&blob[..cut]);
    assert_eq!(e.offset(), Some(cut as u64), "{e}");
    assert!(e.message().contains("of frame 1"), "{e}");
}

// ---- xz -----------------------------------------------------------------------------------

fn vli(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    for i in 0..9 {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

/// `(start, unpadded size)` of every block of the one-stream xz `blob`, from its index.
fn xz_blocks(blob: &[u8]) -> Vec<(usize, usize)> {
    let footer = blob.len() - 12;
    let backward =
        (u32::from_le_bytes(blob[footer + 4..footer + 8].try_into().unwrap()) as usize + 1) * 4;
    let mut pos = footer - backward;
    assert_eq!(blob[pos], 0, "index indicator");
    pos += 1;
    let n = vli(blob, &mut pos);
    let mut start = 12;
    (0..n)
        .map(|_| {
            let unpadded = vli(blob, &mut pos) as usize;
            let _uncompressed = vli(blob, &mut pos);
            let block = (start, unpadded);
            start += unpadded.div_ceil(4) * 4;
            block
        })
        .collect()
}

#[test]
fn xz_padding_and_check_faults() {
    // Several blocks with sizes in their headers (the parallel decoder splits them), and
    // one with -T1 (no sizes: decoded as it streams).
    let mut tried = 0;
    for (args, len) in [
        (&["-T2", "--block-size=300000", "-1"][..], 1_500_000),
        (&["-1"][..], 700_000),
    ] {
        // A block whose compressed data does not end on a multiple of 4 has padding.
        let (blob, blocks) = (0..40)
            .map(|extra| {
                let blob = must(
                    "xz",
                    &[&["-c", "-q"][..], args].concat(),
                    &payload(30, len + extra),
                );
                let blocks = xz_blocks(&blob);
                (blob, blocks)
            })
            .find(|(_, blocks)| blocks.iter().any(|&(_, u)| u % 4 != 0))
            .expect("a block with padding");
        tried += 1;
        let (k, &(start, unpadded)) = blocks
            .iter()
            .enumerate()
            .rfind(|(_, (_, u))| u % 4 != 0)
            .unwrap();
        let check = 8; // CRC64, xz's default
        let padding = start + unpadded - check;
        let mut bad = blob.clone();
        bad[padding] = 0x55;
        let e = same_error(&bad);
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert_eq!(e.format(), Some(Format::Xz));
        assert!(e.message().contains("block padding is not zero"), "{e}");
        assert!(e.message().contains(&format!("block {}", k + 1)), "{e}");
        assert_eq!(e.offset(), Some(padding as u64), "{e}");

        // The block's CRC64: the check field's first byte.
        let check_at = start + unpadded.div_ceil(4) * 4 - check;
        let mut bad = blob.clone();
        bad[check_at + 3] ^= 1;
        let e = same_error(&bad);
        assert!(e.message().contains("integrity check"), "{e}");
        assert_eq!(e.offset(), Some(check_at as u64), "{e}");
    }
    assert_eq!(tried, 2);
}

// ---- bzip2 --------------------------------------------------------------------------------

/// Bit offsets of every 48-bit `magic` in `data` (bzip2 units start at any bit).
fn bit_magics(data: &[u8], magic: u64) -> Vec<u64> {
    let mut found = Vec::new();
    let mut window = 0u64;
    for (i, &byte) in data.iter().enumerate() {
        for k in (0..8).rev() {
            window = ((window << 1) | u64::from(byte >> k & 1)) & ((1 << 48) - 1);
            let end = i as u64 * 8 + (8 - k);
            if end >= 48 && window == magic {
                found.push(end - 48);
            }
        }
    }
    found
}

const BZ_BLOCK: u64 = 0x3141_5926_5359;
const BZ_END: u64 = 0x1772_4538_5090;

#[test]
fn bzip2_faults_name_the_block() {
    let a = bzip2(&payload(40, 200_000));
    let b = bzip2(&payload(41, 2_500_000)); // three blocks at level 9
    let blob = [a.clone(), b.clone()].concat();
    // Stream 2's units, found from the bits themselves.
    let base = a.len() as u64 * 8;
    let blocks: Vec<u64> = bit_magics(&b, BZ_BLOCK).iter().map(|&x| x + base).collect();
    let ends: Vec<u64> = bit_magics(&b, BZ_END).iter().map(|&x| x + base).collect();
    assert_eq!((blocks.len(), ends.len()), (3, 1), "stream 2's units");

    // Cut inside stream 2's second block: the offset is the end, the message names the block.
    let cut = a.len() + b.len() / 2;
    assert!(blocks[1] / 8 < cut as u64 && (cut as u64) < blocks[2] / 8);
    let e = same_error(&blob[..cut]);
    assert_eq!(e.kind(), ErrorKind::Truncated, "{e}");
    assert_eq!(e.format(), Some(Format::Bzip2));
    assert_eq!(e.offset(), Some(cut as u64), "{e}");
    assert!(
        e.message().contains(&format!(
            "inside block 2 of stream 2 (the block starts at bit {}",
            blocks[1]
        )),
        "{e}"
    );
    assert!(
        e.message()
            .contains(&format!("the stream at byte {}", a.len())),
        "{e}"
    );

    // Damage inside stream 2's second block: the offset is the byte holding the block's
    // first bit, on every path (the decoder reads ahead by up to 8 bytes, so where it
    // stopped is no property of the data).
    let at = (blocks[1] / 8 + 5000) as usize;
    assert!(at < (blocks[2] / 8) as usize);
    let mut bad = blob.clone();
    for x in &mut bad[at..at + 16] {
        *x ^= 0xa5;
    }
    let e = same_error(&bad);
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert_eq!(e.offset(), Some(blocks[1] / 8), "{e}");
    assert!(e.message().contains("block 2 of stream 2"), "{e}");
    let same = |e: &Error| {
        for threads in [2, 4] {
            assert_eq!(
                error(&bad, threads).message(),
                e.message(),
                "{threads} threads"
            );
        }
    };
    same(&e);

    // A bit flipped in the third block's magic: the fault is the header after block 2.
    let mut bad = blob.clone();
    let bit = blocks[2] + 20;
    bad[(bit / 8) as usize] ^= 0x80 >> (bit % 8);
    let e = same_error(&bad);
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert_eq!(e.offset(), Some(blocks[2] / 8), "{e}");
    assert!(
        e.message().contains("the header after block 2 of stream 2"),
        "{e}"
    );
    assert!(
        e.message().contains(&format!("at bit {}", blocks[2])),
        "{e}"
    );

    // A bit flipped in stream 2's combined CRC (the 32 bits after its end-of-stream magic):
    // the fault is the end-of-stream marker.
    let mut bad = blob.clone();
    let bit = ends[0] + 48 + 7;
    bad[(bit / 8) as usize] ^= 0x80 >> (bit % 8);
    let e = same_error(&bad);
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert_eq!(e.offset(), Some(ends[0] / 8), "{e}");
    assert!(e.message().contains("at the end of stream 2"), "{e}");

    // Damage in stream 1's only block: block 1 of stream 1, at its start.
    let first = bit_magics(&a, BZ_BLOCK);
    assert_eq!(first.len(), 1);
    let mut bad = blob.clone();
    for x in &mut bad[a.len() / 2..a.len() / 2 + 8] {
        *x ^= 0x5a;
    }
    let e = same_error(&bad);
    assert_eq!(e.offset(), Some(first[0] / 8), "{e}");
    assert!(e.message().contains("block 1 of stream 1"), "{e}");
}

// ---- format and options -------------------------------------------------------------------

#[test]
fn errors_after_detection_keep_the_format() {
    let tar = tar_of(&[("a".to_string(), payload(50, 5000))]);
    let require = Options {
        require_tar: true,
        ..Options::default()
    };
    let e = digest_bytes(b"not a tar archive", &require).unwrap_err();
    assert_eq!(
        (e.kind(), e.format()),
        (ErrorKind::InvalidTar, Some(Format::None))
    );
    let e = digest_bytes(&gzip(b"not a tar archive"), &require).unwrap_err();
    assert_eq!(
        (e.kind(), e.format()),
        (ErrorKind::InvalidTar, Some(Format::Gzip))
    );
    assert_eq!(e.offset(), None);
    let small = Options {
        max_size: Some(100),
        ..Options::default()
    };
    let e = digest_bytes(&tar, &small).unwrap_err();
    assert_eq!(
        (e.kind(), e.format()),
        (ErrorKind::LimitExceeded, Some(Format::None))
    );
    assert!(!e.to_string().starts_with("none:"), "{e}");
}

#[test]
fn zero_limits_mean_no_limit_and_the_default() {
    let tar = tar_of(&[("a".to_string(), payload(51, 50_000))]);
    for blob in [tar.clone(), gzip(&tar), xz(&tar, &[])] {
        let zero = Options {
            max_size: Some(0),
            decoder_memory_limit: 0,
            ..Options::default()
        };
        let r = digest_bytes(&blob, &zero).expect("0 is no limit / the default");
        assert_eq!(r.diff_id.to_string(), openssl("sha256", &tar));
    }
}
