//! OCI image layouts: a directory holding one ([`DirStore`]), and the walk from `index.json`
//! through (nested) indexes to image manifests ([`plan`]), which works on any [`Store`].
//!
//! Spec: <https://github.com/opencontainers/image-spec/blob/v1.1.1/image-layout.md>.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, OciLayout};

use super::report::{Problem, ProblemKind};
use super::verify::{ImagePlan, LayerPlan, json_blob};
use super::{ImageOptions, MAX_INDEX_DEPTH, Member, Store, blob_path, read_json};
use crate::error::{Error, ErrorKind, Result};

/// A directory. Every member is resolved (symlinks included) and must stay inside it.
pub(crate) struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let root = path.canonicalize().map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot open {}: {e}", path.display()),
            )
        })?;
        Ok(DirStore { root })
    }
}

impl Store for DirStore {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let dir = super::clean_path(dir)?;
        let entries = match std::fs::read_dir(self.root.join(&dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("cannot list {dir} in {}: {e}", self.describe()),
                ));
            }
        };
        let mut names = Vec::new();
        for entry in entries.flatten() {
            // Symlinks are listed too: opening one checks where it leads.
            if entry.file_type().is_ok_and(|t| !t.is_dir())
                && let Some(name) = entry.file_name().to_str()
            {
                names.push(format!("{dir}/{name}"));
            }
        }
        names.sort();
        Ok(names)
    }

    fn open(&self, rel: &str) -> Result<Option<Member<'_>>> {
        let rel = super::clean_path(rel)?;
        let path = self.root.join(&rel);
        let real = match path.canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("cannot open {}: {e}", path.display()),
                ));
            }
        };
        if !real.starts_with(&self.root) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{rel} in {} leads outside it (to {}): not followed",
                    self.describe(),
                    real.display()
                ),
            ));
        }
        // Only regular files: a FIFO would block, a device would never end.
        let meta = std::fs::metadata(&real).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot open {}: {e}", path.display()),
            )
        })?;
        if !meta.is_file() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("{rel} in {} is not a regular file", self.describe()),
            ));
        }
        let file = File::open(&real).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot open {}: {e}", path.display()),
            )
        })?;
        Ok(Some(Member {
            reader: Box::new(file),
            size: meta.len(),
        }))
    }
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

/// The images of the OCI layout in `store`: `oci-layout` is checked, `index.json` read, every
/// index it names followed (depth-first, at most [`MAX_INDEX_DEPTH`] deep, no cycles), and
/// each image manifest and config read and checked.
/// Also returns the blob paths of the image indexes it followed.
pub(crate) fn plan(
    store: &dyn Store,
    opts: &ImageOptions,
) -> Result<(Vec<ImagePlan>, Option<Vec<String>>)> {
    let layout = read_json(store, "oci-layout", opts.max_json)?.unwrap_or_default();
    let layout = OciLayout::from_reader(&layout[..])
        .map_err(|e| invalid(format!("oci-layout in {}: {e}", store.describe())))?;
    if !layout.image_layout_version().starts_with("1.") {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{}: image layout version {:?} (only 1.x is known)",
                store.describe(),
                layout.image_layout_version()
            ),
        ));
    }
    let index = read_json(store, "index.json", opts.max_json)?.ok_or_else(|| {
        invalid(format!(
            "{} has an oci-layout file but no index.json",
            store.describe()
        ))
    })?;
    let index = ImageIndex::from_reader(&index[..])
        .map_err(|e| invalid(format!("index.json in {}: {e}", store.describe())))?;
    let mut plans = Vec::new();
    let mut seen = HashSet::new();
    let mut indexes = Vec::new();
    walk(
        store,
        &index,
        0,
        None,
        &mut seen,
        &mut indexes,
        opts,
        &mut plans,
    )?;
    Ok((plans, Some(indexes)))
}

// The recursion carries the walk's context (store, depth, platform, what was seen) and its
// outputs; a struct for them would only rename these arguments.
#[allow(clippy::too_many_arguments)]
fn walk(
    store: &dyn Store,
    index: &ImageIndex,
    depth: usize,
    name: Option<&str>,
    parents: &mut HashSet<String>,
    indexes: &mut Vec<String>,
    opts: &ImageOptions,
    plans: &mut Vec<ImagePlan>,
) -> Result<()> {
    for desc in index.manifests() {
        let digest = desc.digest().to_string();
        let path = blob_path(&digest)?;
        let media_type = desc.media_type().to_string();
        if INDEX_TYPES.contains(&media_type.as_str()) {
            if depth + 1 >= MAX_INDEX_DEPTH {
                return Err(Error::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "image indexes in {} nest deeper than {MAX_INDEX_DEPTH} levels (at \
                         {digest})",
                        store.describe()
                    ),
                ));
            }
            if !parents.insert(digest.clone()) {
                return Err(invalid(format!(
                    "the image index {digest} in {} refers to itself (directly or through \
                     other indexes)",
                    store.describe()
                )));
            }
            let mut problems = Vec::new();
            let data = json_blob(
                store,
                &path,
                Some(&digest),
                Some(desc.size()),
                "image index",
                opts,
                &mut problems,
            );
            if let Some(p) = problems.into_iter().next() {
                return Err(invalid(format!("{}: {}", store.describe(), p.message)));
            }
            let nested = ImageIndex::from_reader(&data.unwrap_or_default()[..])
                .map_err(|e| invalid(format!("image index {path}: {e}")))?;
            // The images of a named index (`oci:DIR:NAME` of a multi-platform image) are
            // known by that name.
            let inner = ref_name(desc).or(name);
            indexes.push(path.clone());
            walk(
                store,
                &nested,
                depth + 1,
                inner,
                parents,
                indexes,
                opts,
                plans,
            )?;
            parents.remove(&digest);
        } else if MANIFEST_TYPES.contains(&media_type.as_str()) {
            if let Some(plan) = image(store, desc, &path, name, opts)? {
                plans.push(plan);
            }
        }
        // Anything else an index may list (artifacts, signatures) is not an image.
    }
    Ok(())
}

