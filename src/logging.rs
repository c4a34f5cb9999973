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

/// How log lines look: `text` (human, coloured only on a terminal) or `json` (one object per
/// line, for log shippers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Install the global subscriber. Fails if the filter does not parse, the file cannot be opened,
/// or a subscriber is already installed.
pub fn init(log_level: Option<&str>, log_file: Option<&Path>) -> Result<(), String> {
    init_with(log_level, log_file, LogFormat::Text)
}

/// Colour codes only for a human at a terminal: never in a file, a pipe or the journal
/// (systemd gives stderr as a socket and sets `JOURNAL_STREAM`), and never with `NO_COLOR`.
pub fn stderr_wants_colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
        && std::env::var_os("JOURNAL_STREAM").is_none()
}

/// [`init`] with a chosen line format.
pub fn init_with(
    log_level: Option<&str>,
    log_file: Option<&Path>,
    format: LogFormat,
) -> Result<(), String> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = filter(log_level)?;
    let (writer, ansi) = match log_file {
        Some(path) => {
            let file = open_log_file(path)?;
            (BoxMakeWriter::new(std::sync::Mutex::new(file)), false)
        }
        None => (BoxMakeWriter::new(std::io::stderr), stderr_wants_colour()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let r = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.event_format(json::JsonLines).try_init(),
    };
    r.map_err(|e| format!("cannot set up logging: {e}"))
}

mod json {
    //! `--log-format json`: one JSON object per line with `timestamp`, `level`, `target`,
    //! the event's fields (`message` included) and `spans` (outermost first, each with its
    //! name and its fields as formatted text).
    use serde_json::{Map, Value};
    use std::fmt;
    use tracing::field::{Field, Visit};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
    use tracing_subscriber::registry::LookupSpan;

    pub struct JsonLines;

    struct Fields<'a>(&'a mut Map<String, Value>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.insert(
                field.name().to_string(),
                Value::String(format!("{value:?}")),
            );
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_string(), value.into());
        }
        fn record_i64(&mut self, field: &Field, value: i64) {
            self.0.insert(field.name().to_string(), value.into());
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.0.insert(field.name().to_string(), value.into());
        }
        fn record_bool(&mut self, field: &Field, value: bool) {
            self.0.insert(field.name().to_string(), value.into());
        }
    }

    impl<S, N> FormatEvent<S, N> for JsonLines
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            let meta = event.metadata();
            let mut obj = Map::new();
            obj.insert(
                "timestamp".into(),
                chrono::Utc::now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    .into(),
            );
            obj.insert("level".into(), meta.level().as_str().into());
            obj.insert("target".into(), meta.target().into());
            event.record(&mut Fields(&mut obj));
            let mut spans = Vec::new();
            if let Some(scope) = ctx.event_scope() {
                for span in scope.from_root() {
                    let mut s = Map::new();
                    s.insert("name".into(), span.name().into());
                    let ext = span.extensions();
                    if let Some(f) = ext.get::<FormattedFields<N>>() {
                        if !f.is_empty() {
                            s.insert("fields".into(), f.as_str().into());
                        }
                    }
                    spans.push(Value::Object(s));
                }
            }
            if !spans.is_empty() {
                obj.insert("spans".into(), Value::Array(spans));
            }
            let line = serde_json::to_string(&Value::Object(obj)).map_err(|_| fmt::Error)?;
            writeln!(writer, "{line}")
        }
    }
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
