//! `diffid image PATH`: verify every layer of every image in an OCI layout, an oci-archive or
//! a `docker save` archive.

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use diffid::image::{ImageOptions, ImageReport, Platform, Problem, verify_path};
use diffid::{Error, Options};
use serde_json::{Value, json};

/// Verify a whole image: every blob's digest and size against its descriptor, every layer's
/// DiffID against the config's rootfs.diff_ids, every layer's media type against its
/// compression — for every image (every platform) in PATH.
///
/// PATH is an OCI image layout directory, an oci-archive (a tar of one; also what recent
/// `docker save` writes), or a classic `docker save` archive. A tar is read in place.
///
/// Exit status: 0 when every image verified, 1 otherwise, 2 for a usage error.
/// (To digest a layer blob that is a file named `image`, run `diffid ./image`.)
#[derive(Parser, Debug)]
#[command(name = "diffid image", version, about, long_about)]
struct ImageCli {
    /// The image: an OCI layout directory, an oci-archive or a docker save archive.
    #[arg(value_name = "PATH")]
    path: std::path::PathBuf,

    /// Verify only the images of this platform (OS/ARCH or OS/ARCH/VARIANT).
    #[arg(long, value_name = "PLATFORM", value_parser = parse_platform)]
    platform: Option<Platform>,

    /// Print one JSON object per image per line.
    #[arg(long)]
    json: bool,

    /// Ignore bytes after the last gzip member of a layer (containers/image rejects them).
    #[arg(long)]
    lenient_gzip: bool,

    /// Accept xz filter chains other than a lone LZMA2 (containers/image rejects them).
    #[arg(long)]
    full_xz: bool,

    /// Most worker threads (0: the process's worker budget).
    #[arg(short = 'j', long, value_name = "N", default_value_t = 0)]
    threads: usize,
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    s.parse().map_err(|e: Error| e.message().to_string())
}

/// Runs `diffid image ARGS...`; `args[0]` is `image`.
pub fn main(args: &[OsString]) -> ExitCode {
    let cli = ImageCli::parse_from(args);
    let opts = ImageOptions {
        digest: Options {
            lenient_gzip: cli.lenient_gzip,
            full_xz: cli.full_xz,
            threads: cli.threads,
            ..Options::default()
        },
        platform: cli.platform.clone(),
        ..ImageOptions::default()
    };
    let path = cli.path.display().to_string();
    let mut stdout = io::stdout().lock();
    let result = verify_path(&cli.path, &opts);
    let (printed, ok) = match &result {
        Err(e) => {
            let printed = if cli.json {
                writeln!(
                    stdout,
                    "{}",
                    json!({"path": path, "error": {"kind": e.kind().name(), "message": e.to_string()}})
                )
            } else {
                eprintln!("diffid image: {path}: {e}");
                Ok(())
            };
            (printed, false)
        }
        Ok(images) if images.is_empty() => {
            let msg = match &cli.platform {
                Some(p) => format!("no image in {path} is for {p}"),
                None => format!("{path} holds no image"),
            };
            let printed = if cli.json {
                writeln!(
                    stdout,
                    "{}",
                    json!({"path": path, "error": {"kind": "no_image", "message": msg}})
                )
            } else {
                eprintln!("diffid image: {msg}");
                Ok(())
            };
            (printed, false)
        }
        Ok(images) => {
            let printed = if cli.json {
                images
                    .iter()
                    .try_for_each(|i| writeln!(stdout, "{}", json_image(&path, i)))
            } else {
                write!(stdout, "{}", table(images))
            };
            (printed, images.iter().all(ImageReport::verified))
        }
    };
    if printed.is_err() || !ok {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn problems_json(problems: &[Problem]) -> Value {
    problems
        .iter()
        .map(|p| json!({"kind": p.kind.name(), "message": p.message}))
        .collect()
}

fn json_image(path: &str, image: &ImageReport) -> Value {
    json!({
        "path": path,
        "image": image.name,
        "manifest": image.manifest,
        "platform": image.platform,
        "config": image.config,
        "verified": image.verified(),
        "problems": problems_json(&image.problems),
        "layers": image.layers.iter().map(|l| json!({
            "index": l.index,
            "path": l.path,
            "media_type": l.media_type,
            "format": l.format.map(|f| f.name()),
            "size": l.size,
            "blob_digest": l.blob_digest,
            "diff_id": l.diff_id,
            "verified": l.verified(),
            "problems": problems_json(&l.problems),
        })).collect::<Vec<_>>(),
    })
}

fn verdict(problems: &[Problem]) -> String {
    if problems.is_empty() {
        "verified".to_string()
    } else {
        let all: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        format!("FAILED {}", all.join("; "))
    }
}

/// The readable table: one row per layer, plus a `config` row per image (manifest and config
/// checks) — columns IMAGE, LAYER, FORMAT, SIZE, VERDICT.
fn table(images: &[ImageReport]) -> String {
    let mut rows = vec![[
        "IMAGE".to_string(),
        "LAYER".to_string(),
        "FORMAT".to_string(),
        "SIZE".to_string(),
        "VERDICT".to_string(),
    ]];
    for image in images {
        let name = match &image.platform {
            Some(p) => format!("{} ({p})", short(&image.name)),
            None => short(&image.name),
        };
        rows.push([
            name.clone(),
            "config".to_string(),
            "json".to_string(),
            "-".to_string(),
            verdict(&image.problems),
        ]);
        for l in &image.layers {
            rows.push([
                name.clone(),
                l.index.to_string(),
                l.format.map_or("-", |f| f.name()).to_string(),
                l.size.map_or("-".to_string(), |s| s.to_string()),
                verdict(&l.problems),
            ]);
        }
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        for c in 0..4 {
            let pad = widths[c] - r[c].chars().count();
            if c == 3 {
                out.push_str(&" ".repeat(pad));
                out.push_str(&r[c]);
            } else {
                out.push_str(&r[c]);
                out.push_str(&" ".repeat(pad));
            }
            out.push_str("  ");
        }
        out.push_str(&r[4]);
        out.push('\n');
    }
    let bad = images.iter().filter(|i| !i.verified()).count();
    if bad == 0 {
        out.push_str(&format!("{} image(s) verified\n", images.len()));
    } else {
        out.push_str(&format!("{bad} of {} image(s) FAILED\n", images.len()));
    }
    out
}

/// A digest shortened to 12 hex digits for the table; names kept whole.
fn short(name: &str) -> String {
    match name.split_once(':') {
        Some((alg, hex)) if hex.len() >= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!("{alg}:{}", &hex[..12])
        }
        _ => name.to_string(),
    }
}
