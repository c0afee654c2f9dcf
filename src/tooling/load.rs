//! The gRPC load generator (`voucher-ledger bench`): how fast a running server redeems,
//! measured from outside as a client would see it. Bounded in count and in time, so it
//! can also run in CI with tiny inputs (`tests/bench_smoke.rs`).
//!
//! It seeds the benchmarks' population ([`Population::bench_from`]: a pool that never
//! runs dry, 50 centers, 5,000 enterprises, 20,000 vouchers by default) over gRPC, then
//! 1. posts `--invoices` invoices with `PostInvoices` in batches of `--batch` over
//!    `--connections` connections, closed loop, and reports invoices/s and batch latency;
//! 2. offers unary `PostInvoice` calls at a fixed `--unary-rate` for `--unary-seconds`
//!    (open loop, paced by an OS thread: latency counts from the scheduled send time, so
//!    a stall is not hidden; how late the calls left is reported beside it).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::api::convert::{listing_basis_to_proto, policy_to_proto, tier_to_proto};
use crate::api::proto;
use crate::api::proto::redemption_service_client::RedemptionServiceClient;
use crate::domain::{Command, PostInvoice};
use crate::ledger::SUBMIT_BATCH_LIMIT;
pub use crate::tooling::encoded_batches::AnswerKind;
use crate::tooling::encoded_batches::{EncodedBatch, EncodedPostInvoicesClient};
use crate::tooling::population::{InvoiceDraw, InvoiceStream, Population, BENCH_DELIVERY_PROOF};
use crate::tooling::{runtime, today, ToolError};

/// What `voucher-ledger bench` runs (its command-line arguments).
#[derive(Clone, Debug, clap::Args)]
pub struct LoadSettings {
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub target: String,
    /// A bureau token (the bureau may post for every center).
    #[arg(long, default_value = "dev-bureau-token")]
    pub token: String,
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Invoices per PostInvoices call.
    #[arg(long, default_value_t = 4_096)]
    pub batch: usize,
    /// Invoices to post in the batch phase (bounded).
    #[arg(long, default_value_t = 1_000_000)]
    pub invoices: u64,
    #[arg(long, default_value_t = 50)]
    pub centers: usize,
    #[arg(long, default_value_t = 5_000)]
    pub enterprises: usize,
    #[arg(long, default_value_t = 20_000)]
    pub vouchers: usize,
    /// Offered unary PostInvoice calls per second (0 skips the unary phase).
    #[arg(long, default_value_t = 2_000)]
    pub unary_rate: u64,
    #[arg(long, default_value_t = 10)]
    pub unary_seconds: u64,
    /// Clients calling `ListVouchers` (an enterprise's vouchers, pages of 100) in a
    /// loop while the unary phase runs, each pausing 2 ms between calls: the read load
    /// under which issue 12 states the unary p99 goal (0: no read load).
    #[arg(long, default_value_t = 0)]
    pub list_clients: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Latency percentiles of a sample, in milliseconds.
pub fn percentiles(samples: &mut [Duration]) -> (f64, f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0, 0.0);
    }
    samples.sort_unstable();
    let at = |quantile: f64| {
        let index = ((samples.len() as f64 * quantile).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index].as_secs_f64() * 1_000.0
    };
    (
        at(0.50),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1].as_secs_f64() * 1_000.0,
    )
}

/// `voucher-ledger bench`: runs the load and prints its report.
/// `voucher-ledger bench`'s arguments: the load, and which answer its batches ask for.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub settings: LoadSettings,
    /// The answer asked for: `every` invoice's result (`PostInvoices`) or, with `brief`,
    /// only the exceptions and the batch's totals (`PostInvoicesBrief`, the shape of
    /// TigerBeetle's answer, which lists only failures).
    #[arg(long, value_enum, default_value_t = AnswerKind::Every)]
    pub answer: AnswerKind,
}

