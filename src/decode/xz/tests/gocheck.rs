//! What containers/image's xz decoder (ulikunitz/xz, the version the Go reference pins)
//! refuses and xz-utils decodes: each such input is built here, checked against both
//! references (`xz -t` accepts it, the Go reference refuses it), and refused by us on the
//! sequential and the parallel paths, with the offset of the unit at fault.

use std::process::{Command, Stdio};

use super::super::lzma2::Lzma2Chunks;
use super::*;

/// containers/image's verdict (the Go reference, `DIFFID_ORACLE` or `target/oracle/oracle`)
/// and whether `xz -t` accepts, on `data`.
fn references(data: &[u8]) -> (serde_json::Value, bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob.xz");
    std::fs::write(&path, data).unwrap();
    let oracle = std::env::var_os("DIFFID_ORACLE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracle/oracle")
        });
    let out = Command::new(&oracle)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("the Go reference {oracle:?} (make oracle): {e}"));
    let go = serde_json::from_slice(&out.stdout).expect("the Go reference's JSON");
    let c_ok = Command::new("xz")
        .arg("-t")
        .arg(&path)
        .stderr(Stdio::null())
        .status()
        .expect("the xz program")
        .success();
    (go, c_ok)
}

fn vli(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn pad4(v: &mut Vec<u8>) {
    while v.len() % 4 != 0 {
        v.push(0);
    }
}

/// One xz stream (check CRC32) of blocks given as raw LZMA2 data and the bytes it decodes
/// to; each block header declares both sizes (so that the parallel decoder takes the block)
/// and a 64 KiB dictionary. Also returns where each block's data starts.
fn xz_stream(blocks: &[(Vec<u8>, Vec<u8>)]) -> (Vec<u8>, Vec<usize>) {
    xz_stream_dict(blocks, 16)
}

/// [`xz_stream`] with the dictionary size property `dict` (0: 4 KiB, 16: 64 KiB).
fn xz_stream_dict(blocks: &[(Vec<u8>, Vec<u8>)], dict: u8) -> (Vec<u8>, Vec<usize>) {
    let flags = [0u8, 1];
    let mut x = vec![0xfd, b'7', b'z', b'X', b'Z', 0];
    x.extend_from_slice(&flags);
    x.extend_from_slice(&crc32fast::hash(&flags).to_le_bytes());
    let mut records = Vec::new();
    let mut starts = Vec::new();
    for (raw, out) in blocks {
        let mut h = vec![0, 0xc0];
        vli(raw.len() as u64, &mut h);
        vli(out.len() as u64, &mut h);
        h.extend_from_slice(&[0x21, 1, dict]);
        pad4(&mut h);
        h[0] = (h.len() / 4) as u8;
        let crc = crc32fast::hash(&h);
        h.extend_from_slice(&crc.to_le_bytes());
        x.extend_from_slice(&h);
        starts.push(x.len());
        x.extend_from_slice(raw);
        pad4(&mut x);
        x.extend_from_slice(&crc32fast::hash(out).to_le_bytes());
        records.push(((h.len() + raw.len() + 4) as u64, out.len() as u64));
    }
    let mut index = vec![0];
    vli(records.len() as u64, &mut index);
    for (unpadded, size) in records {
        vli(unpadded, &mut index);
        vli(size, &mut index);
    }
    pad4(&mut index);
    let crc = crc32fast::hash(&index);
    index.extend_from_slice(&crc.to_le_bytes());
    x.extend_from_slice(&index);
    let mut back = ((index.len() / 4 - 1) as u32).to_le_bytes().to_vec();
    back.extend_from_slice(&flags);
    x.extend_from_slice(&crc32fast::hash(&back).to_le_bytes());
    x.extend_from_slice(&back);
    x.extend_from_slice(b"YZ");
    (x, starts)
}

/// Raw LZMA2 data of `data` as xz-utils writes it, end marker included.
fn raw_lzma2(data: &[u8]) -> Vec<u8> {
    compress(&["--format=raw", "--lzma2=preset=1,dict=64KiB"], data)
}

/// An LZMA chunk (new properties lc=0 lp=0 pb=0, state reset, no dictionary reset) whose
/// range coder starts from the bytes `00 FF FF FF FF`: code 0xFFFFFFFF, equal to the range.
/// While the code is not below the range every bit decodes as 1, and the difference stays
/// what the bytes read at each normalisation make it; the four bytes `51 CD 20 00` read at
/// the first four normalisations (after bits 9, 17, 25 and 33, ranges found by running the
/// decoder's arithmetic over those all-ones bits) make the code wrap round to exactly 0.
/// So: two repeat matches of 273 bytes at distance 1, one of 2, then (code 0, zero bytes)
/// every bit 0: literals 0x00, and the code is 0 at the end as liblzma requires. `zeros`
/// such literals follow. The dictionary must hold at least one byte before the chunk.
fn chunk_go_refuses(zeros: usize) -> Vec<u8> {
    let unpacked = 548 + zeros - 1;
    let packed = 9 + zeros - 1;
    let mut c = vec![
        0xc0 | (unpacked >> 16) as u8,
        (unpacked >> 8) as u8,
        unpacked as u8,
        (packed >> 8) as u8,
        packed as u8,
        0x00,
    ];
    c.extend_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0x51, 0xcd, 0x20, 0x00]);
    c.resize(c.len() + zeros, 0);
    c
}

