//! Property tests over random sequences of the whole programme: approvals, invoices (with
//! retries and conflicting reposts whose numbers differ only in case or width), reversals
//! by the bureau and by the center, settlement runs (run ids reused), payments (right and
//! wrong amounts, reused bank references), returned payments, repayments, expiries,
//! cancellations, suspensions and delistings, pool and cap changes and year closes. The
//! command time moves forward in random steps, so redemption windows (term end + grace)
//! open and close and expiry really releases vouchers.
//!
//! After every command, for every programme year:
//!
//! - the identities of the money model are stated from the state's public queries
//!   (`year`, `pool_usage`, `enterprise_usage`, `center_year`, statements), besides
//!   `check_invariants`: pool = free + held + redeemed + receivables with every term ≥ 0;
//!   every enterprise within its cap; granted = reversed before settlement + unsettled +
//!   open statements + paid statements + clawed back; clawed back = outstanding + offset +
//!   repaid;
//! - the state is compared with an independent model folded from the emitted events (it
//!   places every redemption in exactly one of unsettled, reversed before settlement, one
//!   statement, or clawed back from that statement), and each event is checked against
//!   the rules it must obey;
//! - the reply is checked against what the rules promise wherever the model can tell;
//! - a rejected command (and an idempotent answer) leaves the state unchanged;
//! - folding the emitted events into a fresh state gives the live state.
//!
//! The same sequences then go through the durable ledger (an invoice cache of two,
//! frequent snapshots, restarts at random points, random batch sizes): replies, events
//! and projections equal the pure state machine's, and `verify` passes the directory.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use common::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestCaseError, TestRng, TestRunner};
use voucher_ledger::domain::*;
use voucher_ledger::ledger::{Ledger, LedgerOptions};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const CENTERS: usize = 3;
const ENTERPRISES: usize = 4;
const VOUCHER_IDS: u8 = 16;
const YEARS: [u32; 2] = [2026, 2027];
/// Center 1 domestic (30%), center 2 other (20%), center 3 MaaS multimodal (30%).
const TIERS: [FacilityTier; CENTERS] = [
    FacilityTier::Domestic,
    FacilityTier::Other,
    FacilityTier::MaasMultimodal,
];

type Outcome = Result<Reply, Rejection>;

// ------------------------------------------------------------------------- helpers

fn programme_year(value: u32) -> ProgrammeYear {
    ProgrammeYear::new(value).expect("year")
}

fn fen(value: i64) -> Money {
    Money::from_fen(value).expect("fen")
}

/// Whole fen of an amount, for the model's arithmetic (every amount here is small).
trait InFen {
    fn in_fen(self) -> i64;
}

impl InFen for Money {
    fn in_fen(self) -> i64 {
        let mut decimal = self.as_decimal();
        decimal.rescale(2);
        i64::try_from(decimal.mantissa()).expect("a small amount")
    }
}

fn total(amounts: impl IntoIterator<Item = Money>) -> Money {
    amounts.into_iter().fold(Money::ZERO, Money::plus)
}

/// `text` (canonical: ASCII, upper case) spelled so that only its canonical form is the
/// same: as is, lower case, full width (NFKC folds it back) or mixed case.
fn spell(text: &str, variant: u8) -> String {
    match variant % 4 {
        0 => text.to_string(),
        1 => text.to_ascii_lowercase(),
        2 => text
            .chars()
            .map(|character| match character {
                '!'..='~' => char::from_u32(u32::from(character) - 0x21 + 0xFF01).expect("wide"),
                other => other,
            })
            .collect(),
        _ => text
            .chars()
            .enumerate()
            .map(|(index, character)| {
                if index % 2 == 0 {
                    character.to_ascii_lowercase()
                } else {
                    character
                }
            })
            .collect(),
    }
}

/// Invoice number `index` of a center: mostly `INV-n`, sometimes a 20-digit e-invoice.
fn invoice_text(index: u8) -> String {
    if index % 5 == 4 {
        format!("2633200000{index:010}")
    } else {
        format!("INV-{index}")
    }
}

fn bureau(request: Option<u64>) -> Origin {
    Origin::new(
        Principal::new(PrincipalRole::Bureau, "finance bureau").expect("principal"),
        request.map(|number| RequestId::parse(&format!("req-{number}")).expect("request id")),
    )
}

fn center_origin(index: usize) -> Origin {
    Origin::new(
        Principal::new(PrincipalRole::Center, &format!("center {index}")).expect("principal"),
        None,
    )
}

fn center_index(code: &Uscc) -> usize {
    (1..=CENTERS)
        .find(|index| center(*index) == *code)
        .expect("a generated center")
}

fn policy(year: u32, pool_yuan: u32, cap_yuan: u32, grace_days: u16) -> ProgrammePolicy {
    ProgrammePolicy::new(
        programme_year(year),
        Money::from_whole_yuan(pool_yuan),
        Money::from_whole_yuan(cap_yuan),
        Rate::basis_points_const(3000),
        [
            Rate::basis_points_const(3000),
            Rate::basis_points_const(3000),
            Rate::basis_points_const(2000),
        ],
    )
    .expect("policy")
    .with_redemption_grace_days(grace_days)
    .expect("grace")
}

// ---------------------------------------------------------------------- the steps

/// What a case starts from: the grace of each year's policy and the first command's day.
#[derive(Clone, Debug)]
struct Setup {
    grace_days: [u16; 2],
    start_day: i32,
}

/// An abstract operation, resolved against the live state when it runs (which voucher,
/// invoice or statement it names, what the statement's net is, what "today" is).
#[derive(Clone, Debug)]
enum Op {
    Approve {
        voucher: u8,
        enterprise: u8,
        center: u8,
        contract: u8,
        spelling: u8,
        start_in_days: i16,
        length_days: i16,
        fee_fen: i64,
        requested_fen: i64,
        wrong_year: bool,
    },
    /// Approve an approved voucher again, same terms (contract re-spelled) or other terms.
    RetryApproval {
        pick: u8,
        spelling: u8,
        same: bool,
    },
    Post {
        pick: u8,
        number: u8,
        spelling: u8,
        twentieths: u8,
        days_back: u8,
        outside_term: u8,
        wrong_center: bool,
    },
    /// Post a posted invoice again, its number re-spelled, with the same or other content.
    Repost {
        pick: u8,
        spelling: u8,
        conflict: bool,
    },
    Reverse {
        pick: u8,
        spelling: u8,
        as_center: bool,
    },
    Cancel {
        pick: u8,
    },
    Expire,
    Run {
        run: u8,
        year: u8,
    },
    /// Pay the k-th statement (open ones, or any), exact or off by a fen, with a fresh or
    /// a reused bank reference, on a valid or invalid value date.
    Pay {
        pick: u8,
        any_statement: bool,
        amount: u8,
        reference: u8,
        spelling: u8,
        value_date: u8,
    },
    /// Confirm a statement's current payment again (its reference re-spelled).
    RepeatPayment {
        pick: u8,
        spelling: u8,
    },
    ReturnPayment {
        pick: u8,
        right_reference: bool,
    },
    Repay {
        center: u8,
        year: u8,
        amount: u8,
        reference: u8,
        future_date: bool,
    },
    Close {
        year: u8,
    },
    Status {
        center: u8,
        status: u8,
    },
    AdjustPool {
        year: u8,
        mode: u8,
        extra_fen: i64,
    },
    Cap {
        enterprise: u8,
        year: u8,
        mode: u8,
        extra_fen: i64,
    },
    /// A command stamped before the last accepted time.
    StaleClock,
    /// An operator confirms the clock.
    ConfirmClock,
}

#[derive(Clone, Debug)]
struct Step {
    advance_ms: i64,
    op: Op,
}

fn setup_strategy() -> impl Strategy<Value = Setup> {
    let grace = prop_oneof![Just(0u16), 1u16..=20, Just(60u16)];
    (grace.clone(), grace, 0i32..60).prop_map(|(first, second, start_day)| Setup {
        grace_days: [first, second],
        start_day,
    })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let approve = (
        (
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
        ),
        -30i16..=60,
        prop_oneof![19 => -2i16..=200, 1 => 360i16..=400],
        1i64..=10_000_000,
        prop_oneof![1 => Just(0i64), 30 => 1i64..=1_500_000],
        prop::bool::weighted(0.08),
    )
        .prop_map(
            |(
                (voucher, enterprise, center, contract, spelling),
                start_in_days,
                length_days,
                fee_fen,
                requested_fen,
                wrong_year,
            )| Op::Approve {
                voucher,
                enterprise,
                center,
                contract,
                spelling,
                start_in_days,
                length_days,
                fee_fen,
                requested_fen,
                wrong_year,
            },
        );
    let retry_approval =
        (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(pick, spelling, same)| {
            Op::RetryApproval {
                pick,
                spelling,
                same,
            }
        });
    let post = (
        any::<u8>(),
        0u8..30,
        any::<u8>(),
        0u8..=12,
        0u8..10,
        0u8..15,
        prop::bool::weighted(0.05),
    )
        .prop_map(
            |(pick, number, spelling, twentieths, days_back, outside_term, wrong_center)| {
                Op::Post {
                    pick,
                    number,
                    spelling,
                    twentieths,
                    days_back,
                    outside_term,
                    wrong_center,
                }
            },
        );
    let repost =
        (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(pick, spelling, conflict)| {
            Op::Repost {
                pick,
                spelling,
                conflict,
            }
        });
    let reverse =
        (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(pick, spelling, as_center)| {
            Op::Reverse {
                pick,
                spelling,
                as_center,
            }
        });
    let cancel = any::<u8>().prop_map(|pick| Op::Cancel { pick });
    let run = (any::<u8>(), prop_oneof![4 => Just(0u8), 1 => Just(1u8)])
        .prop_map(|(run, year)| Op::Run { run, year });
    let pay = (
        any::<u8>(),
        prop::bool::weighted(0.2),
        0u8..6,
        any::<u8>(),
        any::<u8>(),
        0u8..6,
    )
        .prop_map(
            |(pick, any_statement, amount, reference, spelling, value_date)| Op::Pay {
                pick,
                any_statement,
                amount,
                reference,
                spelling,
                value_date,
            },
        );
    let repeat_payment = (any::<u8>(), any::<u8>())
        .prop_map(|(pick, spelling)| Op::RepeatPayment { pick, spelling });
    let return_payment =
        (any::<u8>(), prop::bool::weighted(0.8)).prop_map(|(pick, right_reference)| {
            Op::ReturnPayment {
                pick,
                right_reference,
            }
        });
    let repay = (
        any::<u8>(),
        0u8..2,
        0u8..5,
        any::<u8>(),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(center, year, amount, reference, future_date)| Op::Repay {
            center,
            year,
            amount,
            reference,
            future_date,
        });
    let close = (0u8..2).prop_map(|year| Op::Close { year });
    let status = (any::<u8>(), 0u8..6).prop_map(|(center, status)| Op::Status { center, status });
    let adjust_pool =
        (0u8..2, 0u8..4, 0i64..=6_000_000).prop_map(|(year, mode, extra_fen)| Op::AdjustPool {
            year,
            mode,
            extra_fen,
        });
    let cap = (any::<u8>(), 0u8..2, 0u8..3, 0i64..=2_000_000).prop_map(
        |(enterprise, year, mode, extra_fen)| Op::Cap {
            enterprise,
            year,
            mode,
            extra_fen,
        },
    );
    prop_oneof![
        6 => approve,
        1 => retry_approval,
        12 => post,
        3 => repost,
        4 => reverse,
        1 => cancel,
        2 => Just(Op::Expire),
        3 => run,
        4 => pay,
        1 => repeat_payment,
        2 => return_payment,
        2 => repay,
        1 => close,
        1 => status,
        1 => adjust_pool,
        1 => cap,
        1 => Just(Op::StaleClock),
        1 => Just(Op::ConfirmClock),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let advance_ms = prop_oneof![
        7 => 0i64..=6 * HOUR_MS,
        3 => DAY_MS..=6 * DAY_MS,
        1 => 15 * DAY_MS..=60 * DAY_MS,
    ];
    (advance_ms, op_strategy()).prop_map(|(advance_ms, op)| Step { advance_ms, op })
}

// ------------------------------------------------------------------ the model

/// Where a redemption's subsidy is: exactly one place at any time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    Unsettled,
    ReversedUnsettled,
    /// In the statement with this id.
    Settled(u64),
    /// In that statement, then reversed: a clawback.
    ClawedBack(u64),
}

