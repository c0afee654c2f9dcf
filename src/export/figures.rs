//! The ledger's figures as [`Table`]s: statements of a year, payments and repayments of a
//! year, receivables, the year's figures, and invoices of a period.
//!
//! Every builder reads the state one page at a time through a [`StateSource`] (the live
//! ledger's read lock, or a state replayed from an audit package), so a long export never
//! holds the lock the writer needs. Each export is fixed **as of** the sequence of its
//! first page: statements issued later (a statement's id is its event's sequence) and
//! invoices redeemed later are left out; a row's own values are those of the page it was
//! read in. The sequence is returned with the table so the caller can wait until it is
//! durable before handing the file out.

use std::ops::ControlFlow;

use super::table::{Cell, Column, ExportError, Table};
use crate::domain::{
    BankReference, BankUse, Date, InvoiceNumber, LedgerState, ProgrammeYear, Statement,
    StatementId, Uscc,
};
use crate::ledger::LedgerReader;
use crate::limits::{EXPORT_PAGE_ROWS, EXPORT_ROWS_MAX};

/// Where the figures are read from, one short read at a time.
pub trait StateSource {
    /// Runs `read` on the projections and returns what it returns with the sequence the
    /// state was at. Keep `read` to one page: the writer may be waiting.
    fn read_state<T>(&self, read: impl FnOnce(&LedgerState) -> T) -> (T, u64);
}

impl StateSource for LedgerReader {
    fn read_state<T>(&self, read: impl FnOnce(&LedgerState) -> T) -> (T, u64) {
        self.read(read)
    }
}

impl StateSource for LedgerState {
    fn read_state<T>(&self, read: impl FnOnce(&LedgerState) -> T) -> (T, u64) {
        (read(self), self.last_sequence())
    }
}

/// A table and the sequence it is as of (the newest state any of its pages saw).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figures {
    pub table: Table,
    pub as_of: u64,
}

const CENTER_USCC: Column = Column::new("算力中心统一社会信用代码", "center_uscc");
const CENTER_NAME: Column = Column::new("算力中心名称", "center_name");
const YEAR: Column = Column::new("年度", "year");
const STATEMENT_ID: Column = Column::new("结算单号", "statement_id");
/// Last in the statements and payments exports (added with stacked funding, after every
/// older column, so a reader by position still finds those): `primary` (the programme's
/// own pool) or `second` (a stacked second source, which pays its own statements).
const FUNDING_SOURCE: Column = Column::new("资金来源", "funding_source");

/// The columns of the statements export.
pub const STATEMENT_COLUMNS: [Column; 17] = [
    STATEMENT_ID,
    Column::new("结算批次", "run_id"),
    YEAR,
    CENTER_USCC,
    CENTER_NAME,
    Column::new("出具日期", "issued_on"),
    Column::new("截止序号", "cutoff_sequence"),
    Column::new("发票笔数", "invoices"),
    Column::new("补贴总额", "gross_subsidy"),
    Column::new("追回抵扣", "clawback_offset"),
    Column::new("应付净额", "net_due"),
    Column::new("其后追回", "clawed_back"),
    Column::new("状态", "status"),
    Column::new("付款流水号", "payment_reference"),
    Column::new("付款金额", "paid_amount"),
    Column::new("付款起息日", "payment_value_date"),
    FUNDING_SOURCE,
];

/// The columns of the payments export (statement payments and repayments).
pub const PAYMENT_COLUMNS: [Column; 12] = [
    Column::new("序号", "sequence"),
    Column::new("类型", "kind"),
    STATEMENT_ID,
    YEAR,
    CENTER_USCC,
    CENTER_NAME,
    Column::new("银行流水号", "bank_reference"),
    Column::new("金额", "amount"),
    Column::new("起息日", "value_date"),
    Column::new("退回序号", "returned_sequence"),
    Column::new("退回原因", "return_reason"),
    FUNDING_SOURCE,
];

/// The columns of the receivables export.
pub const RECEIVABLE_COLUMNS: [Column; 8] = [
    CENTER_USCC,
    CENTER_NAME,
    YEAR,
    Column::new("追回总额", "clawed_back"),
    Column::new("结算抵扣", "offset"),
    Column::new("中心还款", "repaid"),
    Column::new("未收回", "outstanding"),
    Column::new("未收回笔数", "outstanding_items"),
];

