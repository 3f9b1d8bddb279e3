//! The `diffid` command as a user runs it: output shapes, exit statuses, options.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

fn diffid(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_diffid"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    match child.stdin.take().unwrap().write_all(stdin) {
        Ok(()) => {}
        // The CLI may stop reading once it has failed (a limit reached, a usage error).
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("writing the CLI's standard input: {e}"),
    }
    child.wait_with_output().unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[test]
fn json_success_and_failure_shapes_and_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let layer = source_layer();
    let good = put(dir.path(), "good.tar.zst", &zstd(&layer, &[]));
    let mut corrupt = gzip(&layer);
    let n = corrupt.len();
    corrupt[n - 7] ^= 0x40;
    let bad = put(dir.path(), "bad.tar.gz", &corrupt);
    let missing = dir.path().join("missing.tar");
    let out = diffid(
        &[
            "--json",
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "any failure exits 1");
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 3);

    let ok = &rows[0];
    assert_eq!(
        keys(ok),
        [
            "file",
            "format",
            "media_type",
            "blob_digest",
            "blob_size",
            "diff_id",
            "diff_size",
            "tar",
            "warnings"
        ]
    );
    assert_eq!(ok["warnings"], serde_json::json!([]));
    assert_eq!(
        keys(&ok["tar"]),
        ["valid", "entries", "end_marker", "error"]
    );
    assert_eq!(ok["format"], "zstd");
    assert_eq!(
        ok["media_type"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(ok["diff_id"].as_str().unwrap(), openssl("sha256", &layer));
    assert_eq!(ok["diff_size"].as_u64().unwrap(), layer.len() as u64);
    assert_eq!(
        ok["blob_digest"].as_str().unwrap(),
        openssl("sha256", &std::fs::read(&good).unwrap())
    );
    assert_eq!(ok["tar"]["valid"], true);
    assert_eq!(ok["tar"]["end_marker"], true);
    assert!(ok["tar"]["error"].is_null());

    let failed = &rows[1];
    assert_eq!(keys(failed), ["file", "format", "error"]);
    assert_eq!(failed["format"], "gzip");
    assert_eq!(keys(&failed["error"]), ["kind", "message", "offset"]);
    // The flipped byte is in the trailer's CRC32, which starts 8 bytes before the end.
    assert_eq!(failed["error"]["offset"].as_u64(), Some(n as u64 - 8));
    assert_eq!(failed["error"]["kind"], "corrupt");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("gzip: ")
    );

    assert_eq!(rows[2]["error"]["kind"], "io");
    assert!(rows[2]["format"].is_null());

    let only_good = diffid(&["--json", good.to_str().unwrap()], b"");
    assert_eq!(only_good.status.code(), Some(0));
}

#[test]
fn reads_stdin_without_a_file_or_with_dash() {
    let layer = source_layer();
    let blob = xz(&layer, &[]);
    for args in [&["--json"][..], &["--json", "-"]] {
        let out = diffid(args, &blob);
        assert_eq!(out.status.code(), Some(0));
        let row = &json_lines(&out)[0];
        assert_eq!(row["file"], "-");
        assert_eq!(row["format"], "xz");
        assert_eq!(row["diff_id"].as_str().unwrap(), openssl("sha256", &layer));
        assert_eq!(row["blob_size"].as_u64().unwrap(), blob.len() as u64);
    }
}

#[test]
fn readable_default_output() {
    let layer = source_layer();
    let out = diffid(&[], &bzip2(&layer));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "format     bzip2",
        "blob       sha256:",
        "tar        valid",
        &openssl("sha256", &layer),
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    // A failure goes to stderr with the file name, and nothing to stdout.
    let out = diffid(&[], b"\x28\xb5\x2f\xfd\x04");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("diffid: -: zstd: "), "{err}");
}

