//! Maskinporten: a JWT grant signed with the client's RSA key (RS256), posted to the token
//! endpoint, and the access token exchanged for an Altinn token at
//! `{platform}/authentication/api/v1/exchange/maskinporten` (`?test=true` in tt02).
//!
//! Keys: a JWK (a private RSA key with `n`, `e`, `d`, `p`, `q`, `dp`, `dq`, `qi`; its `kid` goes
//! into the grant's header) or a JWKS holding one, or a PEM file (PKCS#1 `RSA PRIVATE KEY` or
//! PKCS#8 `PRIVATE KEY`; a `kid` for it comes from `--maskinporten-kid` or `ALTINNFS_MASKINPORTEN_KID`).

use crate::altinn::client::AltinnError;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Production token endpoint and audience.
pub const PROD_TOKEN_URL: &str = "https://maskinporten.no/token";
pub const PROD_AUDIENCE: &str = "https://maskinporten.no/";
/// Test (used with tt02) token endpoint and audience.
pub const TEST_TOKEN_URL: &str = "https://test.maskinporten.no/token";
pub const TEST_AUDIENCE: &str = "https://test.maskinporten.no/";
/// Environment variable with the `kid` for a PEM key (a JWK carries its own).
pub const ENV_KID: &str = "ALTINNFS_MASKINPORTEN_KID";
/// Lifetime of a grant (Maskinporten accepts at most 120 s).
pub const GRANT_LIFETIME_SECS: i64 = 120;

/// The text of an `AltinnError::Auth` without the "authentication failed" prefix.
pub fn message(e: AltinnError) -> String {
    match e {
        AltinnError::Auth(m) => m,
        other => other.to_string(),
    }
}

fn auth(m: impl Into<String>) -> AltinnError {
    AltinnError::Auth(m.into())
}

/// An RSA private key ready for RS256, with its key id. `Debug` shows no key material.
pub struct SigningKey {
    key: EncodingKey,
    pub kid: Option<String>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// A JWK/JWKS (JSON) or PEM file.
    pub fn from_file(path: &Path) -> Result<Self, AltinnError> {
        Self::from_file_with_kid(path, None)
    }

    /// `kid` is used for a PEM key (`--maskinporten-kid`, else `ALTINNFS_MASKINPORTEN_KID`).
    pub fn from_file_with_kid(path: &Path, kid: Option<String>) -> Result<Self, AltinnError> {
        let bytes = std::fs::read(path).map_err(|e| {
            auth(format!(
                "cannot read --maskinporten-key {}: {e}",
                path.display()
            ))
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let r = if text.trim_start().starts_with('{') {
            Self::from_jwk_json(&text)
        } else {
            Self::from_pem(&bytes, kid.or_else(|| std::env::var(ENV_KID).ok()))
        };
        r.map_err(|e| {
            auth(format!(
                "--maskinporten-key {}: {}",
                path.display(),
                message(e)
            ))
        })
    }

    /// A PKCS#1 or PKCS#8 RSA private key in PEM.
    pub fn from_pem(pem: &[u8], kid: Option<String>) -> Result<Self, AltinnError> {
        if String::from_utf8_lossy(pem).contains("PUBLIC KEY-----") {
            return Err(auth(
                "this is a public key; Maskinporten needs the RSA private key",
            ));
        }
        let key = EncodingKey::from_rsa_pem(pem).map_err(|e| {
            auth(format!(
                "not an RSA private key in PEM (PKCS#1 or PKCS#8): {e}"
            ))
        })?;
        SigningKey {
            key,
            kid: kid.filter(|k| !k.is_empty()),
        }
        .checked()
    }

    /// Sign a throwaway token so a bad key fails at load, not at the first grant.
    fn checked(self) -> Result<Self, AltinnError> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &serde_json::json!({}),
            &self.key,
        )
        .map_err(|e| auth(format!("not a usable RSA private key: {e}")))?;
        Ok(self)
    }

