//! Work stealing between the slices of a listing in slices (`--list-parallel`). The slices
//! start as equal spans of time, but a real app's instances bunch up (a deadline, a busy
//! year), so one slice can hold most of them while the others end early. When a slice ends,
//! the running slice with the most pages likely ahead of it hands the far half of its rest
//! to a new slice: its end is lowered, and the new slice lists from there to the old end.
//! Pages ahead are estimated from the time its last page spanned (where instances bunch, the
//! last page says more than all before it), and a slice is split only with at least
//! `MIN_PAGES_LEFT` ahead, and not within the two pages it is fetching (no page twice).

use crate::altinn::model::Timestamp;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A slice with fewer pages likely ahead of it is not split: a new slice costs a query more
/// (its short last page), and a split near the end gains little.
const MIN_PAGES_LEFT: i64 = 4;

/// How far one slice got, and where it stops (shared by its `follow` and the scheduler).
#[derive(Debug)]
pub(super) struct Slice {
    state: Mutex<State>,
    /// Told of each page, for a scheduler waiting with a free worker.
    pages: Arc<Notify>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// Where it started (exclusive; None: the very start, known only after page 1).
    low: Option<Timestamp>,
    /// Where it stops (inclusive; None: open, the last slice).
    until: Option<Timestamp>,
    /// The newest `lastChanged` it applied.
    reached: Option<Timestamp>,
    /// Its last page had a `next` link: there is more to list.
    more: bool,
    /// The time its last page spanned (at least 1 µs).
    page_span: chrono::TimeDelta,
    ended: bool,
}

