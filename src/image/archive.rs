//! Tar archives of images (oci-archive, `docker save`), read in place.
//!
//! The archive is read once, header by header, seeking over member data, into an index of
//! member name -> (data offset, size). Each member is then read by its own file handle seeked
//! to its data, so layers are digested concurrently and nothing is extracted to disk. Symbolic
//! and hard links between members (older `docker save` links a layer it already wrote) are
//! followed inside the archive only.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{MAX_ARCHIVE_MEMBERS, Member, Store, clean_path};
use crate::error::{Error, ErrorKind, Result};

/// How many links in a row are followed before giving up (a loop, or a hostile chain).
const MAX_LINKS: usize = 16;

enum Node {
    File {
        offset: u64,
        size: u64,
    },
    /// A symbolic link: its target, relative to the link's directory (already joined).
    Link(String),
    Other,
}

pub(crate) struct TarStore {
    path: PathBuf,
    members: HashMap<String, Node>,
}

fn bad(path: &Path, msg: String) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("{}: {msg}", path.display()),
    )
}

/// `target` of a symlink in directory `dir`, as a member name; `None` when it leaves the
/// archive.
fn resolve_link(dir: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

impl TarStore {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let io_err = |e: std::io::Error| {
            Error::new(ErrorKind::Io, format!("reading {}: {e}", path.display()))
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let entries = archive.entries_with_seek().map_err(io_err)?;
        for entry in entries {
            let entry = entry.map_err(|e| bad(path, format!("not a readable tar archive: {e}")))?;
            if members.len() >= MAX_ARCHIVE_MEMBERS {
                return Err(Error::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "{} has more than {MAX_ARCHIVE_MEMBERS} members",
                        path.display()
                    ),
                ));
            }
            let raw = entry
                .path()
                .map_err(|e| bad(path, format!("member name: {e}")))?;
            let raw = raw.to_string_lossy().into_owned();
            // Names an image never uses (absolute, `..`) are left out of the index, so
            // nothing can reach them.
            let Ok(name) = clean_path(&raw) else { continue };
            let offset = entry.raw_file_position();
            let size = entry.size();
            if offset.checked_add(size).is_none_or(|end| end > len) {
                return Err(bad(
                    path,
                    format!(
                        "member {name} claims {size} bytes at offset {offset}, past the end of \
                         the archive ({len} bytes): the archive is truncated or corrupt"
                    ),
                ));
            }
            let kind = entry.header().entry_type();
            let node = if kind.is_file() || kind.is_contiguous() {
                Node::File { offset, size }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let dir = if kind.is_symlink() {
                    name.rsplit_once('/').map_or("", |(d, _)| d).to_string()
                } else {
                    String::new() // hard link targets are archive paths
                };
                match resolve_link(&dir, &target) {
                    Some(t) => Node::Link(t),
                    None => Node::Other,
                }
            } else {
                Node::Other
            };
            members.insert(name, node);
        }
        Ok(TarStore {
            path: path.to_path_buf(),
            members,
        })
    }
}

impl Store for TarStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let prefix = format!("{}/", clean_path(dir)?);
        let mut names: Vec<String> = self
            .members
            .iter()
            .filter(|(name, node)| {
                name.strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.contains('/'))
                    && matches!(node, Node::File { .. } | Node::Link(_))
            })
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    fn open(&self, rel: &str) -> Result<Option<Member<'_>>> {
        let mut name = clean_path(rel)?;
        for _ in 0..MAX_LINKS {
            match self.members.get(&name) {
                None => return Ok(None),
                Some(Node::Other) => {
                    return Err(bad(
                        &self.path,
                        format!("member {name} is not a regular file"),
                    ));
                }
                Some(Node::Link(target)) => name = target.clone(),
                Some(&Node::File { offset, size }) => {
                    let io_err = |e: std::io::Error| {
                        Error::new(
                            ErrorKind::Io,
                            format!("reading {} in {}: {e}", name, self.path.display()),
                        )
                    };
                    let mut file = File::open(&self.path).map_err(io_err)?;
                    file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
                    return Ok(Some(Member {
                        reader: Box::new(Exact {
                            inner: file.take(size),
                            left: size,
                            name: name.clone(),
                        }),
                        size,
                    }));
                }
            }
        }
        Err(bad(
            &self.path,
            format!("{rel}: more than {MAX_LINKS} links in a row (a loop?)"),
        ))
    }
}

/// A member's data: fails instead of ending early if the file shrank since it was indexed.
struct Exact<R> {
    inner: R,
    left: u64,
    name: String,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} ends {} bytes early", self.name, self.left),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_link;

    #[test]
    fn links_stay_inside() {
        assert_eq!(
            resolve_link("a/b", "../c/layer.tar").unwrap(),
            "a/c/layer.tar"
        );
        assert_eq!(resolve_link("a", "../x").unwrap(), "x");
        assert_eq!(resolve_link("", "../x"), None);
        assert_eq!(resolve_link("a", "/etc/passwd"), None);
    }
}