#[derive(Clone, Debug)]
struct ModelVoucher {
    terms: VoucherApproved,
    approved_sequence: u64,
    active: bool,
    remaining: i64,
    standing: i64,
    clawback: i64,
    released: i64,
    invoiced: i64,
}

#[derive(Clone, Debug)]
struct ModelInvoice {
    voucher: VoucherId,
    year: ProgrammeYear,
    amount: Money,
    issue_date: Date,
    proof: DeliveryProof,
    subsidy: i64,
    sequence: u64,
    reversed: bool,
    place: Place,
}

#[derive(Clone, Debug)]
struct ModelPayment {
    reference: BankReference,
    amount: Money,
    value_date: Date,
    sequence: u64,
    returned: Option<u64>,
}

#[derive(Clone, Debug)]
struct ModelStatement {
    center: Uscc,
    year: ProgrammeYear,
    issued: Date,
    invoices: u64,
    gross: i64,
    offset: i64,
    net: i64,
    clawed_back: i64,
    paid: bool,
    payments: Vec<ModelPayment>,
}

impl ModelStatement {
    fn current_payment(&self) -> Option<&ModelPayment> {
        self.payments
            .last()
            .filter(|payment| self.paid && payment.returned.is_none())
    }
}

#[derive(Clone, Debug)]
struct ModelRun {
    year: ProgrammeYear,
    cutoff: u64,
    statements: Vec<StatementId>,
}

#[derive(Clone, Debug, Default)]
struct ModelCenterYear {
    /// Outstanding clawbacks, oldest first: (voucher, amount).
    receivables: VecDeque<(VoucherId, i64)>,
    clawed_back: i64,
    offset: i64,
    repaid: i64,
}

impl ModelCenterYear {
    fn outstanding(&self) -> i64 {
        self.receivables.iter().map(|(_, amount)| amount).sum()
    }
}

#[derive(Clone, Debug)]
enum ModelBankUse {
    Payment(StatementId),
    Repayment {
        center: Uscc,
        year: ProgrammeYear,
        amount: Money,
        value_date: Date,
        sequence: u64,
    },
}

/// The books as the test understands the rules, folded from the emitted events only.
#[derive(Clone, Debug, Default)]
struct Model {
    policies: BTreeMap<ProgrammeYear, ProgrammePolicy>,
    pools: BTreeMap<ProgrammeYear, i64>,
    caps: BTreeMap<(Uscc, ProgrammeYear), i64>,
    closed: BTreeMap<ProgrammeYear, u64>,
    centers: BTreeMap<Uscc, (CenterStatus, FacilityTier)>,
    related: BTreeSet<(Uscc, Uscc)>,
    vouchers: BTreeMap<VoucherId, ModelVoucher>,
    contracts: BTreeMap<(Uscc, ContractNumber), VoucherId>,
    invoices: BTreeMap<(Uscc, InvoiceNumber), ModelInvoice>,
    /// Invoices in the order they were redeemed (for "the k-th invoice").
    invoice_order: Vec<(Uscc, InvoiceNumber)>,
    statements: BTreeMap<u64, ModelStatement>,
    runs: BTreeMap<SettlementRunId, ModelRun>,
    center_years: BTreeMap<(Uscc, ProgrammeYear), ModelCenterYear>,
    bank: BTreeMap<BankReference, ModelBankUse>,
}

/// Held, redeemed (standing subsidy), receivable: in fen.
type ModelUsage = (i64, i64, i64);

impl Model {
    fn is_closed(&self, year: ProgrammeYear) -> bool {
        self.closed.contains_key(&year)
    }

    fn center_status(&self, center: &Uscc) -> CenterStatus {
        self.centers
            .get(center)
            .map_or(CenterStatus::Delisted, |(status, _)| *status)
    }

    fn usage(&self, keep: impl Fn(&ModelVoucher) -> bool) -> ModelUsage {
        self.vouchers.values().filter(|voucher| keep(voucher)).fold(
            (0, 0, 0),
            |(held, redeemed, receivable), voucher| {
                (
                    held + voucher.remaining,
                    redeemed + voucher.standing,
                    receivable + voucher.clawback,
                )
            },
        )
    }

    fn pool_usage(&self, year: ProgrammeYear) -> ModelUsage {
        self.usage(|voucher| voucher.terms.year == year)
    }

    fn enterprise_usage(&self, enterprise: &Uscc, year: ProgrammeYear) -> ModelUsage {
        self.usage(|voucher| voucher.terms.year == year && voucher.terms.enterprise == *enterprise)
    }

    fn cap(&self, enterprise: &Uscc, year: ProgrammeYear) -> i64 {
        self.caps
            .get(&(*enterprise, year))
            .copied()
            .unwrap_or_else(|| {
                self.policies
                    .get(&year)
                    .map_or(0, |policy| policy.default_enterprise_cap().in_fen())
            })
    }

    fn outstanding(&self, center: &Uscc, year: ProgrammeYear) -> i64 {
        self.center_years
            .get(&(*center, year))
            .map_or(0, ModelCenterYear::outstanding)
    }

    fn active_vouchers(&self) -> impl Iterator<Item = &ModelVoucher> {
        self.vouchers.values().filter(|voucher| voucher.active)
    }

    /// Recovers receivables of a center-year, oldest first, freeing cap and pool.
    fn recover(
        &mut self,
        center: Uscc,
        year: ProgrammeYear,
        amount: i64,
        offset: bool,
    ) -> Result<(), TestCaseError> {
        let books = self.center_years.entry((center, year)).or_default();
        prop_assert!(
            amount <= books.outstanding(),
            "recovering {} fen of {} {}, which owes {}",
            amount,
            center,
            year,
            books.outstanding()
        );
        if offset {
            books.offset += amount;
        } else {
            books.repaid += amount;
        }
        let mut left = amount;
        while left > 0 {
            let Some(front) = books.receivables.front_mut() else {
                break;
            };
            let take = front.1.min(left);
            front.1 -= take;
            left -= take;
            let voucher = self
                .vouchers
                .get_mut(&front.0)
                .expect("clawed back voucher");
            voucher.clawback -= take;
            voucher.released += take;
            if front.1 == 0 {
                books.receivables.pop_front();
            }
        }
        Ok(())
    }

