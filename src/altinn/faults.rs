//! `FaultClient<C>`: wraps any client, counts its calls per operation, and fails chosen
//! calls (the Nth call of an operation) with a chosen fault: a transient server error, a
//! refusal, a network error before or after the request took effect, Storage's slow-query
//! 400, or an expired token. Test support: built only for tests and the `test-support`
//! feature, never into the release binary.

use crate::altinn::client::*;
use crate::altinn::ids::{DataTypeId, ElementId, InstanceId, PartyId};
use crate::altinn::model::*;
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// The operations of `AltinnClient`, for counting and aiming faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Metadata,
    Parties,
    QueryPage,
    GetInstance,
    ListElements,
    Download,
    GetFormData,
    CreateData,
    ReplaceData,
    DeleteData,
    CreateInstance,
    DeleteInstance,
    CompleteInstance,
    ProcessNext,
    StatelessCreate,
    StatelessCalculate,
}

/// When a fault strikes, relative to the wrapped call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// Instead of the call: nothing reaches the server.
    Before,
    /// After the call took effect: its answer is lost (a write's outcome is unknown).
    After,
}

/// One injected failure: the error the caller gets, and when.
#[derive(Debug, Clone)]
pub struct Fault {
    pub error: AltinnError,
    pub strike: Strike,
}

impl Fault {
    /// A 503, optionally with `Retry-After`.
    pub fn transient(retry_after: Option<Duration>) -> Self {
        Self::before(answer(503, "Service Unavailable".into(), None, retry_after))
    }

    /// A 429 with `Retry-After`.
    pub fn too_many_requests(retry_after: Duration) -> Self {
        Self::before(answer(
            429,
            "Too Many Requests".into(),
            None,
            Some(retry_after),
        ))
    }

    /// Storage's answer to a query that timed out in its database (altinn-storage#634).
    pub fn storage_timeout() -> Self {
        let text = "Exception while reading from stream".to_string();
        Self::before(answer(400, text, None, None))
    }

    /// The connection fails before the request arrives.
    pub fn network() -> Self {
        Self::before(network_error())
    }

    /// The request takes effect, then the connection fails: the answer is lost.
    pub fn lost_answer() -> Self {
        Self {
            error: network_error(),
            strike: Strike::After,
        }
    }

    /// The token expired and could not be refreshed: 401.
    pub fn token_expired() -> Self {
        Self::before(answer(401, String::new(), None, None))
    }

    /// Altinn refuses, in the words and codes it uses for that refusal, so the error goes
    /// through the same parser as a real answer.
    pub fn refusal(refusal: Refusal) -> Self {
        let (status, text, problem) = refusal_answer(&refusal);
        Self::before(answer(status, text, problem, None))
    }

    /// Any error, instead of the call.
    pub fn before(error: AltinnError) -> Self {
        Self {
            error,
            strike: Strike::Before,
        }
    }
}

fn answer(
    status: u16,
    message: String,
    problem: Option<ProblemDetails>,
    retry_after: Option<Duration>,
) -> AltinnError {
    AltinnError::from_answer(Answer {
        status,
        method: "FAULT",
        path: "/injected",
        message,
        problem,
        retry_after,
    })
}

fn network_error() -> AltinnError {
    AltinnError::Network {
        method: "FAULT".into(),
        path: "/injected".into(),
        message: "connection reset (injected)".into(),
    }
}

/// The status and words Altinn answers a refusal with (altinn-api.md §1.3).
fn refusal_answer(refusal: &Refusal) -> (u16, String, Option<ProblemDetails>) {
    let text = |s: &str| s.to_string();
    match refusal {
        Refusal::MaxCount => (409, text("Max Count Exceeded"), None),
        Refusal::Locked => (
            409,
            text("Data element is locked and cannot be updated"),
            None,
        ),
        Refusal::NotActive => (409, text("Instance Not Active"), None),
        Refusal::NoCurrentTask => (409, text("Process is ended."), None),
        Refusal::MainForm => (400, text("Cannot Delete main data element"), None),
        Refusal::Disallowed => (400, text("User Create Disallowed"), None),
        Refusal::Rule(code) => {
            let issue = ValidationIssue {
                severity: 1,
                code: Some(code.clone()),
                description: Some(format!("{code} (injected)")),
                ..Default::default()
            };
            let problem = ProblemDetails {
                title: Some("File validation failed".into()),
                upload_validation_issues: Some(vec![issue]),
                ..Default::default()
            };
            (
                400,
                format!("File validation failed; {code}"),
                Some(problem),
            )
        }
        Refusal::ContentType => (415, text("Unsupported content type"), None),
        Refusal::TooLarge => (413, text("Request too large"), None),
        Refusal::Invalid => (400, text("Invalid data provided"), None),
        Refusal::Conflict => (409, text("Conflict"), None),
    }
}

