//! The decoding reader (issue 8): the decoded stream out of the same pass that digests it.
//!
//! Every decoded stream is checked against the system's decoder (`DEC -dc`), every digest
//! against containers/image (the oracle), `openssl dgst` and the digest-only API; every bad
//! stream (truncated, corrupt trailer, trailing bytes, over the limit) must end in an error
//! when read to the end, never a clean end of stream; dropping or cancelling a reader early
//! must join every thread it started.
//!
//! Threads are counted by name (`diffid-*`) in `/proc/self/task`, which is process-wide:
//! the tests of this file take one lock, so that only one of them runs at a time.

mod common;

use std::io::{self, Read};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use diffid::{
    DecodingReader, Error, ErrorKind, Options, decoding_pipe, decompress_path, decompress_reader,
    digest_bytes,
};

const MIB: usize = 1 << 20;

/// One test at a time (the thread counts are process-wide).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Threads of this process whose name starts with `diffid-` (the feeder, the stages'
/// workers, the decoders' helpers).
fn diffid_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("diffid-"))
        .count()
}

/// Waits (up to 10 s) until no `diffid-` thread is left: a thread that was joined may still
/// be listed for a moment while the kernel tears it down.
fn assert_no_threads_left(what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = diffid_threads();
        if n == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {n} diffid threads still running 10 s later"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A layer of about 8 MiB (16 chunks): text-like, zeros and random files.
fn big_layer() -> Vec<u8> {
    let mut rng = Rng::new(8);
    let entries: Vec<(String, Vec<u8>)> = (0..16)
        .map(|i| {
            let data = match i % 4 {
                0 => rng.bytes(300_000, false),
                1 => vec![0; 700_000],
                _ => rng.bytes(600_000, true),
            };
            (format!("usr/lib/file{i:02}"), data)
        })
        .collect();
    tar_of(&entries)
}

/// The layer in every format (one and several blocks/frames where it matters), with the
/// decoder that checks it.
fn formats(layer: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let zstd_frames: Vec<u8> = layer.chunks(MIB).flat_map(|c| zstd(c, &["-1"])).collect();
    vec![
        ("tar", layer.to_vec(), "cat"),
        ("gzip", gzip(layer), "gzip"),
        ("bzip2", bzip2(layer), "bzip2"),
        ("xz", xz(layer, &["-0"]), "xz"),
        (
            "xz-blocks",
            must("xz", &["-c", "-0", "-T2", "--block-size=1MiB"], layer),
            "xz",
        ),
        ("zstd", zstd(layer, &["-1"]), "zstd"),
        ("zstd-frames", zstd_frames, "zstd"),
    ]
}

fn decode_with(dec: &str, blob: &[u8]) -> Vec<u8> {
    if dec == "cat" {
        return blob.to_vec();
    }
    must(dec, &["-dc"], blob)
}

fn opts(threads: usize) -> Options {
    Options {
        threads,
        ..Options::default()
    }
}

/// The library error inside a reader's `io::Error`.
fn inner(e: io::Error) -> Error {
    let kind = e.kind();
    *e.into_inner()
        .unwrap_or_else(|| panic!("a bare io::Error of kind {kind:?}"))
        .downcast::<Error>()
        .expect("a diffid::Error")
}

/// Reads `r` to its end in pieces of `piece` bytes: the bytes, and how it ended.
fn drain(r: &mut impl Read, piece: usize) -> (Vec<u8>, io::Result<()>) {
    let mut out = Vec::new();
    let mut buf = vec![0; piece];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Err(e)),
        }
    }
}

#[test]
fn decoded_bytes_and_digests_equal_the_decoder_the_oracle_and_the_digest_only_api() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for layer in [generated_layer(), big_layer()] {
        for (name, blob, dec) in formats(&layer) {
            let expected = decode_with(dec, &blob);
            let path = put(dir.path(), name, &blob);
            let theirs = &oracle(std::slice::from_ref(&path))[0];
            for threads in [1, 2, 0] {
                let what = format!("{name}, {} bytes, threads {threads}", blob.len());
                let mut r = decompress_path(&path, &opts(threads)).unwrap();
                let (out, end) = drain(&mut r, 100_000);
                end.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(
                    out == expected,
                    "{what}: decoded bytes differ from {dec} -dc"
                );
                let report = r.finish().unwrap();
                assert_eq!(
                    report,
                    digest_bytes(&blob, &opts(threads)).unwrap(),
                    "{what}"
                );
                assert_eq!(
                    report.diff_id.to_string(),
                    openssl("sha256", &out),
                    "{what}"
                );
                assert_eq!(report.diff_id.to_string(), theirs["diff_id"], "{what}");
                assert_eq!(
                    report.blob_digest.to_string(),
                    theirs["blob_digest"],
                    "{what}"
                );
                assert_eq!(report.diff_size, out.len() as u64, "{what}");
                // A second finish gives the same report; a read after the end gives 0 again.
                assert_eq!(r.finish().unwrap(), report, "{what}");
                assert_eq!(r.read(&mut [0; 10]).unwrap(), 0, "{what}");
            }
        }
    }
    assert_no_threads_left("after every good stream");
}

