//! The one population generator. Every synthetic policy, center, enterprise, voucher and
//! invoice that the demo, the load generator, the recovery benchmark, the crash test's
//! writer, the criterion benches and the integration tests' fixtures use is made here.
//!
//! Why one: the codes, names and numbering then agree everywhere (the tests' "center 1"
//! is the load generator's and the demo's), and a change to what a registration needs is
//! made once. Everything is deterministic: the same arguments and seed give the same
//! commands, which the demo's pinned chain head relies on.
//!
//! What is here, and what is not:
//! - identifiers: [`center_uscc`], [`enterprise_uscc`] (valid GB 32100-2015 codes);
//! - registrations: [`CenterEntry`], [`EnterpriseEntry`], named and tiered by a [`Style`],
//!   and the policies the tools publish;
//! - [`Population`]: a policy, its registrations and its vouchers, as commands;
//! - invoice streams: [`InvoiceStream`] (fresh invoices spread evenly over a population's
//!   vouchers, for benchmarks) and [`DemoYear`] (the demo's contracts and invoices, drawn
//!   from a seed with the variety of a real programme year).
//!
//! Nothing here submits or sends anything: the demo ([`super::demo`]) drives its story
//! through a ledger, [`super::load`] sends over gRPC, [`super::recovery`] and
//! [`super::torture`] write through the library.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::domain::programme::{CenterCapacity, Declarations, EnterpriseClass, Payee};
use crate::domain::{
    ApproveVoucher, Command, ContractNumber, Date, DeliveryProof, Event, FacilityTier,
    InvoiceNumber, LegalName, ListingBasis, Money, PaymentProof, PostInvoice, ProgrammePolicy,
    ProgrammeYear, Rate, Uscc, ValidationError, VoucherId,
};

// ---------------------------------------------------------------------- identifiers

/// The first ten characters of every generated center's USCC (Hangzhou, a company).
pub const CENTER_PREFIX: &str = "91330100MA";
/// The first ten characters of every generated enterprise's USCC.
pub const ENTERPRISE_PREFIX: &str = "91330106MA";

/// A valid USCC made of a 10-character `prefix` and `number` in base 31 (7 characters),
/// followed by its check character.
pub fn uscc(prefix: &str, number: u64) -> Result<Uscc, ValidationError> {
    const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let mut digits = [b'0'; 7];
    let mut rest = number;
    for digit in digits.iter_mut().rev() {
        *digit = ALPHABET[(rest % 31) as usize];
        rest /= 31;
    }
    let mut body = String::from(prefix);
    body.extend(digits.iter().map(|&digit| char::from(digit)));
    Uscc::from_body(&body)
}

/// The USCC of generated center `index`.
pub fn center_uscc(index: usize) -> Result<Uscc, ValidationError> {
    uscc(CENTER_PREFIX, index as u64)
}

/// The USCC of generated enterprise `index`.
pub fn enterprise_uscc(index: usize) -> Result<Uscc, ValidationError> {
    uscc(ENTERPRISE_PREFIX, index as u64)
}

// -------------------------------------------------------------------- registrations

/// A computing center to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CenterEntry {
    pub center: Uscc,
    pub name: LegalName,
    pub tier: FacilityTier,
    pub listing_basis: ListingBasis,
    /// Capacity figures (none in every style; a programme with thresholds sets them).
    pub capacity: CenterCapacity,
}

impl CenterEntry {
    /// The `RegisterCenter` command.
    pub fn command(&self) -> Command {
        Command::RegisterCenter {
            center: self.center,
            name: self.name.clone(),
            tier: self.tier,
            listing_basis: self.listing_basis,
            capacity: self.capacity,
        }
    }

    /// The event the registration records, for fixtures that start from a log.
    pub fn registered(&self) -> Event {
        Event::CenterRegistered {
            center: self.center,
            name: self.name.clone(),
            tier: self.tier,
            listing_basis: self.listing_basis,
            capacity: self.capacity,
        }
    }
}

/// An enterprise to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnterpriseEntry {
    pub enterprise: Uscc,
    pub name: LegalName,
}

