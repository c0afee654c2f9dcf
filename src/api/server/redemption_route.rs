//! [`RedemptionRoute`]: `voucher.v1.RedemptionService` as the router sees it. Its
//! `PostInvoices` and `PostInvoicesBrief` calls take the fast path
//! ([`crate::api::batch_wire`]: the request read as slices of its body, the answer
//! written straight from the replies); every other method goes to the generated
//! `RedemptionServiceServer` unchanged.
//!
//! Clients see one service: the method names, messages and statuses are those of
//! redemption.proto, and reflection describes it as before. The gate runs before either
//! path (authentication, the per-method message limit, the access log), since it wraps
//! the router.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::api::auth::{principal, Principal};
use crate::api::batch_wire::{
    BatchAnswer, BatchAnswerBuilder, BriefBatchAnswer, InvoiceBatch, PostInvoicesCodec, WireAnswer,
};
use crate::api::proto::redemption_service_server::RedemptionServiceServer;
use crate::api::services::{origin_of, Api, ParsedInvoices};
use crate::domain::Origin;

/// The path of the batched call, as the generated server matches it.
pub const POST_INVOICES_PATH: &str = "/voucher.v1.RedemptionService/PostInvoices";
/// The batched call with the brief answer.
pub const POST_INVOICES_BRIEF_PATH: &str = "/voucher.v1.RedemptionService/PostInvoicesBrief";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The redemption service: the fast path for `PostInvoices` and `PostInvoicesBrief`,
/// the generated server for the rest.
#[derive(Clone)]
pub struct RedemptionRoute {
    api: Arc<Api>,
    /// Permits to parse a batch's second half on a blocking thread (see
    /// [`parse_in_two_halves`]): one per core but the network thread's.
    parsing_helpers: Arc<Semaphore>,
    generated: RedemptionServiceServer<Api>,
    /// The largest `PostInvoices` request message read (bytes).
    max_message_bytes: usize,
}

impl RedemptionRoute {
    pub fn new(api: Api, max_message_bytes: usize) -> RedemptionRoute {
        // On two cores: one helper, the core the network thread is not on.
        let helpers = std::thread::available_parallelism()
            .map_or(1, |cores| cores.get().saturating_sub(1))
            .max(1);
        RedemptionRoute {
            parsing_helpers: Arc::new(Semaphore::new(helpers)),
            generated: RedemptionServiceServer::new(api.clone())
                .max_decoding_message_size(max_message_bytes),
            api: Arc::new(api),
            max_message_bytes,
        }
    }
}

impl NamedService for RedemptionRoute {
    const NAME: &'static str = <RedemptionServiceServer<Api> as NamedService>::NAME;
}

impl<Body> tower_service::Service<http::Request<Body>> for RedemptionRoute
where
    Body: http_body::Body + Send + 'static,
    Body::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match request.uri().path() {
            POST_INVOICES_PATH => self.fast_path::<BatchAnswer, Body>(request),
            POST_INVOICES_BRIEF_PATH => self.fast_path::<BriefBatchAnswer, Body>(request),
            _ => {
                let mut generated = self.generated.clone();
                Box::pin(async move { tower_service::Service::call(&mut generated, request).await })
            }
        }
    }
}

