//! The five gRPC services over one [`Api`] value: parse, authorise, submit, answer.

use std::pin::Pin;
use std::time::Duration;

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
    ledger_service_server::LedgerService, programme_service_server::ProgrammeService,
    redemption_service_server::RedemptionService, registry_service_server::RegistryService,
    voucher_service_server::VoucherService,
};
use crate::domain::{ApproveVoucher, Command, ProgrammePolicy, Reply, SequencedEvent, VoucherId};
use crate::engine::EngineHandle;
use crate::ledger::SUBMIT_BATCH_LIMIT;
use crate::storage::record::parse_frame;
use crate::storage::store::invoice_key;

/// Most events one `ReadEvents` call returns.
pub const READ_EVENTS_LIMIT: u32 = 10_000;
/// Events buffered per subscriber; a slower subscriber is paced, never buffered further.
pub const SUBSCRIBER_BUFFER: usize = 256;
/// A subscriber that accepts nothing for this long is disconnected.
pub const SUBSCRIBER_STALL_LIMIT: Duration = Duration::from_secs(60);
pub const LIST_PAGE_DEFAULT: u32 = 100;
pub const LIST_PAGE_LIMIT: u32 = 1_000;

#[derive(Clone)]
pub struct Api {
    engine: EngineHandle,
    shutdown: watch::Receiver<bool>,
}

impl Api {
    pub fn new(engine: EngineHandle, shutdown: watch::Receiver<bool>) -> Api {
        Api { engine, shutdown }
    }