/// The columns of the year's figures (one row).
pub const YEAR_FIGURE_COLUMNS: [Column; 14] = [
    YEAR,
    Column::new("是否结账", "closed"),
    Column::new("资金池", "pool"),
    Column::new("已批准面额", "approved"),
    Column::new("占用面额", "held"),
    Column::new("已兑付补贴", "redeemed"),
    Column::new("应收追回", "receivable"),
    Column::new("已释放", "released"),
    Column::new("未结算补贴", "unsettled"),
    Column::new("已结算补贴", "settled"),
    Column::new("已追回", "clawed_back"),
    Column::new("已支付", "paid"),
    Column::new("未收回", "receivables_outstanding"),
    Column::new("可用余额", "free"),
];

/// The columns of the invoices export.
pub const INVOICE_COLUMNS: [Column; 16] = [
    Column::new("发票号码", "invoice_number"),
    Column::new("开票日期", "issue_date"),
    CENTER_USCC,
    CENTER_NAME,
    Column::new("企业统一社会信用代码", "enterprise_uscc"),
    Column::new("企业名称", "enterprise_name"),
    Column::new("算力券编号", "voucher_id"),
    YEAR,
    Column::new("金额", "amount"),
    Column::new("补贴", "subsidy"),
    Column::new("企业实付", "enterprise_pays"),
    Column::new("序号", "sequence"),
    Column::new("状态", "status"),
    STATEMENT_ID,
    Column::new("交付凭证", "delivery_proof"),
    // Last, added with stacked funding: the second source's subsidy (0.00 without one).
    Column::new("叠加补贴", "second_subsidy"),
];

/// The payee's name: a center's, or in a reimbursement year (where statements and
/// receivables name the enterprise) the enterprise's.
fn center_name(state: &LedgerState, center: &Uscc) -> Cell {
    match state.center(center) {
        Some(account) => Cell::text(&account.name),
        None => state
            .enterprise(center)
            .map_or(Cell::Empty, |account| Cell::text(&account.name)),
    }
}

fn optional_count(value: Option<u64>) -> Cell {
    value.map_or(Cell::Empty, Cell::Count)
}

fn statement_row(state: &LedgerState, statement: &Statement) -> Vec<Cell> {
    let current = statement.current_payment();
    vec![
        Cell::Count(statement.id.0),
        Cell::text(statement.run),
        Cell::Count(u64::from(statement.year.get())),
        Cell::text(statement.center),
        center_name(state, &statement.center),
        Cell::Date(statement.issued_at.date()),
        Cell::Count(statement.cutoff),
        Cell::Count(statement.invoices),
        Cell::Money(statement.gross),
        Cell::Money(statement.clawback_offset),
        Cell::Money(statement.net),
        Cell::Money(statement.clawed_back),
        Cell::text(statement.state.name()),
        current.map_or(Cell::Empty, |payment| Cell::text(&payment.bank_reference)),
        current.map_or(Cell::Empty, |payment| Cell::Money(payment.amount)),
        current.map_or(Cell::Empty, |payment| Cell::Date(payment.value_date)),
        Cell::text(statement.source.name()),
    ]
}

/// Walks the year's statements (of `center` if given) issued at or before the first
/// page's sequence, a page at a time, handing each to `visit` inside the read.
fn walk_statements(
    source: &impl StateSource,
    year: ProgrammeYear,
    center: Option<Uscc>,
    mut visit: impl FnMut(&LedgerState, &Statement) -> Result<(), ExportError>,
) -> Result<u64, ExportError> {
    let mut after: Option<StatementId> = None;
    let mut as_of: Option<u64> = None;
    // Each round reads at most EXPORT_PAGE_ROWS statements; the walk ends when a page
    // comes back with nowhere to go on from. Bounded: every round moves `after` forward.
    loop {
        let (outcome, sequence) = source.read_state(|state| {
            let limit_sequence = as_of.unwrap_or(state.last_sequence());
            let keep = |statement: &Statement| {
                statement.year == year
                    && statement.id.0 <= limit_sequence
                    && center.is_none_or(|center| statement.center == center)
            };
            let (page, stopped_at) =
                state.statements_page(after, EXPORT_PAGE_ROWS, EXPORT_PAGE_ROWS, keep);
            let mut next = stopped_at;
            if next.is_none() && page.len() == EXPORT_PAGE_ROWS {
                next = page.last().map(|statement| statement.id);
            }
            for statement in &page {
                visit(state, statement)?;
            }
            Ok::<_, ExportError>(next)
        });
        let next = outcome?;
        as_of.get_or_insert(sequence);
        match next {
            Some(next) if after.is_none_or(|after| next > after) => after = Some(next),
            _ => break,
        }
    }
    Ok(as_of.unwrap_or(0))
}

