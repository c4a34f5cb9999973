//! The emulator against what the real platform does (app-lib-dotnet and altinn-storage):
//! defaults and dialects, the query as a change feed, targeted faults, and the test-only
//! "act as someone else" routes.

use altinnfs::emulator::{Emulator, EmulatorConfig, FaultConfig};
use reqwest::{Client, Response};
use serde_json::Value;

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
    T {
        emu: Emulator::start(cfg).await.unwrap(),
        _dir: dir,
        c: Client::new(),
    }
}

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\n%%EOF\n";

impl T {
    fn org(&self) -> String {
        self.emu.org_token("ttd")
    }
    async fn json(r: Response, status: u16) -> Value {
        let got = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(got, status, "{body}");
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }
    /// `instances?appId=ttd/altinnfs-demo&<extra>` as the org: (instances, next).
    async fn query(&self, extra: &str) -> (Vec<Value>, Option<String>) {
        let url = format!(
            "{}/storage/api/v1/instances?appId=ttd/altinnfs-demo&{extra}",
            self.emu.base_url()
        );
        self.query_url(&url).await
    }
    async fn query_url(&self, url: &str) -> (Vec<Value>, Option<String>) {
        let r = self
            .c
            .get(url)
            .bearer_auth(self.org())
            .send()
            .await
            .unwrap();
        let v = T::json(r, 200).await;
        let next = v["next"].as_str().map(str::to_string);
        (v["instances"].as_array().unwrap().clone(), next)
    }
    /// Follow `next` to the end.
    async fn query_all(&self, extra: &str) -> Vec<Value> {
        let (mut all, mut next) = self.query(extra).await;
        while let Some(url) = next {
            let (page, n) = self.query_url(&url).await;
            all.extend(page);
            next = n;
        }
        all
    }
    async fn create(&self, tok: &str, party: &str) -> Value {
        let url = format!(
            "{}/instances?instanceOwnerPartyId={party}",
            self.emu.app_url()
        );
        T::json(self.c.post(url).bearer_auth(tok).send().await.unwrap(), 201).await
    }
    fn inst_url(&self, i: &Value) -> String {
        format!(
            "{}/instances/{}",
            self.emu.app_url(),
            i["id"].as_str().unwrap()
        )
    }
    async fn upload(&self, i: &Value, tok: &str, name: &str) -> Value {
        let r = self
            .c
            .post(format!("{}/data/attachment", self.inst_url(i)))
            .bearer_auth(tok)
            .header("Content-Type", "application/pdf")
            .header(
                "Content-Disposition",
                format!("attachment; filename=\"{name}\""),
            )
            .body(PDF.to_vec())
            .send()
            .await
            .unwrap();
        T::json(r, 200).await
    }
    async fn storage_instance(&self, id: &str) -> Value {
        let url = format!("{}/storage/api/v1/instances/{id}", self.emu.base_url());
        T::json(
            self.c
                .get(url)
                .bearer_auth(self.org())
                .send()
                .await
                .unwrap(),
            200,
        )
        .await
    }
    async fn act(&self, method: reqwest::Method, path: &str) -> Response {
        let url = format!("{}/_emulator/act/{path}", self.emu.base_url());
        self.c.request(method, url).send().await.unwrap()
    }
}

fn last_changed(i: &Value) -> String {
    i["lastChanged"].as_str().unwrap().to_string()
}

