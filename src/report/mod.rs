//! What a person reads: the programme-year summary printed by `voucher-ledger summary`
//! and at the end of `demo`, and the bureau's report, one self-contained HTML page
//! written by `voucher-ledger report` and served live by the server's HTTP page.
//!
//! - [`figures`]: the figures both print, read from the projections;
//! - [`series`]: the pool's use over time, from the log;
//! - [`charts`]: the report's charts (plotters, SVG);
//! - [`html`]: the report's page;
//! - [`summary`]: the terminal summary.

pub mod charts;
pub mod figures;
pub mod html;
pub mod series;
pub mod summary;

use crate::domain::ProgrammeYear;
use crate::ledger::LedgerReader;
use crate::storage::LogError;

pub use figures::ReportFigures;
pub use html::Page;

/// Why the report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no policy published for {0}: nothing to report")]
    NoPolicy(ProgrammeYear),
    #[error("reading the log for the pool's use over time: {0}")]
    Log(#[from] LogError),
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
}

/// Renders the report of `year` from figures already read (the server reads them under
/// its read lock and waits until they are durable): streams the log up to the figures'
/// event for the pool's use over time, then draws the page.
pub fn render_report(
    reader: &LedgerReader,
    figures: &ReportFigures,
    page: Page<'_>,
) -> Result<String, ReportError> {
    let points = series::pool_series(reader, figures.year, figures.last_sequence)?;
    Ok(html::render(figures, &points, page)?)
}

/// The report of `year` as the ledger behind `reader` stands now.
pub fn report_html(
    reader: &LedgerReader,
    year: ProgrammeYear,
    page: Page<'_>,
) -> Result<String, ReportError> {
    let (figures, _) = reader.read(|state| ReportFigures::compute(state, year));
    let figures = figures.ok_or(ReportError::NoPolicy(year))?;
    render_report(reader, &figures, page)
}
