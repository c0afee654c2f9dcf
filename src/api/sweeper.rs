//! The expiry sweep: releases vouchers whose redemption window has ended, once at start
//! and then every `interval`, with a guard against a bad clock.
//!
//! Expiry is decided from the time in the command's envelope (the wall clock when the
//! writer stamps it), and a release cannot be undone. So before each sweep the wall
//! clock is compared with a reference: the newest of the last event's time and this
//! process's previous sweep. If it is ahead by more than `clock_jump_limit`, the sweep
//! does nothing, logs an alarm and turns the health entry `voucher-ledger.clock`
//! NOT_SERVING, and stays stopped until an operator confirms the time
//! (`ProgrammeService.ConfirmClock`, recorded in the log as `ClockConfirmed`). One bad
//! clock reading therefore cannot expire every voucher for good.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Notify};

use crate::domain::{Command, Origin, Timestamp};
use crate::ledger::engine::EngineHandle;

/// Shared between the sweep and the `ConfirmClock` call.
pub struct ClockGuard {
    alarm: watch::Sender<bool>,
    confirmed: Notify,
    limit: Duration,
}

impl ClockGuard {
    pub fn new(limit: Duration) -> Arc<ClockGuard> {
        let (alarm, _) = watch::channel(false);
        Arc::new(ClockGuard {
            alarm,
            confirmed: Notify::new(),
            limit,
        })
    }

    /// True while the sweep is stopped on a suspected clock jump.
    pub fn alarm_watch(&self) -> watch::Receiver<bool> {
        self.alarm.subscribe()
    }

    pub fn in_alarm(&self) -> bool {
        *self.alarm.borrow()
    }

    /// The operator confirmed the clock (its `ClockConfirmed` event is durable): clear
    /// the alarm and sweep now.
    pub fn confirm(&self) {
        self.alarm.send_replace(false);
        self.confirmed.notify_one();
    }
}

fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64),
    )
}

/// Runs the sweep until `stopping` turns true.
pub async fn run(
    engine: EngineHandle,
    guard: Arc<ClockGuard>,
    interval: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let mut previous_sweep: Option<Timestamp> = None;
    loop {
        let wall = now();
        let last_event = engine
            .read(|state| state.last_time())
            .await
            .map_or(Timestamp(0), |(time, _)| time);
        let reference = previous_sweep.map_or(last_event, |sweep| sweep.max(last_event));
        let ahead = Duration::from_millis(u64::try_from(wall.0 - reference.0).unwrap_or(0));
        if guard.in_alarm() {
            tracing::warn!(
                "expiry sweep stopped: waiting for an operator to confirm the clock (ConfirmClock)"
            );
        } else if reference.0 > 0 && ahead > guard.limit {
            tracing::error!(
                wall_clock_ms = wall.0,
                reference_ms = reference.0,
                ahead_seconds = ahead.as_secs(),
                limit_seconds = guard.limit.as_secs(),
                "expiry sweep stopped: the clock is ahead of the last event by more than the limit; confirm the time with ConfirmClock"
            );
            guard.alarm.send_replace(true);
        } else {
            sweep(&engine).await;
            previous_sweep = Some(wall);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = guard.confirmed.notified() => previous_sweep = None,
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

/// Releases expired vouchers, a bounded batch per command, until none are left.
async fn sweep(engine: &EngineHandle) {
    loop {
        let before = engine.committed_sequence();
        match engine
            .submit_one(Origin::system("expiry sweep"), Command::ExpireVouchers)
            .await
        {
            Ok(Ok(reply)) if reply.last_sequence() > before => continue,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "expiry sweep failed");
                return;
            }
        }
    }
}
