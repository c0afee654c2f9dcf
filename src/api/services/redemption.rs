//! `RedemptionService`: centers post invoices (one or a batch), reverse and read them.

use super::*;
use crate::api::batch_wire::{
    AcceptedInvoice, BatchAnswer, BatchAnswerBuilder, BriefBatchAnswer, InvoiceAmounts,
    InvoiceAnswer,
};
use crate::domain::{LedgerState, Payee, Uscc, VoucherId};
use crate::ledger::Submission;

/// The answer to an invoice of gross `amount`: the subsidy the bureau pays the payee
/// and what the enterprise pays the center (the rest, or all of it in a reimbursement
/// year; nothing once the invoice is reversed).
fn accepted_answer(reply: &Reply, amount: Money, payee: Payee) -> AcceptedInvoice {
    match reply.invoice_outcome() {
        Some((outcome, second_subsidy)) => AcceptedInvoice {
            amounts: Some(InvoiceAmounts {
                subsidy: outcome.subsidy,
                // A point-of-sale discount covers both sources' subsidy.
                enterprise_pays: convert::enterprise_pays(
                    payee,
                    amount,
                    outcome.subsidy.plus(second_subsidy),
                    outcome.reversed,
                ),
                second_subsidy,
            }),
            sequence: outcome.sequence,
            duplicate: outcome.duplicate,
            reversed: outcome.reversed,
        },
        // A PostInvoice is always answered with an invoice outcome; anything else would
        // be a bug, answered with its sequence and no amounts rather than a panic.
        None => AcceptedInvoice {
            amounts: None,
            sequence: reply.last_sequence(),
            duplicate: false,
            reversed: false,
        },
    }
}

/// A batch's items parsed into commands, before they are submitted: one slot per item
/// in order (`Some` for an item answered `invalid`), the commands in their envelopes
/// (the engine's writer decides them where they lie when the batch is this call alone),
/// and per command its amount and voucher, which the answer needs.
#[derive(Debug, PartialEq)]
pub(crate) struct ParsedInvoices {
    results: Vec<Option<InvoiceAnswer>>,
    submission: Submission,
    amounts: Vec<Money>,
    vouchers: Vec<VoucherId>,
}

impl ParsedInvoices {
    /// Parses `items`, the batch's items from index `first_index` on (the index names
    /// an item in its `invalid` answer and in the refusal), into commands from `origin`.
    /// Fails if one of them names a center other than the caller's: one foreign invoice
    /// refuses the whole batch. `room` is how many items the whole batch has from here
    /// on, so that parts parsed apart are appended without moving these (`append`).
    pub(crate) fn parse<'a>(
        caller: &crate::api::auth::Principal,
        origin: &Origin,
        items: impl ExactSizeIterator<Item = Result<convert::InvoiceText<'a>, String>>,
        first_index: usize,
        room: usize,
    ) -> Result<ParsedInvoices, Status> {
        let room = room.max(items.len());
        let mut parsed = ParsedInvoices {
            results: Vec::with_capacity(room),
            submission: Submission::with_room(origin.clone(), room),
            amounts: Vec::with_capacity(room),
            vouchers: Vec::with_capacity(room),
        };
        // A center posts its own invoices, so a batch names one center nearly always: its
        // code is parsed (and its check character computed) once, then each invoice's
        // center text is compared with the last one parsed (~9% of parsing a batch had
        // been this parse, issue 12, thirty-eighth round).
        let mut last_center: Option<(&'a str, Uscc)> = None;
        for (index, item) in (first_index..).zip(items) {
            match item.and_then(|text| {
                let center = match last_center {
                    Some((seen, center)) if seen == text.center => center,
                    _ => {
                        let center = convert::uscc("center", text.center)
                            .map_err(|status| status.message().to_string())?;
                        last_center = Some((text.center, center));
                        center
                    }
                };
                convert::invoice_of_center(center, text)
                    .map_err(|status| status.message().to_string())
            }) {
                Ok(invoice) => {
                    caller
                        .require_center_writer(&invoice.center, "post invoices")
                        .map_err(|status| {
                            Status::permission_denied(format!(
                                "invoices[{index}]: {}",
                                status.message()
                            ))
                        })?;
                    parsed.amounts.push(invoice.amount);
                    parsed.vouchers.push(invoice.voucher);
                    parsed.submission.push(Command::PostInvoice(invoice));
                    parsed.results.push(None);
                }
                Err(message) => parsed.results.push(Some(InvoiceAnswer::Invalid(format!(
                    "invoices[{index}]: {message}"
                )))),
            }
        }
        Ok(parsed)
    }

    /// The items of the batch that follow these, parsed apart, appended in order.
    pub(crate) fn append(&mut self, later: ParsedInvoices) {
        self.results.extend(later.results);
        self.submission.append(later.submission);
        self.amounts.extend(later.amounts);
        self.vouchers.extend(later.vouchers);
    }

    /// How many items these are (parsed or not).
    pub(crate) fn len(&self) -> usize {
        self.results.len()
    }

    /// The reasons given for the items that did not parse, in order.
    #[cfg(test)]
    pub(crate) fn invalid_messages(&self) -> impl Iterator<Item = &str> {
        self.results.iter().filter_map(|slot| match slot {
            Some(InvoiceAnswer::Invalid(message)) => Some(message.as_str()),
            _ => None,
        })
    }
}

