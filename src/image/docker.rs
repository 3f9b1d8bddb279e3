//! Classic `docker save` archives: `manifest.json` lists, per image, a config file and one
//! tar per layer (`<id>/layer.tar` before Docker 25, `blobs/sha256/<hex>` since).
//!
//! oci-spec models OCI documents only; `manifest.json` is Docker's own (moby
//! `image/tarexport`), so it gets a small serde struct here. Configs are Docker image configs,
//! which `ImageConfiguration` reads (the `rootfs` and platform fields are the same).

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use super::report::{Problem, ProblemKind};
use super::verify::{ImagePlan, LayerPlan, json_blob};
use super::{ImageOptions, Store, clean_path, read_json};
use crate::error::{Error, ErrorKind, Result};

/// One entry of `manifest.json` (moby `image/tarexport.manifestItem`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The digest a file's name gives it: `blobs/<alg>/<hex>` (Docker 25 and later) or the
/// config's `<hex>.json` (earlier). Legacy `<id>/layer.tar` names carry no digest.
fn digest_of_name(path: &str) -> Option<String> {
    let candidate = if let Some(rest) = path.strip_prefix("blobs/") {
        rest.replacen('/', ":", 1)
    } else if let Some(hex) = path.strip_suffix(".json")
        && !hex.contains('/')
    {
        format!("sha256:{hex}")
    } else {
        return None;
    };
    super::parse_digest(&candidate).is_ok().then_some(candidate)
}

/// The images listed by the `manifest.json` of a `docker save` archive.
pub(crate) fn plan(store: &dyn Store, opts: &ImageOptions) -> Result<Vec<ImagePlan>> {
    let data = read_json(store, "manifest.json", opts.max_json)?.unwrap_or_default();
    let entries: Vec<Entry> = serde_json::from_slice(&data).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("manifest.json in {}: {e}", store.describe()),
        )
    })?;
    let mut plans = Vec::new();
    for entry in entries {
        // An unsafe name makes the whole archive suspect: refuse it rather than skip.
        let config_path = clean_path(&entry.config)?;
        let layer_paths = entry
            .layers
            .iter()
            .map(|l| clean_path(l))
            .collect::<Result<Vec<_>>>()?;
        let mut plan = ImagePlan {
            name: entry
                .repo_tags
                .as_ref()
                .and_then(|t| t.first().cloned())
                .unwrap_or_else(|| config_path.clone()),
            manifest: None,
            platform: None,
            config: Some(config_path.clone()),
            problems: Vec::new(),
            layers: Vec::new(),
        };
        let config_digest = digest_of_name(&config_path);
        let config = json_blob(
            store,
            &config_path,
            config_digest.as_deref(),
            None,
            "config",
            opts,
            &mut plan.problems,
        );
        let diff_ids = match config.map(|c| ImageConfiguration::from_reader(&c[..])) {
            Some(Ok(c)) => {
                let (os, arch, variant) = (
                    c.os().to_string(),
                    c.architecture().to_string(),
                    c.variant().clone(),
                );
                if let Some(want) = &opts.platform
                    && !want.matches(&os, &arch, variant.as_deref())
                {
                    continue;
                }
                plan.platform = Some(match variant {
                    Some(v) => format!("{os}/{arch}/{v}"),
                    None => format!("{os}/{arch}"),
                });
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
        if let Some(ids) = &diff_ids
            && ids.len() != layer_paths.len()
        {
            plan.problems.push(Problem::new(
                ProblemKind::LayerCount,
                format!(
                    "manifest.json lists {} layers but the config's rootfs.diff_ids has {}",
                    layer_paths.len(),
                    ids.len()
                ),
            ));
        }
        for (i, path) in layer_paths.into_iter().enumerate() {
            plan.layers.push(LayerPlan {
                digest: digest_of_name(&path),
                path,
                size: None,
                media_type: None,
                diff_id: diff_ids.as_ref().and_then(|ids| ids.get(i).cloned()),
            });
        }
        plans.push(plan);
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::digest_of_name;

    #[test]
    fn names_give_digests() {
        let hex = "0".repeat(64);
        assert_eq!(
            digest_of_name(&format!("blobs/sha256/{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            digest_of_name(&format!("{hex}.json")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(digest_of_name(&format!("{hex}/layer.tar")), None);
        assert_eq!(digest_of_name("blobs/sha256/short"), None);
    }
}
