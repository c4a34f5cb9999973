//! Send one `unsent/` entry again: the same upload rules as a mount (src/altinn/rules.rs), the
//! same no-duplicate look before a POST (and the client's probe after one), and the entry removed only once the server
//! holds the bytes. The decision is the pure [`plan`]; [`Resender`] does the I/O around it.

use super::{errno_name, Entry};
use crate::altinn::client::{AltinnClient, AltinnError, NewElement, Replacement, UploadBody};
use crate::altinn::ids::{DataTypeId, ElementId, InstanceGuid, InstanceId, PartyId};
use crate::altinn::model::{ApplicationMetadata, DataElement, DataType, Instance};
use crate::altinn::rules;
use crate::fs::{ErrorKind, FsError};
use futures_util::StreamExt;
use std::sync::Arc;

/// What one retry came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Uploaded now; the entry is gone.
    Sent(DataElement),
    /// The server already held these bytes (an earlier attempt got through); the entry is gone.
    AlreadyStored(DataElement),
    /// The server (or the same rules, checked first) refuses: the bytes stay.
    Refused { errno: i32, reason: String },
    /// Unknown outcome (network, 5xx): nothing duplicated, the bytes stay for a later try.
    Failed(String),
    /// Another process is sending this entry right now.
    Busy,
}

impl Outcome {
    pub fn done(&self) -> bool {
        matches!(self, Outcome::Sent(_) | Outcome::AlreadyStored(_))
    }

    /// One line for a terminal or a log.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Sent(el) => format!("sent (element {})", el.id),
            Outcome::AlreadyStored(el) => {
                format!("already on the server (element {}); not sent again", el.id)
            }
            Outcome::Refused { errno, reason } => {
                format!(
                    "refused: {} {reason}; the bytes are kept",
                    errno_name(*errno)
                )
            }
            Outcome::Failed(why) => format!("failed: {why}; the bytes are kept"),
            Outcome::Busy => "being sent by another process; skipped".into(),
        }
    }
}

/// How to send an entry, decided from the instance as the server shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A new element.
    Post {
        content_type: String,
    },
    /// Replace element `id` (named `filename` on the server).
    Replace {
        id: String,
        filename: String,
        content_type: String,
    },
    /// Element `id` has this name and size: compare the bytes, replace only if they differ.
    CompareThenReplace {
        id: String,
        filename: String,
        content_type: String,
    },
    Refuse {
        errno: i32,
        reason: String,
    },
}

fn refuse(errno: i32, reason: impl Into<String>) -> Plan {
    Plan::Refuse {
        errno,
        reason: reason.into(),
    }
}

/// The pure decision. `was_post`: the failed upload created a new file (so an element of the
/// same name that appeared since is someone else's, not ours to replace).
pub fn plan(inst: &Instance, dt: &DataType, filename: &str, len: u64, was_post: bool) -> Plan {
    if len == 0 {
        return refuse(libc::EINVAL, "Altinn refuses empty data");
    }
    if let Err(v) = rules::check_size(dt, len) {
        return rule_refusal(v);
    }
    let (targets, content_type) = elements_named(inst, dt, filename);
    match targets.as_slice() {
        [] => plan_new(inst, dt, filename, content_type),
        [el] if el.locked => refuse(libc::EPERM, format!("element {} is locked", el.id)),
        [el] if el.size as u64 == len => Plan::CompareThenReplace {
            id: el.id.clone(),
            filename: el.filename.clone().unwrap_or_default(),
            content_type,
        },
        [_] if was_post => refuse(
            libc::EEXIST,
            format!(
                "an element named {filename} with other bytes appeared since; not replacing it"
            ),
        ),
        [el] => Plan::Replace {
            id: el.id.clone(),
            filename: el.filename.clone().unwrap_or_default(),
            content_type,
        },
        many => refuse(
            libc::EBUSY,
            format!(
                "{} elements are named {filename}; not guessing which one",
                many.len()
            ),
        ),
    }
}

/// The elements an entry named `filename` would overwrite, and the content type to send:
/// those of the same name, else the form element a JSON view (`X.json`) stands for.
fn elements_named<'i>(
    inst: &'i Instance,
    dt: &DataType,
    filename: &str,
) -> (Vec<&'i DataElement>, String) {
    let same_name: Vec<&DataElement> = inst
        .data
        .iter()
        .filter(|e| e.data_type == dt.id && e.filename.as_deref() == Some(filename))
        .collect();
    // A JSON view (`X.json`, form_json) is sent as JSON to the form element `X.xml`.
    let view_of: Vec<&DataElement> = inst
        .data
        .iter()
        .filter(|e| e.data_type == dt.id && dt.is_form())
        .filter(|e| {
            e.filename
                .as_deref()
                .and_then(crate::fs::layout::json_view_name)
                == Some(filename.to_string())
        })
        .collect();
    if same_name.is_empty() && !view_of.is_empty() {
        (view_of, "application/json".to_string())
    } else {
        (same_name, rules::mime_for(filename))
    }
}

