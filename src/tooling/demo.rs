//! A seeded, realistic programme year: the `demo` command and the fixtures of tests and
//! benchmarks. Deterministic for a given seed, so two runs give the same log, byte for
//! byte.
//!
//! The story: the bureau publishes the 2026 policy, registers computing centers and
//! enterprises (a few multimodal-model builders get a raised cap, a few related parties
//! are declared), approves vouchers until the pool runs out, and centers post a year of
//! invoices: some retried, some conflicting, some reversed (clawbacks once settled), some
//! from a center that gets suspended or delisted; the finance bureau settles the first
//! three quarters; at year end unredeemed vouchers expire.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::domain::{
    ApproveVoucher, BankReference, CenterStatus, Command, ContractNumber, Date, DeliveryProof,
    Envelope, FacilityTier, InvoiceNumber, LegalName, ListingBasis, Money, Origin, PostInvoice,
    Principal, PrincipalRole, ProgrammePolicy, ProgrammeYear, Reason, RejectionCode, Reply,
    SettlementRunId, StatementId, Timestamp, Uscc, ValidationError, VoucherId,
};
use crate::ledger::{Ledger, LedgerError, SUBMIT_BATCH_LIMIT};

#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub seed: u64,
    pub year: u32,
    pub centers: usize,
    pub enterprises: usize,
    pub contracts: usize,
    pub invoices: usize,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            seed: 2026,
            year: 2026,
            centers: 50,
            enterprises: 5_000,
            contracts: 20_000,
            invoices: 1_000_000,
        }
    }
}

/// Counts of what the demo submitted and how the ledger answered.
#[derive(Clone, Debug, Default)]
pub struct DemoTally {
    pub commands: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejections: BTreeMap<RejectionCode, u64>,
    pub invoices_posted: u64,
}

/// Makes a valid USCC from a prefix of 10 characters and a number (base-31 encoded).
pub fn demo_uscc(prefix: &str, number: u64) -> Result<Uscc, ValidationError> {
    const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let mut body = String::from(prefix);
    let mut digits = [b'0'; 7];
    let mut rest = number;
    for digit in digits.iter_mut().rev() {
        *digit = ALPHABET[(rest % 31) as usize];
        rest /= 31;
    }
    body.push_str(std::str::from_utf8(&digits).unwrap_or("0000000"));
    Uscc::from_body(&body)
}

pub fn center_uscc(index: usize) -> Result<Uscc, ValidationError> {
    demo_uscc("91330100MA", index as u64)
}

pub fn enterprise_uscc(index: usize) -> Result<Uscc, ValidationError> {
    demo_uscc("91330106MA", index as u64)
}

fn text<T>(parse: fn(&str) -> Result<T, ValidationError>, value: String) -> Result<T, LedgerError> {
    parse(&value).map_err(|error| LedgerError::Invariant(format!("demo data: {error}")))
}

fn fen(value: i64) -> Result<Money, LedgerError> {
    Money::from_fen(value).map_err(|error| LedgerError::Invariant(format!("demo data: {error}")))
}

struct VoucherPlan {
    voucher: VoucherId,
    center: usize,
    fee_fen: i64,
    term_start: Date,
    term_end: Date,
}

/// Feeds commands to the ledger in batches and keeps the tally.
struct Driver<'a> {
    ledger: &'a mut Ledger,
    pending: Vec<Envelope>,
    tally: DemoTally,
    clock: i64,
    approved: Vec<VoucherPlan>,
    pending_plans: Vec<Option<VoucherPlan>>,
    recent_invoices: VecDeque<PostInvoice>,
    pending_invoices: Vec<Option<PostInvoice>>,
}

