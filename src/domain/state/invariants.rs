//! `check_invariants`: the promises every state keeps, checked after every replay, by
//! `verify`, and after every command in the property tests. ARCHITECTURE.md states them;
//! the numbers below refer to its list. "Center" there reads "payee": the center, or in
//! a reimbursement year the enterprise (the books are keyed by the payee).

use std::collections::BTreeMap;

use super::{CenterYear, LedgerState, StatementState, Usage, Voucher, YearBook};
use crate::domain::ids::{ProgrammeYear, StatementId, Uscc};
use crate::domain::money::Money;
use crate::domain::programme::{FundingSource, Payee};

fn sum(amounts: impl IntoIterator<Item = Money>) -> Money {
    amounts.into_iter().fold(Money::ZERO, Money::plus)
}

impl LedgerState {
    /// Checks every invariant the rules promise, returning a sentence per violation.
    pub fn check_invariants(&self) -> Vec<String> {
        let mut violations = Vec::new();
        self.check_pools_and_caps(&mut violations);
        self.check_money_is_conserved(&mut violations);
        self.check_statements(&mut violations);
        self.check_vouchers(&mut violations);
        violations
    }

    /// 1–2. Pool = free + held + redeemed + receivables, for every year and every
    /// source; each enterprise within its cap; the programme pool's usage is the sum over
    /// enterprises (a second source has no per-enterprise cap).
    fn check_pools_and_caps(&self, violations: &mut Vec<String>) {
        // The second pool's usage is the sum of the vouchers' second shares (held:
        // remaining, redeemed: subsidy standing, receivable: clawbacks outstanding), as
        // the programme pool's is the sum over enterprises.
        let mut shares: BTreeMap<ProgrammeYear, Usage> = BTreeMap::new();
        for voucher in self.vouchers.values() {
            if voucher.second.is_zero() {
                continue;
            }
            let total = shares.entry(voucher.terms.year).or_default();
            total.held = total.held.plus(voucher.second.remaining);
            total.redeemed = total.redeemed.plus(voucher.second.subsidy_total);
            total.receivable = total.receivable.plus(voucher.second.clawback_outstanding);
        }
        for (year, book) in &self.second_years {
            let expected = shares.remove(year).unwrap_or_default();
            if expected != book.usage {
                violations.push(format!(
                    "second source pool {year}: {:?} differs from the sum over vouchers' second shares {expected:?}",
                    book.usage
                ));
            }
        }
        for (year, total) in shares {
            violations.push(format!(
                "vouchers' second shares use {total:?} of {year}, which has no second books"
            ));
        }
        for (year, book) in &self.second_years {
            let usage = book.usage;
            let has_second = self
                .policies
                .get(year)
                .is_some_and(|policy| policy.rules().second_source.is_some());
            if !has_second && !usage.used().is_zero() {
                violations.push(format!(
                    "second source {year}: usage without a policy that has a second source"
                ));
            }
            if usage.used() > book.pool {
                violations.push(format!(
                    "second source pool {year}: held {} + redeemed {} + receivable {} exceeds the pool {}",
                    usage.held, usage.redeemed, usage.receivable, book.pool
                ));
            }
        }
        for (year, book) in &self.years {
            let usage = book.usage;
            if !self.policies.contains_key(year) && !usage.used().is_zero() {
                violations.push(format!("year {year}: usage without a policy"));
            }
            if usage.used() > book.pool {
                violations.push(format!(
                    "pool {year}: held {} + redeemed {} + receivable {} exceeds the pool {}",
                    usage.held, usage.redeemed, usage.receivable, book.pool
                ));
            }
        }
        let mut expected: BTreeMap<ProgrammeYear, Usage> = BTreeMap::new();
        for account in self.enterprises_sorted() {
            for (year, usage) in &account.usage_by_year {
                let total = expected.entry(*year).or_default();
                total.held = total.held.plus(usage.held);
                total.redeemed = total.redeemed.plus(usage.redeemed);
                total.receivable = total.receivable.plus(usage.receivable);
                if let Some(cap) = self.enterprise_cap(&account.enterprise, *year) {
                    if usage.used() > cap {
                        violations.push(format!(
                            "enterprise {} {year}: held {} + redeemed {} + receivable {} exceeds its cap {cap}",
                            account.enterprise, usage.held, usage.redeemed, usage.receivable
                        ));
                    }
                }
            }
        }
        for (year, book) in &self.years {
            let total = expected.remove(year).unwrap_or_default();
            if total != book.usage {
                violations.push(format!(
                    "pool {year}: {:?} differs from the sum over enterprises {:?}",
                    book.usage, total
                ));
            }
        }
        for (year, total) in expected {
            if total != Usage::default() {
                violations.push(format!(
                    "enterprises use {total:?} of {year}, which has no books"
                ));
            }
        }
    }