#[test]
fn options_reach_the_library() {
    let layer = source_layer();
    let row = |args: &[&str], input: &[u8]| {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = diffid(&a, input);
        (out.status.code(), json_lines(&out).remove(0))
    };
    let (code, r) = row(&["--algorithm", "sha512"], &gzip(&layer));
    assert_eq!(code, Some(0));
    assert_eq!(r["diff_id"].as_str().unwrap(), openssl("sha512", &layer));

    let (code, r) = row(&["--max-size", "1K"], &gzip(&layer));
    assert_eq!(code, Some(1));
    assert_eq!(r["error"]["kind"], "limit_exceeded");
    let (code, _) = row(&["--max-size", &layer.len().to_string()], &gzip(&layer));
    assert_eq!(code, Some(0));

    let tail = [gzip(&layer), b"junk".to_vec()].concat();
    assert_eq!(row(&[], &tail).1["error"]["kind"], "trailing_data");
    assert_eq!(row(&["--lenient-gzip"], &tail).0, Some(0));

    let bcj = xz(&layer, &["--x86", "--lzma2"]);
    assert_eq!(row(&[], &bcj).1["error"]["kind"], "unsupported");
    let (code, r) = row(&["--full-xz"], &bcj);
    assert_eq!(code, Some(0));
    assert_eq!(r["diff_id"].as_str().unwrap(), openssl("sha256", &layer));

    assert_eq!(
        row(&["--require-tar"], &gzip(b"plain text")).1["error"]["kind"],
        "invalid_tar"
    );
    assert_eq!(
        row(&["-j", "1"], &gzip(&layer)).1["diff_id"]
            .as_str()
            .unwrap(),
        openssl("sha256", &layer)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--no-such-flag"][..],
        &["--max-size", "12Q"],
        &["--algorithm", "md5"],
        &["-j", "x"],
    ] {
        let out = diffid(args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
    let help = diffid(&["--help"], b"");
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8(help.stdout).unwrap();
    for needle in [
        "--json",
        "--max-size",
        "--lenient-gzip",
        "--full-xz",
        "Exit status",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}");
    }
}

#[test]
fn expected_digests_pass_or_fail_as_digest_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let layer = source_layer();
    let blob = xz(&layer, &[]);
    let file = put(dir.path(), "l.tar.xz", &blob);
    let file = file.to_str().unwrap();
    // The references: openssl over the blob and over the uncompressed tar.
    let blob_digest = openssl("sha256", &blob);
    let diff_id = openssl("sha256", &layer);
    let ok = diffid(
        &[
            "--json",
            "--expect-blob-digest",
            &blob_digest,
            "--expect-diff-id",
            &diff_id,
            file,
        ],
        b"",
    );
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(json_lines(&ok)[0]["diff_id"], Value::from(diff_id.clone()));
    // The DiffID given as the blob digest (the tarball-transport bug): a mismatch, no digest.
    let bad = diffid(&["--json", "--expect-blob-digest", &diff_id, file], b"");
    assert_eq!(bad.status.code(), Some(1));
    let v = &json_lines(&bad)[0];
    assert_eq!(v["error"]["kind"], "digest_mismatch");
    assert!(v.get("diff_id").is_none());
    let bad = diffid(&["--json", "--expect-diff-id", &blob_digest, file], b"");
    assert_eq!(json_lines(&bad)[0]["error"]["kind"], "digest_mismatch");
    // Not a digest: a usage error.
    let usage = diffid(&["--expect-diff-id", "sha256:1234", file], b"");
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn version_names_each_decoder_backend() {
    let out = diffid(&["--version"], b"");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("diffid {0} (library {0})", env!("CARGO_PKG_VERSION"))
    );
    // The versions of the liblzma and libzstd this test links, which are the tool's.
    // SAFETY: lzma_version_string returns a pointer to a static NUL-terminated string.
    let lzma = unsafe { std::ffi::CStr::from_ptr(liblzma_sys::lzma_version_string()) };
    let gzip = if cfg!(feature = "isal") {
        "gzip:  ISA-L igzip (isal-sys 0."
    } else {
        "gzip:  zlib-rs 0."
    };
    let want = [
        gzip.to_string(),
        "bzip2: bzip2 crate 0.".to_string(),
        format!("xz:    liblzma {} (liblzma-sys 0.", lzma.to_str().unwrap()),
        format!(
            "zstd:  libzstd {} (zstd-sys ",
            zstd::zstd_safe::version_string()
        ),
    ];
    assert_eq!(lines.len(), 1 + want.len(), "{text}");
    for (line, want) in lines[1..].iter().zip(&want) {
        assert!(
            line.starts_with(want.as_str()),
            "{line:?} does not start with {want:?}"
        );
    }
    assert!(!text.contains("unknown"), "{text}");
    // -V stays the one-line version.
    let short = diffid(&["-V"], b"");
    assert_eq!(
        String::from_utf8(short.stdout).unwrap().trim(),
        format!("diffid {}", env!("CARGO_PKG_VERSION"))
    );
}

