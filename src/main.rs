//! The `diffid` command: a layer's digests, as Podman would record them.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser};
use diffid::{Algorithm, Digest, Digester, Error, ErrorKind, Options, Report};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

mod cli;
mod cli_docs;

/// Compute a container image layer's blob digest and DiffID in one pass, exactly as
/// Podman, Skopeo and Buildah (containers/image) compute them.
///
/// Each FILE is a layer blob: a tar stream, plain or compressed with gzip, bzip2, xz or zstd
/// (detected from its first bytes). With no FILE, or when FILE is -, reads standard input.
///
/// File names are bytes: any name the system accepts works, UTF-8 or not (the output shows
/// non-UTF-8 bytes as U+FFFD).
///
/// Exit status: 0 when every file succeeded, 1 when any failed or the output could not be
/// written, 2 for a usage error.
///
/// `diffid image PATH` verifies a whole image instead (`diffid image -h` for its options);
/// to digest a blob that is a file named `image`, run `diffid ./image`.
#[derive(Parser, Debug)]
#[command(name = "diffid", version, about, long_about)]
struct Cli {
    /// Layer blobs to digest ("-" is standard input).
    #[arg(value_name = "FILE")]
    files: Vec<OsString>,

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
    /// of 1024). 0 means no limit, as without the flag.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_size: Option<u64>,

    /// Memory a decoder may use for its dictionary or window (suffixes K, M, G, T). 0
    /// means the default, 1G.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1G")]
    memory_limit: u64,

    /// Most worker threads (0: the process's worker budget, one per core unless
    /// DIFFID_WORKERS says otherwise; 1: everything on one thread).
    #[arg(short = 'j', long, value_name = "N", default_value_t = 0)]
    threads: usize,

    /// Treat a decompressed stream that is not a valid tar archive as an error.
    #[arg(long)]
    require_tar: bool,

    /// Fail (kind digest_mismatch) unless the blob digest is DIGEST (algorithm:hex, of the
    /// --algorithm computed).
    #[arg(long, value_name = "DIGEST", value_parser = parse_digest)]
    expect_blob_digest: Option<Digest>,

    /// Fail (kind digest_mismatch) unless the DiffID is DIGEST (the config's
    /// rootfs.diff_ids entry).
    #[arg(long, value_name = "DIGEST", value_parser = parse_digest)]
    expect_diff_id: Option<Digest>,

    /// Never show a progress bar.
    #[arg(short, long)]
    quiet: bool,

    /// Print the shell completion script for SHELL and exit (make writes them).
    #[arg(long, value_name = "SHELL", hide = true, exclusive = true)]
    generate_completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) and exit (make writes it).
    #[arg(long, hide = true, exclusive = true)]
    generate_man: bool,

    /// Write the decompressed stream to stdout (or -o FILE) and the report to stderr; exit
    /// status 1, and no digest, when the stream is bad (for `| tar -x`, use pipefail).
    #[arg(short = 'd', long)]
    decompress: bool,

    /// With -d: write the decompressed stream to FILE instead of stdout (removed again when
    /// the stream turns out bad).
    #[arg(short = 'o', long, value_name = "FILE", requires = "decompress")]
    output: Option<String>,
}

