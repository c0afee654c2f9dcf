//! The pool's use over time, for the report's first chart: the log is streamed once
//! through the one checked reader ([`LedgerReader::read_events`]) and folded with the
//! same `LedgerState::apply` the ledger uses, so every point is exactly what the ledger
//! said at the end of that day, and the last point equals the report's totals.
//!
//! The replay keeps its own state with a bounded invoice cache that is emptied as it goes
//! (as `verify` does), so memory does not grow with the number of invoices.

use std::ops::ControlFlow;

use crate::domain::{Date, LedgerState, Money, ProgrammeYear};
use crate::ledger::LedgerReader;
use crate::limits::{REPORT_REPLAY_CACHE_LIMIT, REPORT_SERIES_POINTS_MAX};
use crate::storage::LogError;

/// The year's pool at the end of one day (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolPoint {
    pub day: Date,
    /// The pool in force that day.
    pub pool: Money,
    /// Face value of approved vouchers not yet redeemed.
    pub held: Money,
    /// Subsidy redeemed that stands.
    pub redeemed: Money,
    /// Subsidy clawed back from centers, not yet recovered.
    pub receivable: Money,
    /// Face value given back to the pool so far (released vouchers, recovered clawbacks).
    pub released: Money,
    pub free: Money,
}

/// The pool of `year` at the end of every day on which the log has an event, from the
/// day its policy was published, through event `until` (or the end of the log). At most
/// [`REPORT_SERIES_POINTS_MAX`] points: a longer series keeps every n-th day and the
/// last (weekly points for a log of a few years).
pub fn pool_series(
    reader: &LedgerReader,
    year: ProgrammeYear,
    until: u64,
) -> Result<Vec<PoolPoint>, LogError> {
    let mut state = LedgerState::with_bounded_invoice_cache();
    let mut points: Vec<PoolPoint> = Vec::new();
    let mut current_day: Option<Date> = None;
    if until == 0 {
        return Ok(points);
    }
    reader.read_events(1, |logged| {
        let day = logged.at.date();
        if let Some(previous) = current_day.filter(|previous| *previous != day) {
            if let Some(point) = point_of(&state, year, previous) {
                points.push(point);
                // Days without events keep the day before's figures: a step, not a
                // slope across the gap (the demo's expiry comes months after its year).
                let eve = day.plus_days(-1);
                if eve > previous {
                    points.push(PoolPoint { day: eve, ..point });
                }
            }
        }
        current_day = Some(day);
        state.apply(logged.sequence, logged.at, &logged.event);
        if state.invoices_in_memory() >= REPORT_REPLAY_CACHE_LIMIT {
            state.invoice_cache_mut().clear(REPORT_REPLAY_CACHE_LIMIT);
        }
        if logged.sequence >= until {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if let Some(day) = current_day {
        points.extend(point_of(&state, year, day));
    }
    Ok(thin_out(points, REPORT_SERIES_POINTS_MAX))
}

/// The point of `day` from the state at its end; `None` before the year has books.
fn point_of(state: &LedgerState, year: ProgrammeYear, day: Date) -> Option<PoolPoint> {
    let book = state.year(year)?;
    Some(PoolPoint {
        day,
        pool: book.pool,
        held: book.usage.held,
        redeemed: book.usage.redeemed,
        receivable: book.usage.receivable,
        released: book.released,
        free: book.usage.free_under(book.pool),
    })
}

/// Keeps every n-th point and the last, so that at most `most` remain.
fn thin_out(points: Vec<PoolPoint>, most: usize) -> Vec<PoolPoint> {
    if points.len() <= most || most < 2 {
        return points;
    }
    let step = points.len().div_ceil(most - 1);
    let last = points.len() - 1;
    points
        .into_iter()
        .enumerate()
        .filter(|(index, _)| index % step == 0 || *index == last)
        .map(|(_, point)| point)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(day: i32) -> PoolPoint {
        PoolPoint {
            day: Date::from_days_since_epoch(day),
            pool: Money::ZERO,
            held: Money::ZERO,
            redeemed: Money::ZERO,
            receivable: Money::ZERO,
            released: Money::ZERO,
            free: Money::ZERO,
        }
    }

    #[test]
    fn a_long_series_is_thinned_to_the_limit_and_keeps_its_first_and_last_day() {
        let points: Vec<PoolPoint> = (0..1_000).map(point).collect();
        let thinned = thin_out(points, 400);
        assert!(thinned.len() <= 400, "{}", thinned.len());
        assert!(thinned.len() >= 300, "{}", thinned.len());
        assert_eq!(thinned.first().map(|point| point.day), Some(point(0).day));
        assert_eq!(thinned.last().map(|point| point.day), Some(point(999).day));
    }

    #[test]
    fn a_short_series_is_kept_whole() {
        let points: Vec<PoolPoint> = (0..365).map(point).collect();
        assert_eq!(thin_out(points.clone(), 400), points);
    }
}