impl Driver<'_> {
    fn send(&mut self, command: Command) -> Result<(), LedgerError> {
        self.send_tracked(command, None, None)
    }

    /// Moves the simulated clock forward to `at` (never back).
    fn advance_to(&mut self, at: Date) {
        self.clock = self
            .clock
            .max(i64::from(at.days_since_epoch()) * 86_400_000);
    }

    /// Who sends `command` in the story: a center posts and (mostly) reverses its own
    /// invoices; the bureau does everything else, and every third reversal.
    fn origin_of(&self, command: &Command) -> Origin {
        match command {
            Command::PostInvoice(post) => self.center_origin(&post.center),
            Command::ReverseInvoice { center, .. } if self.tally.commands % 3 != 0 => {
                self.center_origin(center)
            }
            _ => Origin::new(Principal::system("demo bureau"), None),
        }
    }

    fn center_origin(&self, center: &Uscc) -> Origin {
        let principal = Principal::from_stored(PrincipalRole::Center, center.as_str())
            .unwrap_or_else(|_| Principal::system("demo center"));
        Origin::new(principal, None)
    }

    fn send_tracked(
        &mut self,
        command: Command,
        plan: Option<VoucherPlan>,
        invoice: Option<PostInvoice>,
    ) -> Result<(), LedgerError> {
        // One simulated second per command keeps time moving forward deterministically.
        self.clock += 1_000;
        let origin = self.origin_of(&command);
        self.pending.push(Envelope::from_origin(
            Timestamp(self.clock),
            origin,
            command,
        ));
        self.pending_plans.push(plan);
        self.pending_invoices.push(invoice);
        if self.pending.len() == SUBMIT_BATCH_LIMIT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LedgerError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let replies = self.ledger.submit(&self.pending)?;
        let plans = std::mem::take(&mut self.pending_plans);
        let invoices = std::mem::take(&mut self.pending_invoices);
        for ((reply, plan), invoice) in replies.into_iter().zip(plans).zip(invoices) {
            self.tally.commands += 1;
            match reply {
                Ok(Reply::InvoiceOutcome(outcome)) if outcome.duplicate => {
                    self.tally.duplicates += 1
                }
                Ok(_) => {
                    self.tally.accepted += 1;
                    if let Some(plan) = plan {
                        self.approved.push(plan);
                    }
                    if let Some(invoice) = invoice {
                        if self.recent_invoices.len() == 20_000 {
                            self.recent_invoices.pop_front();
                        }
                        self.recent_invoices.push_back(invoice);
                    }
                }
                Err(rejection) => *self.tally.rejections.entry(rejection.code).or_default() += 1,
            }
        }
        self.pending.clear();
        Ok(())
    }
}