/// Who is paid for each voucher's invoices (the center for an unknown voucher: its
/// invoice was refused, and the answer carries no amounts that depend on it).
fn payees_of(state: &LedgerState, vouchers: &[VoucherId]) -> Vec<Payee> {
    // Without a reimbursement year every payee is the center: no voucher lookups (a
    // cache miss each, ~1% of the server's CPU on the batch path).
    if !state.any_enterprise_payee() {
        return vec![Payee::Center; vouchers.len()];
    }
    vouchers
        .iter()
        .map(|voucher| {
            state
                .voucher(voucher)
                .map_or(Payee::Center, |found| state.payee_kind(found.terms.year))
        })
        .collect()
}

impl Api {
    /// A batch holds at least one invoice and at most [`SUBMIT_BATCH_LIMIT`].
    pub(crate) fn check_invoice_batch_size(count: usize) -> Result<(), Status> {
        if count == 0 {
            return Err(invalid_field("invoices", "must hold at least one invoice"));
        }
        if count > SUBMIT_BATCH_LIMIT {
            return Err(invalid_field(
                "invoices",
                format!("{count} invoices is above the limit of {SUBMIT_BATCH_LIMIT}"),
            ));
        }
        Ok(())
    }

    /// PostInvoices (or PostInvoicesBrief, by the answer `A` built), whichever way the
    /// request was decoded, from `origin` (the caller's
    /// request id is read before anything else, so a malformed one refuses the call
    /// whatever its items): checks the batch's size,
    /// parses each item (a malformed one is answered `invalid` and not submitted),
    /// refuses the whole batch if one item names another center, submits the rest as one
    /// batch and answers every item in order once the batch is durable.
    pub(crate) async fn post_invoice_batch<'a, A: BatchAnswerBuilder>(
        &self,
        caller: &crate::api::auth::Principal,
        origin: &Origin,
        items: impl ExactSizeIterator<Item = Result<convert::InvoiceText<'a>, String>>,
    ) -> Result<A, Status> {
        Api::check_invoice_batch_size(items.len())?;
        let room = items.len();
        let parsed = ParsedInvoices::parse(caller, origin, items, 0, room)?;
        self.submit_invoice_batch::<A>(parsed).await
    }

    /// Submits a batch's parsed invoices as one batch and, once it is durable, answers
    /// every item in order into the builder `A` (the items that did not parse with their
    /// reason): one result each for PostInvoices, the exceptions and totals for
    /// PostInvoicesBrief.
    pub(crate) async fn submit_invoice_batch<A: BatchAnswerBuilder>(
        &self,
        parsed: ParsedInvoices,
    ) -> Result<A, Status> {
        let ParsedInvoices {
            results,
            submission,
            amounts,
            vouchers,
        } = parsed;
        let replies = if submission.is_empty() {
            Vec::new()
        } else {
            self.engine
                .submit_prepared(submission)
                .await
                .map_err(engine_error)?
        };
        let payees = self.payees_of_answered(&vouchers);
        let mut last_sequence = 0;
        let mut replies = replies.into_iter().zip(amounts.into_iter().zip(payees));
        // Collected from the slots' own iterator, so that a full answer takes the slots'
        // memory in place rather than a second batch-long vector.
        let answer = A::collect(results.into_iter().map(|slot| match slot {
            Some(invalid) => invalid,
            None => match replies.next() {
                Some((Ok(reply), (amount, payee))) => {
                    last_sequence = last_sequence.max(reply.last_sequence());
                    InvoiceAnswer::Accepted(accepted_answer(&reply, amount, payee))
                }
                // A center must not learn that another center's voucher exists.
                Some((Err(rejection), _)) => {
                    InvoiceAnswer::Rejected(crate::api::errors::public_rejection(rejection))
                }
                None => InvoiceAnswer::Invalid("no reply from the ledger".into()),
            },
        }));
        Ok(answer.finish(last_sequence))
    }

    /// A batch received as generated messages, answered into `A`.
    async fn post_invoices_generated<A: BatchAnswerBuilder>(
        &self,
        request: &Request<proto::PostInvoicesRequest>,
    ) -> Result<A, Status> {
        let caller = principal(request)?.clone();
        let items = request
            .get_ref()
            .invoices
            .iter()
            .map(|item| Ok(convert::InvoiceText::of(item)));
        self.post_invoice_batch::<A>(&caller, &origin_of(request)?, items)
            .await
    }

    /// The payees of answered invoices' vouchers, read without waiting for the writer to
    /// make the state read durable: a published policy never changes, and a voucher's
    /// year was fixed by its approval, durable before any invoice on it was answered.
    /// (Waiting would make a batch's answer wait for the fsync of the batch the writer
    /// decided meanwhile.)
    fn payees_of_answered(&self, vouchers: &[VoucherId]) -> Vec<Payee> {
        self.engine
            .reader()
            .read(|state| payees_of(state, vouchers))
            .0
    }
}

