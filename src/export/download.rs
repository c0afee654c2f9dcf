//! One export as a named file: which figures ([`ExportRequest`]), in which format, read
//! from a [`LedgerReader`]. The gRPC `ExportService` streams what this returns and
//! `voucher-ledger export statements|invoices|receivables` writes it, so both hand out
//! the same bytes for the same ledger.

use sm3::{Digest, Sm3};

use super::figures::{self, Figures, InvoicePeriod};
use super::table::{write_table, ExportError, FileFormat};
use crate::domain::{ProgrammeYear, Uscc};
use crate::ledger::LedgerReader;

/// Which figures to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportRequest {
    /// The statements of a year (of one center, if given).
    Statements {
        year: ProgrammeYear,
        center: Option<Uscc>,
    },
    /// The invoices issued in a period (of one center, if given).
    Invoices(InvoicePeriod),
    /// The receivables of a year per center (of one center, if given).
    Receivables {
        year: ProgrammeYear,
        center: Option<Uscc>,
    },
}

impl ExportRequest {
    /// The center the export is limited to, if any (what authorisation looks at).
    pub fn center(&self) -> Option<Uscc> {
        match self {
            ExportRequest::Statements { center, .. }
            | ExportRequest::Receivables { center, .. } => *center,
            ExportRequest::Invoices(period) => period.center,
        }
    }

    /// The file's name without its extension: `statements-2026`,
    /// `invoices-2026-01-01-2026-03-31-<USCC>`.
    pub fn file_stem(&self) -> String {
        let (mut stem, center) = match self {
            ExportRequest::Statements { year, center } => (format!("statements-{year}"), center),
            ExportRequest::Receivables { year, center } => (format!("receivables-{year}"), center),
            ExportRequest::Invoices(period) => (
                format!("invoices-{}-{}", period.from, period.to),
                &period.center,
            ),
        };
        if let Some(center) = center {
            stem.push('-');
            stem.push_str(center.as_str());
        }
        stem
    }
}

/// An export ready to hand out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFile {
    pub file_name: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
    /// SM3 of `bytes`, hex.
    pub sm3: String,
    /// The sequence the figures are as of.
    pub as_of: u64,
}

/// Builds the export `request` in `format` from `reader`. The XLSX's creation time is the
/// time of the ledger's newest event, so the same ledger gives the same bytes.
pub fn export_file(
    reader: &LedgerReader,
    request: &ExportRequest,
    format: FileFormat,
) -> Result<ExportFile, ExportError> {
    let Figures { table, as_of } = match request {
        ExportRequest::Statements { year, center } => figures::statements(reader, *year, *center)?,
        ExportRequest::Receivables { year, center } => {
            figures::receivables(reader, *year, *center)?
        }
        ExportRequest::Invoices(period) => figures::invoices(reader, *period)?,
    };
    let (created_at, _) = reader.read(|state| state.last_time());
    let bytes = write_table(&table, format, created_at)?;
    Ok(ExportFile {
        file_name: format!("{}.{}", request.file_stem(), format.extension()),
        content_type: format.content_type(),
        sm3: hex::encode(Sm3::digest(&bytes)),
        bytes,
        as_of,
    })
}