#[derive(Default)]
struct Plan {
    calls: HashMap<Op, usize>,
    /// (operation, 1-based call number) → the fault of that call.
    faults: HashMap<(Op, usize), Fault>,
}

/// Any client, with calls counted and chosen calls failed.
pub struct FaultClient<C> {
    inner: C,
    plan: Mutex<Plan>,
}

impl<C: AltinnClient> FaultClient<C> {
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            plan: Mutex::new(Plan::default()),
        }
    }

    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Fail the `n`th call (1-based, counted from the start) of `op`.
    pub fn fail_call(&self, op: Op, n: usize, fault: Fault) {
        self.plan.lock().unwrap().faults.insert((op, n), fault);
    }

    /// Fail the next call of `op`.
    pub fn fail_next(&self, op: Op, fault: Fault) {
        let n = self.calls(op) + 1;
        self.fail_call(op, n, fault);
    }

    /// Calls of `op` so far, failed ones included.
    pub fn calls(&self, op: Op) -> usize {
        self.plan
            .lock()
            .unwrap()
            .calls
            .get(&op)
            .copied()
            .unwrap_or(0)
    }

    /// Calls of all operations so far.
    pub fn total_calls(&self) -> usize {
        self.plan.lock().unwrap().calls.values().sum()
    }

    /// Count the call and take its fault, if one is planned.
    fn enter(&self, op: Op) -> Option<Fault> {
        let mut plan = self.plan.lock().unwrap();
        let n = {
            let c = plan.calls.entry(op).or_default();
            *c += 1;
            *c
        };
        plan.faults.remove(&(op, n))
    }

    /// Run one call of `op` with its planned fault, if any.
    async fn call<T, Fut>(&self, op: Op, send: Fut) -> Result<T>
    where
        Fut: Future<Output = Result<T>> + Send,
    {
        match self.enter(op) {
            None => send.await,
            Some(Fault {
                error,
                strike: Strike::Before,
            }) => Err(error),
            Some(Fault {
                error,
                strike: Strike::After,
            }) => {
                // The call takes effect; its answer (a value or an error) never arrives.
                let _ = send.await;
                Err(error)
            }
        }
    }
}

#[async_trait]
impl<C: AltinnClient> AltinnClient for FaultClient<C> {
    async fn application_metadata(&self) -> Result<ApplicationMetadata> {
        self.call(Op::Metadata, self.inner.application_metadata())
            .await
    }

    async fn parties(&self) -> Result<Vec<Party>> {
        self.call(Op::Parties, self.inner.parties()).await
    }

    async fn query_page(&self, params: &QueryParams, next: Option<&str>) -> Result<QueryResponse> {
        self.call(Op::QueryPage, self.inner.query_page(params, next))
            .await
    }

    async fn get_instance(&self, inst: &InstanceId) -> Result<Instance> {
        self.call(Op::GetInstance, self.inner.get_instance(inst))
            .await
    }

    async fn list_data_elements(&self, inst: &InstanceId) -> Result<Vec<DataElement>> {
        self.call(Op::ListElements, self.inner.list_data_elements(inst))
            .await
    }

