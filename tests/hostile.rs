//! Hostile input: truncated and corrupted blobs in every format.
//!
//! The promise: whatever bytes arrive, the answer is an error, or exactly the digests that
//! independent references compute for those same bytes — never a digest of something else.
//! The references are containers/image's own code (the Go oracle) and the system's C
//! decoder (`gzip -dc`, `bzip2 -dc`, `xz -dc`, `zstd -dc`) hashed by `openssl dgst`. The
//! policy of compat.md is that we accept exactly what *both* accept, so every case checks
//!
//!   ours is Ok  <=>  Go accepts and the C decoder accepts,
//!
//! and, when Ok, our DiffID = Go's DiffID = sha256(C decoder's output) by openssl.
//! (Command-line tools are lenient about trailing bytes, Go is not: the conjunction is
//! the policy, so their leniency is harmless here.)
//!
//! On top of that, truncations are checked against what the construction tells: a prefix
//! is a valid blob only when it is shorter than the magic (then it is not compressed at
//! all) or ends exactly at a member / stream / frame boundary.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use diffid::{Digester, ErrorKind, Format, Options, Report, digest_bytes};
use serde_json::Value;

/// A valid blob and what the construction knows about it.
struct Sample {
    name: &'static str,
    blob: Vec<u8>,
    format: Format,
    /// The decoded stream.
    decoded: Vec<u8>,
    /// `(compressed offset, decoded length)` of every point where a prefix of the blob is
    /// itself a complete valid blob (member, stream or frame boundaries), the end excluded.
    boundaries: Vec<(usize, usize)>,
}

/// Concatenates parts (each `(blob, decoded)`) and records the boundaries between them.
fn joined(
    name: &'static str,
    format: Format,
    parts: &[(Vec<u8>, Vec<u8>)],
    boundary_after: &[bool],
) -> Sample {
    let (mut blob, mut decoded, mut boundaries) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (b, d)) in parts.iter().enumerate() {
        blob.extend_from_slice(b);
        decoded.extend_from_slice(d);
        if i + 1 < parts.len() && boundary_after.get(i).copied().unwrap_or(true) {
            boundaries.push((blob.len(), decoded.len()));
        }
    }
    Sample {
        name,
        blob,
        format,
        decoded,
        boundaries,
    }
}

fn single(name: &'static str, format: Format, blob: Vec<u8>, decoded: &[u8]) -> Sample {
    joined(name, format, &[(blob, decoded.to_vec())], &[])
}

/// A gzip member written by hand with a file name, a comment and an extra field (the
/// header fields a flip can change without any check noticing).
fn gzip_with_fields(data: &[u8]) -> Vec<u8> {
    let mut h = vec![0x1f, 0x8b, 8, 4 | 8 | 16, 0x12, 0x34, 0x56, 0x78, 0, 3];
    h.extend_from_slice(&6u16.to_le_bytes());
    h.extend_from_slice(b"AB\x02\x00hi");
    h.extend_from_slice(b"layer.tar\0a comment\0");
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    h.extend_from_slice(&enc.finish().unwrap());
    h.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    h.extend_from_slice(&(data.len() as u32).to_le_bytes());
    h
}

/// A small layer: a few files, some compressible, some not.
fn small_layer(seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    tar_of(&[
        ("etc/hostname".into(), b"diffid\n".to_vec()),
        ("usr/share/doc/readme".into(), rng.bytes(600, true)),
        ("bin/tool".into(), rng.bytes(200, false)),
    ])
}

/// A layer of about `size` bytes.
fn larger_layer(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut entries = Vec::new();
    let mut total = 0;
    let mut i = 0;
    while total < size {
        let n = 1000 + rng.below(200_000) as usize;
        entries.push((format!("files/f{i:04}"), rng.bytes(n, i % 3 != 0)));
        total += n + 1024;
        i += 1;
    }
    tar_of(&entries)
}