    /// 3–4, for the programme's own books and a stacked second source's alike.
    fn check_money_is_conserved(&self, violations: &mut Vec<String>) {
        self.check_source_conserved(
            FundingSource::Primary,
            &self.years,
            &self.center_years,
            violations,
        );
        self.check_source_conserved(
            FundingSource::Second,
            &self.second_years,
            &self.second_center_years,
            violations,
        );
    }

    /// 3–4. Every fen of subsidy granted is in exactly one of: reversed before
    /// settlement, unsettled, an open statement, a paid statement, or clawed back; and
    /// every clawback is outstanding, offset or repaid. Per center-year, redemptions are
    /// counted once: granted = reversed before settlement + unsettled + settled.
    fn check_source_conserved(
        &self,
        source: FundingSource,
        years: &BTreeMap<ProgrammeYear, YearBook>,
        center_years: &BTreeMap<(Uscc, ProgrammeYear), CenterYear>,
        violations: &mut Vec<String>,
    ) {
        let label = match source {
            FundingSource::Primary => "",
            FundingSource::Second => "second source: ",
        };
        let mut totals: BTreeMap<ProgrammeYear, YearBook> = BTreeMap::new();
        // Receivables that keep the pool used (all but format-v1 ones), per year.
        let mut holding: BTreeMap<ProgrammeYear, Money> = BTreeMap::new();
        for ((center, year), books) in center_years {
            let held = sum(books
                .receivables
                .iter()
                .filter(|item| item.holds_pool)
                .map(|item| item.outstanding));
            let entry = holding.entry(*year).or_insert(Money::ZERO);
            *entry = entry.plus(held);
            let kind = self.payee_kind(*year);
            let place = format!("{label}{} {center} {year}", kind.name());
            // A reimbursement year's books are an enterprise's: it owes only clawbacks of
            // its own vouchers.
            if kind == Payee::Enterprise {
                if let Some(item) = books
                    .receivables
                    .iter()
                    .find(|item| item.enterprise != *center)
                {
                    violations.push(format!(
                        "{place}: owes a clawback of voucher {} of enterprise {}",
                        item.voucher, item.enterprise
                    ));
                }
            }
            if books.granted
                != books
                    .reversed_unsettled
                    .plus(books.unsettled)
                    .plus(books.settled)
            {
                violations.push(format!(
                    "{place}: granted {} differs from reversed before settlement {} + unsettled {} + settled {}",
                    books.granted, books.reversed_unsettled, books.unsettled, books.settled
                ));
            }
            if books.granted_count
                != books.reversed_unsettled_count + books.unsettled_count + books.settled_count
            {
                violations.push(format!(
                    "{place}: {} redemptions differ from {} reversed before settlement + {} unsettled + {} settled",
                    books.granted_count,
                    books.reversed_unsettled_count,
                    books.unsettled_count,
                    books.settled_count
                ));
            }
            let items = sum(books.receivables.iter().map(|item| item.outstanding));
            if items != books.outstanding() || books.offset.plus(books.repaid) > books.clawed_back {
                violations.push(format!(
                    "{place}: receivable items {items} differ from clawed back {} - offset {} - repaid {}",
                    books.clawed_back, books.offset, books.repaid
                ));
            }
            if !books
                .settlements
                .windows(2)
                .all(|pair| pair[0].0 < pair[1].0)
            {
                violations.push(format!(
                    "{place}: settlement cutoffs are not increasing, so a redemption could be in two statements"
                ));
            }
            let statements: Vec<_> = books
                .settlements
                .iter()
                .filter_map(|(_, statement)| statement.and_then(|id| self.statements.get(&id)))
                .collect();
            if let Some(other) = statements
                .iter()
                .find(|statement| statement.source != source)
            {
                violations.push(format!(
                    "{place}: holds statement {} of the {} source",
                    other.id,
                    other.source.name()
                ));
            }
            let statements_gross = sum(statements.iter().map(|statement| statement.gross));
            let legacy = books
                .settlements
                .iter()
                .any(|(_, statement)| statement.is_none());
            if !legacy && statements_gross != books.settled {
                violations.push(format!(
                    "{place}: statements hold {statements_gross}, the books say {} was settled",
                    books.settled
                ));
            }
            let total = totals.entry(*year).or_default();
            total.granted = total.granted.plus(books.granted);
            total.reversed_unsettled = total.reversed_unsettled.plus(books.reversed_unsettled);
            total.unsettled = total.unsettled.plus(books.unsettled);
            total.settled = total.settled.plus(books.settled);
            total.clawed_back = total.clawed_back.plus(books.clawed_back);
            total.offset = total.offset.plus(books.offset);
            total.repaid = total.repaid.plus(books.repaid);
            total.paid = total.paid.plus(books.paid);
        }
        for (year, book) in years {
            let total = totals.remove(year).unwrap_or_default();
            let buckets = book
                .reversed_unsettled
                .plus(book.unsettled)
                .plus(book.standing_open)
                .plus(book.standing_paid)
                .plus(book.clawed_back);
            if book.granted != buckets {
                violations.push(format!(
                    "{label}year {year}: granted {} differs from reversed before settlement {} + unsettled {} + open statements {} + paid statements {} + clawed back {}",
                    book.granted, book.reversed_unsettled, book.unsettled, book.standing_open, book.standing_paid, book.clawed_back
                ));
            }
            if book.offset.plus(book.repaid) > book.clawed_back {
                violations.push(format!(
                    "{label}year {year}: offset {} + repaid {} exceed clawed back {}",
                    book.offset, book.repaid, book.clawed_back
                ));
            }
            let held = holding.get(year).copied().unwrap_or(Money::ZERO);
            if book.usage.receivable != held || held > book.outstanding() {
                violations.push(format!(
                    "{label}year {year}: the pool's receivable {} differs from the receivables that hold it {held} (outstanding: clawed back {} - offset {} - repaid {})",
                    book.usage.receivable, book.clawed_back, book.offset, book.repaid
                ));
            }
            let standing = book
                .unsettled
                .plus(book.standing_open)
                .plus(book.standing_paid);
            if book.usage.redeemed != standing {
                violations.push(format!(
                    "{label}year {year}: the pool's redeemed {} differs from the subsidy that stands {standing}",
                    book.usage.redeemed
                ));
            }
            for (what, expected, found) in [
                ("granted", book.granted, total.granted),
                (
                    "reversed before settlement",
                    book.reversed_unsettled,
                    total.reversed_unsettled,
                ),
                ("unsettled", book.unsettled, total.unsettled),
                ("settled", book.settled, total.settled),
                ("clawed back", book.clawed_back, total.clawed_back),
                ("offset", book.offset, total.offset),
                ("repaid", book.repaid, total.repaid),
                ("paid", book.paid, total.paid),
            ] {
                if expected != found {
                    violations.push(format!(
                        "{label}year {year}: {what} {expected} differs from the sum over payees {found}"
                    ));
                }
            }
        }
    }