    async fn download(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download> {
        self.call(Op::Download, self.inner.download(inst, data_id))
            .await
    }

    async fn download_once(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download> {
        self.call(Op::Download, self.inner.download_once(inst, data_id))
            .await
    }

    async fn get_form_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        accept: &str,
    ) -> Result<Bytes> {
        let send = self.inner.get_form_data(inst, data_id, accept);
        self.call(Op::GetFormData, send).await
    }

    async fn create_data(
        &self,
        inst: &InstanceId,
        new: NewElement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        let send = self.inner.create_data(inst, new, body);
        self.call(Op::CreateData, send).await
    }

    async fn replace_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        replacement: Replacement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        let send = self.inner.replace_data(inst, data_id, replacement, body);
        self.call(Op::ReplaceData, send).await
    }

    async fn delete_data(&self, inst: &InstanceId, data_id: &ElementId) -> Result<()> {
        self.call(Op::DeleteData, self.inner.delete_data(inst, data_id))
            .await
    }

    async fn create_instance(&self, party: PartyId) -> Result<Instance> {
        self.call(Op::CreateInstance, self.inner.create_instance(party))
            .await
    }

    async fn delete_instance(&self, inst: &InstanceId, hard: bool) -> Result<Instance> {
        self.call(Op::DeleteInstance, self.inner.delete_instance(inst, hard))
            .await
    }

    async fn complete_instance(&self, inst: &InstanceId) -> Result<Instance> {
        self.call(Op::CompleteInstance, self.inner.complete_instance(inst))
            .await
    }

    async fn process_next(&self, inst: &InstanceId, action: Option<&str>) -> Result<ProcessState> {
        self.call(Op::ProcessNext, self.inner.process_next(inst, action))
            .await
    }

    async fn stateless_create(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        accept: &str,
    ) -> Result<Bytes> {
        let send = self.inner.stateless_create(data_type, party, accept);
        self.call(Op::StatelessCreate, send).await
    }