/// The statements of `year` (of one center, if given), in the order they were issued.
pub fn statements(
    source: &impl StateSource,
    year: ProgrammeYear,
    center: Option<Uscc>,
) -> Result<Figures, ExportError> {
    let mut table = Table::new("结算单 statements", STATEMENT_COLUMNS.to_vec());
    let as_of = walk_statements(source, year, center, |state, statement| {
        table.push_row(statement_row(state, statement))
    })?;
    Ok(Figures { table, as_of })
}

/// Every payment of the year's statements (returned ones too, with the return) and every
/// repayment of the year's receivables (of one center, if given), in log order.
pub fn payments(
    source: &impl StateSource,
    year: ProgrammeYear,
    center: Option<Uscc>,
) -> Result<Figures, ExportError> {
    let mut rows: Vec<(u64, Vec<Cell>)> = Vec::new();
    let as_of = walk_statements(source, year, center, |state, statement| {
        for payment in &statement.payments {
            if rows.len() >= EXPORT_ROWS_MAX {
                return Err(ExportError::TooManyRows {
                    sheet: "payments".into(),
                    limit: EXPORT_ROWS_MAX,
                });
            }
            rows.push((
                payment.sequence,
                vec![
                    Cell::Count(payment.sequence),
                    Cell::text("payment"),
                    Cell::Count(statement.id.0),
                    Cell::Count(u64::from(statement.year.get())),
                    Cell::text(statement.center),
                    center_name(state, &statement.center),
                    Cell::text(&payment.bank_reference),
                    Cell::Money(payment.amount),
                    Cell::Date(payment.value_date),
                    optional_count(payment.returned.as_ref().map(|(_, sequence)| *sequence)),
                    payment
                        .returned
                        .as_ref()
                        .map_or(Cell::Empty, |(reason, _)| Cell::text(reason)),
                    Cell::text(statement.source.name()),
                ],
            ));
        }
        Ok(())
    })?;
    // Repayments, from the bank references, as of the same sequence.
    let mut after: Option<BankReference> = None;
    loop {
        let (page, _) = source.read_state(|state| {
            let page = state.bank_references_page(after.as_ref(), EXPORT_PAGE_ROWS);
            let last = page.last().map(|(reference, _)| (*reference).clone());
            let mut found = Vec::new();
            for (reference, used) in &page {
                let BankUse::Repayment {
                    center: repaid_by,
                    year: repaid_year,
                    amount,
                    value_date,
                    sequence,
                    source: funding_source,
                } = used
                else {
                    continue;
                };
                if *repaid_year != year
                    || *sequence > as_of
                    || center.is_some_and(|center| center != *repaid_by)
                {
                    continue;
                }
                found.push((
                    *sequence,
                    vec![
                        Cell::Count(*sequence),
                        Cell::text("repayment"),
                        Cell::Empty,
                        Cell::Count(u64::from(repaid_year.get())),
                        Cell::text(repaid_by),
                        center_name(state, repaid_by),
                        Cell::text(reference),
                        Cell::Money(*amount),
                        Cell::Date(*value_date),
                        Cell::Empty,
                        Cell::Empty,
                        Cell::text(funding_source.name()),
                    ],
                ));
            }
            (found, last, page.len())
        });
        let (found, last, length) = page;
        rows.extend(found);
        if rows.len() > EXPORT_ROWS_MAX {
            return Err(ExportError::TooManyRows {
                sheet: "payments".into(),
                limit: EXPORT_ROWS_MAX,
            });
        }
        match last {
            Some(last) if length == EXPORT_PAGE_ROWS => after = Some(last),
            _ => break,
        }
    }
    rows.sort_by_key(|(sequence, _)| *sequence);
    let mut table = Table::new("付款 payments", PAYMENT_COLUMNS.to_vec());
    for (_, row) in rows {
        table.push_row(row)?;
    }
    Ok(Figures { table, as_of })
}

