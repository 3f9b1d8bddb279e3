//! Bombs and limits: a few MB that decode to gigabytes digest correctly in bounded memory;
//! `max_size` stops them; a zstd window over 512 MiB and an xz block that needs more memory
//! than `decoder_memory_limit` are errors, not allocations.
//!
//! Each bomb is built cheaply: a piece of zeros is compressed once and the piece repeated
//! (gzip members, bzip2 and xz streams, zstd frames: all legal). Its DiffID is checked
//! against `head -c SIZE /dev/zero | openssl dgst -sha256`, and the CLI's peak RSS (its
//! VmHWM, polled while it runs) against a bound.
//!
//! `make test` decodes 4 GiB of zeros in every format and uncompressed; `DIFFID_SOAK=1`
//! (`make soak`) makes every bomb 16 GiB.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use common::*;
use diffid::{ErrorKind, Format, Options, digest_bytes};
use serde_json::Value;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// The most resident memory the CLI may use on any bomb.
const RSS_LIMIT: u64 = 200 * MIB;

fn soak() -> bool {
    std::env::var_os("DIFFID_SOAK").is_some_and(|v| v != "0")
}

/// `sha256:` of `size` zero bytes, by openssl reading /dev/zero (computed once per size).
fn zeros_digest(size: u64) -> String {
    static CACHE: OnceLock<Mutex<HashMap<u64, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(d) = cache.lock().unwrap().get(&size) {
        return d.clone();
    }
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("head -c {size} /dev/zero | openssl dgst -sha256 -r"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let d = format!(
        "sha256:{}",
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
    );
    cache.lock().unwrap().insert(size, d.clone());
    d
}

/// One compressed piece of `piece` zero bytes in `format`.
fn piece(format: Format, piece: u64) -> Vec<u8> {
    let zeros = vec![0u8; piece as usize];
    match format {
        Format::Gzip => must("gzip", &["-c", "-n", "-9"], &zeros),
        Format::Bzip2 => bzip2(&zeros),
        Format::Xz => xz(&zeros, &["-0"]),
        Format::Zstd => zstd(&zeros, &["-1"]),
        Format::None => zeros,
    }
}

/// A blob of `format` decoding to `size` zero bytes: a piece repeated.
fn bomb(format: Format, size: u64) -> Vec<u8> {
    let piece_size = (64 * MIB).min(size);
    assert_eq!(size % piece_size, 0);
    let p = piece(format, piece_size);
    p.repeat((size / piece_size) as usize)
}

/// What the CLI printed for one file, its peak RSS and how long it took.
struct Run {
    json: Value,
    /// None only when the CLI exited before its first reading (a run of a millisecond or
    /// two: an error found in the first bytes); `/proc` itself is known to work then.
    max_rss: Option<u64>,
    secs: f64,
}

impl Run {
    /// The peak RSS of a run long enough to be read while it ran (a bomb, a limit reached
    /// after megabytes): its absence fails the test rather than passing a bound unmeasured.
    fn peak(&self) -> u64 {
        self.max_rss
            .expect("the CLI's peak memory was never read from /proc while it ran")
    }

    /// Whether the peak, where it was read, is under `limit`.
    fn peak_under(&self, limit: u64) -> bool {
        self.max_rss.is_none_or(|p| p < limit)
    }
}

/// Runs the CLI with `args` and `stdin`, measuring its peak resident memory (VmHWM).
fn cli(args: &[&str], stdin: Stdio, prefix: Option<&str>) -> Run {
    let exe = env!("CARGO_BIN_EXE_diffid");
    let mut cmd = match prefix {
        // A shell that sets a limit and execs the CLI: same pid, measured the same way.
        Some(p) => {
            let mut c = Command::new("sh");
            let line = format!("{p}; exec \"$0\" \"$@\"");
            c.arg("-c").arg(line).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let start = Instant::now();
    let mut child = cmd
        .args(["--json", "--quiet"])
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    // Peak RSS: the child's VmHWM, read while it runs. (wait4's ru_maxrss would not do: it
    // includes the RSS this test process had when it forked the child.)
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut peak = 0u64;
            let mut readings = 0u32;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                // Unreadable for a moment around exec, without VmHWM once it exited: keep
                // polling until the waiter says it exited (it is not reaped before, so the
                // pid stays its own). Only readings of the CLI itself count, not of the
                // forked copy of this process before the exec (or of a wrapper's shell).
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    let is_cli = status.lines().any(|l| l == "Name:\tdiffid");
                    if let Some(kb) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                        .filter(|_| is_cli)
                    {
                        peak = peak.max(kb * 1024);
                        readings += 1;
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            if readings > 0 && peak > 0 {
                return Some(peak);
            }
            // No reading: either the CLI exited before the first one (a quick error), or
            // /proc cannot be read here. The latter must fail, not pass a bound unmeasured.
            let own = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            assert!(
                own.lines().any(|l| l.starts_with("VmHWM:")),
                "cannot read peak memory (VmHWM) from /proc here"
            );
            None
        })
    };
    // Wait for the exit without reaping, so the pid cannot be reused under the poller.
    // SAFETY: a zeroed siginfo_t is a valid out-parameter; the pid is our unreaped child.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(r, 0);
    done.store(true, std::sync::atomic::Ordering::Release);
    let max_rss = poller.join().unwrap();
    let status = child.wait().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let out = reader.join().unwrap();
    let err = err_reader.join().unwrap();
    assert!(
        status.code().is_some(),
        "the CLI did not exit normally ({status}): {err}"
    );
    let json: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("CLI output {out:?} ({e}), stderr {err:?}"));
    Run {
        json,
        max_rss,
        secs,
    }
}