impl EnterpriseEntry {
    /// The `RegisterEnterprise` command.
    pub fn command(&self) -> Command {
        Command::RegisterEnterprise {
            enterprise: self.enterprise,
            name: self.name.clone(),
        }
    }

    /// The event the registration records, for fixtures that start from a log.
    pub fn registered(&self) -> Event {
        Event::EnterpriseRegistered {
            enterprise: self.enterprise,
            name: self.name.clone(),
        }
    }
}

/// How generated centers and enterprises are named, tiered and listed. The codes are the
/// same in every style: center `n` is [`center_uscc`]`(n)` whatever it is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// "Center 3" and "Enterprise 3"; every center domestic and in the planning layout.
    /// The tests' fixtures (which change a center's tier where a rule needs it) and the
    /// crash test's writer.
    Plain,
    /// "Bench Center 3" and "Bench Enterprise 3"; the three tiers in turn, every center in
    /// the planning layout. Benchmarks and the load generator.
    Bench,
    /// The demo's Hangzhou: full legal names; of every ten centers three are domestic, two
    /// MaaS-multimodal platforms and five other; every third is a matchmaking partner.
    Hangzhou,
}

impl Style {
    /// Center `index` in this style.
    pub fn center(self, index: usize) -> Result<CenterEntry, ValidationError> {
        let (name, tier, listing_basis) = match self {
            Style::Plain => (
                format!("Center {index}"),
                FacilityTier::Domestic,
                ListingBasis::PlanningLayout,
            ),
            Style::Bench => (
                format!("Bench Center {index}"),
                FacilityTier::ALL[index % FacilityTier::ALL.len()],
                ListingBasis::PlanningLayout,
            ),
            Style::Hangzhou => (
                format!("Hangzhou Intelligent Computing Center {index:02}"),
                match index % 10 {
                    0..=2 => FacilityTier::Domestic,
                    3 | 4 => FacilityTier::MaasMultimodal,
                    _ => FacilityTier::Other,
                },
                if index % 3 == 2 {
                    ListingBasis::MatchmakingPartner
                } else {
                    ListingBasis::PlanningLayout
                },
            ),
        };
        Ok(CenterEntry {
            center: center_uscc(index)?,
            name: LegalName::parse(&name)?,
            tier,
            listing_basis,
            capacity: CenterCapacity::default(),
        })
    }

    /// Enterprise `index` in this style.
    pub fn enterprise(self, index: usize) -> Result<EnterpriseEntry, ValidationError> {
        let name = match self {
            Style::Plain => format!("Enterprise {index}"),
            Style::Bench => format!("Bench Enterprise {index}"),
            Style::Hangzhou => format!("Zhejiang AI Enterprise {index:04} Co., Ltd."),
        };
        Ok(EnterpriseEntry {
            enterprise: enterprise_uscc(index)?,
            name: LegalName::parse(&name)?,
        })
    }
}

/// The Hangzhou policy for `year` with another pool; the enterprise cap is lowered to the
/// pool where it would be above it.
pub fn policy_with_pool(
    year: ProgrammeYear,
    pool: Money,
) -> Result<ProgrammePolicy, ValidationError> {
    let defaults = ProgrammePolicy::hangzhou_defaults(year);
    ProgrammePolicy::new(
        year,
        pool,
        defaults.default_enterprise_cap().min(pool),
        defaults.contract_fee_ceiling(),
        FacilityTier::ALL.map(|tier| defaults.rate_for(tier)),
    )
}

/// A policy that no benchmark exhausts (pool 9,000,000,000,000.00, cap
/// 100,000,000,000.00; rates 30%, 30%, 20%): the work measured is a redemption that passes
/// every check, the expensive path.
pub fn inexhaustible_policy(year: ProgrammeYear) -> Result<ProgrammePolicy, ValidationError> {
    let defaults = ProgrammePolicy::hangzhou_defaults(year);
    ProgrammePolicy::new(
        year,
        Money::from_fen(900_000_000_000_000)?,
        Money::from_fen(10_000_000_000_000)?,
        defaults.contract_fee_ceiling(),
        [
            Rate::basis_points_const(3000),
            Rate::basis_points_const(3000),
            Rate::basis_points_const(2000),
        ],
    )
}

