//! Test users, parties and tokens, as app-localtest issues them (app-localtest.md §2.5, §2.6).
//! Tokens are HS256 with a per-data-dir secret.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Map, Value};
use std::path::Path;

pub const SERVICEOWNER_READ: &str = "altinn:serviceowner/instances.read";
pub const SERVICEOWNER_WRITE: &str = "altinn:serviceowner/instances.write";

/// A localtest user: id, user name, own party, the parties it can also represent.
pub struct TestUser {
    pub user_id: u32,
    pub user_name: &'static str,
    pub party_id: u32,
    pub represents: &'static [u32],
}

pub const USERS: &[TestUser] = &[
    TestUser {
        user_id: 1001,
        user_name: "PengelensPartner",
        party_id: 510001,
        represents: &[500000],
    },
    TestUser {
        user_id: 1002,
        user_name: "GjentagendeForelder",
        party_id: 510002,
        represents: &[500000],
    },
    TestUser {
        user_id: 1003,
        user_name: "RikForelder",
        party_id: 510003,
        represents: &[],
    },
    TestUser {
        user_id: 1004,
        user_name: "SelvRegistrert",
        party_id: 510004,
        represents: &[],
    },
    TestUser {
        user_id: 12345,
        user_name: "OlaNordmann",
        party_id: 512345,
        represents: &[],
    },
    TestUser {
        user_id: 1337,
        user_name: "SophieDDG",
        party_id: 501337,
        represents: &[
            500000, 500001, 500002, 500003, 500600, 500700, 500800, 500801, 500802, 500004,
        ],
    },
];

/// A party of the register: id, type (1 person, 2 organisation, 3 self-identified, 5 sub unit),
/// ssn or org number, name, parent (sub units).
pub struct TestParty {
    pub party_id: u32,
    pub type_name: i64,
    pub ssn: Option<&'static str>,
    pub org_number: Option<&'static str>,
    pub name: &'static str,
    pub parent: Option<u32>,
}

const fn person(party_id: u32, ssn: &'static str, name: &'static str) -> TestParty {
    TestParty {
        party_id,
        type_name: 1,
        ssn: Some(ssn),
        org_number: None,
        name,
        parent: None,
    }
}

const fn org(
    party_id: u32,
    orgno: &'static str,
    name: &'static str,
    parent: Option<u32>,
) -> TestParty {
    TestParty {
        party_id,
        type_name: 2,
        ssn: None,
        org_number: Some(orgno),
        name,
        parent,
    }
}

pub const PARTIES: &[TestParty] = &[
    person(510001, "01899699552", "Pengelens Partner"),
    person(510002, "17858296439", "Gjentagende Forelder"),
    person(510003, "08829698278", "Rik Forelder"),
    TestParty {
        party_id: 510004,
        type_name: 3,
        ssn: None,
        org_number: None,
        name: "SelvRegistrert",
        parent: None,
    },
    person(512345, "01017512345", "Ola Nordmann"),
    person(501337, "01039012345", "Sophie Salt"),
    org(500000, "897069650", "DDG Fitness AS", None),
    org(500001, "897069651", "DDG Fitness AS avd Oslo", Some(500000)),
    org(
        500002,
        "897069652",
        "DDG Fitness AS avd Bergen",
        Some(500000),
    ),
    org(
        500003,
        "897069653",
        "DDG Fitness AS avd Trondheim",
        Some(500000),
    ),
    org(500004, "043871668", "Skog og Fjell Consulting", None),
    org(500005, "405003309", "Testdepartementet", None),
    org(500600, "897069631", "EAS Health Consulting AS", None),
    org(500700, "950474084", "Oslos Vakreste Borettslag", None),
    org(500800, "910457292", "EAS Health Consulting Sortland", None),
    org(
        500801,
        "910471120",
        "EAS Health Consulting Stokmarknes",
        None,
    ),
    org(500802, "910423495", "EAS Health Consulting Svolvær", None),
];