/// The bad variants of `blob` (a compressed layer of `format`) and the error each must end
/// in: truncated, and a corrupt last check (the trailer).
fn bad_variants(format: &str, blob: &[u8]) -> Vec<(String, Vec<u8>, &'static [ErrorKind])> {
    let truncated = blob[..blob.len() - 5].to_vec();
    let mut trailer = blob.to_vec();
    // The byte that the format's final check covers or is.
    let at = match format {
        // CRC32 then ISIZE: the CRC's first byte.
        "gzip" => blob.len() - 8,
        // The stream CRC ends one to eight bits before the last byte.
        "bzip2" => blob.len() - 2,
        // The stream footer's CRC32 (12 bytes from the end).
        "xz" | "xz-blocks" => blob.len() - 12,
        // The last frame's content checksum.
        _ => blob.len() - 1,
    };
    trailer[at] ^= 0x55;
    let mut trailing = blob.to_vec();
    trailing.extend_from_slice(b"trailing garbage");
    let corrupt: &[ErrorKind] = &[ErrorKind::Corrupt];
    let truncated_kinds: &[ErrorKind] = &[ErrorKind::Truncated];
    let trailing_kinds: &[ErrorKind] = &[ErrorKind::TrailingData, ErrorKind::Corrupt];
    vec![
        (format!("{format} truncated"), truncated, truncated_kinds),
        (format!("{format} corrupt trailer"), trailer, corrupt),
        (format!("{format} trailing bytes"), trailing, trailing_kinds),
    ]
}

#[test]
fn a_bad_stream_read_to_the_end_is_an_error_never_a_clean_end() {
    let _serial = serial();
    let layer = big_layer();
    for (name, blob, _) in formats(&layer) {
        if name == "tar" {
            continue;
        }
        for (what, bad, kinds) in bad_variants(name, &blob) {
            let digest_only = digest_bytes(&bad, &Options::default()).unwrap_err();
            assert!(kinds.contains(&digest_only.kind()), "{what}: {digest_only}");
            for threads in [1, 0] {
                let what = format!("{what}, threads {threads}");
                // Over a Read, on the feeder thread.
                let mut r =
                    decompress_reader(io::Cursor::new(bad.clone()), &opts(threads)).unwrap();
                let (out, end) = drain(&mut r, 64 * 1024);
                let err = inner(end.expect_err(&what));
                assert_eq!(err.kind(), digest_only.kind(), "{what}: {err}");
                assert!(out.len() <= layer.len(), "{what}");
                // Every later read, and finish, give the same error.
                assert_eq!(inner(r.read(&mut [0; 1]).unwrap_err()), err, "{what}");
                assert_eq!(r.finish().unwrap_err(), err, "{what}");
                // Through a pipe, written from another thread.
                let (mut w, mut r) = decoding_pipe(&opts(threads)).unwrap();
                let input = bad.clone();
                let writer = std::thread::spawn(move || {
                    for piece in input.chunks(100_000) {
                        w.write_all(piece)?;
                    }
                    w.close()
                });
                let (_, end) = drain(&mut r, 64 * 1024);
                let err = inner(end.expect_err(&what));
                assert_eq!(err.kind(), digest_only.kind(), "{what}, pipe: {err}");
                assert_eq!(writer.join().unwrap().unwrap_err().kind(), err.kind());
            }
        }
    }
    // A truncated tar is an error only when a tar is required.
    let truncated = &layer[..layer.len() - 1000];
    let strict = Options {
        require_tar: true,
        ..Options::default()
    };
    let mut r = decompress_reader(io::Cursor::new(truncated.to_vec()), &strict).unwrap();
    let (_, end) = drain(&mut r, 64 * 1024);
    assert_eq!(inner(end.unwrap_err()).kind(), ErrorKind::InvalidTar);
    assert_no_threads_left("after every bad stream");
}

