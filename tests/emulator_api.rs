//! The emulator against reqwest: status-code rules, paging, filters, persistence, tokens,
//! stateless data, process, faults.

use altinnfs::emulator::{Emulator, EmulatorConfig, FaultConfig};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;

struct T {
    emu: Emulator,
    _dir: tempfile::TempDir,
    c: Client,
}

async fn start(n: usize) -> T {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmulatorConfig::new(dir.path().to_path_buf());
    cfg.sample = true;
    cfg.sample_instances = n;
    let emu = Emulator::start(cfg).await.unwrap();
    T {
        emu,
        _dir: dir,
        c: Client::new(),
    }
}

impl T {
    fn org(&self) -> String {
        self.emu.org_token("ttd")
    }
    async fn get(&self, url: &str, tok: &str) -> Response {
        self.c.get(url).bearer_auth(tok).send().await.unwrap()
    }
    /// All sample instances (Storage dialect) as the org sees them.
    async fn all(&self) -> Vec<Value> {
        let r = self
            .get(
                &format!(
                    "{}/storage/api/v1/instances?appId=ttd/altinnfs-demo&size=10000",
                    self.emu.base_url()
                ),
                &self.org(),
            )
            .await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["instances"].as_array().unwrap().clone()
    }
    async fn find(&self, f: impl Fn(&Value) -> bool) -> Value {
        self.all()
            .await
            .into_iter()
            .find(|i| f(i))
            .expect("no matching sample instance")
    }
    fn inst_url(&self, i: &Value) -> String {
        format!(
            "{}/instances/{}",
            self.emu.app_url(),
            i["id"].as_str().unwrap()
        )
    }
    fn party_tok(&self, i: &Value) -> String {
        self.emu
            .party_token(i["instanceOwner"]["partyId"].as_str().unwrap())
    }
    async fn upload(
        &self,
        i: &Value,
        dt: &str,
        ct: &str,
        cd: Option<&str>,
        body: Vec<u8>,
    ) -> Response {
        let mut rb = self
            .c
            .post(format!("{}/data/{dt}", self.inst_url(i)))
            .bearer_auth(self.party_tok(i))
            .header("Content-Type", ct)
            .body(body);
        if let Some(cd) = cd {
            rb = rb.header("Content-Disposition", cd);
        }
        rb.send().await.unwrap()
    }
}

fn active(i: &Value) -> bool {
    i["status"]["isArchived"] != json!(true) && i["process"]["currentTask"]["elementId"] == "Task_1"
}

async fn issue_code(r: Response) -> String {
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    v["uploadValidationIssues"][0]["code"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn no_token_is_401_empty() {
    let t = start(12).await;
    let i = t.find(|_| true).await;
    let r = t.c.get(t.inst_url(&i)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.bytes().await.unwrap().is_empty());
    let r =
        t.c.get(format!(
            "{}/storage/api/v1/instances?appId=ttd/altinnfs-demo",
            t.emu.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r =
        t.c.get(t.inst_url(&i))
            .bearer_auth("garbage")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
}

fn expired_token(t: &T) -> String {
    let secret = std::fs::read(t.emu.data_dir().join("emulator-secret")).unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"urn:altinn:userid": "12345", "urn:altinn:partyid": "512345",
        "urn:altinn:authlevel": "2", "iat": now - 120, "nbf": now - 120, "exp": now - 60});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap()
}

#[tokio::test]
async fn expired_token_is_401_and_refresh_works() {
    let t = start(12).await;
    let i = t.find(|i| i["instanceOwner"]["partyId"] == "512345").await;
    let exp = expired_token(&t);
    assert_eq!(t.get(&t.inst_url(&i), &exp).await.status(), 401);
    let refresh = format!("{}/authentication/api/v1/refresh", t.emu.base_url());
    assert_eq!(t.get(&refresh, &exp).await.status(), 401);
    let good = t.emu.user_token(12345);
    let r = t.get(&refresh, &good).await;
    assert_eq!(r.status(), 200);
    let fresh = r.text().await.unwrap();
    assert_eq!(t.get(&t.inst_url(&i), &fresh).await.status(), 200);
    // Token endpoints as localtest has them.
    let r =
        t.c.get(format!("{}/Home/GetTestUserToken/1337", t.emu.base_url()))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let r =
        t.c.get(format!("{}/Home/GetTestUserToken/999999", t.emu.base_url()))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 404);
    // token_expiry_secs: 0 s + 10 s skew still valid now; the claim says so.
    t.emu.set_faults(FaultConfig {
        token_expiry_secs: Some(0),
        ..Default::default()
    });
    let short = t.emu.user_token(12345);
    let payload = short.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["exp"], claims["iat"]);
    assert_eq!(claims["urn:altinn:userid"], "12345");
}