fn parse_digest(s: &str) -> Result<Digest, String> {
    s.parse().map_err(|e: Error| e.message().to_string())
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
    // `diffid image ...` is its own command line (clap cannot mix a subcommand with FILE
    // arguments that may be any name): dispatched on the first argument alone.
    #[cfg(feature = "image")]
    {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if args.get(1).is_some_and(|a| a == "image") {
            return cli::image::main(&args[1..]);
        }
    }
    // `--version` also names each decoder backend and its version (`-V`: the version only).
    let command = Cli::command().long_version(cli_docs::long_version().leak() as &str);
    let cli = Cli::from_arg_matches(&command.clone().get_matches()).unwrap_or_else(|e| e.exit());
    let generated = match (cli.generate_completions, cli.generate_man) {
        (Some(shell), _) => Some(cli_docs::completions(shell, Cli::command())),
        (None, true) => Some(cli_docs::man_page(Cli::command())),
        (None, false) => None,
    };
    if let Some(result) = generated {
        return if result.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
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
        expect_blob_digest: cli.expect_blob_digest.clone(),
        expect_diff_id: cli.expect_diff_id.clone(),
        ..Options::default()
    };
    let files = if cli.files.is_empty() {
        vec![OsString::from("-")]
    } else {
        cli.files.clone()
    };
    if cli.decompress {
        return cli::decompress::run(
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
        let name = Path::new(file).display().to_string();
        let result = digest_one(file, &name, &opts, !cli.quiet);
        failed |= result.is_err();
        let printed = if cli.json {
            writeln!(stdout, "{}", json_line(&name, &result))
        } else {
            match &result {
                Ok(report) => write!(stdout, "{}", human(&name, report)),
                Err(err) => {
                    let _ = stdout.flush();
                    eprintln!("diffid: {name}: {}", cli_words(&err.to_string()));
                    Ok(())
                }
            }
        };
        if let Err(e) = printed.and_then(|()| stdout.flush()) {
            return write_failed(&e);
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The output could not be written: say so on stderr (unless stdout is a pipe whose reader
/// left, as `head` does: then there is nobody to tell) and fail.
fn write_failed(e: &io::Error) -> ExitCode {
    if e.kind() != io::ErrorKind::BrokenPipe {
        eprintln!("diffid: writing the output: {e}");
    }
    ExitCode::from(1)
}

/// The library's messages name options by their field names (`option full_xz`); on the
/// command line they are flags.
fn cli_words(message: &str) -> String {
    [
        ("option lenient_gzip", "--lenient-gzip"),
        ("option full_xz", "--full-xz"),
        ("option max_size", "--max-size"),
        ("option decoder_memory_limit", "--memory-limit"),
        ("option require_tar", "--require-tar"),
        ("lenient_gzip", "--lenient-gzip"),
        ("full_xz", "--full-xz"),
        ("max_size", "--max-size"),
        ("decoder_memory_limit", "--memory-limit"),
        ("require_tar", "--require-tar"),
    ]
    .iter()
    .fold(message.to_string(), |m, (from, to)| m.replace(from, to))
}

fn digest_one(
    file: &OsString,
    name: &str,
    opts: &Options,
    progress: bool,
) -> Result<Report, Error> {
    let mut digester = Digester::new(opts)?;
    let show_progress = progress && io::stderr().is_terminal();
    let (mut input, size): (Box<dyn Read>, Option<u64>) = if file == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let mut f = File::open(file)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot open {name}: {e}")))?;
        if !show_progress {
            // A regular file may have one gzip member decoded on several workers.
            return diffid::digest_file(&mut f, opts);
        }
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
    // A progress bar only where a person watches, and only once the wait is long enough to
    // notice (see `Progress`).
    if show_progress {
        let mut reader = Progress::new(input, name, size);
        let result = digester.read_from(&mut reader);
        reader.bar.finish_and_clear();
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
    let mut out = format!(
        "{file}\n  format     {} ({})\n  blob       {}  {} bytes\n  diff_id    {}  {} bytes\n  tar        {tar}\n",
        r.format,
        r.media_type(),
        r.blob_digest,
        r.blob_size,
        r.diff_id,
        r.diff_size,
    );
    for w in &r.warnings {
        out.push_str(&format!("  warning    {w}\n"));
    }
    out
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
            "warnings": r.warnings.iter().map(|w| json!({
                "code": w.code(),
                "message": w.to_string(),
            })).collect::<Vec<_>>(),
        }),
        Err(e) => json!({
            "file": file,
            "format": e.format().map(|f| f.name()),
            "error": {
                "kind": e.kind().name(),
                "message": cli_words(&e.to_string()),
                "offset": e.offset(),
            },
        }),
    }
}

/// A reader that shows a progress bar on stderr (indicatif: it fits the terminal's width
/// and redraws in place). Hidden for the first [`PROGRESS_DELAY`], so that quick files show
/// nothing; then bytes, total, rate and time left when the size is known, bytes and rate
/// when it is not (standard input, a pipe).
struct Progress<'a> {
    inner: Box<dyn Read + 'a>,
    bar: ProgressBar,
    start: Instant,
    shown: bool,
}

/// How long a file must take before its progress bar appears.
const PROGRESS_DELAY: Duration = Duration::from_millis(800);

impl<'a> Progress<'a> {
    fn new(inner: Box<dyn Read + 'a>, name: &str, size: Option<u64>) -> Self {
        let template = match size {
            Some(_) => {
                "{wide_msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} \
                 {binary_bytes_per_sec} {eta}"
            }
            None => "{wide_msg} {spinner} {binary_bytes} {binary_bytes_per_sec} {elapsed}",
        };
        let style = ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(size, ProgressDrawTarget::hidden())
            .with_style(style)
            .with_message(name.to_string());
        Progress {
            inner,
            bar,
            start: Instant::now(),
            shown: false,
        }
    }
}

impl Read for Progress<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        if !self.shown && self.start.elapsed() >= PROGRESS_DELAY {
            self.shown = true;
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.bar.enable_steady_tick(Duration::from_millis(200));
        }
        Ok(n)
    }
}
