//! The programme-year figures a person reads, computed once from the projections: the
//! terminal summary ([`super::summary`]) and the bureau's HTML report ([`super::html`])
//! both print these, so the two can never disagree.
//!
//! Everything here is a plain read of [`LedgerState`] in a stable order (no hash-map
//! order reaches the output). The pool's use over time is not here: it needs the log
//! (see [`super::series`]).

use std::collections::BTreeMap;

use crate::domain::{
    CenterStatus, FacilityTier, FundingSource, LedgerState, LegalName, Money, Payee, ProgrammeYear,
    StatementState, Timestamp, Usage, Uscc, YearBook,
};

/// A year's pool and where it is, as `summary` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolFigures {
    /// The pool in force (the policy's, or the last adjustment).
    pub pool: Money,
    pub usage: Usage,
    pub free: Money,
    /// Face value given back by the year's vouchers (expired, cancelled, recovered
    /// clawbacks, unsettled reversals on a released voucher).
    pub released: Money,
    pub closed: bool,
}

/// The year's pool figures; `None` when no policy was published for it.
pub fn pool_figures(state: &LedgerState, year: ProgrammeYear) -> Option<PoolFigures> {
    let policy = state.policy(year)?;
    let usage = state.pool_usage(year);
    let pool = state.pool(year).unwrap_or(policy.annual_pool());
    let released = state
        .vouchers_sorted()
        .iter()
        .filter(|voucher| voucher.terms.year == year)
        .fold(Money::ZERO, |sum, voucher| sum.plus(voucher.released));
    Some(PoolFigures {
        pool,
        usage,
        free: usage.free_under(pool),
        released,
        closed: state.year_closed(year),
    })
}

/// One facility tier's vouchers of a year. Face value = redeemed + remaining +
/// clawbacks outstanding + released (invariant 6, summed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierRow {
    pub tier: FacilityTier,
    pub vouchers: usize,
    pub face_value: Money,
    /// Subsidy that stands.
    pub redeemed: Money,
    /// Face value still available for redemption.
    pub remaining: Money,
    pub clawback_outstanding: Money,
    pub released: Money,
}

/// The year's vouchers: how many in each status, and by facility tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherFigures {
    /// Status name → vouchers, in name order.
    pub by_status: BTreeMap<&'static str, usize>,
    /// Tiers that have vouchers, in tier order.
    pub by_tier: Vec<TierRow>,
}

pub fn voucher_figures(state: &LedgerState, year: ProgrammeYear) -> VoucherFigures {
    let mut by_status: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut by_tier: BTreeMap<FacilityTier, TierRow> = BTreeMap::new();
    for voucher in state.vouchers_sorted() {
        if voucher.terms.year != year {
            continue;
        }
        *by_status.entry(voucher.status.name()).or_default() += 1;
        let row = by_tier.entry(voucher.terms.tier).or_insert(TierRow {
            tier: voucher.terms.tier,
            vouchers: 0,
            face_value: Money::ZERO,
            redeemed: Money::ZERO,
            remaining: Money::ZERO,
            clawback_outstanding: Money::ZERO,
            released: Money::ZERO,
        });
        row.vouchers += 1;
        row.face_value = row.face_value.plus(voucher.terms.face_value);
        row.redeemed = row.redeemed.plus(voucher.subsidy_total);
        row.remaining = row.remaining.plus(voucher.remaining);
        row.clawback_outstanding = row.clawback_outstanding.plus(voucher.clawback_outstanding);
        row.released = row.released.plus(voucher.released);
    }
    VoucherFigures {
        by_status,
        by_tier: by_tier.into_values().collect(),
    }
}

/// An enterprise's use of its cap in a year.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnterpriseRow {
    pub enterprise: Uscc,
    pub name: LegalName,
    pub cap: Money,
    pub usage: Usage,
}

/// The `limit` enterprises with the most subsidy redeemed in `year`, most first (ties in
/// USCC order).
pub fn top_enterprises(
    state: &LedgerState,
    year: ProgrammeYear,
    limit: usize,
) -> Vec<EnterpriseRow> {
    let mut enterprises: Vec<_> = state
        .enterprises_sorted()
        .into_iter()
        .map(|account| (state.enterprise_usage(&account.enterprise, year), account))
        .collect();
    enterprises.sort_by(|left, right| {
        right
            .0
            .redeemed
            .cmp(&left.0.redeemed)
            .then(left.1.enterprise.cmp(&right.1.enterprise))
    });
    enterprises
        .into_iter()
        .take(limit)
        .map(|(usage, account)| EnterpriseRow {
            enterprise: account.enterprise,
            name: account.name.clone(),
            cap: state
                .enterprise_cap(&account.enterprise, year)
                .unwrap_or(Money::ZERO),
            usage,
        })
        .collect()
}

