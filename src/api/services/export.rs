//! `ExportService`: the ledger's figures as files (CSV, XLSX), streamed in chunks of at
//! most [`EXPORT_CHUNK_BYTES`]. The file is built by [`crate::export::download`], the
//! same code `voucher-ledger export statements|invoices|receivables` runs, so both hand
//! out the same bytes.
//!
//! Roles: the bureau and the auditor export everything; a center only its own statements,
//! invoices and receivables (an empty center means its own; another center's is
//! PERMISSION_DENIED); an enterprise nothing.
//!
//! Bounded: each export holds at most [`crate::limits::EXPORT_ROWS_MAX`] rows, at most
//! [`EXPORTS_CONCURRENT_MAX`] are built at once (a further call waits for a slot), and
//! building one reads the state a page at a time on a blocking thread, never holding the
//! state's lock across the export.

use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use super::*;
use crate::api::auth::Principal as Caller;
use crate::api::proto::export_service_server::ExportService;
use crate::domain::Uscc;
use crate::export::download::{export_file, ExportFile, ExportRequest};
use crate::export::figures::InvoicePeriod;
use crate::export::{ExportError, FileFormat};
use crate::limits::{EXPORTS_CONCURRENT_MAX, EXPORT_CHUNK_BYTES};

type ChunkStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<proto::FileChunk, Status>> + Send>>;

/// The slots for exports being built, shared by every server in the process.
fn export_slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    Arc::clone(SLOTS.get_or_init(|| Arc::new(Semaphore::new(EXPORTS_CONCURRENT_MAX))))
}

fn format_of(value: i32) -> Result<FileFormat, Status> {
    match proto::ExportFormat::try_from(value) {
        Ok(proto::ExportFormat::Csv) => Ok(FileFormat::Csv),
        Ok(proto::ExportFormat::Xlsx) => Ok(FileFormat::Xlsx),
        _ => Err(invalid_field(
            "format",
            format!("must be 1 (CSV) or 2 (XLSX), got {value}"),
        )),
    }
}

/// The center an export is limited to: the one named, or for a center its own; checked
/// against what the caller may read.
fn export_center(caller: &Caller, text: &str, what: &str) -> Result<Option<Uscc>, Status> {
    let center = if text.is_empty() {
        match caller.role {
            Role::Center => caller.subject,
            _ => None,
        }
    } else {
        Some(convert::uscc("center", text)?)
    };
    match &center {
        Some(center) => caller.require_center_reader(center, what)?,
        None => caller.require_reader_of_everything(what)?,
    }
    Ok(center)
}

fn export_status(error: ExportError) -> Status {
    match error {
        ExportError::TooManyRows { .. } => Status::resource_exhausted(error.to_string()),
        ExportError::Argument(_) | ExportError::Format(_) => {
            Status::invalid_argument(error.to_string())
        }
        ExportError::NotAllowed(_) => Status::permission_denied(error.to_string()),
        ExportError::MoneyBeyondXlsx { .. } => Status::failed_precondition(error.to_string()),
        _ => Status::internal(error.to_string()),
    }
}

/// The file as stream messages: the header with the first chunk, then the rest.
fn chunks(file: ExportFile) -> Vec<Result<proto::FileChunk, Status>> {
    let header = proto::FileHeader {
        file_name: file.file_name,
        content_type: file.content_type.to_string(),
        total_bytes: file.bytes.len() as u64,
        sm3: file.sm3,
        as_of_sequence: file.as_of,
    };
    let mut messages: Vec<Result<proto::FileChunk, Status>> = file
        .bytes
        .chunks(EXPORT_CHUNK_BYTES)
        .map(|data| {
            Ok(proto::FileChunk {
                header: None,
                data: data.to_vec(),
            })
        })
        .collect();
    match messages.first_mut() {
        Some(Ok(first)) => first.header = Some(header),
        _ => messages.push(Ok(proto::FileChunk {
            header: Some(header),
            data: Vec::new(),
        })),
    }
    messages
}

impl Api {
    /// Builds the export on a blocking thread (holding an export slot), waits until what
    /// it read is durable, and streams it.
    async fn export_stream(
        &self,
        request: ExportRequest,
        format: FileFormat,
    ) -> Result<Response<ChunkStream>, Status> {
        let _slot = export_slots()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))?;
        let reader = self.engine.reader().clone();
        let file = tokio::task::spawn_blocking(move || export_file(&reader, &request, format))
            .await
            .map_err(|error| Status::internal(format!("the export task failed: {error}")))?
            .map_err(export_status)?;
        self.engine
            .wait_durable(file.as_of)
            .await
            .map_err(engine_error)?;
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks(file)))))
    }
}

#[tonic::async_trait]
impl ExportService for Api {
    type ExportStatementsStream = ChunkStream;
    type ExportInvoicesStream = ChunkStream;
    type ExportReceivablesStream = ChunkStream;

    async fn export_statements(
        &self,
        request: Request<proto::ExportStatementsRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let caller = principal(&request)?.clone();
        let body = request.get_ref();
        let center = export_center(&caller, &body.center, "export statements")?;
        let format = format_of(body.format)?;
        let year = convert::year("year", body.year)?;
        self.export_stream(ExportRequest::Statements { year, center }, format)
            .await
    }

    async fn export_invoices(
        &self,
        request: Request<proto::ExportInvoicesRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let caller = principal(&request)?.clone();
        let body = request.get_ref();
        let center = export_center(&caller, &body.center, "export invoices")?;
        let format = format_of(body.format)?;
        let period = InvoicePeriod {
            center,
            from: convert::date("from_date", &body.from_date)?,
            to: convert::date("to_date", &body.to_date)?,
        };
        if period.to < period.from {
            return Err(invalid_field(
                "to_date",
                format!("{} is before from_date {}", period.to, period.from),
            ));
        }
        self.export_stream(ExportRequest::Invoices(period), format)
            .await
    }

    async fn export_receivables(
        &self,
        request: Request<proto::ExportReceivablesRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let caller = principal(&request)?.clone();
        let body = request.get_ref();
        let center = export_center(&caller, &body.center, "export receivables")?;
        let format = format_of(body.format)?;
        let year = convert::year("year", body.year)?;
        self.export_stream(ExportRequest::Receivables { year, center }, format)
            .await
    }
}
