//! The state machine: decides whether a command is accepted and which events it causes,
//! then applies them. Pure and synchronous: no I/O, no clock, no randomness; the same
//! envelopes in the same order give the same events, byte for byte.
//!
//! `decide_*` functions only read the state; `execute` applies the decided events with
//! dense sequence numbers, so a later command in the same batch sees an earlier one.

use super::command::{ApproveVoucher, CenterStatus, Command, Envelope, ListingBasis, PostInvoice};
use super::event::{Event, InvoiceRedeemed, InvoiceReversed, ReleaseCause, VoucherApproved};
use super::ids::{
    Date, InvoiceNumber, LegalName, ProgrammeYear, Reason, SettlementId, Timestamp, Uscc, VoucherId,
};
use super::money::Money;
use super::policy::{FacilityTier, ProgrammePolicy};
use super::rejection::{Rejection, RejectionCode};
use super::state::{InvoiceEntry, InvoiceLookup, LedgerState, VoucherStatus};

pub use crate::limits::EXPIRY_BATCH_LIMIT;

/// An event with its place in the log and the time of the command that caused it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SequencedEvent {
    pub sequence: u64,
    pub at: Timestamp,
    pub event: Event,
}

/// The answer to an accepted command: what happened, typed per command, with the
/// sequence number of the (last) event it appended.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reply {
    PolicyPublished {
        sequence: u64,
    },
    CenterRegistered {
        sequence: u64,
    },
    CenterStatusChanged {
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
    /// An invoice was redeemed (or, with `duplicate`, had been redeemed before with the
    /// same content, and nothing changed).
    InvoiceOutcome(InvoiceOutcome),
    InvoiceReversed(ReversalOutcome),
    CenterSettled(SettlementOutcome),
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InvoiceOutcome {
    pub subsidy: Money,
    /// Sequence of the `InvoiceRedeemed` event (the original one for a duplicate).
    pub sequence: u64,
    pub duplicate: bool,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReversalOutcome {
    pub subsidy: Money,
    /// The subsidy had been settled: the center owes it back.
    pub clawback: bool,
    /// The voucher was active and took the subsidy back as face value.
    pub returned_to_voucher: bool,
    pub sequence: u64,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SettlementOutcome {
    pub redeemed: Money,
    pub clawback_offset: Money,
    pub paid: Money,
    pub sequence: u64,
}

impl Reply {
    /// The sequence of the last event the command appended (for a duplicate invoice, the
    /// original event; for an empty expiry sweep, the sequence before it).
    pub fn last_sequence(&self) -> u64 {
        match self {
            Reply::PolicyPublished { sequence }
            | Reply::CenterRegistered { sequence }
            | Reply::CenterStatusChanged { sequence }
            | Reply::EnterpriseRegistered { sequence }
            | Reply::CapOverrideGranted { sequence }
            | Reply::RelatedPartyDeclared { sequence }
            | Reply::VoucherApproved { sequence, .. }
            | Reply::VoucherCancelled { sequence, .. } => *sequence,
            Reply::VouchersExpired { last_sequence, .. } => *last_sequence,
            Reply::InvoiceOutcome(outcome) => outcome.sequence,
            Reply::InvoiceReversed(outcome) => outcome.sequence,
            Reply::CenterSettled(outcome) => outcome.sequence,
        }
    }
}

fn reject<T>(code: RejectionCode, detail: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::new(code, detail))
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
        let first_new = sink.len();
        let at = envelope.at;
        let reply = match &envelope.command {
            Command::PostInvoice(post) => match self.decide_post_invoice(post)? {
                InvoiceDecision::Duplicate(outcome) => Reply::InvoiceOutcome(outcome),
                InvoiceDecision::Redeem(redeemed) => {
                    let subsidy = redeemed.subsidy;
                    let sequence = self.push(at, Event::InvoiceRedeemed(redeemed), sink);
                    Reply::InvoiceOutcome(InvoiceOutcome {
                        subsidy,
                        sequence,
                        duplicate: false,
                    })
                }
            },
            Command::ApproveVoucher(approve) => {
                let approved = self.decide_approve(approve)?;
                let (voucher, face_value) = (approved.voucher, approved.face_value);
                let sequence = self.push(at, Event::VoucherApproved(Box::new(approved)), sink);
                Reply::VoucherApproved {
                    voucher,
                    face_value,
                    sequence,
                }
            }
            Command::CancelVoucher { voucher, reason } => {
                let event = self.decide_cancel(voucher, reason)?;
                let released = match &event {
                    Event::VoucherReleased { released, .. } => *released,
                    _ => Money::ZERO,
                };
                let sequence = self.push(at, event, sink);
                Reply::VoucherCancelled { released, sequence }
            }
            Command::ExpireVouchers { as_of } => {
                let events = self.decide_expiry(*as_of);
                let mut released = Money::ZERO;
                let released_vouchers = events.len() as u32;
                for event in events {
                    if let Event::VoucherReleased {
                        released: amount, ..
                    } = &event
                    {
                        released = released.plus(*amount);
                    }
                    self.push(at, event, sink);
                }
                Reply::VouchersExpired {
                    released_vouchers,
                    released,
                    last_sequence: self.last_sequence,
                }
            }
            Command::ReverseInvoice {
                center,
                invoice_number,
                reason,
            } => {
                let reversed = self.decide_reversal(center, invoice_number, reason)?;
                let (subsidy, clawback, returned_to_voucher) = (
                    reversed.subsidy,
                    reversed.clawback,
                    reversed.returned_to_voucher,
                );
                let sequence = self.push(at, Event::InvoiceReversed(reversed), sink);
                Reply::InvoiceReversed(ReversalOutcome {
                    subsidy,
                    clawback,
                    returned_to_voucher,
                    sequence,
                })
            }
            Command::SettleCenter {
                center,
                settlement_id,
            } => {
                let (redeemed, clawback_offset, paid) =
                    self.decide_settlement(center, settlement_id)?;
                let event = Event::CenterSettled {
                    center: *center,
                    settlement_id: *settlement_id,
                    redeemed,
                    clawback_offset,
                    paid,
                };
                let sequence = self.push(at, event, sink);
                Reply::CenterSettled(SettlementOutcome {
                    redeemed,
                    clawback_offset,
                    paid,
                    sequence,
                })
            }
            Command::PublishPolicy { policy } => {
                let event = self.decide_publish_policy(policy)?;
                let sequence = self.push(at, event, sink);
                Reply::PolicyPublished { sequence }
            }
            Command::RegisterCenter {
                center,
                name,
                tier,
                listing_basis,
            } => {
                let event = self.decide_register_center(center, name, *tier, *listing_basis)?;
                let sequence = self.push(at, event, sink);
                Reply::CenterRegistered { sequence }
            }
            Command::SetCenterStatus {
                center,
                status,
                reason,
            } => {
                let event = self.decide_center_status(center, *status, reason)?;
                let sequence = self.push(at, event, sink);
                Reply::CenterStatusChanged { sequence }
            }
            Command::RegisterEnterprise { enterprise, name } => {
                let event = self.decide_register_enterprise(enterprise, name)?;
                let sequence = self.push(at, event, sink);
                Reply::EnterpriseRegistered { sequence }
            }
            Command::GrantCapOverride {
                enterprise,
                year,
                cap,
                reason,
            } => {
                let event = self.decide_cap_override(enterprise, *year, *cap, reason)?;
                let sequence = self.push(at, event, sink);
                Reply::CapOverrideGranted { sequence }
            }
            Command::DeclareRelatedParty {
                enterprise,
                center,
                reason,
            } => {
                let event = self.decide_related_party(enterprise, center, reason)?;
                let sequence = self.push(at, event, sink);
                Reply::RelatedPartyDeclared { sequence }
            }
        };
        assert!(sink[first_new..]
            .windows(2)
            .all(|pair| pair[1].sequence == pair[0].sequence + 1));
        Ok(reply)
    }

    /// Applies `event` with the next sequence number, appends it to `sink`, and returns
    /// its sequence.
    fn push(&mut self, at: Timestamp, event: Event, sink: &mut Vec<SequencedEvent>) -> u64 {
        let sequence = self.last_sequence + 1;
        self.apply(sequence, at, &event);
        sink.push(SequencedEvent {
            sequence,
            at,
            event,
        });
        sequence
    }

    fn decide_publish_policy(&self, policy: &ProgrammePolicy) -> Result<Event, Rejection> {
        if self.policies.contains_key(&policy.year()) {
            return reject(
                RejectionCode::PolicyAlreadyPublished,
                format!(
                    "the policy for {} is published and immutable",
                    policy.year()
                ),
            );
        }
        Ok(Event::PolicyPublished {
            policy: Box::new(policy.clone()),
        })
    }

    fn decide_register_center(
        &self,
        center: &Uscc,
        name: &LegalName,
        tier: FacilityTier,
        listing_basis: ListingBasis,
    ) -> Result<Event, Rejection> {
        if self.centers.contains_key(center) {
            return reject(
                RejectionCode::CenterAlreadyRegistered,
                format!("center {center} is already registered"),
            );
        }
        Ok(Event::CenterRegistered {
            center: *center,
            name: name.clone(),
            tier,
            listing_basis,
        })
    }

    fn decide_center_status(
        &self,
        center: &Uscc,
        status: CenterStatus,
        reason: &Reason,
    ) -> Result<Event, Rejection> {
        let account = self.existing_center(center)?;
        if account.status == CenterStatus::Delisted {
            return reject(
                RejectionCode::CenterDelisted,
                format!("center {center} is delisted; delisting is final"),
            );
        }
        if account.status == status {
            return reject(
                RejectionCode::CenterStatusUnchanged,
                format!("center {center} is already {}", status.name()),
            );
        }
        Ok(Event::CenterStatusChanged {
            center: *center,
            from: account.status,
            to: status,
            reason: reason.clone(),
        })
    }

    fn decide_register_enterprise(
        &self,
        enterprise: &Uscc,
        name: &LegalName,
    ) -> Result<Event, Rejection> {
        if self.enterprises.contains_key(enterprise) {
            return reject(
                RejectionCode::EnterpriseAlreadyRegistered,
                format!("enterprise {enterprise} is already registered"),
            );
        }
        Ok(Event::EnterpriseRegistered {
            enterprise: *enterprise,
            name: name.clone(),
        })
    }

    fn decide_cap_override(
        &self,
        enterprise: &Uscc,
        year: ProgrammeYear,
        cap: Money,
        reason: &Reason,
    ) -> Result<Event, Rejection> {
        self.existing_policy(year)?;
        self.existing_enterprise(enterprise)?;
        let used = self.enterprise_usage(enterprise, year).used();
        if cap < used {
            return reject(
                RejectionCode::CapOverrideBelowUsage,
                format!(
                    "cap {cap} for {enterprise} in {year} is below its held and redeemed {used}"
                ),
            );
        }
        Ok(Event::CapOverrideGranted {
            enterprise: *enterprise,
            year,
            cap,
            reason: reason.clone(),
        })
    }

    fn decide_related_party(
        &self,
        enterprise: &Uscc,
        center: &Uscc,
        reason: &Reason,
    ) -> Result<Event, Rejection> {
        self.existing_enterprise(enterprise)?;
        self.existing_center(center)?;
        if self.are_related(enterprise, center) {
            return reject(
                RejectionCode::RelatedPartyAlreadyDeclared,
                format!("{enterprise} and {center} are already declared related"),
            );
        }
        Ok(Event::RelatedPartyDeclared {
            enterprise: *enterprise,
            center: *center,
            reason: reason.clone(),
        })
    }

    fn decide_cancel(&self, voucher: &VoucherId, reason: &Reason) -> Result<Event, Rejection> {
        let existing = self.existing_voucher(voucher)?;
        if existing.status != VoucherStatus::Active {
            return reject(
                RejectionCode::VoucherNotActive,
                format!("voucher {voucher} is {}", existing.status.name()),
            );
        }
        Ok(Event::VoucherReleased {
            voucher: *voucher,
            cause: ReleaseCause::Cancelled,
            released: existing.remaining,
            reason: Some(reason.clone()),
        })
    }

    fn decide_approve(&self, approve: &ApproveVoucher) -> Result<VoucherApproved, Rejection> {
        let policy = self.existing_policy(approve.year)?;
        if self.vouchers.contains_key(&approve.voucher) {
            return reject(
                RejectionCode::VoucherAlreadyExists,
                format!("voucher {} exists already", approve.voucher),
            );
        }
        self.existing_enterprise(&approve.enterprise)?;
        let center = self.active_center(&approve.center)?;
        if self.are_related(&approve.enterprise, &approve.center) {
            return reject(
                RejectionCode::RelatedParty,
                format!(
                    "enterprise {} and center {} are declared related parties",
                    approve.enterprise, approve.center
                ),
            );
        }
        if let Some(existing) = self.voucher_for_contract(&approve.center, &approve.contract_number)
        {
            return reject(
                RejectionCode::ContractAlreadyHasVoucher,
                format!(
                    "contract {} with center {} already has voucher {existing}",
                    approve.contract_number, approve.center
                ),
            );
        }
        if approve.term_end < approve.term_start
            || approve.term_end >= approve.term_start.plus_one_year()
        {
            return reject(
                RejectionCode::ContractTermInvalid,
                format!(
                    "term {}..{} must end on or after its start and last at most one year",
                    approve.term_start, approve.term_end
                ),
            );
        }
        let rate = policy.rate_for(center.tier);
        let most = approve.contract_fee.times_rate_floor(rate);
        let face_value = approve.requested.min(most);
        if face_value.is_zero() {
            return reject(
                RejectionCode::FaceValueZero,
                format!(
                    "face value is zero: requested {}, {rate} x fee {} = {most}",
                    approve.requested, approve.contract_fee
                ),
            );
        }
        let cap = self
            .enterprise_cap(&approve.enterprise, approve.year)
            .unwrap_or(Money::ZERO);
        let enterprise_free = self
            .enterprise_usage(&approve.enterprise, approve.year)
            .free_under(cap);
        if face_value > enterprise_free {
            return reject(
                RejectionCode::EnterpriseCapExceeded,
                format!(
                    "face value {face_value} exceeds what enterprise {} has left of its {} cap {cap}: {enterprise_free}",
                    approve.enterprise, approve.year
                ),
            );
        }
        let pool_free = self
            .pool_usage(approve.year)
            .free_under(policy.annual_pool());
        if face_value > pool_free {
            return reject(
                RejectionCode::PoolExhausted,
                format!(
                    "face value {face_value} exceeds what is left of the {} pool: {pool_free}",
                    approve.year
                ),
            );
        }
        Ok(VoucherApproved {
            voucher: approve.voucher,
            year: approve.year,
            enterprise: approve.enterprise,
            center: approve.center,
            contract_number: approve.contract_number.clone(),
            contract_fee: approve.contract_fee,
            term_start: approve.term_start,
            term_end: approve.term_end,
            tier: center.tier,
            rate,
            ceiling: policy.contract_fee_ceiling(),
            requested: approve.requested,
            face_value,
        })
    }

    fn decide_post_invoice(&self, post: &PostInvoice) -> Result<InvoiceDecision, Rejection> {
        let center = self.existing_center(&post.center)?;
        // A retry must get the original answer even if the center has since been
        // suspended, so duplicates are recognised before any other rule.
        if let Some(entry) = self.prefetched_invoice(&post.center, &post.invoice_number) {
            let same = entry.voucher == post.voucher
                && entry.amount == post.amount
                && entry.issue_date == post.issue_date
                && entry.delivery_proof == post.delivery_proof;
            if !same {
                return reject(
                    RejectionCode::InvoiceConflict,
                    format!(
                        "invoice {} of center {} was posted before with other content (event {})",
                        post.invoice_number, post.center, entry.sequence
                    ),
                );
            }
            return Ok(InvoiceDecision::Duplicate(InvoiceOutcome {
                subsidy: entry.subsidy,
                sequence: entry.sequence,
                duplicate: true,
            }));
        }
        if center.status != CenterStatus::Active {
            return reject(
                RejectionCode::CenterNotActive,
                format!("center {} is {}", post.center, center.status.name()),
            );
        }
        let voucher = self.existing_voucher(&post.voucher)?;
        let terms = &voucher.terms;
        if terms.center != post.center {
            return reject(
                RejectionCode::VoucherCenterMismatch,
                format!(
                    "voucher {} belongs to center {}, not {}",
                    post.voucher, terms.center, post.center
                ),
            );
        }
        if voucher.status != VoucherStatus::Active {
            return reject(
                RejectionCode::VoucherNotActive,
                format!("voucher {} is {}", post.voucher, voucher.status.name()),
            );
        }
        if post.issue_date < terms.term_start || post.issue_date > terms.term_end {
            return reject(
                RejectionCode::InvoiceDateOutsideTerm,
                format!(
                    "issue date {} is outside the contract term {}..{}",
                    post.issue_date, terms.term_start, terms.term_end
                ),
            );
        }
        let invoiced = voucher.invoiced_total.plus(post.amount);
        if invoiced > terms.contract_fee {
            return reject(
                RejectionCode::ContractFeeExceeded,
                format!(
                    "invoiced total would be {invoiced}, above the contract fee {}",
                    terms.contract_fee
                ),
            );
        }
        if voucher.remaining.is_zero() {
            return reject(
                RejectionCode::VoucherExhausted,
                format!("voucher {} has no face value left", post.voucher),
            );
        }
        let subsidy = post
            .amount
            .times_rate_floor(terms.rate)
            .min(voucher.remaining);
        let subsidy_total = voucher.subsidy_total.plus(subsidy);
        if subsidy_total.as_decimal() > terms.contract_fee.as_decimal() * terms.ceiling.as_decimal()
        {
            return reject(
                RejectionCode::ContractCeilingExceeded,
                format!(
                    "subsidy total would be {subsidy_total}, above {} x contract fee {}",
                    terms.ceiling, terms.contract_fee
                ),
            );
        }
        Ok(InvoiceDecision::Redeem(InvoiceRedeemed {
            voucher: post.voucher,
            center: post.center,
            invoice_number: post.invoice_number.clone(),
            amount: post.amount,
            issue_date: post.issue_date,
            delivery_proof: post.delivery_proof.clone(),
            subsidy,
        }))
    }

    fn decide_reversal(
        &self,
        center: &Uscc,
        invoice_number: &InvoiceNumber,
        reason: &Reason,
    ) -> Result<InvoiceReversed, Rejection> {
        let account = self.existing_center(center)?;
        let Some(entry) = self.prefetched_invoice(center, invoice_number) else {
            return reject(
                RejectionCode::InvoiceNotFound,
                format!("center {center} has no invoice {invoice_number}"),
            );
        };
        if entry.reversed {
            return reject(
                RejectionCode::InvoiceAlreadyReversed,
                format!("invoice {invoice_number} of center {center} is already reversed"),
            );
        }
        let voucher_active = self
            .voucher(&entry.voucher)
            .is_some_and(|voucher| voucher.status == VoucherStatus::Active);
        Ok(InvoiceReversed {
            voucher: entry.voucher,
            center: *center,
            invoice_number: invoice_number.clone(),
            amount: entry.amount,
            subsidy: entry.subsidy,
            clawback: entry.settlement_epoch < account.settlement_epoch,
            returned_to_voucher: voucher_active,
            reason: reason.clone(),
        })
    }

    fn decide_expiry(&self, as_of: Date) -> Vec<Event> {
        self.active_by_term_end
            .iter()
            .take_while(|(term_end, _)| *term_end < as_of)
            .take(EXPIRY_BATCH_LIMIT)
            .filter_map(|(_, voucher_id)| {
                let voucher = self.vouchers.get(voucher_id)?;
                Some(Event::VoucherReleased {
                    voucher: *voucher_id,
                    cause: ReleaseCause::Expired,
                    released: voucher.remaining,
                    reason: None,
                })
            })
            .collect()
    }

    fn decide_settlement(
        &self,
        center: &Uscc,
        settlement_id: &SettlementId,
    ) -> Result<(Money, Money, Money), Rejection> {
        let account = self.existing_center(center)?;
        if self.settlement_recorded(settlement_id) {
            return reject(
                RejectionCode::SettlementAlreadyRecorded,
                format!("settlement {settlement_id} is already recorded"),
            );
        }
        if account.unsettled.is_zero() && account.clawback_owed.is_zero() {
            return reject(
                RejectionCode::NothingToSettle,
                format!("center {center} has nothing unsettled and no clawback owed"),
            );
        }
        let clawback_offset = account.clawback_owed.min(account.unsettled);
        Ok((
            account.unsettled,
            clawback_offset,
            account.unsettled.saturating_minus(clawback_offset),
        ))
    }

    // ------------------------------------------------------------- lookups that reject

    /// The invoice the command names, from the invoice cache. The ledger promises that
    /// every invoice a batch names was prefetched; deciding "new" on a key it forgot
    /// would pay a subsidy twice, so a broken promise stops the writer instead.
    fn prefetched_invoice(&self, center: &Uscc, number: &InvoiceNumber) -> Option<&InvoiceEntry> {
        match self.invoice_cache.lookup(center, number) {
            InvoiceLookup::Found(entry) => Some(entry),
            InvoiceLookup::Absent => None,
            InvoiceLookup::NotPrefetched => panic!(
                "invoice {number} of center {center} was not prefetched before the batch was decided"
            ),
        }
    }

    fn existing_policy(
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

    fn existing_center(&self, center: &Uscc) -> Result<&super::state::CenterAccount, Rejection> {
        self.center(center).ok_or_else(|| {
            Rejection::new(
                RejectionCode::CenterNotFound,
                format!("center {center} is not registered"),
            )
        })
    }

    fn active_center(&self, center: &Uscc) -> Result<&super::state::CenterAccount, Rejection> {
        let account = self.existing_center(center)?;
        if account.status != CenterStatus::Active {
            return reject(
                RejectionCode::CenterNotActive,
                format!("center {center} is {}", account.status.name()),
            );
        }
        Ok(account)
    }

    fn existing_enterprise(
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

    fn existing_voucher(&self, voucher: &VoucherId) -> Result<&super::state::Voucher, Rejection> {
        self.voucher(voucher).ok_or_else(|| {
            Rejection::new(
                RejectionCode::VoucherNotFound,
                format!("voucher {voucher} does not exist"),
            )
        })
    }
}

enum InvoiceDecision {
    Duplicate(InvoiceOutcome),
    Redeem(InvoiceRedeemed),
}