/// Receivables per center for `year` (one center, if given): every center that ever
/// had a clawback that year. At most one row per registered center (`CENTERS_MAX`), read
/// in one go.
pub fn receivables(
    source: &impl StateSource,
    year: ProgrammeYear,
    center: Option<Uscc>,
) -> Result<Figures, ExportError> {
    let (rows, as_of) = source.read_state(|state| {
        state
            .center_years()
            .filter(|((books_center, books_year), books)| {
                *books_year == year
                    && center.is_none_or(|center| *books_center == center)
                    && !books.clawed_back.is_zero()
            })
            .map(|((books_center, books_year), books)| {
                vec![
                    Cell::text(books_center),
                    center_name(state, books_center),
                    Cell::Count(u64::from(books_year.get())),
                    Cell::Money(books.clawed_back),
                    Cell::Money(books.offset),
                    Cell::Money(books.repaid),
                    Cell::Money(books.outstanding()),
                    Cell::Count(books.receivables.len() as u64),
                ]
            })
            .collect::<Vec<_>>()
    });
    let mut table = Table::new("应收 receivables", RECEIVABLE_COLUMNS.to_vec());
    for row in rows {
        table.push_row(row)?;
    }
    Ok(Figures { table, as_of })
}

/// The year's figures in one row: the pool and where every fen of it is.
pub fn year_figures(
    source: &impl StateSource,
    year: ProgrammeYear,
) -> Result<Figures, ExportError> {
    let (row, as_of) = source.read_state(|state| {
        state.year(year).map(|book| {
            vec![
                Cell::Count(u64::from(year.get())),
                Cell::text(if book.closed.is_some() {
                    "closed"
                } else {
                    "open"
                }),
                Cell::Money(book.pool),
                Cell::Money(book.approved),
                Cell::Money(book.usage.held),
                Cell::Money(book.usage.redeemed),
                Cell::Money(book.usage.receivable),
                Cell::Money(book.released),
                Cell::Money(book.unsettled),
                Cell::Money(book.settled),
                Cell::Money(book.clawed_back),
                Cell::Money(book.paid),
                Cell::Money(book.outstanding()),
                Cell::Money(book.usage.free_under(book.pool)),
            ]
        })
    });
    let row = row.ok_or_else(|| {
        ExportError::Argument(format!("no policy is published for programme year {year}"))
    })?;
    let mut table = Table::new("年度 year_figures", YEAR_FIGURE_COLUMNS.to_vec());
    table.push_row(row)?;
    Ok(Figures { table, as_of })
}

/// Which invoices an invoices export holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvoicePeriod {
    /// One center, or every center.
    pub center: Option<Uscc>,
    /// Issue dates from `from` to `to`, both included.
    pub from: Date,
    pub to: Date,
}