/// The `org.opencontainers.image.ref.name` annotation (the NAME of `oci:DIR:NAME`).
fn ref_name(desc: &Descriptor) -> Option<&str> {
    desc.annotations()
        .as_ref()
        .and_then(|a| a.get("org.opencontainers.image.ref.name"))
        .map(String::as_str)
}

fn platform_string(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

/// One image manifest: read and check it and its config; `None` when the platform filter
/// leaves it out or it is not a container image (its config is of another media type).
fn image(
    store: &dyn Store,
    desc: &Descriptor,
    path: &str,
    parent_name: Option<&str>,
    opts: &ImageOptions,
) -> Result<Option<ImagePlan>> {
    let digest = desc.digest().to_string();
    let name = ref_name(desc)
        .or(parent_name)
        .map_or_else(|| digest.clone(), str::to_string);
    let mut platform = desc.platform().as_ref().map(|p| {
        (
            p.os().to_string(),
            p.architecture().to_string(),
            p.variant().clone(),
        )
    });
    if let (Some(want), Some((os, arch, variant))) = (&opts.platform, &platform)
        && !want.matches(os, arch, variant.as_deref())
    {
        return Ok(None);
    }
    let mut plan = ImagePlan {
        name,
        manifest: Some(digest.clone()),
        platform: None,
        config: None,
        problems: Vec::new(),
        layers: Vec::new(),
    };
    let manifest = json_blob(
        store,
        path,
        Some(&digest),
        Some(desc.size()),
        "manifest",
        opts,
        &mut plan.problems,
    );
    let manifest = match manifest.map(|m| ImageManifest::from_reader(&m[..])) {
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            plan.problems.push(Problem::new(
                ProblemKind::Invalid,
                format!("the manifest {path}: {e}"),
            ));
            return Ok(filtered(plan, &platform, opts));
        }
        None => return Ok(filtered(plan, &platform, opts)),
    };
    let config_desc = manifest.config();
    let config_type = config_desc.media_type().to_string();
    if !CONFIG_TYPES.contains(&config_type.as_str()) {
        // An artifact (an attestation, a signature, a Helm chart): not an image to verify.
        return Ok(None);
    }
    let config_digest = config_desc.digest().to_string();
    let config_path = blob_path(&config_digest)?;
    plan.config = Some(config_path.clone());
    let config = json_blob(
        store,
        &config_path,
        Some(&config_digest),
        Some(config_desc.size()),
        "config",
        opts,
        &mut plan.problems,
    );
    let diff_ids = match config.map(|c| ImageConfiguration::from_reader(&c[..])) {
        Some(Ok(c)) => {
            if platform.is_none() {
                platform = Some((
                    c.os().to_string(),
                    c.architecture().to_string(),
                    c.variant().clone(),
                ));
            }
            Some(c.rootfs().diff_ids().clone())
        }
        Some(Err(e)) => {
            plan.problems.push(Problem::new(
                ProblemKind::Invalid,
                format!("the config {config_path}: {e}"),
            ));
            None
        }
        None => None,
    };
    let layers = manifest.layers();
    if let Some(ids) = &diff_ids
        && ids.len() != layers.len()
    {
        plan.problems.push(Problem::new(
            ProblemKind::LayerCount,
            format!(
                "the manifest lists {} layers but the config's rootfs.diff_ids has {}",
                layers.len(),
                ids.len()
            ),
        ));
    }
    for (i, layer) in layers.iter().enumerate() {
        let digest = layer.digest().to_string();
        plan.layers.push(LayerPlan {
            path: blob_path(&digest)?,
            digest: Some(digest),
            size: Some(layer.size()),
            media_type: Some(layer.media_type().to_string()),
            diff_id: diff_ids.as_ref().and_then(|ids| ids.get(i).cloned()),
        });
    }
    Ok(filtered(plan, &platform, opts))
}

/// `plan` with its platform filled in, or `None` when the platform filter excludes it.
fn filtered(
    mut plan: ImagePlan,
    platform: &Option<(String, String, Option<String>)>,
    opts: &ImageOptions,
) -> Option<ImagePlan> {
    if let Some((os, arch, variant)) = platform {
        if let Some(want) = &opts.platform
            && !want.matches(os, arch, variant.as_deref())
        {
            return None;
        }
        plan.platform = Some(platform_string(os, arch, variant.as_deref()));
    }
    Some(plan)
}
