//! [`UsageByYear`]: an enterprise's use of its cap, per programme year, held inline.
//!
//! Every redemption, approval and release moves one enterprise's usage for one year. An
//! enterprise has usage in one or two years (the programme runs a year at a time), so
//! the years live in a short vector kept in year order and inline in the account: the
//! redemption path reaches the usage in the account's own cache lines. A `BTreeMap`
//! here put every year in a node of its own, one more memory miss per redemption: ~7% of
//! the state machine benchmark's samples, at 20,000 vouchers over 5,000 enterprises
//! (issue 12). A third year spills to the heap and everything still works.
//!
//! It reads like the map it replaces: [`UsageByYear::get`], iteration in year order over
//! `(year, usage)` pairs, and `FromIterator` in which a later pair for the same year
//! replaces an earlier one.

use smallvec::SmallVec;

use super::Usage;
use crate::domain::ids::ProgrammeYear;

/// The years held without a heap allocation.
const INLINE_YEARS: usize = 2;

/// Usage per programme year, in year order, each year at most once.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct UsageByYear {
    /// Sorted by year, no year twice.
    years: SmallVec<[(ProgrammeYear, Usage); INLINE_YEARS]>,
}

impl UsageByYear {
    pub fn new() -> UsageByYear {
        UsageByYear::default()
    }

    pub fn get(&self, year: &ProgrammeYear) -> Option<&Usage> {
        self.position(*year)
            .ok()
            .map(|position| &self.years[position].1)
    }

    /// The usage of `year`, made (zero) if the year has none yet.
    pub fn year_mut(&mut self, year: ProgrammeYear) -> &mut Usage {
        let position = match self.position(year) {
            Ok(position) => position,
            Err(position) => {
                self.years.insert(position, (year, Usage::default()));
                position
            }
        };
        &mut self.years[position].1
    }

    pub fn len(&self) -> usize {
        self.years.len()
    }

    pub fn is_empty(&self) -> bool {
        self.years.is_empty()
    }

    /// `(year, usage)` pairs in year order (`for (year, usage) in &usage_by_year` binds
    /// both by reference, as over a map).
    pub fn iter(&self) -> std::slice::Iter<'_, (ProgrammeYear, Usage)> {
        self.years.iter()
    }

    pub fn keys(&self) -> impl Iterator<Item = &ProgrammeYear> {
        self.years.iter().map(|(year, _)| year)
    }

    pub fn values(&self) -> impl Iterator<Item = &Usage> {
        self.years.iter().map(|(_, usage)| usage)
    }

    /// Where `year` is (`Ok`) or would go to keep the order (`Err`). A linear scan: there
    /// are one or two years, and the first is the one the hot path usually wants.
    fn position(&self, year: ProgrammeYear) -> Result<usize, usize> {
        for (position, (held, _)) in self.years.iter().enumerate() {
            if *held == year {
                return Ok(position);
            }
            if *held > year {
                return Err(position);
            }
        }
        Err(self.years.len())
    }
}

impl<'a> IntoIterator for &'a UsageByYear {
    type Item = &'a (ProgrammeYear, Usage);
    type IntoIter = std::slice::Iter<'a, (ProgrammeYear, Usage)>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// As a map is collected: any order in, year order held, the last pair of a year wins.
impl FromIterator<(ProgrammeYear, Usage)> for UsageByYear {
    fn from_iter<I: IntoIterator<Item = (ProgrammeYear, Usage)>>(pairs: I) -> UsageByYear {
        let mut usage = UsageByYear::new();
        for (year, pair_usage) in pairs {
            *usage.year_mut(year) = pair_usage;
        }
        usage
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::money::Money;

    fn year(value: u16) -> ProgrammeYear {
        ProgrammeYear::new(u32::from(value)).expect("a programme year")
    }

    fn usage(held_fen: i64) -> Usage {
        Usage {
            held: Money::from_fen(held_fen).expect("an amount"),
            ..Usage::default()
        }
    }

    #[test]
    fn a_year_not_held_reads_as_none_and_is_made_zero_on_first_use() {
        let mut by_year = UsageByYear::new();
        assert_eq!(by_year.get(&year(2026)), None);
        assert_eq!(*by_year.year_mut(year(2026)), Usage::default());
        assert_eq!(by_year.get(&year(2026)), Some(&Usage::default()));
        assert_eq!(by_year.len(), 1);
    }

    proptest! {
        /// Any sequence of updates leaves what a `BTreeMap` would hold, in the same
        /// order, including the third and later years that leave the inline room.
        #[test]
        fn it_holds_what_a_map_holds(updates in proptest::collection::vec((2024u16..2031, 0i64..1_000), 0..40)) {
            let mut by_year = UsageByYear::new();
            let mut map: BTreeMap<ProgrammeYear, Usage> = BTreeMap::new();
            for (value, fen) in &updates {
                let added = usage(*fen).held;
                let held = &mut by_year.year_mut(year(*value)).held;
                *held = held.plus(added);
                let expected = &mut map.entry(year(*value)).or_default().held;
                *expected = expected.plus(added);
            }
            prop_assert_eq!(by_year.len(), map.len());
            prop_assert!(by_year.iter().map(|(year, usage)| (year, usage)).eq(map.iter()));
            prop_assert!(by_year.keys().eq(map.keys()));
            prop_assert!(by_year.values().eq(map.values()));
            for value in 2024u16..2031 {
                prop_assert_eq!(by_year.get(&year(value)), map.get(&year(value)));
            }
            let collected: UsageByYear = updates.iter().map(|(value, fen)| (year(*value), usage(*fen))).collect();
            let collected_map: BTreeMap<ProgrammeYear, Usage> = updates.iter().map(|(value, fen)| (year(*value), usage(*fen))).collect();
            prop_assert!(collected.iter().map(|(year, usage)| (year, usage)).eq(collected_map.iter()));
        }
    }
}
