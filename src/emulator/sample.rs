//! `--sample`: the app `ttd/altinnfs-demo` with deterministic instances over localtest's
//! parties (seeded RNG, so tests can compare bytes).

use super::service::app_model::{calculate, task};
use super::store::Store;
use super::xml;
use crate::altinn::model::*;
use chrono::{Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::io::Write;

pub const SAMPLE_ORG: &str = "ttd";
pub const SAMPLE_APP: &str = "altinnfs-demo";

pub const SAMPLE_PARTIES: &[u32] = &[
    510001, 510002, 512345, 501337, 500000, 500600, 500001, 500700, 510003,
];

pub fn app_metadata() -> ApplicationMetadata {
    serde_json::from_value(json!({
        "id": format!("{SAMPLE_ORG}/{SAMPLE_APP}"),
        "org": SAMPLE_ORG,
        "versionId": "1.0.0",
        "title": {"nb": "altinnfs demo", "en": "altinnfs demo"},
        "processId": "altinnfs-demo-process",
        "dataTypes": [
            {"id": "ref-data-as-pdf", "allowedContentTypes": ["application/pdf"], "maxCount": 0, "minCount": 0,
             "enablePdfCreation": true},
            {"id": "model", "allowedContentTypes": ["application/xml"],
             "appLogic": {"autoCreate": true, "classRef": "Altinn.App.Models.Model", "schemaRef": null},
             "taskId": "Task_1", "maxCount": 1, "minCount": 1, "enablePdfCreation": true},
            {"id": "attachment", "allowedContentTypes": ["application/pdf", "image/png", "image/jpeg"],
             "taskId": "Task_1", "maxSize": 25, "maxCount": 5, "minCount": 0, "enablePdfCreation": false},
            {"id": "other", "allowedContentTypes": [], "taskId": "Task_1", "maxCount": 0, "minCount": 0,
             "enablePdfCreation": false}
        ],
        "partyTypesAllowed": {"bankruptcyEstate": false, "organisation": false, "person": false, "subUnit": false},
        "autoDeleteOnProcessEnd": false,
        "created": "2026-01-01T00:00:00Z",
        "createdBy": "altinnfs",
        "lastChanged": "2026-01-01T00:00:00Z",
        "lastChangedBy": "altinnfs"
    }))
    .expect("sample metadata")
}

fn uuid_from(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.gen())
        .into_uuid()
        .to_string()
}

/// Deterministic content of `len` bytes with a real header for the type.
pub fn content(kind: &str, len: usize, seed: u64) -> Vec<u8> {
    let header: &[u8] = match kind {
        "pdf" => b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
        "png" => b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0",
        "jpg" => b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0",
        _ => b"",
    };
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&header[..header.len().min(len)]);
    let line =
        format!("altinnfs sample data seed {seed:016x} 0123456789abcdefghijklmnopqrstuvwxyz\n");
    while v.len() < len {
        let take = (len - v.len()).min(line.len());
        v.extend_from_slice(&line.as_bytes()[..take]);
    }
    if kind == "pdf" && len > 64 {
        let tail = b"\n%%EOF\n";
        let at = len - tail.len();
        v[at..].copy_from_slice(tail);
    }
    v
}

const NAMES: &[&str] = &[
    "Kari Nordmann",
    "Ola Nordmann",
    "Sophie Salt",
    "Per Hansen",
    "Anne Berg",
];

pub fn generate(store: &Store, n: usize, hostile: bool) -> std::io::Result<()> {
    let meta = app_metadata();
    store.put_app(&meta)?;
    let mut g = Generator {
        store,
        meta: &meta,
        rng: StdRng::seed_from_u64(0x0A17_11F5),
        total: n,
        hostile,
    };
    for i in 0..n {
        g.instance(i)?;
    }
    Ok(())
}

/// One file of a sample instance: its data type, name, content type and bytes.
type SampleFile = (DataType, Option<String>, String, Vec<u8>);

/// The state of one generation run. The order of the RNG draws defines the sample's bytes
/// (the unit test below pins them), so keep it when changing anything here.
struct Generator<'a> {
    store: &'a Store,
    meta: &'a ApplicationMetadata,
    rng: StdRng,
    total: usize,
    hostile: bool,
}

