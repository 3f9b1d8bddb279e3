//! Whole-image verification (`diffid::image`, `diffid image`) on images written by
//! containers/image's own `copy.Image` (through the oracle's `image` subcommand), on layouts
//! built here for what containers/image refuses to write (xz, bzip2, uncompressed layers),
//! then tampered with, and on hostile images.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{generated_layer, openssl, oracle, oracle_path, source_layer, tar_of};
use diffid::ErrorKind;
use diffid::image::{ImageOptions, ImageReport, verify_path};
use serde_json::{Value, json};

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

fn verify(path: &Path) -> Vec<ImageReport> {
    verify_path(path, &ImageOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every problem of every image, as `(layer or None, kind)`.
fn problems(images: &[ImageReport]) -> Vec<(Option<usize>, &'static str)> {
    let mut out = Vec::new();
    for image in images {
        out.extend(image.problems.iter().map(|p| (None, p.kind.name())));
        for l in &image.layers {
            out.extend(l.problems.iter().map(|p| (Some(l.index), p.kind.name())));
        }
    }
    out
}

/// The three layer files (gzip, zstd, plain tar) the real-tool images are built from.
fn layer_files(dir: &Path) -> Vec<PathBuf> {
    vec![
        common::put(dir, "l0.tar.gz", &common::gzip(&generated_layer())),
        common::put(dir, "l1.tar.zst", &common::zstd(&source_layer(), &["-3"])),
        common::put(
            dir,
            "l2.tar",
            &tar_of(&[("etc/hostname".into(), b"test\n".to_vec())]),
        ),
    ]
}

/// Images written by containers/image: `oracle image` into `dir/out`.
fn build(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let layers = layer_files(dir);
    let out = dir.join("out");
    let status = Command::new(oracle_path())
        .arg("image")
        .arg("-out")
        .arg(&out)
        .args(["-name", "test", "-platforms", "linux/amd64,linux/arm64/v8"])
        .args(&layers)
        .status()
        .expect("run the Go reference");
    assert!(status.success(), "oracle image failed");
    (out, layers)
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Stores `data` as a blob of the layout `dir`; returns its digest (by `openssl dgst`) and size.
fn put_blob(dir: &Path, data: &[u8]) -> (String, u64) {
    let digest = openssl("sha256", data);
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("blobs/sha256").join(hex), data).unwrap();
    (digest, data.len() as u64)
}

fn blob_file(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// Rewrites the config and/or the manifest of the single image of layout `dir`, storing
/// each changed document under its new digest and relinking manifest and index.json, so
/// that only the edit itself is wrong.
fn rewrite(
    dir: &Path,
    config_edit: impl FnOnce(&mut Value),
    manifest_edit: impl FnOnce(&mut Value),
) {
    let mut index = read_json(&dir.join("index.json"));
    let mdigest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = read_json(&blob_file(dir, &mdigest));
    let cdigest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config = read_json(&blob_file(dir, &cdigest));
    config_edit(&mut config);
    let (cd, cs) = put_blob(dir, &serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = json!(cd);
    manifest["config"]["size"] = json!(cs);
    manifest_edit(&mut manifest);
    let (md, ms) = put_blob(dir, &serde_json::to_vec(&manifest).unwrap());
    index["manifests"][0]["digest"] = json!(md);
    index["manifests"][0]["size"] = json!(ms);
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// The layer blobs of the single image of layout `dir`, in order.
fn layer_blobs(dir: &Path) -> Vec<PathBuf> {
    let index = read_json(&dir.join("index.json"));
    let manifest = read_json(&blob_file(
        dir,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob_file(dir, l["digest"].as_str().unwrap()))
        .collect()
}

/// Rewrites the tar archive `path`, letting `edit` change each regular member's bytes.
fn retar(path: &Path, mut edit: impl FnMut(&str, &mut Vec<u8>)) {
    let data = std::fs::read(path).unwrap();
    let mut archive = tar::Archive::new(&data[..]);
    let mut b = tar::Builder::new(Vec::new());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut header = entry.header().clone();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut body).unwrap();
        if header.entry_type().is_file() {
            edit(&name, &mut body);
            header.set_size(body.len() as u64);
            header.set_cksum();
        }
        b.append(&header, &body[..]).unwrap();
    }
    std::fs::write(path, b.into_inner().unwrap()).unwrap();
}

#[test]
fn images_written_by_containers_image_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, layers) = build(tmp.path());
    // The DiffIDs containers/image computes for the original layer files: an independent
    // reference for what the reports say.
    let want: Vec<String> = oracle(&layers)
        .iter()
        .map(|r| r["diff_id"].as_str().unwrap().to_string())
        .collect();
    for (path, images) in [
        ("oci", 1),
        ("oci-archive.tar", 1),
        ("docker-archive.tar", 1),
        ("multi", 2),
        ("multi.tar", 2),
    ] {
        let reports = verify(&out.join(path));
        assert_eq!(reports.len(), images, "{path}");
        for image in &reports {
            assert!(image.verified(), "{path}: {:?}", problems(&reports));
            let got: Vec<&str> = image
                .layers
                .iter()
                .map(|l| l.diff_id.as_deref().unwrap())
                .collect();
            assert_eq!(got, want, "{path}");
        }
        let formats: Vec<&str> = reports[0]
            .layers
            .iter()
            .map(|l| l.format.unwrap().name())
            .collect();
        let expect = if path == "docker-archive.tar" {
            // docker-archive: stores layers uncompressed, as `docker save` does.
            vec!["none", "none", "none"]
        } else {
            // oci: keeps gzip and zstd, compresses the plain tar with gzip.
            vec!["gzip", "zstd", "gzip"]
        };
        assert_eq!(formats, expect, "{path}");
    }
    let platforms: Vec<String> = verify(&out.join("multi"))
        .iter()
        .map(|i| i.platform.clone().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);

    // --platform picks one image of the index, in the library and on the command line.
    let opts = ImageOptions {
        platform: Some("linux/arm64".parse().unwrap()),
        ..ImageOptions::default()
    };
    let picked = verify_path(out.join("multi.tar"), &opts).unwrap();
    assert_eq!(picked.len(), 1);
    assert_eq!(picked[0].platform.as_deref(), Some("linux/arm64/v8"));
    let cli = Command::new(env!("CARGO_BIN_EXE_diffid"))
        .args(["image", "--json", "--platform", "linux/arm64/v8"])
        .arg(out.join("multi"))
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8(cli.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["verified"], json!(true));
    assert_eq!(lines[0]["layers"].as_array().unwrap().len(), 3);
    assert_eq!(lines[0]["layers"][1]["diff_id"], json!(want[1]));
    let none = Command::new(env!("CARGO_BIN_EXE_diffid"))
        .args(["image", "--platform", "windows/amd64"])
        .arg(out.join("multi"))
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1), "no image of that platform");
}

