//! The invoice index flushed by the server when it is quiet, and when entries have
//! waited too long.
//!
//! The index is written without RocksDB's write-ahead log (`storage/index_lag.rs`): what
//! its memtables hold is lost in a crash and derived again from the log by the next open,
//! and a read-only view of a running server's directory (`verify`, an offline export, a
//! `backup` beside it) derives it too, in memory. RocksDB flushes a memtable only when it
//! is full (~467 k entries), so left alone a server that has gone quiet keeps up to a
//! memtable or two unflushed for as long as it stays quiet: the auditor's `verify` at night
//! would derive ~10^6 entries (~1 s, ~200 MB) every time. So the server looks at the
//! index's memtables every second or so ([`IndexFlushWatch`], pure and tested apart) and
//! flushes them:
//! - **idle**: no batch committed for `index_flush_idle_ms` (2 s) and at least
//!   [`IDLE_FLUSH_ENTRIES_MIN`] entries waiting (fewer take microseconds to derive; a
//!   flush for every lone invoice of a quiet day would only make table files to merge);
//! - **age**: entries have waited `index_flush_age_seconds` (10 min) however busy the
//!   server is, so a steady trickle that never leaves it idle, nor fills a memtable for
//!   hours, is bounded too.
//!
//! A flush that fails (a full disk, say) is counted and retried after a wait that doubles
//! from [`INDEX_FLUSH_RETRY_MS_MIN`] to [`INDEX_FLUSH_RETRY_MS_MAX`], so a failing disk is
//! not asked twice a second; a flush that succeeds, or an index RocksDB emptied itself,
//! resets the wait.
//!
//! Under a full load neither fires (a memtable fills in about a second, and RocksDB's own
//! flush empties it), so the bound there stays RocksDB's: two memtables. A flush never
//! splits an index part from its watermark (each is one write), so it changes nothing a
//! crash would leave but the size of the gap.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::ledger::engine::EngineHandle;
use crate::limits::{IDLE_FLUSH_ENTRIES_MIN, INDEX_FLUSH_RETRY_MS_MAX, INDEX_FLUSH_RETRY_MS_MIN};

/// When the server flushes the invoice index: `None` turns a rule off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexFlushPolicy {
    /// Flush once no batch has been committed for this long (and enough entries wait).
    pub idle: Option<Duration>,
    /// Flush once unflushed entries have waited this long, however busy.
    pub age: Option<Duration>,
}

impl IndexFlushPolicy {
    /// From the `[server]` settings, in which 0 means off.
    pub fn from_settings(idle_ms: u64, age_seconds: u64) -> IndexFlushPolicy {
        IndexFlushPolicy {
            idle: (idle_ms > 0).then(|| Duration::from_millis(idle_ms)),
            age: (age_seconds > 0).then(|| Duration::from_secs(age_seconds)),
        }
    }

    pub fn is_off(&self) -> bool {
        self.idle.is_none() && self.age.is_none()
    }

    /// How long the flusher sleeps between looks: a quarter of the shorter rule, within
    /// `limits::INDEX_FLUSH_CHECK_MS_MIN..=INDEX_FLUSH_CHECK_MS_MAX`. A look is two
    /// RocksDB property reads.
    pub fn pause(&self) -> Duration {
        let shortest = [self.idle, self.age]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Duration::MAX);
        (shortest / 4).clamp(
            Duration::from_millis(crate::limits::INDEX_FLUSH_CHECK_MS_MIN),
            Duration::from_millis(crate::limits::INDEX_FLUSH_CHECK_MS_MAX),
        )
    }
}

/// Why a flush was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushReason {
    Idle,
    Age,
}

impl FlushReason {
    pub fn name(self) -> &'static str {
        match self {
            FlushReason::Idle => "idle",
            FlushReason::Age => "age",
        }
    }
}

/// What the flusher has seen between looks, and the decision at each look. Time comes in
/// with every call, so it is tested without a clock.
#[derive(Debug)]
pub struct IndexFlushWatch {
    policy: IndexFlushPolicy,
    /// The committed sequence at the last look, and since when it has not moved.
    committed: u64,
    quiet_since: Instant,
    /// Unflushed entries at the last look, and since when (about) the oldest of them waits.
    unflushed: u64,
    waiting_since: Option<Instant>,
    /// After a failed flush: no flush is asked for before this, and the wait the next
    /// failure will set (doubled each time, reset by a flush that succeeds).
    retry_not_before: Option<Instant>,
    retry_wait: Duration,
}