impl Generator<'_> {
    fn instance(&mut self, i: usize) -> std::io::Result<()> {
        let base = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
        let party = SAMPLE_PARTIES[i % SAMPLE_PARTIES.len()];
        let guid = uuid_from(&mut self.rng);
        let created =
            base + Duration::minutes(37 * i as i64) + Duration::seconds(self.rng.gen_range(0..60));
        let changed = created + Duration::minutes(self.rng.gen_range(1..600));
        let archived = i % 10 == 9;
        let in_task2 = !archived && i % 7 == 3;
        let mut inst = self.bare_instance(party, &guid, (created, changed));
        inst.process = Some(sample_process(created, changed, archived, in_task2));
        if archived {
            inst.status.is_archived = true;
            inst.status.archived = Some(changed);
            if i % 20 == 19 {
                inst.complete_confirmations.push(CompleteConfirmation {
                    stakeholder_id: "ttd".into(),
                    confirmed_on: Some(changed + Duration::minutes(5)),
                });
            }
        }
        inst.status.read_status = if i.is_multiple_of(3) {
            ReadStatus::Unread
        } else {
            ReadStatus::Read
        };
        let mut files = vec![self.model(i)];
        files.extend(self.attachments(i));
        files.extend(self.extra_files(i));
        let locked = archived || in_task2;
        for (k, file) in files.into_iter().enumerate() {
            let e = self.store_file(&guid, created, (i, k), file, locked)?;
            inst.data.push(e);
        }
        self.store.save_instance(&inst)
    }

    fn bare_instance(
        &self,
        party: u32,
        guid: &str,
        (created, changed): (Timestamp, Timestamp),
    ) -> Instance {
        let reg = super::auth::party(party);
        Instance {
            id: format!("{party}/{guid}"),
            instance_owner: InstanceOwner {
                party_id: party.to_string(),
                person_number: reg.and_then(|r| r.ssn).map(str::to_string),
                organisation_number: reg.and_then(|r| r.org_number).map(str::to_string),
                ..Default::default()
            },
            app_id: self.meta.id.clone(),
            org: self.meta.org.clone(),
            visible_after: Some(created),
            created: Some(created),
            created_by: Some("1337".into()),
            last_changed: Some(changed),
            last_changed_by: Some("1337".into()),
            ..Default::default()
        }
    }

    fn data_type(&self, id: &str) -> DataType {
        self.meta.data_type(id).unwrap().clone()
    }

    /// The form data, calculated.
    fn model(&mut self, i: usize) -> SampleFile {
        let a: i64 = self.rng.gen_range(0..1000);
        let b: i64 = self.rng.gen_range(0..1000);
        let mut model = json!({
            "navn": NAMES[i % NAMES.len()],
            "beskrivelse": format!("Søknad nummer {i}"),
            "a": a.to_string(),
            "b": b.to_string(),
            "sum": "0",
        });
        calculate(&mut model);
        if let Some(m) = model.as_object_mut() {
            m.remove("calculated");
        }
        let xml = xml::json_to_xml(xml::ROOT, &model);
        (
            self.data_type("model"),
            None,
            "application/xml".to_string(),
            xml,
        )
    }

    /// 0–3 attachments; instance 0 has two named `vedlegg.pdf`, 1 and 2 a big PDF each.
    fn attachments(&mut self, i: usize) -> Vec<SampleFile> {
        let n_att = match i {
            0 => 3,
            1 | 2 => 1,
            _ => self.rng.gen_range(0..4usize),
        };
        let mut out = Vec::new();
        for k in 0..n_att {
            let (kind, ext, ct) = match self.rng.gen_range(0..3) {
                0 => ("pdf", "pdf", "application/pdf"),
                1 => ("png", "png", "image/png"),
                _ => ("jpg", "jpg", "image/jpeg"),
            };
            let len = match (i, k) {
                (1, 0) if self.total >= 100 => 20 * 1024 * 1024,
                (2, 0) if self.total >= 100 => 12 * 1024 * 1024,
                _ if self.rng.gen_bool(0.3) => self.rng.gen_range(3..200),
                _ => self.rng.gen_range(1024..300 * 1024),
            };
            let (kind, ext, ct) = if i <= 2 {
                ("pdf", "pdf", "application/pdf")
            } else {
                (kind, ext, ct)
            };
            let name = if i == 0 && k < 2 {
                "vedlegg.pdf".to_string()
            } else {
                format!("vedlegg-{i}-{k}.{ext}")
            };
            let bytes = content(kind, len, self.rng.gen());
            out.push((
                self.data_type("attachment"),
                Some(name),
                ct.to_string(),
                bytes,
            ));
        }
        out
    }

    /// A note on every 11th instance; hostile names on the first three in hostile mode.
    fn extra_files(&mut self, i: usize) -> Vec<SampleFile> {
        let mut out = Vec::new();
        if i % 11 == 5 {
            let bytes = content("txt", self.rng.gen_range(10..4000), self.rng.gen());
            let name = Some(format!("notat-{i}.txt"));
            out.push((self.data_type("other"), name, "text/plain".into(), bytes));
        }
        if self.hostile && i < 3 {
            for name in hostile_names(i) {
                let bytes = content("txt", 17, self.rng.gen());
                out.push((
                    self.data_type("other"),
                    Some(name),
                    "text/plain".into(),
                    bytes,
                ));
            }
        }
        out
    }

    /// Write file `k` of instance `i` (bytes and document).
    fn store_file(
        &mut self,
        guid: &str,
        created: Timestamp,
        (i, k): (usize, usize),
        (dt, filename, ct, bytes): SampleFile,
        locked: bool,
    ) -> std::io::Result<DataElement> {
        let id = uuid_from(&mut self.rng);
        let when = created + Duration::seconds(k as i64 + 1);
        let mut e = DataElement {
            blob_storage_path: Some(format!("{}/{guid}/data/{id}", self.meta.id)),
            id: id.clone(),
            instance_guid: guid.to_string(),
            data_type: dt.id.clone(),
            filename,
            content_type: Some(ct),
            size: bytes.len() as i64,
            locked,
            is_read: Some(true),
            tags: vec![],
            file_scan_result: Some("NotApplicable".into()),
            created: Some(when),
            created_by: Some("1337".into()),
            last_changed: Some(when),
            last_changed_by: Some("1337".into()),
            ..Default::default()
        };
        if self.hostile && i == 0 && k == 1 {
            e.size = i64::MAX / 2;
        }
        let path = self.store.blob_path(&self.meta.id, guid, &id);
        std::fs::create_dir_all(path.parent().unwrap())?;
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&bytes)?;
        self.store.save_element(&e)?;
        Ok(e)
    }
}

