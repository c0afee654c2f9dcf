//! `LedgerService`: enterprise usage, and the event log read back or followed live.

use std::collections::HashMap;
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_stream::Stream;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

use super::*;
use crate::api::errors::ERROR_DOMAIN;
use crate::api::server::gate::CallSettings;

/// Completes once the server starts shutting down.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await.map(|_| ());
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::EventRecord, Status>> + Send>>;

#[tonic::async_trait]
impl LedgerService for Api {
    async fn get_enterprise_usage(
        &self,
        request: Request<proto::GetEnterpriseUsageRequest>,
    ) -> Result<Response<proto::GetEnterpriseUsageResponse>, Status> {
        let body = request.get_ref();
        let enterprise = convert::uscc("enterprise", &body.enterprise)?;
        let year = convert::year("year", body.year)?;
        principal(&request)?.require_enterprise_reader(&enterprise, "read usage")?;
        let (found, as_of) = self
            .read(|state| {
                state.enterprise(&enterprise)?;
                let cap = state.enterprise_cap(&enterprise, year)?;
                Some((cap, state.enterprise_usage(&enterprise, year)))
            })
            .await?;
        let (cap, usage) = found.ok_or_else(|| {
            Status::not_found(format!(
                "enterprise {enterprise} is not registered or {year} has no policy"
            ))
        })?;
        Ok(Response::new(proto::GetEnterpriseUsageResponse {
            enterprise: enterprise.to_string(),
            year: year.get(),
            cap: cap.to_string(),
            held: usage.held.to_string(),
            redeemed: usage.redeemed.to_string(),
            free: usage.free_under(cap).to_string(),
            as_of_sequence: as_of,
        }))
    }

    async fn read_events(
        &self,
        request: Request<proto::ReadEventsRequest>,
    ) -> Result<Response<proto::ReadEventsResponse>, Status> {
        principal(&request)?.require_reader_of_everything("read the event log")?;
        let settings = call_settings(&request);
        let body = request.get_ref();
        let limit = match body.limit {
            0 => READ_EVENTS_DEFAULT,
            limit if limit > READ_EVENTS_LIMIT => {
                return Err(invalid_field(
                    "limit",
                    format!("{limit} is above {READ_EVENTS_LIMIT}"),
                ))
            }
            limit => limit,
        };
        let (events, next_sequence) = self.event_page(
            body.from_sequence.max(1),
            limit as usize,
            settings.read_events_page_bytes,
        )?;
        Ok(Response::new(proto::ReadEventsResponse {
            events,
            last_sequence: self.engine.committed_sequence(),
            next_sequence,
        }))
    }

    type SubscribeEventsStream = EventStream;