#[test]
fn decoded_bytes_are_released_before_the_final_checks() {
    // Said in the contract: a consumer may have read most of the decoded stream of a blob
    // whose trailer is corrupt; only the end of stream says it was all right.
    let _serial = serial();
    let layer = big_layer();
    let mut blob = gzip(&layer);
    let n = blob.len();
    blob[n - 8] ^= 1;
    let mut r = decompress_reader(io::Cursor::new(blob), &opts(1)).unwrap();
    let (out, end) = drain(&mut r, 64 * 1024);
    assert_eq!(inner(end.unwrap_err()).kind(), ErrorKind::Corrupt);
    // All but the chunks still in flight when the check failed were handed out.
    assert!(
        out.len() >= layer.len() - 8 * 512 * 1024,
        "only {} of {} bytes were released",
        out.len(),
        layer.len()
    );
    assert_eq!(out[..], layer[..out.len()]);
}

#[test]
fn over_the_size_limit_is_an_error() {
    let _serial = serial();
    let layer = big_layer();
    for (name, blob, _) in formats(&layer) {
        for threads in [1, 0] {
            let limited = Options {
                max_size: Some(layer.len() as u64 - 1),
                threads,
                ..Options::default()
            };
            let mut r = decompress_reader(io::Cursor::new(blob.clone()), &limited).unwrap();
            let (out, end) = drain(&mut r, 1 << 20);
            let err = inner(end.unwrap_err());
            assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{name}: {err}");
            assert!(out.len() < layer.len(), "{name}");
        }
    }
    assert_no_threads_left("after the limits");
}

/// A reader of `data` that hands it out slowly: `pause` before every read.
struct Slow {
    data: io::Cursor<Vec<u8>>,
    pause: Duration,
}

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        std::thread::sleep(self.pause);
        self.data.read(buf)
    }
}

#[test]
fn dropping_a_reader_early_joins_every_thread() {
    let _serial = serial();
    let layer = big_layer();
    for (name, blob, _) in formats(&layer) {
        for threads in [1, 2, 0] {
            let what = format!("{name}, threads {threads}");
            // Never read.
            let r = decompress_reader(io::Cursor::new(blob.clone()), &opts(threads)).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            drop(r);
            assert_no_threads_left(&format!("{what}, never read"));
            // Read a little, then dropped: the feeder is blocked on the full tap.
            let mut r = decompress_reader(io::Cursor::new(blob.clone()), &opts(threads)).unwrap();
            let mut buf = vec![0; 300_000];
            r.read_exact(&mut buf).unwrap();
            assert_eq!(buf[..], layer[..buf.len()], "{what}");
            std::thread::sleep(Duration::from_millis(50));
            drop(r);
            assert_no_threads_left(&format!("{what}, read a little"));
            // A pipe with both ends dropped halfway.
            let (mut w, mut r) = decoding_pipe(&opts(threads)).unwrap();
            let half = blob[..blob.len() / 2].to_vec();
            let writer = std::thread::spawn(move || {
                let result = w.write_all(&half);
                drop(w);
                result
            });
            let mut buf = vec![0; 10_000];
            let _ = r.read(&mut buf);
            drop(r);
            let _ = writer.join().unwrap();
            assert_no_threads_left(&format!("{what}, pipe"));
        }
    }
}

#[test]
fn cancel_from_another_thread_stops_a_blocked_read_and_a_blocked_write() {
    let _serial = serial();
    let layer = big_layer();
    let blob = zstd(&layer, &["-1"]);
    // 64 MiB of zeros in a few KiB: its decoding fills every channel.
    let bomb = zstd(&vec![0; 64 * MIB], &["-1"]);
    for threads in [1, 0] {
        // A read blocked because no input comes (the pipe's writer waits).
        let (mut w, mut r) = decoding_pipe(&opts(threads)).unwrap();
        let cancel = r.cancel_handle();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            cancel.cancel();
        });
        let started = Instant::now();
        let err = inner(r.read(&mut [0; 100]).unwrap_err());
        assert_eq!(err.kind(), ErrorKind::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(5));
        canceller.join().unwrap();
        assert_eq!(
            w.write_all(b"more").unwrap_err().kind(),
            ErrorKind::Cancelled
        );
        drop((w, r));
        // A close blocked because nobody reads (back-pressure), cancelled from the reader's
        // side.
        let (mut w, r) = decoding_pipe(&opts(threads)).unwrap();
        let cancel = r.cancel_handle();
        let input = bomb.clone();
        let writer = std::thread::spawn(move || {
            let result = w.write_all(&input).and_then(|()| w.close());
            (result, w)
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !writer.is_finished(),
            "threads {threads}: the close did not block"
        );
        cancel.cancel();
        let (result, w) = writer.join().unwrap();
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
        drop((w, r));
        // A reader over a slow input, cancelled while reading.
        let slow = Slow {
            data: io::Cursor::new(blob.clone()),
            pause: Duration::from_millis(5),
        };
        let mut r: DecodingReader = decompress_reader(slow, &opts(threads)).unwrap();
        let cancel = r.cancel_handle();
        let mut buf = vec![0; 1000];
        r.read_exact(&mut buf).unwrap();
        cancel.cancel();
        let (_, end) = drain(&mut r, 1000);
        assert_eq!(inner(end.unwrap_err()).kind(), ErrorKind::Cancelled);
        assert_eq!(r.finish().unwrap_err().kind(), ErrorKind::Cancelled);
        drop(r);
    }
    assert_no_threads_left("after the cancels");
}