pub fn run(arguments: BenchArgs) -> Result<ExitCode, ToolError> {
    let report = runtime()?.block_on(run_load_answered(arguments.settings, arguments.answer))?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// The `authorization` header's value for `token`, checked once before any call.
pub(crate) fn bearer(token: &str) -> Result<MetadataValue<Ascii>, ToolError> {
    format!("Bearer {token}")
        .parse()
        .map_err(|_| ToolError::Setting {
            name: "token",
            value: token.to_string(),
            reason: "is not a valid header value",
        })
}

pub(crate) fn authed<T>(bearer: &MetadataValue<Ascii>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    request
}

pub(crate) fn to_proto_invoice(invoice: &PostInvoice) -> proto::Invoice {
    proto::Invoice {
        center: invoice.center.to_string(),
        voucher_id: invoice.voucher.to_string(),
        invoice_number: invoice.invoice_number.to_string(),
        amount: invoice.amount.to_string(),
        issue_date: invoice.issue_date.to_string(),
        delivery_proof: invoice.delivery_proof.to_string(),
        invoice_code: String::new(),
        payment_proof: invoice
            .payment_proof
            .as_ref()
            .map(|proof| proof.to_string())
            .unwrap_or_default(),
    }
}

/// Registers the population over gRPC in three waves (policy; centers and enterprises;
/// vouchers), at most 64 calls in flight. ALREADY_EXISTS means a previous run seeded it.
pub(crate) async fn seed_over_grpc(
    channel: &Channel,
    bearer: &MetadataValue<Ascii>,
    population: &Population,
) -> Result<(), ToolError> {
    let mut registrations = population.registration_commands();
    let entities = registrations.split_off(1.min(registrations.len()));
    for wave in [registrations, entities, population.voucher_commands()] {
        let mut in_flight = tokio::task::JoinSet::new();
        for command in wave {
            if in_flight.len() >= 64 {
                if let Some(done) = in_flight.join_next().await {
                    tolerate_existing(done?)?;
                }
            }
            in_flight.spawn(seed_one(channel.clone(), bearer.clone(), command));
        }
        while let Some(done) = in_flight.join_next().await {
            tolerate_existing(done?)?;
        }
    }
    Ok(())
}

fn tolerate_existing(result: Result<(), ToolError>) -> Result<(), ToolError> {
    match result {
        Err(ToolError::Rpc { status, .. }) if status.code() == Code::AlreadyExists => Ok(()),
        other => other,
    }
}

async fn seed_one(
    channel: Channel,
    bearer: MetadataValue<Ascii>,
    command: Command,
) -> Result<(), ToolError> {
    match command {
        Command::PublishPolicy { policy } => {
            let request = proto::PublishPolicyRequest {
                source: Some(proto::publish_policy_request::Source::Policy(
                    policy_to_proto(&policy),
                )),
            };
            proto::programme_service_client::ProgrammeServiceClient::new(channel)
                .publish_policy(authed(&bearer, request))
                .await
                .map_err(ToolError::rpc("seeding: PublishPolicy"))?;
        }
        Command::RegisterCenter {
            center,
            name,
            tier,
            listing_basis,
            capacity,
        } => {
            let request = proto::RegisterCenterRequest {
                uscc: center.to_string(),
                name: name.to_string(),
                tier: tier_to_proto(tier),
                listing_basis: listing_basis_to_proto(listing_basis),
                intelligent_pflops: capacity.intelligent_pflops,
                racks: capacity.racks,
            };
            proto::registry_service_client::RegistryServiceClient::new(channel)
                .register_center(authed(&bearer, request))
                .await
                .map_err(ToolError::rpc("seeding: RegisterCenter"))?;
        }
        Command::RegisterEnterprise { enterprise, name } => {
            let request = proto::RegisterEnterpriseRequest {
                uscc: enterprise.to_string(),
                name: name.to_string(),
            };
            proto::registry_service_client::RegistryServiceClient::new(channel)
                .register_enterprise(authed(&bearer, request))
                .await
                .map_err(ToolError::rpc("seeding: RegisterEnterprise"))?;
        }
        Command::ApproveVoucher(approve) => {
            let request = proto::ApproveVoucherRequest {
                voucher_id: approve.voucher.to_string(),
                year: approve.year.get(),
                enterprise: approve.enterprise.to_string(),
                center: approve.center.to_string(),
                contract_number: approve.contract_number.to_string(),
                contract_fee: approve.contract_fee.to_string(),
                term_start: approve.term_start.to_string(),
                term_end: approve.term_end.to_string(),
                requested: approve.requested.to_string(),
                enterprise_class: crate::api::convert::enterprise_class_to_proto(
                    approve.enterprise_class,
                ),
                declarations: crate::api::convert::declarations_to_proto(approve.declarations),
            };
            proto::voucher_service_client::VoucherServiceClient::new(channel)
                .approve_voucher(authed(&bearer, request))
                .await
                .map_err(ToolError::rpc("seeding: ApproveVoucher"))?;
        }
        _ => {}
    }
    Ok(())
}

/// Seeds the population, runs both phases and returns the report.
pub async fn run_load(settings: LoadSettings) -> Result<String, ToolError> {
    run_load_answered(settings, AnswerKind::Every).await
}

/// [`run_load`], its batches posted with the method of `answer` (`PostInvoices` or
/// `PostInvoicesBrief`).
pub async fn run_load_answered(
    settings: LoadSettings,
    answer: AnswerKind,
) -> Result<String, ToolError> {
    // As the server does (`serve`): a fresh buffer of a request or an answer would be
    // backed by huge pages, each zeroed whole (2 MiB) when first touched, on the
    // generator's side of a machine it shares with the server it measures.
    crate::storage::heap::disable_transparent_huge_pages();
    if settings.batch == 0 || settings.batch > SUBMIT_BATCH_LIMIT {
        return Err(ToolError::Setting {
            name: "batch",
            value: settings.batch.to_string(),
            reason: "must be 1 to 8,192 (the ledger's batch limit)",
        });
    }
    if settings.list_clients > ListLoad::CLIENTS_LIMIT {
        return Err(ToolError::Setting {
            name: "list-clients",
            value: settings.list_clients.to_string(),
            reason: "must be at most 64 (each is a connection of its own)",
        });
    }
    let bearer = bearer(&settings.token)?;
    let endpoint = Channel::from_shared(format!("http://{}", settings.target)).map_err(|_| {
        ToolError::Setting {
            name: "target",
            value: settings.target.clone(),
            reason: "is not a host:port",
        }
    })?;
    let mut channels = Vec::new();
    for _ in 0..settings.connections.max(1) {
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ToolError::Connect {
                target: settings.target.clone(),
                source,
            })?;
        channels.push(channel);
    }
    let population = Population::bench_from(
        settings.centers,
        settings.enterprises,
        settings.vouchers,
        today().plus_days(-30),
    )?;
    let seeding = Instant::now();
    seed_over_grpc(&channels[0], &bearer, &population).await?;
    let mut report = format!(
        "seeded {} centers, {} enterprises, {} vouchers in {:.1} s\n",
        settings.centers,
        settings.enterprises,
        settings.vouchers,
        seeding.elapsed().as_secs_f64()
    );
    // Invoice numbers are unique per run: start from the wall clock in microseconds.
    let run_base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64 % 1_000_000_000_000);

    // 1. Batches, closed loop.
    let batches_total = settings.invoices.div_ceil(settings.batch as u64);
    let next_batch = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let templates = WireInvoices::templates_of(&population);
    let started = Instant::now();
    let cpu_before = cpu_time_of_this_process();
    let mut workers = tokio::task::JoinSet::new();
    for (worker, channel) in channels.iter().enumerate() {
        // Each worker's invoices are built ahead by a generator thread while its calls
        // are in flight, so the client's own work does not add to a batch's round trip.
        let mut batches = BatchGenerator::start(
            InvoiceStream::new(
                population.clone(),
                settings.seed + worker as u64,
                run_base + worker as u64 * 100_000_000,
            )?,
            Arc::clone(&templates),
            settings.batch,
            batches_total,
        );
        let mut client = EncodedPostInvoicesClient::new(channel.clone(), 64 << 20, answer);
        let (next_batch, accepted, rejected, bearer) = (
            Arc::clone(&next_batch),
            Arc::clone(&accepted),
            Arc::clone(&rejected),
            bearer.clone(),
        );
        let (batch, invoices) = (settings.batch, settings.invoices);
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next_batch.fetch_add(1, Ordering::Relaxed);
                if index >= batches_total {
                    break;
                }
                let size = (invoices - index * batch as u64).min(batch as u64) as usize;
                let body = batches.next().await?.first(size);
                let sent = Instant::now();
                let tally = client.post(authed(&bearer, body)).await?;
                latencies.push(sent.elapsed());
                accepted.fetch_add(tally.accepted, Ordering::Relaxed);
                rejected.fetch_add(tally.not_accepted(), Ordering::Relaxed);
            }
            Ok::<_, ToolError>(latencies)
        });
    }
    let mut batch_latencies = Vec::new();
    while let Some(done) = workers.join_next().await {
        batch_latencies.extend(done??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = cpu_time_of_this_process();
    let (p50, p99, p999, max) = percentiles(&mut batch_latencies);
    let accepted = accepted.load(Ordering::Relaxed);
    report.push_str(&format!(
        "PostInvoices: {accepted} accepted, {} rejected in {elapsed:.2} s = {:.0} invoices/s ({} connections, batch {}{})\n  batch latency ms: p50 {p50:.2}  p99 {p99:.2}  p999 {p999:.2}  max {max:.2}\n",
        rejected.load(Ordering::Relaxed),
        accepted as f64 / elapsed,
        channels.len(),
        settings.batch,
        // The report's first word stays the same for both methods: scripts read it.
        match answer {
            AnswerKind::Every => "",
            AnswerKind::Brief => ", brief answers: PostInvoicesBrief",
        }
    ));
    // What the load generator itself spent while the batches ran: it shares the machine
    // with the server it measures, so this is CPU the server did not get.
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        if settings.invoices > 0 {
            let per_invoice =
                after.saturating_sub(before).as_secs_f64() * 1e6 / settings.invoices as f64;
            report.push_str(&format!(
                "  load generator CPU over the batches: {per_invoice:.2} µs per invoice (user + system, this process)\n"
            ));
        }
    }

    // 2. Unary calls at a fixed offered rate, open loop, bounded in count and in flight.
    if settings.unary_rate > 0 && settings.unary_seconds > 0 {
        let total = settings.unary_rate * settings.unary_seconds;
        let interval = Duration::from_secs_f64(1.0 / settings.unary_rate as f64);
        let list_load = ListLoad::start(
            &endpoint,
            &settings.target,
            &bearer,
            &population.enterprise_codes(),
            settings.list_clients,
        )
        .await?;
        let stream = InvoiceStream::new(population, settings.seed + 999, run_base + 900_000_000)?;
        let unary_start = Instant::now();
        // The pacer is an OS thread: tokio's timer ticks once a millisecond, so a send
        // paced by it left up to a millisecond late, and counting from the scheduled
        // time charged that tick to the server. A thread's sleep wakes within tens of
        // microseconds; the lag it leaves is reported below.
        let pacer = UnaryPacer {
            runtime: tokio::runtime::Handle::current(),
            channels: channels.clone(),
            bearer: bearer.clone(),
            interval,
            total,
            start: unary_start,
        };
        let paced = tokio::task::spawn_blocking(move || pacer.run(stream)).await??;
        let shed = paced.shed;
        let mut woke_late = paced.woke_late;
        let mut latencies = Vec::with_capacity(total as usize);
        let mut lags = Vec::with_capacity(total as usize);
        let mut failures = 0u64;
        for call in paced.calls {
            let (latency, lag, ok) = call.await?;
            latencies.push(latency);
            lags.push(lag);
            if !ok {
                failures += 1;
            }
        }
        let achieved = latencies.len() as f64 / unary_start.elapsed().as_secs_f64();
        let list_report = list_load.stop().await?;
        let (p50, p99, p999, max) = percentiles(&mut latencies);
        let (lag50, lag99, _, lag_max) = percentiles(&mut lags);
        let (woke50, woke99, _, woke_max) = percentiles(&mut woke_late);
        report.push_str(&format!(
            "PostInvoice unary at {} calls/s offered for {} s: {} calls ({achieved:.0}/s achieved), {failures} failed, {shed} shed\n  latency ms: p50 {p50:.3}  p99 {p99:.3}  p999 {p999:.3}  max {max:.3}\n  (counted from each call's scheduled time; the call left after it by p50 {lag50:.3}  p99 {lag99:.3}  max {lag_max:.3} ms, of which the pacer's thread woke late by p50 {woke50:.3}  p99 {woke99:.3}  max {woke_max:.3} ms)\n",
            settings.unary_rate,
            settings.unary_seconds,
            latencies.len()
        ));
        report.push_str(&list_report);
    }
    Ok(report)
}