#[test]
fn each_tampering_is_its_own_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) = build(tmp.path());
    let fresh = |name: &str| {
        let dir = tmp.path().join(name);
        copy_dir(&out.join("oci"), &dir);
        assert!(verify(&dir)[0].verified());
        dir
    };

    // A flipped byte in a layer: that layer fails (its blob no longer hashes to its name;
    // gzip may also see it as corrupt), the rest of the image is fine.
    let dir = fresh("flip");
    let blob = &layer_blobs(&dir)[0];
    let mut data = std::fs::read(blob).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x40;
    std::fs::write(blob, data).unwrap();
    let r = verify(&dir);
    let p = problems(&r);
    assert!(
        !p.is_empty() && p.iter().all(|(l, _)| *l == Some(0)),
        "{p:?}"
    );
    assert!(
        p.iter().all(|(_, k)| [
            "digest_mismatch",
            "diff_id_mismatch",
            "corrupt",
            "truncated"
        ]
        .contains(k)),
        "{p:?}"
    );

    // Two diff_ids swapped in the config (config, manifest and index relinked).
    let dir = fresh("swap");
    rewrite(
        &dir,
        |c| c["rootfs"]["diff_ids"].as_array_mut().unwrap().swap(0, 1),
        |_| {},
    );
    assert_eq!(
        problems(&verify(&dir)),
        [(Some(0), "diff_id_mismatch"), (Some(1), "diff_id_mismatch")]
    );

    // A wrong size in a layer descriptor.
    let dir = fresh("size");
    rewrite(&dir, |_| {}, |m| m["layers"][1]["size"] = json!(12345));
    assert_eq!(problems(&verify(&dir)), [(Some(1), "size_mismatch")]);

    // A media type that does not match the compression (zstd layer labelled gzip).
    let dir = fresh("mediatype");
    rewrite(&dir, |_| {}, |m| m["layers"][1]["mediaType"] = json!(GZIP));
    assert_eq!(problems(&verify(&dir)), [(Some(1), "media_type_mismatch")]);

    // One diff_id too many.
    let dir = fresh("count");
    rewrite(
        &dir,
        |c| {
            let ids = c["rootfs"]["diff_ids"].as_array_mut().unwrap();
            ids.push(ids[0].clone());
        },
        |_| {},
    );
    assert_eq!(problems(&verify(&dir)), [(None, "layer_count")]);

    // A missing layer blob.
    let dir = fresh("missing");
    std::fs::remove_file(&layer_blobs(&dir)[2]).unwrap();
    assert_eq!(problems(&verify(&dir)), [(Some(2), "missing_blob")]);

    // A blob whose content does not hash to its name: the config, this time.
    let dir = fresh("config");
    let index = read_json(&dir.join("index.json"));
    let manifest = read_json(&blob_file(
        &dir,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let config = blob_file(&dir, manifest["config"]["digest"].as_str().unwrap());
    let text = String::from_utf8(std::fs::read(&config).unwrap()).unwrap();
    std::fs::write(&config, text.replacen("amd64", "arm64", 1)).unwrap();
    assert_eq!(problems(&verify(&dir)), [(None, "digest_mismatch")]);

    // A blob no image names: a good one is fine, one that does not hash to its name fails
    // on its own (an extra report, the image itself verified).
    let dir = fresh("unreferenced");
    put_blob(&dir, b"spare blob");
    assert!(verify(&dir).len() == 1 && verify(&dir)[0].verified());
    let liar = blob_file(&dir, &openssl("sha256", b"what the name says"));
    std::fs::write(&liar, b"something else").unwrap();
    let r = verify(&dir);
    assert_eq!(problems(&r), [(None, "digest_mismatch")]);
    assert!(r[0].verified());
    assert_eq!(r[1].name, "unreferenced blobs");
    assert!(
        r[1].problems[0]
            .message
            .contains(liar.file_name().unwrap().to_str().unwrap())
    );

    // A truncated archive is an error of the whole archive, naming what ran past the end.
    let archive = tmp.path().join("cut.tar");
    let data = std::fs::read(out.join("oci-archive.tar")).unwrap();
    std::fs::write(&archive, &data[..data.len() * 2 / 3]).unwrap();
    let e = verify_path(&archive, &ImageOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");

    // A flipped byte in a layer of a docker save archive: its DiffID no longer matches.
    let archive = tmp.path().join("docker.tar");
    std::fs::copy(out.join("docker-archive.tar"), &archive).unwrap();
    let docker_manifest: Value = {
        let mut m = Value::Null;
        retar(&archive, |name, body| {
            if name == "manifest.json" {
                m = serde_json::from_slice(body).unwrap();
            }
        });
        m
    };
    let second = docker_manifest[0]["Layers"][1]
        .as_str()
        .unwrap()
        .to_string();
    let target = {
        // Layers may be symlinks to `<hex>.tar`: flip the member they lead to.
        let data = std::fs::read(&archive).unwrap();
        let mut a = tar::Archive::new(&data[..]);
        let mut found = second.clone();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            if e.path().unwrap().to_string_lossy() == second
                && let Some(link) = e.link_name().unwrap()
            {
                let link = link.to_string_lossy().into_owned();
                found = link.trim_start_matches("../").to_string();
            }
        }
        found
    };
    retar(&archive, |name, body| {
        if name == target {
            body[600] ^= 1; // inside the first member's content
        }
    });
    assert_eq!(problems(&verify(&archive)), [(Some(1), "diff_id_mismatch")]);

    // The command line: exit 1, and the failure's reason in the JSON.
    let cli = Command::new(env!("CARGO_BIN_EXE_diffid"))
        .args(["image", "--json"])
        .arg(tmp.path().join("size"))
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(v["verified"], json!(false));
    assert_eq!(
        v["layers"][1]["problems"][0]["kind"],
        json!("size_mismatch")
    );
    assert_eq!(v["layers"][0]["problems"], json!([]));
}

/// An OCI layout built here: for layers containers/image will not put in an OCI manifest.
/// Each layer is (blob, media type, uncompressed tar); the config's diff_ids are computed by
/// `openssl dgst` over the uncompressed tars.
fn hand_layout(dir: &Path, layers: &[(Vec<u8>, &str, Vec<u8>)]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|(_, _, t)| openssl("sha256", t))
        .collect();
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (cd, cs) = put_blob(dir, &serde_json::to_vec(&config).unwrap());
    let descs: Vec<Value> = layers
        .iter()
        .map(|(blob, mt, _)| {
            let (d, s) = put_blob(dir, blob);
            json!({"mediaType": mt, "digest": d, "size": s})
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": descs,
    });
    let (md, ms) = put_blob(dir, &serde_json::to_vec(&manifest).unwrap());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": md, "size": ms,
                       "platform": {"os": "linux", "architecture": "amd64"}}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn xz_bzip2_and_plain_layers_in_a_hand_built_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let a = generated_layer();
    let b = source_layer();
    let c = tar_of(&[("x".into(), vec![7; 5000])]);
    // containers/image labels xz and bzip2 layers `+gzip` (no OCI type exists for them).
    let layers = vec![
        (common::xz(&a, &["-6"]), GZIP, a.clone()),
        (common::bzip2(&b), GZIP, b.clone()),
        (c.clone(), TAR, c.clone()),
        (common::zstd(&c, &["-1"]), ZSTD, c.clone()),
    ];
    let dir = tmp.path().join("hand");
    hand_layout(&dir, &layers);
    let r = verify(&dir);
    assert!(r[0].verified(), "{:?}", problems(&r));
    let formats: Vec<&str> = r[0]
        .layers
        .iter()
        .map(|l| l.format.unwrap().name())
        .collect();
    assert_eq!(formats, ["xz", "bzip2", "none", "zstd"]);
    // A plain tar labelled gzip, an xz layer labelled zstd.
    let dir = tmp.path().join("labels");
    hand_layout(
        &dir,
        &[
            (c.clone(), GZIP, c.clone()),
            (common::xz(&a, &[]), ZSTD, a.clone()),
        ],
    );
    assert_eq!(
        problems(&verify(&dir)),
        [
            (Some(0), "media_type_mismatch"),
            (Some(1), "media_type_mismatch")
        ]
    );
    // A corrupt xz layer whose blob is stored under its true digest: a decode error only.
    let mut bad = common::xz(&a, &[]);
    let n = bad.len();
    bad[n / 2] ^= 0x10;
    let dir = tmp.path().join("corrupt");
    hand_layout(&dir, &[(bad, GZIP, a.clone())]);
    let p = problems(&verify(&dir));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(["corrupt", "truncated"].contains(&p[0].1), "{p:?}");
}