#[tonic::async_trait]
impl RedemptionService for Api {
    async fn post_invoice(
        &self,
        request: Request<proto::Invoice>,
    ) -> Result<Response<proto::PostInvoiceResponse>, Status> {
        let invoice = convert::invoice(request.get_ref())?;
        principal(&request)?.require_center_writer(&invoice.center, "post invoices")?;
        let (amount, voucher) = (invoice.amount, invoice.voucher);
        let reply = self
            .execute(origin_of(&request)?, Command::PostInvoice(invoice))
            .await?;
        let payee = self
            .payees_of_answered(&[voucher])
            .first()
            .copied()
            .unwrap_or_default();
        Ok(Response::new(
            accepted_answer(&reply, amount, payee).to_proto(),
        ))
    }

    async fn post_invoices(
        &self,
        request: Request<proto::PostInvoicesRequest>,
    ) -> Result<Response<proto::PostInvoicesResponse>, Status> {
        // The server answers PostInvoices on its fast path (`api::batch_wire`); this is
        // the same batch through the generated messages, for in-process callers.
        let answer = self
            .post_invoices_generated::<BatchAnswer>(&request)
            .await?;
        Ok(Response::new(answer.to_proto()))
    }

    async fn post_invoices_brief(
        &self,
        request: Request<proto::PostInvoicesRequest>,
    ) -> Result<Response<proto::PostInvoicesBriefResponse>, Status> {
        // As `post_invoices`: the server's own calls take the fast path.
        let answer = self
            .post_invoices_generated::<BriefBatchAnswer>(&request)
            .await?;
        Ok(Response::new(answer.to_proto()))
    }

    async fn reverse_invoice(
        &self,
        request: Request<proto::ReverseInvoiceRequest>,
    ) -> Result<Response<proto::ReverseInvoiceResponse>, Status> {
        let body = request.get_ref();
        let center = convert::uscc("center", &body.center)?;
        principal(&request)?.require_center_writer(&center, "reverse invoices")?;
        let command = Command::ReverseInvoice {
            center,
            invoice_number: convert::invoice_number("invoice_number", &body.invoice_number)?,
            reason: convert::reason("reason", &body.reason)?,
        };
        let reply = self.execute(origin_of(&request)?, command).await?;
        let Some((reversed, second_subsidy)) = reply.reversal_outcome() else {
            return Err(Status::internal(format!(
                "a reversal was answered with {reply:?}"
            )));
        };
        Ok(Response::new(proto::ReverseInvoiceResponse {
            subsidy: reversed.subsidy.to_string(),
            clawback: reversed.clawback,
            returned_to_voucher: reversed.returned_to_voucher,
            sequence: reversed.sequence,
            second_subsidy: second_subsidy.to_string(),
        }))
    }

    async fn get_invoice(
        &self,
        request: Request<proto::GetInvoiceRequest>,
    ) -> Result<Response<proto::GetInvoiceResponse>, Status> {
        let body = request.get_ref();
        let center = convert::uscc("center", &body.center)?;
        let number = convert::invoice_number("invoice_number", &body.invoice_number)?;
        principal(&request)?.require_center_reader(&center, "read invoices")?;
        // The invoice may be in the writer's cache (newest state) or only in the store's
        // index (durable); the reader looks in that order. What the cache shows may be
        // from a batch still being written, so wait until it is durable.
        let (entry, as_of) = self
            .engine
            .reader()
            .invoice(&center, &number)
            .map_err(|error| Status::internal(error.to_string()))?;
        self.engine
            .wait_durable(as_of)
            .await
            .map_err(engine_error)?;
        let entry = entry
            .ok_or_else(|| Status::not_found(format!("center {center} has no invoice {number}")))?;
        let ((settlement, payee), _) = self
            .read(|state| {
                let Some(year) = state.voucher(&entry.voucher).map(|found| found.terms.year) else {
                    return (None, Payee::Center);
                };
                (
                    state.invoice_settlement(&center, year, &entry),
                    state.payee_kind(year),
                )
            })
            .await?;
        Ok(Response::new(proto::GetInvoiceResponse {
            center: center.to_string(),
            invoice_number: number.to_string(),
            voucher_id: entry.voucher.to_string(),
            amount: entry.amount.to_string(),
            issue_date: entry.issue_date.to_string(),
            delivery_proof: entry.delivery_proof.to_string(),
            subsidy: entry.subsidy.to_string(),
            sequence: entry.sequence,
            reversed: entry.is_reversed(),
            settled: settlement.is_some(),
            statement_id: settlement.flatten().map_or(0, |statement| statement.0),
            enterprise_pays: convert::enterprise_pays(
                payee,
                entry.amount,
                entry.subsidy.plus(entry.second_subsidy),
                entry.is_reversed(),
            )
            .to_string(),
            second_subsidy: entry.second_subsidy.to_string(),
        }))
    }
}