/// Every format and structure, built from `layer` with the system's tools.
fn samples(layer: &[u8], zstd_block: bool) -> Vec<Sample> {
    use Format::*;
    let third = layer.len() / 3;
    let (a, rest) = layer.split_at(third);
    let (b, c) = rest.split_at(third);
    let part = |f: fn(&[u8]) -> Vec<u8>, d: &[u8]| (f(d), d.to_vec());
    let mut v = vec![
        single("none", None, layer.to_vec(), layer),
        single("gzip", Gzip, gzip(layer), layer),
        single("gzip-header-fields", Gzip, gzip_with_fields(layer), layer),
        joined(
            "gzip-members",
            Gzip,
            &[part(gzip, a), part(gzip, b""), part(gzip, b), part(gzip, c)],
            &[],
        ),
        single("bzip2", Bzip2, bzip2(layer), layer),
        joined(
            "bzip2-streams",
            Bzip2,
            &[part(bzip2, a), part(bzip2, rest)],
            &[],
        ),
        single("xz", Xz, xz(layer, &[]), layer),
        single("xz-check-none", Xz, xz(layer, &["--check=none"]), layer),
        single("xz-check-crc32", Xz, xz(layer, &["--check=crc32"]), layer),
        single("xz-check-sha256", Xz, xz(layer, &["--check=sha256"]), layer),
        single(
            "xz-blocks",
            Xz,
            xz(
                layer,
                &[if layer.len() < 100_000 {
                    "--block-size=1000"
                } else {
                    "--block-size=300000"
                }],
            ),
            layer,
        ),
    ];
    // Streams with stream padding between them: a boundary after each group of 4 zeros.
    let (xa, xb) = (xz(a, &[]), xz(rest, &["--check=crc32"]));
    v.push(joined(
        "xz-streams-padding",
        Xz,
        &[
            (xa, a.to_vec()),
            (vec![0; 4], vec![]),
            (vec![0; 4], vec![]),
            (xb, rest.to_vec()),
            (vec![0; 4], vec![]),
        ],
        &[],
    ));
    v.push(joined(
        "xz-streams",
        Xz,
        &[
            (xz(a, &[]), a.to_vec()),
            (xz(rest, &["--check=none"]), rest.to_vec()),
        ],
        &[],
    ));
    v.push(single("zstd", Zstd, zstd(layer, &[]), layer));
    v.push(single(
        "zstd-no-checksum",
        Zstd,
        zstd(layer, &["--no-check"]),
        layer,
    ));
    let mut frames = vec![
        (zstd(a, &[]), a.to_vec()),
        (skippable(0, b"zstd:chunked table of contents"), vec![]),
        (zstd(b, &["--no-check"]), b.to_vec()),
        (skippable(15, b""), vec![]),
        (zstd(c, &["-19"]), c.to_vec()),
        (skippable(3, &[0xab; 40]), vec![]),
    ];
    if zstd_block {
        // Blocks: a frame of several 128 KiB blocks.
        frames.push((zstd(layer, &["--no-check", "-1"]), layer.to_vec()));
    }
    v.push(joined("zstd-frames-skippable", Zstd, &frames, &[]));
    v
}

fn magic_len(format: Format) -> usize {
    match format {
        Format::None => 0,
        Format::Gzip | Format::Bzip2 => 3,
        Format::Xz => 6,
        Format::Zstd => 4,
    }
}

/// The system's C decoder for `format`; `None` when it rejects the input.
fn c_decode(format: Format, data: &[u8]) -> Option<Vec<u8>> {
    match format {
        Format::None => Some(data.to_vec()),
        Format::Gzip => run("gzip", &["-dc"], data),
        Format::Bzip2 => run("bzip2", &["-dc"], data),
        Format::Xz => run("xz", &["-dc"], data),
        Format::Zstd => run("zstd", &["-dc", "-q"], data),
    }
}

/// `openssl dgst -sha256` of many byte strings in one run (files in a temporary folder).
fn openssl_many(items: &[Vec<u8>]) -> Vec<String> {
    if items.is_empty() {
        return Vec::new();
    }
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = items
        .iter()
        .enumerate()
        .map(|(i, d)| put(dir.path(), &format!("{i}"), d))
        .collect();
    let mut out = Vec::new();
    for batch in paths.chunks(500) {
        let o = Command::new("openssl")
            .args(["dgst", "-sha256", "-r"])
            .args(batch)
            .output()
            .expect("run openssl");
        assert!(o.status.success());
        let text = String::from_utf8(o.stdout).unwrap();
        out.extend(
            text.lines()
                .map(|l| format!("sha256:{}", l.split_whitespace().next().unwrap())),
        );
    }
    assert_eq!(out.len(), items.len());
    out
}

/// The Go reference's verdicts on many byte strings, in batches.
fn oracle_many(dir: &Path, items: &[(String, Vec<u8>)]) -> Vec<Value> {
    let paths: Vec<PathBuf> = items
        .iter()
        .map(|(name, data)| put(dir, name, data))
        .collect();
    let mut rows = Vec::new();
    for batch in paths.chunks(400) {
        rows.extend(oracle(batch));
    }
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    rows
}