impl RedemptionRoute {
    /// A batch call on the fast path, answered with `A`.
    fn fast_path<A, Body>(
        &self,
        request: http::Request<Body>,
    ) -> BoxFuture<Result<http::Response<tonic::body::Body>, Infallible>>
    where
        A: BatchAnswerBuilder + WireAnswer,
        Body: http_body::Body + Send + 'static,
        Body::Error: Into<tonic::codegen::StdError> + Send + 'static,
    {
        let method = PostInvoicesFastPath::<A> {
            api: Arc::clone(&self.api),
            parsing_helpers: Arc::clone(&self.parsing_helpers),
            answer: std::marker::PhantomData,
        };
        let max_message_bytes = self.max_message_bytes;
        Box::pin(async move {
            let mut grpc = Grpc::new(PostInvoicesCodec::<A>::default())
                .apply_max_message_size_config(Some(max_message_bytes), None);
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// `PostInvoices` (`A` = [`BatchAnswer`]) or `PostInvoicesBrief` (`A` =
/// [`BriefBatchAnswer`]) over [`InvoiceBatch`].
struct PostInvoicesFastPath<A> {
    api: Arc<Api>,
    parsing_helpers: Arc<Semaphore>,
    answer: std::marker::PhantomData<fn() -> A>,
}

/// From this many invoices a batch's second half is parsed on a blocking thread while the
/// network thread parses the first. Parsing costs ~0.35 µs an invoice here, handing the
/// half over ~20 µs; at one connection nothing else runs while a batch is parsed, and
/// parsing 8,189 invoices (~3 ms) was a tenth of the batch's round trip (issue 12).
const PARSE_IN_TWO_HALVES_FROM: usize = 1024;

impl<A> UnaryService<InvoiceBatch> for PostInvoicesFastPath<A>
where
    A: BatchAnswerBuilder + WireAnswer,
{
    type Response = A;
    type Future = BoxFuture<Result<Response<A>, Status>>;

    fn call(&mut self, request: Request<InvoiceBatch>) -> Self::Future {
        let api = Arc::clone(&self.api);
        let parsing_helpers = Arc::clone(&self.parsing_helpers);
        Box::pin(async move {
            let caller = principal(&request)?.clone();
            // The origin (the principal and the request id) goes into every command's
            // envelope as it is parsed.
            let origin = origin_of(&request)?;
            let batch = request.into_inner();
            // A batch above the limit was only counted: refuse it by its count.
            Api::check_invoice_batch_size(batch.len())?;
            let parsed =
                parse_in_two_halves(caller, origin, Arc::new(batch), &parsing_helpers).await?;
            let answer = api.submit_invoice_batch::<A>(parsed).await?;
            Ok(Response::new(answer))
        })
    }
}

/// Parses a batch's invoices: in one pass on this thread, or, for a batch of
/// [`PARSE_IN_TWO_HALVES_FROM`] invoices or more while a helper permit is free, the
/// second half on a blocking thread beside this one. A client cannot make the server
/// start more threads than it has permits: without one the batch is parsed here. The
/// halves are joined in order, and a refusal in the first half wins over one in the
/// second, so the result is that of one pass.
async fn parse_in_two_halves(
    caller: Principal,
    origin: Origin,
    batch: Arc<InvoiceBatch>,
    parsing_helpers: &Arc<Semaphore>,
) -> Result<ParsedInvoices, Status> {
    let count = batch.invoices().len();
    let permit = if count >= PARSE_IN_TWO_HALVES_FROM {
        Arc::clone(parsing_helpers).try_acquire_owned().ok()
    } else {
        None
    };
    let Some(permit) = permit else {
        return ParsedInvoices::parse(&caller, &origin, batch.invoices(), 0, count);
    };
    let middle = count / 2;
    let second_half = {
        let (caller, origin, batch) = (caller.clone(), origin.clone(), Arc::clone(&batch));
        tokio::task::spawn_blocking(move || {
            // Held until the half is parsed, even if the call was given up meanwhile.
            let _permit = permit;
            let items = batch.invoices_in(middle..count);
            ParsedInvoices::parse(&caller, &origin, items, middle, count - middle)
        })
    };
    // The first half has room for the whole batch: the second is appended to it in
    // place (growing it would move the first half, ~1% of the server's CPU, issue 12).
    let first_half =
        ParsedInvoices::parse(&caller, &origin, batch.invoices_in(0..middle), 0, count);
    // Awaited even when the first half was refused (rare), so that the call's work ends
    // with the call.
    let second_half = second_half.await.map_err(|error| {
        if error.is_cancelled() {
            Status::unavailable("the server is shutting down")
        } else {
            tracing::error!(%error, "parsing the second half of a PostInvoices batch failed");
            Status::internal("parsing the batch failed")
        }
    })?;
    let mut parsed = first_half?;
    parsed.append(second_half?);
    debug_assert_eq!(parsed.len(), count, "every item of the batch has a slot");
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use prost::Message;

    use super::*;
    use crate::api::auth::Role;
    use crate::api::proto;
    use crate::domain::Uscc;

    fn center(body: &str) -> Uscc {
        Uscc::from_body(body).expect("a valid USCC body")
    }

    fn caller() -> Principal {
        let ours = center("91330100MA2H00001");
        Principal {
            name: ours.to_string(),
            role: Role::Center,
            subject: Some(ours),
        }
    }

    /// `count` invoices of the caller's center, every seventh with an amount that does not
    /// parse (answered `invalid`: a foreign one among them is refused for its amount, not
    /// its center), and those at `foreign` naming another center.
    fn batch(count: usize, foreign: &[usize]) -> Arc<InvoiceBatch> {
        let (ours, theirs) = (center("91330100MA2H00001"), center("91330106MA0000001"));
        let invoices = (0..count)
            .map(|number| proto::Invoice {
                center: if foreign.contains(&number) {
                    &theirs
                } else {
                    &ours
                }
                .to_string(),
                voucher_id: "0195f2c8-7a31-7d2e-9a55-5b1f0e8d3c21".into(),
                invoice_number: format!("发票-{number}"),
                amount: if number % 7 == 3 {
                    format!("{number}.2.5")
                } else {
                    format!("{number}.25")
                },
                issue_date: "2026-03-31".into(),
                delivery_proof: "验收单 A-7".into(),
                invoice_code: String::new(),
                payment_proof: String::new(),
            })
            .collect();
        let body = proto::PostInvoicesRequest { invoices }.encode_to_vec();
        Arc::new(InvoiceBatch::decode(Bytes::from(body)).expect("a well-formed request"))
    }

    fn one_helper() -> Arc<Semaphore> {
        Arc::new(Semaphore::new(1))
    }

    fn origin() -> Origin {
        Origin::system("a test of the parse")
    }

    fn in_one_pass(batch: &InvoiceBatch) -> Result<ParsedInvoices, Status> {
        let count = batch.invoices().len();
        ParsedInvoices::parse(&caller(), &origin(), batch.invoices(), 0, count)
    }

    #[tokio::test]
    async fn a_batch_parsed_in_two_halves_is_the_batch_parsed_in_one_pass() {
        let sizes = [
            1,
            PARSE_IN_TWO_HALVES_FROM - 1,
            PARSE_IN_TWO_HALVES_FROM,
            PARSE_IN_TWO_HALVES_FROM + 1,
            8_189,
        ];
        for count in sizes {
            let batch = batch(count, &[]);
            let halves = parse_in_two_halves(caller(), origin(), Arc::clone(&batch), &one_helper())
                .await
                .expect("no foreign invoice");
            let whole = in_one_pass(&batch).expect("no foreign invoice");
            assert_eq!(halves.len(), count);
            // `assert!`, not `assert_eq!`: a failure would print 8,189 items twice.
            assert!(
                halves == whole,
                "{count} invoices: the halves differ from one pass"
            );
            // The invalid items of the second half name their place in the whole batch.
            if count > PARSE_IN_TWO_HALVES_FROM {
                let last_invalid = (0..count).rev().find(|number| number % 7 == 3);
                let expected = format!("invoices[{}]:", last_invalid.unwrap_or_default());
                assert!(
                    halves
                        .invalid_messages()
                        .any(|message| message.starts_with(&expected)),
                    "{expected} among the answers of {count} invoices"
                );
            }
        }
    }

    #[tokio::test]
    async fn without_a_free_helper_a_large_batch_is_parsed_in_one_pass_with_the_same_result() {
        let helpers = one_helper();
        let taken = Arc::clone(&helpers)
            .try_acquire_owned()
            .expect("the only permit");
        let batch = batch(8_189, &[]);
        let parsed = parse_in_two_halves(caller(), origin(), Arc::clone(&batch), &helpers)
            .await
            .expect("no foreign invoice");
        assert!(parsed == in_one_pass(&batch).expect("no foreign invoice"));
        drop(taken);
        // The permit a split takes is given back once the second half is parsed.
        parse_in_two_halves(caller(), origin(), Arc::clone(&batch), &helpers)
            .await
            .expect("no foreign invoice");
        assert_eq!(helpers.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_foreign_invoice_in_either_half_refuses_the_batch_and_the_first_is_named() {
        for (foreign, named) in [
            (vec![5_000], 5_000),
            (vec![11], 11),
            (vec![11, 5_000], 11),
            // Either side of the middle (4,094): the first half's last and the second's first.
            (vec![4_093, 4_094], 4_093),
        ] {
            let batch = batch(8_189, &foreign);
            let Err(refusal) =
                parse_in_two_halves(caller(), origin(), Arc::clone(&batch), &one_helper()).await
            else {
                panic!("a foreign invoice at {foreign:?} did not refuse the batch");
            };
            assert_eq!(refusal.code(), tonic::Code::PermissionDenied);
            let expected = format!("invoices[{named}]:");
            assert!(
                refusal.message().starts_with(&expected),
                "{foreign:?}: {}",
                refusal.message()
            );
            let Err(one_pass) = in_one_pass(&batch) else {
                panic!("a foreign invoice at {foreign:?} did not refuse the batch in one pass");
            };
            assert_eq!(refusal.message(), one_pass.message());
        }
    }
}