    /// Folds one event, checking first that the rules allowed it.
    fn apply(&mut self, logged: &SequencedEvent) -> Result<(), TestCaseError> {
        let today = logged.at.date();
        let sequence = logged.sequence;
        match &logged.event {
            Event::PolicyPublished { policy } => {
                prop_assert!(!self.policies.contains_key(&policy.year()));
                self.pools
                    .insert(policy.year(), policy.annual_pool().in_fen());
                self.policies.insert(policy.year(), (**policy).clone());
            }
            Event::CenterRegistered { center, tier, .. } => {
                prop_assert!(!self.centers.contains_key(center));
                self.centers.insert(*center, (CenterStatus::Active, *tier));
            }
            Event::CenterStatusChanged {
                center, from, to, ..
            } => {
                let status = self.center_status(center);
                prop_assert_eq!(status, *from);
                prop_assert!(status != CenterStatus::Delisted && status != *to);
                if let Some(entry) = self.centers.get_mut(center) {
                    entry.0 = *to;
                }
            }
            Event::EnterpriseRegistered { .. } => {}
            Event::CapOverrideGranted {
                enterprise,
                year,
                cap,
                ..
            } => {
                prop_assert!(!self.is_closed(*year), "cap override in closed {}", year);
                let (held, redeemed, receivable) = self.enterprise_usage(enterprise, *year);
                prop_assert!(cap.in_fen() >= held + redeemed + receivable);
                self.caps.insert((*enterprise, *year), cap.in_fen());
            }
            Event::RelatedPartyDeclared {
                enterprise, center, ..
            } => {
                self.related.insert((*enterprise, *center));
            }
            Event::VoucherApproved(approved) => {
                let year = approved.year;
                let policy = self.policies.get(&year).expect("approved under a policy");
                prop_assert!(!self.is_closed(year), "approval in closed {}", year);
                let (start_year, _, _) = approved.term_start.year_month_day();
                prop_assert_eq!(i64::from(start_year), i64::from(year.get()));
                prop_assert!(!self.vouchers.contains_key(&approved.voucher));
                let (status, tier) = self.centers[&approved.center];
                prop_assert_eq!(status, CenterStatus::Active);
                prop_assert!(!self
                    .related
                    .contains(&(approved.enterprise, approved.center)));
                prop_assert!(!self
                    .contracts
                    .contains_key(&(approved.center, approved.contract_number.clone())));
                prop_assert!(approved.term_end >= approved.term_start);
                prop_assert!(approved.term_end < approved.term_start.plus_one_year());
                prop_assert_eq!(approved.rate, policy.rate_for(tier));
                prop_assert_eq!(approved.tier, tier);
                let face = approved
                    .requested
                    .min(approved.contract_fee.times_rate_floor(approved.rate));
                prop_assert_eq!(approved.face_value, face);
                prop_assert!(!face.is_zero());
                prop_assert_eq!(
                    approved.redemption_window_end,
                    approved
                        .term_end
                        .plus_days(i32::from(policy.redemption_grace_days()))
                );
                prop_assert!(
                    today <= approved.redemption_window_end,
                    "approved on {} though its window ended {}",
                    today,
                    approved.redemption_window_end
                );
                let face = face.in_fen();
                let (held, redeemed, receivable) =
                    self.enterprise_usage(&approved.enterprise, year);
                prop_assert!(
                    held + redeemed + receivable + face <= self.cap(&approved.enterprise, year),
                    "approval over the cap"
                );
                let (held, redeemed, receivable) = self.pool_usage(year);
                prop_assert!(
                    held + redeemed + receivable + face <= self.pools[&year],
                    "approval over the pool"
                );
                self.contracts.insert(
                    (approved.center, approved.contract_number.clone()),
                    approved.voucher,
                );
                self.vouchers.insert(
                    approved.voucher,
                    ModelVoucher {
                        terms: (**approved).clone(),
                        approved_sequence: sequence,
                        active: true,
                        remaining: face,
                        standing: 0,
                        clawback: 0,
                        released: 0,
                        invoiced: 0,
                    },
                );
            }
            Event::InvoiceRedeemed(redeemed) => {
                let key = (redeemed.center, redeemed.invoice_number.clone());
                prop_assert!(
                    !self.invoices.contains_key(&key),
                    "invoice {} redeemed twice",
                    redeemed.invoice_number
                );
                prop_assert_eq!(self.center_status(&redeemed.center), CenterStatus::Active);
                let voucher = self
                    .vouchers
                    .get_mut(&redeemed.voucher)
                    .expect("redeemed voucher");
                let terms = &voucher.terms;
                let year = terms.year;
                prop_assert_eq!(terms.center, redeemed.center);
                prop_assert!(voucher.active, "redemption on an inactive voucher");
                prop_assert!(
                    !self.closed.contains_key(&year),
                    "redemption in closed {}",
                    year
                );
                prop_assert!(
                    redeemed.issue_date >= terms.term_start
                        && redeemed.issue_date <= terms.term_end
                );
                prop_assert!(
                    today <= terms.redemption_window_end,
                    "redeemed on {} after the window closed on {}",
                    today,
                    terms.redemption_window_end
                );
                prop_assert!(voucher.remaining > 0);
                prop_assert!(
                    voucher.invoiced + redeemed.amount.in_fen() <= terms.contract_fee.in_fen()
                );
                let subsidy = redeemed
                    .amount
                    .times_rate_floor(terms.rate)
                    .in_fen()
                    .min(voucher.remaining);
                prop_assert_eq!(redeemed.subsidy.in_fen(), subsidy);
                voucher.remaining -= subsidy;
                voucher.standing += subsidy;
                voucher.invoiced += redeemed.amount.in_fen();
                self.invoices.insert(
                    key.clone(),
                    ModelInvoice {
                        voucher: redeemed.voucher,
                        year,
                        amount: redeemed.amount,
                        issue_date: redeemed.issue_date,
                        proof: redeemed.delivery_proof.clone(),
                        subsidy,
                        sequence,
                        reversed: false,
                        place: Place::Unsettled,
                    },
                );
                self.invoice_order.push(key);
            }
            Event::InvoiceReversed(reversed) => {
                let key = (reversed.center, reversed.invoice_number.clone());
                let invoice = self.invoices.get_mut(&key).expect("reversed invoice");
                prop_assert!(!invoice.reversed, "invoice reversed twice");
                prop_assert_eq!(reversed.redeemed_sequence, invoice.sequence);
                prop_assert_eq!(reversed.subsidy.in_fen(), invoice.subsidy);
                prop_assert_eq!(reversed.amount, invoice.amount);
                prop_assert_eq!(reversed.voucher, invoice.voucher);
                prop_assert!(!self.closed.contains_key(&invoice.year));
                invoice.reversed = true;
                let subsidy = invoice.subsidy;
                let year = invoice.year;
                let voucher = self
                    .vouchers
                    .get_mut(&reversed.voucher)
                    .expect("reversed voucher");
                voucher.standing -= subsidy;
                voucher.invoiced -= reversed.amount.in_fen();
                match invoice.place {
                    Place::Unsettled => {
                        prop_assert!(!reversed.clawback, "an unsettled reversal is no clawback");
                        prop_assert_eq!(reversed.returned_to_voucher, voucher.active);
                        invoice.place = Place::ReversedUnsettled;
                        if voucher.active {
                            voucher.remaining += subsidy;
                        } else {
                            voucher.released += subsidy;
                        }
                    }
                    Place::Settled(statement) => {
                        prop_assert!(reversed.clawback, "a settled reversal is a clawback");
                        prop_assert!(!reversed.returned_to_voucher);
                        prop_assert!(
                            matches!(
                                logged.origin.principal.role,
                                PrincipalRole::Bureau | PrincipalRole::System
                            ),
                            "{} reversed a settled invoice",
                            logged.origin.principal
                        );
                        invoice.place = Place::ClawedBack(statement);
                        voucher.clawback += subsidy;
                        self.statements
                            .get_mut(&statement)
                            .expect("statement")
                            .clawed_back += subsidy;
                        let books = self
                            .center_years
                            .entry((reversed.center, year))
                            .or_default();
                        books.receivables.push_back((reversed.voucher, subsidy));
                        books.clawed_back += subsidy;
                    }
                    place => prop_assert!(false, "reversal of an invoice in place {:?}", place),
                }
            }
            Event::VoucherReleased {
                voucher: id,
                cause,
                released,
                ..
            } => {
                let voucher = self.vouchers.get_mut(id).expect("released voucher");
                prop_assert!(voucher.active, "voucher {} released twice", id);
                prop_assert_eq!(released.in_fen(), voucher.remaining);
                match cause {
                    ReleaseCause::Expired => prop_assert!(
                        voucher.terms.redemption_window_end < today,
                        "voucher expired on {}, its window ends {}",
                        today,
                        voucher.terms.redemption_window_end
                    ),
                    ReleaseCause::Cancelled => {
                        prop_assert!(!self.closed.contains_key(&voucher.terms.year))
                    }
                    ReleaseCause::Delisted => prop_assert_eq!(
                        self.centers[&voucher.terms.center].0,
                        CenterStatus::Delisted
                    ),
                }
                voucher.active = false;
                voucher.released += voucher.remaining;
                voucher.remaining = 0;
            }
            Event::CenterSettled { .. } => prop_assert!(false, "format v1 event written"),
            Event::SettlementRunCreated { run, year } => {
                prop_assert!(!self.runs.contains_key(run), "run {} created twice", run);
                prop_assert!(self.policies.contains_key(year));
                self.runs.insert(
                    *run,
                    ModelRun {
                        year: *year,
                        cutoff: sequence,
                        statements: Vec::new(),
                    },
                );
            }
            Event::StatementIssued(issued) => {
                let run = self.runs.get_mut(&issued.run).expect("statement's run");
                prop_assert_eq!(run.year, issued.year);
                prop_assert_eq!(run.cutoff, issued.cutoff);
                run.statements.push(StatementId(sequence));
                let mut count = 0;
                let mut gross = 0;
                for ((center, _), invoice) in self.invoices.iter_mut() {
                    if *center == issued.center
                        && invoice.year == issued.year
                        && invoice.place == Place::Unsettled
                        && invoice.sequence < issued.cutoff
                    {
                        invoice.place = Place::Settled(sequence);
                        count += 1;
                        gross += invoice.subsidy;
                    }
                }
                prop_assert!(count > 0, "a statement with nothing in it");
                prop_assert_eq!(issued.invoices, count);
                prop_assert_eq!(issued.gross.in_fen(), gross);
                let offset = gross.min(self.outstanding(&issued.center, issued.year));
                prop_assert_eq!(issued.clawback_offset.in_fen(), offset);
                prop_assert_eq!(issued.net.in_fen(), gross - offset);
                self.statements.insert(
                    sequence,
                    ModelStatement {
                        center: issued.center,
                        year: issued.year,
                        issued: today,
                        invoices: count,
                        gross,
                        offset,
                        net: gross - offset,
                        clawed_back: 0,
                        paid: gross == offset,
                        payments: Vec::new(),
                    },
                );
                self.recover(issued.center, issued.year, offset, true)?;
            }
            Event::PaymentConfirmed {
                statement,
                bank_reference,
                amount,
                value_date,
            } => {
                prop_assert!(
                    !self.bank.contains_key(bank_reference),
                    "bank reference {} used twice",
                    bank_reference
                );
                let found = self
                    .statements
                    .get_mut(&statement.0)
                    .expect("paid statement");
                prop_assert!(!found.paid, "statement {} paid twice", statement);
                prop_assert_eq!(amount.in_fen(), found.net, "a payment other than the net");
                prop_assert!(*value_date >= found.issued && *value_date <= today);
                found.paid = true;
                found.payments.push(ModelPayment {
                    reference: bank_reference.clone(),
                    amount: *amount,
                    value_date: *value_date,
                    sequence,
                    returned: None,
                });
                self.bank
                    .insert(bank_reference.clone(), ModelBankUse::Payment(*statement));
            }
            Event::PaymentReturned {
                statement,
                bank_reference,
                amount,
                ..
            } => {
                let found = self
                    .statements
                    .get_mut(&statement.0)
                    .expect("returned statement");
                prop_assert!(found.paid);
                let payment = found.payments.last_mut().expect("a payment");
                prop_assert!(payment.returned.is_none());
                prop_assert_eq!(&payment.reference, bank_reference);
                prop_assert_eq!(payment.amount, *amount);
                payment.returned = Some(sequence);
                found.paid = false;
            }
            Event::RepaymentRecorded {
                center,
                year,
                amount,
                bank_reference,
                value_date,
                source,
            } => {
                // The model keeps the programme's own books only (no stacked policy here).
                prop_assert_eq!(*source, FundingSource::Primary);
                prop_assert!(
                    !self.bank.contains_key(bank_reference),
                    "bank reference {} used twice",
                    bank_reference
                );
                prop_assert!(!amount.is_zero() && *value_date <= today);
                self.recover(*center, *year, amount.in_fen(), false)?;
                self.bank.insert(
                    bank_reference.clone(),
                    ModelBankUse::Repayment {
                        center: *center,
                        year: *year,
                        amount: *amount,
                        value_date: *value_date,
                        sequence,
                    },
                );
            }
            Event::ProgrammeYearClosed { year } => {
                prop_assert!(!self.is_closed(*year));
                prop_assert!(
                    i64::from(today.year_month_day().0) > i64::from(year.get()),
                    "{} closed on {}, before it ended",
                    year,
                    today
                );
                // Those still active were released just before, as expired (checked there:
                // their windows are over); cancelled or withdrawn ones no longer count.
                for voucher in self.vouchers.values() {
                    if voucher.terms.year == *year {
                        prop_assert!(!voucher.active, "closed with an active voucher");
                    }
                }
                self.closed.insert(*year, sequence);
            }
            Event::PoolAdjusted {
                year,
                previous_pool,
                new_pool,
                ..
            } => {
                prop_assert!(!self.is_closed(*year));
                prop_assert_eq!(previous_pool.in_fen(), self.pools[year]);
                let (held, redeemed, receivable) = self.pool_usage(*year);
                prop_assert!(new_pool.in_fen() >= held + redeemed + receivable);
                self.pools.insert(*year, new_pool.in_fen());
            }
            Event::ClockConfirmed { .. } | Event::ReconciliationRecorded(_) => {}
        }
        Ok(())
    }