/// Offers the unary calls at their scheduled times from an OS thread, spawning each on
/// the runtime: open loop (a slow answer never delays the next send), at most 4,096 in
/// flight (beyond, a call is shed and counted), `total` in all.
struct UnaryPacer {
    runtime: tokio::runtime::Handle,
    channels: Vec<Channel>,
    bearer: MetadataValue<Ascii>,
    interval: Duration,
    total: u64,
    start: Instant,
}

/// A unary call's latency from its scheduled time, how late it left, and whether it
/// was answered without error.
type UnaryCall = tokio::task::JoinHandle<(Duration, Duration, bool)>;

struct PacedCalls {
    calls: Vec<UnaryCall>,
    shed: u64,
    /// How late the pacer's thread woke for each call, before it spawned the call: the
    /// part of a call's lateness that is the operating system's, not the runtime's.
    woke_late: Vec<Duration>,
}

impl UnaryPacer {
    fn run(self, mut stream: InvoiceStream) -> Result<PacedCalls, ToolError> {
        let in_flight_limit = Arc::new(tokio::sync::Semaphore::new(4_096));
        let mut calls = Vec::with_capacity(self.total as usize);
        let mut woke_late = Vec::with_capacity(self.total as usize);
        let mut shed = 0u64;
        for index in 0..self.total {
            let invoice = to_proto_invoice(&stream.next_invoice()?);
            let scheduled = self.start + self.interval.mul_f64(index as f64);
            let now = Instant::now();
            if scheduled > now {
                std::thread::sleep(scheduled - now);
            }
            woke_late.push(scheduled.elapsed());
            let Ok(permit) = Arc::clone(&in_flight_limit).try_acquire_owned() else {
                shed += 1;
                continue;
            };
            let mut client = RedemptionServiceClient::new(
                self.channels[index as usize % self.channels.len()].clone(),
            );
            let request = authed(&self.bearer, invoice);
            calls.push(self.runtime.spawn(async move {
                let lag = scheduled.elapsed();
                let result = client.post_invoice(request).await;
                drop(permit);
                (scheduled.elapsed(), lag, result.is_ok())
            }));
        }
        Ok(PacedCalls {
            calls,
            shed,
            woke_late,
        })
    }
}

