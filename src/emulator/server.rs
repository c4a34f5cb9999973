//! Shared state, routing, token and control routes, and the two JSON dialects.

use super::auth::{self, Principal, TokenIssuer};
use super::http::*;
use super::store::Store;
use super::{app, faults, sample, storage, EmulatorConfig, FaultConfig, Stats};
use crate::altinn::model::{DataElement, Instance, ResourceLinks};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Method};
use axum::Router;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, RwLock};

pub struct Shared {
    pub cfg: EmulatorConfig,
    pub store: Store,
    pub tokens: TokenIssuer,
    pub faults: RwLock<FaultConfig>,
    pub stats: Mutex<Stats>,
}

impl Shared {
    pub async fn load(cfg: EmulatorConfig) -> std::io::Result<Shared> {
        std::fs::create_dir_all(&cfg.data_dir)?;
        let store = Store::open(&cfg.data_dir)?;
        if cfg.sample && store.is_empty() {
            sample::generate(&store, cfg.sample_instances, cfg.hostile)?;
        }
        let tokens = TokenIssuer::load(&cfg.data_dir)?;
        let faults = RwLock::new(cfg.faults.clone());
        Ok(Shared {
            cfg,
            store,
            tokens,
            faults,
            stats: Mutex::new(Stats::default()),
        })
    }

    pub fn default_app_id(&self) -> String {
        let id = format!("{}/{}", sample::SAMPLE_ORG, sample::SAMPLE_APP);
        if self.store.app(&id).is_some() {
            return id;
        }
        let mut ids: Vec<String> = self.store.apps().into_iter().map(|a| a.id).collect();
        ids.sort();
        ids.into_iter().next().unwrap_or(id)
    }

    fn lifetime(&self) -> u64 {
        self.faults
            .read()
            .unwrap()
            .token_expiry_secs
            .unwrap_or(self.cfg.token_lifetime.as_secs())
    }

    pub fn user_token(&self, user_id: u32) -> String {
        let claims = match auth::user(user_id) {
            Some(u) => TokenIssuer::user_claims(u.user_id, u.party_id, u.user_name, 2),
            None => TokenIssuer::user_claims(user_id, 0, &format!("user{user_id}"), 2),
        };
        self.tokens.sign(claims, self.lifetime())
    }

    pub fn party_token(&self, party_id: u32) -> String {
        self.tokens
            .sign(TokenIssuer::party_claims(party_id), self.lifetime())
    }

    pub fn org_token(&self, org: &str, org_number: Option<&str>, scopes: &str) -> String {
        let orgno = org_number.unwrap_or(if org == "ttd" {
            "991825827"
        } else {
            "111111111"
        });
        self.tokens.sign(
            TokenIssuer::org_claims(org, orgno, scopes, 3),
            self.lifetime(),
        )
    }

    /// Bearer token → principal, or the 401 (empty body) to send.
    pub fn auth(&self, h: &HeaderMap) -> Result<Principal, Resp> {
        let v = header_str(h, "authorization").ok_or_else(|| empty(401))?;
        let (scheme, tok) = v.split_once(' ').ok_or_else(|| empty(401))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(empty(401));
        }
        self.tokens
            .validate(tok.trim().trim_matches('"'))
            .ok_or_else(|| empty(401))
    }
}

/// What a handler gets to know about a request.
pub struct Ctx {
    pub method: Method,
    pub query: Query,
    pub headers: HeaderMap,
    /// `http://host:port` as the client addressed us.
    pub base: String,
    pub raw_query: Option<String>,
    pub path: String,
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            faults::layer,
        ))
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

async fn dispatch(State(s): State<Arc<Shared>>, req: Request) -> Resp {
    let (parts, body) = req.into_parts();
    let host = header_str(&parts.headers, "host")
        .map(str::to_string)
        .unwrap_or_else(|| "127.0.0.1".into());
    let ctx = Ctx {
        method: parts.method.clone(),
        query: Query(parse_query(parts.uri.query())),
        headers: parts.headers.clone(),
        base: format!("http://{host}"),
        raw_query: parts.uri.query().map(str::to_string),
        path: parts.uri.path().to_string(),
    };
    let segs: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .to_string()
        })
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = ctx.method.clone();
    match segs.as_slice() {
        ["_emulator", rest @ ..] => control(&s, &m, rest, body).await,
        ["Home", "GetTestUserToken", id] if m == Method::GET => match id.parse::<u32>() {
            Ok(id) if auth::user(id).is_some() => text(200, s.user_token(id)),
            _ => text(404, format!("User {id} not found")),
        },
        ["Home", "GetTestUserToken"] if m == Method::GET => {
            match ctx.query.get("userId").and_then(|v| v.parse::<u32>().ok()) {
                Some(id) if auth::user(id).is_some() => text(200, s.user_token(id)),
                _ => text(404, "User not found"),
            }
        }
        ["Home", "GetTestPartyToken", id] if m == Method::GET => match id.parse::<u32>() {
            Ok(id) => text(200, s.party_token(id)),
            _ => text(400, "Invalid party id"),
        },
        ["Home", "GetTestOrgToken", rest @ ..] if m == Method::GET && rest.len() <= 1 => {
            let org = rest
                .first()
                .map(|s| s.to_string())
                .or_else(|| ctx.query.get("org").map(str::to_string));
            let Some(org) = org.filter(|o| !o.is_empty()) else {
                return text(400, "org is required");
            };
            let scopes = ctx
                .query
                .get("scopes")
                .or_else(|| ctx.query.get("scope"))
                .filter(|s| !s.trim().is_empty())
                .unwrap_or(auth::SERVICEOWNER_READ)
                .to_string();
            text(
                200,
                s.org_token(
                    &org,
                    ctx.query.get("orgNumber").filter(|o| !o.is_empty()),
                    &scopes,
                ),
            )
        }
        ["authentication", "api", "v1", "refresh"] if m == Method::GET => {
            match s.auth(&ctx.headers) {
                Ok(p) => {
                    let mut claims = p.claims().clone();
                    for k in ["exp", "iat", "nbf", "jti"] {
                        claims.remove(k);
                    }
                    text(200, s.tokens.sign(claims, s.lifetime()))
                }
                Err(r) => r,
            }
        }
        ["health"] => text(200, "Healthy"),
        ["storage", "api", "v1", rest @ ..] => storage::route(&s, &ctx, rest, body).await,
        [org, app, rest @ ..] => app::route(&s, &ctx, org, app, rest, body).await,
        _ => empty(404),
    }
}

