//! The benches' input: a generated, deterministic layer and its compressed forms.
//!
//! The layer is a tar of synthetic files that compress like an installed system does: about
//! 45% text (words from a Zipf-like vocabulary), 45% machine-code-like binaries (repeated
//! instruction templates with some random operands) and 10% already-compressed (random)
//! bytes, so gzip -6 takes it to about 40% and xz -6 to about 30%, as on real layers.
//! `DIFFID_BENCH_MIB` sets its size (default 64 MiB).
//!
//! Compressing it at realistic levels takes a minute (xz -6 above all), so every form is
//! cached under `target/bench/criterion-inputs/` and reused while the generator and the
//! size stay the same. Delete that directory to regenerate.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bump when the generator or a compression setting changes: invalidates the cache.
const GENERATOR: u32 = 2;

/// Bytes handed between stages, as the library's own chunks.
pub const CHUNK: usize = 512 * 1024;

/// The forms every pipeline bench runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Uncompressed tar.
    Tar,
    /// One gzip member, level 6.
    Gz,
    /// One zstd frame, level 3.
    Zst,
    /// Several zstd frames of 4 MiB input each (as pzstd or zstd:chunked write them).
    ZstFrames,
    /// xz, level 6, blocks of 4 MiB (as `xz -T2` writes them, with sizes in the headers).
    XzBlocks,
    /// xz, level 6, one block (as `xz -T1` writes it).
    XzOne,
    /// bzip2, level 9.
    Bz2,
}

impl Form {
    pub const ALL: [Form; 7] = [
        Form::Tar,
        Form::Gz,
        Form::Zst,
        Form::ZstFrames,
        Form::XzBlocks,
        Form::XzOne,
        Form::Bz2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Form::Tar => "tar",
            Form::Gz => "gz",
            Form::Zst => "zst",
            Form::ZstFrames => "zst-frames",
            Form::XzBlocks => "xz-blocks",
            Form::XzOne => "xz-1block",
            Form::Bz2 => "bz2",
        }
    }
}

/// The layer size in bytes (`DIFFID_BENCH_MIB`, default 64).
pub fn layer_size() -> usize {
    std::env::var("DIFFID_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(64)
        << 20
}

fn cache_dir(size: usize) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target
        .join("bench")
        .join("criterion-inputs")
        .join(format!("v{GENERATOR}-{}MiB", size >> 20))
}

/// The blob of `form`, generated on first use and cached on disk and in memory. Call it
/// inside the bench closure, so a filtered-out bench never generates its input.
pub fn blob(form: Form) -> Arc<Vec<u8>> {
    blob_of(form, layer_size())
}

/// The blob of `form` for a layer of `size` bytes (a whole number of MiB), whatever
/// `DIFFID_BENCH_MIB` says: for the benches that compare layer sizes side by side.
pub fn blob_of(form: Form, size: usize) -> Arc<Vec<u8>> {
    /// A blob loaded once: its form, its layer's size, its bytes.
    type Loaded = (Form, usize, Arc<Vec<u8>>);
    static LOADED: Mutex<Vec<Loaded>> = Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap();
    if let Some((_, _, data)) = loaded.iter().find(|(f, s, _)| (*f, *s) == (form, size)) {
        return Arc::clone(data);
    }
    drop(loaded);
    let data = Arc::new(load(form, size));
    loaded = LOADED.lock().unwrap();
    loaded.push((form, size, Arc::clone(&data)));
    data
}

/// The size of the layer (decompressed), without generating the compressed forms.
pub fn layer_len() -> u64 {
    blob(Form::Tar).len() as u64
}

fn load(form: Form, size: usize) -> Vec<u8> {
    let dir = cache_dir(size);
    let path = dir.join(format!("layer.{}", form.name()));
    if let Ok(data) = fs::read(&path) {
        return data;
    }
    let data = if form == Form::Tar {
        generate_layer(size)
    } else {
        let tar = blob_of(Form::Tar, size);
        eprintln!(
            "diffid benches: compressing the {} MiB layer as {} (cached in {})",
            tar.len() >> 20,
            form.name(),
            dir.display()
        );
        compress(form, &tar)
    };
    fs::create_dir_all(&dir).expect("create the bench input cache");
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, &data).expect("write a bench input");
    fs::rename(&tmp, &path).expect("rename a bench input");
    data
}