/// A failed PUT whose element id the sidecar names: that element, or a refusal when it is gone.
pub fn plan_for_element(inst: &Instance, id: &str, len: u64, filename: &str) -> Plan {
    let Some(el) = inst.data.iter().find(|d| d.id == id) else {
        return refuse(libc::ENOENT, format!("element {id} no longer exists"));
    };
    if el.locked {
        return refuse(libc::EPERM, format!("element {id} is locked"));
    }
    let content_type = if el.filename.as_deref() == Some(filename) {
        rules::mime_for(filename)
    } else {
        "application/json".to_string() // a JSON view (`X.json`) of the form element `X.xml`
    };
    let (id, filename) = (el.id.clone(), el.filename.clone().unwrap_or_default());
    if el.size as u64 == len {
        Plan::CompareThenReplace {
            id,
            filename,
            content_type,
        }
    } else {
        Plan::Replace {
            id,
            filename,
            content_type,
        }
    }
}

fn plan_new(inst: &Instance, dt: &DataType, filename: &str, content_type: String) -> Plan {
    if let Err(v) = rules::check_new_file(dt, filename) {
        return rule_refusal(v);
    }
    let count = inst.data.iter().filter(|e| e.data_type == dt.id).count();
    if !rules::count_allows_one_more(dt, count) {
        return refuse(
            libc::EDQUOT,
            format!(
                "data type {} already holds maxCount={}",
                dt.id, dt.max_count
            ),
        );
    }
    Plan::Post { content_type }
}

fn rule_refusal(v: rules::RuleViolation) -> Plan {
    let reason = format!("rule {}: {}", v.code, v.description);
    let errno = FsError::new(ErrorKind::Rule(v), "").errno();
    refuse(errno, reason)
}

/// The plan for an entry: a failed PUT goes to the element its sidecar names, anything else
/// by name.
fn plan_entry(e: &Entry, inst: &Instance, dt: &DataType) -> Plan {
    let s = &e.meta;
    let was_post = s.was_post();
    match s.element_id.as_deref() {
        Some(id) if !was_post => plan_for_element(inst, id, e.size, &s.filename),
        _ => plan(inst, dt, &s.filename, e.size, was_post),
    }
}

/// The instance an entry goes to (the sidecar was checked when it was read).
fn target_of(e: &Entry) -> Result<InstanceId, String> {
    InstanceId::parse(format!("{}/{}", e.meta.party, e.meta.instance)).map_err(|e| e.to_string())
}

/// Sends entries over any client; shared by `altinnfs unsent retry` and a mount. The client
/// does the retrying (a `Retrying`, as both build it): the resender sends each request once.
pub struct Resender<C: AltinnClient + ?Sized> {
    client: Arc<C>,
    meta: ApplicationMetadata,
    on_stored: Option<StoredHook>,
}

/// Told about each element a retry stored (party, instance GUID, element): a mount shows it
/// at once, so a copy made right after does not POST the same name again.
pub type StoredHook = Box<dyn Fn(PartyId, InstanceGuid, &DataElement) + Send + Sync>;

impl<C: AltinnClient + ?Sized> Resender<C> {
    pub fn new(client: Arc<C>, meta: ApplicationMetadata) -> Self {
        Self {
            client,
            meta,
            on_stored: None,
        }
    }

    pub fn on_stored(mut self, hook: StoredHook) -> Self {
        self.on_stored = Some(hook);
        self
    }

    /// Send `e` again (under its lock); remove it when the server holds the bytes, else note
    /// the outcome in its sidecar and keep it.
    pub async fn resend(&self, e: &Entry) -> Outcome {
        let Some(_lock) = e.lock() else {
            return Outcome::Busy;
        };
        let outcome = self.attempt(e).await;
        if let (Outcome::Sent(el) | Outcome::AlreadyStored(el), Some(hook)) =
            (&outcome, &self.on_stored)
        {
            if let Ok(r) = target_of(e) {
                hook(r.party, r.guid, el);
            }
        }
        if outcome.done() {
            if let Err(err) = e.remove() {
                tracing::warn!("unsent/{}: sent, but cannot remove it: {err}", e.id);
            }
        } else {
            e.note_retry(&outcome.describe());
        }
        outcome
    }