    /// What holds after every command, whatever it was.
    fn after_command(&self, today: Date, swept: bool) -> Result<(), TestCaseError> {
        // Every redemption before a run's cutoff is in a statement (or was reversed).
        for (run, details) in &self.runs {
            for ((center, number), invoice) in &self.invoices {
                prop_assert!(
                    !(invoice.year == details.year
                        && invoice.place == Place::Unsettled
                        && invoice.sequence < details.cutoff),
                    "invoice {} of {} is before run {}'s cutoff but in no statement",
                    number,
                    center,
                    run
                );
            }
        }
        for voucher in self.active_vouchers() {
            prop_assert!(
                self.center_status(&voucher.terms.center) != CenterStatus::Delisted,
                "a delisted center's voucher still holds cap and pool"
            );
            prop_assert!(!self.is_closed(voucher.terms.year));
            if swept {
                prop_assert!(
                    voucher.terms.redemption_window_end >= today,
                    "the sweep left voucher {} active after its window",
                    voucher.terms.voucher
                );
            }
        }
        Ok(())
    }

    /// The state agrees with the model, figure by figure.
    fn compare(&self, state: &LedgerState) -> Result<(), TestCaseError> {
        let published: Vec<ProgrammeYear> = state.years().map(|(year, _)| *year).collect();
        prop_assert_eq!(
            &published,
            &self.policies.keys().copied().collect::<Vec<_>>()
        );
        for year in published {
            let book = state.year(year).expect("books of a published year");
            prop_assert_eq!(book.pool, fen(self.pools[&year]), "pool of {}", year);
            prop_assert_eq!(state.year_closed(year), self.is_closed(year));
            let (held, redeemed, receivable) = self.pool_usage(year);
            prop_assert_eq!(
                state.pool_usage(year),
                Usage {
                    held: fen(held),
                    redeemed: fen(redeemed),
                    receivable: fen(receivable),
                },
                "pool usage of {}",
                year
            );
            let of_year = || {
                self.invoices
                    .values()
                    .filter(|invoice| invoice.year == year)
            };
            let sum_where = |keep: &dyn Fn(&ModelInvoice) -> bool| {
                fen(of_year()
                    .filter(|invoice| keep(invoice))
                    .map(|invoice| invoice.subsidy)
                    .sum())
            };
            let paid = |place: Place| match place {
                Place::Settled(statement) => self.statements[&statement].paid,
                _ => false,
            };
            prop_assert_eq!(book.granted, sum_where(&|_| true), "granted in {}", year);
            prop_assert_eq!(
                book.reversed_unsettled,
                sum_where(&|invoice| invoice.place == Place::ReversedUnsettled)
            );
            prop_assert_eq!(
                book.unsettled,
                sum_where(&|invoice| invoice.place == Place::Unsettled)
            );
            prop_assert_eq!(
                book.standing_open,
                sum_where(
                    &|invoice| matches!(invoice.place, Place::Settled(_)) && !paid(invoice.place)
                ),
                "open statements of {}",
                year
            );
            prop_assert_eq!(
                book.standing_paid,
                sum_where(&|invoice| paid(invoice.place)),
                "paid statements of {}",
                year
            );
            prop_assert_eq!(
                book.clawed_back,
                sum_where(&|invoice| matches!(invoice.place, Place::ClawedBack(_)))
            );
            prop_assert_eq!(
                book.settled,
                sum_where(&|invoice| matches!(
                    invoice.place,
                    Place::Settled(_) | Place::ClawedBack(_)
                ))
            );
            let center_books = || {
                self.center_years
                    .iter()
                    .filter(move |((_, books_year), _)| *books_year == year)
            };
            prop_assert_eq!(
                book.offset,
                fen(center_books().map(|(_, books)| books.offset).sum())
            );
            prop_assert_eq!(
                book.repaid,
                fen(center_books().map(|(_, books)| books.repaid).sum())
            );
            let paid_cash = self
                .statements
                .values()
                .filter(|statement| statement.year == year)
                .filter_map(ModelStatement::current_payment)
                .map(|payment| payment.amount);
            prop_assert_eq!(book.paid, total(paid_cash), "paid in {}", year);
            prop_assert_eq!(
                book.approved,
                fen(self
                    .vouchers
                    .values()
                    .filter(|voucher| voucher.terms.year == year)
                    .map(|voucher| voucher.terms.face_value.in_fen())
                    .sum())
            );
            for index in 1..=ENTERPRISES {
                let code = enterprise(index);
                let (held, redeemed, receivable) = self.enterprise_usage(&code, year);
                prop_assert_eq!(
                    state.enterprise_usage(&code, year),
                    Usage {
                        held: fen(held),
                        redeemed: fen(redeemed),
                        receivable: fen(receivable),
                    },
                    "usage of enterprise {} in {}",
                    index,
                    year
                );
                prop_assert_eq!(
                    state.enterprise_cap(&code, year),
                    Some(fen(self.cap(&code, year)))
                );
            }
            for index in 1..=CENTERS {
                let code = center(index);
                let invoices = || {
                    self.invoices
                        .iter()
                        .filter(move |((owner, _), invoice)| *owner == code && invoice.year == year)
                        .map(|(_, invoice)| invoice)
                };
                let books = self.center_years.get(&(code, year));
                let Some(found) = state.center_year(&code, year) else {
                    prop_assert!(invoices().next().is_none());
                    prop_assert!(books.is_none_or(|books| books.clawed_back == 0));
                    continue;
                };
                let granted: i64 = invoices().map(|invoice| invoice.subsidy).sum();
                let unsettled = invoices().filter(|invoice| invoice.place == Place::Unsettled);
                prop_assert_eq!(found.granted, fen(granted));
                prop_assert_eq!(found.granted_count, invoices().count() as u64);
                prop_assert_eq!(
                    found.unsettled,
                    fen(unsettled.clone().map(|invoice| invoice.subsidy).sum())
                );
                prop_assert_eq!(found.unsettled_count, unsettled.count() as u64);
                let default = ModelCenterYear::default();
                let books = books.unwrap_or(&default);
                prop_assert_eq!(found.clawed_back, fen(books.clawed_back));
                prop_assert_eq!(found.offset, fen(books.offset));
                prop_assert_eq!(found.repaid, fen(books.repaid));
                prop_assert_eq!(
                    found.outstanding(),
                    fen(books.outstanding()),
                    "receivables of center {} in {}",
                    index,
                    year
                );
            }
        }
        // Each redemption is where the model says: in at most one statement.
        for ((center, number), invoice) in &self.invoices {
            let entry = state
                .invoice(center, number)
                .expect("an invoice of the log");
            prop_assert_eq!(entry.sequence, invoice.sequence);
            prop_assert_eq!(entry.is_reversed(), invoice.reversed);
            prop_assert_eq!(entry.subsidy.in_fen(), invoice.subsidy);
            let expected = match invoice.place {
                Place::Settled(statement) | Place::ClawedBack(statement) => {
                    Some(Some(StatementId(statement)))
                }
                Place::Unsettled | Place::ReversedUnsettled => None,
            };
            prop_assert_eq!(
                state.invoice_settlement(center, invoice.year, entry),
                expected,
                "the statement of invoice {} of {}",
                number,
                center
            );
        }
        let (statements, _) = state.statements_page(None, usize::MAX, usize::MAX, |_| true);
        prop_assert_eq!(statements.len(), self.statements.len());
        for statement in statements {
            let model = &self.statements[&statement.id.0];
            let held: Vec<&ModelInvoice> = self
                .invoices
                .values()
                .filter(|invoice| {
                    matches!(invoice.place,
                        Place::Settled(id) | Place::ClawedBack(id) if id == statement.id.0)
                })
                .collect();
            prop_assert_eq!(statement.center, model.center);
            prop_assert_eq!(statement.year, model.year);
            prop_assert_eq!(statement.invoices, model.invoices);
            prop_assert_eq!(held.len() as u64, model.invoices);
            prop_assert_eq!(
                statement.gross.in_fen(),
                held.iter().map(|invoice| invoice.subsidy).sum::<i64>()
            );
            prop_assert_eq!(statement.gross.in_fen(), model.gross);
            prop_assert_eq!(statement.clawback_offset.in_fen(), model.offset);
            prop_assert_eq!(statement.net.in_fen(), model.net);
            prop_assert_eq!(statement.clawed_back.in_fen(), model.clawed_back);
            prop_assert_eq!(
                statement.state == StatementState::Paid,
                model.paid,
                "state of statement {}",
                statement.id
            );
            prop_assert_eq!(statement.payments.len(), model.payments.len());
        }
        for voucher in state.vouchers_sorted() {
            let model = &self.vouchers[&voucher.terms.voucher];
            prop_assert_eq!(&voucher.terms, &model.terms);
            prop_assert_eq!(voucher.status == VoucherStatus::Active, model.active);
            prop_assert_eq!(voucher.remaining.in_fen(), model.remaining);
            prop_assert_eq!(voucher.subsidy_total.in_fen(), model.standing);
            prop_assert_eq!(voucher.clawback_outstanding.in_fen(), model.clawback);
            prop_assert_eq!(voucher.released.in_fen(), model.released);
            prop_assert_eq!(voucher.invoiced_total.in_fen(), model.invoiced);
        }
        prop_assert_eq!(state.vouchers_sorted().len(), self.vouchers.len());
        Ok(())
    }
}

