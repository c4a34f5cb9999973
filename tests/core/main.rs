//! The core tier: the filesystem's facade driven directly over the in-process model of
//! Altinn (`InProcessClient`), with no kernel, no `/dev/fuse` and no root. `cargo test --test core`.
//! See tests/README.md for the tiers.

mod reference_model;
mod support;

mod access;
mod change_feed;
mod create_write;
mod dir_reads;
mod fault_wrapper;
mod faults;
mod index_backed;
mod invalidation;
mod listing;
mod model_check;
mod prefetch;
mod rename;
mod seq_read;
mod unlink_setattr;
mod views_stateless;
mod writers;