// ----------------------------------------------------------------------- population

/// A policy, the centers and enterprises it registers, and the vouchers it approves.
#[derive(Clone, Debug)]
pub struct Population {
    pub policy: ProgrammePolicy,
    pub centers: Vec<CenterEntry>,
    pub enterprises: Vec<EnterpriseEntry>,
    pub vouchers: Vec<ApproveVoucher>,
}

impl Population {
    /// `policy`, and the centers and enterprises of the given indices in `style`; no
    /// vouchers yet.
    pub fn registered(
        policy: ProgrammePolicy,
        style: Style,
        centers: impl IntoIterator<Item = usize>,
        enterprises: impl IntoIterator<Item = usize>,
    ) -> Result<Population, ValidationError> {
        Ok(Population {
            policy,
            centers: centers
                .into_iter()
                .map(|index| style.center(index))
                .collect::<Result<_, _>>()?,
            enterprises: enterprises
                .into_iter()
                .map(|index| style.enterprise(index))
                .collect::<Result<_, _>>()?,
            vouchers: Vec::new(),
        })
    }

    /// The benchmarks' population: the [`inexhaustible_policy`] for 2026, `centers`
    /// centers and `enterprises` enterprises in the [`Style::Bench`] style (at least one
    /// of each) and `vouchers` vouchers (at least one) with terms from 2026-01-01.
    pub fn bench(
        centers: usize,
        enterprises: usize,
        vouchers: usize,
    ) -> Result<Population, ValidationError> {
        Self::bench_from(centers, enterprises, vouchers, Date::from_ymd(2026, 1, 1)?)
    }

    /// As [`Population::bench`], with contract terms starting on `term_start` (the load
    /// generator starts them a month before today, so no expiry sweep releases them).
    pub fn bench_from(
        centers: usize,
        enterprises: usize,
        vouchers: usize,
        term_start: Date,
    ) -> Result<Population, ValidationError> {
        let year = ProgrammeYear::new(2026)?;
        Population::registered(
            inexhaustible_policy(year)?,
            Style::Bench,
            0..centers.max(1),
            0..enterprises.max(1),
        )?
        .with_vouchers(vouchers.max(1), term_start)
    }

    /// Adds `count` vouchers large enough for millions of invoices: voucher `i` is
    /// enterprise `i`'s (round robin) with center `i`'s (round robin), contract fee
    /// 1,000,000,000.00 and 300,000,000.00 requested, for 364 days from `term_start`.
    pub fn with_vouchers(
        mut self,
        count: usize,
        term_start: Date,
    ) -> Result<Population, ValidationError> {
        if self.centers.is_empty() || self.enterprises.is_empty() {
            return Err(ValidationError::new(
                "population",
                format!(
                    "{} centers, {} enterprises",
                    self.centers.len(),
                    self.enterprises.len()
                ),
                "needs a center and an enterprise before it has vouchers",
            ));
        }
        let year = self.policy.year();
        let first = self.vouchers.len();
        for index in first..first + count {
            self.vouchers.push(ApproveVoucher {
                voucher: VoucherId::from_u128(0xBE4C_0000_0000 + index as u128 + 1),
                year,
                enterprise: self.enterprises[index % self.enterprises.len()].enterprise,
                center: self.centers[index % self.centers.len()].center,
                contract_number: ContractNumber::parse(&format!("BENCH-{index}"))?,
                contract_fee: Money::from_fen(100_000_000_000)?,
                term_start,
                term_end: term_start.plus_days(364),
                requested: Money::from_fen(30_000_000_000)?,
                enterprise_class: EnterpriseClass::Standard,
                declarations: Declarations::NONE,
            });
        }
        Ok(self)
    }

    pub fn year(&self) -> ProgrammeYear {
        self.policy.year()
    }

    pub fn center_codes(&self) -> Vec<Uscc> {
        self.centers.iter().map(|entry| entry.center).collect()
    }