pub fn user(id: u32) -> Option<&'static TestUser> {
    USERS.iter().find(|u| u.user_id == id)
}

pub fn party(id: u32) -> Option<&'static TestParty> {
    PARTIES.iter().find(|p| p.party_id == id)
}

/// Party JSON as `api/v1/parties` returns it (partyTypeName as a number).
pub fn party_json(id: u32) -> Value {
    match party(id) {
        Some(p) => {
            let children: Vec<Value> = PARTIES
                .iter()
                .filter(|c| c.parent == Some(id))
                .map(|c| party_json(c.party_id))
                .collect();
            json!({
                "partyId": p.party_id,
                "partyUuid": party_uuid(p.party_id),
                "partyTypeName": p.type_name,
                "orgNumber": p.org_number,
                "ssn": p.ssn.map(|s| format!("{}*****", &s[..6])),
                "unitType": if p.type_name == 2 { Some("AS") } else { None },
                "name": p.name,
                "isDeleted": false,
                "onlyHierarchyElementWithNoAccess": false,
                "person": null,
                "organization": null,
                "childParties": if children.is_empty() { Value::Null } else { Value::Array(children) },
            })
        }
        None => json!({
            "partyId": id,
            "partyUuid": party_uuid(id),
            "partyTypeName": 1,
            "orgNumber": null,
            "ssn": null,
            "unitType": null,
            "name": format!("Sample Party {id}"),
            "isDeleted": false,
            "onlyHierarchyElementWithNoAccess": false,
            "person": null,
            "organization": null,
            "childParties": null,
        }),
    }
}

pub fn party_uuid(id: u32) -> String {
    format!("00000000-0000-4000-8000-{id:012}")
}

/// Who a validated token is.
#[derive(Debug, Clone)]
pub enum Principal {
    User {
        user_id: u32,
        party_id: u32,
        claims: Map<String, Value>,
    },
    Org {
        org: String,
        scopes: Vec<String>,
        claims: Map<String, Value>,
    },
}

impl Principal {
    pub fn claims(&self) -> &Map<String, Value> {
        match self {
            Principal::User { claims, .. } | Principal::Org { claims, .. } => claims,
        }
    }
    /// Parties a user may act for (own party first); empty for orgs.
    pub fn parties(&self) -> Vec<u32> {
        match self {
            Principal::User {
                user_id, party_id, ..
            } => match user(*user_id) {
                Some(u) => {
                    let mut v = vec![u.party_id];
                    v.extend_from_slice(u.represents);
                    v
                }
                None => vec![*party_id],
            },
            Principal::Org { .. } => vec![],
        }
    }
    /// May this caller act on instances of `party` in an app owned by `app_org`?
    pub fn may_access(&self, party: &str, app_org: &str) -> bool {
        match self {
            Principal::Org { org, .. } => org == app_org,
            Principal::User { .. } => party
                .parse::<u32>()
                .map(|p| self.parties().contains(&p))
                .unwrap_or(false),
        }
    }
    pub fn org(&self) -> Option<&str> {
        match self {
            Principal::Org { org, .. } => Some(org),
            _ => None,
        }
    }
    pub fn has_scope(&self, s: &str) -> bool {
        match self {
            Principal::Org { scopes, .. } => scopes.iter().any(|x| x == s),
            _ => false,
        }
    }
    /// `createdBy`/`lastChangedBy` value: the user id, or the org number.
    pub fn actor(&self) -> String {
        match self {
            Principal::User { user_id, .. } => user_id.to_string(),
            Principal::Org { claims, org, .. } => claims
                .get("urn:altinn:orgNumber")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| org.clone()),
        }
    }
}

pub struct TokenIssuer {
    secret: Vec<u8>,
}

