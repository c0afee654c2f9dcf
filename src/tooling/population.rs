//! A seeded population and invoice stream for benchmarks and the load generator: a
//! policy with a pool large enough never to run dry, `centers` centers, `enterprises`
//! enterprises (with caps raised so no limit interferes), and `vouchers` vouchers with
//! fees large enough for millions of invoices. Deterministic for a seed.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::domain::{
    ApproveVoucher, Command, ContractNumber, Date, DeliveryProof, FacilityTier, InvoiceNumber,
    LegalName, ListingBasis, Money, PostInvoice, ProgrammePolicy, ProgrammeYear, Rate, Uscc,
    ValidationError, VoucherId,
};
use crate::tooling::demo::{center_uscc, enterprise_uscc};

#[derive(Clone, Debug)]
pub struct Population {
    pub centers: Vec<Uscc>,
    pub enterprises: Vec<Uscc>,
    /// (voucher, its center's index)
    pub vouchers: Vec<(VoucherId, usize)>,
    pub year: ProgrammeYear,
    pub issue_date: Date,
}

impl Population {
    /// The commands that register the population (policy first), terms from 2026-01-01.
    pub fn seed_commands(
        centers: usize,
        enterprises: usize,
        vouchers: usize,
    ) -> Result<(Population, Vec<Command>), ValidationError> {
        Self::seed_commands_from(centers, enterprises, vouchers, Date::from_ymd(2026, 1, 1)?)
    }

    /// As [`Population::seed_commands`], with contract terms starting on `term_start`
    /// (the load generator starts them a month before today, so no sweep expires them).
    pub fn seed_commands_from(
        centers: usize,
        enterprises: usize,
        vouchers: usize,
        term_start: Date,
    ) -> Result<(Population, Vec<Command>), ValidationError> {
        let year = ProgrammeYear::new(2026)?;
        let defaults = ProgrammePolicy::hangzhou_defaults(year);
        // A pool and caps that no benchmark exhausts: the work measured is a redemption
        // that passes every check, the expensive path.
        let policy = ProgrammePolicy::new(
            year,
            Money::from_fen(900_000_000_000_000)?,
            Money::from_fen(10_000_000_000_000)?,
            defaults.contract_fee_ceiling(),
            [
                Rate::basis_points_const(3000),
                Rate::basis_points_const(3000),
                Rate::basis_points_const(2000),
            ],
        )?;
        let mut commands = vec![Command::PublishPolicy { policy }];
        let center_codes: Vec<Uscc> = (0..centers.max(1))
            .map(center_uscc)
            .collect::<Result<_, _>>()?;
        let enterprise_codes: Vec<Uscc> = (0..enterprises.max(1))
            .map(enterprise_uscc)
            .collect::<Result<_, _>>()?;
        for (index, center) in center_codes.iter().enumerate() {
            commands.push(Command::RegisterCenter {
                center: *center,
                name: LegalName::parse(&format!("Bench Center {index}"))?,
                tier: FacilityTier::ALL[index % 3],
                listing_basis: ListingBasis::PlanningLayout,
            });
        }
        for (index, enterprise) in enterprise_codes.iter().enumerate() {
            commands.push(Command::RegisterEnterprise {
                enterprise: *enterprise,
                name: LegalName::parse(&format!("Bench Enterprise {index}"))?,
            });
        }
        let mut voucher_list = Vec::with_capacity(vouchers);
        for index in 0..vouchers.max(1) {
            let center_index = index % center_codes.len();
            let voucher = VoucherId::from_u128(0xBE4C_0000_0000 + index as u128 + 1);
            commands.push(Command::ApproveVoucher(ApproveVoucher {
                voucher,
                year,
                enterprise: enterprise_codes[index % enterprise_codes.len()],
                center: center_codes[center_index],
                contract_number: ContractNumber::parse(&format!("BENCH-{index}"))?,
                contract_fee: Money::from_fen(100_000_000_000)?,
                term_start,
                term_end: term_start.plus_days(364),
                requested: Money::from_fen(30_000_000_000)?,
            }));
            voucher_list.push((voucher, center_index));
        }
        Ok((
            Population {
                centers: center_codes,
                enterprises: enterprise_codes,
                vouchers: voucher_list,
                year,
                issue_date: term_start.plus_days(30),
            },
            commands,
        ))
    }
}

/// An endless stream of fresh invoices over the population, numbered from `start`.
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
        Ok(InvoiceStream {
            population,
            rng: SmallRng::seed_from_u64(seed),
            next: start,
            proof: DeliveryProof::parse("bench/usage-report")?,
        })
    }

    pub fn next_invoice(&mut self) -> Result<PostInvoice, ValidationError> {
        let (voucher, center_index) =
            self.population.vouchers[self.rng.random_range(0..self.population.vouchers.len())];
        let number = self.next;
        self.next += 1;
        Ok(PostInvoice {
            center: self.population.centers[center_index],
            voucher,
            invoice_number: InvoiceNumber::parse(&format!("B{number:012}"))?,
            amount: Money::from_fen(self.rng.random_range(1_000..1_000_000))?,
            issue_date: self.population.issue_date,
            delivery_proof: self.proof.clone(),
        })
    }

    pub fn population(&self) -> &Population {
        &self.population
    }
}