    /// A private RSA JWK, or a JWKS whose first private RSA key is used.
    pub fn from_jwk_json(json: &str) -> Result<Self, AltinnError> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| auth(format!("not valid JSON: {e}")))?;
        let jwk = match v.get("keys").and_then(|k| k.as_array()) {
            Some(keys) => keys
                .iter()
                .find(|k| k.get("d").is_some())
                .ok_or_else(|| auth("the JWKS holds no private key (no `d`)"))?,
            None => &v,
        };
        let der = jwk_to_pkcs1_der(jwk).map_err(auth)?;
        SigningKey {
            key: EncodingKey::from_rsa_der(&der),
            kid: jwk.get("kid").and_then(|k| k.as_str()).map(str::to_string),
        }
        .checked()
    }
}

/// Encode a private RSA JWK as PKCS#1 `RSAPrivateKey` DER (what ring signs with).
pub fn jwk_to_pkcs1_der(jwk: &serde_json::Value) -> Result<Vec<u8>, String> {
    if jwk.get("kty").and_then(|k| k.as_str()) != Some("RSA") {
        return Err("the JWK is not an RSA key (kty must be \"RSA\")".into());
    }
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut body = der_integer(&[0]);
    for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
        let s = jwk.get(name).and_then(|v| v.as_str()).ok_or_else(|| {
            if name == "d" {
                "the JWK is a public key (no `d`); Maskinporten needs the private key".to_string()
            } else {
                format!("the private JWK lacks `{name}` (n, e, d, p, q, dp, dq and qi are needed)")
            }
        })?;
        let bytes = engine
            .decode(s.trim_end_matches('='))
            .map_err(|_| format!("the JWK's `{name}` is not base64url"))?;
        body.extend(der_integer(&bytes));
    }
    let mut out = vec![0x30];
    out.extend(der_len(body.len()));
    out.extend(body);
    Ok(out)
}

fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        let mut v = vec![0x80 | bytes.len() as u8];
        v.extend(bytes);
        v
    }
}

/// An unsigned big-endian integer as a DER INTEGER.
fn der_integer(be: &[u8]) -> Vec<u8> {
    let mut digits: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    if digits.is_empty() {
        digits.push(0);
    }
    if digits[0] & 0x80 != 0 {
        digits.insert(0, 0);
    }
    let mut v = vec![0x02];
    v.extend(der_len(digits.len()));
    v.extend(digits);
    v
}

/// What a grant needs.
#[derive(Debug)]
pub struct MaskinportenConfig {
    pub client_id: String,
    pub scope: String,
    pub key: SigningKey,
    pub token_url: String,
    pub audience: String,
}

impl MaskinportenConfig {
    /// `token_url` overrides the environment's endpoint; the audience is then that URL's
    /// origin with a trailing `/` (as Maskinporten's issuer is).
    pub fn new(
        client_id: String,
        scope: String,
        key: SigningKey,
        token_url: Option<&str>,
        test: bool,
    ) -> Self {
        let (token_url, audience) = match token_url {
            Some(u) => (u.to_string(), audience_for(u)),
            None if test => (TEST_TOKEN_URL.to_string(), TEST_AUDIENCE.to_string()),
            None => (PROD_TOKEN_URL.to_string(), PROD_AUDIENCE.to_string()),
        };
        MaskinportenConfig {
            client_id,
            scope,
            key,
            token_url,
            audience,
        }
    }
}

/// The issuer/audience that goes with a token endpoint: `https://host/token` → `https://host/`.
pub fn audience_for(token_url: &str) -> String {
    let u = token_url.split(['?', '#']).next().unwrap_or(token_url);
    let u = u.trim_end_matches('/');
    let base = u.strip_suffix("/token").unwrap_or(u);
    format!("{}/", base.trim_end_matches('/'))
}

/// The claims of a grant.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GrantClaims {
    pub aud: String,
    pub iss: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Sign a grant (RS256, `kid` in the header when the key has one).