/// Runs the whole programme year against `ledger`. `progress(done, total)` is called after
/// each invoice batch.
pub fn run_demo(
    ledger: &mut Ledger,
    config: &DemoConfig,
    mut progress: impl FnMut(u64, u64),
) -> Result<DemoTally, LedgerError> {
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let year = ProgrammeYear::new(config.year)
        .map_err(|error| LedgerError::Invariant(error.to_string()))?;
    let year_start = Date::from_ymd(config.year as i32, 1, 1)
        .map_err(|error| LedgerError::Invariant(error.to_string()))?;
    let start_ms =
        (ledger.state().last_time().0).max(i64::from(year_start.days_since_epoch()) * 86_400_000);
    let mut driver = Driver {
        ledger,
        pending: Vec::with_capacity(SUBMIT_BATCH_LIMIT),
        tally: DemoTally::default(),
        clock: start_ms,
        approved: Vec::with_capacity(config.contracts),
        pending_plans: Vec::new(),
        pending_invoices: Vec::new(),
        recent_invoices: VecDeque::new(),
    };
    let reason = |text: &str| text_reason(text);

    driver.send(Command::PublishPolicy {
        policy: ProgrammePolicy::hangzhou_defaults(year),
    })?;
    let centers: Vec<Uscc> = (0..config.centers)
        .map(center_uscc)
        .collect::<Result<_, _>>()
        .map_err(|error| LedgerError::Invariant(error.to_string()))?;
    let enterprises: Vec<Uscc> = (0..config.enterprises)
        .map(enterprise_uscc)
        .collect::<Result<_, _>>()
        .map_err(|error| LedgerError::Invariant(error.to_string()))?;
    for (index, center) in centers.iter().enumerate() {
        let tier = match index % 10 {
            0..=2 => FacilityTier::Domestic,
            3 | 4 => FacilityTier::MaasMultimodal,
            _ => FacilityTier::Other,
        };
        let listing_basis = if index % 3 == 2 {
            ListingBasis::MatchmakingPartner
        } else {
            ListingBasis::PlanningLayout
        };
        driver.send(Command::RegisterCenter {
            center: *center,
            name: text(
                LegalName::parse,
                format!("Hangzhou Intelligent Computing Center {index:02}"),
            )?,
            tier,
            listing_basis,
        })?;
    }
    for (index, enterprise) in enterprises.iter().enumerate() {
        driver.send(Command::RegisterEnterprise {
            enterprise: *enterprise,
            name: text(
                LegalName::parse,
                format!("Zhejiang AI Enterprise {index:04} Co., Ltd."),
            )?,
        })?;
    }
    // Multimodal foundation-model builders: the bureau relaxes their cap.
    let builders = (config.enterprises / 500).max(1);
    for enterprise in enterprises.iter().take(builders) {
        driver.send(Command::GrantCapOverride {
            enterprise: *enterprise,
            year,
            cap: fen(1_500_000_000)?,
            reason: reason("builds a generative multimodal foundation model")?,
        })?;
    }
    let related_count = (config.enterprises / 250).max(1);
    for index in 0..related_count {
        driver.send(Command::DeclareRelatedParty {
            enterprise: enterprises[(index * 37) % enterprises.len()],
            center: centers[index % centers.len()],
            reason: reason("common controlling shareholder")?,
        })?;
    }
    driver.flush()?;

    // Vouchers: four contracts per enterprise on average.
    for contract in 0..config.contracts {
        let enterprise_index = contract % enterprises.len();
        let center_index = if contract % 97 == 5 {
            // Some applications name a related party on purpose.
            let related = (contract / 97) % related_count;
            if (related * 37) % enterprises.len() == enterprise_index {
                related % centers.len()
            } else {
                rng.random_range(0..centers.len())
            }
        } else {
            rng.random_range(0..centers.len())
        };
        let is_builder = enterprise_index < builders && contract < enterprises.len();
        let fee_fen: i64 = if is_builder {
            rng.random_range(2_000_000_000..4_000_000_000)
        } else if contract % 1_000 == 999 {
            // Oversized contracts from ordinary firms run into the 8,000,000.00 cap.
            rng.random_range(3_000_000_000..4_000_000_000)
        } else {
            rng.random_range(500_000..7_000_000)
        };
        let start_day = rng.random_range(0..150);
        let term_start = year_start.plus_days(start_day);
        let term_end = term_start.plus_days(rng.random_range(180..365));
        let voucher = VoucherId::from_u128(((config.seed as u128) << 64) | (contract as u128 + 1));
        let contract_number = if contract % 1_500 == 7 && contract > 0 {
            // A re-application for an earlier contract is refused.
            text(
                ContractNumber::parse,
                format!("HZ-{}-{:06}", config.year, contract - 1),
            )?
        } else {
            text(
                ContractNumber::parse,
                format!("HZ-{}-{contract:06}", config.year),
            )?
        };
        let requested = if contract % 4 == 0 {
            fen(fee_fen / 5)?
        } else {
            fen(fee_fen)?
        };
        let approve = ApproveVoucher {
            voucher,
            year,
            enterprise: enterprises[enterprise_index],
            center: centers[center_index],
            contract_number,
            contract_fee: fen(fee_fen)?,
            term_start,
            term_end,
            requested,
        };
        let plan = VoucherPlan {
            voucher,
            center: center_index,
            fee_fen,
            term_start,
            term_end,
        };
        driver.send_tracked(Command::ApproveVoucher(approve), Some(plan), None)?;
    }
    driver.flush()?;

    // A year of invoices.
    let mut invoice_counter = vec![0u64; centers.len()];
    let total = config.invoices as u64;
    let suspended = 7 % centers.len();
    let delisted = 13 % centers.len();
    for posted in 0..config.invoices {
        if driver.approved.is_empty() {
            break;
        }
        let quarter = config.invoices / 4;
        if quarter > 0 && posted > 0 && posted % quarter == 0 {
            settle_quarter(&mut driver, config, year, (posted / quarter) as u128, true)?;
        }
        if posted == config.invoices * 2 / 5 {
            driver.send(Command::SetCenterStatus {
                center: centers[suspended],
                status: CenterStatus::Suspended,
                reason: reason("failed the quarterly delivery inspection")?,
            })?;
        }
        if posted == config.invoices * 3 / 5 {
            driver.send(Command::SetCenterStatus {
                center: centers[delisted],
                status: CenterStatus::Delisted,
                reason: reason("left the planning layout")?,
            })?;
        }
        if posted == config.invoices / 2 {
            let count = driver.approved.len().min(50);
            for index in 0..count {
                let voucher = driver.approved[(index * 131) % driver.approved.len()].voucher;
                driver.send(Command::CancelVoucher {
                    voucher,
                    reason: reason("contract terminated early")?,
                })?;
            }
        }
        let roll: u32 = rng.random_range(0..10_000);
        if roll < 50 && !driver.recent_invoices.is_empty() {
            // A retry of an earlier invoice, identical: answered with the original outcome.
            let index = rng.random_range(0..driver.recent_invoices.len());
            let retry = driver.recent_invoices[index].clone();
            driver.send(Command::PostInvoice(retry))?;
            continue;
        }
        if roll < 55 && !driver.recent_invoices.is_empty() {
            let index = rng.random_range(0..driver.recent_invoices.len());
            let mut conflicting = driver.recent_invoices[index].clone();
            conflicting.amount = conflicting.amount.plus(fen(100)?);
            driver.send(Command::PostInvoice(conflicting))?;
            continue;
        }
        if roll < 85 && !driver.recent_invoices.is_empty() {
            let index = rng.random_range(0..driver.recent_invoices.len());
            let reversed = driver.recent_invoices[index].clone();
            driver.send(Command::ReverseInvoice {
                center: reversed.center,
                invoice_number: reversed.invoice_number,
                reason: reason("credit note: service level not met")?,
            })?;
            continue;
        }
        let plan = &driver.approved[rng.random_range(0..driver.approved.len())];
        let mut center_index = plan.center;
        if roll < 90 {
            center_index = (center_index + 1) % centers.len();
        }
        invoice_counter[center_index] += 1;
        let amount_fen = (plan.fee_fen * rng.random_range(40..240) / 10_000).max(1);
        let span = plan.term_end.days_since_epoch() - plan.term_start.days_since_epoch();
        let mut issue_date = plan.term_start.plus_days(rng.random_range(0..=span));
        if (90..95).contains(&roll) {
            issue_date = plan.term_end.plus_days(3);
        }
        let invoice = PostInvoice {
            center: centers[center_index],
            voucher: plan.voucher,
            invoice_number: text(
                InvoiceNumber::parse,
                format!(
                    "{:02}{}{:010}",
                    center_index, config.year, invoice_counter[center_index]
                ),
            )?,
            amount: fen(amount_fen)?,
            issue_date,
            delivery_proof: text(
                DeliveryProof::parse,
                format!(
                    "acceptance/{}/{}",
                    center_index, invoice_counter[center_index]
                ),
            )?,
        };
        driver.tally.invoices_posted += 1;
        driver.send_tracked(Command::PostInvoice(invoice.clone()), None, Some(invoice))?;
        if driver.pending.is_empty() {
            progress(posted as u64 + 1, total);
        }
    }
    driver.flush()?;
    progress(total, total);

    // Year end: the fourth quarter's statements are issued but not yet paid, so the
    // summary shows what the bureau still owes; once every redemption window is over,
    // the sweep expires what is left and the year is closed.
    settle_quarter(&mut driver, config, year, 4, false)?;
    let year_end = Date::from_ymd(config.year as i32 + 1, 1, 1)
        .map_err(|error| LedgerError::Invariant(error.to_string()))?;
    driver.advance_to(year_end.plus_days(366 + 120));
    loop {
        let before = driver.ledger.state().last_sequence();
        driver.send(Command::ExpireVouchers)?;
        driver.flush()?;
        if driver.ledger.state().last_sequence() == before {
            break;
        }
    }
    driver.send(Command::CloseProgrammeYear { year })?;
    driver.flush()?;
    Ok(driver.tally)
}

