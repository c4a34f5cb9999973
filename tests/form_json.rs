//! Option `--form-json` (SPEC §3) through a real kernel mount against the emulator: each form
//! data file `X.xml` has a sibling `X.json` (App API, `Accept: application/json`) with a
//! correct size, writable as JSON; both views show the same data.

mod mount_support;
use mount_support::*;

use altinnfs::altinn::model::Instance;
use altinnfs::altinn::AltinnClient;

/// An active instance with an unlocked form data element, and that element's id.
fn form_instance(emu: &TestEmulator) -> (Instance, String) {
    let all = emu
        .rt
        .block_on(emu.client().query_instances(&vec![]))
        .unwrap();
    let inst = all
        .into_iter()
        .find(|i| {
            i.is_active()
                && i.process
                    .as_ref()
                    .and_then(|p| p.current_task.as_ref())
                    .is_some()
                && i.data.iter().any(|d| d.data_type == "model" && !d.locked)
        })
        .expect("an active instance with form data");
    let id = inst
        .data
        .iter()
        .find(|d| d.data_type == "model")
        .unwrap()
        .id
        .clone();
    (inst, id)
}

fn model_dir(m: &Mount, inst: &Instance) -> std::path::PathBuf {
    m.p(&format!("{}/{}/model", inst.party_id(), inst.guid()))
}

fn xml_field(xml: &str, k: &str) -> Option<String> {
    let open = format!("<{k}>");
    let s = xml.find(&open)? + open.len();
    let e = xml[s..].find(&format!("</{k}>"))? + s;
    Some(xml[s..e].to_string())
}

#[test]
fn json_view_beside_xml_same_data_and_size() {
    let emu = TestEmulator::start();
    let (inst, _) = form_instance(&emu);
    let m = Mount::new(&emu, &["--form-json"]);
    let dir = model_dir(&m, &inst);
    let ls = sh_ok(&format!("ls {}", dir.display()));
    let names: Vec<&str> = ls.lines().collect();
    let xml_name = names.iter().find(|n| n.ends_with(".xml")).expect("X.xml");
    let json_name = format!("{}.json", xml_name.trim_end_matches(".xml"));
    assert!(names.contains(&json_name.as_str()), "{names:?}");
    assert_eq!(names.len(), 2, "{names:?}");

    let xml = sh_ok(&format!("cat '{}/{xml_name}'", dir.display()));
    let json = sh_ok(&format!("cat '{}/{json_name}'", dir.display()));
    let v: serde_json::Value = serde_json::from_str(&json).expect("X.json is JSON");
    for k in ["a", "b", "sum", "navn"] {
        let x = xml_field(&xml, k).unwrap_or_default();
        assert_eq!(v[k].as_str().unwrap_or(""), x, "field {k}: {json} vs {xml}");
    }
    let size = std::fs::metadata(dir.join(&json_name)).unwrap().len();
    assert_eq!(size, json.len() as u64, "st_size is the bytes read");
    let st = sh_ok(&format!("stat -c %s '{}/{json_name}'", dir.display()));
    assert_eq!(st.trim(), json.len().to_string());
    // The view's xattrs are the element's.
    let ct = sh_ok(&format!(
        "getfattr --only-values -n user.altinn.contentType '{}/{json_name}'",
        dir.display()
    ));
    assert_eq!(ct, "application/json");
}

#[test]
fn jq_edit_of_json_updates_the_xml_view() {
    let emu = TestEmulator::start();
    let (inst, id) = form_instance(&emu);
    let m = Mount::new(&emu, &["--form-json"]);
    let dir = model_dir(&m, &inst);
    let ls = sh_ok(&format!("ls {}", dir.display()));
    let xml_name = ls
        .lines()
        .find(|n| n.ends_with(".xml"))
        .unwrap()
        .to_string();
    let json_name = format!("{}.json", xml_name.trim_end_matches(".xml"));
    let xp = dir.join(&xml_name);
    let jp = dir.join(&json_name);
    // Read both first, so the kernel holds their old sizes and pages.
    sh_ok(&format!("cat '{}' '{}'", xp.display(), jp.display()));

    let tmp = m.dir.path().join("t.json");
    emu.reset_stats();
    sh_ok(&format!(
        "jq '.a = \"41\" | .beskrivelse = \"endret via json\"' '{}' > {} && cp {} '{}'",
        jp.display(),
        tmp.display(),
        tmp.display(),
        jp.display()
    ));
    let s = emu.stats();
    assert_eq!(s.app_posts, 0, "no POST");
    assert_eq!(s.app_puts, 1, "one PUT");
    let xml = sh_ok(&format!("cat '{}'", xp.display()));
    assert_eq!(xml_field(&xml, "a").as_deref(), Some("41"), "{xml}");
    assert!(xml.contains("endret via json"), "{xml}");
    assert_eq!(
        std::fs::metadata(&xp).unwrap().len(),
        xml.len() as u64,
        "XML size after the JSON write"
    );
    let stored = String::from_utf8(emu.blob(inst.guid(), &id)).unwrap();
    assert!(stored.contains("<a>41</a>"), "{stored}");
    let json = sh_ok(&format!("cat '{}'", jp.display()));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["a"], "41");
    assert_eq!(std::fs::metadata(&jp).unwrap().len(), json.len() as u64);

    // A redirect straight into the mount (truncate first, then write).
    sh_ok(&format!(
        "jq -c '.b = \"7\"' '{}' > {} && cat {} > '{}'",
        jp.display(),
        tmp.display(),
        tmp.display(),
        jp.display()
    ));
    let xml = sh_ok(&format!("cat '{}'", xp.display()));
    assert_eq!(xml_field(&xml, "b").as_deref(), Some("7"), "{xml}");
    assert_eq!(xml_field(&xml, "a").as_deref(), Some("41"), "{xml}");

    // An XML write shows in the JSON view.
    sh_ok(&format!(
        "sed -i 's|<a>41</a>|<a>5</a>|' '{}'",
        xp.display()
    ));
    let json = sh_ok(&format!("cat '{}'", jp.display()));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["a"], "5", "{json}");
    assert_eq!(std::fs::metadata(&jp).unwrap().len(), json.len() as u64);

    // Malformed JSON is refused by the server: EINVAL at close (cp sees it; a shell
    // redirect ignores close errors), the element unchanged, the reason in the log.
    std::fs::write(&tmp, "{not json").unwrap();
    let err = sh_err(&format!("cp {} '{}'", tmp.display(), jp.display()));
    assert!(err.contains("Invalid argument"), "{err}");
    let log = m.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(&json_name) && l.contains("answered 400") && l.contains("JSON")),
        "{log}"
    );
    let stored = String::from_utf8(emu.blob(inst.guid(), &id)).unwrap();
    assert!(stored.contains("<a>5</a>"), "{stored}");

    // The view cannot be removed on its own.
    sh_err(&format!("rm '{}'", jp.display()));
}

#[test]
fn off_by_default() {
    let emu = TestEmulator::start();
    let (inst, _) = form_instance(&emu);
    let m = Mount::new(&emu, &[]);
    let dir = model_dir(&m, &inst);
    let ls = sh_ok(&format!("ls {}", dir.display()));
    assert!(ls.lines().all(|n| !n.ends_with(".json")), "{ls}");
}