impl TokenIssuer {
    /// Load or create `{data_dir}/emulator-secret`.
    pub fn load(data_dir: &Path) -> std::io::Result<Self> {
        let p = data_dir.join("emulator-secret");
        let secret = match std::fs::read(&p) {
            Ok(s) if s.len() >= 32 => s,
            _ => {
                use rand::RngCore;
                let mut s = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut s);
                let hex: String = s.iter().map(|b| format!("{b:02x}")).collect();
                std::fs::write(&p, hex.as_bytes())?;
                hex.into_bytes()
            }
        };
        Ok(Self { secret })
    }

    pub fn sign(&self, mut claims: Map<String, Value>, lifetime_secs: u64) -> String {
        let now = chrono::Utc::now().timestamp();
        claims.insert("iat".into(), json!(now));
        claims.insert("nbf".into(), json!(now));
        claims.insert("exp".into(), json!(now + lifetime_secs as i64));
        claims.insert("iss".into(), json!("altinnfs-emulator"));
        claims.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.secret),
        )
        .expect("jwt encode")
    }

    pub fn user_claims(
        user_id: u32,
        party_id: u32,
        user_name: &str,
        authlevel: i64,
    ) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert(
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier".into(),
            json!(user_id.to_string()),
        );
        c.insert("urn:altinn:userid".into(), json!(user_id.to_string()));
        c.insert("urn:altinn:username".into(), json!(user_name));
        c.insert("urn:altinn:partyid".into(), json!(party_id.to_string()));
        c.insert("urn:altinn:party:uuid".into(), json!(party_uuid(party_id)));
        c.insert("urn:altinn:authlevel".into(), json!(authlevel.to_string()));
        c.insert("urn:altinn:authenticatemethod".into(), json!("Mock"));
        let scope = "altinn:portal/enduser altinn:instances.read altinn:instances.write";
        c.insert("urn:altinn:scope".into(), json!(scope));
        c.insert("scope".into(), json!(scope));
        c
    }

    pub fn org_claims(
        org: &str,
        org_number: &str,
        scopes: &str,
        authlevel: i64,
    ) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("urn:altinn:org".into(), json!(org));
        c.insert("urn:altinn:orgNumber".into(), json!(org_number));
        c.insert("urn:altinn:authlevel".into(), json!(authlevel.to_string()));
        c.insert(
            "urn:altinn:authenticatemethod".into(),
            json!("maskinporten"),
        );
        c.insert("urn:altinn:scope".into(), json!(scopes));
        c.insert("scope".into(), json!(scopes));
        c.insert(
            "consumer".into(),
            json!({"authority": "iso6523-actorid-upis", "ID": format!("0192:{org_number}")}),
        );
        c
    }

    /// Claims for a user token acting for `party_id`: the localtest user owning it, else a
    /// synthetic user (id 9_000_000 + party) who may act only for that party.
    pub fn party_claims(party_id: u32) -> Map<String, Value> {
        match USERS.iter().find(|u| u.party_id == party_id) {
            Some(u) => Self::user_claims(u.user_id, u.party_id, u.user_name, 2),
            None => {
                let uid = 9_000_000u32.wrapping_add(party_id);
                Self::user_claims(uid, party_id, &format!("party{party_id}"), 2)
            }
        }
    }

    /// Validate a bearer token: signature, exp/nbf with 10 s skew.
    pub fn validate(&self, token: &str) -> Option<Principal> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 10;
        v.validate_nbf = true;
        v.validate_aud = false;
        v.required_spec_claims = ["exp".to_string()].into_iter().collect();
        let data = decode::<Map<String, Value>>(token, &DecodingKey::from_secret(&self.secret), &v)
            .ok()?;
        let claims = data.claims;
        let s = |k: &str| -> Option<String> {
            match claims.get(k)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        if let Some(org) = s("urn:altinn:org") {
            let scopes = s("urn:altinn:scope")
                .or_else(|| s("scope"))
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            return Some(Principal::Org {
                org,
                scopes,
                claims,
            });
        }
        let user_id = s("urn:altinn:userid")?.parse().ok()?;
        let party_id = s("urn:altinn:partyid")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Some(Principal::User {
            user_id,
            party_id,
            claims,
        })
    }
}
