//! The state machine: decides whether a command is accepted and which events it causes,
//! then applies them. Pure and synchronous: no I/O, no clock, no randomness; the same
//! envelopes in the same order give the same events, byte for byte.
//!
//! `decide_*` functions only read the state and return the events (or a rejection);
//! `execute` applies them with dense sequence numbers, so a later command in the same
//! batch sees an earlier one. The rules live one file per part of the programme:
//!
//! | file | rules |
//! |---|---|
//! | `registry.rs` | policies, centers (delisting releases holds), enterprises, caps, related parties, pool adjustments |
//! | `vouchers.rs` | approval (programme year, cap, pool), cancellation, expiry after the grace |
//! | `programme.rs` | the programme's own rules at approval: small-enterprise rate, term, center capacity, declarations |
//! | `redemption.rs` | invoices: the subsidy, duplicates, conflicts, the window; reversals and clawbacks |
//! | `settlement.rs` | settlement runs and statements, payments and returns, repayments, year close |

mod programme;
mod reconciliation;
mod redemption;
mod registry;
mod settlement;
mod vouchers;

use super::command::{Command, Envelope};
use super::event::Event;
use super::ids::{ProgrammeYear, SettlementRunId, StatementId, Timestamp, Uscc, VoucherId};
use super::money::Money;
use super::origin::Origin;
use super::programme::FundingSource;
use super::rejection::{Rejection, RejectionCode};
use super::state::LedgerState;

pub use crate::limits::EXPIRY_BATCH_LIMIT;

/// How far ahead of the command being decided a batch prefetches
/// ([`LedgerState::prefetch_ahead`]): an enterprise account this many redemptions ahead,
/// a voucher twice as many (its account is found through it). Far enough that a record
/// arrives from memory (~100 ns) before its redemption is decided (~0.5 µs each), near
/// enough that it is still in the cache then. 4 (and 8) are the only distances measured
/// (issue 12, fifteenth round).
pub const PREFETCH_AHEAD: usize = 4;

/// An event with its place in the log, the time of the command that caused it, and who
/// sent that command.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SequencedEvent {
    pub sequence: u64,
    pub at: Timestamp,
    pub origin: Origin,
    pub event: Event,
}