#[tokio::test]
async fn other_party_is_403() {
    let t = start(12).await;
    let i = t.find(|i| i["instanceOwner"]["partyId"] == "500600").await;
    let tok = t.emu.user_token(12345);
    assert_eq!(t.get(&t.inst_url(&i), &tok).await.status(), 403);
    let storage = format!(
        "{}/storage/api/v1/instances/{}",
        t.emu.base_url(),
        i["id"].as_str().unwrap()
    );
    assert_eq!(t.get(&storage, &tok).await.status(), 403);
    let q = format!(
        "{}/storage/api/v1/instances?appId=ttd/altinnfs-demo&instanceOwner.partyId=500600",
        t.emu.base_url()
    );
    assert_eq!(t.get(&q, &tok).await.status(), 403);
    // 1337 represents 500600.
    assert_eq!(
        t.get(&t.inst_url(&i), &t.emu.user_token(1337))
            .await
            .status(),
        200
    );
    // Org token of another org.
    assert_eq!(
        t.get(&t.inst_url(&i), &t.emu.org_token("skd"))
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn unknown_instance_is_404() {
    let t = start(12).await;
    let tok = t.emu.user_token(12345);
    let url = format!(
        "{}/instances/512345/00000000-0000-4000-8000-000000000000",
        t.emu.app_url()
    );
    let r = t.get(&url, &tok).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["title"], "Instance Not Found");
    let url = format!(
        "{}/storage/api/v1/instances/512345/00000000-0000-4000-8000-000000000000",
        t.emu.base_url()
    );
    assert_eq!(t.get(&url, &tok).await.status(), 404);
}

#[tokio::test]
async fn unknown_data_type_is_400() {
    let t = start(12).await;
    let i = t.find(active).await;
    let r = t
        .upload(
            &i,
            "nope",
            "application/pdf",
            Some("attachment; filename=\"a.pdf\""),
            b"%PDF".to_vec(),
        )
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["title"], "Data Type Not Found");
}

/// An upload the rules refuse, and the issue code Altinn gives for it.
struct Refused<'a> {
    why: &'a str,
    content_type: &'a str,
    disposition: Option<&'a str>,
    body: &'a [u8],
    code: &'a str,
}

