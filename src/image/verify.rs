//! The checks: JSON blobs (manifests, configs) while planning, layers concurrently after.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::report::{ImageReport, LayerReport, Problem, ProblemKind};
use super::{ImageOptions, Store, parse_digest};
use crate::detect::Format;
use crate::hash::Hasher;
use crate::pipeline::{Digester, Report};

/// One layer to digest and what it must match.
#[derive(Debug, Clone)]
pub(crate) struct LayerPlan {
    pub path: String,
    /// The blob digest it must have (descriptor, or the `blobs/<alg>/<hex>` name).
    pub digest: Option<String>,
    pub size: Option<u64>,
    pub media_type: Option<String>,
    /// The config's `rootfs.diff_ids` entry at its position.
    pub diff_id: Option<String>,
}

/// One image as the planner found it; manifest and config already checked.
#[derive(Debug, Clone)]
pub(crate) struct ImagePlan {
    pub name: String,
    pub manifest: Option<String>,
    pub platform: Option<String>,
    pub config: Option<String>,
    pub problems: Vec<Problem>,
    pub layers: Vec<LayerPlan>,
}

/// Reads a JSON blob (manifest, config) and checks its size and digest against what names
/// it. Returns its bytes when it exists and is within the JSON size cap (also when a check
/// failed: the caller still learns what it says), and the problems found.
pub(crate) fn json_blob(
    store: &dyn Store,
    path: &str,
    digest: Option<&str>,
    size: Option<u64>,
    what: &str,
    opts: &ImageOptions,
    problems: &mut Vec<Problem>,
) -> Option<Vec<u8>> {
    let data = match super::read_json(store, path, opts.max_json) {
        Ok(Some(data)) => data,
        Ok(None) => {
            problems.push(Problem::new(
                ProblemKind::MissingBlob,
                format!("the {what} {path} is missing"),
            ));
            return None;
        }
        Err(e) => {
            problems.push(Problem::new(
                ProblemKind::Invalid,
                format!("the {what} {path}: {e}"),
            ));
            return None;
        }
    };
    if let Some(size) = size
        && size != data.len() as u64
    {
        problems.push(size_problem(what, path, size, data.len() as u64));
    }
    if let Some(digest) = digest {
        match parse_digest(digest) {
            Ok((alg, _)) => {
                let mut h = Hasher::new(alg);
                h.update(&data);
                let (got, _) = h.finish();
                if got.to_string() != digest {
                    problems.push(digest_problem(what, path, digest, &got.to_string()));
                }
            }
            Err(e) => problems.push(Problem::new(ProblemKind::Invalid, e.to_string())),
        }
    }
    Some(data)
}

fn size_problem(what: &str, path: &str, want: u64, got: u64) -> Problem {
    Problem::new(
        ProblemKind::SizeMismatch,
        format!("the {what} {path} is {got} bytes but its descriptor says {want}"),
    )
}

fn digest_problem(what: &str, path: &str, want: &str, got: &str) -> Problem {
    Problem::new(
        ProblemKind::DigestMismatch,
        format!("the {what} {path} hashes to {got}, not {want}"),
    )
}

/// The media types that name a blob of `format`: containers/image's label
/// ([`Format::media_type`]: `+gzip` also for bzip2 and xz), its non-distributable twin, and
/// the Docker schema 2 name of the same type.
fn media_types(format: Format) -> &'static [&'static str] {
    match format {
        Format::None => &[
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
            "application/vnd.docker.image.rootfs.diff.tar",
        ],
        Format::Zstd => &[
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
            "application/vnd.docker.image.rootfs.diff.tar.zstd",
        ],
        Format::Gzip | Format::Bzip2 | Format::Xz => &[
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        ],
    }
}

/// What digesting one distinct layer blob gave.
struct Outcome {
    size: Option<u64>,
    /// The detected format; for a blob that did not decode, the one its error concerns.
    format: Option<Format>,
    report: Option<Report>,
    problems: Vec<Problem>,
}

/// Digests one layer blob with the algorithm of the digest it is compared with.
fn digest_layer(store: &dyn Store, plan: &LayerPlan, opts: &ImageOptions) -> Outcome {
    let mut problems = Vec::new();
    let want = plan.digest.as_deref().or(plan.diff_id.as_deref());
    let alg = match want.map(parse_digest) {
        Some(Ok((alg, _))) => alg,
        Some(Err(e)) => {
            problems.push(Problem::new(ProblemKind::Invalid, e.to_string()));
            crate::hash::Algorithm::Sha256
        }
        None => crate::hash::Algorithm::Sha256,
    };
    let member = match store.open(&plan.path) {
        Ok(Some(m)) => m,
        Ok(None) => {
            problems.push(Problem::new(
                ProblemKind::MissingBlob,
                format!("the layer {} is missing", plan.path),
            ));
            return Outcome {
                size: None,
                format: None,
                report: None,
                problems,
            };
        }
        Err(e) => {
            problems.push(Problem::new(
                ProblemKind::Invalid,
                format!("the layer {}: {e}", plan.path),
            ));
            return Outcome {
                size: None,
                format: None,
                report: None,
                problems,
            };
        }
    };
    let size = member.size;
    let digest_opts = crate::Options {
        algorithm: alg,
        ..opts.digest.clone()
    };
    let mut reader = member.reader;
    let result = Digester::new(&digest_opts).and_then(|mut d| {
        d.read_from(&mut reader)?;
        d.finish()
    });
    match result {
        Ok(report) => Outcome {
            size: Some(size),
            format: Some(report.format),
            report: Some(report),
            problems,
        },
        Err(e) => {
            problems.push(Problem::new(
                ProblemKind::Decode(e.kind()),
                format!("the layer {}: {e}", plan.path),
            ));
            Outcome {
                size: Some(size),
                format: e.format(),
                report: None,
                problems,
            }
        }
    }
}

