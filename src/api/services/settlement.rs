//! `SettlementService`: the finance bureau's half. Settlement runs and statements,
//! payments and returned payments, repayments of clawbacks, invoices and receivables per
//! center, year figures, pool adjustments and the year close.
//!
//! Roles: the bureau runs settlements, confirms payments, records returns and
//! repayments, adjusts pools and closes years; the auditor reads everything; a center
//! reads only its own statements, invoices and receivables (another center's statement
//! is answered as a missing one).

use std::ops::ControlFlow;

use super::*;
use crate::api::auth::Principal as Caller;
use crate::api::convert::statement_to_proto;
use crate::api::proto::settlement_service_server::SettlementService;
use crate::domain::{
    FacilityTier, FundingSource, InvoiceNumber, LedgerState, Payee, ProgrammeYear, Statement,
    StatementId, StatementState, Uscc, YearBook,
};

/// Statements one `ListStatements` page looks at, at most, whatever its filters.
const STATEMENT_SCAN_LIMIT: usize = 10_000;
/// Invoices one `ListInvoices` page looks at, at most, per invoice it returns.
const INVOICE_SCAN_FACTOR: usize = 10;

fn page_size(value: u32) -> Result<usize, Status> {
    match value {
        0 => Ok(LIST_PAGE_DEFAULT as usize),
        size if size > LIST_PAGE_LIMIT => Err(invalid_field(
            "page_size",
            format!("must be at most {LIST_PAGE_LIMIT}, got {size}"),
        )),
        size => Ok(size as usize),
    }
}

fn page_token(field: &'static str, text: &str) -> Result<Option<u64>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u64>()
        .map(Some)
        .map_err(|_| invalid_field(field, "is not a page token this service gave"))
}

/// May `caller` read `center`'s settlement data?
fn may_read_center(caller: &Caller, center: &Uscc) -> bool {
    caller.require_center_reader(center, "read").is_ok()
}

/// May `caller` read `statement`? Its payee may (the center, or in a reimbursement year
/// the enterprise), and the bureau and auditors.
fn may_read_statement(caller: &Caller, state: &LedgerState, statement: &Statement) -> bool {
    match state.payee_kind(statement.year) {
        Payee::Center => may_read_center(caller, &statement.center),
        Payee::Enterprise => caller
            .require_enterprise_reader(&statement.center, "read")
            .is_ok(),
    }
}

fn statement_not_found(statement: StatementId) -> Status {
    Status::not_found(format!("there is no statement {}", statement.0))
}

/// One funding source's figures for a year from its book (`closed` is the year's).
fn book_figures(year: ProgrammeYear, closed: bool, book: &YearBook) -> proto::YearFigures {
    let usage = book.usage;
    proto::YearFigures {
        year: year.get(),
        closed,
        pool: book.pool.to_string(),
        approved: book.approved.to_string(),
        held: usage.held.to_string(),
        redeemed: usage.redeemed.to_string(),
        released: book.released.to_string(),
        settled: book.settled.to_string(),
        paid: book.paid.to_string(),
        receivables_outstanding: book.outstanding().to_string(),
        free: usage.free_under(book.pool).to_string(),
    }
}