fn ids(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_new_instance_is_visible_from_its_creation() {
    let t = start(1).await;
    let i = t.create(&t.emu.user_token(1001), "510001").await;
    assert_eq!(i["visibleAfter"], i["created"]);
    assert!(i["visibleAfter"].is_string());
}

#[tokio::test]
async fn what_the_owner_writes_is_unread_and_what_the_user_writes_is_read() {
    let t = start(1).await;
    let by_org = t.create(&t.org(), "510001").await;
    assert_eq!(by_org["data"][0]["dataType"], "model");
    assert_eq!(
        by_org["data"][0]["isRead"], false,
        "the first form, by the org"
    );
    let r = t.upload(&by_org, &t.org(), "til-deg.pdf").await;
    let new_id = r["newDataElementId"].as_str().unwrap();
    let el = r["instance"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == new_id)
        .unwrap()
        .clone();
    assert_eq!(el["isRead"], false, "an attachment POSTed by the org");
    // A PUT by the org makes the user's element unread again.
    let user = t.emu.user_token(1001);
    let by_user = t.create(&user, "510001").await;
    assert_eq!(by_user["data"][0]["isRead"], true);
    let r = t.upload(&by_user, &user, "fra-meg.pdf").await;
    let id = r["newDataElementId"].as_str().unwrap().to_string();
    let el = &r["instance"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(el["isRead"], true, "the user's own upload");
    let put =
        t.c.put(format!("{}/data/{id}", t.inst_url(&by_user)))
            .bearer_auth(t.org())
            .header("Content-Type", "application/pdf")
            .header(
                "Content-Disposition",
                "attachment; filename=\"fra-meg.pdf\"",
            )
            .body(PDF.to_vec())
            .send()
            .await
            .unwrap();
    assert_eq!(T::json(put, 201).await["isRead"], false, "PUT by the org");
}

#[tokio::test]
async fn the_app_dialect_writes_every_member_with_null() {
    let t = start(1).await;
    let i = t.create(&t.emu.user_token(1001), "510001").await;
    for k in [
        "dueBefore",
        "presentationTexts",
        "dataValues",
        "selfLinks",
        "completeConfirmations",
    ] {
        assert!(i.get(k).is_some(), "instance.{k} missing: {i}");
    }
    let p = &i["process"];
    assert!(p.get("ended").is_some_and(Value::is_null), "{p}");
    assert!(p.get("endEvent").is_some_and(Value::is_null), "{p}");
    assert!(
        p["currentTask"].get("ended").is_some_and(Value::is_null),
        "{p}"
    );
    assert!(p["currentTask"].get("validated").is_some());
    for k in [
        "contentHash",
        "refs",
        "deleteStatus",
        "references",
        "metadata",
    ] {
        assert!(i["data"][0].get(k).is_some_and(Value::is_null), "data.{k}");
    }
    let r =
        t.c.get(format!("{}/process", t.inst_url(&i)))
            .bearer_auth(t.emu.user_token(1001))
            .send()
            .await
            .unwrap();
    let proc = T::json(r, 200).await;
    assert!(proc.get("ended").is_some_and(Value::is_null), "{proc}");
    // Storage keeps omitting nulls.
    let st = t.storage_instance(i["id"].as_str().unwrap()).await;
    assert!(st.get("dueBefore").is_none() && st["process"].get("ended").is_none());
}

fn when(i: &Value) -> chrono::DateTime<chrono::Utc> {
    last_changed(i).parse().unwrap()
}

#[tokio::test]
async fn last_changed_filters_and_order_behave_as_storage() {
    let t = start(60).await;
    let all = t.query_all("size=7&order=asc:lastChanged").await;
    assert_eq!(all.len(), 60);
    let stamps: Vec<_> = all.iter().map(when).collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "ascending, across pages"
    );
    let desc = t.query_all("size=7&order=desc:lastChanged").await;
    let mut rev = ids(&all);
    rev.reverse();
    assert_eq!(
        ids(&desc),
        rev,
        "descending is the exact reverse, token and all"
    );
    // gt / gte / lt / lte / eq and a combined range, against the stamps themselves.
    let (mid, lo, hi) = (&all[30], &all[10], &all[20]);
    let count =
        |f: &dyn Fn(&chrono::DateTime<chrono::Utc>) -> bool| stamps.iter().filter(|s| f(s)).count();
    let m = when(mid);
    let cases: Vec<(String, usize)> = vec![
        (
            format!("lastChanged=gt:{}", last_changed(mid)),
            count(&|s| *s > m),
        ),
        (
            format!("lastChanged=gte:{}", last_changed(mid)),
            count(&|s| *s >= m),
        ),
        (
            format!("lastChanged=lt:{}", last_changed(mid)),
            count(&|s| *s < m),
        ),
        (
            format!("lastChanged=lte:{}", last_changed(mid)),
            count(&|s| *s <= m),
        ),
        (
            format!("lastChanged=eq:{}", last_changed(mid)),
            count(&|s| *s == m),
        ),
        (
            format!(
                "lastChanged=gt:{}&lastChanged=lte:{}",
                last_changed(lo),
                last_changed(hi)
            ),
            count(&|s| *s > when(lo) && *s <= when(hi)),
        ),
    ];
    for (filter, want) in cases {
        let got = t.query_all(&format!("size=1000&{filter}")).await;
        assert_eq!(got.len(), want, "{filter}");
    }
    assert!(count(&|s| *s > m) >= 20 && count(&|s| *s == m) >= 1);
}

#[tokio::test]
async fn an_invalid_date_expression_is_400() {
    let t = start(1).await;
    let url = format!(
        "{}/storage/api/v1/instances?appId=ttd/altinnfs-demo&lastChanged=gt:soon",
        t.emu.base_url()
    );
    let r = t.c.get(url).bearer_auth(t.org()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.text().await.unwrap(), "Invalid date expression");
}

/// The feed query of SPEC §7.2 after `cursor` must return exactly `id`; the new cursor.
async fn only_changed(t: &T, cursor: &str, id: &str, label: &str) -> String {
    let feed = t
        .query_all(&format!("lastChanged=gt:{cursor}&order=asc:lastChanged"))
        .await;
    assert_eq!(ids(&feed), vec![id.to_string()], "after {label}");
    last_changed(&feed[0])
}

#[tokio::test]
async fn every_change_bumps_last_changed_and_the_cursor_sees_it() {
    let t = start(20).await;
    let user = t.emu.user_token(1001);
    let i = t.create(&user, "510001").await;
    let id = i["id"].as_str().unwrap();
    let mut cursor = last_changed(&i);
    let up = t.upload(&i, &user, "a.pdf").await;
    cursor = only_changed(&t, &cursor, id, "upload").await;
    let d = up["newDataElementId"].as_str().unwrap();
    let r =
        t.c.delete(format!("{}/data/{d}", t.inst_url(&i)))
            .bearer_auth(&user)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    cursor = only_changed(&t, &cursor, id, "delete").await;
    for step in ["process next", "process end"] {
        let r =
            t.c.put(format!("{}/process/next", t.inst_url(&i)))
                .bearer_auth(&user)
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 200, "{step}");
        cursor = only_changed(&t, &cursor, id, step).await;
    }
    let r =
        t.c.post(format!("{}/complete", t.inst_url(&i)))
            .bearer_auth(t.org())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    cursor = only_changed(&t, &cursor, id, "complete").await;
    // Nothing changed: the feed is empty.
    let feed = t.query_all(&format!("lastChanged=gt:{cursor}")).await;
    assert!(feed.is_empty());
}

