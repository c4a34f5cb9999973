//! The in-process client and the HTTP client against one emulator: every refusal kind of
//! Altinn (and not found, unauthorized, forbidden) reaches the caller with the same status and
//! the same `meaning()`, whichever way the request travelled. The HTTP client sends each
//! request once; the in-process one calls the emulator's service with no socket.

use altinnfs::altinn::auth::StaticToken;
use altinnfs::altinn::http::{HttpClient, HttpConfig};
use altinnfs::altinn::model::{ApplicationLogic, Instance};
use altinnfs::altinn::{AltinnClient, AltinnError, InstanceId, Meaning, Refusal, UploadBody};
use altinnfs::altinn::{DataTypeId, ElementId, NewElement, PartyId, Replacement};
use altinnfs::emulator::inprocess::InProcessClient;
use altinnfs::emulator::{Emulator, EmulatorConfig};
use bytes::Bytes;
use std::sync::Arc;

const APP: &str = "ttd/altinnfs-demo";

/// One emulator, and a client of each kind with the same token.
struct Both {
    emu: Emulator,
    http: HttpClient,
    local: InProcessClient,
    _dir: tempfile::TempDir,
}

impl Both {
    async fn start() -> Both {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = EmulatorConfig::new(dir.path().to_path_buf());
        cfg.sample = true;
        cfg.sample_instances = 4;
        let emu = Emulator::start(cfg).await.expect("emulator starts");
        let token = emu.org_token("ttd");
        let (http, local) = clients(&emu, &token);
        Both {
            emu,
            http,
            local,
            _dir: dir,
        }
    }

    /// A fresh instance of party 510001 (its form auto-created), made over HTTP.
    async fn instance(&self) -> (Instance, InstanceId) {
        let i = self.http.create_instance(party("510001")).await.unwrap();
        let r = InstanceId::of(&i).unwrap();
        (i, r)
    }
}

fn clients(emu: &Emulator, token: &str) -> (HttpClient, InProcessClient) {
    let cfg = HttpConfig::new(&emu.app_url(), &emu.base_url(), APP);
    let http = HttpClient::new(cfg, Arc::new(StaticToken(token.to_string()))).unwrap();
    (http, emu.in_process(token))
}

fn party(p: &str) -> PartyId {
    p.parse().unwrap()
}

fn dt(id: &str) -> DataTypeId {
    id.parse().unwrap()
}

fn element(id: &str) -> ElementId {
    id.parse().unwrap()
}

/// POST `name` as a new element of `data_type`.
async fn post(
    c: &impl AltinnClient,
    inst: &InstanceId,
    (data_type, name, content_type): (&str, &str, &str),
    body: UploadBody,
) -> Result<altinnfs::altinn::model::DataElement, AltinnError> {
    let new = NewElement {
        data_type: &dt(data_type),
        filename: name,
        content_type,
    };
    c.create_data(inst, new, body).await
}

/// PUT new bytes over element `id`.
async fn put(
    c: &impl AltinnClient,
    inst: &InstanceId,
    id: &str,
    (filename, content_type): (&str, &str),
    body: UploadBody,
) -> Result<altinnfs::altinn::model::DataElement, AltinnError> {
    let r = Replacement {
        filename,
        content_type,
    };
    c.replace_data(inst, &element(id), r, body).await
}

/// The same POST through both clients: both must be refused alike; returns the meaning.
async fn post_both(
    (http, local): (&HttpClient, &InProcessClient),
    inst: &InstanceId,
    spec: (&str, &str, &str),
    body: UploadBody,
) -> Meaning {
    let h = post(http, inst, spec, body.clone()).await;
    let l = post(local, inst, spec, body).await;
    same(h, l)
}

/// The same PUT through both clients: both must be refused alike; returns the meaning.
async fn put_both(
    (http, local): (&HttpClient, &InProcessClient),
    inst: &InstanceId,
    id: &str,
    spec: (&str, &str),
    body: UploadBody,
) -> Meaning {
    let h = put(http, inst, id, spec, body.clone()).await;
    let l = put(local, inst, id, spec, body).await;
    same(h, l)
}

/// A PDF into the `attachment` data type: what most refusals are checked with.
const PDF_ATTACHMENT: (&str, &str, &str) = ("attachment", "a.pdf", "application/pdf");

fn pdf() -> UploadBody {
    UploadBody::Bytes(Bytes::from_static(b"%PDF-1.4 a small pdf\n"))
}