/// `n` bytes that are not a tar archive (random), for hashing through the public API: the
/// tar stage gives up on the first block and skips the rest without looking at it.
pub fn not_tar(n: usize) -> Vec<u8> {
    let mut rng = Rng(0x5EED_0FD1_FF1D);
    let mut v = vec![0u8; n];
    rng.fill(&mut v);
    v
}

fn compress(form: Form, tar: &[u8]) -> Vec<u8> {
    match form {
        Form::Tar => tar.to_vec(),
        Form::Gz => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            enc.write_all(tar).unwrap();
            enc.finish().unwrap()
        }
        Form::Zst => zstd::bulk::compress(tar, 3).unwrap(),
        Form::ZstFrames => {
            let mut out = Vec::new();
            for piece in tar.chunks(4 << 20) {
                out.extend_from_slice(&zstd::bulk::compress(piece, 3).unwrap());
            }
            out
        }
        Form::XzBlocks => {
            let stream = liblzma::stream::MtStreamBuilder::new()
                .preset(6)
                .threads(2)
                .block_size(4 << 20)
                .check(liblzma::stream::Check::Crc64)
                .encoder()
                .unwrap();
            let mut out = Vec::new();
            liblzma::read::XzEncoder::new_stream(tar, stream)
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Form::XzOne => {
            let mut out = Vec::new();
            liblzma::read::XzEncoder::new(tar, 6)
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Form::Bz2 => {
            let mut out = Vec::new();
            bzip2::read::BzEncoder::new(tar, bzip2::Compression::best())
                .read_to_end(&mut out)
                .unwrap();
            out
        }
    }
}

/// splitmix64: small, fast, and the same on every platform and crate version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn fill(&mut self, out: &mut [u8]) {
        for piece in out.chunks_mut(8) {
            let x = self.next().to_le_bytes();
            piece.copy_from_slice(&x[..piece.len()]);
        }
    }
}

/// Text: lines of words drawn from a vocabulary with a Zipf-like skew; half of the lines
/// are common lines (boilerplate, licences, markup) that recur across files.
fn text(rng: &mut Rng, vocab: &[Vec<u8>], lines: &[Vec<u8>], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 128);
    while out.len() < n {
        if rng.below(2) == 0 {
            out.extend_from_slice(&lines[skewed(rng, lines.len())]);
        } else {
            out.extend_from_slice(&line(rng, vocab));
        }
    }
    out.truncate(n);
    out
}

fn line(rng: &mut Rng, vocab: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    let width = 30 + rng.below(50) as usize;
    while out.len() < width {
        out.extend_from_slice(&vocab[skewed(rng, vocab.len())]);
        out.push(b' ');
    }
    out.pop();
    out.push(b'\n');
    out
}

/// An index below `n`, low ones far more often (the square of a uniform draw).
fn skewed(rng: &mut Rng, n: usize) -> usize {
    let u = rng.below(1 << 16) as usize;
    (((u * u) >> 16) * n) >> 16
}

/// Machine-code-like bytes: instruction templates reused often, with random operands.
fn binary(rng: &mut Rng, templates: &[Vec<u8>], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        let t = &templates[skewed(rng, templates.len())];
        out.extend_from_slice(t);
        match rng.below(8) {
            0 => out.extend_from_slice(&(rng.below(1 << 12) as u16).to_le_bytes()),
            1 => out.extend_from_slice(&(rng.next() as u32).to_le_bytes()),
            2 => out.resize(out.len() + rng.below(16) as usize, 0),
            _ => {}
        }
    }
    out.truncate(n);
    out
}

