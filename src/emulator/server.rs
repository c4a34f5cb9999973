//! Shared state, routing, token and control routes, and the two JSON dialects.

use super::auth::{self, Principal, TokenIssuer};
use super::http::*;
use super::routes::act::act_route;
use super::routes::{app, storage};
use super::service::synthetic::Synthetic;
use super::store::Store;
use super::{faults, sample, EmulatorConfig, FaultConfig, Stats};
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
        Shared::open(cfg)
    }

    /// Open (or create) the data dir: the store, the sample or synthetic app, the signing key.
    pub fn open(cfg: EmulatorConfig) -> std::io::Result<Shared> {
        std::fs::create_dir_all(&cfg.data_dir)?;
        let mut store = Store::open(&cfg.data_dir)?;
        if cfg.synthetic_instances > 0 {
            let synthetic = Synthetic::new(cfg.synthetic_instances);
            if store.app(synthetic.app_id()).is_none() {
                store.put_app(&sample::app_metadata())?;
            }
            store.set_synthetic(synthetic);
        } else if cfg.sample && store.is_empty() {
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

    pub(super) fn lifetime(&self) -> u64 {
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
    // The routes return axum responses by value everywhere; boxing this one would not help.
    #[allow(clippy::result_large_err)]
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

fn request_ctx(parts: &axum::http::request::Parts) -> Ctx {
    let host = header_str(&parts.headers, "host")
        .map(str::to_string)
        .unwrap_or_else(|| "127.0.0.1".into());
    Ctx {
        method: parts.method.clone(),
        query: Query(parse_query(parts.uri.query())),
        headers: parts.headers.clone(),
        base: format!("http://{host}"),
        raw_query: parts.uri.query().map(str::to_string),
        path: parts.uri.path().to_string(),
    }
}

/// The path's segments, percent-decoded.
fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .to_string()
        })
        .collect()
}

async fn dispatch(State(s): State<Arc<Shared>>, req: Request) -> Resp {
    let (parts, body) = req.into_parts();
    let ctx = request_ctx(&parts);
    let segs = segments(parts.uri.path());
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["_emulator", "act", rest @ ..] => act_route(&s, &ctx, rest, body).await,
        ["_emulator", rest @ ..] => control(&s, &ctx.method, rest, body).await,
        ["Home", ..] | ["authentication", ..] if ctx.method == Method::GET => {
            token_route(&s, &ctx, &segs)
        }
        ["health"] => text(200, "Healthy"),
        ["storage", "api", "v1", rest @ ..] => storage::route(&s, &ctx, rest, body).await,
        [org, app, rest @ ..] => app::route(&s, &ctx, org, app, rest, body).await,
        _ => empty(404),
    }
}

/// localtest's token endpoints and the platform's refresh.
fn token_route(s: &Shared, ctx: &Ctx, segs: &[&str]) -> Resp {
    let user = |id: Option<u32>, label: &str| match id {
        Some(id) if auth::user(id).is_some() => text(200, s.user_token(id)),
        _ => text(404, format!("User {label}not found")),
    };
    match segs {
        ["Home", "GetTestUserToken", id] => user(id.parse().ok(), &format!("{id} ")),
        ["Home", "GetTestUserToken"] => {
            user(ctx.query.get("userId").and_then(|v| v.parse().ok()), "")
        }
        ["Home", "GetTestPartyToken", id] => match id.parse::<u32>() {
            Ok(id) => text(200, s.party_token(id)),
            _ => text(400, "Invalid party id"),
        },
        ["Home", "GetTestOrgToken", rest @ ..] if rest.len() <= 1 => org_token_route(s, ctx, rest),
        ["authentication", "api", "v1", "refresh"] => match s.auth(&ctx.headers) {
            Ok(p) => {
                let mut claims = p.claims().clone();
                for k in ["exp", "iat", "nbf", "jti"] {
                    claims.remove(k);
                }
                text(200, s.tokens.sign(claims, s.lifetime()))
            }
            Err(r) => r,
        },
        _ => empty(404),
    }
}

