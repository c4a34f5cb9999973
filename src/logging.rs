//! Logging: `--log-level` (or `RUST_LOG`, default `info`) to stderr, or appended to
//! `--log-file` (created 0600). Tokens never reach a log line: auth errors are written without
//! them, and URLs go through [`redact_url`] before they become span fields.

use std::path::Path;
use tracing_subscriber::EnvFilter;

/// The filter for `log_level` (a level or a full `RUST_LOG`-style directive), else `RUST_LOG`,
/// else `info`.
pub fn filter(log_level: Option<&str>) -> Result<EnvFilter, String> {
    match log_level.map(str::trim).filter(|l| !l.is_empty()) {
        // A bare level applies to altinnfs itself; dependencies stay at warn.
        Some(l) if matches!(l, "error" | "warn" | "info" | "debug" | "trace") => {
            Ok(EnvFilter::new(format!("warn,altinnfs={l}")))
        }
        Some(l) => EnvFilter::try_new(l).map_err(|e| format!("bad --log-level {l:?}: {e}")),
        None => match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => {
                EnvFilter::try_new(&v).map_err(|e| format!("bad RUST_LOG {v:?}: {e}"))
            }
            _ => Ok(EnvFilter::new("warn,altinnfs=info")),
        },
    }
}

/// Open `path` for appending, creating it with mode 0600.
pub fn open_log_file(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot open --log-file {}: {e}", path.display()))
}

/// Install the global subscriber. Fails if the filter does not parse, the file cannot be opened,
/// or a subscriber is already installed.
pub fn init(log_level: Option<&str>, log_file: Option<&Path>) -> Result<(), String> {
    let filter = filter(log_level)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let r = match log_file {
        Some(path) => {
            let file = open_log_file(path)?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init()
        }
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    r.map_err(|e| format!("cannot set up logging: {e}"))
}

/// Query parameter names whose values are secrets.
fn secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("token")
        || n.contains("secret")
        || n.contains("password")
        || n.contains("apikey")
        || n.contains("api_key")
        || n.contains("subscription-key")
        || matches!(
            n.as_str(),
            "code" | "assertion" | "sig" | "signature" | "key" | "auth" | "authorization"
        )
}

/// A URL fit for a log line: userinfo (`user:pass@`) removed and the values of query
/// parameters named like token/access_token/code/secret replaced by `REDACTED`.
pub fn redact_url(url: &str) -> String {
    let (url, fragment) = match url.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (url, None),
    };
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // userinfo: between "scheme://" and the first '@' before the path.
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let auth_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(auth_end);
            let host = authority
                .rsplit_once('@')
                .map(|(_, h)| h)
                .unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => base.to_string(),
    };
    let mut out = base;
    if let Some(q) = query {
        out.push('?');
        let parts: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if secret_param(&percent_decode(k)) => format!("{k}=REDACTED"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    if let Some(f) = fragment {
        // Fragments carry tokens in implicit OAuth flows; keep only that there was one.
        if f.contains('=') {
            out.push_str("#REDACTED");
        } else {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_and_userinfo() {
        assert_eq!(
            redact_url("https://u:p@host.no/a/b?access_token=xyz&party=5&code=c#x"),
            "https://host.no/a/b?access_token=REDACTED&party=5&code=REDACTED#x"
        );
        assert_eq!(
            redact_url("https://h/p?continuationToken=abc&size=100"),
            "https://h/p?continuationToken=REDACTED&size=100"
        );
        assert_eq!(redact_url("http://h:80/x"), "http://h:80/x");
        assert_eq!(redact_url("/rel?token=1"), "/rel?token=REDACTED");
    }

    #[test]
    fn filter_takes_level_or_directive() {
        assert!(filter(Some("debug")).is_ok());
        assert!(filter(Some("altinnfs=trace,reqwest=warn")).is_ok());
        assert!(filter(Some("not a [filter")).is_err());
    }
}
