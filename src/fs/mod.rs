//! The filesystem core: knows Altinn concepts, not FUSE.
pub mod stateless;
