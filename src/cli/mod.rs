//! Subcommands of the `diffid` command other than digesting blobs.

#[cfg(feature = "image")]
pub mod image;