    /// One try: the entry checked against its instance as the server shows it now, then sent
    /// as [`plan`] decides.
    async fn attempt(&self, e: &Entry) -> Outcome {
        let (r, inst) = match self.target_instance(e).await {
            Ok(target) => target,
            Err(outcome) => return outcome,
        };
        let Some(dt) = self
            .meta
            .data_types
            .iter()
            .find(|d| d.id == e.meta.data_type)
        else {
            return Outcome::Refused {
                errno: libc::ENOENT,
                reason: format!("the app has no data type {} any more", e.meta.data_type),
            };
        };
        match plan_entry(e, &inst, dt) {
            Plan::Refuse { errno, reason } => Outcome::Refused { errno, reason },
            Plan::Post { content_type } => self.post(e, &r, &content_type).await,
            Plan::Replace {
                id,
                filename,
                content_type,
            } => {
                let names = Replacement {
                    filename: &filename,
                    content_type: &content_type,
                };
                self.put(e, &r, &id, names).await
            }
            Plan::CompareThenReplace {
                id,
                filename,
                content_type,
            } => {
                let names = Replacement {
                    filename: &filename,
                    content_type: &content_type,
                };
                self.compare_then_replace(e, &r, &inst, &id, names).await
            }
        }
    }

    /// The entry's instance, fetched now; refused when it belongs to another app.
    async fn target_instance(&self, e: &Entry) -> Result<(InstanceId, Instance), Outcome> {
        let r = target_of(e).map_err(|reason| Outcome::Refused {
            errno: libc::EINVAL,
            reason,
        })?;
        let inst = match self.client.get_instance(&r).await {
            Ok(i) => i,
            Err(err) => return Err(self.server_outcome(e, "GET instance", err)),
        };
        if inst.app_id != self.meta.id {
            return Err(Outcome::Refused {
                errno: libc::EINVAL,
                reason: format!(
                    "the instance belongs to {}, not {}",
                    inst.app_id, self.meta.id
                ),
            });
        }
        Ok((r, inst))
    }

    /// Element `id` has the entry's name and size: when its bytes are the same, an earlier try
    /// got through; otherwise it is replaced, unless the entry was a new file (then that
    /// element is someone else's).
    async fn compare_then_replace(
        &self,
        e: &Entry,
        r: &InstanceId,
        inst: &Instance,
        id: &str,
        names: Replacement<'_>,
    ) -> Outcome {
        match self.same_bytes(e, r, id).await {
            Ok(true) => match inst.data.iter().find(|d| d.id == id) {
                Some(el) => Outcome::AlreadyStored(el.clone()),
                None => Outcome::Failed("the element vanished".into()),
            },
            Ok(false) if e.meta.was_post() => Outcome::Refused {
                errno: libc::EEXIST,
                reason: format!(
                    "an element named {} with other bytes appeared since; not replacing it",
                    names.filename
                ),
            },
            Ok(false) => self.put(e, r, id, names).await,
            Err(err) => self.server_outcome(e, "GET data", err),
        }
    }

    fn server_outcome(&self, e: &Entry, op: &'static str, err: AltinnError) -> Outcome {
        if err.is_transient() {
            return Outcome::Failed(err.to_string());
        }
        let fe = FsError::server(&e.meta.path, op, err.clone());
        Outcome::Refused {
            errno: fe.errno(),
            reason: err.to_string(),
        }
    }

    fn body(e: &Entry) -> UploadBody {
        UploadBody::File {
            path: e.data.clone(),
            len: e.size,
        }
    }

    /// PUT the entry's bytes to element `id`, under `names`.
    async fn put(&self, e: &Entry, r: &InstanceId, id: &str, names: Replacement<'_>) -> Outcome {
        let id = match ElementId::parse(id) {
            Ok(id) => id,
            Err(err) => return Outcome::Failed(err.to_string()),
        };
        let res = self.client.replace_data(r, &id, names, Self::body(e)).await;
        match res {
            Ok(el) => Outcome::Sent(el),
            Err(err) => self.server_outcome(e, "PUT data", err),
        }
    }

    /// POST; the client's `Retrying` probes the elements before any resend, so a POST whose
    /// answer was lost is found rather than sent twice.
    async fn post(&self, e: &Entry, r: &InstanceId, content_type: &str) -> Outcome {
        let s = &e.meta;
        let data_type = match DataTypeId::parse(&s.data_type) {
            Ok(dt) => dt,
            Err(err) => return Outcome::Failed(err.to_string()),
        };
        let new = NewElement {
            data_type: &data_type,
            filename: &s.filename,
            content_type,
        };
        let res = self.client.create_data(r, new, Self::body(e)).await;
        match res {
            Ok(el) => Outcome::Sent(el),
            Err(err) => self.server_outcome(e, "POST data", err),
        }
    }