async fn control(s: &Shared, m: &Method, rest: &[&str], body: Body) -> Resp {
    match (m.clone(), rest) {
        (Method::GET, ["stats"]) => json(200, &*s.stats.lock().unwrap()),
        (Method::POST, ["stats", "reset"]) => {
            *s.stats.lock().unwrap() = Stats::default();
            empty(204)
        }
        (Method::GET, ["faults"]) => json(200, &*s.faults.read().unwrap()),
        (Method::POST | Method::PUT, ["faults"]) => {
            let bytes = match axum::body::to_bytes(body, 1 << 20).await {
                Ok(b) => b,
                Err(e) => return text(400, e.to_string()),
            };
            let f: FaultConfig = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                FaultConfig::default()
            } else {
                match serde_json::from_slice(&bytes) {
                    Ok(f) => f,
                    Err(e) => return text(400, format!("bad FaultConfig: {e}")),
                }
            };
            *s.faults.write().unwrap() = f.clone();
            json(200, &f)
        }
        (Method::GET, ["info"]) => json(
            200,
            &json!({"appId": s.default_app_id(), "instances": s.store.count(), "hostile": s.cfg.hostile}),
        ),
        _ => empty(404),
    }
}

// ---- dialects ------------------------------------------------------------------------

pub fn element_links(e: &mut DataElement, base: &str, app_id: &str, inst_id: &str) {
    e.self_links = Some(ResourceLinks {
        apps: Some(format!("{base}/{app_id}/instances/{inst_id}/data/{}", e.id)),
        platform: Some(format!(
            "{base}/storage/api/v1/instances/{inst_id}/data/{}",
            e.id
        )),
    });
}

pub fn with_links(inst: &Instance, base: &str) -> Instance {
    let mut i = inst.clone();
    i.self_links = Some(ResourceLinks {
        apps: Some(format!("{base}/{}/instances/{}", i.app_id, i.id)),
        platform: Some(format!("{base}/storage/api/v1/instances/{}", i.id)),
    });
    let (app_id, id) = (i.app_id.clone(), i.id.clone());
    for e in &mut i.data {
        element_links(e, base, &app_id, &id);
    }
    i
}

/// Storage dialect: nulls omitted, enums as strings (the model's own serialisation).
pub fn storage_json(inst: &Instance, base: &str) -> Value {
    serde_json::to_value(with_links(inst, base)).unwrap_or(Value::Null)
}

fn fill_nulls(v: &mut Value, keys: &[&str]) {
    if let Value::Object(m) = v {
        for k in keys {
            m.entry(k.to_string()).or_insert(Value::Null);
        }
    }
}

const ELEMENT_NULLS: &[&str] = &[
    "filename",
    "contentType",
    "blobStoragePath",
    "contentHash",
    "refs",
    "isRead",
    "userDefinedMetadata",
    "metadata",
    "deleteStatus",
    "fileScanResult",
    "references",
    "created",
    "createdBy",
    "lastChanged",
    "lastChangedBy",
];

/// App dialect of a data element: nulls written.
pub fn app_element_json(e: &DataElement) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    fill_nulls(&mut v, ELEMENT_NULLS);
    v
}

/// App dialect: nulls written, `readStatus` a number, `instanceOwner.party` added.
pub fn app_json(inst: &Instance, base: &str) -> Value {
    let mut v = storage_json(inst, base);
    fill_nulls(
        &mut v,
        &[
            "dueBefore",
            "visibleAfter",
            "presentationTexts",
            "dataValues",
            "created",
            "createdBy",
            "lastChanged",
            "lastChangedBy",
            "process",
        ],
    );
    if let Some(st) = v.get_mut("status") {
        fill_nulls(st, &["archived", "softDeleted", "hardDeleted", "substatus"]);
        let n = match inst.status.read_status {
            crate::altinn::model::ReadStatus::Unread => 0,
            crate::altinn::model::ReadStatus::Read => 1,
            crate::altinn::model::ReadStatus::UpdatedSinceLastReview => 2,
        };
        st["readStatus"] = json!(n);
    }
    if let Some(owner) = v.get_mut("instanceOwner") {
        fill_nulls(
            owner,
            &[
                "personNumber",
                "organisationNumber",
                "username",
                "externalIdentifier",
            ],
        );
        let pid: u32 = inst.party_id().parse().unwrap_or(0);
        owner["party"] = auth::party_json(pid);
    }
    if let Some(Value::Array(data)) = v.get_mut("data") {
        for d in data {
            fill_nulls(d, ELEMENT_NULLS);
        }
    }
    v
}