fn cli_file(path: &Path, extra: &[&str]) -> Run {
    let mut args = extra.to_vec();
    args.push(path.to_str().unwrap());
    cli(&args, Stdio::null(), None)
}

/// Digests a bomb of `size` in `format` with the CLI and checks digests and memory.
fn check_bomb(format: Format, size: u64) {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let blob = bomb(format, size);
    let built = t.elapsed().as_secs_f64();
    let path = put(dir.path(), "bomb", &blob);
    let run = cli_file(&path, &[]);
    let j = &run.json;
    assert!(j.get("error").is_none(), "{format}: {j}");
    assert_eq!(j["format"], format.name());
    assert_eq!(j["diff_size"], size, "{format}");
    assert_eq!(j["diff_id"], zeros_digest(size), "{format}");
    assert_eq!(j["blob_digest"], openssl("sha256", &blob), "{format}");
    assert!(
        run.peak() < RSS_LIMIT,
        "{format}: peak RSS {} MiB",
        run.peak() / MIB
    );
    eprintln!(
        "{format}: {} MiB from a {} KiB blob in {:.1} s (built in {built:.1} s), peak RSS {} MiB",
        size / MIB,
        blob.len() >> 10,
        run.secs,
        run.peak() / MIB
    );
    // The CLI's --max-size stops it with the limit_exceeded kind, also in bounded memory.
    let limited = cli_file(&path, &["--max-size", "100M"]);
    assert_eq!(
        limited.json["error"]["kind"], "limit_exceeded",
        "{format}: {}",
        limited.json
    );
    assert!(limited.peak() < RSS_LIMIT);
}

/// 4 GiB, or 16 GiB in a soak.
fn bomb_size() -> u64 {
    if soak() { 16 * GIB } else { 4 * GIB }
}

#[test]
fn zstd_bomb() {
    check_bomb(Format::Zstd, bomb_size());
}

#[test]
fn gzip_bomb() {
    check_bomb(Format::Gzip, bomb_size());
}

#[test]
fn xz_bomb() {
    check_bomb(Format::Xz, bomb_size());
}