    pub fn enterprise_codes(&self) -> Vec<Uscc> {
        self.enterprises
            .iter()
            .map(|entry| entry.enterprise)
            .collect()
    }

    /// `PublishPolicy`, then every center, then every enterprise.
    pub fn registration_commands(&self) -> Vec<Command> {
        let mut commands = Vec::with_capacity(1 + self.centers.len() + self.enterprises.len());
        commands.push(Command::PublishPolicy {
            policy: self.policy.clone(),
        });
        commands.extend(self.centers.iter().map(CenterEntry::command));
        commands.extend(self.enterprises.iter().map(EnterpriseEntry::command));
        commands
    }

    /// One `ApproveVoucher` per voucher.
    pub fn voucher_commands(&self) -> Vec<Command> {
        self.vouchers
            .iter()
            .cloned()
            .map(Command::ApproveVoucher)
            .collect()
    }

    /// Everything, in the order a ledger accepts it: registrations, then vouchers.
    pub fn commands(&self) -> Vec<Command> {
        let mut commands = self.registration_commands();
        commands.extend(self.voucher_commands());
        commands
    }
}

// ------------------------------------------------------------------- invoice streams

/// An endless stream of fresh invoices spread evenly over a population's vouchers,
/// numbered `B000000000001`, ... from `start`; amounts 10.00 to 9,999.99, each issued 30
/// days into its voucher's term. Every one passes every rule while its voucher lasts.
pub struct InvoiceStream {
    population: Population,
    rng: SmallRng,
    next: u64,
    proof: DeliveryProof,
}

impl InvoiceStream {
    pub fn new(
        population: Population,
        seed: u64,
        start: u64,
    ) -> Result<InvoiceStream, ValidationError> {
        if population.vouchers.is_empty() {
            return Err(ValidationError::new(
                "population",
                "0 vouchers",
                "has no voucher to invoice against",
            ));
        }
        Ok(InvoiceStream {
            population,
            rng: SmallRng::seed_from_u64(seed),
            next: start,
            proof: DeliveryProof::parse(BENCH_DELIVERY_PROOF)?,
        })
    }

    /// The next invoice as drawn: which voucher, which number, how much. The load
    /// generator formats a draw straight into its wire form ([`InvoiceStream::next_invoice`]
    /// builds the same invoice from it).
    pub fn next_draw(&mut self) -> InvoiceDraw {
        let voucher = self.rng.random_range(0..self.population.vouchers.len());
        let number = self.next;
        self.next += 1;
        InvoiceDraw {
            voucher,
            number,
            amount_fen: self.rng.random_range(1_000..1_000_000),
        }
    }

    pub fn next_invoice(&mut self) -> Result<PostInvoice, ValidationError> {
        let draw = self.next_draw();
        let voucher = &self.population.vouchers[draw.voucher];
        let number = draw.number;
        Ok(PostInvoice {
            center: voucher.center,
            voucher: voucher.voucher,
            invoice_number: InvoiceNumber::parse(&format!("B{number:012}"))?,
            amount: Money::from_fen(draw.amount_fen)?,
            issue_date: InvoiceStream::issue_date(voucher),
            delivery_proof: self.proof.clone(),
            payment_proof: match self.population.policy.rules().payee {
                Payee::Center => None,
                Payee::Enterprise => Some(PaymentProof::parse(&format!("PV{number:012}"))?),
            },
        })
    }

    pub fn population(&self) -> &Population {
        &self.population
    }

    /// The issue date of every invoice drawn on `voucher`.
    pub fn issue_date(voucher: &ApproveVoucher) -> Date {
        voucher.term_start.plus_days(30)
    }
}

/// The delivery proof every benchmark invoice names.
pub const BENCH_DELIVERY_PROOF: &str = "bench/usage-report";

/// One drawn invoice: the index of its voucher in the population, its number (printed
/// `B` and 12 digits) and its amount in fen.
#[derive(Clone, Copy, Debug)]
pub struct InvoiceDraw {
    pub voucher: usize,
    pub number: u64,
    pub amount_fen: i64,
}

