//! The audit package of a programme year: everything an auditor needs to check the
//! year's figures offline, without the ledger or its data directory.
//!
//! `voucher-ledger export --data-dir DIR --year Y --out PKG` writes:
//!
//! | file | what it holds |
//! |---|---|
//! | `events.vlpk` | the **whole** log from sequence 1 to the head, the records exactly as stored (`storage::package`). The whole log, not the year's slice: the year's figures depend on earlier events (the policy, the registrations), and a package from sequence 1 starts at the genesis hash, so its chain is checked without trusting anything outside it. |
//! | `chain.csv` | per record: sequence, event type, time, the SM3 chain hash after it |
//! | `statements.csv/.xlsx` | the year's statements |
//! | `payments.csv/.xlsx` | the year's payments (returns included) and repayments |
//! | `receivables.csv/.xlsx` | the year's receivables per center |
//! | `year_figures.csv/.xlsx` | the year's pool and where every fen of it is |
//! | `manifest.toml` | the year, the sequence range, the chain hash before the first record and after the last (the head at the export's end), the ledger time, and each file's size and SM3 |
//!
//! Reconciliations: [`reconciliation_tables`] is the hook for them; it adds nothing while
//! the log has no reconciliation event.
//!
//! `voucher-ledger verify --package PKG` ([`verify_package`]) checks, naming the file at
//! fault: every file's size and SM3 against the manifest (and that no file is unlisted),
//! the records' frames and chain from the genesis hash to the manifest's head, the
//! invariants of the state their replay yields, and that `chain.csv` and every figure
//! file equal, byte for byte, what that replay yields (the XLSX files are reproducible:
//! their creation time is the ledger's time). The manifest itself cannot carry its own
//! hash: its authority is the chain head, which the auditor compares with the live
//! ledger's (`verify --data-dir`, or `ReadEvents`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sm3::{Digest, Sm3};

use super::figures;
use super::table::{write_csv, write_xlsx, ExportError, Table, UTF8_BOM};
use crate::domain::{LedgerState, ProgrammeYear};
use crate::limits::INVOICE_CACHE_DEFAULT;
use crate::storage::package::{
    read_events_file, write_events_header, write_events_record, EventsFileError,
};
use crate::storage::record::{check_record, genesis_chain_hash, ChainHash, CheckedRecord};
use crate::storage::{EventStore, RecordError, StoreError};

/// What `manifest.toml`'s `format` says.
pub const PACKAGE_FORMAT: &str = "voucher-ledger audit package";
/// The package layout's version.
pub const PACKAGE_FORMAT_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.toml";
pub const EVENTS_FILE: &str = "events.vlpk";
pub const CHAIN_FILE: &str = "chain.csv";