impl IndexFlushWatch {
    pub fn new(policy: IndexFlushPolicy, committed: u64, now: Instant) -> IndexFlushWatch {
        IndexFlushWatch {
            policy,
            committed,
            quiet_since: now,
            unflushed: 0,
            waiting_since: None,
            retry_not_before: None,
            retry_wait: Duration::from_millis(INDEX_FLUSH_RETRY_MS_MIN),
        }
    }

    /// One look: the committed sequence and the unflushed entries now. Returns why the
    /// index should be flushed now, if it should.
    pub fn observe(&mut self, now: Instant, committed: u64, unflushed: u64) -> Option<FlushReason> {
        if committed != self.committed {
            self.committed = committed;
            self.quiet_since = now;
        }
        if unflushed == 0 {
            self.waiting_since = None;
            // RocksDB flushed everything itself: the disk writes again, so a later
            // failure starts from the shortest wait.
            self.forget_failures();
        } else if self.waiting_since.is_none() || unflushed < self.unflushed {
            // Fewer than before: RocksDB flushed a memtable on its own, so what waits now
            // came after it (about: the count does not say how much of it is new).
            self.waiting_since = Some(now);
        }
        self.unflushed = unflushed;
        let waiting_since = self.waiting_since?;
        if self
            .retry_not_before
            .is_some_and(|not_before| now < not_before)
        {
            return None;
        }
        if let Some(idle) = self.policy.idle {
            if unflushed >= IDLE_FLUSH_ENTRIES_MIN && now.duration_since(self.quiet_since) >= idle {
                return Some(FlushReason::Idle);
            }
        }
        if let Some(age) = self.policy.age {
            if now.duration_since(waiting_since) >= age {
                return Some(FlushReason::Age);
            }
        }
        None
    }

    /// The flush asked for is done: nothing waits any more (what came meanwhile is
    /// counted from the next look).
    pub fn flushed(&mut self) {
        self.unflushed = 0;
        self.waiting_since = None;
        self.forget_failures();
    }

    /// The disk has written the index: no wait, and the next failure waits the least.
    fn forget_failures(&mut self) {
        self.retry_not_before = None;
        self.retry_wait = Duration::from_millis(INDEX_FLUSH_RETRY_MS_MIN);
    }

    /// The flush asked for failed at `now`: returns how long the next attempt waits (the
    /// rules still have to ask for it then): the shortest wait after a success or an
    /// empty index, else twice the last, at most `INDEX_FLUSH_RETRY_MS_MAX`.
    pub fn flush_failed(&mut self, now: Instant) -> Duration {
        let wait = self.retry_wait;
        self.retry_not_before = Some(now + wait);
        self.retry_wait = (wait * 2).min(Duration::from_millis(INDEX_FLUSH_RETRY_MS_MAX));
        wait
    }
}