/// Builds a worker's batches of invoices, encoded, on a thread of its own, at most two
/// ahead of the calls that send them (a bounded channel), and at most `batches_limit` in
/// all.
struct BatchGenerator {
    receiver: tokio::sync::mpsc::Receiver<Result<EncodedBatch, ToolError>>,
}

/// Most body buffers a generator keeps for reuse (two ahead, one in flight, one spare).
const RECYCLED_BODIES_LIMIT: usize = 4;

/// A batch's body that goes back to its generator when the last `Bytes` of it is dropped
/// (after the call has copied it into its request): a body is ~1.2 MB, and a fresh one
/// per batch was fresh memory per batch, whose first touches cost the generator more
/// than writing the invoices into it (issue 12, twenty-seventh round).
struct RecycledBody {
    bytes: Vec<u8>,
    back: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl AsRef<[u8]> for RecycledBody {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for RecycledBody {
    fn drop(&mut self) {
        // A full pool (or a finished generator) frees it instead.
        let _ = self.back.try_send(std::mem::take(&mut self.bytes));
    }
}

impl BatchGenerator {
    fn start(
        stream: InvoiceStream,
        templates: Arc<[VoucherTemplate]>,
        batch: usize,
        batches_limit: u64,
    ) -> BatchGenerator {
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        tokio::task::spawn_blocking(move || {
            let mut invoices = WireInvoices::sharing(stream, templates);
            let (recycle, recycled) = std::sync::mpsc::sync_channel(RECYCLED_BODIES_LIMIT);
            let mut body_bytes = 0;
            for _ in 0..batches_limit {
                let mut body = recycled
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(body_bytes));
                body.clear();
                let mut ends = Vec::with_capacity(batch);
                for _ in 0..batch {
                    invoices.encode_next(&mut body);
                    ends.push(body.len());
                }
                body_bytes = body.len();
                let encoded = EncodedBatch {
                    body: Bytes::from_owner(RecycledBody {
                        bytes: body,
                        back: recycle.clone(),
                    }),
                    ends,
                };
                // A closed channel: the worker is done (or gave up); stop building.
                if sender.blocking_send(Ok(encoded)).is_err() {
                    return;
                }
            }
        });
        BatchGenerator { receiver }
    }

    /// The next batch; an error if building it failed or the generator stopped early.
    async fn next(&mut self) -> Result<EncodedBatch, ToolError> {
        match self.receiver.recv().await {
            Some(batch) => batch,
            None => Err(ToolError::Setting {
                name: "invoices",
                value: "generator".into(),
                reason: "the invoice generator stopped before the batches ran out",
            }),
        }
    }
}

/// An [`InvoiceStream`]'s invoices written straight into their wire form: each voucher's
/// fields (center, voucher id, issue date, delivery proof) encoded once, and per invoice
/// only its number, amount and payment proof printed between them. The load generator
/// shares the machine with the server it measures, so what it spends per invoice is taken
/// from the server; through a reused `proto::Invoice` and prost it spent ~150 ns per
/// invoice alone and more beside the server, most of it copying the same strings again
/// from three places in memory per voucher (issue 12, twenty-seventh round).
struct WireInvoices {
    stream: InvoiceStream,
    /// Per voucher of the population, its constant fields, encoded; one table for every
    /// worker of a run (at four workers, four copies took four times the cache).
    templates: Arc<[VoucherTemplate]>,
    /// The next draws, taken from the stream ahead of their encoding so that their
    /// vouchers' templates are asked of memory early (a random voucher of thousands is a
    /// cache miss, beside a server that has the caches too); consumed in draw order.
    coming: std::collections::VecDeque<InvoiceDraw>,
    with_payment_proof: bool,
}

/// How many draws [`WireInvoices`] takes ahead.
const DRAWS_AHEAD: usize = 8;

/// One voucher's constant fields of an `Invoice` as prost writes them, in two cache lines:
/// `bytes` holds the fields before the invoice number (1 center, 2 voucher id), then those
/// after the amount (5 issue date, 6 delivery proof).
#[repr(C, align(64))]
struct VoucherTemplate {
    before_number_len: u8,
    after_amount_len: u8,
    bytes: [u8; VOUCHER_TEMPLATE_BYTES],
}

const VOUCHER_TEMPLATE_BYTES: usize = 126;

impl VoucherTemplate {
    /// The template of these encoded fields; `None` if they do not fit.
    fn of(before_number: &[u8], after_amount: &[u8]) -> Option<VoucherTemplate> {
        let mut bytes = [0u8; VOUCHER_TEMPLATE_BYTES];
        let end = before_number.len() + after_amount.len();
        bytes
            .get_mut(..before_number.len())?
            .copy_from_slice(before_number);
        bytes
            .get_mut(before_number.len()..end)?
            .copy_from_slice(after_amount);
        Some(VoucherTemplate {
            before_number_len: u8::try_from(before_number.len()).ok()?,
            after_amount_len: u8::try_from(after_amount.len()).ok()?,
            bytes,
        })
    }