/// The invoices issued in a period (of one center, or of every center), by center (USCC
/// order), programme year and log order, with their state (reversed, settled and in
/// which statement, or unsettled), as of the sequence of the first read.
///
/// Reads the store's invoice-order index (center, year, sequence) and the invoice index a
/// page at a time; the projections only to name centers and enterprises and to say
/// whether an invoice is settled. Every invoice of the centers and years concerned is
/// scanned (the index is not ordered by issue date), and at most
/// [`crate::limits::EXPORT_ROWS_MAX`] are kept.
pub fn invoices(reader: &LedgerReader, period: InvoicePeriod) -> Result<Figures, ExportError> {
    if period.to < period.from {
        return Err(ExportError::Argument(format!(
            "the period ends ({}) before it starts ({})",
            period.to, period.from
        )));
    }
    // As of the newest stored record: the invoice indexes hold everything up to it (the
    // order is written with the records; the index's reads wait for a batch's entries,
    // or a read-only store derives them, `storage::index_lag`), and the projections are
    // at least that new.
    let as_of = reader
        .stored_sequence()
        .map_err(|error| ExportError::Ledger(error.to_string()))?;
    // Which center-years to walk: a voucher of year Y has a term starting in Y, so its
    // invoices are issued in Y or later.
    let ((center_years, known_center), _) = reader.read_state(|state| {
        let known = period
            .center
            .is_none_or(|center| state.center(&center).is_some());
        let pairs: Vec<(Uscc, ProgrammeYear)> = state
            .center_years()
            .map(|(key, _)| *key)
            .filter(|(books_center, books_year)| {
                period.center.is_none_or(|center| center == *books_center)
                    && i64::from(books_year.get()) <= i64::from(period.to.year_month_day().0)
            })
            .collect();
        (pairs, known)
    });
    if !known_center {
        return Err(ExportError::Argument(format!(
            "center {} is not registered",
            period
                .center
                .map(|center| center.to_string())
                .unwrap_or_default()
        )));
    }
    let mut table = Table::new("发票 invoices", INVOICE_COLUMNS.to_vec());
    for (center, year) in center_years {
        let mut from = 1;
        // Each round reads one page of the order index; `from` moves past it, so the
        // walk ends at `as_of`.
        while from <= as_of {
            let mut page: Vec<(u64, InvoiceNumber)> = Vec::with_capacity(EXPORT_PAGE_ROWS);
            reader
                .scan_invoice_order(&center, year, from, as_of + 1, |sequence, number| {
                    page.push((sequence, number));
                    if page.len() == EXPORT_PAGE_ROWS {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .map_err(|error| ExportError::Ledger(error.to_string()))?;
            let Some((last, _)) = page.last() else { break };
            from = last + 1;
            let keys: Vec<(Uscc, InvoiceNumber)> = page
                .iter()
                .map(|(_, number)| (center, number.clone()))
                .collect();
            let entries = reader
                .invoices(&keys)
                .map_err(|error| ExportError::Ledger(error.to_string()))?;
            let (rows, _) = reader.read_state(|state| {
                let mut rows = Vec::new();
                for ((_, number), entry) in page.iter().zip(entries) {
                    let Some(entry) = entry else { continue };
                    if entry.issue_date < period.from || entry.issue_date > period.to {
                        continue;
                    }
                    // A statement issued after the export's sequence is not in it.
                    let settlement = state
                        .invoice_settlement(&center, year, &entry)
                        .filter(|statement| statement.is_none_or(|statement| statement.0 <= as_of));
                    // A reversal after the export's sequence is not in it.
                    let reversed = entry
                        .reversed_at
                        .is_some_and(|reversed_at| reversed_at <= as_of);
                    let status = match (reversed, settlement) {
                        (true, Some(_)) => "clawed_back",
                        (true, None) => "reversed",
                        (false, Some(_)) => "settled",
                        (false, None) => "unsettled",
                    };
                    let enterprise = state
                        .voucher(&entry.voucher)
                        .map(|voucher| voucher.terms.enterprise);
                    rows.push(vec![
                        Cell::text(number),
                        Cell::Date(entry.issue_date),
                        Cell::text(center),
                        center_name(state, &center),
                        enterprise.map_or(Cell::Empty, Cell::text),
                        enterprise
                            .and_then(|enterprise| state.enterprise(&enterprise))
                            .map_or(Cell::Empty, |account| Cell::text(&account.name)),
                        Cell::text(entry.voucher),
                        Cell::Count(u64::from(year.get())),
                        Cell::Money(entry.amount),
                        Cell::Money(entry.subsidy),
                        // A point-of-sale discount covers both sources' subsidy; in a
                        // reimbursement year the enterprise pays the whole amount (as the
                        // API's `enterprise_pays` says).
                        Cell::Money(if reversed {
                            crate::domain::Money::ZERO
                        } else if state.payee_kind(year) == crate::domain::Payee::Enterprise {
                            entry.amount
                        } else {
                            entry
                                .amount
                                .saturating_minus(entry.subsidy.plus(entry.second_subsidy))
                        }),
                        Cell::Count(entry.sequence),
                        Cell::text(status),
                        optional_count(settlement.flatten().map(|statement| statement.0)),
                        Cell::text(&entry.delivery_proof),
                        Cell::Money(entry.second_subsidy),
                    ]);
                }
                rows
            });
            for row in rows {
                table.push_row(row)?;
            }
            if page.len() < EXPORT_PAGE_ROWS {
                break;
            }
        }
    }
    Ok(Figures { table, as_of })
}