/// The long options of `diffid --help`, e.g. "--lenient-gzip".
fn long_options() -> Vec<String> {
    let help = String::from_utf8(diffid(&["--help"], b"").stdout).unwrap();
    let mut opts: Vec<String> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=' || c == '<')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect();
    opts.sort();
    opts.dedup();
    assert!(opts.len() >= 10, "{help}");
    opts
}

#[test]
fn man_page_and_completions_cover_every_option() {
    let man = diffid(&["--generate-man"], b"");
    assert!(man.status.success());
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(man.contains(".TH diffid 1"), "{man}");
    // roff escapes '-' as '\-'.
    for opt in long_options() {
        assert!(
            man.contains(&opt.replace('-', "\\-")),
            "the man page lacks {opt}"
        );
    }
    assert!(
        !man.contains("generate"),
        "hidden options are not documented"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = diffid(&["--generate-completions", shell], b"");
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for opt in long_options() {
            let name = opt.trim_start_matches('-');
            assert!(script.contains(name), "the {shell} completions lack {opt}");
        }
    }
    // A shell clap does not know is a usage error.
    assert_eq!(
        diffid(&["--generate-completions", "cmd.exe"], b"")
            .status
            .code(),
        Some(2)
    );
}

/// Runs `diffid args` feeding `stdin` from another thread (the decoded output can be larger
/// than a pipe's buffer).
fn diffid_piped(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_diffid"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

#[test]
fn decompress_writes_the_stream_to_stdout_and_the_report_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let layer = generated_layer();
    let diff_id = openssl("sha256", &layer);
    for (name, blob) in [
        ("l.tar", layer.clone()),
        ("l.tar.gz", gzip(&layer)),
        ("l.tar.bz2", bzip2(&layer)),
        ("l.tar.xz", xz(&layer, &[])),
        ("l.tar.zst", zstd(&layer, &[])),
    ] {
        let path = put(dir.path(), name, &blob);
        let path = path.to_str().unwrap();
        // A file, readable report.
        let out = diffid_piped(&["-d", path], b"");
        assert_eq!(out.status.code(), Some(0), "{name}");
        assert!(out.stdout == layer, "{name}: decoded stream");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(&diff_id), "{name}: {err}");
        assert!(err.contains(&openssl("sha256", &blob)), "{name}: {err}");
        // Standard input, one JSON line on stderr.
        let out = diffid_piped(&["--decompress", "--json", "-"], &blob);
        assert_eq!(out.status.code(), Some(0), "{name}");
        assert!(out.stdout == layer, "{name}: decoded stream from stdin");
        let line: Value = serde_json::from_slice(&out.stderr).unwrap();
        assert_eq!(line["diff_id"], diff_id.as_str(), "{name}");
        assert_eq!(line["diff_size"], layer.len() as u64, "{name}");
        // -o FILE.
        let target = dir.path().join(format!("{name}.out"));
        let out = diffid_piped(&["-d", "-o", target.to_str().unwrap(), path], b"");
        assert_eq!(out.status.code(), Some(0), "{name}");
        assert!(out.stdout.is_empty());
        assert!(std::fs::read(&target).unwrap() == layer, "{name}: -o");
    }
}

