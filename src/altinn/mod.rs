//! Everything about the Altinn APIs and nothing about files.
pub mod auth;
pub mod client;
pub mod http;
pub mod ids;
pub mod maskinporten;
pub mod memory;
pub mod model;
pub mod rules;

pub use client::{AltinnClient, AltinnError, Download, InstanceRef, QueryParams, UploadBody};
pub use ids::{DataTypeId, ElementId, IdError, InstanceGuid, InstanceId, PartyId};