pub fn make_grant(cfg: &MaskinportenConfig) -> Result<String, AltinnError> {
    let iat = now_secs();
    let claims = GrantClaims {
        aud: cfg.audience.clone(),
        iss: cfg.client_id.clone(),
        scope: cfg.scope.clone(),
        iat,
        exp: iat + GRANT_LIFETIME_SECS,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = cfg.key.kid.clone();
    jsonwebtoken::encode(&header, &claims, &cfg.key.key)
        .map_err(|e| auth(format!("cannot sign the Maskinporten grant: {e}")))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A Maskinporten client that turns grants into Altinn tokens.
#[derive(Debug)]
pub struct Maskinporten {
    cfg: MaskinportenConfig,
    http: reqwest::Client,
    exchange_url: String,
}

impl Maskinporten {
    pub fn new(
        cfg: MaskinportenConfig,
        http: reqwest::Client,
        platform_url: &str,
        test: bool,
    ) -> Self {
        let exchange_url = format!(
            "{}/authentication/api/v1/exchange/maskinporten{}",
            platform_url.trim_end_matches('/'),
            if test { "?test=true" } else { "" }
        );
        Maskinporten {
            cfg,
            http,
            exchange_url,
        }
    }

    pub fn config(&self) -> &MaskinportenConfig {
        &self.cfg
    }

    pub fn exchange_url(&self) -> &str {
        &self.exchange_url
    }

    /// POST a fresh grant to the token endpoint; the Maskinporten access token.
    pub async fn access_token(&self) -> Result<String, AltinnError> {
        let grant = make_grant(&self.cfg)?;
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let body = format!(
            "grant_type={}&assertion={}",
            enc("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            enc(&grant)
        );
        let url = &self.cfg.token_url;
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .timeout(crate::altinn::auth::AUTH_HTTP_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                auth(format!(
                    "Maskinporten {url}: {}",
                    crate::altinn::auth::scrub(&e.to_string())
                ))
            })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| {
            auth(format!(
                "Maskinporten {url}: {}",
                crate::altinn::auth::scrub(&e.to_string())
            ))
        })?;
        let parsed: Option<TokenResponse> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            let why = match &parsed {
                Some(TokenResponse {
                    error: Some(e),
                    error_description,
                    ..
                }) => format!(
                    "{e}{}",
                    error_description
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ),
                _ => crate::altinn::auth::scrub(text.trim()),
            };
            return Err(auth(format!(
                "Maskinporten {url} answered {}: {} (client id {}, scope \"{}\")",
                status.as_u16(),
                crate::altinn::auth::scrub(&why),
                self.cfg.client_id,
                self.cfg.scope
            )));
        }
        parsed
            .and_then(|t| t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| auth(format!("Maskinporten {url} answered no access_token")))
    }

    /// Exchange a Maskinporten access token for an Altinn token.
    pub async fn exchange(&self, access_token: &str) -> Result<String, AltinnError> {
        let url = &self.exchange_url;
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .timeout(crate::altinn::auth::AUTH_HTTP_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                auth(format!(
                    "exchange at {url}: {}",
                    crate::altinn::auth::scrub(&e.to_string())
                ))
            })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| {
            auth(format!(
                "exchange at {url}: {}",
                crate::altinn::auth::scrub(&e.to_string())
            ))
        })?;
        if !status.is_success() {
            return Err(auth(format!(
                "exchange at {url} answered {}{}",
                status.as_u16(),
                if text.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", crate::altinn::auth::scrub(text.trim()))
                }
            )));
        }
        Ok(crate::altinn::auth::clean_token(&text))
    }

    /// A new grant, its access token, exchanged: a fresh Altinn token.
    pub async fn altinn_token(&self) -> Result<String, AltinnError> {
        let at = self.access_token().await?;
        self.exchange(&at).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_from_url() {
        assert_eq!(audience_for("https://maskinporten.no/token"), PROD_AUDIENCE);
        assert_eq!(
            audience_for("https://test.maskinporten.no/token/"),
            TEST_AUDIENCE
        );
        assert_eq!(
            audience_for("http://127.0.0.1:9/token"),
            "http://127.0.0.1:9/"
        );
    }

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(der_integer(&[0]), vec![2, 1, 0]);
        assert_eq!(der_integer(&[0, 0, 5]), vec![2, 1, 5]);
        assert_eq!(der_integer(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(der_len(300), vec![0x82, 1, 44]);
    }

    #[test]
    fn public_jwk_is_refused_clearly() {
        let e = SigningKey::from_jwk_json(r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#).unwrap_err();
        assert!(message(e).contains("public key"));
    }
}