/// Feeds `data` in random pieces.
fn digest_in_pieces(data: &[u8], opts: &Options, seed: u64) -> diffid::Result<Report> {
    let mut rng = Rng::new(seed);
    let mut d = Digester::new(opts)?;
    let mut rest = data;
    while !rest.is_empty() {
        let n = (1 + rng.below(200_000) as usize).min(rest.len());
        d.write(&rest[..n])?;
        rest = &rest[n..];
    }
    d.finish()
}

/// What the check of a batch found, for the log.
#[derive(Default)]
struct Tally {
    ok: usize,
    errors: BTreeMap<&'static str, usize>,
    /// Rejected by us and the C decoder although Go accepts: sample name -> count, and the
    /// first such trial.
    go_only: BTreeMap<String, (usize, String)>,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ok, errors {:?}", self.ok, self.errors)?;
        for (sample, (n, first)) in &self.go_only {
            write!(f, "\n  {sample}: {n} accepted by Go only, e.g. {first}")?;
        }
        Ok(())
    }
}

/// Where failing trials are written, so that a failure can be replayed.
fn dump(t: &Trial) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let name: String = t
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &t.data).unwrap();
    path.display().to_string()
}

/// One mutated blob and what the construction says it must give (if anything).
struct Trial {
    name: String,
    data: Vec<u8>,
    /// `Some(decoded)`: the construction says it is valid and decodes to this.
    /// `None` with `must_fail`: the construction says it is an error.
    expected: Option<Vec<u8>>,
    must_fail: bool,
}

/// Checks every trial against the construction (where it says something) and against both
/// references; also checks that feeding the bytes in pieces, or on one thread, changes
/// nothing.
///
/// The Go reference costs a few ms a blob: trials the construction already judges (a
/// truncation that must fail) go to the references only one in `reference_every`; every
/// other trial goes to both.
fn check_trials(
    label: &str,
    trials: &[Trial],
    pieces_every: usize,
    reference_every: usize,
) -> Tally {
    let start = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default();
    let single = Options {
        threads: 1,
        ..Options::default()
    };
    let ours: Vec<diffid::Result<Report>> = trials
        .iter()
        .map(|t| digest_bytes(&t.data, &opts))
        .collect();
    for (i, (t, r)) in trials.iter().zip(&ours).enumerate() {
        // The gzip parallel path, forced: the same answer and the same error (kind, offset,
        // message), with 2 workers on every trial and 4 on some.
        if diffid::detect(&t.data) == Format::Gzip {
            for workers in [2, 4] {
                if workers == 4 && pieces_every > 0 && i % pieces_every != 0 {
                    continue;
                }
                let forced = digest_bytes(&t.data, &gzip_forced(workers));
                assert_eq!(r, &forced, "{}: gzip parallel, {workers} workers", t.name);
                assert_ne!(
                    diffid::last_gzip_parallel(),
                    diffid::GzipParallel::NotTried,
                    "{}",
                    t.name
                );
            }
        }
        if pieces_every > 0 && i % pieces_every == 0 {
            assert_eq!(
                r,
                &digest_in_pieces(&t.data, &opts, i as u64),
                "{}: pieces",
                t.name
            );
            assert_eq!(r, &digest_bytes(&t.data, &single), "{}: one thread", t.name);
        }
    }
    let mut tally = Tally::default();
    // The construction's verdicts, for every trial.
    for (t, r) in trials.iter().zip(&ours) {
        match r {
            Ok(rep) => assert!(
                !t.must_fail,
                "{}: the construction says this must fail, we gave {}",
                t.name, rep.diff_id
            ),
            Err(e) => {
                assert!(
                    t.expected.is_none(),
                    "{}: the construction says this is a valid blob, we say {e}",
                    t.name
                );
                assert!(
                    !matches!(e.kind(), ErrorKind::Internal | ErrorKind::Misuse),
                    "{}: {e}",
                    t.name
                );
                *tally.errors.entry(e.kind().name()).or_default() += 1;
            }
        }
    }
    let referenced: Vec<usize> = (0..trials.len())
        .filter(|&i| !trials[i].must_fail || i % reference_every == 0)
        .collect();
    let items: Vec<(String, Vec<u8>)> = referenced
        .iter()
        .map(|&i| (format!("{i:05}"), trials[i].data.clone()))
        .collect();
    let ours_secs = start.elapsed().as_secs_f64();
    let go = oracle_many(dir.path(), &items);
    let go_secs = start.elapsed().as_secs_f64() - ours_secs;

    // (trial index, what to hash) for the batched openssl run.
    let mut to_hash: Vec<(usize, Vec<u8>)> = Vec::new();
    for (&i, go) in referenced.iter().zip(&go) {
        let t = &trials[i];
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_one(t, &ours[i], go, &mut tally, &mut to_hash, i)
        }));
        if let Err(panic) = checked {
            eprintln!("{}: the blob is in {}", t.name, dump(t));
            std::panic::resume_unwind(panic);
        }
    }
    // Our DiffID is the openssl digest of what the C decoder decoded.
    let digests = openssl_many(&to_hash.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>());
    for ((i, _), want) in to_hash.iter().zip(&digests) {
        let r = ours[*i].as_ref().unwrap();
        assert_eq!(&r.diff_id.to_string(), want, "{}: openssl", trials[*i].name);
    }
    eprintln!(
        "{label}: {} trials ({} against the references) in {:.1} s (Go {go_secs:.1} s): {tally}",
        trials.len(),
        referenced.len(),
        start.elapsed().as_secs_f64()
    );
    tally
}