/// One center's year: subsidy that stands, not yet settled, due on statements not yet
/// paid, owed back (receivables outstanding), paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CenterRow {
    pub center: Uscc,
    pub name: LegalName,
    pub tier: FacilityTier,
    pub status: CenterStatus,
    pub standing: Money,
    pub unsettled: Money,
    pub due: Money,
    pub outstanding: Money,
    pub paid: Money,
}

/// Every registered center's year, in USCC order, and the column totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CenterFigures {
    pub rows: Vec<CenterRow>,
    pub total: CenterTotals,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CenterTotals {
    pub standing: Money,
    pub unsettled: Money,
    pub due: Money,
    pub outstanding: Money,
    pub paid: Money,
}

pub fn center_figures(state: &LedgerState, year: ProgrammeYear) -> CenterFigures {
    // What is due, per center, from one pass over the year's statements.
    let mut due_by_center: BTreeMap<Uscc, Money> = BTreeMap::new();
    for statement in year_statements(state, year) {
        if statement.state != StatementState::Paid {
            let due = due_by_center.entry(statement.center).or_insert(Money::ZERO);
            *due = due.plus(statement.net);
        }
    }
    let mut total = CenterTotals::default();
    let rows = state
        .centers()
        .map(|account| {
            let books = state.center_year(&account.center, year);
            let row = CenterRow {
                center: account.center,
                name: account.name.clone(),
                tier: account.tier,
                status: account.status,
                standing: books.map_or(Money::ZERO, |books| {
                    books
                        .granted
                        .saturating_minus(books.reversed_unsettled)
                        .saturating_minus(books.clawed_back)
                }),
                unsettled: books.map_or(Money::ZERO, |books| books.unsettled),
                due: due_by_center
                    .get(&account.center)
                    .copied()
                    .unwrap_or(Money::ZERO),
                outstanding: books.map_or(Money::ZERO, |books| books.outstanding()),
                paid: books.map_or(Money::ZERO, |books| books.paid),
            };
            total.standing = total.standing.plus(row.standing);
            total.unsettled = total.unsettled.plus(row.unsettled);
            total.due = total.due.plus(row.due);
            total.outstanding = total.outstanding.plus(row.outstanding);
            total.paid = total.paid.plus(row.paid);
            row
        })
        .collect();
    CenterFigures { rows, total }
}

/// The year's statements in id (issue) order.
/// The year's statements the bureau pays (a stacked second source's statements are paid
/// by their own funder and shown in its section).
fn year_statements(state: &LedgerState, year: ProgrammeYear) -> Vec<&crate::domain::Statement> {
    state
        .statements_page(None, usize::MAX, usize::MAX, |statement| {
            statement.year == year && statement.source == FundingSource::Primary
        })
        .0
}

/// One payee of a reimbursement year (the enterprise the bureau pays): what was settled
/// for it, what is due on its statements not yet paid, what it owes back, and what it
/// was paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayeeRow {
    pub payee: Uscc,
    pub name: Option<LegalName>,
    pub totals: PayeeTotals,
}

/// A reimbursement year's payee's figures, or what they add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayeeTotals {
    pub settled: Money,
    pub due: Money,
    pub outstanding: Money,
    pub paid: Money,
}

impl PayeeTotals {
    fn plus(self, other: PayeeTotals) -> PayeeTotals {
        PayeeTotals {
            settled: self.settled.plus(other.settled),
            due: self.due.plus(other.due),
            outstanding: self.outstanding.plus(other.outstanding),
            paid: self.paid.plus(other.paid),
        }
    }
}

/// A reimbursement year's payees, the most settled first (then USCC order), and totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayeeFigures {
    pub rows: Vec<PayeeRow>,
    pub total: PayeeTotals,
}