/// The identities of the money model, stated from the state's public queries alone (and
/// `check_invariants`, which implements them).
fn identities(state: &LedgerState) -> Result<(), TestCaseError> {
    let violations = state.check_invariants();
    prop_assert!(violations.is_empty(), "{:#?}", violations);
    let (statements, _) = state.statements_page(None, usize::MAX, usize::MAX, |_| true);
    for statement in &statements {
        prop_assert_eq!(
            statement.net.plus(statement.clawback_offset),
            statement.gross,
            "statement {}: net + offset is not gross",
            statement.id
        );
        if statement.state == StatementState::Paid {
            let paid_by = statement.current_payment().map(|payment| payment.amount);
            prop_assert!(
                paid_by == Some(statement.net) || (paid_by.is_none() && statement.net.is_zero()),
                "statement {} is paid by {:?}, its net is {}",
                statement.id,
                paid_by,
                statement.net
            );
        } else {
            prop_assert!(statement.current_payment().is_none());
        }
    }
    let published: Vec<ProgrammeYear> = state.years().map(|(year, _)| *year).collect();
    for year in published {
        let book = state.year(year).expect("books");
        let pool = state.pool(year).expect("pool");
        let usage = state.pool_usage(year);
        prop_assert_eq!(usage, book.usage);
        prop_assert_eq!(pool, book.pool);
        // pool = free + held + redeemed + receivables, every term ≥ 0 (Money is never
        // negative, so free ≥ 0 is pool ≥ the other three).
        let used = usage.held.plus(usage.redeemed).plus(usage.receivable);
        let free = pool.checked_minus(used);
        prop_assert!(
            free.is_some(),
            "{}: held {} + redeemed {} + receivable {} exceed the pool {}",
            year,
            usage.held,
            usage.redeemed,
            usage.receivable,
            pool
        );
        // Every fen of face value approved is held, redeemed, owed back or released.
        prop_assert_eq!(
            book.approved,
            used.plus(book.released),
            "face value of {}",
            year
        );
        // Money is conserved: granted is in exactly one bucket ...
        prop_assert_eq!(
            book.granted,
            book.reversed_unsettled
                .plus(book.unsettled)
                .plus(book.standing_open)
                .plus(book.standing_paid)
                .plus(book.clawed_back),
            "subsidy granted in {}",
            year
        );
        // ... and every clawback is outstanding, offset or repaid.
        let outstanding = book
            .clawed_back
            .checked_minus(book.offset.plus(book.repaid));
        prop_assert_eq!(
            outstanding,
            Some(book.outstanding()),
            "clawbacks of {}",
            year
        );
        prop_assert_eq!(usage.receivable, book.outstanding());
        prop_assert_eq!(
            usage.redeemed,
            book.unsettled
                .plus(book.standing_open)
                .plus(book.standing_paid)
        );
        // The statements of the year hold what the books say was settled.
        let of_year: Vec<&&Statement> = statements
            .iter()
            .filter(|statement| statement.year == year)
            .collect();
        let standing = |paid: bool| {
            total(
                of_year
                    .iter()
                    .filter(|statement| (statement.state == StatementState::Paid) == paid)
                    .map(|statement| statement.standing()),
            )
        };
        prop_assert_eq!(
            total(of_year.iter().map(|statement| statement.gross)),
            book.settled
        );
        prop_assert_eq!(standing(false), book.standing_open);
        prop_assert_eq!(standing(true), book.standing_paid);
        prop_assert_eq!(
            total(of_year.iter().map(|statement| statement.clawed_back)),
            book.clawed_back
        );
        prop_assert_eq!(
            total(of_year.iter().map(|statement| statement.clawback_offset)),
            book.offset
        );
        prop_assert_eq!(
            total(
                of_year
                    .iter()
                    .filter_map(|statement| statement.current_payment())
                    .map(|payment| payment.amount)
            ),
            book.paid
        );
        // Per center and per enterprise, the parts add up to the year.
        let mut centers = CenterYear::default();
        let mut outstanding = Money::ZERO;
        for index in 1..=CENTERS {
            if let Some(books) = state.center_year(&center(index), year) {
                prop_assert_eq!(
                    books.granted,
                    books
                        .reversed_unsettled
                        .plus(books.unsettled)
                        .plus(books.settled)
                );
                centers.granted = centers.granted.plus(books.granted);
                centers.unsettled = centers.unsettled.plus(books.unsettled);
                centers.settled = centers.settled.plus(books.settled);
                centers.clawed_back = centers.clawed_back.plus(books.clawed_back);
                centers.repaid = centers.repaid.plus(books.repaid);
                outstanding = outstanding.plus(books.outstanding());
            }
        }
        prop_assert_eq!(centers.granted, book.granted);
        prop_assert_eq!(centers.unsettled, book.unsettled);
        prop_assert_eq!(centers.settled, book.settled);
        prop_assert_eq!(centers.clawed_back, book.clawed_back);
        prop_assert_eq!(centers.repaid, book.repaid);
        prop_assert_eq!(outstanding, book.outstanding());
        let mut enterprises = Usage::default();
        for index in 1..=ENTERPRISES {
            let code = enterprise(index);
            let usage = state.enterprise_usage(&code, year);
            let cap = state.enterprise_cap(&code, year).expect("cap");
            prop_assert!(
                usage.used() <= cap,
                "enterprise {} in {}: held {} + redeemed {} + receivable {} exceed its cap {}",
                index,
                year,
                usage.held,
                usage.redeemed,
                usage.receivable,
                cap
            );
            enterprises.held = enterprises.held.plus(usage.held);
            enterprises.redeemed = enterprises.redeemed.plus(usage.redeemed);
            enterprises.receivable = enterprises.receivable.plus(usage.receivable);
        }
        prop_assert_eq!(enterprises, usage);
    }
    Ok(())
}

// --------------------------------------------------------------- the harness

/// What the reply to a command must be, as far as the model can tell beforehand.
#[derive(Clone, Debug)]
enum Expect {
    Anything,
    Refused,
    Rejected(RejectionCode),
    Answer(Reply),
    /// An invoice: refused for a closed window only after `window_end`.
    Post {
        window_end: Date,
    },
}

/// The pure state machine, the state folded from its events, and the model, run in step.
struct Harness {
    state: LedgerState,
    replayed: LedgerState,
    model: Model,
    log: Vec<SequencedEvent>,
    /// The registrations every case starts with.
    setup: Vec<Envelope>,
    clock: i64,
    commands: u64,
    fresh_references: u64,
    /// Which rules the sequence reached (events, rejections, idempotent answers).
    reached: BTreeSet<String>,
}

impl Harness {
    fn new(setup: &Setup) -> Result<Harness, TestCaseError> {
        let mut harness = Harness {
            state: LedgerState::new(),
            replayed: LedgerState::new(),
            model: Model::default(),
            log: Vec::new(),
            setup: Vec::new(),
            clock: at_date("2026-01-01").0 + i64::from(setup.start_day) * DAY_MS + 8 * HOUR_MS,
            commands: 0,
            fresh_references: 0,
            reached: BTreeSet::new(),
        };
        let mut commands = vec![
            Command::PublishPolicy {
                policy: policy(2026, 80_000, 25_000, setup.grace_days[0]),
            },
            Command::PublishPolicy {
                policy: policy(2027, 50_000, 20_000, setup.grace_days[1]),
            },
        ];
        for (index, tier) in TIERS.into_iter().enumerate() {
            commands.push(Command::RegisterCenter {
                center: center(index + 1),
                name: name(&format!("Center {}", index + 1)),
                tier,
                listing_basis: ListingBasis::PlanningLayout,
                capacity: Default::default(),
            });
        }
        for index in 1..=ENTERPRISES {
            commands.push(Command::RegisterEnterprise {
                enterprise: enterprise(index),
                name: name(&format!("Enterprise {index}")),
            });
        }
        commands.push(Command::DeclareRelatedParty {
            enterprise: enterprise(4),
            center: center(3),
            reason: reason("same group"),
        });
        for command in commands {
            let envelope = Envelope::from_origin(Timestamp(harness.clock), bureau(None), command);
            let (outcome, _) = harness.run(&envelope, &Expect::Anything)?;
            prop_assert!(outcome.is_ok(), "setup refused: {:?}", outcome);
            harness.setup.push(envelope);
        }
        Ok(harness)
    }

    fn last(&self) -> u64 {
        self.state.last_sequence()
    }

    /// A bank reference: mostly a fresh one, sometimes one of a few reused ones.
    fn bank_reference(&mut self, choice: u8, spelling: u8) -> BankReference {
        let text = if choice.is_multiple_of(4) {
            format!("BR-{}", choice % 6)
        } else {
            self.fresh_references += 1;
            format!("BR-F{}", self.fresh_references)
        };
        BankReference::parse(&spell(&text, spelling)).expect("bank reference")
    }

    fn expire(&self, today: Date) -> (Command, Expect) {
        let due: Vec<&ModelVoucher> = self
            .model
            .active_vouchers()
            .filter(|voucher| voucher.terms.redemption_window_end < today)
            .collect();
        let released = fen(due.iter().map(|voucher| voucher.remaining).sum());
        let count = due.len() as u64;
        (
            Command::ExpireVouchers,
            Expect::Answer(Reply::VouchersExpired {
                released_vouchers: count as u32,
                released,
                last_sequence: self.last() + count,
            }),
        )
    }