fn year_figures(state: &LedgerState, year: ProgrammeYear) -> Option<proto::YearFiguresResponse> {
    let book = state.year(year)?;
    let closed = book.closed.is_some();
    let figures = book_figures(year, closed, book);
    let second_source = state
        .second_year(year)
        .map(|second| book_figures(year, closed, second));
    let second_source_name = state
        .policy(year)
        .and_then(|policy| policy.rules().second_source.as_ref())
        .map(|second| second.name.to_string())
        .unwrap_or_default();
    let mut tiers: Vec<(FacilityTier, u64, Money, Money, Money)> = FacilityTier::ALL
        .iter()
        .map(|tier| (*tier, 0, Money::ZERO, Money::ZERO, Money::ZERO))
        .collect();
    let mut enterprises: std::collections::BTreeMap<Uscc, (Money, Money, Money)> =
        std::collections::BTreeMap::new();
    for voucher in state.vouchers_sorted() {
        if voucher.terms.year != year {
            continue;
        }
        if let Some(tier) = tiers.iter_mut().find(|tier| tier.0 == voucher.terms.tier) {
            tier.1 += 1;
            tier.2 = tier.2.plus(voucher.terms.face_value);
            tier.3 = tier.3.plus(voucher.subsidy_total);
            tier.4 = tier.4.plus(voucher.released);
        }
        let totals = enterprises.entry(voucher.terms.enterprise).or_insert((
            Money::ZERO,
            Money::ZERO,
            Money::ZERO,
        ));
        totals.0 = totals.0.plus(voucher.terms.face_value);
        totals.1 = totals.1.plus(voucher.subsidy_total);
        totals.2 = totals.2.plus(voucher.released);
    }
    let centers = state
        .center_years()
        .filter(|((_, books_year), _)| *books_year == year)
        .map(|((center, _), books)| proto::CenterFigures {
            center: center.to_string(),
            name: state
                .center(center)
                .map(|account| account.name.to_string())
                .unwrap_or_default(),
            redeemed: books
                .granted
                .saturating_minus(books.reversed_unsettled)
                .saturating_minus(books.clawed_back)
                .to_string(),
            settled: books.settled.to_string(),
            paid: books.paid.to_string(),
            unsettled: books.unsettled.to_string(),
            receivables_outstanding: books.outstanding().to_string(),
        })
        .collect();
    Some(proto::YearFiguresResponse {
        figures: Some(figures),
        second_source,
        second_source_name,
        tiers: tiers
            .into_iter()
            .map(
                |(tier, vouchers, approved, redeemed, released)| proto::TierFigures {
                    tier: convert::tier_to_proto(tier),
                    vouchers,
                    approved: approved.to_string(),
                    redeemed: redeemed.to_string(),
                    released: released.to_string(),
                },
            )
            .collect(),
        centers,
        enterprises: enterprises
            .into_iter()
            .map(
                |(enterprise, (approved, redeemed, released))| proto::EnterpriseFigures {
                    enterprise: enterprise.to_string(),
                    name: state
                        .enterprise(&enterprise)
                        .map(|account| account.name.to_string())
                        .unwrap_or_default(),
                    cap: state
                        .enterprise_cap(&enterprise, year)
                        .unwrap_or(Money::ZERO)
                        .to_string(),
                    approved: approved.to_string(),
                    redeemed: redeemed.to_string(),
                    released: released.to_string(),
                },
            )
            .collect(),
        sequence: state.last_sequence(),
    })
}

impl Api {
    async fn statement_response(
        &self,
        statement: StatementId,
        sequence: u64,
        duplicate: bool,
    ) -> Result<Response<proto::StatementResponse>, Status> {
        let (found, _) = self
            .read(|state| {
                state
                    .statement(&statement)
                    .map(|found| statement_to_proto(state, found))
            })
            .await?;
        Ok(Response::new(proto::StatementResponse {
            statement: Some(found.ok_or_else(|| statement_not_found(statement))?),
            sequence,
            duplicate,
        }))
    }
}

#[tonic::async_trait]
impl SettlementService for Api {
    async fn create_settlement_run(
        &self,
        request: Request<proto::CreateSettlementRunRequest>,
    ) -> Result<Response<proto::SettlementRunResponse>, Status> {
        principal(&request)?.require_bureau("run a settlement")?;
        let body = request.get_ref();
        let command = Command::CreateSettlementRun {
            run: convert::run_id("run_id", &body.run_id)?,
            year: convert::year("year", body.year)?,
        };
        let reply = self.execute(origin_of(&request)?, command).await?;
        let Reply::SettlementRunCreated(outcome) = reply else {
            return Err(Status::internal(format!(
                "a settlement run was answered with {reply:?}"
            )));
        };
        let (statements, _) = self
            .read(|state| {
                outcome
                    .statements
                    .iter()
                    .filter_map(|id| state.statement(id))
                    .map(|statement| statement_to_proto(state, statement))
                    .collect::<Vec<_>>()
            })
            .await?;
        // The run's totals are the programme's own statements'; a stacked second source's
        // statements are listed (with their funding source) but paid by another funder.
        let total = |field: fn(&proto::Statement) -> &str| {
            statements
                .iter()
                .filter(|statement| statement.funding_source != proto::FundingSource::Second as i32)
                .filter_map(|statement| Money::parse("total", field(statement)).ok())
                .fold(Money::ZERO, Money::plus)
                .to_string()
        };
        Ok(Response::new(proto::SettlementRunResponse {
            run_id: outcome.run.to_string(),
            year: outcome.year.get(),
            cutoff_sequence: outcome.cutoff,
            gross_subsidy: total(|statement| &statement.gross_subsidy),
            clawback_offset: total(|statement| &statement.clawback_offset),
            net_due: total(|statement| &statement.net_due),
            statements,
            duplicate: outcome.duplicate,
            sequence: outcome.sequence,
        }))
    }

