//! `diffid -d`: the decoded stream to stdout (or `-o FILE`), the report to stderr.
//!
//! The decoded bytes come from a [`diffid::DecodingReader`], so they are written while the
//! same pass computes the digests, and the stream's end is reported only once every final
//! check passed. A bad stream (corrupt, truncated, over `--max-size`) stops the output where
//! it was found, prints the error (no digest) on stderr and exits 1: with
//! `set -o pipefail`, `diffid -d layer.tar.xz | tar -x` fails as a whole. What was written
//! before the error is not verified: `-o FILE` is removed then.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::process::ExitCode;

use diffid::{
    DecodingReader, Error, ErrorKind, Options, Report, decompress_path, decompress_reader,
};

/// Decodes `files` (one file, or `-` for stdin) to `output` (stdout when `None`); the
/// report goes to stderr as `human` or `json` render it.
pub fn run(
    files: &[OsString],
    output: Option<&str>,
    opts: &Options,
    json: bool,
    human: fn(&str, &Report) -> String,
    json_line: fn(&str, &Result<Report, Error>) -> serde_json::Value,
) -> ExitCode {
    let [file] = files else {
        eprintln!(
            "diffid: -d decodes one blob at a time (got {} files)",
            files.len()
        );
        return ExitCode::from(2);
    };
    if output.is_none() && io::stdout().is_terminal() {
        eprintln!("diffid: -d: the decoded stream is binary: redirect stdout or use -o FILE");
        return ExitCode::from(2);
    }
    let result = decode(file, output, opts);
    // Names are bytes; the report shows non-UTF-8 bytes as U+FFFD, as the digest output does.
    let file = &*file.to_string_lossy();
    if let (Err(_), Some(path)) = (&result, output) {
        // Unverified bytes: do not leave them behind as if they were the layer.
        let _ = std::fs::remove_file(path);
    }
    let mut stderr = io::stderr().lock();
    let _ = if json {
        writeln!(stderr, "{}", json_line(file, &result))
    } else {
        match &result {
            Ok(report) => write!(stderr, "{}", human(file, report)),
            Err(err) => writeln!(stderr, "diffid: {file}: {err}"),
        }
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}

fn decode(file: &OsStr, output: Option<&str>, opts: &Options) -> Result<Report, Error> {
    let mut reader = if file == "-" {
        decompress_reader(io::stdin(), opts)?
    } else {
        decompress_path(file, opts)?
    };
    let out: Box<dyn Write> = match output {
        None => Box::new(io::stdout().lock()),
        Some(path) => Box::new(
            File::create(path)
                .map_err(|e| Error::new(ErrorKind::Io, format!("cannot create {path}: {e}")))?,
        ),
    };
    copy(&mut reader, out)?;
    reader.finish()
}

/// Copies the decoded stream to `out` until its verified end, or the first error.
fn copy(reader: &mut DecodingReader, mut out: Box<dyn Write>) -> Result<(), Error> {
    let mut buf = vec![0u8; 512 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(library_error(e)),
        };
        out.write_all(&buf[..n])
            .map_err(|e| Error::new(ErrorKind::Io, format!("writing the decoded stream: {e}")))?;
    }
    out.flush()
        .map_err(|e| Error::new(ErrorKind::Io, format!("writing the decoded stream: {e}")))
}

/// The library's error inside a decoding reader's `io::Error`.
fn library_error(e: io::Error) -> Error {
    let text = e.to_string();
    match e.into_inner().map(|b| b.downcast::<Error>()) {
        Some(Ok(err)) => *err,
        _ => Error::new(ErrorKind::Io, text),
    }
}
