//! Everything about the Altinn APIs and nothing about files.
pub mod client;
pub mod http;
pub mod memory;
pub mod model;
pub mod rules;

pub use client::{AltinnClient, AltinnError, Download, InstanceRef, QueryParams, UploadBody};