#[test]
fn bzip2_bomb() {
    check_bomb(Format::Bzip2, bomb_size());
}

/// 4 GiB (16 GiB in a soak) of uncompressed zeros through a pipe.
#[test]
fn uncompressed_stream() {
    let size = bomb_size();
    let mut head = Command::new("head")
        .args(["-c", &size.to_string(), "/dev/zero"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let run = cli(&["-"], Stdio::from(head.stdout.take().unwrap()), None);
    head.wait().unwrap();
    let j = &run.json;
    assert_eq!(j["format"], "none", "{j}");
    assert_eq!(j["blob_size"], size);
    assert_eq!(j["diff_id"], zeros_digest(size));
    assert_eq!(j["blob_digest"], j["diff_id"]);
    // Zeros are a tar archive that ends at once: two zero blocks.
    assert_eq!(j["tar"]["valid"], true);
    assert!(run.peak() < RSS_LIMIT, "peak RSS {} MiB", run.peak() / MIB);
    eprintln!(
        "none: {} MiB through a pipe in {:.1} s, peak RSS {} MiB",
        size / MIB,
        run.secs,
        run.peak() / MIB
    );
}

#[test]
fn max_size_stops_every_bomb_in_the_library() {
    for format in [Format::Gzip, Format::Bzip2, Format::Xz, Format::Zstd] {
        let blob = bomb(format, GIB);
        for threads in [0, 1] {
            // (0 is no limit, as in every interface: tests/offsets.rs.)
            for max in [1, 64 * MIB - 1, 64 * MIB, 100 * MIB] {
                let opts = Options {
                    max_size: Some(max),
                    threads,
                    ..Options::default()
                };
                let t = Instant::now();
                let e = digest_bytes(&blob, &opts).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{format} {max}: {e}");
                assert_eq!(e.format(), Some(format));
                assert!(e.to_string().contains(&max.to_string()), "{e}");
                // Stopped at the limit, not after the whole GiB: generous, so that a loaded
                // machine does not fail it (the kind and the limit in the text are the check).
                assert!(t.elapsed().as_secs() < 30, "{format}: {:?}", t.elapsed());
            }
        }
        // Exactly the size passes.
        let small = bomb(format, 64 * MIB);
        let opts = Options {
            max_size: Some(64 * MIB),
            ..Options::default()
        };
        let r = digest_bytes(&small, &opts).unwrap();
        assert_eq!(r.diff_id.to_string(), zeros_digest(64 * MIB));
    }
}

/// A zstd frame with the given window descriptor byte (no content size, so the decoder
/// must size its window from the descriptor) holding one raw block of `content`.
fn zstd_frame_with_window(descriptor: u8, content: &[u8]) -> Vec<u8> {
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, descriptor];
    let header = 1u32 | ((content.len() as u32) << 3); // last block, raw
    f.extend_from_slice(&header.to_le_bytes()[..3]);
    f.extend_from_slice(content);
    f
}

/// The window size a zstd window descriptor gives (RFC 8878, 3.1.1.1.2).
fn window_size(descriptor: u8) -> u64 {
    let log = 10 + u64::from(descriptor >> 3);
    let base = 1u64 << log;
    base + (base / 8) * u64::from(descriptor & 7)
}

/// The CLI under an address-space limit: an attempt to allocate the window would fail
/// (abort, or a different error) instead of giving the clean error expected.
const ADDRESS_LIMIT: &str = "ulimit -v 786432"; // 768 MiB, in KiB

#[test]
fn zstd_window_over_512_mib_is_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let content = tar_of(&[("f".into(), b"window".to_vec())]);
    // 2^29 = 512 MiB is the largest window containers/image accepts.
    let ok = zstd_frame_with_window(19 << 3, &content);
    assert_eq!(window_size(19 << 3), 512 * MIB);
    let r = digest_bytes(&ok, &Options::default()).unwrap();
    assert_eq!(r.diff_id.to_string(), openssl("sha256", &content));
    let mut paths = vec![put(dir.path(), "w512m", &ok)];
    for (name, descriptor) in [
        ("w576m", (19 << 3) | 1),
        ("w1g", 20 << 3),
        ("w3_75t", (31 << 3) | 7),
    ] {
        assert!(window_size(descriptor) > 512 * MIB);
        let frame = zstd_frame_with_window(descriptor, &content);
        // The same after a valid first frame: the limit holds for every frame.
        let second = [zstd(&content, &[]), frame.clone()].concat();
        for (n, blob) in [
            (name.to_string(), frame),
            (format!("{name}-second"), second),
        ] {
            for threads in [0, 1] {
                let opts = Options {
                    threads,
                    ..Options::default()
                };
                let e = digest_bytes(&blob, &opts).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{n}: {e}");
                assert!(e.to_string().contains("512 MiB"), "{e}");
            }
            let path = put(dir.path(), &n, &blob);
            let run = cli(
                &[path.to_str().unwrap()],
                Stdio::null(),
                Some(ADDRESS_LIMIT),
            );
            assert_eq!(
                run.json["error"]["kind"], "limit_exceeded",
                "{n}: {}",
                run.json
            );
            // Under ADDRESS_LIMIT: a quick error may end before a reading; the limit holds anyway.
            assert!(run.peak_under(RSS_LIMIT));
            paths.push(path);
        }
    }
    // containers/image draws the line at the same place.
    let go = oracle(&paths);
    assert!(go[0].get("error").is_none(), "{}", go[0]);
    assert_eq!(
        go[0]["diff_id"].as_str(),
        Some(r.diff_id.to_string().as_str())
    );
    for g in &go[1..] {
        assert!(g.get("error").is_some(), "Go accepts {g}");
    }
}

