//! Logs for machines and files (issue 15): no ANSI escape bytes when the logs go to a pipe or
//! to `--log-file`, and `--log-format json` writes one parseable JSON object per line.

use std::process::{Command, Output, Stdio};

/// A mount that fails fast (nothing listens on port 1) after logging its retries and the error.
fn failing_mount(dir: &std::path::Path, extra: &[&str]) -> Output {
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "x.y.z").unwrap();
    Command::new(env!("CARGO_BIN_EXE_altinnfs"))
        .args(["mount", "ttd/app"])
        .arg(&mnt)
        .args(["--app-url", "http://127.0.0.1:1/ttd/app"])
        .args(["--platform-url", "http://127.0.0.1:1"])
        .arg("--token-file")
        .arg(&token)
        .arg("--spool-dir")
        .arg(dir.join("spool"))
        // Never the user's ~/.cache: the metadata index of this test alone.
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(["--foreground", "--log-level", "debug", "--timeout", "2"])
        .args(extra)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("altinnfs runs")
}

fn assert_no_escapes(what: &str, bytes: &[u8]) {
    assert!(!bytes.is_empty(), "{what}: expected some log lines");
    assert!(
        !bytes.contains(&0x1b),
        "{what} holds an escape byte:\n{}",
        String::from_utf8_lossy(bytes)
    );
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = failing_mount(dir.path(), &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERROR"));
    assert_no_escapes("stderr (a pipe)", &out.stderr);
}

#[test]
fn logs_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let out = failing_mount(dir.path(), &["--log-file", log.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_no_escapes("--log-file", &std::fs::read(&log).unwrap());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let out = failing_mount(
        dir.path(),
        &["--log-file", log.to_str().unwrap(), "--log-format", "json"],
    );
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert_no_escapes("json --log-file", text.as_bytes());
    let mut levels = vec![];
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["message"].is_string(), "{line}");
        levels.push(v["level"].as_str().unwrap().to_string());
    }
    assert!(levels.iter().any(|l| l == "ERROR"), "{text}");
    // Piped stderr in json format too.
    let out = failing_mount(dir.path(), &["--log-format", "json"]);
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        if line.starts_with('{') {
            serde_json::from_str::<serde_json::Value>(line).expect(line);
        }
    }
}

#[test]
fn kit_options_parse_as_flags_and_mount_options() {
    use altinnfs::cli::{normalise_args, Cli, Command};
    use altinnfs::logging::LogFormat;
    use clap::Parser;
    let parse = |v: &[&str]| {
        let c = Cli::parse_from(normalise_args(v.iter().map(|s| s.to_string()).collect()));
        let Command::Mount { opts, .. } = c.command else {
            panic!("not mount")
        };
        opts
    };
    let o = parse(&[
        "altinnfs",
        "ttd/app",
        "/mnt/x",
        "-o",
        "retry_unsent=false,log_format=json",
    ]);
    assert!(!o.retry_unsent);
    assert_eq!(o.log_format, LogFormat::Json);
    let o = parse(&["altinnfs", "mount", "ttd/app", "/mnt/x"]);
    assert!(o.retry_unsent, "on by default");
    assert_eq!(o.log_format, LogFormat::Text);
    let o = parse(&["altinnfs", "mount", "ttd/app", "/mnt/x", "--retry-unsent"]);
    assert!(o.retry_unsent);
}
