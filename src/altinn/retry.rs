//! `Retrying<C>`: the one retry policy, as a decorator over any `AltinnClient`.
//!
//! - Idempotent requests (the GETs, PUT of an element's bytes, DELETE) are retried with
//!   exponential backoff on a transient error (network, cut body, 5xx, 429, Storage's
//!   timeout-shaped 400), honouring `Retry-After` up to a limit.
//! - A POST of a new element whose outcome is unknown is sent again only after the instance's
//!   elements show that it was not stored (SPEC §4: a retry never makes a duplicate).
//! - A query page is retried from its own continuation token, with half the page size after a
//!   timeout-like failure (not below the minimum), and the size grows back after successes
//!   (SPEC §7.2: a failed page never restarts a listing from its first page).
//! - Requests that are neither idempotent nor checkable (create an instance, complete it,
//!   move its process) are sent once: only the caller can look at what happened.

use crate::altinn::client::*;
use crate::altinn::ids::{DataTypeId, ElementId, InstanceId, PartyId};
use crate::altinn::model::*;
use async_trait::async_trait;
use bytes::Bytes;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How often and how patiently to retry one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (1 = no retry).
    pub attempts: u32,
    /// First backoff; doubles per attempt, with jitter.
    pub base: Duration,
    /// The longest backoff between two tries.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a server asking for more gets its error back.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before try `attempt + 1` after `err`, or None to give up now (not
    /// transient, out of tries, or a `Retry-After` longer than we wait).
    pub fn wait(&self, attempt: u32, err: &AltinnError) -> Option<Duration> {
        if !err.is_transient() || attempt + 1 >= self.attempts {
            return None;
        }
        match err.retry_after() {
            Some(ra) if ra > self.max_retry_after => None,
            Some(ra) => Some(ra),
            None => Some(self.backoff(attempt)),
        }
    }

    /// `base * 2^attempt` capped, then drawn from its upper half so that clients that failed
    /// together do not come back together.
    fn backoff(&self, attempt: u32) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_backoff);
        let half = full / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// The page size of instance queries and how it adapts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagePolicy {
    /// The size asked for (`--page-size`, Storage's default is 100).
    pub size: usize,
    /// Halving stops here.
    pub min: usize,
    /// Consecutive good pages after which a shrunk size doubles again.
    pub grow_after: usize,
}

impl Default for PagePolicy {
    fn default() -> Self {
        Self::with_size(100)
    }
}

impl PagePolicy {
    /// Pages of `size` items; 0 asks for Storage's default, 100.
    pub fn with_size(size: usize) -> Self {
        let size = if size == 0 { 100 } else { size };
        Self {
            size,
            min: 10.min(size),
            grow_after: 4,
        }
    }
}

/// What a probe looks for after a POST whose answer was lost: the element it would have made.
struct ProbeFor<'a> {
    data_type: &'a DataTypeId,
    filename: &'a str,
    size: u64,
    /// When the first try started, by the local clock.
    since: chrono::DateTime<chrono::Utc>,
}

/// The server's clock may be behind ours: an element created this long before the first try
/// still counts as ours. Its name, type and size must match too, and the filesystem only
/// POSTs a name the directory does not hold, so an older same-named element is unlikely.
const PROBE_CLOCK_SKEW: Duration = Duration::from_secs(30);

impl ProbeFor<'_> {
    fn matches(&self, el: &DataElement) -> bool {
        let after_start = match el.created {
            Some(c) => c + PROBE_CLOCK_SKEW >= self.since,
            // Without a creation time the rest has to decide.
            None => true,
        };
        el.data_type == self.data_type.as_str()
            && el.filename.as_deref() == Some(self.filename)
            && el.size.max(0) as u64 == self.size
            && after_start
    }
}

/// Any client, with the retry policy around it.
pub struct Retrying<C> {
    inner: C,
    policy: RetryPolicy,
    pages: PagePolicy,
    /// The page size asked for now: shrinks on failing pages, grows back after good ones.
    page_size: AtomicUsize,
    good_pages: AtomicUsize,
}