/// Checks one trial against both references.
fn check_one(
    t: &Trial,
    r: &diffid::Result<Report>,
    go: &Value,
    tally: &mut Tally,
    to_hash: &mut Vec<(usize, Vec<u8>)>,
    i: usize,
) {
    let name = &t.name;
    let format = diffid::detect(&t.data);
    assert_eq!(
        go["format"].as_str(),
        Some(format.name()),
        "{name}: Go detects the same format"
    );
    let go_ok = go.get("error").is_none();
    let c = if r.is_ok() || go_ok {
        c_decode(format, &t.data)
    } else {
        None
    };
    match r {
        Ok(rep) => {
            let c =
                c.unwrap_or_else(|| panic!("{name}: we accept, the C decoder rejects ({format})"));
            assert!(
                go_ok,
                "{name}: we accept, containers/image rejects: {go} (the blob is in {})",
                dump(t)
            );
            assert_eq!(rep.diff_id.to_string(), go["diff_id"].as_str().unwrap());
            assert_eq!(
                rep.blob_digest.to_string(),
                go["blob_digest"].as_str().unwrap()
            );
            assert_eq!(rep.format, format, "{name}");
            assert_eq!(rep.diff_size, c.len() as u64, "{name}: size vs C decoder");
            assert_eq!(rep.blob_size, t.data.len() as u64);
            if let Some(expected) = &t.expected {
                assert!(
                    &c == expected,
                    "{name}: the C decoder decodes something else"
                );
            }
            to_hash.push((i, c));
            tally.ok += 1;
        }
        Err(e) => {
            assert!(
                !(go_ok && c.is_some()),
                "{name}: both references accept it, we say {e}"
            );
            if format != Format::None {
                assert_eq!(e.format(), Some(format), "{name}: {e}");
            }
            assert!(!e.to_string().is_empty());
            if go_ok {
                let sample = t.name.split([':', ' ']).next().unwrap().to_string();
                let entry = tally
                    .go_only
                    .entry(sample)
                    .or_insert_with(|| (0, format!("{} ({}), in {}", t.name, e, dump(t))));
                entry.0 += 1;
                if std::env::var_os("HOSTILE_DUMP_GO_ONLY").is_some() {
                    dump(t);
                }
            }
        }
    }
}

/// The trials of cutting `s` at each of `points`.
fn truncations(s: &Sample, points: impl IntoIterator<Item = usize>) -> Vec<Trial> {
    points
        .into_iter()
        .map(|p| {
            let data = s.blob[..p].to_vec();
            let boundary = s.boundaries.iter().find(|(at, _)| *at == p);
            let expected = if p < magic_len(s.format) {
                // Too short to be detected: an uncompressed blob, its own DiffID.
                Some(data.clone())
            } else {
                boundary.map(|&(_, n)| s.decoded[..n].to_vec())
            };
            Trial {
                name: format!("{} cut at {p} of {}", s.name, s.blob.len()),
                must_fail: expected.is_none() && s.format != Format::None,
                expected,
                data,
            }
        })
        .collect()
}

