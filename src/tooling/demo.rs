//! The demo's story: a seeded, realistic programme year driven through a ledger (the
//! `demo` command, and `tests/demo.rs`). Who exists and what they sign and invoice is
//! drawn by the population generator ([`super::population::DemoYear`]); this file is what
//! happens to them over the year, in order. Deterministic for a given seed: two runs give
//! the same log, byte for byte (the README pins the default run's chain head).
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
    BankReference, CenterStatus, CenterYear, Command, Date, Envelope, Money, Origin, PostInvoice,
    Principal, PrincipalRole, ProgrammePolicy, ProgrammeYear, Reason, Rejection, RejectionCode,
    SettlementRunId, StatementId, Timestamp, Uscc,
};
use crate::ledger::{Ledger, SUBMIT_BATCH_LIMIT};
use crate::tooling::population::{ContractPlan, DemoYear, InvoiceFlaws};
use crate::tooling::ToolError;

/// Kept for `tests/support`, which names the codes by their old home.
pub use crate::tooling::population::{center_uscc, enterprise_uscc};

#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub seed: u64,
    pub year: u32,
    pub centers: usize,
    pub enterprises: usize,
    pub contracts: usize,
    pub invoices: usize,
    /// The programme's policy (a preset from `config/programmes/`); `None`: Hangzhou
    /// 2024's rules for `year`. With a policy, its own year is the demo's.
    pub policy: Option<ProgrammePolicy>,
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
            policy: None,
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

/// Invoices remembered for retries, conflicting reposts and reversals.
const RECENT_INVOICES: usize = 20_000;

/// Feeds commands to the ledger in batches and keeps the tally.
struct Driver<'a> {
    ledger: &'a mut Ledger,
    pending: Vec<Envelope>,
    tally: DemoTally,
    clock: i64,
    approved: Vec<ContractPlan>,
    pending_plans: Vec<Option<ContractPlan>>,
    recent_invoices: VecDeque<PostInvoice>,
    pending_invoices: Vec<Option<PostInvoice>>,
    /// The last rejection, to explain a refused policy.
    last_rejection: Option<Rejection>,
}