    async fn confirm_payment(
        &self,
        request: Request<proto::ConfirmPaymentRequest>,
    ) -> Result<Response<proto::StatementResponse>, Status> {
        principal(&request)?.require_bureau("confirm payments")?;
        let body = request.get_ref();
        let statement = convert::statement_id("statement_id", body.statement_id)?;
        let command = Command::ConfirmPayment {
            statement,
            bank_reference: convert::bank_reference("bank_reference", &body.bank_reference)?,
            amount: convert::positive_money("amount", &body.amount)?,
            value_date: convert::date("value_date", &body.value_date)?,
        };
        let reply = self.execute(origin_of(&request)?, command).await?;
        let duplicate = matches!(
            reply,
            Reply::PaymentConfirmed {
                duplicate: true,
                ..
            }
        );
        self.statement_response(statement, reply.last_sequence(), duplicate)
            .await
    }

    async fn record_payment_returned(
        &self,
        request: Request<proto::RecordPaymentReturnedRequest>,
    ) -> Result<Response<proto::StatementResponse>, Status> {
        principal(&request)?.require_bureau("record returned payments")?;
        let body = request.get_ref();
        let statement = convert::statement_id("statement_id", body.statement_id)?;
        let command = Command::RecordPaymentReturned {
            statement,
            bank_reference: convert::bank_reference("bank_reference", &body.bank_reference)?,
            reason: convert::reason("reason", &body.reason)?,
        };
        let reply = self.execute(origin_of(&request)?, command).await?;
        let duplicate = matches!(
            reply,
            Reply::PaymentReturned {
                duplicate: true,
                ..
            }
        );
        self.statement_response(statement, reply.last_sequence(), duplicate)
            .await
    }

    async fn record_repayment(
        &self,
        request: Request<proto::RecordRepaymentRequest>,
    ) -> Result<Response<proto::RepaymentResponse>, Status> {
        principal(&request)?.require_bureau("record repayments")?;
        let body = request.get_ref();
        let (center, year, amount, bank_reference, value_date) = (
            convert::uscc("center", &body.center)?,
            convert::year("year", body.year)?,
            convert::positive_money("amount", &body.amount)?,
            convert::bank_reference("bank_reference", &body.bank_reference)?,
            convert::date("value_date", &body.value_date)?,
        );
        let command = match convert::funding_source("funding_source", body.funding_source)? {
            FundingSource::Primary => Command::RecordRepayment {
                center,
                year,
                amount,
                bank_reference,
                value_date,
            },
            FundingSource::Second => Command::RecordSecondSourceRepayment {
                center,
                year,
                amount,
                bank_reference,
                value_date,
            },
        };
        let reply = self.execute(origin_of(&request)?, command).await?;
        let Reply::RepaymentRecorded {
            center,
            year,
            amount,
            outstanding,
            sequence,
            duplicate,
        } = reply
        else {
            return Err(Status::internal(format!(
                "a repayment was answered with {reply:?}"
            )));
        };
        Ok(Response::new(proto::RepaymentResponse {
            center: center.to_string(),
            year: year.get(),
            repaid: amount.to_string(),
            outstanding: outstanding.to_string(),
            sequence,
            duplicate,
        }))
    }

    async fn get_statement(
        &self,
        request: Request<proto::GetStatementRequest>,
    ) -> Result<Response<proto::StatementResponse>, Status> {
        let caller = principal(&request)?.clone();
        let statement = convert::statement_id("statement_id", request.get_ref().statement_id)?;
        let (found, as_of) = self
            .read(|state| {
                state
                    .statement(&statement)
                    .filter(|found| may_read_statement(&caller, state, found))
                    .map(|found| statement_to_proto(state, found))
            })
            .await?;
        Ok(Response::new(proto::StatementResponse {
            statement: Some(found.ok_or_else(|| statement_not_found(statement))?),
            sequence: as_of,
            duplicate: false,
        }))
    }