#[test]
fn every_truncation_of_a_small_blob_fails() {
    wide_budget();
    let layer = small_layer(1);
    let mut trials = Vec::new();
    for s in samples(&layer, false) {
        // The whole blob must be valid, or the test proves nothing.
        let whole = digest_bytes(&s.blob, &Options::default())
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(whole.diff_id.to_string(), openssl("sha256", &s.decoded));
        // Every point; for the uncompressed blob (whose every prefix is valid) a sample.
        let step = if s.format == Format::None { 97 } else { 1 };
        trials.extend(truncations(&s, (0..s.blob.len()).step_by(step)));
    }
    let tally = check_trials("small truncations", &trials, 7, 3);
    assert!(
        tally.errors.values().sum::<usize>() > trials.len() * 8 / 10,
        "{tally}"
    );
}

#[test]
fn random_truncations_of_a_larger_blob_fail() {
    wide_budget();
    let layer = larger_layer(2 << 20, 2);
    let mut rng = Rng::new(3);
    let mut trials = Vec::new();
    for s in samples(&layer, true) {
        let whole = digest_bytes(&s.blob, &Options::default())
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(whole.diff_size, s.decoded.len() as u64, "{}", s.name);
        // Random points, plus the interesting ones: around the 512 KiB chunk size, each
        // boundary, the very end.
        let n = s.blob.len();
        let mut points: Vec<usize> = (0..12).map(|_| rng.below(n as u64) as usize).collect();
        for p in [1, 8, 512 << 10, (512 << 10) + 1, n - 1] {
            points.push(p.min(n - 1));
        }
        for &(at, _) in &s.boundaries {
            points.extend([at - 1, at, at + 1]);
        }
        points.sort();
        points.dedup();
        trials.extend(truncations(&s, points));
    }
    check_trials("large truncations", &trials, 5, 3);
}

/// Single-bit flips and random byte overwrites of every sample.
fn flips(s: &Sample, count: usize, rng: &mut Rng) -> Vec<Trial> {
    (0..count)
        .map(|i| {
            let mut data = s.blob.clone();
            let at = rng.below(data.len() as u64) as usize;
            let what = if i % 4 == 3 {
                let b = rng.next() as u8;
                data[at] = b;
                format!("byte {at} := {b:#04x}")
            } else {
                let bit = rng.below(8);
                data[at] ^= 1 << bit;
                format!("bit {bit} of byte {at} flipped")
            };
            Trial {
                name: format!("{}: {what}", s.name),
                must_fail: false,
                expected: None,
                data,
            }
        })
        .filter(|t| t.data != s.blob)
        .collect()
}

#[test]
fn bit_flips_are_errors_or_the_references_digest() {
    wide_budget();
    let layer = small_layer(4);
    let mut rng = Rng::new(5);
    let mut trials = Vec::new();
    for s in samples(&layer, false) {
        trials.extend(flips(&s, 150, &mut rng));
    }
    let tally = check_trials("bit flips", &trials, 11, 1);
    // Undetectable flips exist (uncompressed bytes, gzip MTIME/OS/name, xz without check,
    // zstd without checksum): some trials must have come out Ok, and every one of those
    // matched both references above.
    assert!(tally.ok > 150, "{tally}");
}

#[test]
fn bit_flips_in_a_larger_blob() {
    wide_budget();
    let layer = larger_layer(1 << 20, 6);
    let mut rng = Rng::new(7);
    let mut trials = Vec::new();
    for s in samples(&layer, true) {
        if s.format != Format::None {
            trials.extend(flips(&s, 8, &mut rng));
        }
    }
    check_trials("large bit flips", &trials, 3, 1);
}

/// Flips in the fields no check covers give Ok, with the digest of what they decode to.
#[test]
fn unchecked_fields_change_nothing_but_the_blob_digest() {
    wide_budget();
    let layer = small_layer(8);
    let mut trials = Vec::new();
    let g = gzip(&layer);
    // gzip MTIME (4..8), XFL (8) and OS (9) are not covered by any check.
    for at in 4..10 {
        let mut data = g.clone();
        data[at] ^= 0x5a;
        trials.push(Trial {
            name: format!("gzip header byte {at}"),
            data,
            expected: Some(layer.clone()),
            must_fail: false,
        });
    }
    // A zstd frame without checksum whose literal bytes are changed still decodes, to
    // something else: both references must see the same something else.
    let raw = Rng::new(9).bytes(3000, false);
    let z = zstd(&raw, &["--no-check", "-1"]);
    for at in [z.len() / 2, z.len() - 10] {
        let mut data = z.clone();
        data[at] ^= 0x01;
        trials.push(Trial {
            name: format!("zstd literal byte {at}"),
            data,
            expected: None,
            must_fail: false,
        });
    }
    // An xz stream without check: the same.
    let x = xz(&raw, &["--check=none", "-0"]);
    {
        let at = x.len() / 2;
        let mut data = x.clone();
        data[at] ^= 0x01;
        trials.push(Trial {
            name: format!("xz check=none byte {at}"),
            data,
            expected: None,
            must_fail: false,
        });
    }
    let tally = check_trials("unchecked fields", &trials, 1, 1);
    assert!(tally.ok >= 7, "{tally}");
}