impl Driver<'_> {
    fn send(&mut self, command: Command) -> Result<(), ToolError> {
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
            Command::ReverseInvoice { center, .. } if !self.tally.commands.is_multiple_of(3) => {
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
        plan: Option<ContractPlan>,
        invoice: Option<PostInvoice>,
    ) -> Result<(), ToolError> {
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

    fn flush(&mut self) -> Result<(), ToolError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let replies = self.ledger.submit(&self.pending)?;
        let plans = std::mem::take(&mut self.pending_plans);
        let invoices = std::mem::take(&mut self.pending_invoices);
        for ((reply, plan), invoice) in replies.into_iter().zip(plans).zip(invoices) {
            self.tally.commands += 1;
            match reply {
                Ok(reply)
                    if reply
                        .invoice_outcome()
                        .is_some_and(|(outcome, _)| outcome.duplicate) =>
                {
                    self.tally.duplicates += 1
                }
                Ok(_) => {
                    self.tally.accepted += 1;
                    if let Some(plan) = plan {
                        self.approved.push(plan);
                    }
                    if let Some(invoice) = invoice {
                        if self.recent_invoices.len() == RECENT_INVOICES {
                            self.recent_invoices.pop_front();
                        }
                        self.recent_invoices.push_back(invoice);
                    }
                }
                Err(rejection) => {
                    *self.tally.rejections.entry(rejection.code).or_default() += 1;
                    self.last_rejection = Some(rejection);
                }
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
) -> Result<DemoTally, ToolError> {
    for (name, value) in [
        ("centers", config.centers),
        ("enterprises", config.enterprises),
    ] {
        if value == 0 {
            return Err(ToolError::Setting {
                name,
                value: value.to_string(),
                reason: "the demo needs at least one",
            });
        }
    }
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let mut draws = match &config.policy {
        None => DemoYear::new(config.seed, config.year, config.centers, config.enterprises)?,
        Some(policy) => DemoYear::with_policy(
            config.seed,
            policy.clone(),
            config.centers,
            config.enterprises,
        )?,
    };
    let year = draws.population.year();
    let year_start = draws.year_start();
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
        last_rejection: None,
    };

    // The policy, the centers and the enterprises. A policy this build cannot run (a
    // rule it records but does not settle yet) stops the demo with the reason.
    let mut registrations = draws.population.registration_commands().into_iter();
    if let Some(publish) = registrations.next() {
        driver.send(publish)?;
        driver.flush()?;
        if driver.ledger.state().policy(year).is_none() {
            if let Some(rejection) = driver.last_rejection.take() {
                return Err(ToolError::Rejected {
                    command: "PublishPolicy",
                    rejection,
                });
            }
        }
    }
    for command in registrations {
        driver.send(command)?;
    }
    // Multimodal foundation-model builders: the bureau relaxes their cap.
    for builder in draws.builders() {
        driver.send(Command::GrantCapOverride {
            enterprise: builder.enterprise,
            year,
            cap: Money::from_fen(1_500_000_000)?,
            reason: Reason::parse("builds a generative multimodal foundation model")?,
        })?;
    }
    for (enterprise, center) in draws.related_parties() {
        driver.send(Command::DeclareRelatedParty {
            enterprise,
            center,
            reason: Reason::parse("common controlling shareholder")?,
        })?;
    }
    driver.flush()?;

    // Vouchers: four contracts per enterprise on average.
    for contract in 0..config.contracts {
        let plan = draws.draw_contract(&mut rng, contract)?;
        let command = Command::ApproveVoucher(plan.approve.clone());
        driver.send_tracked(command, Some(plan), None)?;
    }
    driver.flush()?;

    // A year of invoices.
    let centers = draws.population.center_codes();
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
                reason: Reason::parse("failed the quarterly delivery inspection")?,
            })?;
        }
        if posted == config.invoices * 3 / 5 {
            driver.send(Command::SetCenterStatus {
                center: centers[delisted],
                status: CenterStatus::Delisted,
                reason: Reason::parse("left the planning layout")?,
            })?;
        }
        if posted == config.invoices / 2 {
            let count = driver.approved.len().min(50);
            for index in 0..count {
                let voucher = driver.approved[(index * 131) % driver.approved.len()]
                    .approve
                    .voucher;
                driver.send(Command::CancelVoucher {
                    voucher,
                    reason: Reason::parse("contract terminated early")?,
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
            conflicting.amount = conflicting.amount.plus(Money::from_fen(100)?);
            driver.send(Command::PostInvoice(conflicting))?;
            continue;
        }
        if roll < 85 && !driver.recent_invoices.is_empty() {
            let index = rng.random_range(0..driver.recent_invoices.len());
            let reversed = driver.recent_invoices[index].clone();
            driver.send(Command::ReverseInvoice {
                center: reversed.center,
                invoice_number: reversed.invoice_number,
                reason: Reason::parse("credit note: service level not met")?,
            })?;
            continue;
        }
        let flaws = InvoiceFlaws {
            wrong_center: roll < 90,
            after_term: (90..95).contains(&roll),
            // Only a reimbursement year asks for a proof of payment to leave out.
            no_payment_proof: (95..150).contains(&roll),
        };
        let invoice = draws.draw_invoice(&mut rng, &driver.approved, flaws)?;
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
    let year_end = Date::from_ymd(year.get() as i32 + 1, 1, 1)?;
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
) -> Result<(), ToolError> {
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
        BankReference::parse(&format!("{kind}{}Q{quarter}-{id}", year))
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
                reason: Reason::parse("beneficiary account closed")?,
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
    // The first payee owing clawbacks repays half, to the programme and (stacked
    // funding) to the second source.
    fn first_owing<'a>(
        mut books: impl Iterator<Item = (&'a (Uscc, ProgrammeYear), &'a CenterYear)>,
        year: ProgrammeYear,
    ) -> Option<(Uscc, Money)> {
        books
            .find(|((_, books_year), books)| *books_year == year && !books.outstanding().is_zero())
            .map(|((center, _), books)| (*center, books.outstanding()))
    }
    let (owing, owing_second) = {
        let state = driver.ledger.state();
        (
            first_owing(state.center_years(), year),
            first_owing(state.second_center_years(), year),
        )
    };
    let half = |owed: Money| Money::from_fen((owed.to_fen().unwrap_or(0) / 2).max(1));
    if let Some((center, outstanding)) = owing {
        driver.send(Command::RecordRepayment {
            center,
            year,
            amount: half(outstanding)?,
            bank_reference: reference("CLAWBACK", quarter, 0)?,
            value_date: today,
        })?;
    }
    if let Some((center, outstanding)) = owing_second {
        driver.send(Command::RecordSecondSourceRepayment {
            center,
            year,
            amount: half(outstanding)?,
            bank_reference: reference("CLAWBACK2-", quarter, 0)?,
            value_date: today,
        })?;
    }
    driver.flush()?;
    Ok(())
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