/// `None` for a year that pays centers (the centers' table says it all).
pub fn payee_figures(state: &LedgerState, year: ProgrammeYear) -> Option<PayeeFigures> {
    if state.payee_kind(year) != Payee::Enterprise {
        return None;
    }
    let mut due: BTreeMap<Uscc, Money> = BTreeMap::new();
    for statement in year_statements(state, year) {
        if statement.state != StatementState::Paid {
            let entry = due.entry(statement.center).or_insert(Money::ZERO);
            *entry = entry.plus(statement.net);
        }
    }
    let mut rows: Vec<PayeeRow> = state
        .center_years()
        .filter(|((_, books_year), _)| *books_year == year)
        .map(|((payee, _), books)| PayeeRow {
            payee: *payee,
            name: state.enterprise(payee).map(|account| account.name.clone()),
            totals: PayeeTotals {
                settled: books.settled,
                due: due.get(payee).copied().unwrap_or(Money::ZERO),
                outstanding: books.outstanding(),
                paid: books.paid,
            },
        })
        .collect();
    rows.sort_by(|left, right| {
        right
            .totals
            .settled
            .cmp(&left.totals.settled)
            .then(left.payee.cmp(&right.payee))
    });
    let total = rows
        .iter()
        .fold(PayeeTotals::default(), |sum, row| sum.plus(row.totals));
    Some(PayeeFigures { rows, total })
}

/// A stacked second source's year (docs/programmes.md): its name, its book (pool and
/// where every fen is) and its statements by state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecondSourceFigures {
    pub name: LegalName,
    pub book: YearBook,
    pub by_state: Vec<StatusRow>,
}

pub fn second_source_figures(
    state: &LedgerState,
    year: ProgrammeYear,
) -> Option<SecondSourceFigures> {
    let second = state.policy(year)?.rules().second_source.as_ref()?;
    let book = state.second_year(year)?;
    let (statements, _) = state.statements_page(None, usize::MAX, usize::MAX, |statement| {
        statement.year == year && statement.source == FundingSource::Second
    });
    let mut by_state: BTreeMap<&'static str, StatusRow> = BTreeMap::new();
    for statement in statements {
        let row = by_state.entry(statement.state.name()).or_insert(StatusRow {
            state: statement.state,
            statements: 0,
            net: Money::ZERO,
        });
        row.statements += 1;
        row.net = row.net.plus(statement.net);
    }
    Some(SecondSourceFigures {
        name: second.name.clone(),
        book: book.clone(),
        by_state: by_state.into_values().collect(),
    })
}

/// Statements of one state: how many and their net.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusRow {
    pub state: StatementState,
    pub statements: usize,
    pub net: Money,
}

/// The year's settlement: statements by state, payments and returns, and where every
/// fen of its subsidy is (the year's book).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementFigures {
    pub statements: usize,
    pub payments: usize,
    /// Payments the bank sent back.
    pub returned: usize,
    /// States that have statements, in state-name order.
    pub by_state: Vec<StatusRow>,
    pub book: YearBook,
}

/// `None` when the year has no books (no policy).
pub fn settlement_figures(state: &LedgerState, year: ProgrammeYear) -> Option<SettlementFigures> {
    let book = state.year(year)?;
    let statements = year_statements(state, year);
    let mut by_state: BTreeMap<&'static str, StatusRow> = BTreeMap::new();
    let (mut payments, mut returned) = (0usize, 0usize);
    for statement in &statements {
        let row = by_state.entry(statement.state.name()).or_insert(StatusRow {
            state: statement.state,
            statements: 0,
            net: Money::ZERO,
        });
        row.statements += 1;
        row.net = row.net.plus(statement.net);
        payments += statement.payments.len();
        returned += statement
            .payments
            .iter()
            .filter(|payment| payment.returned.is_some())
            .count();
    }
    Some(SettlementFigures {
        statements: statements.len(),
        payments,
        returned,
        by_state: by_state.into_values().collect(),
        book: book.clone(),
    })
}

/// The reconciliations of a year: how many were recorded and the discrepancies they
/// found, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReconciliationFigures {
    /// No reconciliation recorded for the year.
    NoneRecorded,
    Recorded {
        reconciliations: u64,
        /// One entry per discrepancy kind, in the report's order.
        discrepancies: Vec<DiscrepancyCount>,
    },
}

/// How many discrepancies of one kind the year's reconciliations found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscrepancyCount {
    /// The kind in Chinese and in English, for the chart's labels.
    pub label_chinese: String,
    pub label_english: String,
    pub count: u64,
}