    /// Statements (invariant 5): net = gross - offset; a paid statement is paid by
    /// exactly its net (or had nothing to pay); clawbacks of its invoices never exceed
    /// its gross.
    fn check_statements(&self, violations: &mut Vec<String>) {
        for statement in self.statements.values() {
            let id = statement.id;
            if statement.gross.checked_minus(statement.clawback_offset) != Some(statement.net) {
                violations.push(format!(
                    "statement {id}: net {} is not gross {} - offset {}",
                    statement.net, statement.gross, statement.clawback_offset
                ));
            }
            if statement.clawed_back > statement.gross {
                violations.push(format!(
                    "statement {id}: clawed back {} exceeds its gross {}",
                    statement.clawed_back, statement.gross
                ));
            }
            // Stacked funding: the second source's statement goes with the programme's
            // statement of the same payee, run and cutoff.
            // A run appends it right after the programme's statement (ids are sequences).
            if statement.source == FundingSource::Second
                && !self
                    .statements
                    .get(&StatementId(id.0.saturating_sub(1)))
                    .is_some_and(|other| {
                        other.source == FundingSource::Primary
                            && other.run == statement.run
                            && other.center == statement.center
                            && other.cutoff == statement.cutoff
                    })
            {
                violations.push(format!(
                    "statement {id}: the second source's statement has no statement of the programme for payee {} in run {}",
                    statement.center, statement.run
                ));
            }
            let paid_by = statement.current_payment().map(|payment| payment.amount);
            let consistent = match statement.state {
                StatementState::Paid => {
                    paid_by == Some(statement.net) || (paid_by.is_none() && statement.net.is_zero())
                }
                StatementState::Open | StatementState::Returned => paid_by.is_none(),
            };
            if !consistent {
                violations.push(format!(
                    "statement {id}: state {} does not match its payments",
                    statement.state.name()
                ));
            }
        }
    }