#[test]
fn a_pipe_fed_from_another_thread_in_odd_pieces_gives_the_stream_and_the_report() {
    let _serial = serial();
    let layer = big_layer();
    for (name, blob, _) in formats(&layer) {
        for threads in [1, 0] {
            let (mut w, mut r) = decoding_pipe(&opts(threads)).unwrap();
            let input = blob.clone();
            let writer = std::thread::spawn(move || {
                let mut rng = Rng::new(3);
                let mut rest = &input[..];
                while !rest.is_empty() {
                    let n = (1 + rng.below(200_000) as usize).min(rest.len());
                    w.write_all(&rest[..n])?;
                    rest = &rest[n..];
                }
                w.close()
            });
            let (out, end) = drain(&mut r, 7_777);
            end.unwrap();
            writer.join().unwrap().unwrap();
            assert!(out == layer, "{name}, threads {threads}");
            assert_eq!(
                r.finish().unwrap(),
                digest_bytes(&blob, &opts(threads)).unwrap()
            );
        }
        // A writer dropped without close: never a clean end (less than a chunk is written,
        // so the write cannot block on this thread).
        let (mut w, mut r) = decoding_pipe(&Options::default()).unwrap();
        w.write_all(&blob[..100_000]).unwrap();
        drop(w);
        let (_, end) = drain(&mut r, 1 << 20);
        assert_eq!(
            inner(end.unwrap_err()).kind(),
            ErrorKind::Cancelled,
            "{name}"
        );
    }
    assert_no_threads_left("after the pipes");
}

/// A cancel that comes while `finish` waits for more of the stream ends it, also when the
/// pipe's writer stays alive and idle after its write failed (as the Go package's feeding
/// goroutine leaves the C reader's writer until the reader is freed). `finish` used to wait
/// for the writer's outcome once the decoded chunks had ended, which a failed stream's idle
/// writer never sends: when a worker saw the cancel and ended its channel before the
/// cancelling thread woke the waiters, it hung forever (the Go suite's
/// `TestDecompressStreamContext` hung so in its 11th run in a loop on a loaded machine). Many
/// rounds with the cancel at varied moments around the wait.
#[test]
fn a_cancel_during_finish_ends_it_with_the_writer_still_open() {
    let _serial = serial();
    let blob = zstd(&big_layer(), &["-1"]);
    let half = blob.len() / 2;
    for round in 0..300u64 {
        let threads = (round % 2) as usize;
        let (mut w, mut r) = decoding_pipe(&opts(threads)).unwrap();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let input = blob[..half].to_vec();
        let writer = std::thread::spawn(move || {
            let first = w.write_all(&input);
            // Idle but open until `finish` returned, or 30 s (then `finish` hung: dropping
            // the writer lets it return, and the elapsed time below fails the test).
            let _ = released.recv_timeout(Duration::from_secs(30));
            (first, w)
        });
        let cancel = r.cancel_handle();
        let delay = Duration::from_micros(round * 37 % 2_000);
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(delay);
            cancel.cancel();
        });
        let started = Instant::now();
        let end = r.finish();
        let took = started.elapsed();
        release.send(()).unwrap();
        canceller.join().unwrap();
        let (first, w) = writer.join().unwrap();
        assert!(
            took < Duration::from_secs(20),
            "round {round}, threads {threads}: finish took {took:?} after a cancel"
        );
        assert_eq!(
            end.unwrap_err().kind(),
            ErrorKind::Cancelled,
            "round {round}, threads {threads}"
        );
        if let Err(e) = first {
            assert_eq!(e.kind(), ErrorKind::Cancelled, "round {round}: {e}");
        }
        drop((w, r));
    }
    assert_no_threads_left("after the cancels during finish");
}