#[test]
fn decompress_of_a_bad_stream_exits_1_without_a_digest() {
    let dir = tempfile::tempdir().unwrap();
    let layer = generated_layer();
    let good = gzip(&layer);
    let mut corrupt = good.clone();
    let n = corrupt.len();
    corrupt[n - 8] ^= 1; // the CRC32
    let truncated = xz(&layer, &[])[..3000].to_vec();
    for (name, blob, kind) in [
        ("corrupt.gz", corrupt, "corrupt"),
        ("truncated.xz", truncated, "truncated"),
    ] {
        let path = put(dir.path(), name, &blob);
        let out = diffid_piped(&["-d", path.to_str().unwrap()], b"");
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with(&format!("diffid: {}: ", path.display())),
            "{err}"
        );
        assert!(
            !err.contains("sha256:"),
            "{name}: a digest of a bad stream: {err}"
        );
        let out = diffid_piped(&["-d", "--json", "-"], &blob);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let line: Value = serde_json::from_slice(&out.stderr).unwrap();
        assert_eq!(line["error"]["kind"], kind, "{name}");
        assert!(line.get("diff_id").is_none() && line.get("blob_digest").is_none());
        // -o FILE: the unverified output is removed.
        let target = dir.path().join("out.tar");
        let out = diffid_piped(
            &["-d", "-o", target.to_str().unwrap(), path.to_str().unwrap()],
            b"",
        );
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(!target.exists(), "{name}: -o left an unverified file");
    }
}