/// A contract the demo applies for, as drawn, with what its invoices are drawn from.
#[derive(Clone, Debug)]
pub struct ContractPlan {
    pub approve: ApproveVoucher,
    /// The index of the contract's center in the population.
    pub center_index: usize,
    /// The contract fee in fen (invoice amounts are drawn as a share of it).
    pub fee_fen: i64,
}

/// What is wrong with a drawn invoice, on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvoiceFlaws {
    /// Posted by the next center instead of the voucher's (`CENTER_MISMATCH`).
    pub wrong_center: bool,
    /// Issued three days after the contract term (`INVOICE_OUTSIDE_TERM`).
    pub after_term: bool,
    /// Posted without the enterprise's proof of payment in a reimbursement year
    /// (`PAYMENT_PROOF_MISSING`); a center-payee year never has one to leave out.
    pub no_payment_proof: bool,
}

/// The demo's programme year: Hangzhou's registrations under the default policy, its
/// multimodal-model builders (one enterprise in 500, at least one), its related parties
/// (one enterprise in 250, at least one, each tied to a center), and the contracts and
/// invoices of the year, drawn from the caller's seeded random source.
#[derive(Clone, Debug)]
pub struct DemoYear {
    pub population: Population,
    seed: u64,
    year_start: Date,
    builders: usize,
    related: usize,
    invoices_per_center: Vec<u64>,
}

impl DemoYear {
    /// At least one center and one enterprise; `seed` numbers the vouchers. The
    /// Hangzhou 2024 rules (today's default policy) for `year`.
    pub fn new(
        seed: u64,
        year: u32,
        centers: usize,
        enterprises: usize,
    ) -> Result<DemoYear, ValidationError> {
        let policy = ProgrammePolicy::hangzhou_defaults(ProgrammeYear::new(year)?);
        DemoYear::with_policy(seed, policy, centers, enterprises)
    }

    /// As [`DemoYear::new`], under `policy` (a programme preset). Where the policy has
    /// rules beyond Hangzhou 2024's, the population gives them something to decide:
    /// capacity thresholds get centers registered with figures (of every four: well
    /// above, exactly at the PFLOPS threshold, exactly at the racks threshold, below);
    /// a small-enterprise rate gets every second enterprise classed small or medium;
    /// required declarations are made on every application but one in 200. Under
    /// Hangzhou 2024 rules nothing changes, so the demo's log stays what it was.
    pub fn with_policy(
        seed: u64,
        policy: ProgrammePolicy,
        centers: usize,
        enterprises: usize,
    ) -> Result<DemoYear, ValidationError> {
        if centers == 0 || enterprises == 0 {
            return Err(ValidationError::new(
                "population",
                format!("{centers} centers, {enterprises} enterprises"),
                "the demo needs at least one of each",
            ));
        }
        let programme_year = policy.year();
        let year_start = Date::from_ymd(programme_year.get() as i32, 1, 1)?;
        let mut population =
            Population::registered(policy, Style::Hangzhou, 0..centers, 0..enterprises)?;
        if let Some(eligibility) = population.policy.rules().eligibility {
            for (index, center) in population.centers.iter_mut().enumerate() {
                let pflops = eligibility.min_intelligent_pflops.unwrap_or(100);
                let racks = eligibility.min_racks.unwrap_or(1_000);
                center.capacity = match index % 4 {
                    0 => CenterCapacity {
                        intelligent_pflops: Some(pflops * 3),
                        racks: Some(racks * 2),
                    },
                    1 => CenterCapacity {
                        intelligent_pflops: Some(pflops),
                        racks: None,
                    },
                    2 => CenterCapacity {
                        intelligent_pflops: None,
                        racks: Some(racks),
                    },
                    _ => CenterCapacity {
                        intelligent_pflops: Some(pflops.saturating_sub(1)),
                        racks: Some(racks.saturating_sub(1)),
                    },
                };
            }
        }
        Ok(DemoYear {
            population,
            seed,
            year_start,
            builders: (enterprises / 500).max(1),
            related: (enterprises / 250).max(1),
            invoices_per_center: vec![0; centers],
        })
    }