impl Slice {
    fn new(low: Option<Timestamp>, until: Option<Timestamp>, pages: Arc<Notify>) -> Arc<Self> {
        Arc::new(Self {
            pages,
            state: Mutex::new(State {
                low,
                until,
                reached: None,
                more: false,
                page_span: chrono::TimeDelta::microseconds(1),
                ended: false,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where it stops now (read before each page is applied).
    pub(super) fn until(&self) -> Option<Timestamp> {
        self.state().until
    }

    /// One more page applied; `newest` is the newest `lastChanged` applied so far, `more`
    /// whether the page had a `next` link.
    pub(super) fn page_applied(&self, newest: Option<Timestamp>, more: bool) {
        let mut s = self.state();
        if let (Some(before), Some(now)) = (s.reached.max(s.low), newest) {
            s.page_span = (now - before).max(chrono::TimeDelta::microseconds(1));
        }
        s.reached = s.reached.max(newest);
        s.more = more;
        drop(s);
        self.pages.notify_one();
    }

    pub(super) fn end(&self) {
        self.state().ended = true;
    }

    /// The pages likely ahead of it (the time left, in spans of its last page), when it is
    /// worth splitting: more pages are to come, and at least `MIN_PAGES_LEFT`.
    fn pages_left(&self, end: Option<Timestamp>) -> Option<i64> {
        let s = *self.state();
        let (from, to) = s.left(end)?;
        let pages = micros(to - from) / micros(s.page_span);
        (s.more && pages >= MIN_PAGES_LEFT).then_some(pages)
    }

    /// Lower its end to the middle of what it has left (but past the two pages it may be
    /// fetching), and return the span handed over: (after, until], `until` None for the open
    /// slice.
    fn split(&self, end: Option<Timestamp>) -> Option<(Timestamp, Option<Timestamp>)> {
        let mut s = self.state();
        let (from, to) = s.left(end)?;
        let mid = midpoint(from, to)?.max(from + s.page_span * 2);
        if mid >= to {
            return None;
        }
        let handed = (mid, s.until);
        s.until = Some(mid);
        Some(handed)
    }
}

impl State {
    /// The span of time it has yet to list, when there is one worth handing over.
    fn left(&self, end: Option<Timestamp>) -> Option<(Timestamp, Timestamp)> {
        if self.ended {
            return None;
        }
        let from = self.reached.max(self.low)?;
        let to = self.until.or(end)?;
        (to > from).then_some((from, to))
    }
}

fn micros(d: chrono::TimeDelta) -> i64 {
    d.num_microseconds().unwrap_or(i64::MAX)
}

/// The middle of (from, to) at whole microseconds (Storage's precision), strictly between.
fn midpoint(from: Timestamp, to: Timestamp) -> Option<Timestamp> {
    let mid = (from + (to - from) / 2).timestamp_micros();
    Timestamp::from_timestamp_micros(mid).filter(|m| *m > from && *m < to)
}

/// The slices of one listing, for the scheduler: at most `max` in all, so that the short last
/// page each slice ends with stays a bounded cost.
pub(super) struct Slices {
    all: Vec<Arc<Slice>>,
    max: usize,
    /// The newest instance when the listing began: the open slice's end.
    end: Option<Timestamp>,
    pages: Arc<Notify>,
}

impl Slices {
    pub(super) fn new(max: usize, end: Option<Timestamp>) -> Self {
        Self {
            all: Vec::new(),
            max,
            end,
            pages: Arc::new(Notify::new()),
        }
    }

    /// Until a slice applied a page (or one did since the last call): a free worker waits
    /// for a slice with more to come.
    pub(super) async fn page_applied(&self) {
        self.pages.notified().await
    }

    pub(super) fn add(&mut self, low: Option<Timestamp>, until: Option<Timestamp>) -> Arc<Slice> {
        let s = Slice::new(low, until, self.pages.clone());
        self.all.push(s.clone());
        s
    }

    /// A worker is free: split the slice with the most pages likely left, and return the span
    /// handed over, (after, until], for a new slice to `add`.
    pub(super) fn steal(&self) -> Option<(Timestamp, Option<Timestamp>)> {
        if self.all.len() >= self.max {
            return None;
        }
        let (_, busiest) = self
            .all
            .iter()
            .filter_map(|s| Some((s.pages_left(self.end)?, s)))
            .max_by_key(|(left, _)| *left)?;
        busiest.split(self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_timestamp(s, 0).unwrap()
    }

    /// What the scheduler does with a free worker: steal, and add the slice handed over.
    fn take(slices: &mut Slices) -> Option<(Arc<Slice>, Timestamp, Option<Timestamp>)> {
        let (after, until) = slices.steal()?;
        Some((slices.add(Some(after), until), after, until))
    }

    #[test]
    fn the_slice_with_the_most_time_left_hands_over_the_far_half() {
        let mut slices = Slices::new(8, Some(t(400)));
        let early = slices.add(Some(t(0)), Some(t(200)));
        let open = slices.add(Some(t(200)), None);
        early.page_applied(Some(t(150)), false);
        early.end();
        open.page_applied(Some(t(220)), true);
        let (new, after, until) = take(&mut slices).expect("a slice to split");
        assert_eq!(
            (after, until),
            (t(310), None),
            "the open end goes to the new slice"
        );
        assert_eq!(open.until(), Some(t(310)));
        assert_eq!(new.until(), None);
        // The new slice has no page yet: the old one, with 90 s left, is split next.
        let (_, after, until) = take(&mut slices).unwrap();
        assert_eq!((after, until), (t(265), Some(t(310))));
        new.page_applied(Some(t(320)), true);
        let (_, after, until) = take(&mut slices).unwrap();
        assert_eq!(
            (after, until),
            (t(360), None),
            "now the new one has the most left"
        );
    }

    #[test]
    fn slices_that_ended_or_have_no_more_pages_or_no_time_to_cut_are_not_split() {
        let mut slices = Slices::new(8, Some(t(10)));
        let last_page = slices.add(Some(t(0)), Some(t(1000)));
        last_page.page_applied(Some(t(5)), false);
        assert!(
            take(&mut slices).is_none(),
            "its last page had no next link"
        );
        let reached_end = slices.add(Some(t(0)), Some(t(10)));
        reached_end.page_applied(Some(t(10)), true);
        assert!(take(&mut slices).is_none(), "nothing left after t(10)");
        let tiny = slices.add(Some(t(0)), Timestamp::from_timestamp_micros(1));
        tiny.page_applied(Some(t(0)), true);
        assert!(take(&mut slices).is_none(), "less than four pages left");
        let unread = slices.add(Some(t(0)), Some(t(1000)));
        assert!(take(&mut slices).is_none(), "no page yet");
        unread.page_applied(None, true);
        unread.end();
        assert!(take(&mut slices).is_none(), "it ended");
    }

    #[test]
    fn no_more_slices_than_the_limit() {
        let mut slices = Slices::new(3, Some(t(1000)));
        let a = slices.add(Some(t(0)), None);
        a.page_applied(Some(t(1)), true);
        assert!(take(&mut slices).is_some());
        assert!(take(&mut slices).is_some());
        assert_eq!(slices.all.len(), 3);
        assert!(take(&mut slices).is_none());
    }
}