    async fn list_statements(
        &self,
        request: Request<proto::ListStatementsRequest>,
    ) -> Result<Response<proto::ListStatementsResponse>, Status> {
        let caller = principal(&request)?.clone();
        let body = request.get_ref();
        let center = if body.center.is_empty() {
            None
        } else {
            Some(convert::uscc("center", &body.center)?)
        };
        let payee = if body.payee.is_empty() {
            None
        } else {
            Some(convert::uscc("payee", &body.payee)?)
        };
        match (&center, &payee, caller.subject) {
            (Some(center), _, _) => caller.require_center_reader(center, "list statements")?,
            // A payee reads its own statements: a center's, or an enterprise's (the kind
            // of each statement is checked below).
            (None, Some(payee), _) => {
                if caller
                    .require_center_reader(payee, "list statements")
                    .is_err()
                {
                    caller.require_enterprise_reader(payee, "list statements")?;
                }
            }
            (None, None, _) if matches!(caller.role, Role::Bureau | Role::Auditor) => {}
            (None, None, _) if matches!(caller.role, Role::Center) => {
                return Err(invalid_field(
                    "center",
                    "a center lists its own statements: give its USCC",
                ))
            }
            (None, None, _) if matches!(caller.role, Role::Enterprise) => {
                return Err(invalid_field(
                    "payee",
                    "an enterprise lists its own statements: give its USCC",
                ))
            }
            (None, None, _) => {
                return Err(Status::permission_denied(format!(
                    "{} may not list statements",
                    caller.name
                )))
            }
        }
        let year = if body.year == 0 {
            None
        } else {
            Some(convert::year("year", body.year)?)
        };
        let run = if body.run_id.is_empty() {
            None
        } else {
            Some(convert::run_id("run_id", &body.run_id)?)
        };
        let state_filter = convert::statement_state("state", body.state)?;
        let limit = page_size(body.page_size)?;
        let after = page_token("page_token", &body.page_token)?.map(StatementId);
        let keep = |state: &LedgerState, statement: &Statement| {
            let kind = state.payee_kind(statement.year);
            center.is_none_or(|center| statement.center == center && kind == Payee::Center)
                && payee.is_none_or(|payee| statement.center == payee)
                && may_read_statement(&caller, state, statement)
                && year.is_none_or(|year| statement.year == year)
                && run.is_none_or(|run| statement.run == run)
                && state_filter.is_none_or(|wanted: StatementState| statement.state == wanted)
        };
        let ((statements, next), as_of) = self
            .read(|state| {
                let (page, stopped_at) =
                    state.statements_page(after, limit, STATEMENT_SCAN_LIMIT, |statement| {
                        keep(state, statement)
                    });
                let next = stopped_at.or_else(|| {
                    (page.len() == limit)
                        .then(|| page.last().map(|statement| statement.id))
                        .flatten()
                });
                (
                    page.into_iter()
                        .map(|statement| statement_to_proto(state, statement))
                        .collect::<Vec<_>>(),
                    next,
                )
            })
            .await?;
        Ok(Response::new(proto::ListStatementsResponse {
            statements,
            next_page_token: next.map(|id| id.0.to_string()).unwrap_or_default(),
            as_of_sequence: as_of,
        }))
    }