    /// Moves the clock on and turns the abstract step into an envelope, with what its
    /// reply must be.
    fn resolve(&mut self, step: &Step) -> (Envelope, Expect) {
        self.clock += step.advance_ms;
        self.commands += 1;
        let at = Timestamp(self.clock);
        let today = at.date();
        let request = self.commands.is_multiple_of(2).then_some(self.commands);
        let mut origin = bureau(request);
        let model = &self.model;
        let last = self.last();
        let vouchers: Vec<&ModelVoucher> = model.vouchers.values().collect();
        let nth_voucher =
            |pick: u8| (!vouchers.is_empty()).then(|| vouchers[usize::from(pick) % vouchers.len()]);
        let nth_invoice = |pick: u8| {
            (!model.invoice_order.is_empty()).then(|| {
                let key = &model.invoice_order[usize::from(pick) % model.invoice_order.len()];
                (key, &model.invoices[key])
            })
        };
        let (command, expect) = match &step.op {
            Op::Approve {
                voucher,
                enterprise: enterprise_index,
                center: center_choice,
                contract,
                spelling,
                start_in_days,
                length_days,
                fee_fen,
                requested_fen,
                wrong_year,
            } => {
                let term_start = today
                    .plus_days(i32::from(*start_in_days))
                    .max(date("2026-01-01"));
                let (start_year, _, _) = term_start.year_month_day();
                let year = programme_year(start_year as u32 + u32::from(*wrong_year));
                let approve = ApproveVoucher {
                    voucher: voucher_id(u128::from(1 + voucher % VOUCHER_IDS)),
                    year,
                    enterprise: enterprise(1 + usize::from(*enterprise_index) % ENTERPRISES),
                    center: center(1 + usize::from(*center_choice) % CENTERS),
                    contract_number: ContractNumber::parse(&spell(
                        &format!("HT-{}", contract % 12),
                        *spelling,
                    ))
                    .expect("contract"),
                    contract_fee: fen(*fee_fen),
                    term_start,
                    term_end: term_start.plus_days(i32::from(*length_days)),
                    requested: fen(*requested_fen),
                    enterprise_class: Default::default(),
                    declarations: Default::default(),
                };
                let expect = match model.vouchers.get(&approve.voucher) {
                    Some(existing) if same_approval(&existing.terms, &approve) => {
                        Expect::Answer(Reply::VoucherApproved {
                            voucher: approve.voucher,
                            face_value: existing.terms.face_value,
                            sequence: existing.approved_sequence,
                            duplicate: true,
                        })
                    }
                    Some(_) => Expect::Rejected(RejectionCode::VoucherAlreadyExists),
                    None if !model.policies.contains_key(&year) => {
                        Expect::Rejected(RejectionCode::PolicyNotPublished)
                    }
                    None if model.is_closed(year) => Expect::Rejected(RejectionCode::YearClosed),
                    None if *wrong_year => Expect::Rejected(RejectionCode::VoucherYearMismatch),
                    None => Expect::Anything,
                };
                (Command::ApproveVoucher(approve), expect)
            }
            Op::RetryApproval {
                pick,
                spelling,
                same,
            } => match nth_voucher(*pick) {
                None => self.expire(today),
                Some(existing) => {
                    let terms = &existing.terms;
                    let approve = ApproveVoucher {
                        voucher: terms.voucher,
                        year: terms.year,
                        enterprise: terms.enterprise,
                        center: terms.center,
                        contract_number: ContractNumber::parse(&spell(
                            terms.contract_number.as_str(),
                            *spelling,
                        ))
                        .expect("contract"),
                        contract_fee: terms.contract_fee,
                        term_start: terms.term_start,
                        term_end: terms.term_end,
                        requested: if *same {
                            terms.requested
                        } else {
                            terms.requested.plus(fen(1))
                        },
                        enterprise_class: Default::default(),
                        declarations: Default::default(),
                    };
                    let expect = if *same {
                        Expect::Answer(Reply::VoucherApproved {
                            voucher: terms.voucher,
                            face_value: terms.face_value,
                            sequence: existing.approved_sequence,
                            duplicate: true,
                        })
                    } else {
                        Expect::Rejected(RejectionCode::VoucherAlreadyExists)
                    };
                    (Command::ApproveVoucher(approve), expect)
                }
            },
            Op::Post {
                pick,
                number,
                spelling,
                twentieths,
                days_back,
                outside_term,
                wrong_center,
            } => {
                let Some(voucher) = nth_voucher(*pick) else {
                    return finish(at, origin, self.expire(today));
                };
                let terms = &voucher.terms;
                let owner = center_index(&terms.center);
                let center_code = if *wrong_center {
                    center(1 + owner % CENTERS)
                } else {
                    terms.center
                };
                let issue_date = match outside_term {
                    13 => terms.term_start.plus_days(-1),
                    14 => terms.term_end.plus_days(1),
                    _ => today
                        .plus_days(-i32::from(*days_back))
                        .min(terms.term_end)
                        .max(terms.term_start),
                };
                let post = PostInvoice {
                    center: center_code,
                    voucher: terms.voucher,
                    invoice_number: invoice_number(&spell(&invoice_text(*number), *spelling)),
                    amount: fen(terms.contract_fee.in_fen() * i64::from(*twentieths) / 20),
                    issue_date,
                    delivery_proof: DeliveryProof::parse("acceptance report").expect("proof"),
                    payment_proof: None,
                };
                let key = (post.center, post.invoice_number.clone());
                let expect = match model.invoices.get(&key) {
                    Some(existing) => {
                        if existing.voucher == post.voucher
                            && existing.amount == post.amount
                            && existing.issue_date == post.issue_date
                            && existing.proof == post.delivery_proof
                        {
                            Expect::Answer(duplicate_outcome(existing))
                        } else {
                            Expect::Rejected(RejectionCode::InvoiceConflict)
                        }
                    }
                    None if model.center_status(&post.center) == CenterStatus::Active
                        && !wrong_center
                        && !model.is_closed(terms.year)
                        && voucher.active
                        && issue_date >= terms.term_start
                        && issue_date <= terms.term_end
                        && today > terms.redemption_window_end =>
                    {
                        Expect::Rejected(RejectionCode::RedemptionWindowClosed)
                    }
                    None => Expect::Post {
                        window_end: terms.redemption_window_end,
                    },
                };
                (Command::PostInvoice(post), expect)
            }
            Op::Repost {
                pick,
                spelling,
                conflict,
            } => match nth_invoice(*pick) {
                None => self.expire(today),
                Some(((center_code, number), existing)) => {
                    let post = PostInvoice {
                        center: *center_code,
                        voucher: existing.voucher,
                        invoice_number: invoice_number(&spell(number.as_str(), *spelling)),
                        amount: if *conflict {
                            existing.amount.plus(fen(1))
                        } else {
                            existing.amount
                        },
                        issue_date: existing.issue_date,
                        delivery_proof: existing.proof.clone(),
                        payment_proof: None,
                    };
                    let expect = if *conflict {
                        Expect::Rejected(RejectionCode::InvoiceConflict)
                    } else {
                        Expect::Answer(duplicate_outcome(existing))
                    };
                    (Command::PostInvoice(post), expect)
                }
            },
            Op::Reverse {
                pick,
                spelling,
                as_center,
            } => match nth_invoice(*pick).filter(|_| pick % 16 != 15) {
                None => (
                    Command::ReverseInvoice {
                        center: center(1),
                        invoice_number: invoice_number("NOPE-1"),
                        reason: reason("credit note"),
                    },
                    Expect::Rejected(RejectionCode::InvoiceNotFound),
                ),
                Some(((center_code, number), existing)) => {
                    if *as_center {
                        origin = center_origin(center_index(center_code));
                    }
                    let voucher = &model.vouchers[&existing.voucher];
                    let settled = matches!(existing.place, Place::Settled(_));
                    let expect = if existing.reversed {
                        Expect::Rejected(RejectionCode::InvoiceAlreadyReversed)
                    } else if model.is_closed(existing.year) {
                        Expect::Rejected(RejectionCode::YearClosed)
                    } else if settled && *as_center {
                        Expect::Rejected(RejectionCode::ReversalNeedsBureau)
                    } else {
                        Expect::Answer(Reply::InvoiceReversed(ReversalOutcome {
                            subsidy: fen(existing.subsidy),
                            clawback: settled,
                            returned_to_voucher: !settled && voucher.active,
                            sequence: last + 1,
                        }))
                    };
                    (
                        Command::ReverseInvoice {
                            center: *center_code,
                            invoice_number: invoice_number(&spell(number.as_str(), *spelling)),
                            reason: reason("credit note"),
                        },
                        expect,
                    )
                }
            },
            Op::Cancel { pick } => match nth_voucher(*pick) {
                None => (
                    Command::CancelVoucher {
                        voucher: voucher_id(999),
                        reason: reason("withdrawn"),
                    },
                    Expect::Rejected(RejectionCode::VoucherNotFound),
                ),
                Some(voucher) => {
                    let expect = if model.is_closed(voucher.terms.year) {
                        Expect::Rejected(RejectionCode::YearClosed)
                    } else if !voucher.active {
                        Expect::Rejected(RejectionCode::VoucherNotActive)
                    } else {
                        Expect::Answer(Reply::VoucherCancelled {
                            released: fen(voucher.remaining),
                            sequence: last + 1,
                        })
                    };
                    (
                        Command::CancelVoucher {
                            voucher: voucher.terms.voucher,
                            reason: reason("withdrawn"),
                        },
                        expect,
                    )
                }
            },
            Op::Expire => {
                origin = Origin::system("expiry sweep");
                self.expire(today)
            }
            Op::Run { run, year } => {
                let run = SettlementRunId::from_u128(u128::from(1 + run % 5));
                let year = programme_year(YEARS[usize::from(*year) % YEARS.len()]);
                let expect = match model.runs.get(&run) {
                    Some(existing) if existing.year == year => {
                        Expect::Answer(Reply::SettlementRunCreated(RunOutcome {
                            run,
                            year,
                            cutoff: existing.cutoff,
                            statements: existing.statements.clone(),
                            duplicate: true,
                            sequence: existing
                                .statements
                                .last()
                                .map_or(existing.cutoff, |statement| statement.0),
                        }))
                    }
                    Some(_) => Expect::Rejected(RejectionCode::SettlementRunConflict),
                    None => {
                        let centers: BTreeSet<Uscc> = model
                            .invoices
                            .iter()
                            .filter(|(_, invoice)| {
                                invoice.year == year && invoice.place == Place::Unsettled
                            })
                            .map(|((center_code, _), _)| *center_code)
                            .collect();
                        let count = centers.len() as u64;
                        if count == 0 {
                            Expect::Rejected(RejectionCode::NothingToSettle)
                        } else {
                            Expect::Answer(Reply::SettlementRunCreated(RunOutcome {
                                run,
                                year,
                                cutoff: last + 1,
                                statements: (last + 2..=last + 1 + count)
                                    .map(StatementId)
                                    .collect(),
                                duplicate: false,
                                sequence: last + 1 + count,
                            }))
                        }
                    }
                };
                (Command::CreateSettlementRun { run, year }, expect)
            }
            Op::Pay {
                pick,
                any_statement,
                amount,
                reference,
                spelling,
                value_date,
            } => {
                // Chosen from the live state's own listing, as a bureau clerk would.
                let (candidates, _) =
                    self.state
                        .statements_page(None, usize::MAX, usize::MAX, |statement| {
                            *any_statement || statement.state != StatementState::Paid
                        });
                let chosen = (!candidates.is_empty())
                    .then(|| candidates[usize::from(*pick) % candidates.len()])
                    .map(|statement| (statement.id, statement.net, statement.issued_at.date()));
                let bank_reference = self.bank_reference(*reference, *spelling);
                let model = &self.model;
                match chosen {
                    None => (
                        Command::ConfirmPayment {
                            statement: StatementId(999_999),
                            bank_reference,
                            amount: fen(1),
                            value_date: today,
                        },
                        Expect::Rejected(RejectionCode::StatementNotFound),
                    ),
                    Some((id, net, issued)) => {
                        let amount = match amount {
                            4 => net.plus(fen(1)),
                            5 => net.checked_minus(fen(1)).unwrap_or(fen(2)),
                            _ => net,
                        };
                        let value_date = match value_date {
                            3 => issued,
                            4 => issued.plus_days(-1),
                            5 => today.plus_days(1),
                            _ => today,
                        };
                        let statement = &model.statements[&id.0];
                        let expect = match model.bank.get(&bank_reference) {
                            Some(ModelBankUse::Payment(paid)) if *paid == id => {
                                match statement.current_payment() {
                                    Some(payment)
                                        if payment.reference == bank_reference
                                            && payment.amount == amount
                                            && payment.value_date == value_date =>
                                    {
                                        Expect::Answer(Reply::PaymentConfirmed {
                                            statement: id,
                                            sequence: payment.sequence,
                                            duplicate: true,
                                        })
                                    }
                                    _ => Expect::Rejected(RejectionCode::BankReferenceReused),
                                }
                            }
                            Some(_) => Expect::Rejected(RejectionCode::BankReferenceReused),
                            None if statement.paid => {
                                Expect::Rejected(RejectionCode::StatementAlreadyPaid)
                            }
                            None if amount.in_fen() != statement.net => {
                                Expect::Rejected(RejectionCode::PaymentAmountMismatch)
                            }
                            None if value_date < statement.issued || value_date > today => {
                                Expect::Rejected(RejectionCode::ValueDateInvalid)
                            }
                            None => Expect::Answer(Reply::PaymentConfirmed {
                                statement: id,
                                sequence: last + 1,
                                duplicate: false,
                            }),
                        };
                        // Whatever else, a payment other than the net is refused.
                        let expect = match expect {
                            Expect::Answer(_) | Expect::Anything
                                if amount.in_fen() != statement.net =>
                            {
                                Expect::Refused
                            }
                            other => other,
                        };
                        (
                            Command::ConfirmPayment {
                                statement: id,
                                bank_reference,
                                amount,
                                value_date,
                            },
                            expect,
                        )
                    }
                }
            }
            Op::RepeatPayment { pick, spelling } => {
                let paid: Vec<(&u64, &ModelPayment)> = model
                    .statements
                    .iter()
                    .filter_map(|(id, statement)| Some((id, statement.current_payment()?)))
                    .collect();
                if paid.is_empty() {
                    self.expire(today)
                } else {
                    let (id, payment) = paid[usize::from(*pick) % paid.len()];
                    (
                        Command::ConfirmPayment {
                            statement: StatementId(*id),
                            bank_reference: BankReference::parse(&spell(
                                payment.reference.as_str(),
                                *spelling,
                            ))
                            .expect("reference"),
                            amount: payment.amount,
                            value_date: payment.value_date,
                        },
                        Expect::Answer(Reply::PaymentConfirmed {
                            statement: StatementId(*id),
                            sequence: payment.sequence,
                            duplicate: true,
                        }),
                    )
                }
            }
            Op::ReturnPayment {
                pick,
                right_reference,
            } => {
                let with_payments: Vec<(&u64, &ModelStatement)> = model
                    .statements
                    .iter()
                    .filter(|(_, statement)| !statement.payments.is_empty())
                    .collect();
                if with_payments.is_empty() {
                    self.expire(today)
                } else {
                    let (id, statement) = with_payments[usize::from(*pick) % with_payments.len()];
                    let payment = statement.payments.last().expect("payment");
                    let (bank_reference, expect) = if *right_reference {
                        (
                            payment.reference.clone(),
                            Expect::Answer(Reply::PaymentReturned {
                                statement: StatementId(*id),
                                sequence: payment.returned.unwrap_or(last + 1),
                                duplicate: payment.returned.is_some(),
                            }),
                        )
                    } else {
                        (
                            BankReference::parse("NEVER-USED").expect("reference"),
                            Expect::Rejected(RejectionCode::PaymentNotFound),
                        )
                    };
                    (
                        Command::RecordPaymentReturned {
                            statement: StatementId(*id),
                            bank_reference,
                            reason: reason("account closed"),
                        },
                        expect,
                    )
                }
            }
            Op::Repay {
                center: center_choice,
                year,
                amount,
                reference,
                future_date,
            } => {
                let center_code = center(1 + usize::from(*center_choice) % CENTERS);
                let year = programme_year(YEARS[usize::from(*year) % YEARS.len()]);
                let owed = model.outstanding(&center_code, year);
                let amount = fen(match amount {
                    0 => owed,
                    1 => (owed / 2).max(1),
                    2 => owed + 1,
                    3 => 1,
                    _ => 0,
                });
                let value_date = if *future_date {
                    today.plus_days(1)
                } else {
                    today
                };
                let bank_reference = self.bank_reference(*reference, 0);
                let model = &self.model;
                let expect = match model.bank.get(&bank_reference) {
                    Some(ModelBankUse::Repayment {
                        center: used_center,
                        year: used_year,
                        amount: used_amount,
                        value_date: used_date,
                        sequence,
                    }) if *used_center == center_code
                        && *used_year == year
                        && *used_amount == amount
                        && *used_date == value_date =>
                    {
                        Expect::Answer(Reply::RepaymentRecorded {
                            center: center_code,
                            year,
                            amount,
                            outstanding: fen(owed),
                            sequence: *sequence,
                            duplicate: true,
                        })
                    }
                    Some(_) => Expect::Rejected(RejectionCode::BankReferenceReused),
                    None if amount.is_zero() || amount.in_fen() > owed => {
                        Expect::Rejected(RejectionCode::RepaymentExceedsReceivable)
                    }
                    None if *future_date => Expect::Rejected(RejectionCode::ValueDateInvalid),
                    None => Expect::Answer(Reply::RepaymentRecorded {
                        center: center_code,
                        year,
                        amount,
                        outstanding: fen(owed - amount.in_fen()),
                        sequence: last + 1,
                        duplicate: false,
                    }),
                };
                (
                    Command::RecordRepayment {
                        center: center_code,
                        year,
                        amount,
                        bank_reference,
                        value_date,
                    },
                    expect,
                )
            }
            Op::Close { year } => {
                let year = programme_year(YEARS[usize::from(*year) % YEARS.len()]);
                let active: Vec<&ModelVoucher> = model
                    .active_vouchers()
                    .filter(|voucher| voucher.terms.year == year)
                    .collect();
                let expect = if let Some(sequence) = model.closed.get(&year) {
                    Expect::Answer(Reply::ProgrammeYearClosed {
                        year,
                        released_vouchers: 0,
                        sequence: *sequence,
                        duplicate: true,
                    })
                } else if i64::from(today.year_month_day().0) <= i64::from(year.get())
                    || active
                        .iter()
                        .any(|voucher| voucher.terms.redemption_window_end >= today)
                {
                    // Vouchers may be approved until the year's last day, so it is not
                    // over before then, nor while a voucher may still be redeemed.
                    Expect::Rejected(RejectionCode::YearNotOver)
                } else {
                    Expect::Answer(Reply::ProgrammeYearClosed {
                        year,
                        released_vouchers: active.len() as u32,
                        sequence: last + 1 + active.len() as u64,
                        duplicate: false,
                    })
                };
                (Command::CloseProgrammeYear { year }, expect)
            }
            Op::Status {
                center: center_choice,
                status,
            } => {
                let center_code = center(1 + usize::from(*center_choice) % CENTERS);
                let status = match status {
                    0..=2 => CenterStatus::Active,
                    3 | 4 => CenterStatus::Suspended,
                    _ => CenterStatus::Delisted,
                };
                let current = model.center_status(&center_code);
                let expect = if current == CenterStatus::Delisted {
                    Expect::Rejected(RejectionCode::CenterDelisted)
                } else if current == status {
                    Expect::Rejected(RejectionCode::CenterStatusUnchanged)
                } else if status == CenterStatus::Delisted {
                    let held: Vec<i64> = model
                        .active_vouchers()
                        .filter(|voucher| voucher.terms.center == center_code)
                        .map(|voucher| voucher.remaining)
                        .collect();
                    Expect::Answer(Reply::CenterStatusChanged {
                        released_vouchers: held.len() as u32,
                        released: fen(held.iter().sum()),
                        sequence: last + 1 + held.len() as u64,
                    })
                } else {
                    Expect::Answer(Reply::CenterStatusChanged {
                        released_vouchers: 0,
                        released: Money::ZERO,
                        sequence: last + 1,
                    })
                };
                (
                    Command::SetCenterStatus {
                        center: center_code,
                        status,
                        reason: reason("inspection"),
                    },
                    expect,
                )
            }
            Op::AdjustPool {
                year,
                mode,
                extra_fen,
            } => {
                let year = programme_year(YEARS[usize::from(*year) % YEARS.len()]);
                let (held, redeemed, receivable) = model.pool_usage(year);
                let used = held + redeemed + receivable;
                let pool = model.pools[&year];
                let new_pool = match mode {
                    0 => used,
                    1 => (used - 1).max(0),
                    2 => used + extra_fen,
                    _ => pool + extra_fen,
                };
                let expect = if model.is_closed(year) {
                    Expect::Rejected(RejectionCode::YearClosed)
                } else if new_pool < used {
                    Expect::Rejected(RejectionCode::PoolBelowUsage)
                } else {
                    Expect::Answer(Reply::PoolAdjusted {
                        year,
                        previous_pool: fen(pool),
                        new_pool: fen(new_pool),
                        sequence: last + 1,
                    })
                };
                (
                    Command::AdjustPool {
                        year,
                        new_pool: fen(new_pool),
                        reason: reason("budget revision"),
                    },
                    expect,
                )
            }
            Op::Cap {
                enterprise: enterprise_index,
                year,
                mode,
                extra_fen,
            } => {
                let code = enterprise(1 + usize::from(*enterprise_index) % ENTERPRISES);
                let year = programme_year(YEARS[usize::from(*year) % YEARS.len()]);
                let (held, redeemed, receivable) = model.enterprise_usage(&code, year);
                let used = held + redeemed + receivable;
                let cap = match mode {
                    0 => used,
                    1 => (used - 1).max(0),
                    _ => used + extra_fen,
                };
                let expect = if model.is_closed(year) {
                    Expect::Rejected(RejectionCode::YearClosed)
                } else if cap < used {
                    Expect::Rejected(RejectionCode::CapOverrideBelowUsage)
                } else {
                    Expect::Answer(Reply::CapOverrideGranted { sequence: last + 1 })
                };
                (
                    Command::GrantCapOverride {
                        enterprise: code,
                        year,
                        cap: fen(cap),
                        reason: reason("foundation model"),
                    },
                    expect,
                )
            }
            Op::ConfirmClock => (
                Command::ConfirmClock {
                    reason: reason("clock checked against the bank's"),
                },
                Expect::Answer(Reply::ClockConfirmed { sequence: last + 1 }),
            ),
            Op::StaleClock => {
                let stale = Timestamp(self.state.last_time().0 - 1);
                return (
                    Envelope::from_origin(stale, origin, Command::ExpireVouchers),
                    Expect::Rejected(RejectionCode::TimeWentBackwards),
                );
            }
        };
        finish(at, origin, (command, expect))
    }