    pub fn year_start(&self) -> Date {
        self.year_start
    }

    /// The enterprises that build a generative multimodal foundation model (the bureau
    /// raises their cap): the first ones.
    pub fn builders(&self) -> &[EnterpriseEntry] {
        &self.population.enterprises[..self.builders.min(self.population.enterprises.len())]
    }

    /// The declared related parties, (enterprise, center): enterprise `37 i` (wrapping)
    /// with center `i` (wrapping).
    pub fn related_parties(&self) -> Vec<(Uscc, Uscc)> {
        let (enterprises, centers) = (&self.population.enterprises, &self.population.centers);
        (0..self.related)
            .map(|index| {
                (
                    enterprises[(index * 37) % enterprises.len()].enterprise,
                    centers[index % centers.len()].center,
                )
            })
            .collect()
    }

    /// Draws contract number `contract` (0, 1, ...). Contracts go round the enterprises;
    /// the center is drawn, except that one application in 97 names a related party on
    /// purpose; fees are 5,000.00 to 70,000.00, a builder's first contracts 20 to 40
    /// million, and one ordinary contract in 1,000 is oversized (30 to 40 million, into
    /// the cap); one application in 1,500 repeats the previous contract number; one in
    /// four requests a fifth of the fee, the rest all of it; terms start in the first
    /// 150 days of the year and run 180 to 364 days.
    pub fn draw_contract(
        &self,
        rng: &mut impl Rng,
        contract: usize,
    ) -> Result<ContractPlan, ValidationError> {
        let (centers, enterprises) = (&self.population.centers, &self.population.enterprises);
        let enterprise_index = contract % enterprises.len();
        let center_index = if contract % 97 == 5 {
            let related = (contract / 97) % self.related;
            if (related * 37) % enterprises.len() == enterprise_index {
                related % centers.len()
            } else {
                rng.random_range(0..centers.len())
            }
        } else {
            rng.random_range(0..centers.len())
        };
        let is_builder = enterprise_index < self.builders && contract < enterprises.len();
        let fee_fen: i64 = if is_builder {
            rng.random_range(2_000_000_000..4_000_000_000)
        } else if contract % 1_000 == 999 {
            rng.random_range(3_000_000_000..4_000_000_000)
        } else {
            rng.random_range(500_000..7_000_000)
        };
        let start_day: i32 = rng.random_range(0..150);
        let term_start = self.year_start.plus_days(start_day);
        let term_days: i32 = rng.random_range(180..365);
        let term_end = term_start.plus_days(term_days);
        let year = self.population.year();
        let numbered = if contract % 1_500 == 7 && contract > 0 {
            contract - 1
        } else {
            contract
        };
        let requested = if contract.is_multiple_of(4) {
            fee_fen / 5
        } else {
            fee_fen
        };
        // Drawn without the random source, so Hangzhou 2024's draws are what they were.
        let rules = self.population.policy.rules();
        let enterprise_class = if rules.small_enterprise_rate.is_some() && enterprise_index % 2 == 1
        {
            EnterpriseClass::SmallOrMedium
        } else {
            EnterpriseClass::Standard
        };
        let declarations = if contract % 200 == 11 {
            Declarations::NONE
        } else {
            rules.required_declarations
        };
        Ok(ContractPlan {
            approve: ApproveVoucher {
                voucher: VoucherId::from_u128(((self.seed as u128) << 64) | (contract as u128 + 1)),
                year,
                enterprise: enterprises[enterprise_index].enterprise,
                center: centers[center_index].center,
                contract_number: ContractNumber::parse(&format!("HZ-{year}-{numbered:06}"))?,
                contract_fee: Money::from_fen(fee_fen)?,
                term_start,
                term_end,
                requested: Money::from_fen(requested)?,
                enterprise_class,
                declarations,
            },
            center_index,
            fee_fen,
        })
    }