impl<C: AltinnClient> Retrying<C> {
    pub fn new(inner: C, policy: RetryPolicy, pages: PagePolicy) -> Self {
        Self {
            inner,
            policy,
            page_size: AtomicUsize::new(pages.size),
            pages,
            good_pages: AtomicUsize::new(0),
        }
    }

    pub fn inner(&self) -> &C {
        &self.inner
    }

    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The page size the next query page asks for.
    pub fn page_size(&self) -> usize {
        self.page_size.load(Ordering::Relaxed)
    }

    /// Run an idempotent request until it succeeds, fails for good, or runs out of tries.
    async fn idempotent<T, F, Fut>(&self, op: &'static str, mut send: F) -> Result<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
        T: Send,
    {
        let mut attempt = 0;
        loop {
            let err = match send().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Some(wait) = self.policy.wait(attempt, &err) else {
                return Err(err);
            };
            tracing::info!(op, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// After a failed page: ask for half of what that page asked for (not below the minimum).
    fn shrink_pages(&self, failed_size: usize) {
        self.good_pages.store(0, Ordering::Relaxed);
        let half = (failed_size / 2).max(self.pages.min);
        self.page_size.fetch_min(half, Ordering::Relaxed);
    }

    /// After a good page: count it, and double a shrunk size after enough of them.
    fn page_succeeded(&self) {
        let good = self.good_pages.fetch_add(1, Ordering::Relaxed) + 1;
        let size = self.page_size();
        if size < self.pages.size && good >= self.pages.grow_after {
            self.good_pages.store(0, Ordering::Relaxed);
            let grown = (size * 2).min(self.pages.size);
            let _ =
                self.page_size
                    .compare_exchange(size, grown, Ordering::Relaxed, Ordering::Relaxed);
            tracing::debug!(page_size = grown, "query pages grow back");
        }
    }

    /// One page, `size` items asked for: the first page from `params`, a later one from its
    /// `next` link with the size in it replaced.
    async fn page_of_size(
        &self,
        params: &QueryParams,
        next: Option<&str>,
        size: usize,
    ) -> Result<QueryResponse> {
        match next {
            Some(n) => {
                let n = crate::altinn::http::with_page_size(n, size);
                self.inner.query_page(params, Some(&n)).await
            }
            None => {
                let mut sized: QueryParams = params
                    .iter()
                    .filter(|(k, _)| k != "size")
                    .cloned()
                    .collect();
                sized.push(("size".into(), size.to_string()));
                self.inner.query_page(&sized, None).await
            }
        }
    }

    /// Is the element a lost POST would have made there now? Listing is itself retried.
    async fn find_stored(
        &self,
        inst: &InstanceId,
        probe: &ProbeFor<'_>,
    ) -> Result<Option<DataElement>> {
        let els = self.list_data_elements(inst).await?;
        Ok(els.into_iter().find(|el| probe.matches(el)))
    }
}

#[async_trait]
impl<C: AltinnClient> AltinnClient for Retrying<C> {
    async fn application_metadata(&self) -> Result<ApplicationMetadata> {
        self.idempotent("GET applicationmetadata", || {
            self.inner.application_metadata()
        })
        .await
    }

    async fn parties(&self) -> Result<Vec<Party>> {
        self.idempotent("GET parties", || self.inner.parties())
            .await
    }

    /// One page, retried from its own token; halved after a timeout, a 5xx or Storage's
    /// timeout-shaped 400 (a 429 only waits: the server is busy, not slow on this page).
    async fn query_page(&self, params: &QueryParams, next: Option<&str>) -> Result<QueryResponse> {
        let mut attempt = 0;
        loop {
            let size = self.page_size();
            let err = match self.page_of_size(params, next, size).await {
                Ok(page) => {
                    self.page_succeeded();
                    return Ok(page);
                }
                Err(e) => e,
            };
            let Some(wait) = self.policy.wait(attempt, &err) else {
                return Err(err);
            };
            if err.status() != Some(429) {
                self.shrink_pages(size);
            }
            tracing::info!(
                op = "GET instances", attempt, page_size = self.page_size(),
                wait_ms = wait.as_millis() as u64, error = %err, "retrying the page"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn get_instance(&self, inst: &InstanceId) -> Result<Instance> {
        self.idempotent("GET instance", || self.inner.get_instance(inst))
            .await
    }

    async fn list_data_elements(&self, inst: &InstanceId) -> Result<Vec<DataElement>> {
        self.idempotent("GET dataelements", || self.inner.list_data_elements(inst))
            .await
    }

    /// Retries getting the answer; a body cut later reaches the reader as an error.
    async fn download(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download> {
        self.idempotent("GET data", || self.inner.download(inst, data_id))
            .await
    }

    /// One attempt: a prefetch gives its slot back on the first failure.
    async fn download_once(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download> {
        self.inner.download_once(inst, data_id).await
    }

    async fn get_form_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        accept: &str,
    ) -> Result<Bytes> {
        self.idempotent("GET data (form)", || {
            self.inner.get_form_data(inst, data_id, accept)
        })
        .await
    }

    /// POST, and on an unknown outcome look before sending again.
    async fn create_data(
        &self,
        inst: &InstanceId,
        new: NewElement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        let filename = new.filename;
        let probe = ProbeFor {
            data_type: new.data_type,
            filename,
            size: body.len(),
            since: chrono::Utc::now(),
        };
        let mut attempt = 0;
        loop {
            let sent = self.inner.create_data(inst, new, body.clone()).await;
            let err = match sent {
                Ok(el) => return Ok(el),
                Err(e) => e,
            };
            if !err.is_transient() {
                return Err(err);
            }
            // None: no more tries, but the last one may have landed too, so look anyway.
            let pause = self.policy.wait(attempt, &err);
            // Give a POST still in progress on the server the time to land before looking.
            tokio::time::sleep(pause.unwrap_or(self.policy.base)).await;
            match self.find_stored(inst, &probe).await {
                Ok(Some(el)) => {
                    tracing::info!(
                        "{filename}: the POST that failed ({err}) had stored it; not sending again"
                    );
                    return Ok(el);
                }
                Ok(None) if pause.is_none() => return Err(err),
                Ok(None) => {
                    tracing::info!("{filename}: POST failed ({err}), nothing stored; sending again")
                }
                Err(e) => {
                    tracing::warn!(
                        "{filename}: cannot check whether the failed POST stored it: {e}"
                    );
                    return Err(err);
                }
            }
            attempt += 1;
        }
    }

    async fn replace_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        replacement: Replacement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        self.idempotent("PUT data", || {
            self.inner
                .replace_data(inst, data_id, replacement, body.clone())
        })
        .await
    }

    /// DELETE, retried; a retry that finds the element gone means an earlier try, whose
    /// answer was lost, deleted it.
    async fn delete_data(&self, inst: &InstanceId, data_id: &ElementId) -> Result<()> {
        let mut tries = 0u32;
        let res = self
            .idempotent("DELETE data", || {
                tries += 1;
                let retried = tries > 1;
                async move {
                    match self.inner.delete_data(inst, data_id).await {
                        Err(e) if retried && e.meaning() == Meaning::NotFound => Ok(()),
                        r => r,
                    }
                }
            })
            .await;
        res
    }

    async fn create_instance(&self, party: PartyId) -> Result<Instance> {
        self.inner.create_instance(party).await
    }

    async fn delete_instance(&self, inst: &InstanceId, hard: bool) -> Result<Instance> {
        self.idempotent("DELETE instance", || self.inner.delete_instance(inst, hard))
            .await
    }

    async fn complete_instance(&self, inst: &InstanceId) -> Result<Instance> {
        self.inner.complete_instance(inst).await
    }

    async fn process_next(&self, inst: &InstanceId, action: Option<&str>) -> Result<ProcessState> {
        // A PUT, but not idempotent: a lost answer and a resend would move two steps.
        self.inner.process_next(inst, action).await
    }

    async fn stateless_create(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        accept: &str,
    ) -> Result<Bytes> {
        self.idempotent("GET v1/data", || {
            self.inner.stateless_create(data_type, party, accept)
        })
        .await
    }

    /// A POST without side effects (the app calculates and stores nothing): retried.
    async fn stateless_calculate(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        content_type: &str,
        body: Bytes,
        accept: &str,
    ) -> Result<Bytes> {
        self.idempotent("POST v1/data", || {
            self.inner
                .stateless_calculate(data_type, party, content_type, body.clone(), accept)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    fn answer(status: u16, message: &str, retry_after: Option<Duration>) -> AltinnError {
        AltinnError::from_answer(Answer {
            status,
            method: "GET",
            path: "/x",
            message: message.into(),
            problem: None,
            retry_after,
        })
    }

    fn storage_timeout() -> AltinnError {
        answer(400, "Exception while reading from stream", None)
    }

    fn lost() -> AltinnError {
        AltinnError::Network {
            method: "POST".into(),
            path: "/x".into(),
            message: "timed out".into(),
        }
    }

    /// What the scripted POST does on one call.
    #[derive(Clone, Copy)]
    enum Post {
        /// Store the element and answer.
        Store,
        /// Store it, then lose the answer.
        StoreThenLose,
        /// Lose the request: nothing stored.
        Lose,
        /// Refuse: max count.
        Refuse,
    }

    /// A fake Altinn that pages `total` instances by index tokens and plays a script of
    /// failures; it records every call the decorator makes.
    #[derive(Default)]
    struct Scripted {
        total: usize,
        /// Errors to answer, by the 0-based number of the query_page call.
        page_faults: Mutex<HashMap<usize, AltinnError>>,
        /// (continuation token, size) of every query_page call.
        pages: Mutex<Vec<(Option<usize>, usize)>>,
        posts: Mutex<VecDeque<Post>>,
        elements: Mutex<Vec<DataElement>>,
        /// Errors answered by the next calls of the other operations, in order.
        faults: Mutex<VecDeque<AltinnError>>,
        calls: Mutex<HashMap<&'static str, usize>>,
        /// The next DELETE deletes, then its answer is lost.
        lose_delete_answer: std::sync::atomic::AtomicBool,
    }

    impl Scripted {
        fn with_instances(total: usize) -> Self {
            Self {
                total,
                ..Default::default()
            }
        }
        fn count(&self, op: &'static str) -> usize {
            self.calls.lock().unwrap().get(op).copied().unwrap_or(0)
        }
        /// Count the call, then answer the next scripted fault if there is one.
        fn enter(&self, op: &'static str) -> Result<()> {
            *self.calls.lock().unwrap().entry(op).or_default() += 1;
            match self.faults.lock().unwrap().pop_front() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        fn page_calls(&self) -> Vec<(Option<usize>, usize)> {
            self.pages.lock().unwrap().clone()
        }
        fn store(&self, data_type: &str, filename: &str, size: u64) -> DataElement {
            let el = DataElement {
                id: format!("e{}", self.elements.lock().unwrap().len()),
                data_type: data_type.into(),
                filename: Some(filename.into()),
                size: size as i64,
                created: Some(chrono::Utc::now()),
                ..Default::default()
            };
            self.elements.lock().unwrap().push(el.clone());
            el
        }
    }

    fn query_arg(url: &str, key: &str) -> Option<usize> {
        let q = url.split_once('?')?.1;
        q.split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    }

    #[async_trait]
    impl AltinnClient for Scripted {
        async fn application_metadata(&self) -> Result<ApplicationMetadata> {
            self.enter("metadata")?;
            Ok(ApplicationMetadata::default())
        }
        async fn parties(&self) -> Result<Vec<Party>> {
            unreachable!("not scripted")
        }
        async fn query_page(
            &self,
            params: &QueryParams,
            next: Option<&str>,
        ) -> Result<QueryResponse> {
            let (token, size) = match next {
                Some(n) => (query_arg(n, "continuationToken"), query_arg(n, "size")),
                None => {
                    let size = params.iter().find(|(k, _)| k == "size");
                    (None, size.and_then(|(_, v)| v.parse().ok()))
                }
            };
            let size = size.expect("the decorator always asks for a size");
            let call = {
                let mut pages = self.pages.lock().unwrap();
                pages.push((token, size));
                pages.len() - 1
            };
            if let Some(e) = self.page_faults.lock().unwrap().remove(&call) {
                return Err(e);
            }
            let start = token.unwrap_or(0);
            let end = (start + size).min(self.total);
            let instances = (start..end)
                .map(|i| Instance {
                    id: format!("1/{i}"),
                    ..Default::default()
                })
                .collect();
            let next = (end < self.total)
                .then(|| format!("fake://instances?size={size}&continuationToken={end}"));
            Ok(QueryResponse {
                count: (end - start) as i64,
                self_link: None,
                next,
                instances,
            })
        }
        async fn get_instance(&self, _inst: &InstanceId) -> Result<Instance> {
            self.enter("get_instance")?;
            Ok(Instance::default())
        }
        async fn list_data_elements(&self, _inst: &InstanceId) -> Result<Vec<DataElement>> {
            self.enter("list")?;
            Ok(self.elements.lock().unwrap().clone())
        }
        async fn download(&self, _inst: &InstanceId, _id: &ElementId) -> Result<Download> {
            unreachable!("not scripted")
        }
        async fn get_form_data(&self, _i: &InstanceId, _d: &ElementId, _a: &str) -> Result<Bytes> {
            unreachable!("not scripted")
        }
        async fn create_data(
            &self,
            _inst: &InstanceId,
            new: NewElement<'_>,
            body: UploadBody,
        ) -> Result<DataElement> {
            let (data_type, filename) = (new.data_type.as_str(), new.filename);
            *self.calls.lock().unwrap().entry("create").or_default() += 1;
            let step = self
                .posts
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Post::Store);
            match step {
                Post::Store => Ok(self.store(data_type, filename, body.len())),
                Post::StoreThenLose => {
                    self.store(data_type, filename, body.len());
                    Err(lost())
                }
                Post::Lose => Err(lost()),
                Post::Refuse => Err(answer(409, "Max Count Exceeded", None)),
            }
        }
        async fn replace_data(
            &self,
            _i: &InstanceId,
            _d: &ElementId,
            _r: Replacement<'_>,
            _b: UploadBody,
        ) -> Result<DataElement> {
            self.enter("replace")?;
            Ok(DataElement::default())
        }
        async fn delete_data(&self, _inst: &InstanceId, data_id: &ElementId) -> Result<()> {
            self.enter("delete")?;
            let mut els = self.elements.lock().unwrap();
            match els.iter().position(|e| *data_id == e.id) {
                Some(i) => {
                    els.remove(i);
                    if self.lose_delete_answer.swap(false, Ordering::Relaxed) {
                        return Err(lost());
                    }
                    Ok(())
                }
                None => Err(answer(404, "Data Element Not Found", None)),
            }
        }
        async fn create_instance(&self, _party: PartyId) -> Result<Instance> {
            self.enter("create_instance")?;
            Ok(Instance::default())
        }
        async fn delete_instance(&self, _i: &InstanceId, _hard: bool) -> Result<Instance> {
            unreachable!("not scripted")
        }
        async fn complete_instance(&self, _inst: &InstanceId) -> Result<Instance> {
            unreachable!("not scripted")
        }
        async fn process_next(&self, _i: &InstanceId, _a: Option<&str>) -> Result<ProcessState> {
            self.enter("process_next")?;
            Ok(ProcessState::default())
        }
        async fn stateless_create(
            &self,
            _d: &DataTypeId,
            _p: Option<PartyId>,
            _a: &str,
        ) -> Result<Bytes> {
            unreachable!("not scripted")
        }
        async fn stateless_calculate(
            &self,
            _d: &DataTypeId,
            _p: Option<PartyId>,
            _c: &str,
            _b: Bytes,
            _a: &str,
        ) -> Result<Bytes> {
            unreachable!("not scripted")
        }
    }

    fn retrying(fake: Scripted) -> Retrying<Scripted> {
        Retrying::new(fake, RetryPolicy::default(), PagePolicy::with_size(100))
    }

    fn inst() -> InstanceId {
        InstanceId::parse("1/6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b").unwrap()
    }

    fn new_el<'a>(data_type: &'a DataTypeId, names: (&'a str, &'a str)) -> NewElement<'a> {
        NewElement {
            data_type,
            filename: names.0,
            content_type: names.1,
        }
    }

    fn dt(s: &str) -> DataTypeId {
        DataTypeId::parse(s).unwrap()
    }

    fn body(n: usize) -> UploadBody {
        UploadBody::Bytes(Bytes::from(vec![b'x'; n]))
    }

    /// The instance ids of a listing, checked to be 0..total, each once, in order.
    fn assert_whole(listing: &[Instance], total: usize) {
        let ids: Vec<String> = listing.iter().map(|i| i.id.clone()).collect();
        let want: Vec<String> = (0..total).map(|i| format!("1/{i}")).collect();
        assert_eq!(ids, want, "a gap or a duplicate in the listing");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_page_is_retried_from_its_own_token_at_half_size() {
        let fake = Scripted::with_instances(1000);
        // The third page (token 200) fails the way Storage does under load.
        fake.page_faults
            .lock()
            .unwrap()
            .insert(2, storage_timeout());
        let c = retrying(fake);
        let all = c.query_instances(&vec![]).await.unwrap();
        assert_whole(&all, 1000);
        let calls = c.inner().page_calls();
        assert_eq!(
            calls[..4],
            [
                (None, 100),
                (Some(100), 100),
                (Some(200), 100),
                (Some(200), 50)
            ]
        );
        assert_eq!(
            calls.iter().filter(|(t, _)| t.is_none()).count(),
            1,
            "the listing restarted from page 1: {calls:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_5xx_or_a_timeout_on_a_page_also_halves_it() {
        for err in [answer(503, "", None), lost()] {
            let fake = Scripted::with_instances(300);
            fake.page_faults.lock().unwrap().insert(1, err);
            let c = retrying(fake);
            assert_whole(&c.query_instances(&vec![]).await.unwrap(), 300);
            assert_eq!(c.inner().page_calls()[2], (Some(100), 50));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_page_size_stops_halving_at_the_minimum() {
        let fake = Scripted::with_instances(30);
        for call in 0..4 {
            fake.page_faults
                .lock()
                .unwrap()
                .insert(call, storage_timeout());
        }
        let c = retrying(fake);
        assert_whole(&c.query_instances(&vec![]).await.unwrap(), 30);
        let sizes: Vec<usize> = c.inner().page_calls().iter().map(|(_, s)| *s).collect();
        assert_eq!(sizes[..5], [100, 50, 25, 12, 10]);
        assert!(sizes.iter().all(|s| *s >= 10), "{sizes:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_page_size_grows_back_after_good_pages() {
        let fake = Scripted::with_instances(2000);
        fake.page_faults
            .lock()
            .unwrap()
            .insert(0, storage_timeout());
        let c = retrying(fake);
        assert_whole(&c.query_instances(&vec![]).await.unwrap(), 2000);
        let sizes: Vec<usize> = c.inner().page_calls().iter().map(|(_, s)| *s).collect();
        // Failed at 100, four good pages at 50, then 100 again.
        assert_eq!(sizes[..7], [100, 50, 50, 50, 50, 100, 100]);
        assert_eq!(c.page_size(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_page_that_keeps_failing_fails_the_listing_without_restarting_it() {
        let fake = Scripted::with_instances(500);
        for call in 1..20 {
            fake.page_faults
                .lock()
                .unwrap()
                .insert(call, storage_timeout());
        }
        let c = retrying(fake);
        let e = c.query_instances(&vec![]).await.unwrap_err();
        assert!(e.is_transient());
        let calls = c.inner().page_calls();
        assert_eq!(calls.len(), 1 + RetryPolicy::default().attempts as usize);
        assert!(calls[1..].iter().all(|(t, _)| *t == Some(100)), "{calls:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_waits_its_retry_after_and_keeps_the_page_size() {
        let fake = Scripted::with_instances(150);
        let busy = answer(429, "Too Many Requests", Some(Duration::from_secs(7)));
        fake.page_faults.lock().unwrap().insert(1, busy);
        let c = retrying(fake);
        let t0 = tokio::time::Instant::now();
        assert_whole(&c.query_instances(&vec![]).await.unwrap(), 150);
        assert!(t0.elapsed() >= Duration::from_secs(7), "{:?}", t0.elapsed());
        assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
        assert_eq!(c.inner().page_calls()[2], (Some(100), 100));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_for_any_idempotent_request() {
        let fake = Scripted::default();
        fake.faults
            .lock()
            .unwrap()
            .push_back(answer(503, "", Some(Duration::from_secs(4))));
        let c = retrying(fake);
        let t0 = tokio::time::Instant::now();
        c.get_instance(&inst()).await.unwrap();
        assert!(t0.elapsed() >= Duration::from_secs(4));
        assert_eq!(c.inner().count("get_instance"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_limit_is_the_error_at_once() {
        let fake = Scripted::default();
        let later = answer(503, "", Some(Duration::from_secs(3600)));
        fake.faults.lock().unwrap().push_back(later);
        let c = retrying(fake);
        let e = c.get_instance(&inst()).await.unwrap_err();
        assert_eq!(e.status(), Some(503));
        assert_eq!(c.inner().count("get_instance"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_not_retried_and_transient_errors_are_until_the_limit() {
        let fake = Scripted::default();
        fake.faults
            .lock()
            .unwrap()
            .push_back(answer(404, "Instance Not Found", None));
        let c = retrying(fake);
        assert!(c.get_instance(&inst()).await.is_err());
        assert_eq!(c.inner().count("get_instance"), 1);

        let fake = Scripted::default();
        for _ in 0..10 {
            fake.faults.lock().unwrap().push_back(answer(500, "", None));
        }
        let c = retrying(fake);
        assert!(c
            .replace_data(
                &inst(),
                &ElementId::parse("d").unwrap(),
                Replacement {
                    filename: "a.txt",
                    content_type: "text/plain",
                },
                body(1),
            )
            .await
            .is_err());
        assert_eq!(
            c.inner().count("replace"),
            RetryPolicy::default().attempts as usize
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_whose_answer_was_lost_is_found_and_not_sent_again() {
        let fake = Scripted::default();
        fake.posts.lock().unwrap().push_back(Post::StoreThenLose);
        let c = retrying(fake);
        let el = c
            .create_data(
                &inst(),
                new_el(&dt("attachments"), ("a.pdf", "application/pdf")),
                body(10),
            )
            .await
            .unwrap();
        assert_eq!(el.filename.as_deref(), Some("a.pdf"));
        assert_eq!(c.inner().count("create"), 1, "sent again");
        assert_eq!(c.inner().count("list"), 1);
        assert_eq!(c.inner().elements.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_that_never_arrived_is_sent_again_once() {
        let fake = Scripted::default();
        fake.posts.lock().unwrap().push_back(Post::Lose);
        let c = retrying(fake);
        c.create_data(
            &inst(),
            new_el(&dt("attachments"), ("a.pdf", "application/pdf")),
            body(10),
        )
        .await
        .unwrap();
        assert_eq!(c.inner().count("create"), 2);
        assert_eq!(c.inner().elements.lock().unwrap().len(), 1, "a duplicate");
    }

    #[tokio::test(start_paused = true)]
    async fn the_probe_ignores_an_older_element_of_the_same_name_and_another_size() {
        let fake = Scripted::default();
        fake.store("attachments", "a.pdf", 10);
        fake.elements.lock().unwrap()[0].created =
            Some(chrono::Utc::now() - chrono::Duration::hours(1));
        fake.store("attachments", "a.pdf", 11);
        fake.posts.lock().unwrap().push_back(Post::Lose);
        let c = retrying(fake);
        c.create_data(
            &inst(),
            new_el(&dt("attachments"), ("a.pdf", "application/pdf")),
            body(10),
        )
        .await
        .unwrap();
        assert_eq!(c.inner().count("create"), 2);
        assert_eq!(c.inner().elements.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_post_is_neither_probed_nor_sent_again() {
        let fake = Scripted::default();
        fake.posts.lock().unwrap().push_back(Post::Refuse);
        let c = retrying(fake);
        let e = c
            .create_data(
                &inst(),
                new_el(&dt("model"), ("m.xml", "application/xml")),
                body(3),
            )
            .await
            .unwrap_err();
        assert_eq!(e.meaning(), Meaning::Refused(Refusal::MaxCount));
        assert_eq!((c.inner().count("create"), c.inner().count("list")), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_that_keeps_failing_stops_after_the_attempts() {
        let fake = Scripted::default();
        for _ in 0..10 {
            fake.posts.lock().unwrap().push_back(Post::Lose);
        }
        let c = retrying(fake);
        let e = c
            .create_data(
                &inst(),
                new_el(&dt("attachments"), ("a.pdf", "application/pdf")),
                body(1),
            )
            .await
            .unwrap_err();
        assert!(e.is_transient());
        let attempts = RetryPolicy::default().attempts as usize;
        assert_eq!(c.inner().count("create"), attempts);
        // Each failure, the last one too, is looked for before giving up.
        assert_eq!(c.inner().count("list"), attempts);
        assert!(c.inner().elements.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_last_post_that_landed_is_found_rather_than_reported_failed() {
        let fake = Scripted::default();
        let attempts = RetryPolicy::default().attempts as usize;
        for _ in 1..attempts {
            fake.posts.lock().unwrap().push_back(Post::Lose);
        }
        fake.posts.lock().unwrap().push_back(Post::StoreThenLose);
        let c = retrying(fake);
        c.create_data(
            &inst(),
            new_el(&dt("attachments"), ("a.pdf", "application/pdf")),
            body(1),
        )
        .await
        .unwrap();
        assert_eq!(c.inner().count("create"), attempts);
        assert_eq!(c.inner().elements.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_delete_whose_answer_was_lost_is_done_when_the_retry_finds_nothing() {
        let fake = Scripted::default();
        let el = fake.store("attachments", "a.pdf", 1);
        fake.lose_delete_answer.store(true, Ordering::Relaxed);
        let c = retrying(fake);
        c.delete_data(&inst(), &el.id.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(c.inner().count("delete"), 2);
        assert!(c.inner().elements.lock().unwrap().is_empty());
        // A delete of something that never existed is still NotFound.
        let e = c
            .delete_data(&inst(), &"nope".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.meaning(), Meaning::NotFound);
    }

    #[tokio::test(start_paused = true)]
    async fn process_next_and_create_instance_are_sent_once() {
        let fake = Scripted::default();
        fake.faults.lock().unwrap().push_back(answer(503, "", None));
        fake.faults.lock().unwrap().push_back(answer(503, "", None));
        let c = retrying(fake);
        assert!(c.process_next(&inst(), None).await.is_err());
        assert!(c.create_instance("1".parse().unwrap()).await.is_err());
        assert_eq!(c.inner().count("process_next"), 1);
        assert_eq!(c.inner().count("create_instance"), 1);
    }

    #[test]
    fn backoff_doubles_within_bounds_with_jitter() {
        let p = RetryPolicy::default();
        let e = answer(500, "", None);
        for attempt in 0..4 {
            let w = p.wait(attempt, &e).unwrap();
            let full = p.base * (1 << attempt);
            assert!(w >= full / 2 && w <= full, "attempt {attempt}: {w:?}");
        }
        assert_eq!(p.wait(p.attempts - 1, &e), None);
        assert!(p.wait(30, &e).is_none());
        let capped = RetryPolicy { attempts: 100, ..p };
        assert!(capped.wait(40, &e).unwrap() <= p.max_backoff);
    }
}