    async fn execute(&self, command: Command) -> Result<Reply, Status> {
        match self.engine.submit_one(command).await {
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

    /// Reads stored events `[from, from + limit)` (durable by construction).
    fn stored_events(&self, from: u64, limit: usize) -> Result<Vec<proto::EventRecord>, Status> {
        let mut events = Vec::with_capacity(limit.min(1_024));
        let mut failure = None;
        self.engine
            .store()
            .scan_records(from.max(1), |sequence, bytes| {
                match parse_frame(sequence, bytes).and_then(|record| {
                    let event = record.decode()?;
                    Ok((record.at, record.chain_hash, event))
                }) {
                    Ok((at, chain_hash, event)) => {
                        let sequenced = SequencedEvent {
                            sequence,
                            at,
                            event,
                        };
                        events.push(event_to_proto(&sequenced, &chain_hash.to_string()));
                    }
                    Err(error) => {
                        failure = Some(error);
                        return false;
                    }
                }
                events.len() < limit
            })
            .map_err(|error| Status::internal(error.to_string()))?;
        if let Some(error) = failure {
            return Err(Status::data_loss(error.to_string()));
        }
        Ok(events)
    }

    async fn read_event(&self, sequence: u64) -> Result<SequencedEvent, Status> {
        let bytes = self
            .engine
            .store()
            .record(sequence)
            .map_err(|error| Status::internal(error.to_string()))?
            .ok_or_else(|| Status::internal(format!("event {sequence} is not in the log")))?;
        let record =
            parse_frame(sequence, &bytes).map_err(|error| Status::data_loss(error.to_string()))?;
        let event = record
            .decode()
            .map_err(|error| Status::data_loss(error.to_string()))?;
        Ok(SequencedEvent {
            sequence,
            at: record.at,
            event,
        })
    }

    async fn center_response(
        &self,
        center: crate::domain::Uscc,
        sequence: Option<u64>,
    ) -> Result<Response<proto::CenterResponse>, Status> {
        let (found, as_of) = self
            .read(|state| state.center(&center).map(center_to_proto))
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
    ) -> Result<Response<proto::VoucherResponse>, Status> {
        let (found, as_of) = self
            .read(|state| state.voucher(&voucher).map(voucher_to_proto))
            .await?;
        let voucher =
            found.ok_or_else(|| Status::not_found(format!("voucher {voucher} does not exist")))?;
        Ok(Response::new(proto::VoucherResponse {
            voucher: Some(voucher),
            sequence: sequence.unwrap_or(as_of),
        }))
    }
}

// ------------------------------------------------------------------ ProgrammeService

#[tonic::async_trait]
impl ProgrammeService for Api {
    async fn publish_policy(
        &self,
        request: Request<proto::PublishPolicyRequest>,
    ) -> Result<Response<proto::PublishPolicyResponse>, Status> {
        principal(&request)?.require_bureau("publish a policy")?;
        let policy = match &request.get_ref().source {
            Some(proto::publish_policy_request::Source::Policy(policy)) => {
                convert::policy_from_proto(policy)?
            }
            Some(proto::publish_policy_request::Source::PolicyToml(text)) => {
                ProgrammePolicy::from_toml(text).map_err(super::errors::invalid)?
            }
            None => return Err(invalid_field("source", "give a policy or a policy_toml")),
        };
        let reply = self
            .execute(Command::PublishPolicy {
                policy: policy.clone(),
            })
            .await?;
        Ok(Response::new(proto::PublishPolicyResponse {
            policy: Some(policy_to_proto(&policy)),
            sequence: reply.last_sequence(),
        }))
    }

    async fn get_programme(
        &self,
        request: Request<proto::GetProgrammeRequest>,
    ) -> Result<Response<proto::GetProgrammeResponse>, Status> {
        principal(&request)?;
        let wanted = request.get_ref().year;
        if wanted != 0 {
            convert::year("year", wanted)?;
        }
        let (years, as_of) = self
            .read(|state| {
                state
                    .policies()
                    .filter(|policy| wanted == 0 || policy.year().get() == wanted)
                    .map(|policy| {
                        let usage = state.pool_usage(policy.year());
                        proto::ProgrammeYear {
                            policy: Some(policy_to_proto(policy)),
                            approved: usage.used().to_string(),
                            held: usage.held.to_string(),
                            redeemed: usage.redeemed.to_string(),
                            free: usage.free_under(policy.annual_pool()).to_string(),
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
        if wanted != 0 && years.is_empty() {
            return Err(Status::not_found(format!(
                "no policy is published for {wanted}"
            )));
        }
        Ok(Response::new(proto::GetProgrammeResponse {
            years,
            as_of_sequence: as_of,
        }))
    }
}

// ------------------------------------------------------------------- RegistryService

#[tonic::async_trait]
impl RegistryService for Api {
    async fn register_center(
        &self,
        request: Request<proto::RegisterCenterRequest>,
    ) -> Result<Response<proto::CenterResponse>, Status> {
        principal(&request)?.require_bureau("register a center")?;
        let body = request.get_ref();
        let center = convert::uscc("uscc", &body.uscc)?;
        let command = Command::RegisterCenter {
            center,
            name: convert::legal_name("name", &body.name)?,
            tier: convert::tier("tier", body.tier)?,
            listing_basis: convert::listing_basis("listing_basis", body.listing_basis)?,
        };
        let reply = self.execute(command).await?;
        self.center_response(center, Some(reply.last_sequence()))
            .await
    }

    async fn set_center_status(
        &self,
        request: Request<proto::SetCenterStatusRequest>,
    ) -> Result<Response<proto::CenterResponse>, Status> {
        principal(&request)?.require_bureau("change a center's status")?;
        let body = request.get_ref();
        let center = convert::uscc("uscc", &body.uscc)?;
        let command = Command::SetCenterStatus {
            center,
            status: convert::center_status("status", body.status)?,
            reason: convert::reason("reason", &body.reason)?,
        };
        let reply = self.execute(command).await?;
        self.center_response(center, Some(reply.last_sequence()))
            .await
    }

    async fn get_center(
        &self,
        request: Request<proto::GetCenterRequest>,
    ) -> Result<Response<proto::CenterResponse>, Status> {
        let center = convert::uscc("uscc", &request.get_ref().uscc)?;
        principal(&request)?.require_center_reader(&center, "read")?;
        self.center_response(center, None).await
    }

    async fn list_centers(
        &self,
        request: Request<proto::ListCentersRequest>,
    ) -> Result<Response<proto::ListCentersResponse>, Status> {
        let caller = principal(&request)?.clone();
        let (centers, as_of) = self
            .read(|state| state.centers().map(center_to_proto).collect::<Vec<_>>())
            .await?;
        // The list of centers is public; the money owed to each is not.
        let centers = centers
            .into_iter()
            .map(|mut center| {
                let own =
                    caller.subject.map(|subject| subject.to_string()) == Some(center.uscc.clone());
                if !matches!(caller.role, Role::Bureau | Role::Auditor) && !own {
                    for amount in [
                        &mut center.redeemed_total,
                        &mut center.reversed_total,
                        &mut center.amount_due,
                        &mut center.clawback_owed,
                        &mut center.paid_total,
                    ] {
                        amount.clear();
                    }
                }
                center
            })
            .collect();
        Ok(Response::new(proto::ListCentersResponse {
            centers,
            as_of_sequence: as_of,
        }))
    }

    async fn register_enterprise(
        &self,
        request: Request<proto::RegisterEnterpriseRequest>,
    ) -> Result<Response<proto::EnterpriseResponse>, Status> {
        principal(&request)?.require_bureau("register an enterprise")?;
        let body = request.get_ref();
        let enterprise = convert::uscc("uscc", &body.uscc)?;
        let reply = self
            .execute(Command::RegisterEnterprise {
                enterprise,
                name: convert::legal_name("name", &body.name)?,
            })
            .await?;
        self.enterprise_response(enterprise, Some(reply.last_sequence()))
            .await
    }

    async fn grant_cap_override(
        &self,
        request: Request<proto::GrantCapOverrideRequest>,
    ) -> Result<Response<proto::EnterpriseResponse>, Status> {
        principal(&request)?.require_bureau("grant a cap override")?;
        let body = request.get_ref();
        let enterprise = convert::uscc("uscc", &body.uscc)?;
        let command = Command::GrantCapOverride {
            enterprise,
            year: convert::year("year", body.year)?,
            cap: convert::positive_money("cap", &body.cap)?,
            reason: convert::reason("reason", &body.reason)?,
        };
        let reply = self.execute(command).await?;
        self.enterprise_response(enterprise, Some(reply.last_sequence()))
            .await
    }

    async fn declare_related_party(
        &self,
        request: Request<proto::DeclareRelatedPartyRequest>,
    ) -> Result<Response<proto::DeclareRelatedPartyResponse>, Status> {
        principal(&request)?.require_bureau("declare related parties")?;
        let body = request.get_ref();
        let command = Command::DeclareRelatedParty {
            enterprise: convert::uscc("enterprise", &body.enterprise)?,
            center: convert::uscc("center", &body.center)?,
            reason: convert::reason("reason", &body.reason)?,
        };
        let reply = self.execute(command).await?;
        Ok(Response::new(proto::DeclareRelatedPartyResponse {
            sequence: reply.last_sequence(),
        }))
    }

    async fn get_enterprise(
        &self,
        request: Request<proto::GetEnterpriseRequest>,
    ) -> Result<Response<proto::EnterpriseResponse>, Status> {
        let enterprise = convert::uscc("uscc", &request.get_ref().uscc)?;
        principal(&request)?.require_enterprise_reader(&enterprise, "read")?;
        self.enterprise_response(enterprise, None).await
    }
}

// -------------------------------------------------------------------- VoucherService

#[tonic::async_trait]
impl VoucherService for Api {
    async fn approve_voucher(
        &self,
        request: Request<proto::ApproveVoucherRequest>,
    ) -> Result<Response<proto::VoucherResponse>, Status> {
        principal(&request)?.require_bureau("approve vouchers")?;
        let body = request.get_ref();
        let voucher = if body.voucher_id.is_empty() {
            // Randomness is drawn here, outside the state machine, and logged with the command.
            VoucherId::random()
        } else {
            convert::voucher_id("voucher_id", &body.voucher_id)?
        };
        let approve = ApproveVoucher {
            voucher,
            year: convert::year("year", body.year)?,
            enterprise: convert::uscc("enterprise", &body.enterprise)?,
            center: convert::uscc("center", &body.center)?,
            contract_number: convert::contract_number("contract_number", &body.contract_number)?,
            contract_fee: convert::positive_money("contract_fee", &body.contract_fee)?,
            term_start: convert::date("term_start", &body.term_start)?,
            term_end: convert::date("term_end", &body.term_end)?,
            requested: convert::money("requested", &body.requested)?,
        };
        let reply = self.execute(Command::ApproveVoucher(approve)).await?;
        self.voucher_response(voucher, Some(reply.last_sequence()))
            .await
    }

    async fn cancel_voucher(
        &self,
        request: Request<proto::CancelVoucherRequest>,
    ) -> Result<Response<proto::VoucherResponse>, Status> {
        principal(&request)?.require_bureau("cancel vouchers")?;
        let body = request.get_ref();
        let voucher = convert::voucher_id("voucher_id", &body.voucher_id)?;
        let reply = self
            .execute(Command::CancelVoucher {
                voucher,
                reason: convert::reason("reason", &body.reason)?,
            })
            .await?;
        self.voucher_response(voucher, Some(reply.last_sequence()))
            .await
    }

    async fn get_voucher(
        &self,
        request: Request<proto::GetVoucherRequest>,
    ) -> Result<Response<proto::VoucherResponse>, Status> {
        let voucher = convert::voucher_id("voucher_id", &request.get_ref().voucher_id)?;
        let caller = principal(&request)?.clone();
        let (found, as_of) = self
            .read(|state| {
                state.voucher(&voucher).map(|found| {
                    (
                        found.terms.center,
                        found.terms.enterprise,
                        voucher_to_proto(found),
                    )
                })
            })
            .await?;
        let (center, enterprise, voucher_proto) =
            found.ok_or_else(|| Status::not_found(format!("voucher {voucher} does not exist")))?;
        if !caller.may_read_voucher(&center, &enterprise) {
            return Err(Status::permission_denied(format!(
                "{} may not read voucher {voucher}",
                caller.name
            )));
        }
        Ok(Response::new(proto::VoucherResponse {
            voucher: Some(voucher_proto),
            sequence: as_of,
        }))
    }

    async fn list_vouchers(
        &self,
        request: Request<proto::ListVouchersRequest>,
    ) -> Result<Response<proto::ListVouchersResponse>, Status> {
        let caller = principal(&request)?.clone();
        let body = request.get_ref();
        let page_size = match body.page_size {
            0 => LIST_PAGE_DEFAULT,
            size if size > LIST_PAGE_LIMIT => {
                return Err(invalid_field(
                    "page_size",
                    format!("{size} is above {LIST_PAGE_LIMIT}"),
                ))
            }
            size => size,
        } as usize;
        let after = if body.page_token.is_empty() {
            None
        } else {
            Some(convert::voucher_id("page_token", &body.page_token)?)
        };
        let filter = match &body.owner {
            Some(proto::list_vouchers_request::Owner::Enterprise(text)) => {
                let enterprise = convert::uscc("enterprise", text)?;
                caller.require_enterprise_reader(&enterprise, "list vouchers")?;
                (Some(enterprise), None)
            }
            Some(proto::list_vouchers_request::Owner::Center(text)) => {
                let center = convert::uscc("center", text)?;
                caller.require_center_reader(&center, "list vouchers")?;
                (None, Some(center))
            }
            None => return Err(invalid_field("owner", "give an enterprise or a center")),
        };
        let ((vouchers, more), as_of) = self
            .read(|state| {
                let mut matching = state
                    .vouchers_sorted()
                    .into_iter()
                    .filter(|voucher| {
                        filter
                            .0
                            .is_none_or(|enterprise| voucher.terms.enterprise == enterprise)
                    })
                    .filter(|voucher| filter.1.is_none_or(|center| voucher.terms.center == center))
                    .filter(|voucher| after.is_none_or(|after| voucher.terms.voucher > after));
                let page: Vec<proto::Voucher> = matching
                    .by_ref()
                    .take(page_size)
                    .map(voucher_to_proto)
                    .collect();
                (page, matching.next().is_some())
            })
            .await?;
        let next_page_token = if more {
            vouchers
                .last()
                .map(|voucher| voucher.voucher_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(proto::ListVouchersResponse {
            vouchers,
            next_page_token,
            as_of_sequence: as_of,
        }))
    }
}

// ----------------------------------------------------------------- RedemptionService

fn outcome_to_proto(reply: &Reply) -> proto::PostInvoiceResponse {
    match reply {
        Reply::InvoiceOutcome(outcome) => proto::PostInvoiceResponse {
            subsidy: outcome.subsidy.to_string(),
            sequence: outcome.sequence,
            duplicate: outcome.duplicate,
        },
        Reply::Applied { last_sequence } => proto::PostInvoiceResponse {
            subsidy: String::new(),
            sequence: *last_sequence,
            duplicate: false,
        },
    }
}

#[tonic::async_trait]
impl RedemptionService for Api {
    async fn post_invoice(
        &self,
        request: Request<proto::Invoice>,
    ) -> Result<Response<proto::PostInvoiceResponse>, Status> {
        let invoice = convert::invoice(request.get_ref())?;
        principal(&request)?.require_center_writer(&invoice.center, "post invoices")?;
        let reply = self.execute(Command::PostInvoice(invoice)).await?;
        Ok(Response::new(outcome_to_proto(&reply)))
    }

    async fn post_invoices(
        &self,
        request: Request<proto::PostInvoicesRequest>,
    ) -> Result<Response<proto::PostInvoicesResponse>, Status> {
        let caller = principal(&request)?.clone();
        let items = &request.get_ref().invoices;
        if items.is_empty() {
            return Err(invalid_field("invoices", "must hold at least one invoice"));
        }
        if items.len() > SUBMIT_BATCH_LIMIT {
            return Err(invalid_field(
                "invoices",
                format!(
                    "{} invoices is above the limit of {SUBMIT_BATCH_LIMIT}",
                    items.len()
                ),
            ));
        }
        let mut results: Vec<Option<proto::InvoiceResult>> = Vec::with_capacity(items.len());
        let mut commands = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match convert::invoice(item) {
                Ok(invoice) => {
                    // One foreign invoice refuses the whole batch: nothing is written.
                    caller
                        .require_center_writer(&invoice.center, "post invoices")
                        .map_err(|status| {
                            Status::permission_denied(format!(
                                "invoices[{index}]: {}",
                                status.message()
                            ))
                        })?;
                    commands.push(Command::PostInvoice(invoice));
                    results.push(None);
                }
                Err(status) => results.push(Some(proto::InvoiceResult {
                    result: Some(proto::invoice_result::Result::Invalid(format!(
                        "invoices[{index}]: {}",
                        status.message()
                    ))),
                })),
            }
        }
        let replies = if commands.is_empty() {
            Vec::new()
        } else {
            self.engine.submit(commands).await.map_err(engine_error)?
        };
        let mut last_sequence = 0;
        let mut replies = replies.into_iter();
        let results = results
            .into_iter()
            .map(|slot| match slot {
                Some(invalid) => invalid,
                None => {
                    let result = match replies.next() {
                        Some(Ok(reply)) => {
                            last_sequence = last_sequence.max(reply.last_sequence());
                            proto::invoice_result::Result::Accepted(outcome_to_proto(&reply))
                        }
                        Some(Err(rejection)) => {
                            proto::invoice_result::Result::Rejected(proto::Rejection {
                                code: u32::from(rejection.code.code()),
                                name: rejection.code.name().to_string(),
                                detail: rejection.detail,
                            })
                        }
                        None => proto::invoice_result::Result::Invalid(
                            "no reply from the ledger".into(),
                        ),
                    };
                    proto::InvoiceResult {
                        result: Some(result),
                    }
                }
            })
            .collect();
        Ok(Response::new(proto::PostInvoicesResponse {
            results,
            last_sequence,
        }))
    }

    async fn reverse_invoice(
        &self,
        request: Request<proto::ReverseInvoiceRequest>,
    ) -> Result<Response<proto::ReverseInvoiceResponse>, Status> {
        let body = request.get_ref();
        let center = convert::uscc("center", &body.center)?;
        principal(&request)?.require_center_writer(&center, "reverse invoices")?;
        let command = Command::ReverseInvoice {
            center,
            invoice_number: convert::invoice_number("invoice_number", &body.invoice_number)?,
            reason: convert::reason("reason", &body.reason)?,
        };
        let sequence = self.execute(command).await?.last_sequence();
        let event = self.read_event(sequence).await?;
        let crate::domain::Event::InvoiceReversed(reversed) = event.event else {
            return Err(Status::internal(format!(
                "event {sequence} is not the reversal"
            )));
        };
        Ok(Response::new(proto::ReverseInvoiceResponse {
            subsidy: reversed.subsidy.to_string(),
            clawback: reversed.clawback,
            returned_to_voucher: reversed.returned_to_voucher,
            sequence,
        }))
    }

    async fn get_invoice(
        &self,
        request: Request<proto::GetInvoiceRequest>,
    ) -> Result<Response<proto::GetInvoiceResponse>, Status> {
        let body = request.get_ref();
        let center = convert::uscc("center", &body.center)?;
        let number = convert::invoice_number("invoice_number", &body.invoice_number)?;
        principal(&request)?.require_center_reader(&center, "read invoices")?;
        // The invoice may be in the writer's cache (newest state) or only in the store's
        // index (durable); read the cache first, then the index.
        let ((cached, epoch), _) = self
            .read(|state| {
                let epoch = state
                    .center(&center)
                    .map_or(0, |account| account.settlement_epoch);
                (state.invoice(&center, &number).cloned(), epoch)
            })
            .await?;
        let entry = match cached {
            Some(entry) => Some(entry),
            None => self
                .engine
                .store()
                .invoice_entry(&invoice_key(&center, &number))
                .map_err(|error| Status::internal(error.to_string()))?,
        };
        let entry = entry
            .ok_or_else(|| Status::not_found(format!("center {center} has no invoice {number}")))?;
        Ok(Response::new(proto::GetInvoiceResponse {
            center: center.to_string(),
            invoice_number: number.to_string(),
            voucher_id: entry.voucher.to_string(),
            amount: entry.amount.to_string(),
            issue_date: entry.issue_date.to_string(),
            delivery_proof: entry.delivery_proof.to_string(),
            subsidy: entry.subsidy.to_string(),
            sequence: entry.sequence,
            reversed: entry.reversed,
            settled: entry.settlement_epoch < epoch,
        }))
    }
}

// --------------------------------------------------------------------- LedgerService

/// Completes once the server starts shutting down.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await.map(|_| ());
}

type EventStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<proto::EventRecord, Status>> + Send>>;

#[tonic::async_trait]
impl LedgerService for Api {
    async fn get_enterprise_usage(
        &self,
        request: Request<proto::GetEnterpriseUsageRequest>,
    ) -> Result<Response<proto::GetEnterpriseUsageResponse>, Status> {
        let body = request.get_ref();
        let enterprise = convert::uscc("enterprise", &body.enterprise)?;
        let year = convert::year("year", body.year)?;
        principal(&request)?.require_enterprise_reader(&enterprise, "read usage")?;
        let (found, as_of) = self
            .read(|state| {
                state.enterprise(&enterprise)?;
                let cap = state.enterprise_cap(&enterprise, year)?;
                Some((cap, state.enterprise_usage(&enterprise, year)))
            })
            .await?;
        let (cap, usage) = found.ok_or_else(|| {
            Status::not_found(format!(
                "enterprise {enterprise} is not registered or {year} has no policy"
            ))
        })?;
        Ok(Response::new(proto::GetEnterpriseUsageResponse {
            enterprise: enterprise.to_string(),
            year: year.get(),
            cap: cap.to_string(),
            held: usage.held.to_string(),
            redeemed: usage.redeemed.to_string(),
            free: usage.free_under(cap).to_string(),
            as_of_sequence: as_of,
        }))
    }

    async fn read_events(
        &self,
        request: Request<proto::ReadEventsRequest>,
    ) -> Result<Response<proto::ReadEventsResponse>, Status> {
        principal(&request)?.require_reader_of_everything("read the event log")?;
        let body = request.get_ref();
        let limit = match body.limit {
            0 => 1_000,
            limit if limit > READ_EVENTS_LIMIT => {
                return Err(invalid_field(
                    "limit",
                    format!("{limit} is above {READ_EVENTS_LIMIT}"),
                ))
            }
            limit => limit,
        };
        let events = self.stored_events(body.from_sequence, limit as usize)?;
        Ok(Response::new(proto::ReadEventsResponse {
            events,
            last_sequence: self.engine.committed_sequence(),
        }))
    }

    type SubscribeEventsStream = EventStream;

    async fn subscribe_events(
        &self,
        request: Request<proto::SubscribeEventsRequest>,
    ) -> Result<Response<Self::SubscribeEventsStream>, Status> {
        principal(&request)?.require_reader_of_everything("subscribe to the event log")?;
        let mut next = request.get_ref().from_sequence.max(1);
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_BUFFER);
        let api = self.clone();
        tokio::spawn(async move {
            let mut committed = api.engine.committed_watch();
            let mut shutdown = api.shutdown.clone();
            loop {
                // Catch up from the stored log in bounded chunks, then wait for more.
                loop {
                    let durable = *committed.borrow();
                    if next > durable {
                        break;
                    }
                    let chunk = match api.stored_events(next, SUBSCRIBER_BUFFER) {
                        Ok(chunk) => chunk,
                        Err(status) => {
                            let _ = sender.send(Err(status)).await;
                            return;
                        }
                    };
                    if chunk.is_empty() {
                        break;
                    }
                    for record in chunk {
                        next = record.sequence + 1;
                        let sent = tokio::select! {
                            sent = tokio::time::timeout(SUBSCRIBER_STALL_LIMIT, sender.send(Ok(record))) => sent,
                            _ = stopped(&mut shutdown) => return,
                        };
                        match sent {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => return, // the client went away
                            Err(_) => {
                                let _ = sender.try_send(Err(Status::resource_exhausted(
                                    "subscriber stopped reading",
                                )));
                                return;
                            }
                        }
                    }
                }
                tokio::select! {
                    changed = committed.changed() => if changed.is_err() { return },
                    _ = stopped(&mut shutdown) => {
                        let _ = sender.send(Err(Status::unavailable("the server is shutting down"))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
