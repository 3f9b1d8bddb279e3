//! Whole images: verify an OCI image layout, an oci-archive, or a `docker save` archive.
//!
//! [`verify_path`] opens PATH — a directory holding an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/<alg>/<hex>`), a tar of one (oci-archive; also what recent
//! `docker save` writes), or a classic `docker save` tar (`manifest.json`, a config JSON, one
//! tar per layer) — and, for every image in it (every manifest of an index, nested indexes
//! included, every platform unless [`ImageOptions::platform`] picks one), checks:
//!
//! - every blob's digest and size against the descriptor naming it (manifest, config, each
//!   layer), which is also the check that a blob stored under `blobs/sha256/<hex>` hashes to
//!   `<hex>`;
//! - every layer's DiffID against the config's `rootfs.diff_ids`, in order, same count;
//! - each layer's media type against the compression detected from its bytes, as
//!   containers/image labels it ([`crate::Format::media_type`], plus the Docker schema 2
//!   names of the same types).
//! - in an OCI layout without a platform filter, every blob under `blobs/<alg>/` that no
//!   image names against its file name (reported as an extra [`ImageReport`] named
//!   `unreferenced blobs`, only when one fails).
//!
//! Layers are digested concurrently, each by the same pipeline as [`crate::digest_path`],
//! all under the process-wide worker budget ([`crate::workers`]). A tar archive is read in
//! place: its members are indexed once and each layer is read by seeking to it, never
//! extracted to disk.
//!
//! Images come from anyone. Paths named by an image (a `docker save` manifest's file names)
//! must be relative and stay inside PATH; a symlink in a layout that leads outside it, a
//! descriptor digest that is not `algorithm:hex` of the right length, an index that refers to
//! itself or nests deeper than [`MAX_INDEX_DEPTH`], a JSON document over
//! [`ImageOptions::max_json`] bytes, a tar member running past the end of the archive: each
//! is an error naming the file, and nothing outside PATH is read. Memory stays bounded: JSON
//! documents are capped, layers are streamed.
//!
//! Available with the cargo feature `image`.

mod archive;
mod docker;
mod layout;
mod report;
mod verify;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;

pub use report::{ImageReport, LayerReport, Problem, ProblemKind};

/// The largest JSON document (`index.json`, `manifest.json`, a manifest, a config) read by
/// default: 4 MiB. Real ones are a few KiB; a larger one is refused rather than loaded.
pub const DEFAULT_MAX_JSON: u64 = 4 << 20;

/// How deep image indexes may nest (an index naming an index naming ...). Deeper is an error,
/// and so is an index that (directly or not) names itself.
pub const MAX_INDEX_DEPTH: usize = 8;

/// The most members a tar archive may have (its index is held in memory).
pub const MAX_ARCHIVE_MEMBERS: usize = 1 << 20;

/// A platform to pick from a multi-platform image: `OS/ARCH` or `OS/ARCH/VARIANT`, as in
/// `podman --platform` (`linux/arm64`, `linux/arm/v7`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    /// Must match when given; any variant matches when `None`.
    pub variant: Option<String>,
}

impl std::str::FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("{s:?} is not a platform (expected OS/ARCH or OS/ARCH/VARIANT)"),
            )
        };
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Whether an image for `os`/`architecture`/`variant` is one this filter picks.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.architecture == architecture
            && self.variant.as_deref().is_none_or(|v| Some(v) == variant)
    }
}

/// Options of [`verify_path`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOptions {
    /// How each layer is digested (decoder limits, lenient gzip, full xz, threads per layer).
    /// Its `algorithm` is ignored: each digest is computed with the algorithm of the digest it
    /// is compared with.
    pub digest: Options,
    /// Verify only the images of this platform. `None`: every image.
    pub platform: Option<Platform>,
    /// The largest JSON document read, in bytes ([`DEFAULT_MAX_JSON`] by default).
    pub max_json: u64,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            digest: Options::default(),
            platform: None,
            max_json: DEFAULT_MAX_JSON,
        }
    }
}