/// The report's reconciliation section: every reconciliation recorded for the year (bank
/// files of the year, and center invoice lists whose period starts in it), with the
/// discrepancies they found summed per kind (matched lines left out: they are not
/// discrepancies).
pub fn reconciliation_figures(state: &LedgerState, year: ProgrammeYear) -> ReconciliationFigures {
    use crate::domain::reconciliation::{DiscrepancyKind, ReconciliationScope};
    let mut reconciliations = 0u64;
    let mut by_kind: BTreeMap<DiscrepancyKind, u64> = BTreeMap::new();
    for record in state.reconciliations() {
        let of_year = match &record.reconciliation.scope {
            ReconciliationScope::BankPayments { year: recorded } => *recorded == year,
            ReconciliationScope::CenterInvoices { from, .. } => {
                i64::from(from.year_month_day().0) == i64::from(year.get())
            }
        };
        if !of_year {
            continue;
        }
        reconciliations += 1;
        for (kind, count) in &record.reconciliation.counts.by_kind {
            if *kind != DiscrepancyKind::Matched {
                *by_kind.entry(*kind).or_default() += count;
            }
        }
    }
    if reconciliations == 0 {
        return ReconciliationFigures::NoneRecorded;
    }
    let discrepancies = DiscrepancyKind::ALL
        .iter()
        .filter(|kind| **kind != DiscrepancyKind::Matched)
        .map(|kind| DiscrepancyCount {
            label_chinese: discrepancy_label_chinese(*kind).to_string(),
            label_english: kind.name().to_lowercase().replace('_', " "),
            count: by_kind.get(kind).copied().unwrap_or(0),
        })
        .collect();
    ReconciliationFigures::Recorded {
        reconciliations,
        discrepancies,
    }
}

fn discrepancy_label_chinese(kind: crate::domain::reconciliation::DiscrepancyKind) -> &'static str {
    use crate::domain::reconciliation::DiscrepancyKind::*;
    match kind {
        Matched => "一致",
        InLedgerNotInFile => "账有表无",
        InFileNotInLedger => "表有账无",
        AmountMismatch => "金额不符",
        SubsidyMismatch => "补贴不符",
        ReversedButClaimed => "已冲销仍申报",
        PaymentWithoutStatement => "无结算单付款",
        StatementPaidTwice => "重复付款",
        StatementNotPaid => "结算单未付",
        DuplicateInFile => "流水号重复",
        PayeeMismatch => "收款方不符",
        ReturnedButPaid => "已退回仍付款",
    }
}

/// Everything the bureau's report shows but the pool's use over time, read in one go
/// (under the read lock in the server: keep it a plain read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportFigures {
    pub year: ProgrammeYear,
    /// The event the figures are as of, and its time.
    pub last_sequence: u64,
    pub last_time: Timestamp,
    pub pool: PoolFigures,
    pub vouchers: VoucherFigures,
    pub top_enterprises: Vec<EnterpriseRow>,
    pub enterprises_registered: usize,
    pub centers: CenterFigures,
    pub settlement: SettlementFigures,
    pub reconciliation: ReconciliationFigures,
    /// A reimbursement year's payees and their totals (`None` when centers are paid).
    pub payees: Option<PayeeFigures>,
    /// A stacked second source's year, if the policy has one.
    pub second_source: Option<SecondSourceFigures>,
}

impl ReportFigures {
    /// The year's figures; `None` when no policy was published for it.
    pub fn compute(state: &LedgerState, year: ProgrammeYear) -> Option<ReportFigures> {
        Some(ReportFigures {
            year,
            last_sequence: state.last_sequence(),
            last_time: state.last_time(),
            pool: pool_figures(state, year)?,
            vouchers: voucher_figures(state, year),
            top_enterprises: top_enterprises(state, year, crate::limits::REPORT_TOP_ENTERPRISES),
            enterprises_registered: state.enterprises_sorted().len(),
            centers: center_figures(state, year),
            settlement: settlement_figures(state, year)?,
            reconciliation: reconciliation_figures(state, year),
            payees: payee_figures(state, year),
            second_source: second_source_figures(state, year),
        })
    }
}

/// Subsidy clawed back from centers in a year, and how it was recovered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivableFigures {
    pub clawed_back: Money,
    /// Recovered by offset against later statements.
    pub offset: Money,
    /// Recovered by repayments.
    pub repaid: Money,
    /// Still owed.
    pub outstanding: Money,
}

impl ReceivableFigures {
    pub fn of(book: &YearBook) -> ReceivableFigures {
        ReceivableFigures {
            clawed_back: book.clawed_back,
            offset: book.offset,
            repaid: book.repaid,
            outstanding: book.outstanding(),
        }
    }
}