    fn before_number(&self) -> &[u8] {
        &self.bytes[..usize::from(self.before_number_len)]
    }

    fn after_amount(&self) -> &[u8] {
        let start = usize::from(self.before_number_len);
        &self.bytes[start..start + usize::from(self.after_amount_len)]
    }
}

/// `Invoice` field tags (field number << 3 | length-delimited).
const TAG_INVOICE_NUMBER: u8 = 3 << 3 | 2;
const TAG_AMOUNT: u8 = 4 << 3 | 2;
const TAG_PAYMENT_PROOF: u8 = 8 << 3 | 2;

impl WireInvoices {
    #[cfg(test)]
    fn new(stream: InvoiceStream) -> WireInvoices {
        let templates = WireInvoices::templates_of(stream.population());
        WireInvoices::sharing(stream, templates)
    }

    /// The invoices of `stream`, printed from `templates` (those of its population).
    fn sharing(mut stream: InvoiceStream, templates: Arc<[VoucherTemplate]>) -> WireInvoices {
        assert_eq!(
            templates.len(),
            stream.population().vouchers.len(),
            "the templates are those of the stream's population"
        );
        let with_payment_proof =
            stream.population().policy.rules().payee == crate::domain::programme::Payee::Enterprise;
        let coming = (0..DRAWS_AHEAD).map(|_| stream.next_draw()).collect();
        WireInvoices {
            stream,
            templates,
            coming,
            with_payment_proof,
        }
    }

