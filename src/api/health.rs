//! What `grpc.health.v1` says, kept true: every service turns NOT_SERVING once the
//! ledger has stopped accepting writes (a failed write poisons it until restart), and the
//! `voucher-ledger.clock` entry is NOT_SERVING while the expiry sweep is stopped on a
//! suspected clock jump (see [`super::sweeper`]).

use tokio::sync::watch;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::ledger::engine::EngineHandle;

/// The health entry of the expiry sweep's clock check.
pub const CLOCK_HEALTH_SERVICE: &str = "voucher-ledger.clock";

/// Sets every service NOT_SERVING once the engine reports a failure, and the clock entry
/// from `clock_alarm` (true: alarm). Runs until the engine's watch closes.
pub async fn keep_health_true(
    engine: EngineHandle,
    reporter: HealthReporter,
    services: Vec<&'static str>,
    mut clock_alarm: watch::Receiver<bool>,
) {
    let mut failure = engine.failure_watch();
    reporter
        .set_service_status(CLOCK_HEALTH_SERVICE, ServingStatus::Serving)
        .await;
    loop {
        tokio::select! {
            changed = failure.changed() => {
                if changed.is_err() {
                    return;
                }
                let reason = failure.borrow_and_update().clone();
                if let Some(reason) = reason {
                    tracing::error!(%reason, "health: NOT_SERVING, the ledger stopped after a failed write");
                    reporter.set_service_status("", ServingStatus::NotServing).await;
                    for service in &services {
                        reporter.set_service_status(*service, ServingStatus::NotServing).await;
                    }
                }
            }
            changed = clock_alarm.changed() => {
                if changed.is_err() {
                    return;
                }
                let status = if *clock_alarm.borrow_and_update() {
                    ServingStatus::NotServing
                } else {
                    ServingStatus::Serving
                };
                reporter.set_service_status(CLOCK_HEALTH_SERVICE, status).await;
            }
        }
    }
}