    /// Executes one envelope on the pure state machine and checks everything.
    fn run(
        &mut self,
        envelope: &Envelope,
        expect: &Expect,
    ) -> Result<(Outcome, Vec<SequencedEvent>), TestCaseError> {
        let before = self.state.clone();
        let mut events = Vec::new();
        let outcome = self.state.execute(envelope, &mut events);
        let name = envelope.command.name();
        match &outcome {
            Err(rejection) => {
                prop_assert!(
                    events.is_empty(),
                    "{} was refused but appended events",
                    name
                );
                prop_assert!(
                    self.state == before,
                    "refused {} ({}) changed the state",
                    name,
                    rejection
                );
            }
            Ok(reply) if events.is_empty() => {
                prop_assert!(
                    self.state == before,
                    "{} answered {:?} without events but changed the state",
                    name,
                    reply
                );
                prop_assert!(reply.last_sequence() <= self.state.last_sequence());
            }
            Ok(reply) => {
                prop_assert_eq!(reply.last_sequence(), self.state.last_sequence());
            }
        }
        for (offset, event) in events.iter().enumerate() {
            prop_assert_eq!(event.sequence, before.last_sequence() + 1 + offset as u64);
            prop_assert_eq!(event.at, envelope.at);
            prop_assert_eq!(&event.origin, &envelope.origin);
        }
        match expect {
            Expect::Anything => {}
            Expect::Refused => {
                prop_assert!(outcome.is_err(), "{} must be refused: {:?}", name, outcome)
            }
            Expect::Rejected(code) => prop_assert_eq!(
                outcome.as_ref().err().map(|rejection| rejection.code),
                Some(*code),
                "{} answered {:?}",
                name,
                outcome
            ),
            Expect::Answer(reply) => prop_assert_eq!(
                outcome.as_ref().ok(),
                Some(reply),
                "{} answered {:?}",
                name,
                outcome
            ),
            Expect::Post { window_end } => {
                if let Err(rejection) = &outcome {
                    if rejection.code == RejectionCode::RedemptionWindowClosed {
                        prop_assert!(
                            envelope.at.date() > *window_end,
                            "refused on {} though the window ends {}",
                            envelope.at.date(),
                            window_end
                        );
                    }
                }
            }
        }
        // Replay equals live: the events folded into a fresh state give the live state.
        for event in &events {
            self.replayed.apply(event.sequence, event.at, &event.event);
        }
        prop_assert!(
            self.replayed == self.state,
            "replaying the events of {} does not give the live state",
            name
        );
        for event in &events {
            self.model.apply(event)?;
        }
        let swept = matches!(envelope.command, Command::ExpireVouchers) && outcome.is_ok();
        self.model.after_command(envelope.at.date(), swept)?;
        identities(&self.state)?;
        self.model.compare(&self.state)?;
        self.note(&outcome, &events);
        self.log.extend(events.iter().cloned());
        Ok((outcome, events))
    }
}

