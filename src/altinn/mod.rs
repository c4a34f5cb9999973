//! Everything about the Altinn APIs and nothing about files.
pub mod auth;
pub mod client;
#[cfg(any(test, feature = "test-support"))]
pub mod faults;
pub mod http;
pub mod ids;
pub mod maskinporten;
pub mod model;
pub mod retry;
pub mod rules;
mod spool_body;

pub use client::{
    AltinnClient, AltinnError, Answer, Download, Meaning, NewElement, QueryParams, Refusal,
    Replacement, UploadBody,
};
pub use ids::{DataTypeId, ElementId, IdError, InstanceGuid, InstanceId, PartyId};
pub use retry::{PagePolicy, RetryPolicy, Retrying};
