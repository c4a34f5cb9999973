//! What `altinnfs status` counts, gathered without touching the client or the filesystem:
//! [`CountingClient`] wraps any `AltinnClient` and counts its calls and failures, and
//! [`WatchedTokens`] wraps a `TokenProvider` and remembers only the expiry (`exp`) of the last
//! token it handed out, never the token.

use crate::altinn::auth::TokenProvider;
use crate::altinn::client::{
    AltinnClient, AltinnError, Download, NewElement, QueryParams, Replacement, Result, UploadBody,
};
use crate::altinn::ids::{DataTypeId, ElementId, InstanceId, PartyId};
use crate::altinn::model::*;
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Request counters of one mount.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    /// The last failure's text (error texts never hold a token).
    pub last_error: Mutex<Option<(chrono::DateTime<chrono::Utc>, String)>>,
}

impl Counters {
    fn record<T>(&self, r: &Result<T>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = r {
            self.errors.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock().unwrap() = Some((chrono::Utc::now(), e.to_string()));
        }
    }
}

/// Counts every call of the wrapped client: one per request, one per whole instance listing.
pub struct CountingClient {
    inner: Arc<dyn AltinnClient>,
    pub counters: Arc<Counters>,
}

impl CountingClient {
    pub fn new(inner: Arc<dyn AltinnClient>) -> Self {
        Self {
            inner,
            counters: Arc::new(Counters::default()),
        }
    }
}

macro_rules! counted {
    ($self:ident, $call:expr) => {{
        let r = $call.await;
        $self.counters.record(&r);
        r
    }};
}

#[async_trait]
impl AltinnClient for CountingClient {
    async fn application_metadata(&self) -> Result<ApplicationMetadata> {
        counted!(self, self.inner.application_metadata())
    }
    async fn parties(&self) -> Result<Vec<Party>> {
        counted!(self, self.inner.parties())
    }
    async fn query_page(&self, params: &QueryParams, next: Option<&str>) -> Result<QueryResponse> {
        counted!(self, self.inner.query_page(params, next))
    }
    /// Delegated whole (one count per listing), so a client's own paging is kept.
    async fn query_instances(&self, params: &QueryParams) -> Result<Vec<Instance>> {
        counted!(self, self.inner.query_instances(params))
    }
    async fn get_instance(&self, inst: &InstanceId) -> Result<Instance> {
        counted!(self, self.inner.get_instance(inst))
    }
    async fn list_data_elements(&self, inst: &InstanceId) -> Result<Vec<DataElement>> {
        counted!(self, self.inner.list_data_elements(inst))
    }
    async fn download(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download> {
        counted!(self, self.inner.download(inst, data_id))
    }
    async fn download_once(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download> {
        counted!(self, self.inner.download_once(inst, data_id))
    }
    async fn get_form_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        accept: &str,
    ) -> Result<Bytes> {
        counted!(self, self.inner.get_form_data(inst, data_id, accept))
    }
    async fn create_data(
        &self,
        inst: &InstanceId,
        new: NewElement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        counted!(self, self.inner.create_data(inst, new, body))
    }
    async fn replace_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        replacement: Replacement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        counted!(
            self,
            self.inner.replace_data(inst, data_id, replacement, body)
        )
    }
    async fn delete_data(&self, inst: &InstanceId, data_id: &ElementId) -> Result<()> {
        counted!(self, self.inner.delete_data(inst, data_id))
    }
    async fn create_instance(&self, party: PartyId) -> Result<Instance> {
        counted!(self, self.inner.create_instance(party))
    }
    async fn delete_instance(&self, inst: &InstanceId, hard: bool) -> Result<Instance> {
        counted!(self, self.inner.delete_instance(inst, hard))
    }
    async fn complete_instance(&self, inst: &InstanceId) -> Result<Instance> {
        counted!(self, self.inner.complete_instance(inst))
    }
    async fn process_next(&self, inst: &InstanceId, action: Option<&str>) -> Result<ProcessState> {
        counted!(self, self.inner.process_next(inst, action))
    }
    async fn stateless_create(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        accept: &str,
    ) -> Result<Bytes> {
        counted!(self, self.inner.stateless_create(data_type, party, accept))
    }
    async fn stateless_calculate(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        content_type: &str,
        body: Bytes,
        accept: &str,
    ) -> Result<Bytes> {
        counted!(
            self,
            self.inner
                .stateless_calculate(data_type, party, content_type, body, accept)
        )
    }
}

/// The expiry of the token in use; 0 while none was handed out (or it is not a JWT).
#[derive(Debug, Default)]
pub struct TokenWatch {
    exp: AtomicI64,
}

impl TokenWatch {
    pub fn expires_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.exp.load(Ordering::Relaxed) {
            0 => None,
            t => chrono::DateTime::from_timestamp(t, 0),
        }
    }
}

/// Passes tokens through and notes each one's `exp`.
pub struct WatchedTokens {
    inner: Arc<dyn TokenProvider>,
    pub watch: Arc<TokenWatch>,
}

impl WatchedTokens {
    pub fn new(inner: Arc<dyn TokenProvider>) -> Self {
        Self {
            inner,
            watch: Arc::new(TokenWatch::default()),
        }
    }
}

#[async_trait]
impl TokenProvider for WatchedTokens {
    async fn token(&self) -> Result<String, AltinnError> {
        let t = self.inner.token().await?;
        if let Ok(times) = crate::altinn::auth::parse_jwt(&t) {
            self.watch.exp.store(times.exp, Ordering::Relaxed);
        }
        Ok(t)
    }
    async fn on_unauthorized(&self, failed: &str) {
        self.inner.on_unauthorized(failed).await
    }
}