/// A quarter's settlement: a run, then (when `pay`) every statement paid by bank
/// transfer, the first payment bounced and paid again, and the first center that owes
/// clawbacks repaying half of them.
fn settle_quarter(
    driver: &mut Driver<'_>,
    config: &DemoConfig,
    year: ProgrammeYear,
    quarter: u128,
    pay: bool,
) -> Result<(), LedgerError> {
    let run = SettlementRunId::from_u128(((config.seed as u128) << 80) | quarter);
    driver.send(Command::CreateSettlementRun { run, year })?;
    driver.flush()?;
    if !pay {
        return Ok(());
    }
    let today = Timestamp(driver.clock).date();
    let due: Vec<(StatementId, Money, Uscc)> = {
        let state = driver.ledger.state();
        state
            .run(&run)
            .map(|found| {
                found
                    .statements
                    .iter()
                    .filter_map(|id| state.statement(id))
                    .filter(|statement| !statement.net.is_zero())
                    .map(|statement| (statement.id, statement.net, statement.center))
                    .collect()
            })
            .unwrap_or_default()
    };
    let reference = |kind: &str, quarter: u128, id: u64| {
        BankReference::parse(&format!("{kind}{}Q{quarter}-{id}", config.year))
            .map_err(|error| LedgerError::Invariant(error.to_string()))
    };
    for (index, (statement, net, _)) in due.iter().enumerate() {
        driver.send(Command::ConfirmPayment {
            statement: *statement,
            bank_reference: reference("PAY", quarter, statement.0)?,
            amount: *net,
            value_date: today,
        })?;
        if index == 0 {
            driver.send(Command::RecordPaymentReturned {
                statement: *statement,
                bank_reference: reference("PAY", quarter, statement.0)?,
                reason: text_reason("beneficiary account closed")?,
            })?;
            driver.send(Command::ConfirmPayment {
                statement: *statement,
                bank_reference: reference("REPAY", quarter, statement.0)?,
                amount: *net,
                value_date: today,
            })?;
        }
    }
    driver.flush()?;
    let owing = {
        let state = driver.ledger.state();
        let found = state
            .center_years()
            .filter(|((_, books_year), books)| {
                *books_year == year && !books.outstanding().is_zero()
            })
            .map(|((center, _), books)| (*center, books.outstanding()))
            .next();
        found
    };
    if let Some((center, outstanding)) = owing {
        let half = Money::from_fen((outstanding.to_fen() / 2).max(1))
            .map_err(|error| LedgerError::Invariant(error.to_string()))?;
        driver.send(Command::RecordRepayment {
            center,
            year,
            amount: half,
            bank_reference: reference("CLAWBACK", quarter, 0)?,
            value_date: today,
        })?;
        driver.flush()?;
    }
    Ok(())
}

fn text_reason(value: &str) -> Result<Reason, LedgerError> {
    Reason::parse(value).map_err(|error| LedgerError::Invariant(error.to_string()))
}

/// The demo's tally as summary lines: commands, outcomes and rejections by reason.
pub fn tally_lines(tally: &DemoTally) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nCommands: {} submitted, {} accepted, {} duplicate invoices answered idempotently, {} rejected",
        tally.commands, tally.accepted, tally.duplicates, tally.rejections.values().sum::<u64>());
    let _ = writeln!(out, "Rejections by reason:");
    for (code, count) in &tally.rejections {
        let _ = writeln!(out, "  {:>3} {:<32} {:>8}", code.code(), code.name(), count);
    }
    out
}