/// The one condition in LZMA2 data (see `lzma2.rs`): a chunk whose range coder starts with
/// code 0xFFFFFFFF. Alone after an uncompressed chunk, and after chunks of real data in the
/// middle of a multi-block stream.
#[test]
fn lzma2_chunk_containers_image_refuses_is_refused() {
    let text = payload(150_000, 31);
    // Uncompressed chunk "A" (dictionary reset), the chunk, the end marker.
    let mut alone = vec![1, 0, 0, b'A'];
    alone.extend_from_slice(&chunk_go_refuses(11));
    alone.push(0);
    // xz-utils' chunks of `text` (its end marker dropped), the chunk, the end marker.
    let mut after = raw_lzma2(&text);
    assert_eq!(after.pop(), Some(0));
    let chunk_at = after.len();
    assert!(after.iter().filter(|&&c| c >= 0x80).count() > 1);
    after.extend_from_slice(&chunk_go_refuses(5));
    after.push(0);

    // What xz-utils makes of it: the block's true contents, for the header and the check.
    let expected = xz_dc_raw(&alone);
    assert_eq!(expected.len(), 1 + 548 + 11);
    assert!(expected[..549].iter().all(|&b| b == b'A') && expected[549..].iter().all(|&b| b == 0));
    let (single, starts_single) = xz_stream(&[(alone.clone(), expected.clone())]);
    let refused_after = xz_dc_raw(&after);
    let good = raw_lzma2(&text[..40_000]);
    let (mixed, starts_mixed) = xz_stream(&[
        (good.clone(), text[..40_000].to_vec()),
        (after.clone(), refused_after.clone()),
        (good, text[..40_000].to_vec()),
    ]);
    for (name, data, offset) in [
        ("alone", &single, starts_single[0] + 4),
        ("mixed", &mixed, starts_mixed[1] + chunk_at),
    ] {
        let (go, c_ok) = references(data);
        assert!(c_ok, "{name}: xz -t accepts it");
        let go_err = go["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: Go accepts: {go}"));
        assert!(
            go_err.contains("d.code >= d.nrange"),
            "{name}: Go says {go_err}"
        );
        for helpers in [0, 1, 3] {
            for feed in FEEDS {
                let e = decode_on(data, &Options::default(), feed, helpers).expect_err(name);
                assert_eq!(e.kind(), ErrorKind::Corrupt, "{name}: {e}");
                assert!(e.message().contains("containers/image"), "{name}: {e}");
                assert!(e.message().contains("block 2 of stream 1") == (name == "mixed"));
                assert_eq!(e.offset(), Some(offset as u64), "{name}, {feed:?}: {e}");
            }
        }
    }
}

/// What `xz -dc` makes of one block of raw LZMA2 data.
fn xz_dc_raw(raw: &[u8]) -> Vec<u8> {
    run_tool("xz", &["-dc", "--format=raw", "--lzma2=dict=64KiB"], raw)
        .expect("xz decodes the raw LZMA2 data")
}

