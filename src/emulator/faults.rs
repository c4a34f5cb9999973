//! Request counters, `Cache-Control`, and fault injection (an axum middleware).
//! Control routes (`/_emulator/*`) and token routes are never faulted. Besides the random
//! faults on any request there are targeted ones: slow or timing-out query pages, and a
//! refused `complete`.

use super::http::*;
use super::server::Shared;
use super::FaultConfig;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

fn segs(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn is_blob_download(m: &Method, path: &str) -> bool {
    let s = segs(path);
    m == Method::GET
        && s.len() == 8
        && s[..4] == ["storage", "api", "v1", "instances"]
        && s[6] == "data"
}

fn is_app_data_get(m: &Method, path: &str) -> bool {
    let s = segs(path);
    m == Method::GET && s.len() >= 7 && s[2] == "instances" && s[5] == "data" && s[0] != "storage"
}

fn count(s: &Shared, m: &Method, path: &str, query: Option<&str>) {
    let mut st = s.stats.lock().unwrap();
    st.total += 1;
    *st.per_path.entry(format!("{m} {path}")).or_default() += 1;
    let sg = segs(path);
    if is_blob_download(m, path) {
        st.blob_downloads += 1;
    } else if m == Method::GET && sg == ["storage", "api", "v1", "instances"] {
        st.queries += 1;
        if query.is_some_and(|q| q.contains("lastChanged=gt")) {
            st.cursor_queries += 1;
        }
    } else if !matches!(
        sg.first().copied(),
        Some("storage" | "Home" | "authentication" | "_emulator") | None
    ) {
        match *m {
            Method::POST => st.app_posts += 1,
            Method::PUT => st.app_puts += 1,
            Method::DELETE => st.app_deletes += 1,
            Method::GET if is_app_data_get(m, path) => st.app_data_gets += 1,
            _ => {}
        }
    }
}

/// The dice for one request, rolled up front so no RNG is held across an await.
struct Dice {
    stall: f64,
    drop: f64,
    err: f64,
    kind: u8,
    trunc: f64,
    query_timeout: f64,
}

impl Dice {
    fn roll() -> Dice {
        let mut rng = rand::thread_rng();
        Dice {
            stall: rng.gen(),
            drop: rng.gen(),
            err: rng.gen(),
            kind: rng.gen_range(0..3u8),
            trunc: rng.gen(),
            query_timeout: rng.gen(),
        }
    }
}

fn is_query(m: &Method, path: &str) -> bool {
    m == Method::GET && segs(path) == ["storage", "api", "v1", "instances"]
}

fn is_complete(m: &Method, path: &str) -> bool {
    let s = segs(path);
    m == Method::POST && s.len() == 6 && s[2] == "instances" && s[5] == "complete"
}

/// The page size a query asks for (Storage's default 100).
fn query_size(query: Option<&str>) -> usize {
    parse_query(query)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("size"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(100)
}

/// Faults aimed at one kind of request: a slow or timing-out query page, a refused `complete`.
async fn targeted(
    f: &FaultConfig,
    d: &Dice,
    m: &Method,
    uri: &axum::http::Uri,
) -> Option<Response> {
    let path = uri.path();
    if is_query(m, path) {
        if f.query_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.query_delay_ms)).await;
        }
        if d.query_timeout < f.query_timeout_rate
            && query_size(uri.query()) >= f.query_timeout_min_size
        {
            // What Storage answers when its database times out (altinn-storage#634).
            return Some(text(400, QUERY_TIMEOUT));
        }
    }
    match f.complete_status {
        Some(status) if is_complete(m, path) => Some(problem(
            status,
            "Injected fault",
            "The instance could not be confirmed",
        )),
        _ => None,
    }
}

pub const QUERY_TIMEOUT: &str =
    "Unable to perform query on instances due to: Exception while reading from stream";

/// Latency, stalls, dropped connections and 500/503/429 on any request.
async fn random(f: &FaultConfig, d: &Dice) -> Option<Response> {
    if f.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
    }
    if f.stall_ms > 0 && d.stall < f.stall_rate {
        tokio::time::sleep(Duration::from_millis(f.stall_ms)).await;
    }
    if d.drop < f.drop_rate {
        // Unwinding the connection task closes the socket without a response; no panic
        // hook runs for resume_unwind.
        std::panic::resume_unwind(Box::new("emulator fault: dropped connection"));
    }
    if d.err >= f.error_rate {
        return None;
    }
    let (status, retry) = match d.kind {
        0 => (500, false),
        1 => (503, true),
        _ => (429, true),
    };
    let mut r = text(status, "Injected fault");
    if retry {
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&f.retry_after_secs.to_string()).unwrap(),
        );
    }
    Some(r)
}

pub async fn layer(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let control = path.starts_with("/_emulator");
    if !control {
        count(&s, &method, &path, req.uri().query());
    }
    let exempt = control
        || path.starts_with("/Home/")
        || path.starts_with("/authentication/")
        || path == "/health";
    let f = s.faults.read().unwrap().clone();
    let applies = !exempt && f.route_filter.as_deref().is_none_or(|r| path.contains(r));
    let dice = Dice::roll();
    if applies {
        let injected = match random(&f, &dice).await {
            Some(r) => Some(r),
            None => targeted(&f, &dice, &method, req.uri()).await,
        };
        if let Some(mut r) = injected {
            no_store(&mut r);
            return r;
        }
    }
    let mut resp = next.run(req).await;
    no_store(&mut resp);
    if applies
        && dice.trunc < f.truncate_rate
        && resp.status().as_u16() == 200
        && (is_blob_download(&method, &path) || is_app_data_get(&method, &path))
    {
        resp = truncate(resp);
    }
    resp
}

fn no_store(r: &mut Response) {
    r.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store, no-cache"));
}

/// Send about half of the body, then fail the stream: the client sees a short body under the
/// original Content-Length and a closed connection.
fn truncate(resp: Response) -> Response {
    let len: u64 = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let keep = len / 2;
    let (parts, body) = resp.into_parts();
    let inner = body.into_data_stream();
    let stream =
        futures_util::stream::unfold((inner, keep, false), |(mut inner, left, done)| async move {
            if done {
                return None;
            }
            if left == 0 {
                // Let the headers and the partial body reach the client first.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "emulator fault: truncated body",
                    )),
                    (inner, 0, true),
                ));
            }
            match inner.next().await {
                Some(Ok(mut b)) => {
                    if b.len() as u64 > left {
                        b.truncate(left as usize);
                    }
                    let l = left - b.len() as u64;
                    Some((Ok(b), (inner, l, false)))
                }
                Some(Err(e)) => Some((Err(std::io::Error::other(e)), (inner, 0, true))),
                None => None,
            }
        });
    Response::from_parts(parts, Body::from_stream(stream))
}
