//! The whole job per format: `digest_bytes` on the generated layer (see `common`) in every
//! compressed form, SHA-256, on one thread (`threads = 1`: every stage inline on the
//! caller's thread) and on the default threads (one per core). Throughput is in
//! decompressed (layer) bytes, so the formats compare directly.
//!
//! `api/*` compares the ways in: one `digest_bytes` call, `Digester::write` in 64 KiB
//! pieces, and `Digester::read_from` (no copy into the chunks).
//!
//! `concurrent/*`: four layers (gzip, zstd frames, xz blocks, bzip2: one of each kind of
//! decoder) one after the other, each with all the workers, and the same four at once from
//! four threads sharing the process-wide worker budget. At once should take no longer than
//! one after the other: the budget keeps the four from starting four sets of threads.
//!
//! `sizes/*`: layers of 4 and 40 MiB (and the `DIFFID_BENCH_MIB` one) as one zstd frame,
//! zstd frames and one gzip member, through the pipeline on one thread and on the default
//! threads, and for zstd beside libzstd alone (the `zstd` crate's streaming decoder read in
//! 512 KiB pieces, what `zstd -dc` runs): the fixed cost a layer pays shows as the ratio to
//! the decoder alone growing as the layer shrinks.
//!
//! Run: `cargo bench --bench pipeline` (`-- xz` to pick formats).

mod common;

use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use common::{CpuClock, Form, blob, blob_of, drain, layer_len, layer_size};
use criterion::measurement::Measurement;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use diffid::{Digester, Options, digest_bytes};

fn threads(n: usize) -> Options {
    Options {
        threads: n,
        ..Options::default()
    }
}

fn pipeline(c: &mut Criterion) {
    let size = layer_len();
    let cores = threads(0).resolved_threads();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(size));
    g.sampling_mode(SamplingMode::Flat);
    for form in Form::ALL {
        for (label, o) in [
            ("j1".to_string(), threads(1)),
            (format!("j{cores}"), threads(0)),
        ] {
            // Criterion calls the closure once per sample: check the answer once.
            let mut checked = false;
            g.bench_function(format!("{}/{label}", form.name()), |b| {
                let data = blob(form);
                if !checked {
                    // Same answer on one thread and on many, and the whole layer seen.
                    let report = digest_bytes(&data, &o).unwrap();
                    assert_eq!(report, digest_bytes(&data, &threads(1)).unwrap());
                    assert_eq!(report.diff_size, size);
                    assert!(report.tar.valid);
                    checked = true;
                }
                b.iter(|| black_box(digest_bytes(&data, &o).unwrap()))
            });
        }
    }
    g.finish();
}

fn sizes(c: &mut Criterion) {
    sizes_in(c, "sizes");
}

/// `sizes-cpu/*`: the same, timed in CPU seconds of the whole process (every thread), which
/// a loaded machine disturbs less than wall time.
fn sizes_cpu(c: &mut Criterion<CpuClock>) {
    sizes_in(c, "sizes-cpu");
}

fn sizes_in<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let cores = threads(0).resolved_threads();
    let mut mib = vec![4, 40];
    if !mib.contains(&(layer_size() >> 20)) {
        mib.push(layer_size() >> 20);
    }
    let mut g = c.benchmark_group(group);
    g.sampling_mode(SamplingMode::Flat);
    for m in mib {
        let size = m << 20;
        for form in [Form::Zst, Form::ZstFrames, Form::Gz] {
            let name = format!("{}/{m}MiB", form.name());
            let len = blob_of(Form::Tar, size).len() as u64;
            g.throughput(Throughput::Bytes(len));
            if form == Form::Zst {
                g.bench_function(format!("{name}/zstd-alone"), |b| {
                    let data = blob_of(form, size);
                    b.iter(|| {
                        black_box(drain(zstd::stream::read::Decoder::new(&data[..]).unwrap()))
                    })
                });
            }
            for (label, o) in [
                ("j1".to_string(), threads(1)),
                (format!("j{cores}"), threads(0)),
            ] {
                let mut checked = false;
                g.bench_function(format!("{name}/{label}"), |b| {
                    let data = blob_of(form, size);
                    if !checked {
                        let report = digest_bytes(&data, &o).unwrap();
                        assert_eq!(report.diff_size, len);
                        assert!(report.tar.valid);
                        checked = true;
                    }
                    b.iter(|| black_box(digest_bytes(&data, &o).unwrap()))
                });
            }
        }
    }
    g.finish();
}

fn ways_in(c: &mut Criterion) {
    let size = layer_len();
    let o = threads(0);
    let mut g = c.benchmark_group("api");
    g.throughput(Throughput::Bytes(size));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("zst/digest_bytes", |b| {
        let data = blob(Form::Zst);
        b.iter(|| black_box(digest_bytes(&data, &o).unwrap()))
    });
    g.bench_function("zst/write-64KiB", |b| {
        let data = blob(Form::Zst);
        b.iter(|| {
            let mut d = Digester::new(&o).unwrap();
            for piece in data.chunks(64 << 10) {
                d.write(piece).unwrap();
            }
            black_box(d.finish().unwrap())
        })
    });
    g.bench_function("zst/read_from", |b| {
        let data = blob(Form::Zst);
        b.iter(|| {
            let mut d = Digester::new(&o).unwrap();
            d.read_from(&mut Cursor::new(&data[..])).unwrap();
            black_box(d.finish().unwrap())
        })
    });
    g.finish();
}

fn concurrent(c: &mut Criterion) {
    let forms = [Form::Gz, Form::ZstFrames, Form::XzBlocks, Form::Bz2];
    let o = threads(0);
    let mut g = c.benchmark_group("concurrent");
    g.throughput(Throughput::Bytes(layer_len() * forms.len() as u64));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("4-layers/one-after-another", |b| {
        let blobs: Vec<_> = forms.iter().map(|&f| blob(f)).collect();
        b.iter(|| {
            for data in &blobs {
                black_box(digest_bytes(data, &o).unwrap());
            }
        })
    });
    g.bench_function("4-layers/at-once", |b| {
        let blobs: Vec<_> = forms.iter().map(|&f| blob(f)).collect();
        b.iter(|| {
            std::thread::scope(|s| {
                for data in &blobs {
                    let o = &o;
                    s.spawn(move || black_box(digest_bytes(data, o).unwrap()));
                }
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = cpu;
    config = Criterion::default()
        .with_measurement(CpuClock::PROCESS)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = sizes_cpu
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = pipeline, sizes, ways_in, concurrent
}
criterion_main!(benches, cpu);