/// Verifies every image in the OCI layout directory, oci-archive or `docker save` archive at
/// `path` (see the [module documentation](self) for what is checked).
///
/// Returns one [`ImageReport`] per image (in the order of `index.json` or `manifest.json`,
/// nested indexes depth first); a problem with one image or layer is recorded in its report,
/// never returned as `Err`. `Err` means PATH as a whole cannot be verified: it is not an image
/// layout or archive ([`ErrorKind::InvalidArgument`]), it cannot be read ([`ErrorKind::Io`]),
/// it is malformed or hostile (an unsafe path, an invalid digest, an index cycle, a truncated
/// archive: [`ErrorKind::InvalidArgument`]), or it exceeds a limit
/// ([`ErrorKind::LimitExceeded`]). When a platform is asked for and no image has it, the
/// result is empty.
///
/// Thread-safety: may be called from several threads at once; the layers of all calls share
/// the process-wide worker budget.
pub fn verify_path(path: impl AsRef<Path>, opts: &ImageOptions) -> Result<Vec<ImageReport>> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot open {}: {e}", path.display()),
        )
    })?;
    let store: Box<dyn Store> = if meta.is_dir() {
        Box::new(layout::DirStore::open(path)?)
    } else if meta.is_file() {
        let mut head = [0u8; crate::detect::DETECT_LEN];
        let mut f = File::open(path).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot open {}: {e}", path.display()),
            )
        })?;
        let n = read_full(&mut f, &mut head)
            .map_err(|e| Error::new(ErrorKind::Io, format!("reading {}: {e}", path.display())))?;
        let format = crate::detect::detect(&head[..n]);
        if format != crate::detect::Format::None {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} is a {format}-compressed file: decompress the archive first (its \
                     members are read in place, which a compressed archive does not allow)",
                    path.display()
                ),
            ));
        }
        Box::new(archive::TarStore::open(path)?)
    } else {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{} is neither a directory nor a regular file",
                path.display()
            ),
        ));
    };
    let (plans, indexes) = if store.exists("oci-layout") {
        layout::plan(&*store, opts)?
    } else if store.exists("manifest.json") {
        (docker::plan(&*store, opts)?, None)
    } else {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{} is not an image: it has neither an `oci-layout` file (OCI image layout) \
                 nor a `manifest.json` (docker save archive)",
                store.describe()
            ),
        ));
    };
    let mut reports = verify::run(&*store, &plans, opts);
    // The blobs no image of the layout names: each must still hash to its name. (With a
    // platform picked, the other platforms' blobs are not looked at.)
    if let Some(indexes) = indexes
        && opts.platform.is_none()
    {
        let mut named: std::collections::HashSet<String> = indexes.into_iter().collect();
        for plan in &plans {
            named.extend(plan.manifest.as_deref().and_then(|d| blob_path(d).ok()));
            named.extend(plan.config.clone());
            named.extend(plan.layers.iter().map(|l| l.path.clone()));
        }
        if let Some(report) = verify::unreferenced(&*store, &named)? {
            reports.push(report);
        }
    }
    Ok(reports)
}

/// A blob read from a store: its bytes and its size.
pub(crate) struct Member<'a> {
    pub reader: Box<dyn Read + Send + 'a>,
    pub size: u64,
}

/// Where an image's files are: a directory or a tar archive. Paths are relative, `/`
/// separated and already checked by [`clean_path`].
pub(crate) trait Store: Sync {
    /// PATH, for messages.
    fn describe(&self) -> String;
    /// The member at `rel`; `Ok(None)` when there is none.
    fn open(&self, rel: &str) -> Result<Option<Member<'_>>>;
    /// The names of the regular files directly in directory `dir` (as `dir/name`); empty
    /// when there is no such directory.
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// Whether a member `rel` exists.
    fn exists(&self, rel: &str) -> bool {
        matches!(self.open(rel), Ok(Some(_)))
    }
}

