//! The `diffid` command: a layer's digests, as Podman would record them.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use diffid::{Algorithm, Digester, Error, ErrorKind, Options, Report};
use serde_json::{Value, json};

// `diffid -d`: the decoded stream out.
#[path = "cli/decompress.rs"]
mod decompress;

/// Compute a container image layer's blob digest and DiffID in one pass, exactly as
/// Podman, Skopeo and Buildah (containers/image) compute them.
///
/// Each FILE is a layer blob: a tar stream, plain or compressed with gzip, bzip2, xz or zstd
/// (detected from its first bytes). With no FILE, or when FILE is -, reads standard input.
///
/// Exit status: 0 when every file succeeded, 1 when any failed, 2 for a usage error.
#[derive(Parser, Debug)]
#[command(name = "diffid", version, about, long_about)]
struct Cli {
    /// Layer blobs to digest ("-" is standard input).
    #[arg(value_name = "FILE")]
    files: Vec<String>,

    /// Print one JSON object per file per line.
    #[arg(long)]
    json: bool,

    /// Digest algorithm of both digests.
    #[arg(short, long, value_name = "ALG", default_value = "sha256",
          value_parser = ["sha256", "sha512", "blake3"])]
    algorithm: String,

    /// Ignore bytes after the last gzip member (as pigz, igzip and moby do); containers/image
    /// rejects them.
    #[arg(long)]
    lenient_gzip: bool,

    /// Accept xz filter chains other than a lone LZMA2 (BCJ, delta, ARM64), as the xz
    /// program does; containers/image rejects them.
    #[arg(long)]
    full_xz: bool,

    /// Fail when the decompressed stream exceeds SIZE bytes (suffixes K, M, G, T: powers
    /// of 1024).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_size: Option<u64>,

    /// Memory a decoder may use for its dictionary or window (suffixes K, M, G, T).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1G")]
    memory_limit: u64,

    /// Most worker threads (0: the process's worker budget, one per core unless
    /// DIFFID_WORKERS says otherwise; 1: everything on one thread).
    #[arg(short = 'j', long, value_name = "N", default_value_t = 0)]
    threads: usize,

    /// Treat a decompressed stream that is not a valid tar archive as an error.
    #[arg(long)]
    require_tar: bool,

    /// Never show a progress bar.
    #[arg(short, long)]
    quiet: bool,

    /// Write the decompressed stream to stdout (or -o FILE) and the report to stderr; exit
    /// status 1, and no digest, when the stream is bad (for `| tar -x`, use pipefail).
    #[arg(short = 'd', long)]
    decompress: bool,

    /// With -d: write the decompressed stream to FILE instead of stdout (removed again when
    /// the stream turns out bad).
    #[arg(short = 'o', long, value_name = "FILE", requires = "decompress")]
    output: Option<String>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        Some(b'T' | b't') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (a number with an optional K, M, G or T)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = Options {
        algorithm: cli
            .algorithm
            .parse::<Algorithm>()
            .expect("clap checked the name"),
        lenient_gzip: cli.lenient_gzip,
        full_xz: cli.full_xz,
        max_size: cli.max_size,
        decoder_memory_limit: cli.memory_limit,
        threads: cli.threads,
        require_tar: cli.require_tar,
    };
    let files = if cli.files.is_empty() {
        vec!["-".to_string()]
    } else {
        cli.files.clone()
    };
    if cli.decompress {
        return decompress::run(
            &files,
            cli.output.as_deref(),
            &opts,
            cli.json,
            human,
            json_line,
        );
    }
    let mut failed = false;
    let mut stdout = io::stdout().lock();
    for file in &files {
        let result = digest_one(file, &opts, !cli.quiet);
        failed |= result.is_err();
        let printed = if cli.json {
            writeln!(stdout, "{}", json_line(file, &result))
        } else {
            match &result {
                Ok(report) => write!(stdout, "{}", human(file, report)),
                Err(err) => {
                    let _ = stdout.flush();
                    eprintln!("diffid: {file}: {err}");
                    Ok(())
                }
            }
        };
        if printed.is_err() {
            // stdout closed (a pipe to `head`): nothing more to say.
            return ExitCode::from(1);
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn digest_one(file: &str, opts: &Options, progress: bool) -> Result<Report, Error> {
    let mut digester = Digester::new(opts)?;
    let (mut input, size): (Box<dyn Read>, Option<u64>) = if file == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let f = File::open(file)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot open {file}: {e}")))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
    // A progress bar only where a person watches and the wait is long enough to notice.
    let show = progress && io::stderr().is_terminal() && size.is_none_or(|s| s >= 64 << 20);
    if show {
        let mut reader = Progress::new(input, file, size);
        let result = digester.read_from(&mut reader);
        reader.clear();
        result?;
    } else {
        digester.read_from(&mut input)?;
    }
    digester.finish()
}

fn human(file: &str, r: &Report) -> String {
    let tar = match &r.tar.error {
        None => format!(
            "valid, {} entries, {}",
            r.tar.entries,
            if r.tar.end_marker {
                "end marker"
            } else {
                "no end marker"
            }
        ),
        Some(e) => format!(
            "invalid after {} entries: {} at byte {}",
            r.tar.entries, e.message, e.offset
        ),
    };
    format!(
        "{file}\n  format     {} ({})\n  blob       {}  {} bytes\n  diff_id    {}  {} bytes\n  tar        {tar}\n",
        r.format,
        r.media_type(),
        r.blob_digest,
        r.blob_size,
        r.diff_id,
        r.diff_size,
    )
}

fn json_line(file: &str, result: &Result<Report, Error>) -> Value {
    match result {
        Ok(r) => json!({
            "file": file,
            "format": r.format.name(),
            "media_type": r.media_type(),
            "blob_digest": r.blob_digest.to_string(),
            "blob_size": r.blob_size,
            "diff_id": r.diff_id.to_string(),
            "diff_size": r.diff_size,
            "tar": {
                "valid": r.tar.valid,
                "entries": r.tar.entries,
                "end_marker": r.tar.end_marker,
                "error": r.tar.error.as_ref().map(|e| format!("{} at byte {}", e.message, e.offset)),
            },
        }),
        Err(e) => json!({
            "file": file,
            "format": e.format().map(|f| f.name()),
            "error": { "kind": e.kind().name(), "message": e.to_string() },
        }),
    }
}

/// A reader that draws a progress line on stderr.
struct Progress<'a> {
    inner: Box<dyn Read + 'a>,
    name: String,
    size: Option<u64>,
    done: u64,
    start: Instant,
    last: Instant,
}

impl<'a> Progress<'a> {
    fn new(inner: Box<dyn Read + 'a>, name: &str, size: Option<u64>) -> Self {
        let now = Instant::now();
        Progress {
            inner,
            name: name.to_string(),
            size,
            done: 0,
            start: now,
            last: now,
        }
    }

    fn draw(&self) {
        let mib = self.done as f64 / (1 << 20) as f64;
        let rate = mib / self.start.elapsed().as_secs_f64().max(1e-3);
        let line = match self.size {
            Some(size) if size > 0 => {
                let frac = self.done as f64 / size as f64;
                let bar: String = (0..30)
                    .map(|i| if (i as f64) < frac * 30.0 { '#' } else { '.' })
                    .collect();
                format!(
                    "{} [{bar}] {:3.0}% {mib:.0} MiB {rate:.0} MiB/s",
                    self.name,
                    frac * 100.0
                )
            }
            _ => format!("{} {mib:.0} MiB {rate:.0} MiB/s", self.name),
        };
        eprint!("\r\x1b[K{line}");
    }

    fn clear(&self) {
        eprint!("\r\x1b[K");
    }
}

impl Read for Progress<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.last.elapsed() >= Duration::from_millis(200) {
            self.last = Instant::now();
            self.draw();
        }
        Ok(n)
    }
}