    /// Vouchers (invariant 6): face value = remaining + subsidy standing + clawbacks
    /// outstanding + released; subsidy ≤ ceiling × fee; invoiced ≤ fee.
    fn check_vouchers(&self, violations: &mut Vec<String>) {
        for voucher in self.vouchers_sorted() {
            let terms = &voucher.terms;
            let ceiling = terms.contract_fee.as_decimal() * terms.ceiling.as_decimal();
            if voucher.subsidy_total.as_decimal() > ceiling {
                violations.push(format!(
                    "voucher {}: subsidy {} exceeds ceiling {} x fee {}",
                    terms.voucher, voucher.subsidy_total, terms.ceiling, terms.contract_fee
                ));
            }
            if voucher.invoiced_total > terms.contract_fee {
                violations.push(format!(
                    "voucher {}: invoiced {} exceeds contract fee {}",
                    terms.voucher, voucher.invoiced_total, terms.contract_fee
                ));
            }
            self.check_second_share(voucher, violations);
            if voucher.accounted() != terms.face_value {
                violations.push(format!(
                    "voucher {}: remaining {} + subsidy {} + clawbacks {} + released {} differs from face value {}",
                    terms.voucher,
                    voucher.remaining,
                    voucher.subsidy_total,
                    voucher.clawback_outstanding,
                    voucher.released,
                    terms.face_value
                ));
            }
        }
    }

    /// Stacked funding (invariant 6 for the second share): second face value equals
    /// remaining, subsidy standing, clawbacks outstanding and released together; both
    /// sources' subsidy within the combined ceiling × fee; a second share only where the
    /// policy has a second source.
    fn check_second_share(&self, voucher: &Voucher, violations: &mut Vec<String>) {
        let terms = &voucher.terms;
        let second_face = terms.programme.second_face_value;
        if voucher.second.accounted() != second_face {
            violations.push(format!(
                "voucher {}: second share remaining {} + subsidy {} + clawbacks {} + released {} differs from its second face value {second_face}",
                terms.voucher,
                voucher.second.remaining,
                voucher.second.subsidy_total,
                voucher.second.clawback_outstanding,
                voucher.second.released
            ));
        }
        let second = self
            .policies
            .get(&terms.year)
            .and_then(|policy| policy.rules().second_source.as_ref());
        match second {
            None if !second_face.is_zero() => violations.push(format!(
                "voucher {}: a second share of {second_face} in {}, whose policy has no second source",
                terms.voucher, terms.year
            )),
            Some(second) => {
                let ceiling = terms.contract_fee.times_rate_floor(second.combined_ceiling);
                if terms.face_value.plus(second_face) > ceiling
                    || voucher.combined_subsidy() > ceiling
                {
                    violations.push(format!(
                        "voucher {}: face value {} + second share {second_face} (subsidy {} + {}) exceed the combined ceiling {} x fee {} = {ceiling}",
                        terms.voucher,
                        terms.face_value,
                        voucher.subsidy_total,
                        voucher.second.subsidy_total,
                        second.combined_ceiling,
                        terms.contract_fee
                    ));
                }
            }
            None => {}
        }
    }
}