/// Both errors carry the same status and meaning; returns that meaning.
fn same(http: Result<impl Sized, AltinnError>, local: Result<impl Sized, AltinnError>) -> Meaning {
    let (h, l) = match (http, local) {
        (Err(h), Err(l)) => (h, l),
        (h, l) => panic!(
            "expected both refused: http ok={}, in-process ok={}",
            h.is_ok(),
            l.is_ok()
        ),
    };
    assert_eq!(h.status(), l.status(), "http: {h}\nin-process: {l}");
    assert_eq!(h.meaning(), l.meaning(), "http: {h}\nin-process: {l}");
    h.meaning()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_refusals_are_the_same_in_process_and_over_http() {
    let b = Both::start().await;
    let (_, r) = b.instance().await;
    let refusal_of = |c: &'static str, name: &'static str, body: UploadBody| {
        let (http, local) = (&b.http, &b.local);
        async move { post_both((http, local), &r, ("attachment", name, c), body).await }
    };
    let rule = |code: &str| Meaning::Refused(Refusal::Rule(code.into()));
    assert_eq!(
        refusal_of("application/octet-stream", "a.exe", pdf()).await,
        rule("ContentTypeNotAllowed")
    );
    assert_eq!(
        refusal_of("application/pdf", "noextension", pdf()).await,
        rule("InvalidFileNameFormat")
    );
    let empty = UploadBody::Bytes(Bytes::new());
    assert_eq!(
        refusal_of("application/pdf", "empty.pdf", empty).await,
        Meaning::Refused(Refusal::Invalid)
    );
    // A form of a content type the App does not take.
    assert!(matches!(
        post_both(
            (&b.http, &b.local),
            &r,
            ("model", "m.txt", "text/plain"),
            pdf()
        )
        .await,
        Meaning::Refused(_)
    ));

    b.emu
        .update_app(|m| {
            let att = m
                .data_types
                .iter_mut()
                .find(|d| d.id == "attachment")
                .unwrap();
            att.max_size = Some(1);
        })
        .unwrap();
    let big = UploadBody::Bytes(Bytes::from(vec![b'x'; 1024 * 1024 + 1]));
    assert_eq!(
        refusal_of("application/pdf", "big.pdf", big).await,
        rule("DataElementTooLarge")
    );

    for n in 0..5 {
        let name = format!("f{n}.pdf");
        post(&b.http, &r, ("attachment", &name, "application/pdf"), pdf())
            .await
            .unwrap();
    }
    assert_eq!(
        refusal_of("application/pdf", "sixth.pdf", pdf()).await,
        Meaning::Refused(Refusal::MaxCount)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn element_refusals_are_the_same_in_process_and_over_http() {
    let b = Both::start().await;
    let (i, r) = b.instance().await;
    let form = i
        .data
        .iter()
        .find(|d| d.data_type == "model")
        .unwrap()
        .id
        .clone();
    let h = b.http.delete_data(&r, &element(&form)).await;
    let l = b.local.delete_data(&r, &element(&form)).await;
    assert_eq!(same(h, l), Meaning::Refused(Refusal::MainForm));

    let bad_xml = || UploadBody::Bytes(Bytes::from_static(b"<model><a>1</"));
    assert_eq!(
        put_both(
            (&b.http, &b.local),
            &r,
            &form,
            ("m.xml", "application/xml"),
            bad_xml()
        )
        .await,
        Meaning::Refused(Refusal::Invalid)
    );

    let missing = uuid::Uuid::new_v4().to_string();
    let h = b.http.delete_data(&r, &element(&missing)).await;
    let l = b.local.delete_data(&r, &element(&missing)).await;
    assert_eq!(same(h, l), Meaning::NotFound);
    let h = b.http.download(&r, &element(&missing)).await;
    let l = b.local.download(&r, &element(&missing)).await;
    assert_eq!(same(h, l), Meaning::NotFound);

    // Task_1 ends: its elements are locked.
    let att = post(&b.http, &r, PDF_ATTACHMENT, pdf()).await.unwrap();
    b.http.process_next(&r, None).await.unwrap();
    // App-lib answers a locked element with a bare `Conflict()`: a conflict, whose words do
    // not say locked.
    let both = (&b.http, &b.local);
    let spec = ("a.pdf", "application/pdf");
    assert_eq!(
        put_both(both, &r, &att.id, spec, pdf()).await,
        Meaning::Refused(Refusal::Conflict)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_refusals_are_the_same_in_process_and_over_http() {
    let b = Both::start().await;

    // The process has no current task (an instance set up behind the API's back).
    let (i, r) = b.instance().await;
    let mut stored = b.emu.store().get(i.guid()).unwrap();
    stored.process.as_mut().unwrap().current_task = None;
    b.emu.store().save_instance(&stored).unwrap();
    assert_eq!(
        post_both((&b.http, &b.local), &r, PDF_ATTACHMENT, pdf()).await,
        Meaning::Refused(Refusal::NoCurrentTask)
    );

    // Soft-deleted: not active.
    let (_, r) = b.instance().await;
    b.http.delete_instance(&r, false).await.unwrap();
    assert_eq!(
        post_both((&b.http, &b.local), &r, PDF_ATTACHMENT, pdf()).await,
        Meaning::Refused(Refusal::NotActive)
    );

    // Past the end of the process.
    let (_, r) = b.instance().await;
    b.http.process_next(&r, None).await.unwrap();
    b.http.process_next(&r, None).await.unwrap();
    let h = b.http.process_next(&r, None).await;
    let l = b.local.process_next(&r, None).await;
    assert!(matches!(same(h, l), Meaning::Refused(_)));

    let nowhere: InstanceId = format!("510001/{}", uuid::Uuid::new_v4()).parse().unwrap();
    let h = b.http.get_instance(&nowhere).await;
    let l = b.local.get_instance(&nowhere).await;
    assert_eq!(same(h, l), Meaning::NotFound);
    let h = b.http.delete_instance(&nowhere, false).await;
    let l = b.local.delete_instance(&nowhere, false).await;
    assert_eq!(same(h, l), Meaning::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_are_refused_the_same_in_process_and_over_http() {
    let b = Both::start().await;
    let (i, r) = b.instance().await;

    let (http, local) = clients(&b.emu, "not-a-token");
    let h = http.get_instance(&r).await;
    let l = local.get_instance(&r).await;
    assert_eq!(same(h, l), Meaning::Unauthorized);
    let h = http.query_page(&vec![], None).await;
    let l = local.query_page(&vec![], None).await;
    assert_eq!(same(h, l), Meaning::Unauthorized);

    // A user of another party.
    let (http, local) = clients(&b.emu, &b.emu.party_token("512345"));
    let h = http.get_instance(&r).await;
    let l = local.get_instance(&r).await;
    assert_eq!(same(h, l), Meaning::Forbidden);
    let h = http.create_instance(party("510001")).await;
    let l = local.create_instance(party("510001")).await;
    assert_eq!(same(h, l), Meaning::Forbidden);
    let h = http.query_page(&vec![], None).await;
    let l = local.query_page(&vec![], None).await;
    assert!(matches!(same(h, l), Meaning::Refused(Refusal::Invalid)));

    // A user of the instance's party, where the app forbids users to add elements.
    b.emu
        .update_app(|m| {
            let att = m
                .data_types
                .iter_mut()
                .find(|d| d.id == "attachment")
                .unwrap();
            att.app_logic = Some(ApplicationLogic {
                disallow_user_create: Some(true),
                ..Default::default()
            });
        })
        .unwrap();
    let (http, local) = clients(&b.emu, &b.emu.party_token(&i.party_id()));
    assert_eq!(
        post_both((&http, &local), &r, PDF_ATTACHMENT, pdf()).await,
        Meaning::Refused(Refusal::Disallowed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_writes_the_other_reads() {
    let b = Both::start().await;
    let (_, r) = b.instance().await;
    let el = post(
        &b.local,
        &r,
        ("attachment", "från hit.pdf", "application/pdf"),
        pdf(),
    )
    .await
    .unwrap();
    let over_http = b.http.list_data_elements(&r).await.unwrap();
    let seen = over_http
        .iter()
        .find(|e| e.id == el.id)
        .expect("listed over HTTP");
    assert_eq!(seen.filename, el.filename);
    assert_eq!(seen.size, el.size);
    let back = b.http.get_instance(&r).await.unwrap();
    let local = b.local.get_instance(&r).await.unwrap();
    assert_eq!(back.data.len(), local.data.len());
    assert_eq!(back.last_changed, local.last_changed);
    let mine: Vec<String> = b
        .local
        .query_instances(&vec![("instanceOwner.partyId".into(), "510001".into())])
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    let theirs: Vec<String> = b
        .http
        .query_instances(&vec![("instanceOwner.partyId".into(), "510001".into())])
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(mine, theirs);
}
