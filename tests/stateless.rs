//! `.stateless/<dataType>/` through a real kernel mount against the emulator (SPEC §5):
//! `new.xml`/`new.json` are fresh prefilled objects, written `NAME.xml|json` files are
//! calculated on close and held in memory, nothing is stored on the server.

mod mount_support;
use mount_support::*;

fn stat_size(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn new_objects_are_fresh_prefilled_and_sized() {
    let emu = TestEmulator::start();
    let m = Mount::new(&emu, &["--stateless-party", "510001"]);
    let dir = m.p(".stateless/model");
    let ls = sh_ok(&format!("ls {}", dir.display()));
    let names: Vec<&str> = ls.lines().collect();
    assert_eq!(names, vec!["new.json", "new.xml"]);
    assert!(
        !sh_ok(&format!("ls {}", m.p(".stateless").display())).contains("attachment"),
        "only form data types"
    );

    let json = sh_ok(&format!("cat {}/new.json", dir.display()));
    let v: serde_json::Value = serde_json::from_str(&json).expect("new.json is JSON");
    assert!(v.is_object(), "{json}");
    for k in ["a", "b", "sum", "navn"] {
        assert!(v.get(k).is_some(), "field {k} in {json}");
    }
    // The party header: the emulator prefills the party's name.
    assert_eq!(v["navn"], "Pengelens Partner", "{json}");
    assert_eq!(stat_size(&dir.join("new.json")), json.len() as u64);
    sh_ok(&format!("jq -e .sum {}/new.json", dir.display()));

    let xml = sh_ok(&format!("cat {}/new.xml", dir.display()));
    assert!(xml.contains("<Model") && xml.contains("<sum>"), "{xml}");
    assert_eq!(stat_size(&dir.join("new.xml")), xml.len() as u64);

    // Nothing stored: no POST/PUT of data elements anywhere.
    let s = emu.stats();
    assert!(
        s.per_path
            .keys()
            .filter(|k| k.contains("/v1/data"))
            .all(|k| k.starts_with("GET ")),
        "{:?}",
        s.per_path
    );
}

/// Requests that made a fresh `new.*` object (GET `.../v1/data?dataType=`).
fn creations(emu: &TestEmulator) -> u64 {
    emu.stats()
        .per_path
        .iter()
        .filter(|(k, _)| k.starts_with("GET ") && k.ends_with("/v1/data"))
        .map(|(_, n)| n)
        .sum()
}

/// `find`, `ls -l` and `stat` look at `new.*` without creating one (a walk of a big app
/// must not ask the app per data type); reading it creates it, and its size shows after.
/// `cp` and `cat` read to the end although the size said 0 before the read.
#[test]
fn a_walk_or_stat_creates_no_object_and_a_read_does() {
    let emu = TestEmulator::start();
    let m = Mount::new(&emu, &["--stateless-party", "510001"]);
    let dir = m.p(".stateless/model");
    let before = creations(&emu);
    let found = sh_ok(&format!("find {} -ls", m.p(".stateless").display()));
    assert!(
        found.contains("new.xml") && found.contains("new.json"),
        "{found}"
    );
    sh_ok(&format!("ls -l {}", dir.display()));
    assert_eq!(stat_size(&dir.join("new.xml")), 0, "unknown until read");
    assert_eq!(
        creations(&emu),
        before,
        "no object made by a walk or a stat"
    );

    let copy = m.dir.path().join("copy.xml");
    sh_ok(&format!("cp {}/new.xml {}", dir.display(), copy.display()));
    let copied = std::fs::read_to_string(&copy).unwrap();
    assert!(
        copied.contains("<Model") && copied.contains("<sum>"),
        "{copied}"
    );
    assert_eq!(creations(&emu), before + 1, "the read made one");
    assert_eq!(stat_size(&dir.join("new.xml")), copied.len() as u64);
    let json = sh_ok(&format!("cat {}/new.json", dir.display()));
    assert!(
        serde_json::from_str::<serde_json::Value>(&json).is_ok(),
        "{json}"
    );
    assert_eq!(creations(&emu), before + 2);
}

#[test]
fn party_defaults_to_the_first_party_option() {
    let emu = TestEmulator::start();
    let m = Mount::new(&emu, &["--party", "510002"]);
    let json = sh_ok(&format!(
        "cat {}",
        m.p(".stateless/model/new.json").display()
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["navn"], "Gjentagende Forelder", "{json}");
}

#[test]
fn written_object_is_calculated_and_held_until_unlink() {
    let emu = TestEmulator::start();
    let m = Mount::new(&emu, &[]);
    let dir = m.p(".stateless/model");
    let input = m.dir.path().join("in.xml");
    std::fs::write(
        &input,
        "<Model><navn>x</navn><a>40</a><b>2</b><sum>0</sum></Model>\n",
    )
    .unwrap();
    let before = emu.stats();
    sh_ok(&format!("cp {} {}/a.xml", input.display(), dir.display()));
    let out = sh_ok(&format!("cat {}/a.xml", dir.display()));
    assert!(out.contains("<sum>42</sum>"), "calculated: {out}");
    assert!(out.contains("<calculated>true</calculated>"), "{out}");
    assert_eq!(stat_size(&dir.join("a.xml")), out.len() as u64);
    let ls = sh_ok(&format!("ls {}", dir.display()));
    assert!(ls.lines().any(|l| l == "a.xml"), "{ls}");

    // JSON in, JSON out; a shell redirect (truncate first) into the mount.
    sh_ok(&format!(
        "echo '{{\"a\": \"1.5\", \"b\": \"2\"}}' > {}/b.json",
        dir.display()
    ));
    let out = sh_ok(&format!("cat {}/b.json", dir.display()));
    let v: serde_json::Value = serde_json::from_str(&out).expect("json result");
    assert_eq!(v["sum"], "3.5", "{out}");

    // Overwrite: the new result replaces the old one, with a size that fits.
    std::fs::write(&input, "<Model><a>1</a><b>1</b></Model>").unwrap();
    sh_ok(&format!("cp {} {}/a.xml", input.display(), dir.display()));
    let out2 = sh_ok(&format!("cat {}/a.xml", dir.display()));
    assert!(out2.contains("<sum>2</sum>"), "{out2}");
    assert_eq!(stat_size(&dir.join("a.xml")), out2.len() as u64);

    // Nothing stored on the server: no data element writes, no instance created.
    let after = emu.stats();
    assert_eq!(after.app_puts, before.app_puts, "no PUT");
    assert_eq!(
        after.app_posts - before.app_posts,
        after
            .per_path
            .iter()
            .filter(|(k, _)| k.starts_with("POST ") && k.contains("/v1/data"))
            .map(|(_, n)| n)
            .sum::<u64>()
            - before
                .per_path
                .iter()
                .filter(|(k, _)| k.starts_with("POST ") && k.contains("/v1/data"))
                .map(|(_, n)| n)
                .sum::<u64>(),
        "every POST was a calculation"
    );

    sh_ok(&format!("rm {}/a.xml", dir.display()));
    assert!(!dir.join("a.xml").exists());
    let ls = sh_ok(&format!("ls {}", dir.display()));
    assert!(!ls.lines().any(|l| l == "a.xml"), "{ls}");
    // new.* cannot be removed.
    sh_err(&format!("rm {}/new.xml", dir.display()));
}

#[test]
fn malformed_body_is_einval_at_close_and_logged() {
    let emu = TestEmulator::start();
    let m = Mount::new(&emu, &[]);
    let dir = m.p(".stateless/model");
    let input = m.dir.path().join("bad.xml");
    std::fs::write(&input, "<Model><a>1</a>").unwrap();
    let err = sh_err(&format!("cp {} {}/bad.xml", input.display(), dir.display()));
    assert!(err.contains("Invalid argument"), "{err}");
    // The kernel sends RELEASE after close() returned, and the pending name goes with it:
    // give that request a moment instead of racing it.
    let gone = (0..100).any(|_| {
        let held = dir.join("bad.xml").exists();
        if held {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        !held
    });
    assert!(gone, "nothing held");
    let log = m.log_text();
    let lines: Vec<&str> = log
        .lines()
        // "answered 400", not "400": a pid or inode number in a line may hold those digits.
        .filter(|l| l.contains("bad.xml") && l.contains("answered 400"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "logged once with the server's message:\n{log}"
    );

    // Other names are refused at create.
    let err = sh_err(&format!("echo x > {}/notes.txt", dir.display()));
    assert!(err.contains("Invalid argument"), "{err}");
}

#[test]
fn seed_forms_are_used_when_the_current_ones_are_missing() {
    let emu = TestEmulator::start_with(|c| c.seed_stateless = true);
    let m = Mount::new(&emu, &[]);
    let dir = m.p(".stateless/model");
    let json = sh_ok(&format!("cat {}/new.json", dir.display()));
    let v: serde_json::Value = serde_json::from_str(&json).expect("new.json");
    assert!(v.get("sum").is_some(), "{json}");
    sh_ok(&format!(
        "printf '<Model><a>2</a><b>3</b></Model>' > {}/c.xml",
        dir.display()
    ));
    let out = sh_ok(&format!("cat {}/c.xml", dir.display()));
    assert!(out.contains("<sum>5</sum>"), "{out}");
    let s = emu.stats();
    let count = |p: &str| {
        s.per_path
            .iter()
            .filter(|(k, _)| k.starts_with(p) && k.contains("/v1/data"))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    assert_eq!(
        count("GET "),
        1,
        "the current form tried once: {:?}",
        s.per_path
    );
    assert!(count("PUT ") >= 1, "calculated with PUT: {:?}", s.per_path);
}