#[tokio::test]
async fn the_inbox_query_finds_ended_unconfirmed_instances_in_the_sample() {
    let t = start(60).await;
    let inbox = t
        .query_all("process.isComplete=true&excludeConfirmedBy=ttd&order=asc:lastChanged&size=2")
        .await;
    assert!(
        inbox.len() >= 3,
        "the sample has ended, unconfirmed instances"
    );
    for i in &inbox {
        assert!(i["process"]["ended"].is_string());
        assert!(i
            .get("completeConfirmations")
            .is_none_or(|c| c.as_array().unwrap().is_empty()));
    }
    let confirmed = t
        .query_all("process.isComplete=true&confirmed=true&size=1000")
        .await;
    assert!(!confirmed.is_empty());
    let ended = t.query_all("process.isComplete=true&size=1000").await;
    assert_eq!(ended.len(), inbox.len() + confirmed.len());
    let open = t.query_all("process.isComplete=false&size=1000").await;
    assert_eq!(open.len() + ended.len(), 60);
    // Confirming takes one out of the inbox.
    let first = &inbox[0];
    let r =
        t.c.post(format!("{}/complete", t.inst_url(first)))
            .bearer_auth(t.org())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let again = t
        .query_all("process.isComplete=true&excludeConfirmedBy=ttd&size=1000")
        .await;
    assert_eq!(again.len(), inbox.len() - 1);
    assert!(!ids(&again).contains(&first["id"].as_str().unwrap().to_string()));
}

