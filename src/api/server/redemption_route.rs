//! [`RedemptionRoute`]: `voucher.v1.RedemptionService` as the router sees it. Its
//! `PostInvoices` calls take the fast path ([`crate::api::batch_wire`]: the request read
//! as slices of its body, the answer written straight from the replies); every other
//! method goes to the generated `RedemptionServiceServer` unchanged.
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

use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::api::auth::principal;
use crate::api::batch_wire::{BatchAnswer, InvoiceBatch, PostInvoicesCodec};
use crate::api::proto::redemption_service_server::RedemptionServiceServer;
use crate::api::services::{origin_of, Api};

/// The path of the batched call, as the generated server matches it.
pub const POST_INVOICES_PATH: &str = "/voucher.v1.RedemptionService/PostInvoices";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The redemption service: the fast path for `PostInvoices`, the generated server for
/// the rest.
#[derive(Clone)]
pub struct RedemptionRoute {
    api: Arc<Api>,
    generated: RedemptionServiceServer<Api>,
    /// The largest `PostInvoices` request message read (bytes).
    max_message_bytes: usize,
}

impl RedemptionRoute {
    pub fn new(api: Api, max_message_bytes: usize) -> RedemptionRoute {
        RedemptionRoute {
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
        if request.uri().path() == POST_INVOICES_PATH {
            let method = PostInvoicesFastPath(Arc::clone(&self.api));
            let max_message_bytes = self.max_message_bytes;
            Box::pin(async move {
                let mut grpc = Grpc::new(PostInvoicesCodec)
                    .apply_max_message_size_config(Some(max_message_bytes), None);
                Ok(grpc.unary(method, request).await)
            })
        } else {
            let mut generated = self.generated.clone();
            Box::pin(async move { tower_service::Service::call(&mut generated, request).await })
        }
    }
}

/// `PostInvoices` over [`InvoiceBatch`] and [`BatchAnswer`].
struct PostInvoicesFastPath(Arc<Api>);

impl UnaryService<InvoiceBatch> for PostInvoicesFastPath {
    type Response = BatchAnswer;
    type Future = BoxFuture<Result<Response<BatchAnswer>, Status>>;

    fn call(&mut self, request: Request<InvoiceBatch>) -> Self::Future {
        let api = Arc::clone(&self.0);
        Box::pin(async move {
            let caller = principal(&request)?.clone();
            let batch = request.get_ref();
            // A batch above the limit was only counted: refuse it by its count.
            Api::check_invoice_batch_size(batch.len())?;
            let answer = api
                .post_invoice_batch(&caller, || origin_of(&request), batch.invoices())
                .await?;
            Ok(Response::new(answer))
        })
    }
}