impl Harness {
    /// Records which rules a command reached, for the test that the sequences are not
    /// vacuous.
    fn note(&mut self, outcome: &Outcome, events: &[SequencedEvent]) {
        let reached = match outcome {
            Err(rejection) => format!("refused {}", rejection.code.name()),
            Ok(reply) if events.is_empty() => {
                let kind = format!("{reply:?}");
                let kind = kind.split([' ', '(', '{']).next().unwrap_or_default();
                match reply {
                    Reply::InvoiceOutcome(outcome) if outcome.reversed => {
                        format!("answered {kind} reversed")
                    }
                    _ => format!("answered {kind}"),
                }
            }
            Ok(_) => String::from("accepted"),
        };
        self.reached.insert(reached);
        for logged in events {
            let detail = match &logged.event {
                Event::InvoiceRedeemed(redeemed) => {
                    let terms = &self.model.vouchers[&redeemed.voucher].terms;
                    if logged.at.date() > terms.term_end {
                        "in the grace"
                    } else {
                        ""
                    }
                }
                Event::InvoiceReversed(reversed) if reversed.clawback => "clawback",
                Event::InvoiceReversed(reversed) if reversed.returned_to_voucher => "to voucher",
                Event::InvoiceReversed(_) => "released",
                Event::VoucherReleased { cause, .. } => match cause {
                    ReleaseCause::Expired => "expired",
                    ReleaseCause::Cancelled => "cancelled",
                    ReleaseCause::Delisted => "delisted",
                },
                Event::StatementIssued(issued) if issued.net.is_zero() => "nothing to pay",
                Event::StatementIssued(issued) if !issued.clawback_offset.is_zero() => "offset",
                _ => "",
            };
            self.reached.insert(
                format!("{} {detail}", logged.event.name())
                    .trim()
                    .to_string(),
            );
            let year = match &logged.event {
                Event::InvoiceRedeemed(redeemed) => {
                    Some(self.model.vouchers[&redeemed.voucher].terms.year)
                }
                Event::StatementIssued(issued) => Some(issued.year),
                Event::ProgrammeYearClosed { year } => Some(*year),
                _ => None,
            };
            if let Some(year) = year {
                self.reached
                    .insert(format!("{} of {year}", logged.event.name()));
            }
        }
    }
}

/// The envelope of a resolved step.
fn finish(at: Timestamp, origin: Origin, resolved: (Command, Expect)) -> (Envelope, Expect) {
    let (command, expect) = resolved;
    (Envelope::from_origin(at, origin, command), expect)
}

fn same_approval(terms: &VoucherApproved, approve: &ApproveVoucher) -> bool {
    terms.year == approve.year
        && terms.enterprise == approve.enterprise
        && terms.center == approve.center
        && terms.contract_number == approve.contract_number
        && terms.contract_fee == approve.contract_fee
        && terms.term_start == approve.term_start
        && terms.term_end == approve.term_end
        && terms.requested == approve.requested
}

/// The answer to a retry of `invoice`: the subsidy that stands, its original sequence.
fn duplicate_outcome(invoice: &ModelInvoice) -> Reply {
    Reply::InvoiceOutcome(InvoiceOutcome {
        subsidy: if invoice.reversed {
            Money::ZERO
        } else {
            fen(invoice.subsidy)
        },
        sequence: invoice.sequence,
        duplicate: true,
        reversed: invoice.reversed,
    })
}

// ------------------------------------------------------------------ the properties

fn in_memory(setup: &Setup, steps: &[Step]) -> Result<Harness, TestCaseError> {
    let mut harness = Harness::new(setup)?;
    for step in steps {
        let (envelope, expect) = harness.resolve(step);
        let _ = harness.run(&envelope, &expect)?;
    }
    let mut replayed = LedgerState::new();
    for logged in &harness.log {
        replayed.apply(logged.sequence, logged.at, &logged.event);
    }
    prop_assert!(replayed == harness.state, "the whole log replayed differs");
    prop_assert_eq!(
        LedgerState::from_image(harness.state.to_image()).to_image(),
        harness.state.to_image()
    );
    Ok(harness)
}

fn durable(
    setup: &Setup,
    steps: &[Step],
    batches: &[(usize, bool)],
    snapshot_interval: u64,
) -> Result<(), TestCaseError> {
    let directory = tempfile::tempdir().expect("tempdir");
    let options = LedgerOptions {
        sync: false,
        snapshot_interval,
        invoice_cache_limit: 2,
        ..LedgerOptions::default()
    };
    let open = || {
        Ledger::open(directory.path(), options.clone())
            .expect("the ledger opens")
            .0
    };
    let mut harness = Harness::new(setup)?;
    let mut ledger = open();
    let replies = ledger.submit(&harness.setup).expect("setup");
    prop_assert!(replies.iter().all(Result::is_ok));
    prop_assert_eq!(ledger.last_batch_events().to_vec(), harness.log.clone());
    let mut next = 0;
    for (size, reopen) in batches.iter().cycle() {
        if next == steps.len() {
            break;
        }
        let end = (next + size).min(steps.len());
        let mut envelopes = Vec::new();
        let mut expected = Vec::new();
        let mut events = Vec::new();
        for step in &steps[next..end] {
            let (envelope, expect) = harness.resolve(step);
            let (outcome, appended) = harness.run(&envelope, &expect)?;
            envelopes.push(envelope);
            expected.push(outcome);
            events.extend(appended);
        }
        next = end;
        let replies = ledger.submit(&envelopes).expect("submit");
        prop_assert_eq!(&replies, &expected, "the durable ledger answered otherwise");
        prop_assert_eq!(
            ledger.last_batch_events().to_vec(),
            events,
            "the durable ledger appended other events"
        );
        {
            let state = ledger.state();
            prop_assert_eq!(state.to_image(), harness.state.to_image());
            let violations = state.check_invariants();
            prop_assert!(violations.is_empty(), "{:#?}", violations);
        }
        if *reopen {
            drop(ledger);
            ledger = open();
            prop_assert_eq!(ledger.state().to_image(), harness.state.to_image());
        }
    }
    drop(ledger);
    let report = voucher_ledger::audit::verify(directory.path()).expect("verify runs");
    prop_assert!(report.is_clean(), "verify: {:#?}", report.problems);
    prop_assert_eq!(report.records_checked, harness.state.last_sequence());
    let ledger = open();
    prop_assert!(ledger.state().same_projections(&harness.state));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn money_closes_after_every_command_and_replay_gives_the_live_state(
        setup in setup_strategy(),
        steps in prop::collection::vec(step_strategy(), 1..160),
    ) {
        in_memory(&setup, &steps)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_durable_ledger_with_a_tiny_cache_and_restarts_agrees_with_the_state_machine(
        setup in setup_strategy(),
        steps in prop::collection::vec(step_strategy(), 1..120),
        batches in prop::collection::vec((1usize..=8, prop::bool::weighted(0.25)), 1..30),
        snapshot_interval in 3u64..=40,
    ) {
        durable(&setup, &steps, &batches, snapshot_interval)?;
    }
}

/// The sequences are not vacuous: a fixed set of them reaches every kind of event and the
/// refusals and idempotent answers the rules promise.
#[test]
fn the_random_sequences_reach_every_rule() {
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let cases = (
        setup_strategy(),
        prop::collection::vec(step_strategy(), 1..160),
    );
    let mut reached = BTreeSet::new();
    for _ in 0..64 {
        let (setup, steps) = cases.new_tree(&mut runner).expect("a case").current();
        match in_memory(&setup, &steps) {
            Ok(harness) => reached.extend(harness.reached),
            Err(error) => panic!("{error}"),
        }
    }
    let mut expected: Vec<String> = [
        "PolicyPublished",
        "CenterRegistered",
        "CenterStatusChanged",
        "EnterpriseRegistered",
        "CapOverrideGranted",
        "RelatedPartyDeclared",
        "VoucherApproved",
        "InvoiceRedeemed",
        "InvoiceRedeemed in the grace",
        "InvoiceReversed to voucher",
        "InvoiceReversed released",
        "InvoiceReversed clawback",
        "VoucherReleased expired",
        "VoucherReleased cancelled",
        "VoucherReleased delisted",
        "SettlementRunCreated",
        "StatementIssued",
        "StatementIssued offset",
        "StatementIssued nothing to pay",
        "PaymentConfirmed",
        "PaymentReturned",
        "RepaymentRecorded",
        "ProgrammeYearClosed",
        "PoolAdjusted",
        "ClockConfirmed",
        "InvoiceRedeemed of 2026",
        "InvoiceRedeemed of 2027",
        "StatementIssued of 2026",
        "StatementIssued of 2027",
        "ProgrammeYearClosed of 2026",
        "answered VoucherApproved",
        "answered InvoiceOutcome",
        "answered InvoiceOutcome reversed",
        "answered VouchersExpired",
        "answered SettlementRunCreated",
        "answered PaymentConfirmed",
        "answered PaymentReturned",
        "answered ProgrammeYearClosed",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    expected.extend(
        [
            RejectionCode::TimeWentBackwards,
            RejectionCode::VoucherYearMismatch,
            RejectionCode::VoucherAlreadyExists,
            RejectionCode::ContractAlreadyHasVoucher,
            RejectionCode::FaceValueZero,
            RejectionCode::ContractTermInvalid,
            RejectionCode::RelatedParty,
            RejectionCode::EnterpriseCapExceeded,
            RejectionCode::PoolExhausted,
            RejectionCode::CenterNotActive,
            RejectionCode::CenterDelisted,
            RejectionCode::InvoiceConflict,
            RejectionCode::InvoiceDateOutsideTerm,
            RejectionCode::RedemptionWindowClosed,
            RejectionCode::VoucherNotActive,
            RejectionCode::VoucherCenterMismatch,
            RejectionCode::VoucherExhausted,
            RejectionCode::ContractFeeExceeded,
            RejectionCode::InvoiceNotFound,
            RejectionCode::InvoiceAlreadyReversed,
            RejectionCode::ReversalNeedsBureau,
            RejectionCode::NothingToSettle,
            RejectionCode::SettlementRunConflict,
            RejectionCode::StatementNotFound,
            RejectionCode::StatementAlreadyPaid,
            RejectionCode::PaymentAmountMismatch,
            RejectionCode::BankReferenceReused,
            RejectionCode::ValueDateInvalid,
            RejectionCode::PaymentNotFound,
            RejectionCode::RepaymentExceedsReceivable,
            RejectionCode::YearNotOver,
            RejectionCode::YearClosed,
            RejectionCode::PoolBelowUsage,
            RejectionCode::CapOverrideBelowUsage,
        ]
        .map(|code| format!("refused {}", code.name())),
    );
    let missing: Vec<&String> = expected
        .iter()
        .filter(|rule| !reached.contains(*rule))
        .collect();
    assert!(
        missing.is_empty(),
        "never reached: {missing:#?}\nreached: {reached:#?}"
    );
}