#[tokio::test]
async fn a_query_page_can_time_out_as_storage_does_and_be_slow() {
    let t = start(30).await;
    t.emu.set_faults(FaultConfig {
        query_timeout_rate: 1.0,
        query_timeout_min_size: 20,
        ..Default::default()
    });
    let url = |size: usize| {
        format!(
            "{}/storage/api/v1/instances?appId=ttd/altinnfs-demo&size={size}",
            t.emu.base_url()
        )
    };
    let r = t.c.get(url(50)).bearer_auth(t.org()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Exception while reading from stream"));
    // A smaller page of the same listing passes.
    let all = t.query_all("size=10").await;
    assert_eq!(all.len(), 30);
    t.emu.set_faults(FaultConfig {
        query_delay_ms: 300,
        ..Default::default()
    });
    let t0 = std::time::Instant::now();
    let (page, _) = t.query("size=10").await;
    assert_eq!(page.len(), 10);
    assert!(t0.elapsed() >= std::time::Duration::from_millis(300));
    // Other requests are not slowed.
    let t0 = std::time::Instant::now();
    t.storage_instance(all[0]["id"].as_str().unwrap()).await;
    assert!(t0.elapsed() < std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn a_refused_complete_confirms_nothing() {
    let t = start(20).await;
    let (inbox, _) = t
        .query("process.isComplete=true&excludeConfirmedBy=ttd")
        .await;
    let i = &inbox[0];
    for status in [409u16, 503] {
        t.emu.set_faults(FaultConfig {
            complete_status: Some(status),
            ..Default::default()
        });
        let r =
            t.c.post(format!("{}/complete", t.inst_url(i)))
                .bearer_auth(t.org())
                .send()
                .await
                .unwrap();
        assert_eq!(r.status().as_u16(), status);
    }
    let after = t.storage_instance(i["id"].as_str().unwrap()).await;
    assert_eq!(after["lastChanged"], i["lastChanged"]);
    assert!(after
        .get("completeConfirmations")
        .is_none_or(|c| c.as_array().unwrap().is_empty()));
    t.emu.set_faults(FaultConfig::default());
    let r =
        t.c.post(format!("{}/complete", t.inst_url(i)))
            .bearer_auth(t.org())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn someone_else_submits_adds_deletes_and_confirms() {
    let t = start(5).await;
    let (newest, _) = t.query("order=desc:lastChanged&size=1").await;
    let cursor = last_changed(&newest[0]);
    t.emu.reset_stats();
    let r = t
        .act(reqwest::Method::POST, "submit?party=510002&attachments=2")
        .await;
    let sub = T::json(r, 201).await;
    let id = sub["id"].as_str().unwrap().to_string();
    assert!(sub["process"]["ended"].is_string());
    let types: Vec<&str> = sub["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["dataType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["model", "attachment", "attachment"]);
    let inbox = t
        .query_all(&format!(
            "lastChanged=gt:{cursor}&process.isComplete=true&excludeConfirmedBy=ttd&order=asc:lastChanged"
        ))
        .await;
    assert_eq!(ids(&inbox), vec![id.clone()]);
    // The bytes are there.
    let e = &sub["data"][1];
    let blob =
        t.c.get(format!(
            "{}/storage/api/v1/instances/{id}/data/{}",
            t.emu.base_url(),
            e["id"].as_str().unwrap()
        ))
        .bearer_auth(t.org())
        .send()
        .await
        .unwrap();
    assert_eq!(
        blob.bytes().await.unwrap().len() as i64,
        e["size"].as_i64().unwrap()
    );
    // Add, delete, confirm: each bumps lastChanged.
    let mut last = last_changed(&sub);
    let r =
        t.c.post(format!(
            "{}/_emulator/act/instances/{id}/data?dataType=other&filename=notat.txt",
            t.emu.base_url()
        ))
        .header("Content-Type", "text/plain")
        .body("hei")
        .send()
        .await
        .unwrap();
    let added = T::json(r, 201).await;
    assert_eq!(added["filename"], "notat.txt");
    let now = t.storage_instance(&id).await;
    assert!(last_changed(&now) > last);
    last = last_changed(&now);
    let r = t
        .act(
            reqwest::Method::DELETE,
            &format!("instances/{id}/data/{}", added["id"].as_str().unwrap()),
        )
        .await;
    let now = T::json(r, 200).await;
    assert_eq!(now["data"].as_array().unwrap().len(), 3);
    assert!(last_changed(&now) > last);
    last = last_changed(&now);
    let r = t
        .act(reqwest::Method::POST, &format!("instances/{id}/confirm"))
        .await;
    let now = T::json(r, 200).await;
    assert_eq!(now["completeConfirmations"][0]["stakeholderId"], "ttd");
    assert!(last_changed(&now) > last);
    let inbox = t
        .query_all("process.isComplete=true&excludeConfirmedBy=ttd&size=1000")
        .await;
    assert!(!ids(&inbox).contains(&id));
    // None of it counts as the client's traffic; errors are plain.
    assert_eq!(
        t.emu
            .stats()
            .per_path
            .keys()
            .filter(|k| k.contains("_emulator"))
            .count(),
        0
    );
    assert_eq!(t.act(reqwest::Method::POST, "submit").await.status(), 400);
    let missing = "instances/510002/00000000-0000-4000-8000-000000000000/confirm";
    assert_eq!(t.act(reqwest::Method::POST, missing).await.status(), 404);
}

#[tokio::test]
async fn the_act_api_works_in_process_too() {
    let t = start(3).await;
    let file = altinnfs::emulator::service::act::NewFile {
        data_type: "attachment".into(),
        filename: Some("svar.pdf".into()),
        content_type: "application/pdf".into(),
        bytes: PDF.to_vec(),
    };
    let inst = t
        .emu
        .act_submit(510001, std::slice::from_ref(&file))
        .await
        .unwrap();
    let guid = inst.guid().to_string();
    let e = t.emu.act_add_element(&guid, &file).await.unwrap();
    let after_add = t.emu.store().get(&guid).unwrap();
    assert_eq!(after_add.data.len(), 3);
    assert!(after_add.last_changed > inst.last_changed);
    let after_delete = t.emu.act_delete_element(&guid, &e.id).await.unwrap();
    assert_eq!(after_delete.data.len(), 2);
    let confirmed = t.emu.act_confirm(&guid, "ttd").await.unwrap();
    assert_eq!(confirmed.complete_confirmations.len(), 1);
    let seen = t.storage_instance(&inst.id).await;
    assert_eq!(seen["completeConfirmations"][0]["stakeholderId"], "ttd");
}