/// Files containers/image rejects and the C decoder accepts: each must be an error.
fn rejected_like_containers_image(names: &[&str]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/known-gaps");
    let files: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let go = oracle(&files);
    for (f, go) in files.iter().zip(&go) {
        assert!(
            go.get("error").is_some(),
            "{f:?}: containers/image rejects it"
        );
        let data = std::fs::read(f).unwrap();
        assert!(
            c_decode(diffid::detect(&data), &data).is_some(),
            "{f:?}: the C decoder accepts it"
        );
        let r = digest_bytes(&data, &Options::default());
        assert!(r.is_err(), "{f:?}: diffid must reject it, gives {r:?}");
    }
}

/// A gap closed: a bzip2 Huffman table that gives two symbols one code ("equal symbols in
/// Huffman tree") is refused, as containers/image refuses it (`src/decode/bzip2/gocheck.rs`).
#[test]
fn bzip2_equal_symbols_in_huffman_tree_is_rejected() {
    wide_budget();
    rejected_like_containers_image(&["bzip2-equal-symbols-in-huffman-tree.tar.bz2"]);
}

/// Gaps closed: zstd Huffman literals in four streams where a stream does not decode to
/// exactly its quarter of the output or does not end exactly (klauspost/compress
/// `huff0.Decompress4X`), which libzstd's fast Huffman decoder and the `zstd` program accept
/// (`src/decode/zstd/mod.rs`, `strict_literals`); FSE-compressed Huffman weights whose bits
/// end inside a state update (klauspost `fse.Decompress`), which every libzstd accepts
/// (`src/decode/zstd/weights.rs`).
#[test]
fn known_gaps_are_rejected() {
    wide_budget();
    rejected_like_containers_image(&[
        "zstd-short-output-block.tar.zst",
        "zstd-stream-overrun.tar.zst",
        "zstd-huffman-weights-overread.tar.zst",
    ]);
}