/// The answer to an accepted command: what happened, typed per command, with the
/// sequence number of the (last) event it appended or, for an idempotent repeat, of the
/// original event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reply {
    PolicyPublished {
        sequence: u64,
    },
    CenterRegistered {
        sequence: u64,
    },
    CenterStatusChanged {
        /// Vouchers released because the center was delisted.
        released_vouchers: u32,
        released: Money,
        sequence: u64,
    },
    EnterpriseRegistered {
        sequence: u64,
    },
    CapOverrideGranted {
        sequence: u64,
    },
    RelatedPartyDeclared {
        sequence: u64,
    },
    VoucherApproved {
        voucher: VoucherId,
        face_value: Money,
        sequence: u64,
        /// The same approval was made before: this is its original answer.
        duplicate: bool,
    },
    VoucherCancelled {
        released: Money,
        sequence: u64,
    },
    /// An expiry sweep; `released_vouchers` may be zero, and then `last_sequence` is the
    /// state's sequence before the command (nothing was appended).
    VouchersExpired {
        released_vouchers: u32,
        released: Money,
        last_sequence: u64,
    },
    /// An invoice was redeemed (or, with `duplicate`, had been posted before with the
    /// same content, and nothing changed).
    InvoiceOutcome(InvoiceOutcome),
    /// Stacked funding: an invoice whose second source's subsidy is not zero (every
    /// other invoice is answered with `InvoiceOutcome`, so a year without a second
    /// source answers exactly as before): the outcome, and the second subsidy that stands.
    StackedInvoiceOutcome {
        outcome: InvoiceOutcome,
        second_subsidy: Money,
    },
    InvoiceReversed(ReversalOutcome),
    /// Stacked funding: a reversal that also took back a second source's subsidy.
    StackedInvoiceReversed {
        outcome: ReversalOutcome,
        second_subsidy: Money,
    },
    SettlementRunCreated(RunOutcome),
    PaymentConfirmed {
        statement: StatementId,
        sequence: u64,
        duplicate: bool,
    },
    PaymentReturned {
        statement: StatementId,
        sequence: u64,
        duplicate: bool,
    },
    RepaymentRecorded {
        center: Uscc,
        year: ProgrammeYear,
        amount: Money,
        /// What the center still owes for the year afterwards.
        outstanding: Money,
        sequence: u64,
        duplicate: bool,
    },
    ProgrammeYearClosed {
        year: ProgrammeYear,
        /// Vouchers still active when it closed, released by the close.
        released_vouchers: u32,
        sequence: u64,
        duplicate: bool,
    },
    PoolAdjusted {
        year: ProgrammeYear,
        previous_pool: Money,
        new_pool: Money,
        sequence: u64,
    },
    ClockConfirmed {
        sequence: u64,
    },
    /// A reconciliation was recorded (or, with `duplicate`, the same file and scope had
    /// been: `sequence` is the original record's).
    ReconciliationRecorded {
        sequence: u64,
        duplicate: bool,
    },
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InvoiceOutcome {
    /// The subsidy that stands: what was granted, or 0.00 once the invoice is reversed.
    pub subsidy: Money,
    /// Sequence of the `InvoiceRedeemed` event (the original one for a duplicate).
    pub sequence: u64,
    pub duplicate: bool,
    /// The invoice was reversed since it was posted (only on a duplicate).
    pub reversed: bool,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReversalOutcome {
    pub subsidy: Money,
    /// The subsidy had been settled: the center owes it back (a receivable).
    pub clawback: bool,
    /// The voucher was active and took the subsidy back as face value.
    pub returned_to_voucher: bool,
    pub sequence: u64,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RunOutcome {
    pub run: SettlementRunId,
    pub year: ProgrammeYear,
    /// The run's own event: everything before it was cut off into its statements.
    pub cutoff: u64,
    pub statements: Vec<StatementId>,
    /// The same run id was used before: this is its original answer.
    pub duplicate: bool,
    /// The sequence of its last event.
    pub sequence: u64,
}

impl Reply {
    /// An invoice's answer: `StackedInvoiceOutcome` when a second source's subsidy stands
    /// on it, `InvoiceOutcome` otherwise.
    pub fn invoice(outcome: InvoiceOutcome, second_subsidy: Money) -> Reply {
        if second_subsidy.is_zero() {
            Reply::InvoiceOutcome(outcome)
        } else {
            Reply::StackedInvoiceOutcome {
                outcome,
                second_subsidy,
            }
        }
    }

    /// A reversal's answer, the same way.
    pub fn reversal(outcome: ReversalOutcome, second_subsidy: Money) -> Reply {
        if second_subsidy.is_zero() {
            Reply::InvoiceReversed(outcome)
        } else {
            Reply::StackedInvoiceReversed {
                outcome,
                second_subsidy,
            }
        }
    }

    /// An invoice's outcome and its second source's subsidy (zero when none), whichever
    /// of the two invoice answers this is.
    pub fn invoice_outcome(&self) -> Option<(&InvoiceOutcome, Money)> {
        match self {
            Reply::InvoiceOutcome(outcome) => Some((outcome, Money::ZERO)),
            Reply::StackedInvoiceOutcome {
                outcome,
                second_subsidy,
            } => Some((outcome, *second_subsidy)),
            _ => None,
        }
    }

    /// A reversal's outcome and the second source's subsidy it took back.
    pub fn reversal_outcome(&self) -> Option<(&ReversalOutcome, Money)> {
        match self {
            Reply::InvoiceReversed(outcome) => Some((outcome, Money::ZERO)),
            Reply::StackedInvoiceReversed {
                outcome,
                second_subsidy,
            } => Some((outcome, *second_subsidy)),
            _ => None,
        }
    }

    /// The sequence of the last event the command appended (for an idempotent repeat,
    /// the original event; for an empty expiry sweep, the sequence before it).
    pub fn last_sequence(&self) -> u64 {
        match self {
            Reply::PolicyPublished { sequence }
            | Reply::CenterRegistered { sequence }
            | Reply::CenterStatusChanged { sequence, .. }
            | Reply::EnterpriseRegistered { sequence }
            | Reply::CapOverrideGranted { sequence }
            | Reply::RelatedPartyDeclared { sequence }
            | Reply::VoucherApproved { sequence, .. }
            | Reply::VoucherCancelled { sequence, .. }
            | Reply::PaymentConfirmed { sequence, .. }
            | Reply::PaymentReturned { sequence, .. }
            | Reply::RepaymentRecorded { sequence, .. }
            | Reply::ProgrammeYearClosed { sequence, .. }
            | Reply::PoolAdjusted { sequence, .. }
            | Reply::ClockConfirmed { sequence }
            | Reply::ReconciliationRecorded { sequence, .. } => *sequence,
            Reply::VouchersExpired { last_sequence, .. } => *last_sequence,
            Reply::InvoiceOutcome(outcome) | Reply::StackedInvoiceOutcome { outcome, .. } => {
                outcome.sequence
            }
            Reply::InvoiceReversed(outcome) | Reply::StackedInvoiceReversed { outcome, .. } => {
                outcome.sequence
            }
            Reply::SettlementRunCreated(outcome) => outcome.sequence,
        }
    }
}

pub(crate) fn reject<T>(code: RejectionCode, detail: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::new(code, detail))
}

/// What a decision produced: new events to append and the reply built from their
/// sequences, or an answer that appends nothing (an idempotent repeat).
pub(crate) enum Decision {
    Append {
        events: Vec<Event>,
        /// Builds the reply from the first and last sequence the events were given.
        reply: Box<dyn FnOnce(u64, u64) -> Reply>,
    },
    Answer(Reply),
}

impl Decision {
    fn one(event: Event, reply: impl FnOnce(u64) -> Reply + 'static) -> Decision {
        Decision::Append {
            events: vec![event],
            reply: Box::new(move |_, last| reply(last)),
        }
    }
}

impl LedgerState {
    /// Decides `envelope` against the current state; on acceptance applies its events,
    /// appends them to `sink` and returns the reply. On rejection nothing changes.
    pub fn execute(
        &mut self,
        envelope: &Envelope,
        sink: &mut Vec<SequencedEvent>,
    ) -> Result<Reply, Rejection> {
        if envelope.at < self.last_time {
            return reject(
                RejectionCode::TimeWentBackwards,
                format!(
                    "command time {} ms is before the last accepted time {} ms",
                    envelope.at.0, self.last_time.0
                ),
            );
        }
        // The hot path: one invoice, one event, no allocation beyond the event itself.
        if let Command::PostInvoice(post) = &envelope.command {
            return Ok(match self.decide_post_invoice(post, envelope.at)? {
                redemption::InvoiceDecision::Duplicate(outcome, second) => {
                    Reply::invoice(outcome, second)
                }
                redemption::InvoiceDecision::Redeem(redeemed) => {
                    let (subsidy, second_subsidy) = (redeemed.subsidy, redeemed.second_subsidy);
                    let sequence = self.push(envelope, Event::InvoiceRedeemed(redeemed), sink);
                    let outcome = InvoiceOutcome {
                        subsidy,
                        sequence,
                        duplicate: false,
                        reversed: false,
                    };
                    Reply::invoice(outcome, second_subsidy)
                }
            });
        }
        let decision = self.decide(envelope)?;
        Ok(match decision {
            Decision::Answer(reply) => reply,
            Decision::Append { events, reply } => {
                let first_new = sink.len();
                let first = self.last_sequence + 1;
                for event in events {
                    self.push(envelope, event, sink);
                }
                assert!(sink[first_new..]
                    .windows(2)
                    .all(|pair| pair[1].sequence == pair[0].sequence + 1));
                reply(first, self.last_sequence)
            }
        })
    }

    /// Decides every command but `PostInvoice` (which has its own path above).
    fn decide(&self, envelope: &Envelope) -> Result<Decision, Rejection> {
        let at = envelope.at;
        match &envelope.command {
            Command::PublishPolicy { policy } => self.decide_publish_policy(policy),
            Command::RegisterCenter {
                center,
                name,
                tier,
                listing_basis,
                capacity,
            } => self.decide_register_center(center, name, *tier, *listing_basis, *capacity),
            Command::SetCenterStatus {
                center,
                status,
                reason,
            } => self.decide_center_status(center, *status, reason),
            Command::RegisterEnterprise { enterprise, name } => {
                self.decide_register_enterprise(enterprise, name)
            }
            Command::GrantCapOverride {
                enterprise,
                year,
                cap,
                reason,
            } => self.decide_cap_override(enterprise, *year, *cap, reason),
            Command::DeclareRelatedParty {
                enterprise,
                center,
                reason,
            } => self.decide_related_party(enterprise, center, reason),
            Command::AdjustPool {
                year,
                new_pool,
                reason,
            } => self.decide_adjust_pool(*year, *new_pool, reason),
            Command::ApproveVoucher(approve) => self.decide_approve(approve, at),
            Command::CancelVoucher { voucher, reason } => self.decide_cancel(voucher, reason),
            Command::ExpireVouchers => Ok(self.decide_expiry(at)),
            // `execute` takes the direct path for invoices; this arm decides the same.
            Command::PostInvoice(post) => Ok(match self.decide_post_invoice(post, at)? {
                redemption::InvoiceDecision::Duplicate(outcome, second) => {
                    Decision::Answer(Reply::invoice(outcome, second))
                }
                redemption::InvoiceDecision::Redeem(redeemed) => {
                    let (subsidy, second_subsidy) = (redeemed.subsidy, redeemed.second_subsidy);
                    Decision::one(Event::InvoiceRedeemed(redeemed), move |sequence| {
                        let outcome = InvoiceOutcome {
                            subsidy,
                            sequence,
                            duplicate: false,
                            reversed: false,
                        };
                        Reply::invoice(outcome, second_subsidy)
                    })
                }
            }),
            Command::ReverseInvoice {
                center,
                invoice_number,
                reason,
            } => self.decide_reversal(envelope, center, invoice_number, reason),
            Command::CreateSettlementRun { run, year } => self.decide_settlement_run(run, *year),
            Command::ConfirmPayment {
                statement,
                bank_reference,
                amount,
                value_date,
            } => self.decide_payment(*statement, bank_reference, *amount, *value_date, at),
            Command::RecordPaymentReturned {
                statement,
                bank_reference,
                reason,
            } => self.decide_payment_returned(*statement, bank_reference, reason),
            Command::RecordRepayment {
                center,
                year,
                amount,
                bank_reference,
                value_date,
            } => self.decide_repayment(
                FundingSource::Primary,
                center,
                *year,
                *amount,
                bank_reference,
                *value_date,
                at,
            ),
            Command::RecordSecondSourceRepayment {
                center,
                year,
                amount,
                bank_reference,
                value_date,
            } => self.decide_repayment(
                FundingSource::Second,
                center,
                *year,
                *amount,
                bank_reference,
                *value_date,
                at,
            ),
            Command::CloseProgrammeYear { year } => self.decide_close(*year, at),
            Command::ConfirmClock { reason } => Ok(Decision::one(
                Event::ClockConfirmed {
                    reason: reason.clone(),
                },
                |sequence| Reply::ClockConfirmed { sequence },
            )),
            Command::RecordReconciliation(recorded) => self.decide_reconciliation(recorded),
        }
    }

    /// Applies `event` with the next sequence number, appends it to `sink`, and returns
    /// its sequence.
    fn push(&mut self, envelope: &Envelope, event: Event, sink: &mut Vec<SequencedEvent>) -> u64 {
        let sequence = self.last_sequence + 1;
        self.apply(sequence, envelope.at, &event);
        sink.push(SequencedEvent {
            sequence,
            at: envelope.at,
            origin: envelope.origin.clone(),
            event,
        });
        sequence
    }

    // ------------------------------------------------------------- lookups that reject

    pub(crate) fn existing_policy(
        &self,
        year: ProgrammeYear,
    ) -> Result<&super::policy::ProgrammePolicy, Rejection> {
        self.policy(year).ok_or_else(|| {
            Rejection::new(
                RejectionCode::PolicyNotPublished,
                format!("no policy is published for {year}"),
            )
        })
    }

    pub(crate) fn open_year(&self, year: ProgrammeYear) -> Result<(), Rejection> {
        if self.year_closed(year) {
            return reject(
                RejectionCode::YearClosed,
                format!("programme year {year} is closed"),
            );
        }
        Ok(())
    }

    pub(crate) fn existing_center(
        &self,
        center: &Uscc,
    ) -> Result<&super::state::CenterAccount, Rejection> {
        self.center(center).ok_or_else(|| {
            Rejection::new(
                RejectionCode::CenterNotFound,
                format!("center {center} is not registered"),
            )
        })
    }

    pub(crate) fn existing_enterprise(
        &self,
        enterprise: &Uscc,
    ) -> Result<&super::state::EnterpriseAccount, Rejection> {
        self.enterprise(enterprise).ok_or_else(|| {
            Rejection::new(
                RejectionCode::EnterpriseNotFound,
                format!("enterprise {enterprise} is not registered"),
            )
        })
    }

    /// Prefetches what deciding a redemption a few places after `place` in `envelopes`
    /// will read first, so that its cache misses overlap the deciding of the commands
    /// before it: the slot where the search for the voucher of the one
    /// [`PREFETCH_AHEAD`] × 4 places ahead starts, the voucher of the one
    /// [`PREFETCH_AHEAD`] × 2 places ahead (its position found in that slot, fetched by
    /// then), and the enterprise account of the one [`PREFETCH_AHEAD`] places ahead
    /// (found through its voucher, prefetched by then). A hint only: it changes nothing,
    /// and a batch decided without it gets the same events and replies. Call it before
    /// executing `envelopes[place]`.
    #[inline]
    pub fn prefetch_ahead(&self, envelopes: &[Envelope], place: usize) {
        let redemption = |ahead: usize| match envelopes.get(place + ahead) {
            Some(Envelope {
                command: Command::PostInvoice(post),
                ..
            }) => Some(&post.voucher),
            _ => None,
        };
        if let Some(voucher) = redemption(4 * PREFETCH_AHEAD) {
            self.prefetch_voucher_position(voucher);
        }
        if let Some(voucher) = redemption(2 * PREFETCH_AHEAD) {
            self.prefetch_voucher(voucher);
        }
        if let Some(voucher) = redemption(PREFETCH_AHEAD) {
            self.prefetch_enterprise_of(voucher);
        }
    }

    pub(crate) fn existing_voucher(
        &self,
        voucher: &VoucherId,
    ) -> Result<&super::state::Voucher, Rejection> {
        self.voucher(voucher).ok_or_else(|| {
            Rejection::new(
                RejectionCode::VoucherNotFound,
                format!("voucher {voucher} does not exist"),
            )
        })
    }
}