#[test]
fn decompress_into_tar_extracts_and_pipefail_sees_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let layer = source_layer();
    let blob = put(dir.path(), "layer.tar.xz", &xz(&layer, &[]));
    let mut bad = gzip(&layer);
    let n = bad.len();
    bad[n - 8] ^= 1; // the whole tar decodes; only the trailer's CRC32 is wrong
    let bad = put(dir.path(), "bad.tar.gz", &bad);
    let bin = env!("CARGO_BIN_EXE_diffid");
    let sh = |script: &str| {
        Command::new("bash")
            .args(["-c", script])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .code()
    };
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let cmd = format!(
        "set -o pipefail; {bin} -d {} | tar -x -C {}",
        blob.display(),
        x.display()
    );
    assert_eq!(sh(&cmd), Some(0));
    // The tree is the one tar made the layer from.
    let root = env!("CARGO_MANIFEST_DIR");
    let same = Command::new("diff")
        .args([
            "-r",
            &format!("{root}/src"),
            x.join("src").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(same.success(), "extracted tree differs from src/");
    assert_eq!(
        std::fs::read(x.join("Cargo.toml")).unwrap(),
        std::fs::read(format!("{root}/Cargo.toml")).unwrap()
    );
    // A corrupt trailer: the pipeline fails, and diffid's own status is 1.
    let y = dir.path().join("y");
    std::fs::create_dir(&y).unwrap();
    let pipe = format!("{bin} -d {} | tar -x -C {}", bad.display(), y.display());
    assert_ne!(sh(&format!("set -o pipefail; {pipe}")), Some(0));
    assert_eq!(sh(&format!("{pipe}; exit ${{PIPESTATUS[0]}}")), Some(1));
}

#[test]
fn decompress_usage_errors_exit_2() {
    for args in [&["-o", "x"][..], &["-d", "a", "b"]] {
        let out = diffid_piped(args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

/// Options as flags: 0 means no limit for --max-size and the default for --memory-limit;
/// error texts name the flags, not the library's fields; the format stays known.
#[test]
fn zero_limits_flag_names_and_known_formats() {
    let layer = source_layer();
    let row = |args: &[&str], input: &[u8]| {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = diffid(&a, input);
        (out.status.code(), json_lines(&out).remove(0))
    };
    for blob in [layer.clone(), gzip(&layer), xz(&layer, &[])] {
        let (code, r) = row(&["--max-size", "0", "--memory-limit", "0"], &blob);
        assert_eq!(code, Some(0), "{r}");
        assert_eq!(r["diff_id"].as_str().unwrap(), openssl("sha256", &layer));
    }
    let message = |r: &Value| r["error"]["message"].as_str().unwrap().to_string();
    let (_, r) = row(&["--max-size", "1K"], &layer);
    assert_eq!(r["format"], "none", "{r}");
    assert!(message(&r).contains("--max-size"), "{r}");
    let (_, r) = row(&["--require-tar"], b"plain text, uncompressed");
    assert_eq!(r["format"], "none", "{r}");
    assert_eq!(r["error"]["kind"], "invalid_tar");
    let (_, r) = row(&["--require-tar"], &gzip(b"plain text"));
    assert_eq!(r["format"], "gzip", "{r}");
    let (_, r) = row(&[], &[gzip(&layer), b"junk".to_vec()].concat());
    assert!(message(&r).contains("--lenient-gzip"), "{r}");
    let bcj = xz(&layer, &["--x86", "--lzma2"]);
    let (_, r) = row(&[], &bcj);
    assert!(message(&r).contains("--full-xz"), "{r}");
    let (_, r) = row(&["--full-xz", "--memory-limit", "1K"], &bcj);
    assert_eq!(r["error"]["kind"], "limit_exceeded");
    assert!(message(&r).contains("--memory-limit"), "{r}");
    for r in [&r] {
        let m = message(r);
        for field in [
            "full_xz",
            "decoder_memory_limit",
            "lenient_gzip",
            "max_size",
        ] {
            assert!(!m.contains(field), "{m}");
        }
    }
}

/// A file name is bytes: one that is not UTF-8 digests.
#[test]
fn a_non_utf8_file_name_works() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let layer = source_layer();
    let name = std::ffi::OsStr::from_bytes(b"layer-\xff\xfe.tar.gz");
    let path = dir.path().join(name);
    std::fs::write(&path, gzip(&layer)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_diffid"))
        .arg("--json")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = &json_lines(&out)[0];
    assert_eq!(row["diff_id"].as_str().unwrap(), openssl("sha256", &layer));
    assert!(
        row["file"].as_str().unwrap().contains("layer-\u{fffd}"),
        "{row}"
    );
}

/// Output that cannot be written is an error that says so.
#[test]
fn a_write_error_is_reported() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
    let Ok(full) = full else {
        eprintln!("no /dev/full here: skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = put(dir.path(), "l.tar", &source_layer());
    for args in [&["--json"][..], &[]] {
        let out = Command::new(env!("CARGO_BIN_EXE_diffid"))
            .args(args)
            .arg(&file)
            .stdout(full.try_clone().unwrap())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("diffid: writing the output: "),
            "{args:?}: {err:?}"
        );
    }
}

/// Surprises that are no error: in the JSON and the readable output, exit status 0.
#[test]
fn warnings_are_reported() {
    let codes = |input: &[u8]| {
        let out = diffid(&["--json"], input);
        assert_eq!(out.status.code(), Some(0));
        let row = json_lines(&out).remove(0);
        let codes: Vec<String> = row["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                assert!(!w["message"].as_str().unwrap().is_empty());
                w["code"].as_str().unwrap().to_string()
            })
            .collect();
        (row["format"].as_str().unwrap().to_string(), codes)
    };
    let layer = source_layer();
    assert_eq!(codes(b""), ("none".into(), vec!["empty_layer".to_string()]));
    let pz = [skippable(0, &[1, 2, 3, 4]), zstd(&layer, &[])].concat();
    let (format, c) = codes(&pz);
    assert_eq!(format, "none");
    assert_eq!(c[0], "compressed_after_skippable_frame");
    let (_, c) = codes(&gzip(&[layer.clone(), b"trailing".to_vec()].concat()));
    assert_eq!(c, ["data_after_end_marker"]);
    let out = diffid(&[], b"");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("warning    empty layer"), "{text}");
}
