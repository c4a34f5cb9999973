//! Token sources and refresh. The HTTP client asks a `TokenProvider` for a bearer token before
//! every request and tells it about a 401, so refresh logic lives in one place.

use crate::altinn::client::AltinnError;
use async_trait::async_trait;

#[async_trait]
pub trait TokenProvider: Send + Sync + 'static {
    /// A token that is valid now (refreshing first when it is near expiry; one refresh at a
    /// time however many requests wait).
    async fn token(&self) -> Result<String, AltinnError>;
    /// A request with `failed` got 401: the next `token()` must not return it again if a
    /// fresh one can be had.
    async fn on_unauthorized(&self, failed: &str);
}

/// A fixed token (tests, `ALTINN_TOKEN` without refresh).
pub struct StaticToken(pub String);

#[async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self) -> Result<String, AltinnError> {
        Ok(self.0.clone())
    }
    async fn on_unauthorized(&self, _failed: &str) {}
}