/// The length of the zstd frame header at the start of `frame` (RFC 8878 3.1.1.1).
fn zstd_header_len(frame: &[u8]) -> u64 {
    let fhd = frame[4];
    let single_segment = fhd & 0x20 != 0;
    let fcs = match fhd >> 6 {
        0 => u64::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    5 + u64::from(!single_segment) + [0, 1, 2, 4][usize::from(fhd & 3)] + fcs
}

/// Each condition of containers/image's literal checks ("short output block": a stream ends
/// before its quarter is full; "stream overrun": a stream has bits left when its quarter is
/// full; "fse decompress returned: unexpected EOF": the Huffman weights' bits end inside a
/// state update), in a frame alone and as the second of three frames, on one thread (the streaming
/// decoder) and on several (frames decoded on helper threads): containers/image rejects each
/// blob with that condition, and diffid says corrupt, naming block 1 of that frame at the
/// block's compressed offset.
#[test]
fn zstd_literal_streams_are_checked_like_containers_image() {
    wide_budget();
    let gaps = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/known-gaps");
    let good = zstd(&small_layer(9), &["-3"]);
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for (file, condition) in [
        (
            "zstd-short-output-block.tar.zst",
            "corruption detected: short output block",
        ),
        (
            "zstd-stream-overrun.tar.zst",
            "corruption detected: stream overrun",
        ),
        (
            "zstd-huffman-weights-overread.tar.zst",
            "fse decompress returned: unexpected EOF",
        ),
    ] {
        let bad = std::fs::read(gaps.join(file)).unwrap();
        let block = zstd_header_len(&bad);
        let middle = [good.clone(), bad.clone(), good.clone()].concat();
        cases.push((format!("{file} alone"), bad, condition, 1, block));
        let at = good.len() as u64 + block;
        cases.push((format!("{file} as frame 2 of 3"), middle, condition, 2, at));
    }
    let items: Vec<(String, Vec<u8>)> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{i}.zst"), c.1.clone()))
        .collect();
    let go = oracle_many(dir.path(), &items);
    for ((name, data, condition, frame, at), go) in cases.iter().zip(&go) {
        let go_error = go["error"].as_str().unwrap_or("");
        assert!(
            go_error.contains(condition),
            "{name}: containers/image says {go}"
        );
        for threads in [1, 4] {
            let opts = Options {
                threads,
                ..Options::default()
            };
            let e = digest_bytes(data, &opts).unwrap_err();
            assert_eq!(
                e.kind(),
                ErrorKind::Corrupt,
                "{name}, {threads} threads: {e}"
            );
            assert_eq!(e.format(), Some(Format::Zstd), "{name}: {e}");
            assert_eq!(e.offset(), Some(*at), "{name}, {threads} threads: {e}");
            assert!(
                e.message().contains(&format!("block 1 of frame {frame}")),
                "{name}, {threads} threads: {e}"
            );
        }
    }
}

/// A zstd compressed block of 0 bytes: libzstd and `zstd -t` decode it to nothing,
/// containers/image refuses it ("block too small"), so diffid refuses it too: corrupt, at the
/// block's offset, on one thread and on several, alone and as frame 2 of 3.
#[test]
fn zstd_empty_compressed_block_is_rejected_like_containers_image() {
    wide_budget();
    let good = zstd(&small_layer(10), &["-3"]);
    // Magic, descriptor (no content size, no checksum), 1 KiB window, a last compressed
    // block of 0 bytes.
    let bad = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x05, 0x00, 0x00];
    assert_eq!(
        c_decode(Format::Zstd, &bad),
        Some(Vec::new()),
        "zstd accepts it"
    );
    let middle = [good.clone(), bad.clone(), good.clone()].concat();
    let cases = [(bad, 1, 6), (middle, 2, good.len() as u64 + 6)];
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<(String, Vec<u8>)> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{i}.zst"), c.0.clone()))
        .collect();
    let go = oracle_many(dir.path(), &items);
    for ((data, frame, at), go) in cases.iter().zip(&go) {
        assert!(
            go["error"]
                .as_str()
                .unwrap_or("")
                .contains("block too small"),
            "containers/image says {go}"
        );
        for threads in [1, 4] {
            let opts = Options {
                threads,
                ..Options::default()
            };
            let e = digest_bytes(data, &opts).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{threads} threads: {e}");
            assert_eq!(e.offset(), Some(*at), "{threads} threads: {e}");
            assert!(
                e.message().contains("compressed block of 0 bytes")
                    && e.message()
                        .contains(&format!("in block 1 of frame {frame}")),
                "{threads} threads: {e}"
            );
        }
    }
}