    async fn list_invoices(
        &self,
        request: Request<proto::ListInvoicesRequest>,
    ) -> Result<Response<proto::ListInvoicesResponse>, Status> {
        let caller = principal(&request)?.clone();
        let body = request.get_ref();
        let voucher = if body.voucher_id.is_empty() {
            None
        } else {
            Some(convert::voucher_id("voucher_id", &body.voucher_id)?)
        };
        let limit = page_size(body.page_size)?;
        let after = page_token("page_token", &body.page_token)?.unwrap_or(0);
        let settled_filter = proto::SettledFilter::try_from(body.settled)
            .map_err(|_| invalid_field("settled", "must be 0 any, 1 settled or 2 unsettled"))?;
        // Which center-year to walk: the voucher's, or the one named.
        let (center, year) = match voucher {
            Some(voucher) => {
                let (found, _) = self
                    .read(|state| {
                        state.voucher(&voucher).map(|found| {
                            (found.terms.center, found.terms.year, found.terms.enterprise)
                        })
                    })
                    .await?;
                let not_found = || Status::not_found(format!("voucher {voucher} does not exist"));
                let (center, year, enterprise) = found.ok_or_else(not_found)?;
                if !caller.may_read_voucher(&center, &enterprise) {
                    return Err(not_found());
                }
                (center, year)
            }
            None => {
                let center = convert::uscc("center", &body.center)?;
                caller.require_center_reader(&center, "list invoices")?;
                (center, convert::year("year", body.year)?)
            }
        };
        let reader = self.engine.reader();
        let (last_cutoff, as_of) = self
            .read(|state| match state.payee_kind(year) {
                Payee::Center => Some(
                    state
                        .center_year(&center, year)
                        .map_or(0, |books| books.last_cutoff()),
                ),
                // Each enterprise is settled at its own cutoffs: no one cutoff splits
                // the center's invoices, so the scan filters invoice by invoice.
                Payee::Enterprise => None,
            })
            .await?;
        // Settled invoices all lie before the last cutoff; unsettled ones after it.
        let (from, until) = match (settled_filter, last_cutoff) {
            (proto::SettledFilter::Settled, Some(last_cutoff)) => (after + 1, last_cutoff),
            (proto::SettledFilter::Unsettled, Some(last_cutoff)) => {
                ((after + 1).max(last_cutoff), u64::MAX)
            }
            _ => (after + 1, u64::MAX),
        };
        let scan_budget = limit.saturating_mul(INVOICE_SCAN_FACTOR);
        let mut candidates: Vec<(u64, InvoiceNumber)> = Vec::new();
        let mut last_scanned = None;
        let mut exhausted = true;
        if from < until {
            reader
                .scan_invoice_order(&center, year, from, until, |sequence, number| {
                    if candidates.len() == scan_budget {
                        exhausted = false;
                        return ControlFlow::Break(());
                    }
                    last_scanned = Some(sequence);
                    candidates.push((sequence, number));
                    ControlFlow::Continue(())
                })
                .map_err(|error| Status::internal(error.to_string()))?;
        }
        let keys: Vec<(Uscc, InvoiceNumber)> = candidates
            .iter()
            .map(|(_, number)| (center, number.clone()))
            .collect();
        let entries = reader
            .invoices(&keys)
            .map_err(|error| Status::internal(error.to_string()))?;
        let ((invoices, next), _) = self
            .read(|state| {
                let enterprise = |voucher_id| {
                    state
                        .voucher(&voucher_id)
                        .map(|found| found.terms.enterprise.to_string())
                        .unwrap_or_default()
                };
                let mut page = Vec::new();
                let mut next = None;
                for ((sequence, number), entry) in candidates.iter().zip(entries) {
                    let Some(entry) = entry else { continue };
                    let settlement = state.invoice_settlement(&center, year, &entry);
                    let wanted = voucher.is_none_or(|voucher| entry.voucher == voucher)
                        && match settled_filter {
                            proto::SettledFilter::Any => true,
                            proto::SettledFilter::Settled => settlement.is_some(),
                            proto::SettledFilter::Unsettled => {
                                settlement.is_none() && !entry.is_reversed()
                            }
                        };
                    if !wanted {
                        continue;
                    }
                    if page.len() == limit {
                        break;
                    }
                    next = Some(*sequence);
                    page.push(proto::InvoiceSummary {
                        center: center.to_string(),
                        invoice_number: number.to_string(),
                        voucher_id: entry.voucher.to_string(),
                        enterprise: enterprise(entry.voucher),
                        year: year.get(),
                        amount: entry.amount.to_string(),
                        subsidy: entry.subsidy.to_string(),
                        enterprise_pays: convert::enterprise_pays(
                            state.payee_kind(year),
                            entry.amount,
                            entry.subsidy.plus(entry.second_subsidy),
                            entry.is_reversed(),
                        )
                        .to_string(),
                        issue_date: entry.issue_date.to_string(),
                        sequence: entry.sequence,
                        reversed: entry.is_reversed(),
                        settled: settlement.is_some(),
                        statement_id: settlement.flatten().map_or(0, |statement| statement.0),
                    });
                }
                (page, next)
            })
            .await?;
        // Another page follows unless the scan reached the end and the page is not full.
        let more = !exhausted || invoices.len() == limit;
        let next_page_token = if more {
            next.or(last_scanned).map(|sequence| sequence.to_string())
        } else {
            None
        };
        Ok(Response::new(proto::ListInvoicesResponse {
            invoices,
            next_page_token: next_page_token.unwrap_or_default(),
            as_of_sequence: as_of,
        }))
    }