#[test]
fn hostile_images_are_refused_without_reading_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tar_of(&[("x".into(), vec![1; 100])]);
    let base = tmp.path().join("base");
    hand_layout(&base, &[(c.clone(), TAR, c.clone())]);
    assert!(verify(&base)[0].verified());
    let fresh = |name: &str| {
        let dir = tmp.path().join(name);
        copy_dir(&base, &dir);
        dir
    };
    let err = |p: &Path| verify_path(p, &ImageOptions::default()).unwrap_err();

    // A descriptor digest of the wrong length, and one that tries to climb out.
    for bad in [
        "sha256:abcd",
        "sha256:../../../../etc/passwd",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
    ] {
        let dir = fresh("digest");
        let mut index = read_json(&dir.join("index.json"));
        index["manifests"][0]["digest"] = json!(bad);
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        let e = err(&dir);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}: {e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // A layer blob that is a symlink to a file outside the layout (holding the right bytes:
    // following it would "verify").
    let dir = fresh("symlink");
    let outside = tmp.path().join("outside.tar");
    std::fs::write(&outside, &c).unwrap();
    let blob = blob_file(&dir, &openssl("sha256", &c));
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(&outside, &blob).unwrap();
    let r = verify(&dir);
    assert_eq!(problems(&r), [(Some(0), "invalid")]);
    assert!(r[0].layers[0].problems[0].message.contains("outside"));
    // ... and index.json itself a symlink out.
    let dir = fresh("symlink-index");
    std::fs::remove_file(dir.join("index.json")).unwrap();
    std::os::unix::fs::symlink(base.join("index.json"), dir.join("index.json")).unwrap();
    assert_eq!(err(&dir).kind(), ErrorKind::InvalidArgument);

    // An index that names itself: a blob stored under a digest it lists.
    let dir = fresh("cycle");
    let fake = format!("sha256:{}", "ab".repeat(32));
    let nested = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": fake, "size": 200}]});
    std::fs::write(blob_file(&dir, &fake), serde_json::to_vec(&nested).unwrap()).unwrap();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&nested).unwrap()).unwrap();
    assert_eq!(err(&dir).kind(), ErrorKind::InvalidArgument);

    // Indexes nested without end (each one valid, naming the next).
    let dir = fresh("deep");
    let index = read_json(&dir.join("index.json"));
    let mut inner = index;
    for _ in 0..12 {
        let (d, s) = put_blob(&dir, &serde_json::to_vec(&inner).unwrap());
        inner = json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": s}]});
    }
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&inner).unwrap()).unwrap();
    assert_eq!(err(&dir).kind(), ErrorKind::LimitExceeded);

    // A JSON file of 8 GiB (sparse: no disk used) is refused before it is read.
    let dir = fresh("huge");
    let f = std::fs::File::create(dir.join("index.json")).unwrap();
    f.set_len(8 << 30).unwrap();
    let e = err(&dir);
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    assert!(e.message().contains("index.json"), "{e}");

    // docker save manifests naming paths outside the archive.
    for bad in ["../../etc/passwd", "/etc/passwd", "a/../../x"] {
        let manifest = json!([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": [bad]}]);
        let archive = tmp.path().join("evil.tar");
        std::fs::write(
            &archive,
            tar_of(&[
                (
                    "manifest.json".into(),
                    serde_json::to_vec(&manifest).unwrap(),
                ),
                ("c.json".into(), b"{}".to_vec()),
            ]),
        )
        .unwrap();
        let e = err(&archive);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}: {e}");
        assert!(e.message().contains("unsafe path"), "{e}");
    }

    // A tar member claiming more bytes than the archive has.
    let mut data = tar_of(&[("manifest.json".into(), b"[]".to_vec())]);
    let mut h = tar::Header::new_gnu();
    h.set_path("blobs/sha256/huge").unwrap();
    h.set_size(1 << 40);
    h.set_cksum();
    data.truncate(1024); // the first member; drop the end marker
    data.extend_from_slice(h.as_bytes());
    data.extend_from_slice(&[0; 512]);
    let archive = tmp.path().join("long.tar");
    std::fs::write(&archive, &data).unwrap();
    let e = err(&archive);
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("past the end"), "{e}");

    // Not an image at all, and a compressed archive.
    assert_eq!(
        err(tmp.path().join("outside.tar").as_path()).kind(),
        ErrorKind::InvalidArgument
    );
    let gz = common::put(tmp.path(), "a.tar.gz", &common::gzip(&c));
    assert_eq!(err(&gz).kind(), ErrorKind::Unsupported);
}

#[test]
fn command_line_usage() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_diffid"))
            .current_dir(tmp.path())
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(run(&["image"]).status.code(), Some(2), "PATH is required");
    assert_eq!(
        run(&["image", "--platform", "linux", "x"]).status.code(),
        Some(2)
    );
    // A layer blob that happens to be called `image` is still digestable as ./image.
    std::fs::write(tmp.path().join("image"), b"").unwrap();
    let out = run(&["--json", "./image"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["diff_id"],
        json!("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    // A readable table with a verdict per layer.
    let c = tar_of(&[("x".into(), vec![1; 100])]);
    hand_layout(
        &tmp.path().join("lay"),
        &[(common::gzip(&c), GZIP, c.clone())],
    );
    let out = run(&["image", "lay"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("IMAGE"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(" 0 ") && l.contains("gzip") && l.ends_with("verified")),
        "{text}"
    );
}
