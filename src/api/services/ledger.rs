//! `LedgerService`: enterprise usage, and the event log read back or followed live.

use super::*;

/// Completes once the server starts shutting down.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await.map(|_| ());
}

type EventStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<proto::EventRecord, Status>> + Send>>;

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
        let events = self.stored_events(body.from_sequence, limit as usize)?;
        Ok(Response::new(proto::ReadEventsResponse {
            events,
            last_sequence: self.engine.committed_sequence(),
        }))
    }

    type SubscribeEventsStream = EventStream;

    async fn subscribe_events(
        &self,
        request: Request<proto::SubscribeEventsRequest>,
    ) -> Result<Response<Self::SubscribeEventsStream>, Status> {
        principal(&request)?.require_reader_of_everything("subscribe to the event log")?;
        let mut next = request.get_ref().from_sequence.max(1);
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_BUFFER);
        let api = self.clone();
        tokio::spawn(async move {
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
                            sent = tokio::time::timeout(SUBSCRIBER_STALL_LIMIT, sender.send(Ok(record))) => sent,
                            _ = stopped(&mut shutdown) => return,
                        };
                        match sent {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => return, // the client went away
                            Err(_) => {
                                let _ = sender.try_send(Err(Status::resource_exhausted(
                                    "subscriber stopped reading",
                                )));
                                return;
                            }
                        }
                    }
                }
                tokio::select! {
                    changed = committed.changed() => if changed.is_err() { return },
                    _ = stopped(&mut shutdown) => {
                        let _ = sender.send(Err(Status::unavailable("the server is shutting down"))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