#[tokio::test]
async fn upload_rules_give_400_codes() {
    let t = start(12).await;
    let i = t.find(active).await;
    let pdf = b"%PDF-1.4 hello".to_vec();
    let big = vec![b'x'; 25 * 1024 * 1024 + 1];
    let cases = [
        Refused {
            why: "disallowed type",
            content_type: "text/plain",
            disposition: Some("attachment; filename=\"a.txt\""),
            body: b"hi",
            code: "ContentTypeNotAllowed",
        },
        Refused {
            why: "no Content-Disposition",
            content_type: "application/pdf",
            disposition: None,
            body: &pdf,
            code: "ContentTypeNotAllowed",
        },
        Refused {
            why: "unquoted name with spaces",
            content_type: "application/pdf",
            disposition: Some("attachment; filename=Test Doc 2025.pdf"),
            body: &pdf,
            code: "MissingFileName",
        },
        Refused {
            why: "no extension",
            content_type: "application/pdf",
            disposition: Some("attachment; filename=\"noext\""),
            body: &pdf,
            code: "InvalidFileNameFormat",
        },
        Refused {
            why: "header disagrees with the extension",
            content_type: "image/png",
            disposition: Some("attachment; filename=\"a.pdf\""),
            body: &pdf,
            code: "InvalidFileNameFormat",
        },
        Refused {
            why: "too large (maxSize 25 MiB)",
            content_type: "application/pdf",
            disposition: Some("attachment; filename=\"big.pdf\""),
            body: &big,
            code: "DataElementTooLarge",
        },
    ];
    for c in cases {
        let r = t
            .upload(
                &i,
                "attachment",
                c.content_type,
                c.disposition,
                c.body.to_vec(),
            )
            .await;
        assert_eq!(issue_code(r).await, c.code, "{}", c.why);
    }
    // Zero bytes.
    let r = t
        .upload(
            &i,
            "attachment",
            "application/pdf",
            Some("attachment; filename=\"z.pdf\""),
            vec![],
        )
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["title"], "Invalid data");
    // Obsolete endpoint answers 400 as text.
    let r =
        t.c.post(format!("{}/data?dataType=attachment", t.inst_url(&i)))
            .bearer_auth(t.party_tok(&i))
            .header("Content-Type", "application/pdf")
            .header("Content-Disposition", "attachment; filename=\"z.pdf\"")
            .body(Vec::<u8>::new())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(r.text().await.unwrap().contains("zero bytes"));
    // Nothing was stored.
    let after = t.find(|x| x["id"] == i["id"]).await;
    assert_eq!(
        after["data"].as_array().unwrap().len(),
        i["data"].as_array().unwrap().len()
    );
}