/// A tar of `size` bytes or a little more: directories and files of the three kinds.
pub fn generate_layer(size: usize) -> Vec<u8> {
    let mut rng = Rng(42);
    let vocab: Vec<Vec<u8>> = (0..4000)
        .map(|_| {
            let len = 2 + rng.below(9) as usize;
            (0..len).map(|_| b'a' + rng.below(26) as u8).collect()
        })
        .collect();
    let lines: Vec<Vec<u8>> = (0..400).map(|_| line(&mut rng, &vocab)).collect();
    // Instruction sequences of 2 to 24 bytes.
    let templates: Vec<Vec<u8>> = (0..800)
        .map(|_| {
            let mut t = vec![0u8; 2 + rng.below(23) as usize];
            rng.fill(&mut t);
            t
        })
        .collect();

    let mut builder = tar::Builder::new(Vec::with_capacity(size + (size >> 4)));
    builder.mode(tar::HeaderMode::Deterministic);
    let mut written = 0usize;
    let mut dir = 0;
    let mut file = 0;
    while written < size {
        if file % 50 == 0 {
            dir += 1;
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_mtime(0);
            builder
                .append_data(&mut h, format!("usr/lib/pkg{dir:04}/"), std::io::empty())
                .unwrap();
        }
        file += 1;
        let kind = rng.below(20);
        let (data, name) = match kind {
            0..=8 => {
                let n = 512 + rng.below(96 << 10) as usize;
                (text(&mut rng, &vocab, &lines, n), format!("doc{file}.txt"))
            }
            9..=17 => {
                let n = 4096 + rng.below(92 << 10) as usize;
                (binary(&mut rng, &templates, n), format!("lib{file}.so"))
            }
            _ => {
                let n = 1024 + rng.below(96 << 10) as usize;
                let mut v = vec![0u8; n];
                rng.fill(&mut v);
                (v, format!("data{file}.gz"))
            }
        };
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(if (9..=17).contains(&kind) {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        builder
            .append_data(&mut h, format!("usr/lib/pkg{dir:04}/{name}"), &data[..])
            .unwrap();
        written += 512 + data.len().div_ceil(512) * 512;
    }
    builder.into_inner().unwrap()
}

/// Reads `reader` to its end in chunk-sized reads, discarding the bytes; returns the count.
pub fn drain(mut reader: impl Read) -> u64 {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n as u64,
            Err(e) => panic!("decoding failed: {e}"),
        }
    }
}

/// A criterion measurement that reads a CPU clock instead of the wall clock: time spent
/// waiting for a core (other load on the machine) is not counted. `CpuClock::PROCESS` counts
/// every thread of the process (user + system, `getrusage(RUSAGE_SELF)`), `CpuClock::THREAD`
/// the measuring thread (`CLOCK_THREAD_CPUTIME_ID`). Values are nanoseconds, printed as
/// wall time's are.
pub struct CpuClock(fn() -> std::time::Duration);

impl CpuClock {
    pub const PROCESS: CpuClock = CpuClock(process_cpu);
    pub const THREAD: CpuClock = CpuClock(thread_cpu);
}

/// CPU time (user + system) of the whole process so far.
pub fn process_cpu() -> std::time::Duration {
    let tv = |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_SELF)");
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time of the calling thread so far.
pub fn thread_cpu() -> std::time::Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl criterion::measurement::Measurement for CpuClock {
    type Intermediate = std::time::Duration;
    type Value = std::time::Duration;
    fn start(&self) -> Self::Intermediate {
        (self.0)()
    }
    fn end(&self, start: Self::Intermediate) -> Self::Value {
        (self.0)().saturating_sub(start)
    }
    fn add(&self, a: &Self::Value, b: &Self::Value) -> Self::Value {
        *a + *b
    }
    fn zero(&self) -> Self::Value {
        std::time::Duration::ZERO
    }
    fn to_f64(&self, value: &Self::Value) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn criterion::measurement::ValueFormatter {
        static WALL: criterion::measurement::WallTime = criterion::measurement::WallTime;
        criterion::measurement::Measurement::formatter(&WALL)
    }
}
