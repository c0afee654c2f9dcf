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
    CenterStatus, Command, Date, Envelope, Money, PostInvoice, Reason, RejectionCode, Reply,
    SettlementId, Timestamp,
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
}

impl Driver<'_> {
    fn send(&mut self, command: Command) -> Result<(), ToolError> {
        self.send_tracked(command, None, None)
    }

    fn send_tracked(
        &mut self,
        command: Command,
        plan: Option<ContractPlan>,
        invoice: Option<PostInvoice>,
    ) -> Result<(), ToolError> {
        // One simulated second per command keeps time moving forward deterministically.
        self.clock += 1_000;
        self.pending
            .push(Envelope::new(Timestamp(self.clock), command));
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
                Ok(Reply::InvoiceOutcome(outcome)) if outcome.duplicate => {
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
    let mut draws = DemoYear::new(config.seed, config.year, config.centers, config.enterprises)?;
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
    };

    // The policy, the centers and the enterprises.
    for command in draws.population.registration_commands() {
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
    let mut settlements = 0u128;
    for posted in 0..config.invoices {
        if driver.approved.is_empty() {
            break;
        }
        let quarter = config.invoices / 4;
        if quarter > 0 && posted > 0 && posted % quarter == 0 {
            driver.flush()?;
            for center in &centers {
                let due = driver.ledger.state().center(center).map(|account| {
                    !account.unsettled.is_zero() || !account.clawback_owed.is_zero()
                });
                if due == Some(true) {
                    settlements += 1;
                    driver.send(Command::SettleCenter {
                        center: *center,
                        settlement_id: SettlementId::from_u128(
                            ((config.seed as u128) << 80) | settlements,
                        ),
                    })?;
                }
            }
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

    // Year end: expire what is left. The fourth quarter is settled next year, so the
    // summary shows what each center is still owed.
    let year_end = Date::from_ymd(year.get() as i32 + 1, 1, 1)?;
    loop {
        let before = driver.ledger.state().last_sequence();
        driver.send(Command::ExpireVouchers {
            as_of: year_end.plus_days(365),
        })?;
        driver.flush()?;
        if driver.ledger.state().last_sequence() == before {
            break;
        }
    }
    driver.flush()?;
    Ok(driver.tally)
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
