//! Shared helpers of the integration tests: the independent references (containers/image's
//! Go code through the oracle program, the system's decoders, `openssl dgst`) and inputs
//! built at run time.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The Go reference (tests/oracle), built by `make test` and named by `DIFFID_ORACLE`.
pub fn oracle_path() -> PathBuf {
    match std::env::var_os("DIFFID_ORACLE") {
        Some(p) => PathBuf::from(p),
        None => {
            let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracle/oracle");
            assert!(
                p.exists(),
                "the Go reference is missing: run `make test` (or `make oracle`) first"
            );
            p
        }
    }
}

/// containers/image's verdict on each file, one JSON object per file.
pub fn oracle(files: &[PathBuf]) -> Vec<Value> {
    let out = Command::new(oracle_path())
        .args(files)
        .output()
        .expect("run the Go reference");
    let text = String::from_utf8(out.stdout).expect("oracle output is UTF-8");
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("oracle JSON"))
        .collect();
    assert_eq!(
        rows.len(),
        files.len(),
        "oracle answered for every file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    rows
}

/// Runs `program args` with `input` on stdin; returns stdout, or None when it failed.
pub fn run(program: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out.status.success().then_some(out.stdout)
}

/// Like [`run`] but the program must succeed.
pub fn must(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    run(program, args, input).unwrap_or_else(|| panic!("{program} {args:?} failed"))
}

/// `openssl dgst -<alg>` of `data`, as `alg:hex`: an implementation independent of ours.
pub fn openssl(alg: &str, data: &[u8]) -> String {
    let out = must("openssl", &["dgst", &format!("-{alg}"), "-r"], data);
    let text = String::from_utf8(out).unwrap();
    format!("{alg}:{}", text.split_whitespace().next().unwrap())
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    must("gzip", &["-c", "-n"], data)
}
pub fn bzip2(data: &[u8]) -> Vec<u8> {
    must("bzip2", &["-c"], data)
}
pub fn xz(data: &[u8], args: &[&str]) -> Vec<u8> {
    let mut a = vec!["-c", "-T1"];
    a.extend_from_slice(args);
    must("xz", &a, data)
}
pub fn zstd(data: &[u8], args: &[&str]) -> Vec<u8> {
    let mut a = vec!["-c", "-q"];
    a.extend_from_slice(args);
    must("zstd", &a, data)
}

/// A zstd skippable frame (magic 0x184D2A5n) carrying `payload`.
pub fn skippable(n: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x50 | (n & 15), 0x2a, 0x4d, 0x18];
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// A small deterministic pseudo-random generator (tests must be reproducible).
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e3779b97f4a7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize, compressible: bool) -> Vec<u8> {
        (0..n)
            .map(|i| {
                if compressible {
                    b"layer data "[i % 11] ^ (self.below(8) == 0) as u8
                } else {
                    self.next() as u8
                }
            })
            .collect()
    }
}

/// A tar archive of `entries` (name, content), written by the `tar` crate (GNU long names,
/// PAX where needed), with the end-of-archive marker.
pub fn tar_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// A realistic little layer: a tar of this repository's `src/` made by the system's tar.
pub fn source_layer() -> Vec<u8> {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("tar")
        .args([
            "-c",
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "-C",
            root,
            "src",
            "Cargo.toml",
        ])
        .output()
        .expect("run tar");
    assert!(out.status.success());
    out.stdout
}

/// A deterministic layer of about 600 KB (text-like and random files, long names): the same
/// bytes on every machine and every commit, so verdicts that depend on content are stable.
pub fn generated_layer() -> Vec<u8> {
    let mut rng = Rng::new(2026);
    let entries: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            let name = format!("usr/share/doc/package-{i}/{}", "file".repeat(1 + i % 30));
            let len = rng.below(30_000) as usize;
            let random = i % 4 == 0;
            (name, rng.bytes(len, !random))
        })
        .collect();
    tar_of(&entries)
}

/// Writes `data` into `dir/name` and returns the path.
pub fn put(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Threads listed in `/proc/self/task`. A joined thread stays listed until the kernel has
/// reaped it, a moment after `join` returned: counting these right after a join races.
pub fn listed_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task is readable")
        .count()
}

/// The names of the threads of this process that have not begun to exit: those whose
/// `/proc/self/task/TID/stat` flags lack `PF_EXITING` (0x4). The kernel sets that flag first
/// thing in `do_exit`, before the futex wake that lets `join` return, so a joined thread is
/// never counted here: unlike [`listed_threads`], this count does not race the reaping.
pub fn running_threads() -> Vec<String> {
    const PF_EXITING: u64 = 0x4;
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task is readable")
        .filter_map(|t| {
            // A thread gone between the listing and the read is not running.
            let stat = std::fs::read_to_string(t.ok()?.path().join("stat")).ok()?;
            // "pid (comm) state ppid pgrp session tty_nr tpgid flags ...": comm may hold
            // spaces and parentheses, so split after the last ')'.
            let close = stat.rfind(')')?;
            let name = stat[stat.find('(')? + 1..close].to_string();
            let flags: u64 = stat[close + 1..].split_whitespace().nth(6)?.parse().ok()?;
            (flags & PF_EXITING == 0).then_some(name)
        })
        .collect()
}

/// Waits until at most `base` threads are listed, for up to 10 s (the kernel reaps joined
/// threads in microseconds; a loaded machine may take longer); false if they never are.
pub fn wait_listed_at_most(base: usize) -> bool {
    let t = std::time::Instant::now();
    while listed_threads() > base {
        if t.elapsed() > std::time::Duration::from_secs(10) {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    true
}

/// A worker budget of 32 threads, wide enough for the forced gzip parallel path (4 decode
/// workers and the blob hash) in every test of a binary at once. The budget is fixed by the
/// first computation of the process, so every test of a binary that forces that path calls
/// this before its first digest.
pub fn wide_budget() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| diffid::set_workers(32).expect("the first computation sets the budget"));
}

/// Options forcing the gzip parallel path with exactly `workers` decode workers.
pub fn gzip_forced(workers: usize) -> diffid::Options {
    diffid::Options {
        gzip_parallel_workers: workers,
        ..diffid::Options::default()
    }
}
