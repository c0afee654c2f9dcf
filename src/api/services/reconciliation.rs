//! `ReconciliationService`: a center's invoice list or the bank's payment file matched
//! with the ledger, and the record of every reconciliation.
//!
//! Roles: the bureau reconciles both kinds; a center reconciles its own invoice list (it
//! is the center's own figures against the ledger's, which it may read anyway); the
//! auditor only reads. Listing and reading records: the bureau and the auditor every one,
//! a center its own (another center's record is answered as a missing one).
//!
//! A reconciliation reads the file (off the async threads: parsing is CPU work), reads the
//! ledger's facts after waiting until what it saw is durable, matches, and then records
//! the outcome through the engine. The record is decided by the state machine, so two
//! imports of the same file race to one record: the later one is answered as a re-import.

use std::ops::ControlFlow;

use super::*;
use crate::api::auth::Principal as Caller;
use crate::api::convert_reconciliation::{
    counts_to_proto, line_to_proto, record_to_proto, row_error_to_proto,
};
use crate::api::proto::reconciliation_service_server::ReconciliationService;
use crate::domain::{FileName, ReconciliationRecord, ReconciliationScope, Uscc};
use crate::reconcile::{self, ledger_facts, PreparedFile, ReconcileError, Report};

/// Records one `ListReconciliations` page looks at, at most, whatever its filters.
const RECONCILIATION_SCAN_LIMIT: usize = 10_000;

fn refused(error: ReconcileError) -> Status {
    match error {
        ReconcileError::TooLarge { .. } | ReconcileError::TooManyRows { .. } => {
            Status::resource_exhausted(error.to_string())
        }
        other => Status::invalid_argument(format!("file refused: {other}")),
    }
}

fn worker_failed(error: tokio::task::JoinError) -> Status {
    Status::internal(format!("the reconciliation worker failed: {error}"))
}

fn not_found(sequence: u64) -> Status {
    Status::not_found(format!(
        "there is no reconciliation recorded at sequence {sequence}"
    ))
}

/// May `caller` read this record?
fn may_read(caller: &Caller, record: &ReconciliationRecord) -> bool {
    match &record.reconciliation.scope {
        ReconciliationScope::CenterInvoices { center, .. } => caller
            .require_center_reader(center, "read reconciliations")
            .is_ok(),
        ReconciliationScope::BankPayments { .. } => caller
            .require_reader_of_everything("read reconciliations")
            .is_ok(),
    }
}

fn file_name(text: &str) -> Result<FileName, Status> {
    FileName::parse(text).map_err(crate::api::errors::invalid)
}

/// Reads and checks the file on a blocking thread.
async fn prepared(file: Vec<u8>) -> Result<PreparedFile, Status> {
    tokio::task::spawn_blocking(move || reconcile::prepare(&file))
        .await
        .map_err(worker_failed)?
        .map_err(refused)
}

impl Api {
    /// Who recorded the event at `sequence`: its record's origin, from the log.
    fn origin_at(&self, sequence: u64) -> Result<Option<Origin>, Status> {
        let mut found = None;
        self.engine
            .reader()
            .read_events(sequence, |logged| {
                found = Some(logged.origin);
                ControlFlow::Break(())
            })
            .map_err(|error| Status::internal(error.to_string()))?;
        Ok(found)
    }

    fn recorded_to_proto(
        &self,
        record: &ReconciliationRecord,
    ) -> Result<proto::RecordedReconciliation, Status> {
        let origin = self.origin_at(record.sequence)?;
        Ok(record_to_proto(record, origin.as_ref()))
    }

    /// Records the report (or finds the earlier record of the same file and scope) and
    /// answers with the record and the lines.
    async fn record_report(
        &self,
        origin: Origin,
        name: FileName,
        report: Report,
    ) -> Result<Response<proto::ReconciliationResponse>, Status> {
        let recorded = report.to_recorded(name);
        let reply = self
            .execute(origin, Command::RecordReconciliation(Box::new(recorded)))
            .await?;
        let (sequence, reimport) = match reply {
            Reply::ReconciliationRecorded {
                sequence,
                duplicate,
            } => (sequence, duplicate),
            other => {
                return Err(Status::internal(format!(
                    "RecordReconciliation answered {other:?}"
                )))
            }
        };
        let (record, _) = self
            .read(|state| state.reconciliation(sequence).cloned())
            .await?;
        let record = record.ok_or_else(|| not_found(sequence))?;
        let counts = report.counts();
        let recomputed_counts = if reimport && record.reconciliation.counts != counts {
            counts_to_proto(&counts)
        } else {
            Vec::new()
        };
        Ok(Response::new(proto::ReconciliationResponse {
            recorded: Some(self.recorded_to_proto(&record)?),
            reimport,
            lines: report.lines.iter().map(line_to_proto).collect(),
            row_errors: report.row_errors.iter().map(row_error_to_proto).collect(),
            recomputed_counts,
        }))
    }
}