    /// Every voucher's template, in the population's order.
    fn templates_of(population: &Population) -> Arc<[VoucherTemplate]> {
        population
            .vouchers
            .iter()
            .filter_map(|voucher| {
                let mut before_number = Vec::new();
                prost::encoding::string::encode(1, &voucher.center.to_string(), &mut before_number);
                prost::encoding::string::encode(
                    2,
                    &voucher.voucher.to_string(),
                    &mut before_number,
                );
                let mut after_amount = Vec::new();
                let issue_date = InvoiceStream::issue_date(voucher).to_string();
                prost::encoding::string::encode(5, &issue_date, &mut after_amount);
                prost::encoding::string::encode(
                    6,
                    &BENCH_DELIVERY_PROOF.to_string(),
                    &mut after_amount,
                );
                // A USCC, a UUID, a date and a fixed proof: 90 bytes, whatever the voucher.
                let template = VoucherTemplate::of(&before_number, &after_amount);
                assert!(template.is_some(), "a voucher's fields fit its template");
                template
            })
            .collect()
    }

    /// What `to_proto_invoice(&stream.next_invoice()?)` would give.
    #[cfg(test)]
    fn next(&mut self) -> proto::Invoice {
        use prost::Message;
        let mut body = Vec::new();
        self.encode_next(&mut body);
        let mut request = proto::PostInvoicesRequest::decode(body.as_slice()).expect("a request");
        assert_eq!(request.invoices.len(), 1);
        request.invoices.remove(0)
    }

    /// The next draw, and one more taken ahead, whose template is asked of memory now.
    fn next_draw(&mut self) -> InvoiceDraw {
        let ahead = self.stream.next_draw();
        if let Some(template) = self.templates.get(ahead.voucher) {
            crate::domain::state::prefetch_lines(template);
        }
        self.coming.push_back(ahead);
        // Never empty: one was pushed above.
        self.coming.pop_front().unwrap_or(ahead)
    }