#[tokio::test]
async fn upload_download_round_trip_and_filename_decoding() {
    let t = start(12).await;
    let i = t
        .find(|i| active(i) && i["data"].as_array().unwrap().len() <= 3)
        .await;
    let body = b"%PDF-1.4 round trip".to_vec();
    let r = t
        .upload(
            &i,
            "attachment",
            "application/pdf",
            Some("attachment; filename=\"a+b%41.pdf\""),
            body.clone(),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let id = v["newDataElementId"].as_str().unwrap().to_string();
    let el = v["instance"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(el["filename"], "a bA.pdf");
    assert!(v["instance"]["status"]["readStatus"].as_i64().is_some());
    let url = format!(
        "{}/storage/api/v1/instances/{}/data/{id}",
        t.emu.base_url(),
        i["id"].as_str().unwrap()
    );
    let r = t.get(&url, &t.org()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert!(r.headers().get("accept-ranges").is_none());
    assert!(r.headers().get("etag").is_none());
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("a bA.pdf"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());
    let s = t.emu.stats();
    assert_eq!(s.blob_downloads, 1);
    assert!(s.app_posts >= 1);
}

#[tokio::test]
async fn max_count_is_409() {
    let t = start(12).await;
    let i = t.find(active).await;
    let r =
        t.c.post(format!("{}/data/model", t.inst_url(&i)))
            .bearer_auth(t.party_tok(&i))
            .header("Content-Type", "application/xml")
            .body("<Model><a>1</a></Model>")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["title"], "Max Count Exceeded");
}

#[tokio::test]
async fn locked_put_is_409_and_leaves_data() {
    let t = start(12).await;
    let i = t
        .find(|i| {
            i["status"]["isArchived"] != json!(true)
                && i["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["locked"] == json!(true) && e["dataType"] == "attachment")
        })
        .await;
    let e = i["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["locked"] == json!(true) && e["dataType"] == "attachment")
        .unwrap()
        .clone();
    let url = format!("{}/data/{}", t.inst_url(&i), e["id"].as_str().unwrap());
    let ct = e["contentType"].as_str().unwrap();
    let ext = match ct {
        "application/pdf" => "pdf",
        "image/png" => "png",
        _ => "jpg",
    };
    let r =
        t.c.put(&url)
            .bearer_auth(t.party_tok(&i))
            .header("Content-Type", ct)
            .header(
                "Content-Disposition",
                format!("attachment; filename=\"new.{ext}\""),
            )
            .body("new bytes")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 409);
    let r = t.get(&url, &t.party_tok(&i)).await;
    assert_eq!(
        r.bytes().await.unwrap().len() as i64,
        e["size"].as_i64().unwrap()
    );
}

#[tokio::test]
async fn refused_put_leaves_stored_data_unchanged() {
    let t = start(12).await;
    let i = t
        .find(|i| {
            active(i)
                && i["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["dataType"] == "attachment")
        })
        .await;
    let e = i["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["dataType"] == "attachment")
        .unwrap()
        .clone();
    let url = format!("{}/data/{}", t.inst_url(&i), e["id"].as_str().unwrap());
    let before = t.get(&url, &t.party_tok(&i)).await.bytes().await.unwrap();
    let r =
        t.c.put(&url)
            .bearer_auth(t.party_tok(&i))
            .header("Content-Type", "text/plain")
            .header("Content-Disposition", "attachment; filename=\"x.txt\"")
            .body("replacement")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    // Empty PUT → 422, nothing changed.
    let r =
        t.c.put(&url)
            .bearer_auth(t.party_tok(&i))
            .header("Content-Type", e["contentType"].as_str().unwrap())
            .header("Content-Disposition", "attachment; filename=\"x.pdf\"")
            .body(Vec::<u8>::new())
            .send()
            .await
            .unwrap();
    assert!(r.status() == 422 || r.status() == 400, "{}", r.status());
    let after = t.get(&url, &t.party_tok(&i)).await.bytes().await.unwrap();
    assert_eq!(before, after);
    let again = t.find(|x| x["id"] == i["id"]).await;
    let e2 = again["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == e["id"])
        .unwrap();
    assert_eq!(e2["filename"], e["filename"]);
    assert_eq!(e2["lastChanged"], e["lastChanged"]);
    // A good PUT replaces the bytes and keeps the dataType.
    let r =
        t.c.put(&url)
            .bearer_auth(t.party_tok(&i))
            .header("Content-Type", "application/pdf")
            .header("Content-Disposition", "attachment; filename=\"ny.pdf\"")
            .body("%PDF new")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["dataType"], "attachment");
    assert_eq!(v["filename"], "ny.pdf");
    assert_eq!(
        t.get(&url, &t.party_tok(&i))
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"%PDF new"
    );
}

#[tokio::test]
async fn main_form_delete_is_400_and_attachment_delete_200() {
    let t = start(12).await;
    let i = t
        .find(|i| {
            active(i)
                && i["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["dataType"] == "attachment")
        })
        .await;
    let model = i["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["dataType"] == "model")
        .unwrap();
    let r =
        t.c.delete(format!(
            "{}/data/{}",
            t.inst_url(&i),
            model["id"].as_str().unwrap()
        ))
        .bearer_auth(t.party_tok(&i))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["title"], "Cannot Delete main data element");
    let att = i["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["dataType"] == "attachment")
        .unwrap();
    let r =
        t.c.delete(format!(
            "{}/data/{}",
            t.inst_url(&i),
            att["id"].as_str().unwrap()
        ))
        .bearer_auth(t.party_tok(&i))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["instance"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["id"] != att["id"]));
    assert_eq!(v["validationIssues"], json!([]));
}

#[tokio::test]
async fn form_data_rules() {
    let t = start(12).await;
    let i = t.find(active).await;
    let model = i["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["dataType"] == "model")
        .unwrap();
    let url = format!("{}/data/{}", t.inst_url(&i), model["id"].as_str().unwrap());
    let tok = t.party_tok(&i);
    // 415 for text/plain.
    let r =
        t.c.put(&url)
            .bearer_auth(&tok)
            .header("Content-Type", "text/plain")
            .body("<Model/>")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 415);
    // 400 on malformed XML / JSON.
    let r =
        t.c.put(&url)
            .bearer_auth(&tok)
            .header("Content-Type", "application/xml")
            .body("<Model><a>")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    let r =
        t.c.put(&url)
            .bearer_auth(&tok)
            .header("Content-Type", "application/json")
            .body("{bad")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    // JSON PUT, then GET as JSON and as XML.
    let r =
        t.c.put(&url)
            .bearer_auth(&tok)
            .header("Content-Type", "application/json")
            .body(r#"{"a":"7","b":"8","navn":"Test"}"#)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = t.get(&url, &tok).await.json().await.unwrap();
    assert_eq!(v["a"], "7");
    let r =
        t.c.get(&url)
            .bearer_auth(&tok)
            .header("Accept", "application/xml")
            .send()
            .await
            .unwrap();
    let x = r.text().await.unwrap();
    assert!(x.contains("<a>7</a>"), "{x}");
}

#[tokio::test]
async fn archived_instance_is_409() {
    let t = start(12).await;
    let i = t.find(|i| i["status"]["isArchived"] == json!(true)).await;
    let r = t
        .upload(
            &i,
            "attachment",
            "application/pdf",
            Some("attachment; filename=\"a.pdf\""),
            b"%PDF".to_vec(),
        )
        .await;
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["title"], "Instance Not Active");
}

#[tokio::test]
async fn paging_260_instances() {
    let t = start(260).await;
    let mut url = format!(
        "{}/storage/api/v1/instances?appId=ttd/altinnfs-demo&size=100",
        t.emu.base_url()
    );
    let mut ids = HashSet::new();
    let mut pages = vec![];
    let mut last_changed: Vec<String> = vec![];
    loop {
        let r = t.get(&url, &t.org()).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let inst = v["instances"].as_array().unwrap();
        assert_eq!(v["count"].as_u64().unwrap() as usize, inst.len());
        pages.push(inst.len());
        for i in inst {
            assert!(ids.insert(i["id"].as_str().unwrap().to_string()));
            assert!(!i["data"].as_array().unwrap().is_empty());
            last_changed.push(i["lastChanged"].as_str().unwrap().to_string());
        }
        match v.get("next").and_then(|n| n.as_str()) {
            Some(n) => {
                assert_eq!(inst.len(), 100);
                url = n.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, vec![100, 100, 60]);
    assert_eq!(ids.len(), 260);
    let mut sorted = last_changed.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(sorted, last_changed, "desc:lastChanged order");
    assert_eq!(t.emu.stats().queries, 3);
}

#[tokio::test]
async fn query_rules_and_filters() {
    let t = start(40).await;
    let base = format!("{}/storage/api/v1/instances", t.emu.base_url());
    let all = t.all().await;
    assert_eq!(all.len(), 40);
    // Org token without appId/org → 400; without read scope → 403; user without party → 400.
    assert_eq!(t.get(&base, &t.org()).await.status(), 400);
    let r =
        t.c.get(format!(
            "{}/Home/GetTestOrgToken/ttd?orgNumber=991825827&scopes=altinn:foo",
            t.emu.base_url()
        ))
        .send()
        .await
        .unwrap();
    let noscope = r.text().await.unwrap();
    assert_eq!(
        t.get(&format!("{base}?appId=ttd/altinnfs-demo"), &noscope)
            .await
            .status(),
        403
    );
    assert_eq!(
        t.get(
            &format!("{base}?appId=ttd/altinnfs-demo"),
            &t.emu.user_token(1337)
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        t.get(
            &format!("{base}?appId=ttd/altinnfs-demo&lastChanged=gt:notadate"),
            &t.org()
        )
        .await
        .status(),
        400
    );
    let q = |p: &'static str| {
        let t = &t;
        let base = base.clone();
        async move {
            let r = t
                .get(
                    &format!("{base}?appId=ttd/altinnfs-demo&size=1000&{p}"),
                    &t.org(),
                )
                .await;
            assert_eq!(r.status(), 200, "{p}");
            let v: Value = r.json().await.unwrap();
            v["instances"].as_array().unwrap().clone()
        }
    };
    let complete = q("process.isComplete=true").await;
    let ended = all
        .iter()
        .filter(|i| i["process"]["ended"].is_string())
        .count();
    assert!(ended > 0);
    assert_eq!(complete.len(), ended);
    assert!(complete.iter().all(|i| i["process"]["ended"].is_string()));
    assert_eq!(q("process.isComplete=false").await.len(), 40 - ended);
    let confirmed = all
        .iter()
        .filter(|i| !i["completeConfirmations"].as_array().unwrap().is_empty())
        .count();
    assert!(confirmed > 0);
    assert_eq!(q("excludeConfirmedBy=ttd").await.len(), 40 - confirmed);
    let mut lc: Vec<String> = all
        .iter()
        .map(|i| i["lastChanged"].as_str().unwrap().to_string())
        .collect();
    lc.sort();
    let mid = lc[20].clone();
    let r = t
        .get(
            &format!("{base}?appId=ttd/altinnfs-demo&size=1000&lastChanged=gt:{mid}"),
            &t.org(),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let got = v["instances"].as_array().unwrap();
    assert_eq!(got.len(), lc.iter().filter(|x| **x > mid).count());
    assert!(got
        .iter()
        .all(|i| i["lastChanged"].as_str().unwrap() > mid.as_str()));
    // User query for own party only.
    let r = t
        .get(
            &format!("{base}?appId=ttd/altinnfs-demo&instanceOwner.partyId=512345"),
            &t.emu.user_token(12345),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let mine = v["instances"].as_array().unwrap();
    assert!(!mine.is_empty());
    assert!(mine
        .iter()
        .all(|i| i["instanceOwner"]["partyId"] == "512345"));
    // Storage dialect: string readStatus, no nulls.
    let text = serde_json::to_string(&mine[0]).unwrap();
    assert!(!text.contains("null"));
    assert!(mine[0]["status"]["readStatus"].is_string());
}

#[tokio::test]
async fn restart_keeps_instances_and_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmulatorConfig::new(dir.path().to_path_buf());
    cfg.sample = true;
    cfg.sample_instances = 15;
    let emu = Emulator::start(cfg).await.unwrap();
    let t = T {
        emu,
        _dir: tempfile::tempdir().unwrap(),
        c: Client::new(),
    };
    let i = t.find(active).await;
    let r = t
        .upload(
            &i,
            "attachment",
            "image/png",
            Some("attachment; filename=\"p.png\""),
            b"\x89PNG restart".to_vec(),
        )
        .await;
    assert_eq!(r.status(), 200);
    let before = t.all().await;
    let blob_url = |base: &str, i: &Value| {
        let e = i["data"].as_array().unwrap().last().unwrap();
        format!(
            "{base}/storage/api/v1/instances/{}/data/{}",
            i["id"].as_str().unwrap(),
            e["id"].as_str().unwrap()
        )
    };
    let bytes_before: Vec<Vec<u8>> = {
        let mut v = vec![];
        for i in &before {
            v.push(
                t.get(&blob_url(&t.emu.base_url(), i), &t.org())
                    .await
                    .bytes()
                    .await
                    .unwrap()
                    .to_vec(),
            );
        }
        v
    };
    t.emu.shutdown().await;
    let mut cfg = EmulatorConfig::new(dir.path().to_path_buf());
    cfg.sample = true;
    let emu = Emulator::start(cfg).await.unwrap();
    let t = T {
        emu,
        _dir: tempfile::tempdir().unwrap(),
        c: Client::new(),
    };
    let after = t.all().await;
    assert_eq!(after.len(), 15);
    let strip = |v: &Vec<Value>| -> Vec<Value> {
        v.iter()
            .map(|i| {
                let mut i = i.clone();
                i.as_object_mut().unwrap().remove("selfLinks");
                for d in i["data"].as_array_mut().unwrap() {
                    d.as_object_mut().unwrap().remove("selfLinks");
                }
                i
            })
            .collect()
    };
    assert_eq!(strip(&before), strip(&after));
    for (i, b) in after.iter().zip(bytes_before) {
        let got = t
            .get(&blob_url(&t.emu.base_url(), i), &t.org())
            .await
            .bytes()
            .await
            .unwrap();
        assert_eq!(got.as_ref(), b.as_slice());
    }
    assert!(dir
        .path()
        .join("documentdb/applications/ttd/altinnfs-demo.json")
        .exists());
}

#[tokio::test]
async fn stateless_create_and_calculate() {
    let t = start(3).await;
    let url = format!("{}/v1/data", t.emu.app_url());
    let tok = t.emu.user_token(12345);
    let r = t
        .get(
            &format!("{url}?dataType=model&prefill=%7B%22a%22%3A%222%22%2C%22b%22%3A%223%22%7D"),
            &tok,
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["sum"], "5");
    // POST with an XML body calculates.
    let r =
        t.c.post(format!("{url}?dataType=model"))
            .bearer_auth(&tok)
            .header("Content-Type", "application/xml")
            .body("<Model><a>4</a><b>5</b></Model>")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["sum"], "9");
    assert_eq!(v["calculated"], "true");
    // Empty POST creates (the seed's form); POST calculates, XML out; PUT is 405 as in
    // app-lib, which has no PUT on the stateless controller.
    let r =
        t.c.post(format!("{url}?dataType=model"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let r =
        t.c.post(format!("{url}?dataType=model"))
            .bearer_auth(&tok)
            .header("Content-Type", "application/json")
            .header("Accept", "application/xml")
            .body(r#"{"a":"1","b":"1"}"#)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<sum>2</sum>"));
    let r =
        t.c.put(format!("{url}?dataType=model"))
            .bearer_auth(&tok)
            .header("Content-Type", "application/json")
            .body(r#"{"a":"1","b":"1"}"#)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 405);
    // Errors.
    let r =
        t.c.post(format!("{url}?dataType=model"))
            .bearer_auth(&tok)
            .header("Content-Type", "application/json")
            .body("{nope")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("JSON"));
    assert_eq!(
        t.get(&format!("{url}?dataType=attachment"), &tok)
            .await
            .status(),
        400
    );
    let r =
        t.c.get(format!("{url}?dataType=model"))
            .bearer_auth(&tok)
            .header("party", "partyid:500600")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 403);
    let r =
        t.c.get(format!("{url}?dataType=model"))
            .bearer_auth(&tok)
            .header("party", "partyid:1,2")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    let r =
        t.c.get(format!("{url}?dataType=model"))
            .bearer_auth(t.emu.user_token(1337))
            .header("party", "partyid:500600")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        t.c.get(format!("{url}?dataType=model"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn create_instance_process_next_and_lock() {
    let t = start(3).await;
    let tok = t.emu.user_token(12345);
    let r =
        t.c.post(format!(
            "{}/instances?instanceOwnerPartyId=512345",
            t.emu.app_url()
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let inst: Value = r.json().await.unwrap();
    assert_eq!(loc, inst["selfLinks"]["apps"].as_str().unwrap());
    assert_eq!(inst["process"]["currentTask"]["elementId"], "Task_1");
    assert_eq!(inst["status"]["readStatus"], json!(1));
    assert!(inst["status"]["archived"].is_null());
    let model_id = inst["data"][0]["id"].as_str().unwrap().to_string();
    // Outside the token's parties → 403; no party → 400.
    let r =
        t.c.post(format!(
            "{}/instances?instanceOwnerPartyId=500600",
            t.emu.app_url()
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r =
        t.c.post(format!("{}/instances", t.emu.app_url()))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    // next → Task_2, elements of Task_1 locked.
    let r =
        t.c.put(format!("{loc}/process/next"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["currentTask"]["elementId"], "Task_2");
    let r =
        t.c.put(format!("{loc}/data/{model_id}"))
            .bearer_auth(&tok)
            .header("Content-Type", "application/xml")
            .body("<Model><a>1</a></Model>")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 409);
    let r =
        t.c.put(format!("{loc}/process/next"))
            .bearer_auth(&tok)
            .json(&json!({"action": "confirm"}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert!(p["ended"].is_string());
    let r =
        t.c.put(format!("{loc}/process/next"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"],
        "Process is ended."
    );
    // Complete by the org, then delete.
    let r =
        t.c.post(format!("{loc}/complete"))
            .bearer_auth(t.org())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["completeConfirmations"][0]["stakeholderId"], "ttd");
    let r =
        t.c.delete(format!("{loc}?hard=true"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"]["isHardDeleted"], json!(true));
    assert_eq!(v["status"]["isSoftDeleted"], json!(true));
}

#[tokio::test]
async fn metadata_and_parties() {
    let t = start(3).await;
    let r =
        t.c.get(format!("{}/api/v1/applicationmetadata", t.emu.app_url()))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["id"], "ttd/altinnfs-demo");
    assert_eq!(m["dataTypes"].as_array().unwrap().len(), 4);
    let r =
        t.c.get(format!(
            "{}/ttd/other/api/v1/applicationmetadata",
            t.emu.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = t
        .get(
            &format!("{}/api/v1/parties", t.emu.app_url()),
            &t.emu.user_token(1337),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let ids: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partyId"].as_i64().unwrap())
        .collect();
    assert!(ids.contains(&501337) && ids.contains(&500000) && ids.contains(&500600));
    assert!(v[0]["partyTypeName"].is_number());
}

#[tokio::test]
async fn faults_error_rate_one() {
    let t = start(3).await;
    t.emu.set_faults(FaultConfig {
        error_rate: 1.0,
        retry_after_secs: 2,
        ..Default::default()
    });
    let url = format!(
        "{}/storage/api/v1/instances?appId=ttd/altinnfs-demo",
        t.emu.base_url()
    );
    let mut seen = HashSet::new();
    for _ in 0..30 {
        let r = t.get(&url, &t.org()).await;
        let s = r.status().as_u16();
        assert!([500, 503, 429].contains(&s));
        if s != 500 {
            assert_eq!(r.headers()["retry-after"], "2");
        }
        seen.insert(s);
    }
    assert!(seen.len() >= 2);
    // Token and control routes are never faulted.
    let r =
        t.c.get(format!("{}/Home/GetTestUserToken/1337", t.emu.base_url()))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let r =
        t.c.get(format!("{}/_emulator/stats", t.emu.base_url()))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    // Over HTTP: turn faults off again, route filter.
    let r =
        t.c.post(format!("{}/_emulator/faults", t.emu.base_url()))
            .json(&json!({"error_rate": 1.0, "route_filter": "/nothing-matches"}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(t.get(&url, &t.org()).await.status(), 200);
    // Drop: the connection closes without a response.
    t.emu.set_faults(FaultConfig {
        drop_rate: 1.0,
        ..Default::default()
    });
    assert!(t.c.get(&url).bearer_auth(t.org()).send().await.is_err());
    // Truncate: short body under the original Content-Length.
    t.emu.set_faults(FaultConfig::default());
    let i = t
        .find(|i| {
            i["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["size"].as_i64().unwrap() > 1000)
        })
        .await;
    let e = i["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["size"].as_i64().unwrap() > 1000)
        .unwrap();
    let burl = format!(
        "{}/storage/api/v1/instances/{}/data/{}",
        t.emu.base_url(),
        i["id"].as_str().unwrap(),
        e["id"].as_str().unwrap()
    );
    t.emu.set_faults(FaultConfig {
        truncate_rate: 1.0,
        ..Default::default()
    });
    let r = t.get(&burl, &t.org()).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err());
    t.emu.set_faults(FaultConfig::default());
    t.emu.reset_stats();
    assert_eq!(
        t.get(&burl, &t.org()).await.bytes().await.unwrap().len() as i64,
        e["size"].as_i64().unwrap()
    );
    let s = t.emu.stats();
    assert_eq!((s.total, s.blob_downloads), (1, 1));
}