    async fn subscribe_events(
        &self,
        request: Request<proto::SubscribeEventsRequest>,
    ) -> Result<Response<Self::SubscribeEventsStream>, Status> {
        principal(&request)?.require_reader_of_everything("subscribe to the event log")?;
        let stall_limit = call_settings(&request).subscriber_stall;
        let from = request.get_ref().from_sequence.max(1);
        let mut next = from;
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_BUFFER);
        let (end_sender, end_receiver) = oneshot::channel();
        let api = self.clone();
        let counted = SubscriberCounted::new(self.subscriber_count());
        tokio::spawn(async move {
            let _counted = counted;
            let mut committed = api.engine.committed_watch();
            let mut shutdown = api.shutdown.clone();
            loop {
                // Catch up from the stored log in bounded chunks, then wait for more.
                loop {
                    let durable = *committed.borrow();
                    if next > durable {
                        break;
                    }
                    let chunk = match api.stored_events(next, SUBSCRIBER_BUFFER) {
                        Ok(chunk) => chunk,
                        Err(status) => {
                            let _ = sender.send(Err(status)).await;
                            return;
                        }
                    };
                    if chunk.is_empty() {
                        break;
                    }
                    for record in chunk {
                        next = record.sequence + 1;
                        let sent = tokio::select! {
                            sent = tokio::time::timeout(stall_limit, sender.send(Ok(record))) => sent,
                            _ = stopped(&mut shutdown) => {
                                let _ = end_sender.send(Ending::ShuttingDown);
                                return;
                            }
                        };
                        match sent {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => return, // the client went away
                            Err(_) => {
                                tracing::warn!(
                                    stall_ms = stall_limit.as_millis() as u64,
                                    "a subscriber stopped reading: ending its stream"
                                );
                                // The stream yields this, with where to resume, in
                                // place of what it still buffers (the channel is full).
                                let _ = end_sender.send(Ending::Stalled(stall_limit));
                                return;
                            }
                        }
                    }
                }
                tokio::select! {
                    changed = committed.changed() => if changed.is_err() { return },
                    _ = stopped(&mut shutdown) => {
                        let _ = end_sender.send(Ending::ShuttingDown);
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(Subscription {
            events: ReceiverStream::new(receiver),
            ending: Some(end_receiver),
            next: from,
            done: false,
        })))
    }
}

/// Counts a subscription as open for as long as its task runs (metrics).
struct SubscriberCounted(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl SubscriberCounted {
    fn new(count: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> SubscriberCounted {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SubscriberCounted(count)
    }
}

impl Drop for SubscriberCounted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The server's settings for this call, put in the request by the server's gate.
fn call_settings<T>(request: &Request<T>) -> CallSettings {
    request
        .extensions()
        .get::<CallSettings>()
        .copied()
        .unwrap_or(CallSettings {
            subscriber_stall: SUBSCRIBER_STALL_LIMIT,
            ..CallSettings::default()
        })
}

impl Api {
    /// Stored events from `from`: at most `limit` of them and at most `max_bytes` encoded
    /// (but at least one, if any), and the sequence the next page starts at.
    fn event_page(
        &self,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<(Vec<proto::EventRecord>, u64), Status> {
        let mut events = Vec::with_capacity(limit.min(1_024));
        let mut bytes = 0;
        let mut next = from;
        self.engine
            .reader()
            .read_events(from, |logged| {
                let chain_hash = logged.chain_hash.to_string();
                let record = event_to_proto(&logged.into_sequenced(), &chain_hash);
                // As a repeated field of the reply: tag, length, message.
                let length = prost::Message::encoded_len(&record);
                let size = 1 + prost::encoding::encoded_len_varint(length as u64) + length;
                if !events.is_empty() && bytes + size > max_bytes {
                    return ControlFlow::Break(());
                }
                bytes += size;
                next = record.sequence + 1;
                events.push(record);
                if events.len() < limit {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            })
            .map_err(|error| match error {
                crate::storage::LogError::Record(error) => Status::data_loss(error.to_string()),
                crate::storage::LogError::Store(error) => Status::internal(error.to_string()),
            })?;
        Ok((events, next))
    }
}

/// Why the server ended a subscription.
enum Ending {
    /// The subscriber accepted nothing for this long.
    Stalled(Duration),
    ShuttingDown,
}

/// The subscriber's stream: the events as the server sends them, then, if the server
/// ends it, a status that says why and the sequence to subscribe from again (the first
/// event this stream did not yield).
struct Subscription {
    events: ReceiverStream<Result<proto::EventRecord, Status>>,
    ending: Option<oneshot::Receiver<Ending>>,
    next: u64,
    done: bool,
}

impl Stream for Subscription {
    type Item = Result<proto::EventRecord, Status>;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(ending) = this.ending.as_mut() {
            if let Poll::Ready(ended) = Pin::new(ending).poll(context) {
                this.ending = None;
                if let Ok(ending) = ended {
                    this.done = true;
                    return Poll::Ready(Some(Err(ended_status(ending, this.next))));
                }
            }
        }
        match Pin::new(&mut this.events).poll_next(context) {
            Poll::Ready(Some(Ok(record))) => {
                this.next = record.sequence + 1;
                Poll::Ready(Some(Ok(record)))
            }
            Poll::Ready(Some(Err(status))) => {
                this.done = true;
                Poll::Ready(Some(Err(status)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// RESOURCE_EXHAUSTED (stalled) or UNAVAILABLE (shutting down), with `ErrorInfo` whose
/// metadata `resume_from_sequence` is where to subscribe again.
fn ended_status(ending: Ending, resume_from: u64) -> Status {
    let (code, reason, message) = match ending {
        Ending::Stalled(limit) => (
            Code::ResourceExhausted,
            "SUBSCRIBER_STALLED",
            format!(
                "the subscriber accepted no event for {} ms and was disconnected; \
                 subscribe again with from_sequence {resume_from}",
                limit.as_millis()
            ),
        ),
        Ending::ShuttingDown => (
            Code::Unavailable,
            "SHUTTING_DOWN",
            format!(
                "the server is shutting down; subscribe again with from_sequence {resume_from}"
            ),
        ),
    };
    let mut metadata = HashMap::new();
    metadata.insert("resume_from_sequence".to_string(), resume_from.to_string());
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}