/// `manifest.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub year: u32,
    /// The first record in `events.vlpk` (always 1: the whole log).
    pub first_sequence: u64,
    /// The last record: the ledger's head when the package was written.
    pub last_sequence: u64,
    /// The chain hash before the first record (the genesis hash), hex.
    pub chain_hash_before_first: String,
    /// The chain hash after the last record, hex.
    pub chain_head: String,
    /// The time of the newest event, ms since the Unix epoch (the XLSX files' creation
    /// time).
    pub ledger_time_ms: i64,
    pub files: Vec<ManifestFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub name: String,
    pub bytes: u64,
    /// SM3 of the file, hex.
    pub sm3: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("data directory {}: {source}", .path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("the log: {0}")]
    Record(#[from] RecordError),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("{} already holds files; an audit package is written into an empty or new directory", .0.display())]
    NotEmpty(PathBuf),
    #[error("the log breaks an invariant after replay: {0}")]
    Invariant(String),
    #[error("{MANIFEST_FILE}: {0}")]
    Manifest(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a written package holds.
#[derive(Clone, Debug)]
pub struct PackageSummary {
    pub manifest: Manifest,
    pub directory: PathBuf,
}

/// A writer that hashes (SM3) and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sm3,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sm3::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buffer)?;
        self.hasher.update(&buffer[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A sink that only hashes: regenerated files are compared by their SM3.
struct Discard;

impl Write for Discard {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        Ok(buffer.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `chain.csv`, written a record at a time (the log may be far longer than a table).
struct ChainListing<W: Write> {
    writer: csv::Writer<W>,
}

impl<W: Write> ChainListing<W> {
    fn new(mut inner: W) -> std::io::Result<ChainListing<W>> {
        inner.write_all(UTF8_BOM)?;
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(inner);
        writer.write_record([
            "序号 sequence",
            "事件类型 event_type",
            "时间 time_ms",
            "链哈希 chain_hash_sm3",
        ])?;
        Ok(ChainListing { writer })
    }

    fn record(&mut self, record: &CheckedRecord<'_>, event_name: &str) -> std::io::Result<()> {
        self.writer.write_record([
            record.sequence.to_string().as_str(),
            event_name,
            record.at.0.to_string().as_str(),
            record.chain_hash.to_string().as_str(),
        ])?;
        Ok(())
    }

    fn finish(self) -> std::io::Result<W> {
        self.writer
            .into_inner()
            .map_err(|error| std::io::Error::other(error.to_string()))
    }
}

/// Replays one checked record into `state`, keeping the invoice cache bounded (replay
/// needs no invoice it has already passed).
fn apply_record(
    state: &mut LedgerState,
    record: &CheckedRecord<'_>,
) -> Result<&'static str, RecordError> {
    // The fold needs dense sequences from 1; a package that starts elsewhere is refused.
    let expected = state.last_sequence() + 1;
    if record.sequence != expected {
        return Err(RecordError::Missing {
            sequence: expected,
            next: record.sequence,
        });
    }
    let (_, event) = record.decode_with_origin()?;
    state.apply(record.sequence, record.at, &event);
    if state.invoices_in_memory() > INVOICE_CACHE_DEFAULT {
        state.invoice_cache_mut().clear(INVOICE_CACHE_DEFAULT);
    }
    Ok(event.name())
}

/// The figure files of `year` as the package holds them: (file name, bytes), in order.
fn figure_files(
    state: &LedgerState,
    year: ProgrammeYear,
) -> Result<Vec<(String, Vec<u8>)>, ExportError> {
    let created_at = state.last_time();
    let mut tables: Vec<(&'static str, Table)> = vec![
        ("statements", figures::statements(state, year, None)?.table),
        ("payments", figures::payments(state, year, None)?.table),
        (
            "receivables",
            figures::receivables(state, year, None)?.table,
        ),
        ("year_figures", figures::year_figures(state, year)?.table),
    ];
    tables.extend(reconciliation_tables(state, year)?);
    let mut files = Vec::with_capacity(tables.len() * 2);
    for (stem, table) in &tables {
        files.push((format!("{stem}.csv"), write_csv(table)?));
        files.push((format!("{stem}.xlsx"), write_xlsx(table, created_at)?));
    }
    Ok(files)
}

/// The hook for the year's reconciliations in the package: one table per kind, named by
/// its file stem. Empty while the log has no reconciliation event; when one exists, list
/// the year's reconciliations here (who, when, which file and its SM3, the counts per
/// discrepancy kind) and the package and its verification pick them up.
pub fn reconciliation_tables(
    _state: &LedgerState,
    _year: ProgrammeYear,
) -> Result<Vec<(&'static str, Table)>, ExportError> {
    Ok(Vec::new())
}

/// Writes the audit package of `year` from the data directory `data_dir` (opened read
/// only, so a running server may keep it) into `out`, which must be empty or new.
pub fn write_package(
    data_dir: &Path,
    year: ProgrammeYear,
    out: &Path,
) -> Result<PackageSummary, PackageError> {
    let store = EventStore::open_read_only(data_dir).map_err(|source| PackageError::Store {
        path: data_dir.to_path_buf(),
        source,
    })?;
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io_error(out))?;
        if entries.next().is_some() {
            return Err(PackageError::NotEmpty(out.to_path_buf()));
        }
    }
    std::fs::create_dir_all(out).map_err(io_error(out))?;
    let mut files: Vec<ManifestFile> = Vec::new();

    // The log: copied as stored, checked and replayed in the same pass.
    let events_path = out.join(EVENTS_FILE);
    let chain_path = out.join(CHAIN_FILE);
    let genesis = genesis_chain_hash();
    let mut events = HashingWriter::new(BufWriter::new(
        File::create(&events_path).map_err(io_error(&events_path))?,
    ));
    write_events_header(&mut events, 1, &genesis).map_err(io_error(&events_path))?;
    let mut chain = ChainListing::new(HashingWriter::new(BufWriter::new(
        File::create(&chain_path).map_err(io_error(&chain_path))?,
    )))
    .map_err(io_error(&chain_path))?;
    let mut state = LedgerState::with_bounded_invoice_cache();
    let mut previous = genesis;
    let mut failure: Option<PackageError> = None;
    store
        .scan_raw_records(1, |sequence, bytes| {
            let step = (|| {
                let expected = state.last_sequence() + 1;
                if sequence != expected {
                    return Err(PackageError::Record(RecordError::Missing {
                        sequence: expected,
                        next: sequence,
                    }));
                }
                let record = check_record(sequence, bytes, &previous)?;
                let event_name = apply_record(&mut state, &record)?;
                write_events_record(&mut events, bytes).map_err(io_error(&events_path))?;
                chain
                    .record(&record, event_name)
                    .map_err(io_error(&chain_path))?;
                previous = record.chain_hash;
                Ok(())
            })();
            match step {
                Ok(()) => true,
                Err(error) => {
                    failure = Some(error);
                    false
                }
            }
        })
        .map_err(|source| PackageError::Store {
            path: data_dir.to_path_buf(),
            source,
        })?;
    if let Some(error) = failure {
        return Err(error);
    }
    let violations = state.check_invariants();
    if let Some(first) = violations.first() {
        return Err(PackageError::Invariant(first.clone()));
    }
    let (events_sm3, events_bytes) = finish_file(events, &events_path)?;
    let chain_writer = chain.finish().map_err(io_error(&chain_path))?;
    let (chain_sm3, chain_bytes) = finish_file(chain_writer, &chain_path)?;
    files.push(ManifestFile {
        name: EVENTS_FILE.to_string(),
        bytes: events_bytes,
        sm3: events_sm3,
    });
    files.push(ManifestFile {
        name: CHAIN_FILE.to_string(),
        bytes: chain_bytes,
        sm3: chain_sm3,
    });

    for (name, bytes) in figure_files(&state, year)? {
        let path = out.join(&name);
        std::fs::write(&path, &bytes).map_err(io_error(&path))?;
        files.push(ManifestFile {
            name,
            bytes: bytes.len() as u64,
            sm3: hex::encode(Sm3::digest(&bytes)),
        });
    }
    files.sort_by(|left, right| left.name.cmp(&right.name));
    let manifest = Manifest {
        format: PACKAGE_FORMAT.to_string(),
        format_version: PACKAGE_FORMAT_VERSION,
        year: year.get(),
        first_sequence: 1,
        last_sequence: state.last_sequence(),
        chain_hash_before_first: genesis.to_string(),
        chain_head: previous.to_string(),
        ledger_time_ms: state.last_time().0,
        files,
    };
    let text = toml::to_string(&manifest)
        .map_err(|error| PackageError::Manifest(format!("cannot be written: {error}")))?;
    let manifest_path = out.join(MANIFEST_FILE);
    std::fs::write(&manifest_path, text).map_err(io_error(&manifest_path))?;
    Ok(PackageSummary {
        manifest,
        directory: out.to_path_buf(),
    })
}

/// Flushes a hashed file to disk and returns its (SM3, size).
fn finish_file(
    writer: HashingWriter<BufWriter<File>>,
    path: &Path,
) -> Result<(String, u64), PackageError> {
    let (inner, sm3, bytes) = writer.finish();
    let file = inner
        .into_inner()
        .map_err(|error| io_error(path)(error.into_error()))?;
    file.sync_all().map_err(io_error(path))?;
    Ok((sm3, bytes))
}

/// What `verify --package` found.
#[derive(Clone, Debug, Default)]
pub struct PackageReport {
    pub year: u32,
    pub files_checked: usize,
    pub records_checked: u64,
    pub chain_head: Option<ChainHash>,
    pub figures_compared: usize,
    pub invariants_checked: bool,
    /// Each problem names the file at fault.
    pub problems: Vec<String>,
}

impl PackageReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// SM3 and size of a file, read in pieces.
fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sm3::new();
    let mut buffer = vec![0u8; 64 << 10];
    let mut bytes = 0u64;
    // Bounded by the file's length: every round reads at least one byte or ends.
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// The first line (1-based) at which two texts differ, for a person to look at.
fn first_different_line(left: &[u8], right: &[u8]) -> usize {
    let mut line = 1;
    for (a, b) in left.iter().zip(right.iter()) {
        if a != b {
            return line;
        }
        if *a == b'\n' {
            line += 1;
        }
    }
    line
}

/// Checks the audit package in `directory` offline (see the module doc). A package that
/// cannot be read at all (no manifest) is an error; everything else is a problem in the
/// report, naming the file.
pub fn verify_package(directory: &Path) -> Result<PackageReport, PackageError> {
    let manifest_path = directory.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).map_err(io_error(&manifest_path))?;
    let manifest: Manifest = toml::from_str(&text)
        .map_err(|error| PackageError::Manifest(format!("is not a package manifest: {error}")))?;
    if manifest.format != PACKAGE_FORMAT || manifest.format_version != PACKAGE_FORMAT_VERSION {
        return Err(PackageError::Manifest(format!(
            "format {:?} version {} is not {PACKAGE_FORMAT:?} version {PACKAGE_FORMAT_VERSION}",
            manifest.format, manifest.format_version
        )));
    }
    let mut report = PackageReport {
        year: manifest.year,
        ..PackageReport::default()
    };
    let year = ProgrammeYear::new(manifest.year)
        .map_err(|error| PackageError::Manifest(error.to_string()))?;

    // 1. Every file's size and hash; nothing unlisted.
    let listed: std::collections::BTreeMap<&str, &ManifestFile> = manifest
        .files
        .iter()
        .map(|file| (file.name.as_str(), file))
        .collect();
    for file in &manifest.files {
        let is_plain_name = !file.name.is_empty()
            && !file.name.contains(['/', '\\'])
            && file.name != "."
            && file.name != "..";
        if !is_plain_name {
            report.problems.push(format!(
                "{MANIFEST_FILE}: {:?} is not a file name",
                file.name
            ));
            continue;
        }
        match hash_file(&directory.join(&file.name)) {
            Ok((sm3, bytes)) => {
                report.files_checked += 1;
                if bytes != file.bytes {
                    report.problems.push(format!(
                        "{}: {bytes} bytes, the manifest says {}",
                        file.name, file.bytes
                    ));
                }
                if sm3 != file.sm3 {
                    report.problems.push(format!(
                        "{}: SM3 {sm3} differs from the manifest's {}",
                        file.name, file.sm3
                    ));
                }
            }
            Err(error) => report
                .problems
                .push(format!("{}: cannot be read: {error}", file.name)),
        }
    }
    let entries = std::fs::read_dir(directory).map_err(io_error(directory))?;
    for entry in entries {
        let entry = entry.map_err(io_error(directory))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != MANIFEST_FILE && !listed.contains_key(name.as_str()) {
            report
                .problems
                .push(format!("{name}: is in the package but not in the manifest"));
        }
    }

    // 2. The records: frames and chain from the manifest's start, replayed.
    let events_path = directory.join(EVENTS_FILE);
    let mut state = LedgerState::with_bounded_invoice_cache();
    let mut chain =
        ChainListing::new(HashingWriter::new(Discard)).map_err(io_error(Path::new(CHAIN_FILE)))?;
    let mut chain_failure: Option<std::io::Error> = None;
    let events = File::open(&events_path).map_err(io_error(&events_path))?;
    let mut records_checked = 0u64;
    let replayed = read_events_file(BufReader::new(events), |record| {
        let event_name = apply_record(&mut state, record)?;
        records_checked += 1;
        if let Err(error) = chain.record(record, event_name) {
            chain_failure.get_or_insert(error);
        }
        Ok(())
    });
    report.records_checked = records_checked;
    let (header, last_sequence, head) = match replayed {
        Ok(found) => found,
        Err(error) => {
            report.problems.push(match error {
                EventsFileError::Record(error) => format!("{EVENTS_FILE}: {error}"),
                other => format!("{EVENTS_FILE}: {other}"),
            });
            return Ok(report);
        }
    };
    report.chain_head = Some(head);
    if header.first_sequence != 1 || header.chain_before != genesis_chain_hash() {
        report.problems.push(format!(
            "{EVENTS_FILE}: starts at sequence {} after chain hash {}, not at sequence 1 after the genesis hash",
            header.first_sequence, header.chain_before
        ));
    }
    if manifest.first_sequence != header.first_sequence
        || manifest.chain_hash_before_first != header.chain_before.to_string()
    {
        report.problems.push(format!(
            "{MANIFEST_FILE}: says the records start at {} after {}, {EVENTS_FILE} at {} after {}",
            manifest.first_sequence,
            manifest.chain_hash_before_first,
            header.first_sequence,
            header.chain_before
        ));
    }
    if manifest.last_sequence != last_sequence || manifest.chain_head != head.to_string() {
        report.problems.push(format!(
            "{MANIFEST_FILE}: says the head is record {} with chain hash {}, {EVENTS_FILE} ends at {last_sequence} with {head}",
            manifest.last_sequence, manifest.chain_head
        ));
    }
    if manifest.ledger_time_ms != state.last_time().0 {
        report.problems.push(format!(
            "{MANIFEST_FILE}: ledger_time_ms {} is not the newest event's time {} in {EVENTS_FILE}",
            manifest.ledger_time_ms,
            state.last_time().0
        ));
    }
    let violations = state.check_invariants();
    report.invariants_checked = true;
    for violation in violations {
        report.problems.push(format!(
            "{EVENTS_FILE}: the replayed state breaks an invariant: {violation}"
        ));
    }

    // 3. What the replay yields, against the files.
    match chain.finish() {
        Ok(writer) if chain_failure.is_none() => {
            let (_, sm3, _) = writer.finish();
            report.figures_compared += 1;
            if listed.get(CHAIN_FILE).is_none_or(|file| file.sm3 != sm3) {
                report.problems.push(format!(
                    "{CHAIN_FILE}: differs from the chain of {EVENTS_FILE} (SM3 of the replayed listing {sm3})"
                ));
            }
        }
        _ => report.problems.push(format!(
            "{CHAIN_FILE}: could not be rebuilt from {EVENTS_FILE}"
        )),
    }
    let expected = match figure_files(&state, year) {
        Ok(files) => files,
        Err(error) => {
            report.problems.push(format!(
                "the figures of {year} cannot be rebuilt from {EVENTS_FILE}: {error}"
            ));
            return Ok(report);
        }
    };
    for (name, bytes) in expected {
        report.figures_compared += 1;
        let path = directory.join(&name);
        match std::fs::read(&path) {
            Ok(found) if found == bytes => {}
            Ok(found) if name.ends_with(".csv") => report.problems.push(format!(
                "{name}: differs from what replaying {EVENTS_FILE} yields, first at line {}",
                first_different_line(&found, &bytes)
            )),
            Ok(_) => report.problems.push(format!(
                "{name}: differs from what replaying {EVENTS_FILE} yields"
            )),
            Err(error) => report
                .problems
                .push(format!("{name}: missing from the package: {error}")),
        }
        if !listed.contains_key(name.as_str()) {
            report
                .problems
                .push(format!("{name}: is not in the manifest"));
        }
    }
    Ok(report)
}