    /// Draws a fresh invoice against one of the `approved` contracts (which must not be
    /// empty): 0.40% to 2.39% of its fee (at least 0.01), issued on a day of its term,
    /// numbered per center (`CCYYYYNNNNNNNNNN`), unless `flaws` say otherwise.
    pub fn draw_invoice(
        &mut self,
        rng: &mut impl Rng,
        approved: &[ContractPlan],
        flaws: InvoiceFlaws,
    ) -> Result<PostInvoice, ValidationError> {
        if approved.is_empty() {
            return Err(ValidationError::new(
                "approved",
                "0 contracts",
                "an invoice needs an approved contract",
            ));
        }
        let plan = &approved[rng.random_range(0..approved.len())];
        let centers = &self.population.centers;
        let mut center_index = plan.center_index;
        if flaws.wrong_center {
            center_index = (center_index + 1) % centers.len();
        }
        self.invoices_per_center[center_index] += 1;
        let number = self.invoices_per_center[center_index];
        let share: i64 = rng.random_range(40..240);
        let amount_fen = (plan.fee_fen * share / 10_000).max(1);
        let (term_start, term_end) = (plan.approve.term_start, plan.approve.term_end);
        let span = term_end.days_since_epoch() - term_start.days_since_epoch();
        let mut issue_date = term_start.plus_days(rng.random_range(0..=span));
        if flaws.after_term {
            issue_date = term_end.plus_days(3);
        }
        Ok(PostInvoice {
            center: centers[center_index].center,
            voucher: plan.approve.voucher,
            invoice_number: InvoiceNumber::parse(&format!(
                "{:02}{}{:010}",
                center_index,
                self.population.year(),
                number
            ))?,
            amount: Money::from_fen(amount_fen)?,
            issue_date,
            delivery_proof: DeliveryProof::parse(&format!("acceptance/{center_index}/{number}"))?,
            // Reimbursement: the enterprise's bank reference for paying the center in full
            // (drawn from no random number, so a center-payee year's draws are unchanged).
            payment_proof: match self.population.policy.rules().payee {
                Payee::Enterprise if !flaws.no_payment_proof => {
                    Some(PaymentProof::parse(&format!(
                        "PV{}-{center_index:02}-{number:010}",
                        self.population.year()
                    ))?)
                }
                _ => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_valid_distinct_and_the_same_in_every_style() {
        let centers: Vec<Uscc> = (0..100).map(|i| center_uscc(i).unwrap()).collect();
        let enterprises: Vec<Uscc> = (0..100).map(|i| enterprise_uscc(i).unwrap()).collect();
        let mut all: Vec<Uscc> = centers.iter().chain(&enterprises).copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 200);
        for style in [Style::Plain, Style::Bench, Style::Hangzhou] {
            assert_eq!(style.center(7).unwrap().center, centers[7]);
            assert_eq!(style.enterprise(7).unwrap().enterprise, enterprises[7]);
        }
    }

    #[test]
    fn bench_population_registers_before_it_approves() {
        let population = Population::bench(3, 10, 20).unwrap();
        let commands = population.commands();
        assert_eq!(commands.len(), 1 + 3 + 10 + 20);
        assert!(matches!(commands[0], Command::PublishPolicy { .. }));
        assert!(matches!(commands[14], Command::ApproveVoucher(_)));
        let mut stream = InvoiceStream::new(population, 1, 5).unwrap();
        let invoice = stream.next_invoice().unwrap();
        assert_eq!(invoice.invoice_number.to_string(), "B000000000005");
    }

    #[test]
    fn demo_draws_are_deterministic() {
        let draw = || {
            let mut year = DemoYear::new(7, 2026, 5, 40).unwrap();
            let mut rng = SmallRng::seed_from_u64(7);
            let plans: Vec<ContractPlan> = (0..50)
                .map(|contract| year.draw_contract(&mut rng, contract).unwrap())
                .collect();
            let flaws = InvoiceFlaws {
                wrong_center: false,
                after_term: false,
                no_payment_proof: false,
            };
            let invoice = year.draw_invoice(&mut rng, &plans, flaws).unwrap();
            (plans.last().unwrap().approve.clone(), invoice)
        };
        assert_eq!(draw(), draw());
    }
}