    async fn stateless_calculate(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        content_type: &str,
        body: Bytes,
        accept: &str,
    ) -> Result<Bytes> {
        let send = self
            .inner
            .stateless_calculate(data_type, party, content_type, body, accept);
        self.call(Op::StatelessCalculate, send).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::altinn::retry::{PagePolicy, RetryPolicy, Retrying};
    use crate::emulator::inprocess::InProcessClient;

    fn sample() -> (FaultClient<InProcessClient>, InstanceId) {
        let mem = InProcessClient::sample();
        let inst = InstanceId::of(&mem.instances()[0]).unwrap();
        (FaultClient::new(mem), inst)
    }

    fn pdf() -> UploadBody {
        UploadBody::Bytes(Bytes::from_static(b"%PDF-1.4 x"))
    }

    #[tokio::test]
    async fn counts_calls_per_operation() {
        let (c, inst) = sample();
        c.get_instance(&inst).await.unwrap();
        c.get_instance(&inst).await.unwrap();
        c.list_data_elements(&inst).await.unwrap();
        assert_eq!(c.calls(Op::GetInstance), 2);
        assert_eq!(c.calls(Op::ListElements), 1);
        assert_eq!(c.calls(Op::CreateData), 0);
        assert_eq!(c.total_calls(), 3);
    }

    #[tokio::test]
    async fn fails_exactly_the_nth_call_of_an_operation() {
        let (c, _) = sample();
        c.inner().set_page_size(1);
        c.fail_call(Op::QueryPage, 2, Fault::storage_timeout());
        let first = c.query_page(&vec![], None).await.unwrap();
        let next = first.next.expect("a second page");
        let e = c.query_page(&vec![], Some(&next)).await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert_eq!(e.status(), Some(400));
        let again = c.query_page(&vec![], Some(&next)).await.unwrap();
        assert_eq!(again.instances.len(), 1);
        assert_eq!(c.calls(Op::QueryPage), 3);
    }

    #[tokio::test]
    async fn a_fault_before_the_call_changes_nothing_and_one_after_loses_the_answer() {
        let (c, inst) = sample();
        let before = c
            .inner()
            .instance(&inst.guid.to_string())
            .unwrap()
            .data
            .len();
        c.fail_next(Op::CreateData, Fault::network());
        let e = c
            .create_data(
                &inst,
                NewElement {
                    data_type: &"attachments".parse().unwrap(),
                    filename: "a.pdf",
                    content_type: "application/pdf",
                },
                pdf(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, AltinnError::Network { .. }));
        assert_eq!(
            c.inner()
                .instance(&inst.guid.to_string())
                .unwrap()
                .data
                .len(),
            before
        );

        c.fail_next(Op::CreateData, Fault::lost_answer());
        assert!(c
            .create_data(
                &inst,
                NewElement {
                    data_type: &"attachments".parse().unwrap(),
                    filename: "b.pdf",
                    content_type: "application/pdf"
                },
                pdf()
            )
            .await
            .is_err());
        let data = c.inner().instance(&inst.guid.to_string()).unwrap().data;
        assert_eq!(data.len(), before + 1, "the lost POST took effect");
        assert!(data.iter().any(|d| d.filename.as_deref() == Some("b.pdf")));
    }

    #[tokio::test]
    async fn refusals_carry_their_meaning_through_the_real_parser() {
        let all = [
            Refusal::MaxCount,
            Refusal::Locked,
            Refusal::NotActive,
            Refusal::NoCurrentTask,
            Refusal::MainForm,
            Refusal::Disallowed,
            Refusal::Rule("ContentTypeNotAllowed".into()),
            Refusal::ContentType,
            Refusal::TooLarge,
            Refusal::Invalid,
            Refusal::Conflict,
        ];
        let (c, inst) = sample();
        for r in all {
            c.fail_next(Op::DeleteData, Fault::refusal(r.clone()));
            let e = c
                .delete_data(&inst, &"x".parse().unwrap())
                .await
                .unwrap_err();
            assert_eq!(e.meaning(), Meaning::Refused(r.clone()), "{r:?}: {e}");
        }
    }

    #[tokio::test]
    async fn transient_and_expired_token_faults_mean_what_they_say() {
        let (c, inst) = sample();
        let wait = Duration::from_secs(3);
        c.fail_next(Op::GetInstance, Fault::too_many_requests(wait));
        let e = c.get_instance(&inst).await.unwrap_err();
        assert_eq!(
            e.meaning(),
            Meaning::Transient {
                retry_after: Some(wait)
            }
        );
        c.fail_next(Op::GetInstance, Fault::transient(None));
        let e = c.get_instance(&inst).await.unwrap_err();
        assert_eq!(e.meaning(), Meaning::Transient { retry_after: None });
        c.fail_next(Op::GetInstance, Fault::token_expired());
        let e = c.get_instance(&inst).await.unwrap_err();
        assert_eq!(e.meaning(), Meaning::Unauthorized);
        assert!(c.get_instance(&inst).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn under_retrying_a_lost_post_answer_makes_no_duplicate() {
        let (c, inst) = sample();
        let before = c
            .inner()
            .instance(&inst.guid.to_string())
            .unwrap()
            .data
            .len();
        c.fail_next(Op::CreateData, Fault::lost_answer());
        let c = Retrying::new(c, RetryPolicy::default(), PagePolicy::default());
        let el = c
            .create_data(
                &inst,
                NewElement {
                    data_type: &"attachments".parse().unwrap(),
                    filename: "once.pdf",
                    content_type: "application/pdf",
                },
                pdf(),
            )
            .await
            .unwrap();
        assert_eq!(el.filename.as_deref(), Some("once.pdf"));
        assert_eq!(c.inner().calls(Op::CreateData), 1);
        assert_eq!(c.inner().calls(Op::ListElements), 1);
        let data = c
            .inner()
            .inner()
            .instance(&inst.guid.to_string())
            .unwrap()
            .data;
        assert_eq!(data.len(), before + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn under_retrying_a_failing_page_is_fetched_again_from_its_token() {
        let (c, _) = sample();
        c.inner().set_page_size(1);
        let total = c.inner().instances().len();
        c.fail_call(Op::QueryPage, 3, Fault::storage_timeout());
        let c = Retrying::new(c, RetryPolicy::default(), PagePolicy::default());
        let all = c.query_instances(&vec![]).await.unwrap();
        let mut ids: Vec<String> = all.iter().map(|i| i.id.clone()).collect();
        ids.dedup();
        assert_eq!(ids.len(), total);
        // One page per instance, Storage's empty page after the last full one, and the one
        // retried page: nothing started over.
        assert_eq!(c.inner().calls(Op::QueryPage), total + 2);
    }
}