#[tonic::async_trait]
impl ReconciliationService for Api {
    async fn reconcile_center_invoices(
        &self,
        request: Request<proto::ReconcileCenterInvoicesRequest>,
    ) -> Result<Response<proto::ReconciliationResponse>, Status> {
        let caller = principal(&request)?.clone();
        let origin = origin_of(&request)?;
        let body = request.into_inner();
        let center = convert::uscc("center", &body.center)?;
        caller.require_center_writer(&center, "reconcile this center's invoices")?;
        let from = convert::date("from", &body.from)?;
        let to = convert::date("to", &body.to)?;
        if from > to {
            return Err(invalid_field("to", format!("{to} is before from ({from})")));
        }
        let name = file_name(&body.file_name)?;
        let scope = ReconciliationScope::CenterInvoices { center, from, to };
        let file = prepared(body.file).await?;
        let (years, _) = self
            .read(|state| {
                state
                    .center(&center)
                    .map(|_| ledger_facts::center_years(state, &center))
            })
            .await?;
        let years =
            years.ok_or_else(|| Status::not_found(format!("center {center} is not registered")))?;
        let reader = self.engine.reader().clone();
        let report = tokio::task::spawn_blocking(move || {
            let ledger = ledger_facts::center_invoices(&reader, &center, &years, from, to)
                .map_err(|error| Status::internal(error.to_string()))?;
            reconcile::reconcile_center_invoices(&file, scope, &ledger).map_err(refused)
        })
        .await
        .map_err(worker_failed)??;
        self.record_report(origin, name, report).await
    }

    async fn reconcile_bank_payments(
        &self,
        request: Request<proto::ReconcileBankPaymentsRequest>,
    ) -> Result<Response<proto::ReconciliationResponse>, Status> {
        let caller = principal(&request)?.clone();
        caller.require_bureau("reconcile bank payments")?;
        let origin = origin_of(&request)?;
        let body = request.into_inner();
        let year = convert::year("year", body.year)?;
        let name = file_name(&body.file_name)?;
        let scope = ReconciliationScope::BankPayments { year };
        let file = prepared(body.file).await?;
        let (statements, _) = self
            .read(|state| ledger_facts::year_statements(state, year))
            .await?;
        let report = tokio::task::spawn_blocking(move || {
            reconcile::reconcile_bank_payments(&file, scope, &statements).map_err(refused)
        })
        .await
        .map_err(worker_failed)??;
        self.record_report(origin, name, report).await
    }

    async fn list_reconciliations(
        &self,
        request: Request<proto::ListReconciliationsRequest>,
    ) -> Result<Response<proto::ListReconciliationsResponse>, Status> {
        let caller = principal(&request)?.clone();
        let body = request.get_ref();
        let center: Option<Uscc> = if body.center.is_empty() {
            None
        } else {
            Some(convert::uscc("center", &body.center)?)
        };
        match &center {
            Some(center) => caller.require_center_reader(center, "list reconciliations")?,
            None => caller.require_reader_of_everything("list every center's reconciliations")?,
        }
        let kind = match body.kind.as_str() {
            "" => None,
            "center_invoices" | "bank_payments" => Some(body.kind.clone()),
            _ => {
                return Err(invalid_field(
                    "kind",
                    "must be empty, center_invoices or bank_payments",
                ))
            }
        };
        let limit = match body.page_size {
            0 => LIST_PAGE_DEFAULT as usize,
            size if size > LIST_PAGE_LIMIT => {
                return Err(invalid_field(
                    "page_size",
                    format!("must be at most {LIST_PAGE_LIMIT}, got {size}"),
                ))
            }
            size => size as usize,
        };
        let after = if body.page_token.is_empty() {
            None
        } else {
            Some(body.page_token.parse::<u64>().map_err(|_| {
                invalid_field("page_token", "is not a page token this service gave")
            })?)
        };
        let ((page, next), _) = self
            .read(|state| {
                let (page, next) =
                    state.reconciliations_page(after, limit, RECONCILIATION_SCAN_LIMIT, |record| {
                        let scope = &record.reconciliation.scope;
                        let kind_ok = kind.as_deref().is_none_or(|kind| scope.kind_name() == kind);
                        let center_ok = match (&center, scope) {
                            (None, _) => true,
                            (Some(wanted), ReconciliationScope::CenterInvoices { center, .. }) => {
                                wanted == center
                            }
                            (Some(_), ReconciliationScope::BankPayments { .. }) => false,
                        };
                        kind_ok && center_ok && may_read(&caller, record)
                    });
                (page.into_iter().cloned().collect::<Vec<_>>(), next)
            })
            .await?;
        let reconciliations = page
            .iter()
            .map(|record| self.recorded_to_proto(record))
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(proto::ListReconciliationsResponse {
            reconciliations,
            next_page_token: next
                .map(|sequence| sequence.to_string())
                .unwrap_or_default(),
        }))
    }

    async fn get_reconciliation(
        &self,
        request: Request<proto::GetReconciliationRequest>,
    ) -> Result<Response<proto::RecordedReconciliation>, Status> {
        let caller = principal(&request)?.clone();
        let sequence = request.get_ref().sequence;
        let (record, _) = self
            .read(|state| state.reconciliation(sequence).cloned())
            .await?;
        let record = record
            .filter(|record| may_read(&caller, record))
            .ok_or_else(|| not_found(sequence))?;
        Ok(Response::new(self.recorded_to_proto(&record)?))
    }
}