fn sample_process(
    created: Timestamp,
    changed: Timestamp,
    archived: bool,
    in_task2: bool,
) -> ProcessState {
    let mut process = ProcessState {
        started: Some(created),
        start_event: Some("StartEvent_1".into()),
        current_task: Some(task(
            if in_task2 { "Task_2" } else { "Task_1" },
            if in_task2 { 3 } else { 2 },
        )),
        ..Default::default()
    };
    if let Some(t) = process.current_task.as_mut() {
        t.started = Some(created);
    }
    if archived {
        process.current_task = None;
        process.ended = Some(changed);
        process.end_event = Some("EndEvent_1".into());
    }
    process
}

/// Names a robust client must survive.
fn hostile_names(i: usize) -> Vec<String> {
    match i {
        0 => vec![
            "a/b.txt".into(),
            "../../../etc/passwd.txt".into(),
            "..".into(),
            ".".into(),
            "nul\0byte.txt".into(),
            "ctrl\x01\x1b[31mred\x7f.txt".into(),
        ],
        1 => vec![
            format!("{}.txt", "x".repeat(10 * 1024)),
            "\u{202e}txt.exe".into(),
            "e\u{301}\u{fffd}\u{d7ff}.txt".into(),
            "".into(),
            "line\nbreak.txt".into(),
        ],
        _ => vec![
            "same.txt".into(),
            "same.txt".into(),
            "SAME.txt".into(),
            "trailing. ".into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a over every file below `dir` (sorted paths and bytes).
    fn digest(dir: &std::path::Path) -> u64 {
        fn walk(d: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(dir, &mut files);
        files.sort();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for f in files {
            let rel = f.strip_prefix(dir).unwrap().to_string_lossy().to_string();
            for b in rel.bytes().chain(std::fs::read(&f).unwrap()) {
                h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
            }
        }
        h
    }

    /// The sample's bytes are part of the contract: tests compare what a mount shows with it.
    #[test]
    fn the_sample_is_the_same_bytes_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        generate(&store, 40, true).unwrap();
        let d = digest(dir.path());
        eprintln!("sample digest {d:#x}");
        assert_eq!(d, SAMPLE_DIGEST);
    }

    const SAMPLE_DIGEST: u64 = 0x1770_fb0f_f488_5270;
}
