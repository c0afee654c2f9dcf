//! The gRPC services over one [`Api`] value: parse, authorise, submit, answer. One file
//! per service; this one holds what they share.

mod checkpoints;
mod export;
mod ledger;
mod programme;
mod reconciliation;
mod redemption;
mod registry;
mod settlement;
mod voucher;

pub(crate) use redemption::ParsedInvoices;

use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::auth::{principal, Role};
use super::convert::{
    self, center_to_proto, enterprise_to_proto, event_to_proto, policy_to_proto, voucher_to_proto,
};
use super::errors::{engine as engine_error, invalid_field, rejected};
use super::proto;
use super::proto::{
    checkpoint_service_server::CheckpointService, ledger_service_server::LedgerService,
    programme_service_server::ProgrammeService, redemption_service_server::RedemptionService,
    registry_service_server::RegistryService, voucher_service_server::VoucherService,
};
use super::sweeper::ClockGuard;
use crate::domain::{
    ApproveVoucher, Command, Money, Origin, Principal, PrincipalRole, ProgrammePolicy, Reply,
    RequestId, VoucherId,
};
use crate::ledger::engine::EngineHandle;
use crate::limits::{
    LIST_PAGE_DEFAULT, LIST_PAGE_LIMIT, READ_EVENTS_DEFAULT, READ_EVENTS_LIMIT, SUBMIT_BATCH_LIMIT,
    SUBSCRIBER_BUFFER, SUBSCRIBER_STALL_LIMIT,
};

/// Who sent `request`: the principal its bearer token names, and its `x-request-id` if
/// it sent one. Every event the request causes records this origin.
pub(crate) fn origin_of<T>(request: &Request<T>) -> Result<Origin, Status> {
    let caller = principal(request)?;
    let role = match caller.role {
        Role::Bureau => PrincipalRole::Bureau,
        Role::Center => PrincipalRole::Center,
        Role::Enterprise => PrincipalRole::Enterprise,
        Role::Auditor => PrincipalRole::Auditor,
    };
    // Token names come from the operator's config, not from the request.
    let principal = Principal::from_stored(role, &caller.name).map_err(super::errors::invalid)?;
    let request_id = match request.metadata().get("x-request-id") {
        None => None,
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| invalid_field("x-request-id", "must be printable ASCII"))?;
            Some(RequestId::parse(text).map_err(super::errors::invalid)?)
        }
    };
    Ok(Origin::new(principal, request_id))
}

#[derive(Clone)]
pub struct Api {
    engine: EngineHandle,
    shutdown: watch::Receiver<bool>,
    clock: Arc<ClockGuard>,
    /// Where the `Backup` call writes (from the config); none: backups refused.
    backup_dir: Option<Arc<std::path::PathBuf>>,
    /// Open event subscriptions, for metrics.
    subscribers: Arc<std::sync::atomic::AtomicUsize>,
}

impl Api {
    pub fn new(
        engine: EngineHandle,
        shutdown: watch::Receiver<bool>,
        clock: Arc<ClockGuard>,
    ) -> Api {
        Api {
            engine,
            shutdown,
            clock,
            backup_dir: None,
            subscribers: Arc::default(),
        }
    }

    /// Lets the `Backup` call write under `backup_dir`.
    pub fn with_backup_dir(mut self, backup_dir: Option<std::path::PathBuf>) -> Api {
        self.backup_dir = backup_dir.map(Arc::new);
        self
    }

    /// The count of open event subscriptions (shared, live).
    pub fn subscriber_count(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        Arc::clone(&self.subscribers)
    }

    /// The expiry sweep's clock guard, which `ConfirmClock` clears.
    pub fn clock_guard(&self) -> Arc<ClockGuard> {
        Arc::clone(&self.clock)
    }

    async fn execute(&self, origin: Origin, command: Command) -> Result<Reply, Status> {
        match self.engine.submit_one(origin, command).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(rejection)) => Err(rejected(rejection)),
            Err(error) => Err(engine_error(error)),
        }
    }

    async fn read<T>(
        &self,
        read: impl FnOnce(&crate::domain::LedgerState) -> T,
    ) -> Result<(T, u64), Status> {
        self.engine.read(read).await.map_err(engine_error)
    }

    /// Reads stored events `[from, from + limit)` (durable by construction), each
    /// checked against the chain.
    fn stored_events(&self, from: u64, limit: usize) -> Result<Vec<proto::EventRecord>, Status> {
        let mut events = Vec::with_capacity(limit.min(1_024));
        self.engine
            .reader()
            .read_events(from, |logged| {
                let chain_hash = logged.chain_hash.to_string();
                events.push(event_to_proto(&logged.into_sequenced(), &chain_hash));
                if events.len() < limit {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            })
            .map_err(|error| match error {
                crate::storage::LogError::Record(error) => Status::data_loss(error.to_string()),
                crate::storage::LogError::Store(error) => Status::internal(error.to_string()),
            })?;
        Ok(events)
    }

    async fn center_response(
        &self,
        center: crate::domain::Uscc,
        sequence: Option<u64>,
    ) -> Result<Response<proto::CenterResponse>, Status> {
        let (found, as_of) = self
            .read(|state| {
                state
                    .center(&center)
                    .map(|account| center_to_proto(state, account))
            })
            .await?;
        let center =
            found.ok_or_else(|| Status::not_found(format!("center {center} is not registered")))?;
        Ok(Response::new(proto::CenterResponse {
            center: Some(center),
            sequence: sequence.unwrap_or(as_of),
        }))
    }

    async fn enterprise_response(
        &self,
        enterprise: crate::domain::Uscc,
        sequence: Option<u64>,
    ) -> Result<Response<proto::EnterpriseResponse>, Status> {
        let (found, as_of) = self
            .read(|state| state.enterprise(&enterprise).map(enterprise_to_proto))
            .await?;
        let enterprise = found.ok_or_else(|| {
            Status::not_found(format!("enterprise {enterprise} is not registered"))
        })?;
        Ok(Response::new(proto::EnterpriseResponse {
            enterprise: Some(enterprise),
            sequence: sequence.unwrap_or(as_of),
        }))
    }

    async fn voucher_response(
        &self,
        voucher: VoucherId,
        sequence: Option<u64>,
        duplicate: bool,
    ) -> Result<Response<proto::VoucherResponse>, Status> {
        let (found, as_of) = self
            .read(|state| state.voucher(&voucher).map(voucher_to_proto))
            .await?;
        let voucher =
            found.ok_or_else(|| Status::not_found(format!("voucher {voucher} does not exist")))?;
        Ok(Response::new(proto::VoucherResponse {
            voucher: Some(voucher),
            sequence: sequence.unwrap_or(as_of),
            duplicate,
        }))
    }
}
