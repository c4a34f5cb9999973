//! `--sample`: the app `ttd/altinnfs-demo` with deterministic instances over localtest's
//! parties (seeded RNG, so tests can compare bytes).

use super::app::{calculate, task};
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
    let mut rng = StdRng::seed_from_u64(0xA171_1F5);
    let base = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
    for i in 0..n {
        let party = SAMPLE_PARTIES[i % SAMPLE_PARTIES.len()];
        let guid = uuid_from(&mut rng);
        let created =
            base + Duration::minutes(37 * i as i64) + Duration::seconds(rng.gen_range(0..60));
        let changed = created + Duration::minutes(rng.gen_range(1..600));
        let archived = i % 10 == 9;
        let in_task2 = !archived && i % 7 == 3;
        let reg = super::auth::party(party);
        let mut inst = Instance {
            id: format!("{party}/{guid}"),
            instance_owner: InstanceOwner {
                party_id: party.to_string(),
                person_number: reg.and_then(|r| r.ssn).map(str::to_string),
                organisation_number: reg.and_then(|r| r.org_number).map(str::to_string),
                ..Default::default()
            },
            app_id: meta.id.clone(),
            org: meta.org.clone(),
            visible_after: Some(created),
            created: Some(created),
            created_by: Some("1337".into()),
            last_changed: Some(changed),
            last_changed_by: Some("1337".into()),
            ..Default::default()
        };
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
            inst.status.is_archived = true;
            inst.status.archived = Some(changed);
            if i % 20 == 19 {
                inst.complete_confirmations.push(CompleteConfirmation {
                    stakeholder_id: "ttd".into(),
                    confirmed_on: Some(changed + Duration::minutes(5)),
                });
            }
        }
        inst.process = Some(process);
        inst.status.read_status = if i % 3 == 0 {
            ReadStatus::Unread
        } else {
            ReadStatus::Read
        };
        let locked = archived || in_task2;
        // The model.
        let a: i64 = rng.gen_range(0..1000);
        let b: i64 = rng.gen_range(0..1000);
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
        let mut elements = vec![(
            meta.data_type("model").unwrap().clone(),
            None,
            "application/xml".to_string(),
            xml,
        )];
        let n_att = match i {
            0 => 3,
            1 | 2 => 1,
            _ => rng.gen_range(0..4usize),
        };
        for k in 0..n_att {
            let (kind, ext, ct) = match rng.gen_range(0..3) {
                0 => ("pdf", "pdf", "application/pdf"),
                1 => ("png", "png", "image/png"),
                _ => ("jpg", "jpg", "image/jpeg"),
            };
            let len = match (i, k) {
                (1, 0) if n >= 100 => 20 * 1024 * 1024,
                (2, 0) if n >= 100 => 12 * 1024 * 1024,
                _ if rng.gen_bool(0.3) => rng.gen_range(3..200),
                _ => rng.gen_range(1024..300 * 1024),
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
            let bytes = content(kind, len, rng.gen());
            elements.push((
                meta.data_type("attachment").unwrap().clone(),
                Some(name),
                ct.to_string(),
                bytes,
            ));
        }
        if i % 11 == 5 {
            let bytes = content("txt", rng.gen_range(10..4000), rng.gen());
            elements.push((
                meta.data_type("other").unwrap().clone(),
                Some(format!("notat-{i}.txt")),
                "text/plain".into(),
                bytes,
            ));
        }
        if hostile && i < 3 {
            for name in hostile_names(i) {
                let bytes = content("txt", 17, rng.gen());
                elements.push((
                    meta.data_type("other").unwrap().clone(),
                    Some(name),
                    "text/plain".into(),
                    bytes,
                ));
            }
        }
        for (k, (dt, filename, ct, bytes)) in elements.into_iter().enumerate() {
            let id = uuid_from(&mut rng);
            let when = created + Duration::seconds(k as i64 + 1);
            let mut e = DataElement {
                blob_storage_path: Some(format!("{}/{guid}/data/{id}", meta.id)),
                id: id.clone(),
                instance_guid: guid.clone(),
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
            if hostile && i == 0 && k == 1 {
                e.size = i64::MAX / 2;
            }
            let path = store.blob_path(&meta.id, &guid, &id);
            std::fs::create_dir_all(path.parent().unwrap())?;
            let mut f = std::fs::File::create(&path)?;
            f.write_all(&bytes)?;
            store.save_element(&e)?;
            inst.data.push(e);
        }
        store.save_instance(&inst)?;
    }
    Ok(())
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