/// `rel` made canonical: relative, `/`-separated, no `.` or empty components. Fails on an
/// absolute path, a `..` component, a NUL or backslash, or an empty path: an image may only
/// name files inside itself.
pub(crate) fn clean_path(rel: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("unsafe path {rel:?} in the image: {why}"),
        )
    };
    if rel.starts_with('/') {
        return Err(bad("absolute paths are not allowed"));
    }
    if rel.contains('\0') || rel.contains('\\') {
        return Err(bad("NUL and backslash are not allowed"));
    }
    let mut parts = Vec::new();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("`..` is not allowed")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(bad("it names no file"));
    }
    Ok(parts.join("/"))
}

/// The path of the blob `digest` in an OCI layout: `blobs/<alg>/<hex>`. The digest must be
/// one this library computes (sha256 or sha512) with the right length of lowercase hex.
pub(crate) fn blob_path(digest: &str) -> Result<String> {
    let (alg, hex) = parse_digest(digest)?;
    Ok(format!("blobs/{}/{hex}", alg.name()))
}

/// Splits and validates `algorithm:hex` (go-digest's rules for the algorithms we compute).
pub(crate) fn parse_digest(digest: &str) -> Result<(crate::hash::Algorithm, &str)> {
    use crate::hash::Algorithm;
    let bad = |why: String| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid digest {digest:?}: {why}"),
        )
    };
    let Some((alg, hex)) = digest.split_once(':') else {
        return Err(bad("expected algorithm:hex".into()));
    };
    let (alg, len) = match alg {
        "sha256" => (Algorithm::Sha256, 64),
        "sha512" => (Algorithm::Sha512, 128),
        other => return Err(bad(format!("unsupported algorithm {other:?}"))),
    };
    if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad(format!(
            "{} needs {len} lowercase hex digits",
            alg.name()
        )));
    }
    Ok((alg, hex))
}

/// Reads the JSON member `rel` whole, refusing more than `max` bytes. `Ok(None)` when absent.
pub(crate) fn read_json(store: &dyn Store, rel: &str, max: u64) -> Result<Option<Vec<u8>>> {
    let Some(member) = store.open(rel)? else {
        return Ok(None);
    };
    if member.size > max {
        return Err(too_large(store, rel, member.size, max));
    }
    let mut data = Vec::with_capacity(member.size as usize);
    member
        .reader
        .take(max + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::new(ErrorKind::Io, format!("reading {rel}: {e}")))?;
    if data.len() as u64 > max {
        return Err(too_large(store, rel, data.len() as u64, max));
    }
    Ok(Some(data))
}

fn too_large(store: &dyn Store, rel: &str, size: u64, max: u64) -> Error {
    Error::new(
        ErrorKind::LimitExceeded,
        format!(
            "{rel} in {} is {size} bytes, more than the {max} bytes a JSON document of an image \
             may have",
            store.describe()
        ),
    )
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_refuses_escapes() {
        assert_eq!(clean_path("./a//b/./c").unwrap(), "a/b/c");
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "",
            ".",
            "a\\b",
            "a\0",
        ] {
            let e = clean_path(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn digests_are_checked() {
        let hex = "a".repeat(64);
        assert_eq!(
            blob_path(&format!("sha256:{hex}")).unwrap(),
            format!("blobs/sha256/{hex}")
        );
        for bad in [
            "sha256".to_string(),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}", "A".repeat(64)),
            format!("md5:{}", "a".repeat(32)),
            format!("sha256:../../{}", "a".repeat(58)),
        ] {
            assert_eq!(
                blob_path(&bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument
            );
        }
    }

    #[test]
    fn platforms_parse() {
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert!(p.matches("linux", "arm", Some("v7")));
        assert!(!p.matches("linux", "arm", Some("v6")));
        let p: Platform = "linux/amd64".parse().unwrap();
        assert!(p.matches("linux", "amd64", Some("v3")));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//x".parse::<Platform>().is_err());
    }
}