/// Rewrites the LZMA2 dictionary size of the first block header of a single-block xz
/// stream made by `xz` (properties byte at a fixed place) and fixes the header's CRC32.
fn set_xz_dict(xz: &mut [u8], props: u8) {
    let header_size = (usize::from(xz[12]) + 1) * 4;
    let header = &mut xz[12..12 + header_size];
    // size byte, flags (no sizes: 0x00), filter id 0x21, props size 0x01, props byte.
    assert_eq!(&header[1..4], &[0x00, 0x21, 0x01], "xz block header layout");
    header[4] = props;
    let crc = crc32fast::hash(&header[..header_size - 4]);
    header[header_size - 4..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn xz_block_needing_more_memory_than_the_limit_is_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let content = tar_of(&[("f".into(), vec![b'x'; 100_000])]);
    let base = xz(&content, &["-0"]);
    // Dictionary sizes: props 36 = 1 GiB, 38 = 2 GiB, 40 = 4 GiB - 1.
    for props in [36u8, 38, 40] {
        let mut blob = base.clone();
        set_xz_dict(&mut blob, props);
        // The C decoder still decodes it (the dictionary size is only an upper bound).
        let reference = must("xz", &["-dc"], &blob);
        assert_eq!(reference, content);
        // Over the default limit of 1 GiB: an error, quickly, in a process that could not
        // even map the dictionary.
        let e = digest_bytes(&blob, &Options::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LimitExceeded, "props {props}: {e}");
        assert!(e.to_string().contains("decoder_memory_limit"), "{e}");
        let path = put(dir.path(), &format!("dict{props}"), &blob);
        let run = cli(
            &[path.to_str().unwrap()],
            Stdio::null(),
            Some(ADDRESS_LIMIT),
        );
        assert_eq!(
            run.json["error"]["kind"], "limit_exceeded",
            "props {props}: {}",
            run.json
        );
        // Under ADDRESS_LIMIT: a quick error may end before a reading; the limit holds anyway.
        assert!(run.peak_under(RSS_LIMIT));
        // A configured lower limit applies as well.
        let run = cli(
            &[
                "--memory-limit",
                "16M",
                put(dir.path(), "x", &base).to_str().unwrap(),
            ],
            Stdio::null(),
            None,
        );
        assert!(run.json.get("error").is_none(), "-0 needs less than 16 MiB");
    }
    // A block that needs 64 MiB against a limit of 16 MiB.
    let big = xz(&content, &["--lzma2=dict=64MiB"]);
    let limited = Options {
        decoder_memory_limit: 16 * MIB,
        ..Options::default()
    };
    assert_eq!(
        digest_bytes(&big, &limited).unwrap_err().kind(),
        ErrorKind::LimitExceeded
    );
    assert!(digest_bytes(&big, &Options::default()).is_ok());
}

/// Back-pressure of the decoding reader: `diffid -d` on a bomb of `size` in `format`, its
/// stdout read by this test slowly (pauses of 1 s, small reads between them): the CLI's peak
/// RSS must stay under the bound and its RSS flat while the consumer is paused; then the
/// whole decoded stream must arrive (all zeros, `size` bytes) with the right digest.
fn check_bomb_read_slowly(format: Format, size: u64) {
    let dir = tempfile::tempdir().unwrap();
    let blob = bomb(format, size);
    let path = put(dir.path(), "bomb", &blob);
    let mut child = Command::new(env!("CARGO_BIN_EXE_diffid"))
        .args(["-d", "--json", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let status_of = |field: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let (mut total, mut nonzero) = (0u64, false);
    let mut read = |n: u64, total: &mut u64, nonzero: &mut bool| {
        let mut left = n;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let got = std::io::Read::read(&mut stdout, &mut buf[..want]).unwrap();
            if got == 0 {
                return false;
            }
            *nonzero |= buf[..got].iter().any(|&b| b != 0);
            *total += got as u64;
            left -= got as u64;
        }
        true
    };
    // Slow: 4 MiB, then a pause, five times; the RSS may not grow during a pause.
    let mut growth = 0i64;
    for _ in 0..5 {
        assert!(read(4 * MIB, &mut total, &mut nonzero));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let before = status_of("VmRSS:") as i64;
        std::thread::sleep(std::time::Duration::from_millis(700));
        growth = growth.max(status_of("VmRSS:") as i64 - before);
    }
    let paused_peak = status_of("VmHWM:");
    // Then fast to the end.
    while read(u64::MAX, &mut total, &mut nonzero) {}
    let peak = status_of("VmHWM:").max(paused_peak);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{format}: {err}");
    let j: Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(total, size, "{format}: decoded bytes");
    assert!(!nonzero, "{format}: the decoded stream is zeros");
    assert_eq!(j["diff_id"], zeros_digest(size), "{format}");
    assert_eq!(j["diff_size"], size, "{format}");
    assert!(
        peak < RSS_LIMIT,
        "{format}: peak RSS {} MiB with a slow consumer",
        peak / MIB
    );
    assert!(
        growth < (8 * MIB) as i64,
        "{format}: RSS grew by {} KiB while the consumer was paused",
        growth >> 10
    );
    eprintln!(
        "{format}: diffid -d, {} MiB read slowly then fast: peak RSS {} MiB (paused: {} MiB), RSS growth while paused {} KiB",
        size / MIB,
        peak / MIB,
        paused_peak / MIB,
        growth >> 10
    );
}

#[test]
fn decoding_reader_with_a_slow_consumer_zstd() {
    check_bomb_read_slowly(Format::Zstd, bomb_size());
}

#[test]
fn decoding_reader_with_a_slow_consumer_gzip() {
    check_bomb_read_slowly(Format::Gzip, bomb_size());
}

#[test]
fn decoding_reader_with_a_slow_consumer_xz() {
    check_bomb_read_slowly(Format::Xz, bomb_size());
}

#[test]
fn decoding_reader_with_a_slow_consumer_bzip2() {
    check_bomb_read_slowly(Format::Bzip2, bomb_size());
}