/// The walker takes chunk data for data: `FF FF FF FF` inside an uncompressed chunk or past
/// the first five bytes of an LZMA chunk is no range coder start, and nothing after the end
/// marker is a chunk.
#[test]
fn lzma2_walker_looks_only_at_range_coder_starts() {
    let ff = [0xffu8; 8];
    let mut data = vec![1, 0, 7];
    data.extend_from_slice(&ff);
    // An LZMA chunk of 12 bytes whose start is ordinary and whose later bytes are 0xFF.
    data.extend_from_slice(&[0xe0, 0, 0, 0, 11, 0x5d, 0, 0x12, 0x34, 0x56, 0x78]);
    data.extend_from_slice(&ff[..7]);
    data.push(0);
    data.extend_from_slice(&[0x80, 0, 0, 0, 4, 0, 0xff, 0xff, 0xff, 0xff]);
    for piece in [1, 3, data.len()] {
        let mut w = Lzma2Chunks::new();
        for p in data.chunks(piece) {
            assert_eq!(w.feed(p), Ok(()), "pieces of {piece}");
        }
    }
    // The same LZMA chunk with the bad start, found in pieces of every size.
    let bad = [0x80, 0, 0, 0, 4, 0, 0xff, 0xff, 0xff, 0xff];
    let mut data = vec![1, 0, 7];
    data.extend_from_slice(&ff);
    data.extend_from_slice(&bad);
    for piece in 1..=data.len() {
        let mut w = Lzma2Chunks::new();
        let r = data.chunks(piece).map(|p| w.feed(p)).find(|r| r.is_err());
        let r = r.expect("found").unwrap_err();
        assert_eq!((r.chunk, r.chunk_start), (2, 11), "pieces of {piece}");
    }
}

/// The check types the format reserves or leaves to later versions (IDs other than none,
/// CRC32, CRC64 and SHA-256): xz-utils decodes the stream without verifying the check (a
/// warning: `xz -t` exits with status 2, `xz -t -Q` with 0), containers/image refuses it
/// ("xz: invalid flags"), and so do we, at the flags byte of the stream header.
#[test]
fn check_types_containers_image_refuses_are_refused() {
    let text = payload(30_000, 32);
    let empty = compress(&["--check=crc32"], b"");
    // IDs 0x02 and 0x03 have a 4-byte check field, as CRC32 has: a stream with data.
    let with_data = compress(&["--check=crc32", "-T2", "--block-size=10000"], &text);
    let mut cases = Vec::new();
    for id in (0..16).filter(|id| ![0, 1, 4, 10].contains(id)) {
        let mut xz = empty.clone();
        set_check(&mut xz, id);
        cases.push((id, xz));
    }
    for id in [2, 3] {
        let mut xz = with_data.clone();
        set_check(&mut xz, id);
        cases.push((id, xz));
    }
    for (id, xz) in cases {
        let (go, _) = references(&xz);
        let go_err = go["error"]
            .as_str()
            .unwrap_or_else(|| panic!("check 0x{id:02x}: Go accepts: {go}"));
        assert!(
            go_err.contains("invalid flags"),
            "check 0x{id:02x}: Go says {go_err}"
        );
        let quiet_ok = run_tool("xz", &["-t", "-Q"], &xz).is_some();
        assert!(quiet_ok, "check 0x{id:02x}: xz -t -Q accepts it");
        for helpers in [0, 3] {
            for feed in FEEDS {
                let e = decode_on(&xz, &Options::default(), feed, helpers)
                    .expect_err("unsupported check");
                assert_eq!(e.kind(), ErrorKind::Unsupported, "check 0x{id:02x}: {e}");
                assert!(e.message().contains("containers/image"), "{e}");
                assert_eq!(e.offset(), Some(7), "check 0x{id:02x}: {e}");
            }
        }
    }
}

/// Not a divergence, checked because it looks like one: ulikunitz/xz's dictionary is the size
/// the block header declares (its 8 MiB default applies only to a caller's `DictCap`, which
/// containers/image leaves at 0), as liblzma's is, so a match reaching further back is an
/// error in both ("writeMatch: distance out of range"; "Compressed data is corrupt").
#[test]
fn distances_beyond_the_declared_dictionary_both_reject() {
    let text = payload(20_000, 33);
    let data = [&text[..], &text[..]].concat();
    let raw = raw_lzma2(&data);
    let (fits, _) = xz_stream_dict(&[(raw.clone(), data.clone())], 16);
    let (short, _) = xz_stream_dict(&[(raw, data.clone())], 0);
    let (go, c_ok) = references(&fits);
    assert!(c_ok && go.get("error").is_none(), "64 KiB: {go}");
    assert_decodes(&fits, &Options::default(), &data);
    let (go, c_ok) = references(&short);
    assert!(!c_ok, "4 KiB: xz -t rejects it");
    let go_err = go["error"].as_str().expect("Go rejects it");
    assert!(go_err.contains("distance out of range"), "Go says {go_err}");
    assert_fails(&short, &Options::default(), ErrorKind::Corrupt);
}