    /// Whether element `id` holds exactly the entry's bytes (streamed, never all in memory).
    async fn same_bytes(&self, e: &Entry, r: &InstanceId, id: &str) -> Result<bool, AltinnError> {
        use std::io::Read;
        let id = ElementId::parse(id).map_err(|err| AltinnError::Local(err.to_string()))?;
        let dl = self.client.download(r, &id).await?;
        let mut local = std::fs::File::open(&e.data)
            .map_err(|err| AltinnError::Local(format!("{}: {err}", e.data.display())))?;
        let mut stream = dl.stream;
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            let mut off = 0;
            while off < chunk.len() {
                let want = (chunk.len() - off).min(buf.len());
                if local.read_exact(&mut buf[..want]).is_err()
                    || buf[..want] != chunk[off..off + want]
                {
                    return Ok(false);
                }
                off += want;
            }
            seen += chunk.len() as u64;
        }
        Ok(seen == e.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(id: &str, dt: &str, name: &str, size: i64) -> DataElement {
        DataElement {
            id: id.into(),
            data_type: dt.into(),
            filename: Some(name.into()),
            size,
            ..Default::default()
        }
    }

    fn inst(data: Vec<DataElement>) -> Instance {
        Instance {
            data,
            ..Default::default()
        }
    }

    fn att(max_count: i64, allowed: &[&str]) -> DataType {
        DataType {
            id: "att".into(),
            max_count,
            allowed_content_types: allowed.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn new_name_is_posted_within_the_rules() {
        let i = inst(vec![el("1", "att", "a.pdf", 3)]);
        assert_eq!(
            plan(&i, &att(0, &[]), "b.pdf", 4, true),
            Plan::Post {
                content_type: "application/pdf".into()
            }
        );
        // maxCount reached, extension not allowed, empty: refused with the mount's errnos.
        let full = plan(&i, &att(1, &[]), "b.pdf", 4, true);
        assert!(
            matches!(
                full,
                Plan::Refuse {
                    errno: libc::EDQUOT,
                    ..
                }
            ),
            "{full:?}"
        );
        let typ = plan(&i, &att(0, &["application/pdf"]), "b.txt", 4, true);
        assert!(
            matches!(
                typ,
                Plan::Refuse {
                    errno: libc::EPERM,
                    ..
                }
            ),
            "{typ:?}"
        );
        let empty = plan(&i, &att(0, &[]), "b.pdf", 0, true);
        assert!(matches!(
            empty,
            Plan::Refuse {
                errno: libc::EINVAL,
                ..
            }
        ));
    }

    #[test]
    fn a_named_element_is_the_target_of_a_failed_put() {
        let i = inst(vec![el("1", "att", "a.pdf", 3), el("2", "att", "a.pdf", 4)]);
        assert!(matches!(
            plan_for_element(&i, "2", 9, "a.pdf"),
            Plan::Replace { id, content_type, .. } if id == "2" && content_type == "application/pdf"
        ));
        assert!(matches!(
            plan_for_element(&i, "9", 9, "a.pdf"),
            Plan::Refuse {
                errno: libc::ENOENT,
                ..
            }
        ));
    }

    #[test]
    fn same_name_and_size_is_compared_first() {
        let i = inst(vec![el("1", "att", "a.pdf", 3)]);
        assert!(matches!(
            plan(&i, &att(0, &[]), "a.pdf", 3, true),
            Plan::CompareThenReplace { id, .. } if id == "1"
        ));
    }

    #[test]
    fn same_name_other_size_replaces_only_what_was_ours() {
        let i = inst(vec![el("1", "att", "a.pdf", 3)]);
        assert!(matches!(
            plan(&i, &att(0, &[]), "a.pdf", 9, false),
            Plan::Replace { id, .. } if id == "1"
        ));
        assert!(matches!(
            plan(&i, &att(0, &[]), "a.pdf", 9, true),
            Plan::Refuse {
                errno: libc::EEXIST,
                ..
            }
        ));
        let two = inst(vec![el("1", "att", "a.pdf", 3), el("2", "att", "a.pdf", 4)]);
        assert!(matches!(
            plan(&two, &att(0, &[]), "a.pdf", 9, false),
            Plan::Refuse {
                errno: libc::EBUSY,
                ..
            }
        ));
        let mut locked = el("1", "att", "a.pdf", 3);
        locked.locked = true;
        assert!(matches!(
            plan(&inst(vec![locked]), &att(0, &[]), "a.pdf", 9, false),
            Plan::Refuse {
                errno: libc::EPERM,
                ..
            }
        ));
    }
}
