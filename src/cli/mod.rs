//! Subcommands of the `diffid` command other than digesting blobs.

pub mod decompress;
#[cfg(feature = "image")]
pub mod image;