    async fn list_receivables(
        &self,
        request: Request<proto::ListReceivablesRequest>,
    ) -> Result<Response<proto::ListReceivablesResponse>, Status> {
        let caller = principal(&request)?.clone();
        let body = request.get_ref();
        let center = if body.center.is_empty() {
            None
        } else {
            Some(convert::uscc("center", &body.center)?)
        };
        match &center {
            Some(center) => {
                // The payee's own: a center, or an enterprise of a reimbursement year.
                if caller
                    .require_center_reader(center, "list receivables")
                    .is_err()
                {
                    caller.require_enterprise_reader(center, "list receivables")?;
                }
            }
            None => caller.require_reader_of_everything("list every center's receivables")?,
        }
        let year = if body.year == 0 {
            None
        } else {
            Some(convert::year("year", body.year)?)
        };
        let (receivables, as_of) = self
            .read(|state| {
                let primary = state
                    .center_years()
                    .map(|(key, books)| (FundingSource::Primary, key, books));
                let second = state
                    .second_center_years()
                    .map(|(key, books)| (FundingSource::Second, key, books));
                primary
                    .chain(second)
                    .filter(|(_, (books_center, books_year), books)| {
                        center.is_none_or(|center| *books_center == center)
                            && year.is_none_or(|year| *books_year == year)
                            && !books.clawed_back.is_zero()
                            && (matches!(caller.role, Role::Bureau | Role::Auditor)
                                || match state.payee_kind(*books_year) {
                                    Payee::Center => caller.role == Role::Center,
                                    Payee::Enterprise => caller.role == Role::Enterprise,
                                })
                    })
                    .map(
                        |(source, (books_center, books_year), books)| proto::Receivable {
                            funding_source: convert::funding_source_to_proto(source),
                            center: books_center.to_string(),
                            year: books_year.get(),
                            clawed_back: books.clawed_back.to_string(),
                            offset: books.offset.to_string(),
                            repaid: books.repaid.to_string(),
                            outstanding: books.outstanding().to_string(),
                            payee_kind: convert::payee_to_proto(state.payee_kind(*books_year)),
                        },
                    )
                    .collect::<Vec<_>>()
            })
            .await?;
        Ok(Response::new(proto::ListReceivablesResponse {
            receivables,
            as_of_sequence: as_of,
        }))
    }

    async fn close_programme_year(
        &self,
        request: Request<proto::CloseProgrammeYearRequest>,
    ) -> Result<Response<proto::YearFiguresResponse>, Status> {
        principal(&request)?.require_bureau("close a programme year")?;
        let year = convert::year("year", request.get_ref().year)?;
        let reply = self
            .execute(origin_of(&request)?, Command::CloseProgrammeYear { year })
            .await?;
        let (figures, _) = self.read(|state| year_figures(state, year)).await?;
        let mut figures = figures.ok_or_else(|| {
            Status::internal(format!("programme year {year} closed but has no books"))
        })?;
        figures.sequence = reply.last_sequence();
        Ok(Response::new(figures))
    }

    async fn get_year_figures(
        &self,
        request: Request<proto::GetYearFiguresRequest>,
    ) -> Result<Response<proto::YearFiguresResponse>, Status> {
        principal(&request)?.require_reader_of_everything("read a year's figures")?;
        let year = convert::year("year", request.get_ref().year)?;
        let (figures, _) = self.read(|state| year_figures(state, year)).await?;
        Ok(Response::new(figures.ok_or_else(|| {
            Status::not_found(format!("no policy is published for {year}"))
        })?))
    }

    async fn adjust_pool(
        &self,
        request: Request<proto::AdjustPoolRequest>,
    ) -> Result<Response<proto::AdjustPoolResponse>, Status> {
        principal(&request)?.require_bureau("adjust a pool")?;
        let body = request.get_ref();
        let command = Command::AdjustPool {
            year: convert::year("year", body.year)?,
            new_pool: convert::positive_money("new_pool", &body.new_pool)?,
            reason: convert::reason("reason", &body.reason)?,
        };
        let reply = self.execute(origin_of(&request)?, command).await?;
        let Reply::PoolAdjusted {
            year,
            previous_pool,
            new_pool,
            sequence,
        } = reply
        else {
            return Err(Status::internal(format!(
                "a pool adjustment was answered with {reply:?}"
            )));
        };
        Ok(Response::new(proto::AdjustPoolResponse {
            year: year.get(),
            pool: new_pool.to_string(),
            previous_pool: previous_pool.to_string(),
            sequence,
        }))
    }
}