/// The frame and block conditions where containers/image's zstd decoder (klauspost/compress
/// v1.18.0: `frameDec.reset`, `blockDec.reset`, `decodeCompressed`) returns an error, each as a
/// small frame built here: diffid accepts exactly what containers/image accepts (with its
/// DiffID), and `zstd -t` agrees except where the README's table says otherwise (an empty
/// compressed block; a 512 MiB window, which `zstd` refuses only by its default memory limit).
#[test]
fn zstd_frame_and_block_conditions_match_containers_image() {
    wide_budget();
    const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    // Frame header: descriptor, then a window descriptor for 2^log bytes.
    let head = |fhd: u8, log: u8| [&MAGIC[..], &[fhd, (log - 10) << 3]].concat();
    let block = |last: bool, kind: u32, size: u32| {
        let v = u32::from(last) | (kind << 1) | (size << 3);
        v.to_le_bytes()[..3].to_vec()
    };
    let raw = |fhd: u8, log: u8, body: &[u8]| {
        [
            head(fhd, log),
            block(true, 0, body.len() as u32),
            body.to_vec(),
        ]
        .concat()
    };
    // A compressed block whose literals are RLE (`n` bytes of `b`), with no sequences.
    let rle_literals = |n: u32, b: u8| {
        vec![
            0x01 | (1 << 2) | (((n & 0xF) as u8) << 4),
            (n >> 4) as u8,
            b,
            0x00,
        ]
    };
    let big = 131_073u32;
    let mut raw_literals = vec![(3 << 2) | (((big & 0xF) as u8) << 4), (big >> 4) as u8];
    raw_literals.push((big >> 12) as u8);
    raw_literals.extend(std::iter::repeat_n(b'f', big as usize));
    raw_literals.push(0);
    let skippable = [
        &0x184D_2A5Fu32.to_le_bytes()[..],
        &3u32.to_le_bytes(),
        b"toc",
    ]
    .concat();
    let hello = raw(0, 10, b"hello");
    // (name, blob, whether `zstd -t` accepts it)
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("raw block of 128 KiB", raw(0, 17, &[7; 131_072]), true),
        ("raw block over 128 KiB", raw(0, 23, &[7; 131_073]), false),
        ("raw block over the window", raw(0, 10, &[7; 2048]), false),
        (
            "RLE block over 128 KiB",
            [head(0, 23), block(true, 1, 131_073), vec![7]].concat(),
            false,
        ),
        (
            "RLE block over the window",
            [head(0, 10), block(true, 1, 2048), vec![7]].concat(),
            false,
        ),
        (
            "compressed block decoding to more than the window",
            [head(0, 10), block(true, 2, 4), rle_literals(2000, b'e')].concat(),
            false,
        ),
        (
            "compressed block over 128 KiB",
            [
                head(0, 23),
                block(true, 2, raw_literals.len() as u32),
                raw_literals.clone(),
            ]
            .concat(),
            false,
        ),
        (
            "compressed block of 0 bytes",
            [head(0, 10), block(true, 2, 0)].concat(),
            true,
        ),
        (
            "compressed block of 1 byte",
            [head(0, 10), block(true, 2, 1), vec![0]].concat(),
            false,
        ),
        (
            "reserved block type",
            [head(0, 10), block(true, 3, 5), b"hello".to_vec()].concat(),
            false,
        ),
        (
            "sequences header with reserved bits set",
            [head(0, 10), block(true, 2, 4), vec![0x08, b'x', 0x01, 0x03]].concat(),
            false,
        ),
        (
            "reserved bit of the frame header",
            raw(0x08, 10, b"hello"),
            false,
        ),
        (
            "unused bit of the frame header",
            raw(0x10, 10, b"hello"),
            true,
        ),
        (
            "dictionary ID 0",
            [
                &MAGIC[..],
                &[0x01, 0x00, 0x00],
                &block(true, 0, 5),
                b"hello",
            ]
            .concat(),
            true,
        ),
        (
            "dictionary ID 7",
            [
                &MAGIC[..],
                &[0x01, 0x00, 0x07],
                &block(true, 0, 5),
                b"hello",
            ]
            .concat(),
            false,
        ),
        (
            "content size larger than the content",
            [
                &MAGIC[..],
                &[0x80, 0x00, 6, 0, 0, 0],
                &block(true, 0, 5),
                b"hello",
            ]
            .concat(),
            false,
        ),
        (
            "content size smaller than the content",
            [
                &MAGIC[..],
                &[0x80, 0x00, 4, 0, 0, 0],
                &block(true, 0, 5),
                b"hello",
            ]
            .concat(),
            false,
        ),
        (
            "wrong content checksum",
            [raw(0x04, 10, b"hello"), vec![0; 4]].concat(),
            false,
        ),
        ("window of 1 GiB", raw(0, 30, b"hello"), false),
        ("window of 512 MiB", raw(0, 29, b"hello"), false),
        (
            "single segment",
            [&MAGIC[..], &[0x20, 5], &block(true, 0, 5), b"hello"].concat(),
            true,
        ),
        (
            "no last block",
            [head(0, 10), block(false, 0, 5), b"hello".to_vec()].concat(),
            false,
        ),
        (
            "skippable frame between frames",
            [hello.clone(), skippable.clone(), hello.clone()].concat(),
            true,
        ),
        (
            "truncated skippable frame",
            [hello.clone(), skippable[..skippable.len() - 1].to_vec()].concat(),
            false,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<(String, Vec<u8>)> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{i}.zst"), c.1.clone()))
        .collect();
    let go = oracle_many(dir.path(), &items);
    let mut go_only = Vec::new();
    for ((name, data, zstd_t), go) in cases.iter().zip(&go) {
        let c_ok = run("zstd", &["-t", "-q"], data).is_some();
        assert_eq!(c_ok, *zstd_t, "{name}: zstd -t");
        let go_ok = go.get("error").is_none();
        if go_ok != c_ok {
            go_only.push(*name);
        }
        for threads in [1, 4] {
            let opts = Options {
                threads,
                ..Options::default()
            };
            match digest_bytes(data, &opts) {
                Ok(r) => {
                    assert!(go_ok, "{name}: we accept, containers/image says {go}");
                    assert_eq!(r.diff_id.to_string(), go["diff_id"].as_str().unwrap());
                }
                Err(e) => {
                    assert!(!go_ok, "{name}: containers/image accepts, we say {e}");
                    assert!(e.offset().is_some(), "{name}: {e}");
                }
            }
        }
    }
    assert_eq!(
        go_only,
        ["compressed block of 0 bytes", "window of 512 MiB"],
        "where containers/image and `zstd -t` disagree"
    );
}