/// Looks at the invoice index every [`IndexFlushPolicy::pause`] and flushes it when the
/// policy says so, until `stopping` turns true. Counts what it did in the engine's status
/// (the `/metrics` exposition reads it there).
pub async fn run(
    engine: EngineHandle,
    policy: IndexFlushPolicy,
    mut stopping: watch::Receiver<bool>,
) {
    if policy.is_off() {
        return;
    }
    let pause = policy.pause();
    let mut flush_watch = IndexFlushWatch::new(policy, engine.committed_sequence(), Instant::now());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        // A ledger that failed a write refuses everything until restarted; its index is
        // left as the failure left it.
        if engine.failure_watch().borrow().is_some() {
            continue;
        }
        let unflushed = match engine.reader().invoice_index_unflushed_entries() {
            Ok(unflushed) => unflushed,
            Err(error) => {
                tracing::warn!(%error, "cannot read the invoice index's unflushed entries");
                continue;
            }
        };
        let Some(reason) =
            flush_watch.observe(Instant::now(), engine.committed_sequence(), unflushed)
        else {
            continue;
        };
        let started = Instant::now();
        let flushing = engine.clone();
        let result =
            tokio::task::spawn_blocking(move || flushing.reader().flush_invoice_index()).await;
        let status = engine.status();
        match result {
            Ok(Ok(())) => {
                let counter = match reason {
                    FlushReason::Idle => &status.index_flushes_idle,
                    FlushReason::Age => &status.index_flushes_age,
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                flush_watch.flushed();
                tracing::info!(
                    reason = reason.name(),
                    entries = unflushed,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "invoice index flushed"
                );
            }
            Ok(Err(error)) => {
                status
                    .index_flush_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let retry_in = flush_watch.flush_failed(Instant::now());
                tracing::warn!(%error, reason = reason.name(), retry_in_ms = retry_in.as_millis() as u64, "flushing the invoice index failed; a crash would derive its entries from the log");
            }
            Err(error) => {
                status
                    .index_flush_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let retry_in = flush_watch.flush_failed(Instant::now());
                tracing::warn!(%error, retry_in_ms = retry_in.as_millis() as u64, "the invoice index's flush did not finish");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn policy() -> IndexFlushPolicy {
        IndexFlushPolicy::from_settings(2_000, 600)
    }

    #[test]
    fn a_quiet_server_with_enough_waiting_is_flushed_once_idle_long_enough() {
        let start = Instant::now();
        let mut watch = IndexFlushWatch::new(policy(), 10, start);
        // Given batches still arriving, with entries waiting
        assert_eq!(watch.observe(start + SECOND, 20, 5_000), None);
        // When nothing is committed for less than the idle time, nothing happens
        assert_eq!(watch.observe(start + 2 * SECOND, 20, 5_000), None);
        // Then at the idle time since the last batch, a flush
        assert_eq!(
            watch.observe(start + 3 * SECOND, 20, 5_000),
            Some(FlushReason::Idle)
        );
        watch.flushed();
        // ... and none again while nothing waits
        assert_eq!(watch.observe(start + 10 * SECOND, 20, 0), None);
    }

    #[test]
    fn a_quiet_server_with_few_entries_waiting_is_flushed_only_when_they_are_old() {
        let start = Instant::now();
        let mut watch = IndexFlushWatch::new(policy(), 10, start);
        assert_eq!(watch.observe(start, 11, 2), None);
        assert_eq!(watch.observe(start + 60 * SECOND, 11, 2), None);
        assert_eq!(watch.observe(start + 599 * SECOND, 11, 2), None);
        assert_eq!(
            watch.observe(start + 600 * SECOND, 11, 2),
            Some(FlushReason::Age)
        );
    }

    #[test]
    fn a_busy_server_is_flushed_on_age_and_rocksdbs_own_flush_restarts_the_wait() {
        let start = Instant::now();
        let mut watch = IndexFlushWatch::new(policy(), 0, start);
        let mut committed = 0;
        let mut look = |at: u64, unflushed: u64| {
            committed += 1;
            watch.observe(start + SECOND * at as u32, committed, unflushed)
        };
        assert_eq!(look(1, 100), None);
        assert_eq!(look(300, 400_000), None);
        // RocksDB flushed a full memtable at ~400 s: the wait starts again
        assert_eq!(look(400, 1_000), None);
        assert_eq!(look(700, 300_000), None);
        assert_eq!(look(999, 450_000), None);
        assert_eq!(look(1_000, 450_001), Some(FlushReason::Age));
    }

    #[test]
    fn rules_set_to_zero_are_off() {
        let off = IndexFlushPolicy::from_settings(0, 0);
        assert!(off.is_off());
        let start = Instant::now();
        let mut watch = IndexFlushWatch::new(off, 0, start);
        assert_eq!(watch.observe(start + 100_000 * SECOND, 0, 1_000_000), None);
        let age_only = IndexFlushPolicy::from_settings(0, 60);
        let mut watch = IndexFlushWatch::new(age_only, 0, start);
        assert_eq!(watch.observe(start, 0, 1_000_000), None);
        assert_eq!(watch.observe(start + 59 * SECOND, 0, 1_000_000), None);
        assert_eq!(
            watch.observe(start + 60 * SECOND, 0, 1_000_000),
            Some(FlushReason::Age)
        );
    }

    /// A quiet server (sequence 10, 5,000 entries waiting) whose idle flush is due now.
    fn watch_with_an_idle_flush_due() -> (IndexFlushWatch, Instant) {
        let start = Instant::now();
        let mut watch = IndexFlushWatch::new(policy(), 10, start);
        let now = start + 3 * SECOND;
        assert_eq!(watch.observe(now, 10, 5_000), Some(FlushReason::Idle));
        (watch, now)
    }

    #[test]
    fn a_failed_flush_is_retried_after_a_wait_that_doubles_and_resets_on_success() {
        let ms = Duration::from_millis;
        // Given a quiet server whose flush is due
        let (mut watch, mut now) = watch_with_an_idle_flush_due();
        // When flushes keep failing, each wait is twice the last, up to the limit
        let mut expected = ms(INDEX_FLUSH_RETRY_MS_MIN);
        for _ in 0..10 {
            assert_eq!(watch.flush_failed(now), expected);
            assert_eq!(watch.observe(now + expected - ms(1), 10, 5_000), None);
            now += expected;
            assert_eq!(watch.observe(now, 10, 5_000), Some(FlushReason::Idle));
            expected = (expected * 2).min(ms(INDEX_FLUSH_RETRY_MS_MAX));
        }
        assert_eq!(watch.flush_failed(now), ms(INDEX_FLUSH_RETRY_MS_MAX));
        // Then a flush that succeeds resets the wait: the next failure waits the least
        now += ms(INDEX_FLUSH_RETRY_MS_MAX);
        assert_eq!(watch.observe(now, 10, 5_000), Some(FlushReason::Idle));
        watch.flushed();
        now += SECOND;
        assert_eq!(watch.observe(now, 11, 5_000), None);
        now += 3 * SECOND;
        assert_eq!(watch.observe(now, 11, 5_000), Some(FlushReason::Idle));
        assert_eq!(watch.flush_failed(now), ms(INDEX_FLUSH_RETRY_MS_MIN));
    }

    #[test]
    fn a_batch_during_the_wait_restarts_the_idle_clock_and_an_emptied_index_resets_the_wait() {
        let ms = Duration::from_millis;
        let (mut watch, mut now) = watch_with_an_idle_flush_due();
        assert_eq!(watch.flush_failed(now), ms(INDEX_FLUSH_RETRY_MS_MIN));
        // Given a batch committed during the wait
        assert_eq!(watch.observe(now + ms(500), 11, 6_000), None);
        // When the wait is over, the idle rule still counts from that batch
        now += ms(INDEX_FLUSH_RETRY_MS_MIN);
        assert_eq!(watch.observe(now, 11, 6_000), None);
        assert_eq!(watch.observe(now + ms(1_499), 11, 6_000), None);
        assert_eq!(
            watch.observe(now + ms(1_500), 11, 6_000),
            Some(FlushReason::Idle)
        );
        // ... and the second failure waits twice as long
        now += ms(1_500);
        assert_eq!(watch.flush_failed(now), ms(2 * INDEX_FLUSH_RETRY_MS_MIN));
        // Then once RocksDB has emptied the index itself, a later failure waits the least
        now += 10 * SECOND;
        assert_eq!(watch.observe(now, 11, 0), None);
        now += SECOND;
        assert_eq!(watch.observe(now, 11, 2_000), Some(FlushReason::Idle));
        assert_eq!(watch.flush_failed(now), ms(INDEX_FLUSH_RETRY_MS_MIN));
    }

    #[test]
    fn the_pause_between_looks_is_a_quarter_of_the_shorter_rule_within_bounds() {
        assert_eq!(policy().pause(), Duration::from_millis(500));
        assert_eq!(
            IndexFlushPolicy::from_settings(8, 0).pause(),
            Duration::from_millis(crate::limits::INDEX_FLUSH_CHECK_MS_MIN)
        );
        assert_eq!(
            IndexFlushPolicy::from_settings(0, 3_600).pause(),
            Duration::from_millis(crate::limits::INDEX_FLUSH_CHECK_MS_MAX)
        );
    }
}