    /// Appends the next invoice to `body` as prost writes one element of
    /// `PostInvoicesRequest.invoices` (field 1): fields in number order, the empty
    /// invoice code left out.
    fn encode_next(&mut self, body: &mut Vec<u8>) {
        let draw = self.next_draw();
        let template = &self.templates[draw.voucher];
        // "B" and twelve digits (more if the count ever passes 10^12, as `{:012}` prints).
        let mut number = [0u8; 24];
        let number = print_zero_padded(draw.number, 12, &mut number);
        // The stream draws amounts from 10.00 up: never negative.
        assert!(draw.amount_fen > 0, "a drawn amount is positive");
        let amount_fen = draw.amount_fen.unsigned_abs();
        let mut whole = [0u8; 24];
        let whole = print_zero_padded(amount_fen / 100, 1, &mut whole);
        let fen = amount_fen % 100;
        let number_field = 2 + 1 + number.len();
        let amount_field = 2 + whole.len() + 3;
        let proof_field = if self.with_payment_proof {
            2 + 2 + number.len()
        } else {
            0
        };
        let length = template.before_number().len()
            + number_field
            + amount_field
            + template.after_amount().len()
            + proof_field;
        // Every field here is shorter than 128 bytes, so each length is one byte (the
        // message's may not be: it is a varint).
        body.push(1 << 3 | 2);
        prost::encoding::encode_varint(length as u64, body);
        body.extend_from_slice(template.before_number());
        body.extend_from_slice(&[TAG_INVOICE_NUMBER, (1 + number.len()) as u8, b'B']);
        body.extend_from_slice(number);
        body.extend_from_slice(&[TAG_AMOUNT, (whole.len() + 3) as u8]);
        body.extend_from_slice(whole);
        body.extend_from_slice(&[b'.', b'0' + (fen / 10) as u8, b'0' + (fen % 10) as u8]);
        body.extend_from_slice(template.after_amount());
        if self.with_payment_proof {
            body.extend_from_slice(&[TAG_PAYMENT_PROOF, (2 + number.len()) as u8, b'P', b'V']);
            body.extend_from_slice(number);
        }
    }
}

/// `value` in decimal, at least `width` digits (zeros in front), written at the end of
/// `room`; the digits are returned. A `u64` has at most 20 digits, and `width` is at most
/// the room's 24.
fn print_zero_padded(mut value: u64, width: usize, room: &mut [u8; 24]) -> &[u8] {
    let width = width.min(room.len());
    let mut start = room.len();
    while value > 0 || room.len() - start < width {
        start -= 1;
        room[start] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    &room[start..]
}

/// This process's CPU time so far, user and system, from `/proc/self/stat` (fields 14
/// and 15, in the clock ticks /proc counts in: 1/100 s, Linux's USER_HZ); `None` where
/// there is no such file.
fn cpu_time_of_this_process() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let user: u64 = crate::storage::heap::field_of_stat_line(&stat, 14)?
        .parse()
        .ok()?;
    let system: u64 = crate::storage::heap::field_of_stat_line(&stat, 15)?
        .parse()
        .ok()?;
    Some(Duration::from_millis((user + system).saturating_mul(10)))
}

/// Concurrent `ListVouchers` callers running beside the unary phase. Each is a client of
/// its own with a connection of its own, as the enterprises reading their vouchers are:
/// sharing the poster's connections would queue a unary answer behind a page of vouchers
/// in the client's own HTTP/2 stream, a wait no real poster has.
struct ListLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    clients: tokio::task::JoinSet<Result<Vec<Duration>, ToolError>>,
}

impl ListLoad {
    /// Most calls one list client makes, whatever the phase's length.
    const CALL_LIMIT: usize = 1_000_000;

    /// Most list clients (each opens a connection).
    const CLIENTS_LIMIT: usize = 64;