fn org_token_route(s: &Shared, ctx: &Ctx, rest: &[&str]) -> Resp {
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
    let orgno = ctx.query.get("orgNumber").filter(|o| !o.is_empty());
    text(200, s.org_token(&org, orgno, &scopes))
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

/// Every member of Storage's `DataElement` (app-lib writes them all, null where empty).
const ELEMENT_MEMBERS: &[&str] = &[
    "id",
    "instanceGuid",
    "dataType",
    "filename",
    "contentType",
    "blobStoragePath",
    "selfLinks",
    "size",
    "contentHash",
    "locked",
    "refs",
    "isRead",
    "tags",
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

const INSTANCE_MEMBERS: &[&str] = &[
    "id",
    "instanceOwner",
    "appId",
    "org",
    "selfLinks",
    "dueBefore",
    "visibleAfter",
    "process",
    "status",
    "completeConfirmations",
    "data",
    "presentationTexts",
    "dataValues",
    "created",
    "createdBy",
    "lastChanged",
    "lastChangedBy",
];

const PROCESS_MEMBERS: &[&str] = &["started", "startEvent", "currentTask", "ended", "endEvent"];

const TASK_MEMBERS: &[&str] = &[
    "flow",
    "started",
    "elementId",
    "name",
    "altinnTaskType",
    "ended",
    "validated",
    "flowType",
];

const STATUS_MEMBERS: &[&str] = &[
    "isArchived",
    "archived",
    "isSoftDeleted",
    "softDeleted",
    "isHardDeleted",
    "hardDeleted",
    "readStatus",
    "substatus",
];

const OWNER_MEMBERS: &[&str] = &[
    "partyId",
    "personNumber",
    "organisationNumber",
    "username",
    "externalIdentifier",
];

/// App dialect of a data element: every member written, null where empty.
pub fn app_element_json(e: &DataElement) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    fill_nulls(&mut v, ELEMENT_MEMBERS);
    v
}

/// App dialect of a process state (also the base of `GET process`): all members, nulls kept.
pub fn app_process_json(v: &mut Value) {
    fill_nulls(v, PROCESS_MEMBERS);
    if let Some(t) = v.get_mut("currentTask").filter(|t| t.is_object()) {
        fill_nulls(t, TASK_MEMBERS);
    }
}

/// App dialect: every member written (null where empty), `readStatus` a number,
/// `instanceOwner.party` added.
pub fn app_json(inst: &Instance, base: &str) -> Value {
    let mut v = storage_json(inst, base);
    fill_nulls(&mut v, INSTANCE_MEMBERS);
    if let Some(p) = v.get_mut("process").filter(|p| p.is_object()) {
        app_process_json(p);
    }
    if let Some(st) = v.get_mut("status") {
        fill_nulls(st, STATUS_MEMBERS);
        let n = match inst.status.read_status {
            crate::altinn::model::ReadStatus::Unread => 0,
            crate::altinn::model::ReadStatus::Read => 1,
            crate::altinn::model::ReadStatus::UpdatedSinceLastReview => 2,
        };
        st["readStatus"] = json!(n);
    }
    if let Some(owner) = v.get_mut("instanceOwner") {
        fill_nulls(owner, OWNER_MEMBERS);
        let pid: u32 = inst.party_id().parse().unwrap_or(0);
        owner["party"] = auth::party_json(pid);
    }
    if let Some(Value::Array(data)) = v.get_mut("data") {
        for d in data {
            fill_nulls(d, ELEMENT_MEMBERS);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_dialect_writes_every_member_with_nulls() {
        let inst = Instance {
            id: "510001/5e000000-0000-4000-8000-000000000001".into(),
            process: Some(crate::altinn::model::ProcessState {
                current_task: Some(Default::default()),
                ..Default::default()
            }),
            data: vec![DataElement {
                id: "d".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = app_json(&inst, "http://h");
        for k in INSTANCE_MEMBERS {
            assert!(v.get(k).is_some(), "instance.{k}");
        }
        assert!(v["dueBefore"].is_null() && v["process"]["ended"].is_null());
        for k in TASK_MEMBERS {
            assert!(
                v["process"]["currentTask"].get(k).is_some(),
                "currentTask.{k}"
            );
        }
        for k in ELEMENT_MEMBERS {
            assert!(v["data"][0].get(k).is_some(), "data.{k}");
        }
        assert!(v["status"]["substatus"].is_null());
        assert_eq!(v["status"]["readStatus"], json!(0));
        assert!(v["instanceOwner"]["username"].is_null());
        // Storage's dialect keeps omitting them.
        let st = storage_json(&inst, "http://h");
        assert!(st.get("dueBefore").is_none());
    }
}