/// Digests every distinct layer blob of `plans` concurrently and turns the plans into
/// reports.
pub(crate) fn run(store: &dyn Store, plans: &[ImagePlan], opts: &ImageOptions) -> Vec<ImageReport> {
    // A blob shared by several images (a base layer of two platforms, a layer `docker save`
    // links twice) is digested once.
    let mut jobs: Vec<&LayerPlan> = Vec::new();
    let mut job_of: HashMap<(&str, Option<&str>), usize> = HashMap::new();
    for plan in plans {
        for layer in &plan.layers {
            job_of
                .entry((layer.path.as_str(), layer.digest.as_deref()))
                .or_insert_with(|| {
                    jobs.push(layer);
                    jobs.len() - 1
                });
        }
    }
    let outcomes: Vec<Mutex<Option<Outcome>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    // One thread per layer in flight, as many as the worker budget allows; each digests on
    // its own thread and takes pipeline workers from the same budget, so the total stays
    // bounded whatever the number of layers.
    let lanes = opts.digest.resolved_threads().clamp(1, jobs.len().max(1));
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(i) else { break };
            let outcome = digest_layer(store, job, opts);
            *outcomes[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        }
    };
    if lanes <= 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 1..lanes {
                s.spawn(work);
            }
            work();
        });
    }
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every job ran")
        })
        .collect();

    plans
        .iter()
        .map(|plan| {
            let layers = plan
                .layers
                .iter()
                .enumerate()
                .map(|(index, layer)| {
                    let job = job_of[&(layer.path.as_str(), layer.digest.as_deref())];
                    layer_report(index, layer, &outcomes[job])
                })
                .collect();
            ImageReport {
                name: plan.name.clone(),
                manifest: plan.manifest.clone(),
                platform: plan.platform.clone(),
                config: plan.config.clone(),
                problems: plan.problems.clone(),
                layers,
            }
        })
        .collect()
}

fn layer_report(index: usize, plan: &LayerPlan, outcome: &Outcome) -> LayerReport {
    let mut problems = outcome.problems.clone();
    let what = format!("layer {index}");
    if let (Some(want), Some(got)) = (plan.size, outcome.size)
        && want != got
    {
        problems.push(size_problem(&what, &plan.path, want, got));
    }
    if let Some(r) = &outcome.report {
        let blob = r.blob_digest.to_string();
        let diff = r.diff_id.to_string();
        if let Some(want) = &plan.digest
            && *want != blob
        {
            problems.push(digest_problem(&what, &plan.path, want, &blob));
        }
        match &plan.diff_id {
            Some(want) if *want != diff => problems.push(Problem::new(
                ProblemKind::DiffIdMismatch,
                format!(
                    "the {what} {} has DiffID {diff}, but the config's rootfs.diff_ids[{index}] \
                     is {want}",
                    plan.path
                ),
            )),
            _ => {}
        }
        if let Some(mt) = &plan.media_type
            && !media_types(r.format).contains(&mt.as_str())
        {
            problems.push(Problem::new(
                ProblemKind::MediaTypeMismatch,
                format!(
                    "the {what} {} is {} but its media type is {mt} (containers/image labels \
                     it {})",
                    plan.path,
                    r.format.name(),
                    r.format.media_type()
                ),
            ));
        }
    }
    LayerReport {
        index,
        path: plan.path.clone(),
        media_type: plan.media_type.clone(),
        format: outcome.format,
        size: outcome.size,
        blob_digest: outcome.report.as_ref().map(|r| r.blob_digest.to_string()),
        diff_id: outcome.report.as_ref().map(|r| r.diff_id.to_string()),
        problems,
    }
}

/// Hashes every blob under `blobs/sha256` and `blobs/sha512` that is not in `named` (no image
/// of the layout refers to it) and checks it hashes to its file name. `None` when every such
/// blob does; else a report named `unreferenced blobs` with one problem per bad blob.
pub(crate) fn unreferenced(
    store: &dyn Store,
    named: &std::collections::HashSet<String>,
) -> crate::error::Result<Option<ImageReport>> {
    let mut problems = Vec::new();
    for alg in [
        crate::hash::Algorithm::Sha256,
        crate::hash::Algorithm::Sha512,
    ] {
        for path in store.list(&format!("blobs/{}", alg.name()))? {
            if named.contains(&path) {
                continue;
            }
            let hex = path.rsplit('/').next().unwrap_or_default();
            let want = format!("{}:{hex}", alg.name());
            if parse_digest(&want).is_err() {
                problems.push(Problem::new(
                    ProblemKind::Invalid,
                    format!("{path} is not named by a digest"),
                ));
                continue;
            }
            let member = match store.open(&path) {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(e) => {
                    problems.push(Problem::new(ProblemKind::Invalid, e.to_string()));
                    continue;
                }
            };
            let mut hasher = Hasher::new(alg);
            let mut reader = member.reader;
            let mut buf = vec![0u8; 1 << 16];
            let read = loop {
                match reader.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => hasher.update(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            if let Err(e) = read {
                problems.push(Problem::new(
                    ProblemKind::Decode(crate::error::ErrorKind::Io),
                    format!("reading {path}: {e}"),
                ));
                continue;
            }
            let got = hasher.finish().0.to_string();
            if got != want {
                problems.push(digest_problem("unreferenced blob", &path, &want, &got));
            }
        }
    }
    Ok((!problems.is_empty()).then(|| ImageReport {
        name: "unreferenced blobs".to_string(),
        manifest: None,
        platform: None,
        config: None,
        problems,
        layers: Vec::new(),
    }))
}
