//! One gzip member decoded on several workers (the parallel path, `src/pipeline/gzip_par.rs`)
//! against the sequential ISA-L path, on the generated layer as one gzip member (see
//! `common`; `DIFFID_BENCH_MIB` sets its size).
//!
//! - `gzip-parallel/decode-only-w1`, `-w2`: the patched rapidgzip-core alone, its parallel
//!   path forced with exactly 1 and 2 workers, decoding to a sink: whether it splits.
//! - `gzip-parallel/api-isal`: `digest_bytes` on the sequential path (ISA-L), with BLAKE3
//!   (about ten times cheaper than SHA-256 here) so that decoding dominates, on the
//!   stages' three threads (the most an input that does not split gets).
//! - `gzip-parallel/api-w1`, `api-w2`: the same call with the parallel path forced with 1 and
//!   2 decode workers (plus the blob hash's thread).
//!
//! Criterion reports wall time. At the end the group also prints, for each benchmark, the
//! mean wall and CPU time (user + system, `getrusage`) per iteration over every iteration
//! run (warm-up included), so a loaded machine's wall figures can be read against the work
//! done; the part of that CPU time spent on the calling thread (rapidgzip's coordinator on
//! the parallel path: what the workers did not decode), which a loaded machine does not
//! change; and the process's peak RSS once the benchmark had run (the benchmarks run in the
//! order above, so a rise is the first one's to reach it).
//!
//! The worker budget is set to 4 threads, so the forced path gets its tokens whatever the
//! number of cores. Run: `cargo bench --bench gzip_parallel`.

mod common;

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Form, blob, layer_len, process_cpu, thread_cpu};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use diffid::{Algorithm, GzipParallel, Options, digest_bytes, last_gzip_parallel};

fn rusage() -> libc::rusage {
    // SAFETY: getrusage writes the struct it is given; RUSAGE_SELF is always valid.
    unsafe {
        let mut u = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    }
}

/// The process's peak resident set so far, in MiB.
fn peak_rss_mib() -> f64 {
    rusage().ru_maxrss as f64 / 1024.0
}

/// One benchmark's iterations, wall and CPU time over every sample criterion took, and the
/// process's peak RSS after its last sample.
struct Total {
    name: String,
    iters: u64,
    wall: Duration,
    cpu: Duration,
    /// The part of `cpu` spent on the calling thread.
    caller_cpu: Duration,
    rss: f64,
}

static TOTALS: Mutex<Vec<Total>> = Mutex::new(Vec::new());

/// Runs `f` `iters` times; returns the wall time and adds both times to [`TOTALS`].
fn timed(name: &str, iters: u64, mut f: impl FnMut()) -> Duration {
    let (cpu0, caller0, wall0) = (process_cpu(), thread_cpu(), Instant::now());
    for _ in 0..iters {
        f();
    }
    let (cpu, caller_cpu, wall) = (
        process_cpu() - cpu0,
        thread_cpu() - caller0,
        wall0.elapsed(),
    );
    let mut totals = TOTALS.lock().unwrap();
    match totals.iter_mut().find(|t| t.name == name) {
        Some(t) => {
            t.iters += iters;
            t.wall += wall;
            t.cpu += cpu;
            t.caller_cpu += caller_cpu;
            t.rss = peak_rss_mib();
        }
        None => totals.push(Total {
            name: name.to_string(),
            iters,
            wall,
            cpu,
            caller_cpu,
            rss: peak_rss_mib(),
        }),
    }
    wall
}

/// Prints the mean wall and CPU time per iteration of every benchmark (warm-up included).
fn print_totals() {
    for Total {
        name,
        iters,
        wall,
        cpu,
        caller_cpu,
        rss,
    } in TOTALS.lock().unwrap().iter()
    {
        eprintln!(
            "gzip-parallel/{name}: {iters} iterations, mean wall {:.3} s, mean CPU {:.3} s \
             (calling thread {:.3} s), process peak RSS after it {rss:.0} MiB",
            wall.as_secs_f64() / *iters as f64,
            cpu.as_secs_f64() / *iters as f64,
            caller_cpu.as_secs_f64() / *iters as f64
        );
    }
}

fn gzip_parallel(c: &mut Criterion) {
    diffid::set_workers(4).expect("the benchmark sets the budget first");
    let data = blob(Form::Gz);
    let mut g = c.benchmark_group("gzip-parallel");
    g.throughput(Throughput::Bytes(layer_len()));
    g.sampling_mode(SamplingMode::Flat);
    for workers in [1, 2] {
        let decoder = rapidgzip_core::Decoder::builder()
            .decoder_threads(workers)
            .exact_parallel_workers(Some(workers))
            .build()
            .unwrap();
        let name = format!("decode-only-w{workers}");
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                timed(&name, iters, || {
                    let r = decoder.decode(&data[..], &mut std::io::sink()).unwrap();
                    assert_eq!(r.decompressed_bytes, layer_len());
                })
            })
        });
    }
    let cases = [("api-isal", 0), ("api-w1", 1), ("api-w2", 2)];
    for (name, workers) in cases {
        let o = Options {
            algorithm: Algorithm::Blake3,
            gzip_parallel_workers: workers,
            // The sequential path's three threads (blob hash, decode, DiffID); too few for
            // the rule to pick the parallel path.
            threads: if workers == 0 { 3 } else { 0 },
            ..Options::default()
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(name, iters, || {
                    black_box(digest_bytes(&data, &o).unwrap());
                    let want = match workers {
                        0 => GzipParallel::NotTried,
                        _ => GzipParallel::Decoded,
                    };
                    assert_eq!(last_gzip_parallel(), want, "{name}");
                })
            })
        });
    }
    g.finish();
    print_totals();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    targets = gzip_parallel
}
criterion_main!(benches);