    async fn start(
        endpoint: &tonic::transport::Endpoint,
        target: &str,
        bearer: &MetadataValue<Ascii>,
        enterprises: &[crate::domain::Uscc],
        count: usize,
    ) -> Result<ListLoad, ToolError> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = tokio::task::JoinSet::new();
        for index in 0..count {
            let Some(enterprise) = enterprises.get(index % enterprises.len().max(1)) else {
                break;
            };
            let channel = endpoint
                .connect()
                .await
                .map_err(|source| ToolError::Connect {
                    target: target.to_owned(),
                    source,
                })?;
            let mut client = proto::voucher_service_client::VoucherServiceClient::new(channel)
                .max_decoding_message_size(64 << 20);
            let (stop, bearer, owner) = (
                Arc::clone(&stop),
                bearer.clone(),
                proto::list_vouchers_request::Owner::Enterprise(enterprise.to_string()),
            );
            clients.spawn(async move {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) && latencies.len() < Self::CALL_LIMIT {
                    let sent = Instant::now();
                    client
                        .list_vouchers(authed(
                            &bearer,
                            proto::ListVouchersRequest {
                                owner: Some(owner.clone()),
                                page_size: 100,
                                page_token: String::new(),
                            },
                        ))
                        .await
                        .map_err(ToolError::rpc("ListVouchers"))?;
                    latencies.push(sent.elapsed());
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Ok(latencies)
            });
        }
        Ok(ListLoad { stop, clients })
    }

    /// Stops the callers and says what they did (empty when there were none).
    async fn stop(mut self) -> Result<String, ToolError> {
        self.stop.store(true, Ordering::Relaxed);
        let count = self.clients.len();
        let mut latencies = Vec::new();
        while let Some(done) = self.clients.join_next().await {
            latencies.extend(done??);
        }
        if count == 0 {
            return Ok(String::new());
        }
        let calls = latencies.len();
        let (p50, p99, _, max) = percentiles(&mut latencies);
        Ok(format!(
            "  beside it: {count} ListVouchers clients made {calls} calls (pages of 100), latency ms p50 {p50:.3}  p99 {p99:.3}  max {max:.3}\n"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For each payee mode (center, then enterprise: with a proof of payment), the wire
    /// invoices and the domain invoices of one small population's stream, drawn alike.
    fn twin_streams(seed: u64, run_base: u64) -> Vec<(WireInvoices, InvoiceStream)> {
        [
            crate::domain::programme::Payee::Center,
            crate::domain::programme::Payee::Enterprise,
        ]
        .into_iter()
        .map(|payee| {
            let start = crate::domain::Date::from_ymd(2026, 3, 1).expect("date");
            let mut population = Population::bench_from(3, 5, 40, start).expect("population");
            let mut rules = population.policy.rules().clone();
            rules.payee = payee;
            population.policy = population.policy.with_rules(rules).expect("rules");
            let wire = WireInvoices::new(
                InvoiceStream::new(population.clone(), seed, run_base).expect("stream"),
            );
            let domain = InvoiceStream::new(population, seed, run_base).expect("stream");
            (wire, domain)
        })
        .collect()
    }

    #[test]
    fn more_list_clients_than_the_limit_are_refused_before_any_connection() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            settings: LoadSettings,
        }
        // Port 1 on loopback: nothing listens, so a connection attempt would fail with
        // another error than the setting's.
        let settings = |clients: &str| {
            Command::parse_from([
                "bench",
                "--target",
                "127.0.0.1:1",
                "--list-clients",
                clients,
            ])
            .settings
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let refused = runtime.block_on(run_load(settings("65")));
        assert!(
            matches!(
                refused,
                Err(ToolError::Setting {
                    name: "list-clients",
                    ..
                })
            ),
            "{refused:?}"
        );
        let allowed = runtime.block_on(run_load(settings("64")));
        assert!(
            matches!(allowed, Err(ToolError::Connect { .. })),
            "{allowed:?}"
        );
    }

    /// The first `count` wire invoices of twin streams are the domain stream's, printed.
    fn assert_the_wire_prints_the_stream(seed: u64, run_base: u64, count: usize) {
        for (mut wire, mut domain) in twin_streams(seed, run_base) {
            for _ in 0..count {
                let expected = to_proto_invoice(&domain.next_invoice().expect("invoice"));
                assert_eq!(wire.next(), expected);
            }
        }
    }

    #[test]
    fn wire_invoices_are_the_streams_invoices_printed() {
        assert_the_wire_prints_the_stream(7, 1_000, 200);
    }

    #[test]
    fn numbers_past_twelve_digits_are_printed_as_the_stream_prints_them() {
        // The invoice number is `B{:012}`: a thirteenth digit widens the field.
        assert_the_wire_prints_the_stream(3, 999_999_999_998, 4);
    }

    #[test]
    fn a_body_goes_back_to_its_generator_once_its_last_bytes_are_dropped() {
        // Given a pool of one and a body sent as bytes, sliced as the last batch is
        let (recycle, recycled) = std::sync::mpsc::sync_channel(1);
        let body = Bytes::from_owner(RecycledBody {
            bytes: b"invoices".to_vec(),
            back: recycle.clone(),
        });
        let prefix = body.slice(..3);
        // When the body is dropped, the slice still holds the buffer
        drop(body);
        assert!(recycled.try_recv().is_err());
        // Then the buffer comes back, whole, when the slice is dropped too
        drop(prefix);
        assert_eq!(recycled.try_recv().expect("recycled"), b"invoices".to_vec());
        // And with the pool full, a further body is freed, not queued
        recycle.try_send(Vec::new()).expect("room for one");
        drop(Bytes::from_owner(RecycledBody {
            bytes: b"more".to_vec(),
            back: recycle,
        }));
        assert_eq!(
            recycled.try_recv().expect("the one queued"),
            Vec::<u8>::new()
        );
        assert!(recycled.try_recv().is_err());
    }

    #[test]
    fn digits_are_printed_zero_padded_to_their_width() {
        let mut room = [0u8; 24];
        for (value, width, printed) in [
            (0, 1, "0"),
            (7, 1, "7"),
            (0, 12, "000000000000"),
            (42, 12, "000000000042"),
            (1_000_000_000_000, 12, "1000000000000"),
            (u64::MAX, 12, "18446744073709551615"),
            (9_999, 1, "9999"),
        ] {
            assert_eq!(
                print_zero_padded(value, width, &mut room),
                printed.as_bytes(),
                "{value} at width {width}"
            );
            assert_eq!(format!("{value:0width$}"), printed);
        }
    }

    #[test]
    fn an_encoded_batch_is_the_request_prost_writes() {
        use prost::Message;
        for (mut wire, mut domain) in twin_streams(11, 5_000) {
            let mut body = Vec::new();
            let mut ends = Vec::new();
            let mut expected = proto::PostInvoicesRequest::default();
            for _ in 0..300 {
                wire.encode_next(&mut body);
                ends.push(body.len());
                expected
                    .invoices
                    .push(to_proto_invoice(&domain.next_invoice().expect("invoice")));
            }
            let batch = EncodedBatch {
                body: body.into(),
                ends,
            };
            assert_eq!(batch.body, expected.encode_to_vec());
            // The run's last, shorter batch is a prefix that reads as its first invoices.
            let prefix = proto::PostInvoicesRequest::decode(batch.first(123)).expect("prefix");
            assert_eq!(prefix.invoices, expected.invoices[..123]);
        }
    }
}
