//! `PostInvoices` and `PostInvoicesBrief` on the wire without the generated messages: the
//! request is read as slices of its body, the answer is printed straight from the
//! ledger's replies.
//!
//! The batch call is the product's hot path. Through the generated types every invoice
//! cost eight `String` allocations on the way in (then dropped) and three on the way out,
//! ~10% of the server's CPU under load. Here a decoded request is the body's `Bytes` (the
//! receive buffer itself, not a copy) and, per invoice, where each field lies in it; the
//! text is handed to the same parser the unary call uses
//! ([`invoice_of_center`](crate::api::convert::invoice_of_center), with each batch's
//! center parsed once).
//! The answer ([`BatchAnswer`], or for the brief call [`BriefBatchAnswer`]: only the items
//! not newly accepted, and the batch's counts and sums) is encoded by hand. The brief
//! answer exists because the full one is ~40 bytes per invoice (~320 KB for 8,189), and
//! building, sending and reading it took ~1.5 ms of a one-connection batch's ~18 ms
//! round trip (issue 12, thirty-eighth round), which a bulk loader that checks sums does
//! not need; the brief one takes ~0.8 ms less of it, most of that the network threads'
//! CPU (forty-first round).
//!
//! Wire compatibility is the promise: a request is read exactly as the generated
//! `PostInvoicesRequest` would read it (unknown fields skipped, the last of a repeated
//! scalar wins), and the answer's bytes are the bytes prost would write for
//! [`BatchAnswer::to_proto`]. The tests below hold both to prost itself. The differences
//! are deliberate: text is checked for UTF-8 only in the occurrence of a field that counts
//! (the last), and a field that is not UTF-8 makes only its invoice `invalid` (prost
//! refuses the whole message for either); a body that is not protobuf is
//! `INVALID_ARGUMENT` naming `invoices` (tonic's own message differs); invoices past the
//! batch limit are counted, not parsed, so such a batch is refused for its size.

use std::ops::Range;

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{
    decode_key, decode_varint, encode_key, encode_varint, encoded_len_varint, key_len, skip_field,
    DecodeContext, WireType,
};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use super::convert::InvoiceText;
use super::errors::invalid_field;
use super::proto;
use crate::domain::{Money, Rejection};
use crate::limits::SUBMIT_BATCH_LIMIT;

/// `voucher.v1.Invoice`'s fields by number (1-based), as redemption.proto declares them.
const INVOICE_FIELD_NAMES: [&str; 8] = [
    "center",
    "voucher_id",
    "invoice_number",
    "amount",
    "issue_date",
    "delivery_proof",
    "invoice_code",
    "payment_proof",
];

/// Where one invoice's fields lie in the body (an empty range: the field was absent).
type InvoiceSpans = [Range<u32>; 8];

/// A `PostInvoicesRequest` as received: the body and where each invoice's fields are.
#[derive(Debug)]
pub struct InvoiceBatch {
    body: Bytes,
    invoices: Vec<InvoiceSpans>,
    /// Invoices the body holds; above [`SUBMIT_BATCH_LIMIT`] only counted, not kept.
    count: usize,
}

impl InvoiceBatch {
    /// Reads a `PostInvoicesRequest`. Fails on anything prost would refuse short of the
    /// UTF-8 check (which [`InvoiceBatch::invoices`] makes per invoice).
    pub fn decode(body: Bytes) -> Result<InvoiceBatch, Status> {
        // Offsets are u32: a body of 4 GiB is far beyond any configured message limit.
        if u32::try_from(body.len()).is_err() {
            return Err(invalid_field(
                "invoices",
                format!("a body of {} bytes is too large", body.len()),
            ));
        }
        // Growing the spans as they came moved them eleven times for a batch of 8,189
        // (~0.25% of the server's CPU, on the network thread, issue 12). Room is taken
        // once the first invoice is read, for as many more as the rest of the body holds
        // of invoices its size, up to a batch: exact for a batch of like invoices, and
        // never more than a body of that length could fill.
        let mut invoices = Vec::new();
        let mut count = 0;
        let mut rest: &[u8] = &body;
        while rest.has_remaining() {
            let (tag, wire_type) =
                decode_key(&mut rest).map_err(|error| malformed("invoices", error))?;
            if tag != 1 {
                skip_field(wire_type, tag, &mut rest, DecodeContext::default())
                    .map_err(|error| malformed("invoices", error))?;
                continue;
            }
            let message = length_delimited(&body, &mut rest, "invoices", wire_type)?;
            count += 1;
            // Past the limit the rest is only counted (the answer names the count), so a
            // hostile body cannot make the server hold more than a batch of spans.
            if count <= SUBMIT_BATCH_LIMIT {
                if count == 1 {
                    // The first invoice's whole field: its key, length and message.
                    let first_field = body.len() - rest.len();
                    let like_it = rest.len() / first_field.max(1);
                    invoices.reserve((1 + like_it).min(SUBMIT_BATCH_LIMIT));
                }
                invoices.push(invoice_spans(&body, message)?);
            }
        }
        Ok(InvoiceBatch {
            body,
            invoices,
            count,
        })
    }

    /// Invoices in the request (also those past the limit, which are not kept).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Each invoice's text, in order; `Err` names a field that is not UTF-8. Only the
    /// invoices kept: the caller refuses a batch whose [`InvoiceBatch::len`] is above
    /// the limit before it reads them.
    pub fn invoices(&self) -> impl ExactSizeIterator<Item = Result<InvoiceText<'_>, String>> {
        self.invoices_in(0..self.invoices.len())
    }

    /// [`InvoiceBatch::invoices`] at the positions `range` (cut to the invoices kept), so
    /// that parts of a batch can be read on different threads.
    pub fn invoices_in(
        &self,
        range: Range<usize>,
    ) -> impl ExactSizeIterator<Item = Result<InvoiceText<'_>, String>> {
        let end = range.end.min(self.invoices.len());
        let kept = self
            .invoices
            .get(range.start.min(end)..end)
            .unwrap_or_default();
        kept.iter().map(|spans| {
            // One UTF-8 check over the stretch of the message the fields lie in, rather
            // than one per field (eight calls on a few bytes each were ~15% of parsing a
            // batch, issue 12, thirty-eighth round). A field is taken from it when it
            // begins and ends on character boundaries there, as it does whenever the
            // stretch is ASCII (keys and lengths below 128 are); otherwise, or when the
            // stretch is not UTF-8 as a whole, the field is checked on its own, so every
            // field is accepted or refused exactly as a check of its own bytes would.
            let (first, last) = spans
                .iter()
                .filter(|span| !span.is_empty())
                .fold((u32::MAX, 0), |(first, last), span| {
                    (first.min(span.start), last.max(span.end))
                });
            let stretch = (first < last)
                .then(|| std::str::from_utf8(&self.body[first as usize..last as usize]).ok())
                .flatten();
            let field = |number: usize| -> Result<&str, String> {
                let span = &spans[number - 1];
                if span.is_empty() {
                    return Ok("");
                }
                let in_stretch = stretch.and_then(|stretch| {
                    stretch.get((span.start - first) as usize..(span.end - first) as usize)
                });
                match in_stretch {
                    Some(text) => Ok(text),
                    None => std::str::from_utf8(&self.body[span.start as usize..span.end as usize])
                        .map_err(|_| {
                            format!("{} is not UTF-8 text", INVOICE_FIELD_NAMES[number - 1])
                        }),
                }
            };
            Ok(InvoiceText {
                center: field(1)?,
                voucher_id: field(2)?,
                invoice_number: field(3)?,
                amount: field(4)?,
                issue_date: field(5)?,
                delivery_proof: field(6)?,
                invoice_code: field(7)?,
                payment_proof: field(8)?,
            })
        })
    }
}

/// INVALID_ARGUMENT for a body that is not a `PostInvoicesRequest`, naming the field.
fn malformed(field: &'static str, why: impl std::fmt::Display) -> Status {
    invalid_field(field, format!("not a PostInvoicesRequest: {why}"))
}

/// Where `part`, a slice of `body`, starts in it.
fn offset_in(body: &[u8], part: &[u8]) -> usize {
    let offset = (part.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    assert!(
        offset <= body.len() && offset + part.len() <= body.len(),
        "a field's bytes lie inside the body they were read from"
    );
    offset
}

/// Reads a length-delimited field's length from `rest` (a slice of `body`, just past the
/// field's key) and returns the field's place in `body`; `rest` moves past it.
fn length_delimited(
    body: &[u8],
    rest: &mut &[u8],
    field: &'static str,
    wire_type: WireType,
) -> Result<Range<u32>, Status> {
    if wire_type != WireType::LengthDelimited {
        return Err(malformed(
            field,
            format!("wire type {wire_type:?} where a length-delimited field belongs"),
        ));
    }
    let length = decode_varint(rest).map_err(|error| malformed(field, error))?;
    if length > rest.len() as u64 {
        return Err(malformed(
            field,
            format!("a field of {length} bytes where {} remain", rest.len()),
        ));
    }
    // Both fit in u32: the body's length was checked.
    let start = offset_in(body, rest) as u32;
    rest.advance(length as usize);
    Ok(start..start + length as u32)
}

/// The fields of one `Invoice` message lying at `message` in `body`.
fn invoice_spans(body: &[u8], message: Range<u32>) -> Result<InvoiceSpans, Status> {
    let mut spans: InvoiceSpans = Default::default();
    let mut rest = &body[message.start as usize..message.end as usize];
    while rest.has_remaining() {
        let (tag, wire_type) =
            decode_key(&mut rest).map_err(|error| malformed("invoices", error))?;
        // `decode_key` refuses tag 0, so `tag - 1` does not wrap.
        match INVOICE_FIELD_NAMES.get(tag as usize - 1) {
            // A later occurrence of the same field replaces an earlier one, as in prost.
            Some(name) => {
                spans[tag as usize - 1] = length_delimited(body, &mut rest, name, wire_type)?
            }
            None => skip_field(wire_type, tag, &mut rest, DecodeContext::default())
                .map_err(|error| malformed("invoices", error))?,
        }
    }
    Ok(spans)
}

/// A batch's answer before it is printed: one item per invoice, in order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BatchAnswer {
    pub results: Vec<InvoiceAnswer>,
    pub last_sequence: u64,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum InvoiceAnswer {
    Accepted(AcceptedInvoice),
    /// Already in the form a center may see (`errors::public_rejection`).
    Rejected(Rejection),
    /// A malformed item: which field and why; nothing was written for it.
    Invalid(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AcceptedInvoice {
    /// `None` only if the ledger answered with something other than an invoice outcome
    /// (a bug, answered without amounts rather than with a panic).
    pub amounts: Option<InvoiceAmounts>,
    pub sequence: u64,
    pub duplicate: bool,
    pub reversed: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct InvoiceAmounts {
    pub subsidy: Money,
    pub enterprise_pays: Money,
    pub second_subsidy: Money,
}

impl AcceptedInvoice {
    pub fn to_proto(&self) -> proto::PostInvoiceResponse {
        let print = |pick: fn(&InvoiceAmounts) -> Money| {
            self.amounts
                .as_ref()
                .map_or(String::new(), |amounts| pick(amounts).to_string())
        };
        proto::PostInvoiceResponse {
            subsidy: print(|amounts| amounts.subsidy),
            sequence: self.sequence,
            duplicate: self.duplicate,
            enterprise_pays: print(|amounts| amounts.enterprise_pays),
            reversed: self.reversed,
            second_subsidy: print(|amounts| amounts.second_subsidy),
        }
    }
}

impl InvoiceAnswer {
    pub fn to_proto(&self) -> proto::InvoiceResult {
        use proto::invoice_result::Result as Item;
        let result = match self {
            InvoiceAnswer::Accepted(accepted) => Item::Accepted(accepted.to_proto()),
            InvoiceAnswer::Rejected(rejection) => Item::Rejected(proto::Rejection {
                code: u32::from(rejection.code.code()),
                name: rejection.code.name().to_string(),
                detail: rejection.detail.clone(),
            }),
            InvoiceAnswer::Invalid(message) => Item::Invalid(message.clone()),
        };
        proto::InvoiceResult {
            result: Some(result),
        }
    }

    /// The amounts of an invoice this batch accepted for the first time; `None` for
    /// every other answer (the ones a brief answer lists).
    pub fn new_acceptance(&self) -> Option<InvoiceAmounts> {
        match self {
            InvoiceAnswer::Accepted(AcceptedInvoice {
                amounts: Some(amounts),
                duplicate: false,
                reversed: false,
                ..
            }) => Some(*amounts),
            _ => None,
        }
    }
}

/// Collects a batch's answers, one per item in order, into the answer a method sends:
/// every item ([`BatchAnswer`]) or only the exceptions and the totals
/// ([`BriefBatchAnswer`]). The replies are matched to the items once, in
/// `Api::submit_invoice_batch`, whichever answer is built.
pub trait BatchAnswerBuilder: Sized {
    /// Takes every item's answer, in order.
    fn collect(answers: impl Iterator<Item = InvoiceAnswer>) -> Self;
    /// The answer, once every item was collected; `last_sequence` is the highest sequence
    /// among the batch's accepted invoices (0 if none).
    fn finish(self, last_sequence: u64) -> Self;
}

impl BatchAnswerBuilder for BatchAnswer {
    fn collect(answers: impl Iterator<Item = InvoiceAnswer>) -> BatchAnswer {
        BatchAnswer {
            results: answers.collect(),
            last_sequence: 0,
        }
    }

    fn finish(mut self, last_sequence: u64) -> BatchAnswer {
        self.last_sequence = last_sequence;
        self
    }
}

/// A batch's brief answer (`PostInvoicesBrief`): only the items that were not newly
/// accepted, each with its position, and the batch counted and summed.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct BriefBatchAnswer {
    /// (position in the request, answer), in order.
    pub exceptions: Vec<(u32, InvoiceAnswer)>,
    pub last_sequence: u64,
    pub totals: BatchTotals,
}

/// A batch counted by outcome; the sums are over the newly accepted invoices only.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BatchTotals {
    pub accepted: u32,
    pub duplicates: u32,
    pub rejected: u32,
    pub invalid: u32,
    pub subsidy: Money,
    pub enterprise_pays: Money,
    pub second_subsidy: Money,
}

impl Default for BatchTotals {
    /// Nothing counted; the sums are zero in fen (printed "0.00", as every amount is).
    fn default() -> BatchTotals {
        BatchTotals {
            accepted: 0,
            duplicates: 0,
            rejected: 0,
            invalid: 0,
            subsidy: Money::ZERO,
            enterprise_pays: Money::ZERO,
            second_subsidy: Money::ZERO,
        }
    }
}

impl BatchTotals {
    /// The batch's items: every one is counted once.
    pub fn items(&self) -> u64 {
        u64::from(self.accepted)
            + u64::from(self.duplicates)
            + u64::from(self.rejected)
            + u64::from(self.invalid)
    }

    pub fn to_proto(&self) -> proto::PostInvoicesTotals {
        proto::PostInvoicesTotals {
            accepted: self.accepted,
            duplicates: self.duplicates,
            rejected: self.rejected,
            invalid: self.invalid,
            subsidy: self.subsidy.to_string(),
            enterprise_pays: self.enterprise_pays.to_string(),
            second_subsidy: self.second_subsidy.to_string(),
        }
    }
}

impl BatchAnswerBuilder for BriefBatchAnswer {
    fn collect(answers: impl Iterator<Item = InvoiceAnswer>) -> BriefBatchAnswer {
        // Exceptions are few in a healthy batch: grown as they come.
        let mut brief = BriefBatchAnswer::default();
        for answer in answers {
            brief.push(answer);
        }
        brief
    }

    fn finish(mut self, last_sequence: u64) -> BriefBatchAnswer {
        self.last_sequence = last_sequence;
        self
    }
}

impl BriefBatchAnswer {
    /// Counts the next item's answer, and lists it unless it is a new acceptance.
    fn push(&mut self, answer: InvoiceAnswer) {
        // Positions fit u32: a batch holds at most SUBMIT_BATCH_LIMIT items.
        let index = self.totals.items() as u32;
        let totals = &mut self.totals;
        match (&answer, answer.new_acceptance()) {
            (_, Some(amounts)) => {
                totals.accepted += 1;
                totals.subsidy = totals.subsidy.plus(amounts.subsidy);
                totals.enterprise_pays = totals.enterprise_pays.plus(amounts.enterprise_pays);
                totals.second_subsidy = totals.second_subsidy.plus(amounts.second_subsidy);
                return;
            }
            // An acceptance without amounts (a bug, see `AcceptedInvoice::amounts`) is
            // listed with the duplicates, so that nothing is summed that was not known.
            (InvoiceAnswer::Accepted(_), None) => totals.duplicates += 1,
            (InvoiceAnswer::Rejected(_), None) => totals.rejected += 1,
            (InvoiceAnswer::Invalid(_), None) => totals.invalid += 1,
        }
        self.exceptions.push((index, answer));
    }

    pub fn to_proto(&self) -> proto::PostInvoicesBriefResponse {
        proto::PostInvoicesBriefResponse {
            exceptions: self
                .exceptions
                .iter()
                .map(|(index, answer)| proto::NumberedInvoiceResult {
                    index: *index,
                    result: Some(answer.to_proto()),
                })
                .collect(),
            last_sequence: self.last_sequence,
            totals: Some(self.totals.to_proto()),
        }
    }

    /// Writes the `PostInvoicesBriefResponse` prost would write for
    /// [`BriefBatchAnswer::to_proto`].
    pub fn encode(&self, buffer: &mut impl BufMut) {
        for (index, answer) in &self.exceptions {
            let result = ResultWriter::of(answer);
            let result_len = result.len();
            let numbered = u64_len(1, u64::from(*index))
                + key_len(2)
                + encoded_len_varint(result_len as u64)
                + result_len;
            encode_key(1, WireType::LengthDelimited, buffer);
            encode_varint(numbered as u64, buffer);
            put_u64(buffer, 1, u64::from(*index));
            encode_key(2, WireType::LengthDelimited, buffer);
            encode_varint(result_len as u64, buffer);
            result.put(buffer);
        }
        put_u64(buffer, 2, self.last_sequence);
        let totals = &self.totals;
        let [subsidy, enterprise_pays, second_subsidy] = [
            totals.subsidy,
            totals.enterprise_pays,
            totals.second_subsidy,
        ]
        .map(MoneyText::of);
        let counts = [
            totals.accepted,
            totals.duplicates,
            totals.rejected,
            totals.invalid,
        ];
        let inner = (1..)
            .zip(counts)
            .map(|(tag, count)| u64_len(tag, u64::from(count)))
            .sum::<usize>()
            + string_len(5, subsidy.as_bytes())
            + string_len(6, enterprise_pays.as_bytes())
            + string_len(7, second_subsidy.as_bytes());
        // A message field that is set is written even when empty.
        encode_key(3, WireType::LengthDelimited, buffer);
        encode_varint(inner as u64, buffer);
        for (tag, count) in (1..).zip(counts) {
            put_u64(buffer, tag, u64::from(count));
        }
        put_string(buffer, 5, subsidy.as_bytes());
        put_string(buffer, 6, enterprise_pays.as_bytes());
        put_string(buffer, 7, second_subsidy.as_bytes());
    }
}

impl BatchAnswer {
    pub fn to_proto(&self) -> proto::PostInvoicesResponse {
        proto::PostInvoicesResponse {
            results: self.results.iter().map(InvoiceAnswer::to_proto).collect(),
            last_sequence: self.last_sequence,
        }
    }

    /// Writes the `PostInvoicesResponse` prost would write for [`BatchAnswer::to_proto`]:
    /// fields in declaration order, proto3 defaults left out, a oneof's case always
    /// written.
    pub fn encode(&self, buffer: &mut impl BufMut) {
        for answer in &self.results {
            let result = ResultWriter::of(answer);
            encode_key(1, WireType::LengthDelimited, buffer);
            encode_varint(result.len() as u64, buffer);
            result.put(buffer);
        }
        put_u64(buffer, 2, self.last_sequence);
    }
}

/// One `InvoiceResult` message about to be written: its amounts printed (on the stack)
/// and the length of its case's value, so that its own length is known before it is.
struct ResultWriter<'a> {
    answer: &'a InvoiceAnswer,
    /// The accepted case's amounts as text (`None`: another case, or no amounts).
    texts: Option<[MoneyText; 3]>,
    /// The length of the set case's value.
    inner: usize,
}

impl<'a> ResultWriter<'a> {
    fn of(answer: &'a InvoiceAnswer) -> ResultWriter<'a> {
        let mut texts = None;
        let inner = match answer {
            InvoiceAnswer::Accepted(accepted) => {
                texts = accepted.amounts.map(|amounts| {
                    [
                        MoneyText::of(amounts.subsidy),
                        MoneyText::of(amounts.enterprise_pays),
                        MoneyText::of(amounts.second_subsidy),
                    ]
                });
                let [subsidy, enterprise_pays, second_subsidy] = Self::amount_bytes(&texts);
                string_len(1, subsidy)
                    + u64_len(2, accepted.sequence)
                    + bool_len(3, accepted.duplicate)
                    + string_len(4, enterprise_pays)
                    + bool_len(5, accepted.reversed)
                    + string_len(6, second_subsidy)
            }
            InvoiceAnswer::Rejected(rejection) => {
                u64_len(1, u64::from(rejection.code.code()))
                    + string_len(2, rejection.code.name().as_bytes())
                    + string_len(3, rejection.detail.as_bytes())
            }
            InvoiceAnswer::Invalid(message) => message.len(),
        };
        ResultWriter {
            answer,
            texts,
            inner,
        }
    }

    fn amount_bytes(texts: &Option<[MoneyText; 3]>) -> [&[u8]; 3] {
        match texts {
            Some([subsidy, pays, second]) => {
                [subsidy.as_bytes(), pays.as_bytes(), second.as_bytes()]
            }
            None => [&[][..], &[][..], &[][..]],
        }
    }

    /// The oneof case's field number.
    fn case(&self) -> u32 {
        match self.answer {
            InvoiceAnswer::Accepted(_) => 1,
            InvoiceAnswer::Rejected(_) => 2,
            InvoiceAnswer::Invalid(_) => 3,
        }
    }

    /// The `InvoiceResult` message's length: its one case, always written (a oneof's
    /// case is written even when its value is empty).
    fn len(&self) -> usize {
        key_len(self.case()) + encoded_len_varint(self.inner as u64) + self.inner
    }

    /// Writes the `InvoiceResult` message's fields (not its own key and length).
    fn put(&self, buffer: &mut impl BufMut) {
        encode_key(self.case(), WireType::LengthDelimited, buffer);
        encode_varint(self.inner as u64, buffer);
        match self.answer {
            InvoiceAnswer::Accepted(accepted) => {
                let [subsidy, enterprise_pays, second_subsidy] = Self::amount_bytes(&self.texts);
                put_string(buffer, 1, subsidy);
                put_u64(buffer, 2, accepted.sequence);
                put_bool(buffer, 3, accepted.duplicate);
                put_string(buffer, 4, enterprise_pays);
                put_bool(buffer, 5, accepted.reversed);
                put_string(buffer, 6, second_subsidy);
            }
            InvoiceAnswer::Rejected(rejection) => {
                put_u64(buffer, 1, u64::from(rejection.code.code()));
                put_string(buffer, 2, rejection.code.name().as_bytes());
                put_string(buffer, 3, rejection.detail.as_bytes());
            }
            InvoiceAnswer::Invalid(message) => buffer.put_slice(message.as_bytes()),
        }
    }
}

fn string_len(tag: u32, value: &[u8]) -> usize {
    if value.is_empty() {
        0
    } else {
        key_len(tag) + encoded_len_varint(value.len() as u64) + value.len()
    }
}

fn put_string(buffer: &mut impl BufMut, tag: u32, value: &[u8]) {
    if !value.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buffer);
        encode_varint(value.len() as u64, buffer);
        buffer.put_slice(value);
    }
}

fn u64_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(value)
    }
}

fn put_u64(buffer: &mut impl BufMut, tag: u32, value: u64) {
    if value != 0 {
        encode_key(tag, WireType::Varint, buffer);
        encode_varint(value, buffer);
    }
}

fn bool_len(tag: u32, value: bool) -> usize {
    u64_len(tag, u64::from(value))
}

fn put_bool(buffer: &mut impl BufMut, tag: u32, value: bool) {
    put_u64(buffer, tag, u64::from(value));
}

/// An amount printed on the stack (no allocation per amount).
struct MoneyText {
    bytes: [u8; Money::PLAIN_TEXT_MAX],
    /// Where the text starts in `bytes` (it runs to the end).
    start: usize,
    /// Only for an amount [`Money::print_plain`] does not print (no constructor makes
    /// one), printed by `Display` instead.
    display_fallback: Option<String>,
}

impl MoneyText {
    fn of(money: Money) -> MoneyText {
        let mut bytes = [0; Money::PLAIN_TEXT_MAX];
        let start = money
            .print_plain(&mut bytes)
            .map(|text| Money::PLAIN_TEXT_MAX - text.len());
        MoneyText {
            bytes,
            start: start.unwrap_or(Money::PLAIN_TEXT_MAX),
            display_fallback: start.is_none().then(|| money.to_string()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match &self.display_fallback {
            Some(text) => text.as_bytes(),
            None => &self.bytes[self.start..],
        }
    }
}

/// An answer the fast path writes by hand.
pub trait WireAnswer: Send + 'static {
    /// Writes the message's bytes (those prost would write for its `to_proto`).
    fn encode(&self, buffer: &mut impl BufMut);
    /// About how many bytes [`WireAnswer::encode`] writes, reserved at once.
    fn size_hint(&self) -> usize;
}

impl WireAnswer for BatchAnswer {
    fn encode(&self, buffer: &mut impl BufMut) {
        BatchAnswer::encode(self, buffer);
    }

    fn size_hint(&self) -> usize {
        // ~40 bytes per accepted invoice.
        self.results.len() * 48 + 16
    }
}

impl WireAnswer for BriefBatchAnswer {
    fn encode(&self, buffer: &mut impl BufMut) {
        BriefBatchAnswer::encode(self, buffer);
    }

    fn size_hint(&self) -> usize {
        self.exceptions.len() * 56 + 96
    }
}

/// The codec of the fast path: decodes [`InvoiceBatch`], encodes the answer `A`
/// ([`BatchAnswer`] for `PostInvoices`, [`BriefBatchAnswer`] for `PostInvoicesBrief`).
#[derive(Debug)]
pub struct PostInvoicesCodec<A>(std::marker::PhantomData<fn() -> A>);

impl<A> Default for PostInvoicesCodec<A> {
    fn default() -> Self {
        PostInvoicesCodec(std::marker::PhantomData)
    }
}

impl<A: WireAnswer> Codec for PostInvoicesCodec<A> {
    type Encode = A;
    type Decode = InvoiceBatch;
    type Encoder = PostInvoicesCodec<A>;
    type Decoder = PostInvoicesCodec<A>;

    fn encoder(&mut self) -> PostInvoicesCodec<A> {
        PostInvoicesCodec::default()
    }

    fn decoder(&mut self) -> PostInvoicesCodec<A> {
        PostInvoicesCodec::default()
    }
}

impl<A: WireAnswer> Encoder for PostInvoicesCodec<A> {
    type Item = A;
    type Error = Status;

    fn encode(&mut self, answer: A, buffer: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // One reservation instead of growing as it goes.
        buffer.reserve(answer.size_hint());
        answer.encode(buffer);
        Ok(())
    }
}

impl<A: WireAnswer> Decoder for PostInvoicesCodec<A> {
    type Item = InvoiceBatch;
    type Error = Status;

    fn decode(&mut self, source: &mut DecodeBuf<'_>) -> Result<Option<InvoiceBatch>, Status> {
        // The receive buffer's own bytes (split off, not copied).
        let body = source.copy_to_bytes(source.remaining());
        InvoiceBatch::decode(body).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::domain::RejectionCode;

    fn invoice(number: usize) -> proto::Invoice {
        proto::Invoice {
            center: "91330100MA27XYZ12A".into(),
            voucher_id: "0195f2c8-7a31-7d2e-9a55-5b1f0e8d3c21".into(),
            invoice_number: format!("发票-{number}"),
            amount: format!("{number}.25"),
            issue_date: "2026-03-31".into(),
            delivery_proof: if number.is_multiple_of(3) {
                String::new()
            } else {
                "验收单 A-7".into()
            },
            invoice_code: if number.is_multiple_of(2) {
                "3300231130".into()
            } else {
                String::new()
            },
            payment_proof: if number.is_multiple_of(5) {
                "BANK-REF-9".into()
            } else {
                String::new()
            },
        }
    }

    fn texts(batch: &InvoiceBatch) -> Vec<InvoiceText<'_>> {
        batch
            .invoices()
            .map(|item| item.expect("UTF-8 fields"))
            .collect()
    }

    #[test]
    fn reads_what_prost_writes() {
        let request = proto::PostInvoicesRequest {
            invoices: (0..40).map(invoice).collect(),
        };
        let batch = InvoiceBatch::decode(request.encode_to_vec().into()).expect("decodes");
        assert_eq!(batch.len(), 40);
        let expected: Vec<InvoiceText<'_>> = request.invoices.iter().map(InvoiceText::of).collect();
        assert_eq!(texts(&batch), expected);
    }

    #[test]
    fn a_batch_of_like_invoices_is_read_into_room_for_exactly_its_count() {
        // Invoices of one length (the load generator's, a center's system): the room
        // taken at the first is the batch's, so the spans never grow.
        let like = |number: usize| proto::Invoice {
            invoice_number: format!("INV-{number:06}"),
            payment_proof: String::new(),
            ..invoice(1)
        };
        let request = proto::PostInvoicesRequest {
            invoices: (0..1_000).map(like).collect(),
        };
        let batch = InvoiceBatch::decode(request.encode_to_vec().into()).expect("decodes");
        assert_eq!(batch.len(), 1_000);
        assert_eq!(batch.invoices.capacity(), 1_000);
    }

    #[test]
    fn an_empty_first_invoice_takes_no_more_room_than_the_body_could_fill() {
        // An empty invoice (2 bytes) and then one long one: the estimate is the most
        // invoices the rest could hold, never past a batch.
        let mut bytes = Vec::new();
        push_empty_invoice_then(3, &mut bytes);
        let body_bytes = bytes.len();
        let batch = InvoiceBatch::decode(bytes.into()).expect("decodes");
        assert_eq!(batch.len(), 2);
        assert!(batch.invoices.capacity() <= body_bytes / 2);
        assert!(batch.invoices.capacity() <= SUBMIT_BATCH_LIMIT);
    }

    /// Bytes another implementation may send: unknown fields of every wire type at both
    /// levels, a field repeated (the last wins), an empty invoice message.
    fn unusual_request() -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut first = invoice(1).encode_to_vec();
        // Unknown invoice fields: varint 20, fixed64 21, fixed32 22, bytes 23, group 24.
        encode_key(20, WireType::Varint, &mut first);
        encode_varint(300, &mut first);
        encode_key(21, WireType::SixtyFourBit, &mut first);
        first.extend_from_slice(&[1; 8]);
        encode_key(22, WireType::ThirtyTwoBit, &mut first);
        first.extend_from_slice(&[2; 4]);
        encode_key(23, WireType::LengthDelimited, &mut first);
        encode_varint(3, &mut first);
        first.extend_from_slice(b"xyz");
        encode_key(24, WireType::StartGroup, &mut first);
        encode_key(1, WireType::Varint, &mut first);
        encode_varint(7, &mut first);
        encode_key(24, WireType::EndGroup, &mut first);
        // The amount again: the last occurrence counts.
        prost::encoding::string::encode(4, &"99.99".to_string(), &mut first);
        encode_key(1, WireType::LengthDelimited, &mut bytes);
        encode_varint(first.len() as u64, &mut bytes);
        bytes.extend_from_slice(&first);
        // An unknown top-level field between invoices.
        encode_key(9, WireType::Varint, &mut bytes);
        encode_varint(1, &mut bytes);
        push_empty_invoice_then(2, &mut bytes);
        bytes
    }

    /// Appends an empty invoice message, then invoice `number` as prost writes it.
    fn push_empty_invoice_then(number: usize, bytes: &mut Vec<u8>) {
        encode_key(1, WireType::LengthDelimited, bytes);
        encode_varint(0, bytes);
        bytes.extend(
            proto::PostInvoicesRequest {
                invoices: vec![invoice(number)],
            }
            .encode_to_vec(),
        );
    }

    #[test]
    fn reads_unusual_but_valid_bytes_as_prost_does() {
        let bytes = unusual_request();
        let by_prost = proto::PostInvoicesRequest::decode(&bytes[..]).expect("prost decodes");
        let batch = InvoiceBatch::decode(bytes.into()).expect("decodes");
        let expected: Vec<InvoiceText<'_>> =
            by_prost.invoices.iter().map(InvoiceText::of).collect();
        assert_eq!(texts(&batch), expected);
        assert_eq!(expected[0].amount, "99.99");
        assert_eq!(expected[1], InvoiceText::default());
    }

    #[test]
    fn refuses_what_prost_refuses() {
        let good = proto::PostInvoicesRequest {
            invoices: vec![invoice(1), invoice(2)],
        }
        .encode_to_vec();
        let mut cases: Vec<Vec<u8>> = (1..good.len()).map(|cut| good[..cut].to_vec()).collect();
        // Invoices as a varint; a field of an invoice as a fixed32; key 0.
        cases.push(vec![0x08, 0x01]);
        cases.push(vec![0x0a, 0x05, 0x0d, 1, 2, 3, 4]);
        cases.push(vec![0x00]);
        for bytes in cases {
            let prost_refuses = proto::PostInvoicesRequest::decode(&bytes[..]).is_err();
            let refused = InvoiceBatch::decode(bytes.clone().into());
            if prost_refuses {
                let status = refused.expect_err("refused like prost");
                assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bytes:?}");
            } else {
                // A cut at a field boundary is a valid, shorter request.
                assert!(refused.is_ok(), "{bytes:?}");
            }
        }
    }

    #[test]
    fn a_field_that_is_not_utf8_makes_only_its_invoice_invalid() {
        let mut bytes = proto::PostInvoicesRequest {
            invoices: vec![invoice(1)],
        }
        .encode_to_vec();
        let mut broken = Vec::new();
        encode_key(3, WireType::LengthDelimited, &mut broken);
        encode_varint(2, &mut broken);
        broken.extend_from_slice(&[0xff, 0xfe]);
        encode_key(1, WireType::LengthDelimited, &mut bytes);
        encode_varint(broken.len() as u64, &mut bytes);
        bytes.extend_from_slice(&broken);
        let batch = InvoiceBatch::decode(bytes.into()).expect("decodes");
        let items: Vec<_> = batch.invoices().collect();
        assert!(items[0].is_ok());
        assert_eq!(
            items[1],
            Err("invoice_number is not UTF-8 text".to_string())
        );
    }

    /// Each field of each invoice as a check of its own bytes reads it (what every item
    /// was before the one check per invoice): the reference for the test below.
    fn texts_checked_field_by_field(batch: &InvoiceBatch) -> Vec<Result<Vec<String>, String>> {
        batch
            .invoices
            .iter()
            .map(|spans| {
                spans
                    .iter()
                    .enumerate()
                    .map(|(place, span)| {
                        std::str::from_utf8(&batch.body[span.start as usize..span.end as usize])
                            .map(str::to_string)
                            .map_err(|_| {
                                format!("{} is not UTF-8 text", INVOICE_FIELD_NAMES[place])
                            })
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn one_utf8_check_per_invoice_reads_every_field_as_a_check_of_its_own_would() {
        // Invoices written field by field: (field number, bytes), in the order given.
        let long_chinese = "验收报告".repeat(40); // 480 bytes: a two-byte length
        let cases: Vec<Vec<(u32, Vec<u8>)>> = vec![
            // ASCII, every field
            (1..=8)
                .map(|field| (field, format!("F{field}-0123").into_bytes()))
                .collect(),
            // Chinese text in a short and in a long field
            vec![
                (1, b"91330100MA2H00001X".to_vec()),
                (6, "交付证明/2026".as_bytes().to_vec()),
                (8, long_chinese.as_bytes().to_vec()),
            ],
            // a broken field among good ones: only it is refused
            vec![
                (1, b"91330100MA2H00001X".to_vec()),
                (3, vec![b'7', 0xff, 0xfe]),
                (6, b"proof".to_vec()),
            ],
            // a field that ends in half a character, and one that starts with the rest
            vec![(3, vec![b'A', 0xe9, 0xaa]), (6, vec![0x8c, b'B'])],
            // an unknown field between known ones, with bytes that are not UTF-8
            vec![
                (1, b"center".to_vec()),
                (12, vec![0xc3]),
                (2, b"voucher".to_vec()),
            ],
            // a field given twice (the later wins), and empty fields
            vec![
                (3, b"first".to_vec()),
                (3, "再".as_bytes().to_vec()),
                (4, Vec::new()),
            ],
            // nothing at all
            Vec::new(),
        ];
        let mut body = Vec::new();
        for fields in &cases {
            let mut message = Vec::new();
            for (field, bytes) in fields {
                encode_key(*field, WireType::LengthDelimited, &mut message);
                encode_varint(bytes.len() as u64, &mut message);
                message.extend_from_slice(bytes);
            }
            encode_key(1, WireType::LengthDelimited, &mut body);
            encode_varint(message.len() as u64, &mut body);
            body.extend_from_slice(&message);
        }
        let batch = InvoiceBatch::decode(body.into()).expect("decodes");
        let expected = texts_checked_field_by_field(&batch);
        let read: Vec<Result<Vec<String>, String>> = batch
            .invoices()
            .map(|item| {
                item.map(|text| {
                    [
                        text.center,
                        text.voucher_id,
                        text.invoice_number,
                        text.amount,
                        text.issue_date,
                        text.delivery_proof,
                        text.invoice_code,
                        text.payment_proof,
                    ]
                    .map(str::to_string)
                    .to_vec()
                })
            })
            .collect();
        // The reference refuses with the first field that is not UTF-8, as an item does.
        assert_eq!(read, expected);
        assert_eq!(
            read[1].as_ref().map(|fields| fields[7].clone()),
            Ok(long_chinese)
        );
        assert_eq!(read[2], Err("invoice_number is not UTF-8 text".to_string()));
        assert!(read[3].is_err() && read[0].is_ok() && read[4].is_ok() && read[6].is_ok());
    }

    #[test]
    fn past_the_limit_invoices_are_counted_not_kept() {
        let request = proto::PostInvoicesRequest {
            invoices: vec![proto::Invoice::default(); SUBMIT_BATCH_LIMIT + 3],
        };
        let batch = InvoiceBatch::decode(request.encode_to_vec().into()).expect("decodes");
        assert_eq!(batch.len(), SUBMIT_BATCH_LIMIT + 3);
        assert_eq!(batch.invoices().len(), SUBMIT_BATCH_LIMIT);
        let empty = InvoiceBatch::decode(Bytes::new()).expect("decodes");
        assert!(empty.is_empty());
    }

    fn money(text: &str) -> Money {
        Money::parse("amount", text).expect("amount")
    }

    #[test]
    fn writes_the_bytes_prost_writes() {
        let accepted = |amounts: Option<(&str, &str, &str)>, sequence, duplicate, reversed| {
            InvoiceAnswer::Accepted(AcceptedInvoice {
                amounts: amounts.map(|(subsidy, pays, second)| InvoiceAmounts {
                    subsidy: money(subsidy),
                    enterprise_pays: money(pays),
                    second_subsidy: money(second),
                }),
                sequence,
                duplicate,
                reversed,
            })
        };
        let mut results = vec![
            accepted(Some(("300.00", "700.00", "0.00")), 7, false, false),
            accepted(Some(("0.00", "0.00", "0.00")), 8, true, true),
            accepted(
                Some(("2400000.99", "99999999999.01", "12.34")),
                u64::MAX,
                true,
                false,
            ),
            accepted(None, 0, false, false),
            InvoiceAnswer::Rejected(Rejection::new(
                RejectionCode::VoucherNotFound,
                "voucher 0195f2c8-7a31-7d2e-9a55-5b1f0e8d3c21 does not exist",
            )),
            InvoiceAnswer::Rejected(Rejection::new(RejectionCode::VoucherNotFound, "")),
            InvoiceAnswer::Invalid("invoices[5]: amount: 不是金额".into()),
            InvoiceAnswer::Invalid(String::new()),
        ];
        // Long enough for two-byte lengths.
        results.push(InvoiceAnswer::Invalid("x".repeat(300)));
        for last_sequence in [0, 1, 1 << 40] {
            let answer = BatchAnswer {
                results: results.clone(),
                last_sequence,
            };
            let mut ours = Vec::new();
            answer.encode(&mut ours);
            assert_eq!(ours, answer.to_proto().encode_to_vec());
            let back = proto::PostInvoicesResponse::decode(&ours[..]).expect("prost reads it");
            assert_eq!(back, answer.to_proto());
        }
        let mut empty = Vec::new();
        BatchAnswer {
            results: Vec::new(),
            last_sequence: 0,
        }
        .encode(&mut empty);
        assert!(empty.is_empty());
    }

    /// Answers of every kind, amounts that print long and short, positions past 127
    /// (two-byte varints) among them.
    fn answers_of_every_kind() -> Vec<InvoiceAnswer> {
        let accepted = |subsidy: &str, pays: &str, second: &str, duplicate, reversed| {
            InvoiceAnswer::Accepted(AcceptedInvoice {
                amounts: Some(InvoiceAmounts {
                    subsidy: money(subsidy),
                    enterprise_pays: money(pays),
                    second_subsidy: money(second),
                }),
                sequence: 41,
                duplicate,
                reversed,
            })
        };
        let mut answers = Vec::new();
        for round in 0..40 {
            answers.push(accepted("300.00", "700.00", "0.00", false, false));
            answers.push(accepted(
                "2400000.99",
                "99999999999.01",
                "12.34",
                false,
                false,
            ));
            answers.push(accepted("0.01", "0.02", "0.00", false, false));
            if round % 3 == 0 {
                answers.push(accepted("300.00", "700.00", "0.00", true, false));
                answers.push(accepted("0.00", "0.00", "0.00", true, true));
                answers.push(InvoiceAnswer::Accepted(AcceptedInvoice {
                    amounts: None,
                    sequence: 0,
                    duplicate: false,
                    reversed: false,
                }));
                answers.push(InvoiceAnswer::Rejected(Rejection::new(
                    RejectionCode::VoucherNotFound,
                    "voucher 0195f2c8-7a31-7d2e-9a55-5b1f0e8d3c21 does not exist",
                )));
                answers.push(InvoiceAnswer::Invalid(format!(
                    "invoices[{round}]: amount: 不是金额"
                )));
            }
        }
        answers
    }

    #[test]
    fn a_brief_answer_is_the_full_answer_less_its_new_acceptances() {
        // Given one answer per item,
        let answers = answers_of_every_kind();
        // when they are collected briefly,
        let brief = BriefBatchAnswer::collect(answers.clone().into_iter()).finish(99);
        // then what is listed is every item but the new acceptances, at its position,
        let expected: Vec<(u32, InvoiceAnswer)> = (0..)
            .zip(answers.iter().cloned())
            .filter(|(_, answer)| answer.new_acceptance().is_none())
            .collect();
        assert_eq!(brief.exceptions, expected);
        assert!(brief.exceptions.iter().any(|(index, _)| *index > 127));
        // and the totals count each item once and sum the new acceptances in fen.
        let totals = brief.totals;
        assert_eq!(totals.items(), answers.len() as u64);
        assert_eq!(totals.accepted, 120);
        assert_eq!(totals.duplicates, 3 * 14);
        assert_eq!((totals.rejected, totals.invalid), (14, 14));
        // Per round: 300.00 + 2,400,000.99 + 0.01; 700.00 + 99,999,999,999.01 + 0.02; 12.34.
        assert_eq!(totals.subsidy.to_fen_wide(), 40 * 240_030_100);
        assert_eq!(
            totals.enterprise_pays.to_fen_wide(),
            40 * 10_000_000_069_903
        );
        assert_eq!(totals.second_subsidy.to_fen_wide(), 40 * 1_234);
        assert_eq!(brief.last_sequence, 99);
    }

    #[test]
    fn a_brief_answer_writes_the_bytes_prost_writes() {
        let answers = answers_of_every_kind();
        let cases = [
            BriefBatchAnswer::collect(answers.clone().into_iter()).finish(1 << 40),
            // Only new acceptances: nothing listed.
            BriefBatchAnswer::collect(
                answers
                    .iter()
                    .filter(|answer| answer.new_acceptance().is_some())
                    .cloned(),
            )
            .finish(7),
            // Nothing at all: the totals are still written, their sums "0.00".
            BriefBatchAnswer::collect(std::iter::empty()).finish(0),
        ];
        for brief in cases {
            let mut ours = Vec::new();
            brief.encode(&mut ours);
            assert_eq!(ours, brief.to_proto().encode_to_vec());
            let back = proto::PostInvoicesBriefResponse::decode(&ours[..]).expect("prost reads it");
            assert_eq!(back, brief.to_proto());
            let totals = back.totals.expect("totals are always written");
            assert!(totals.subsidy.contains('.'), "{totals:?}");
        }
        let empty = BriefBatchAnswer::collect(std::iter::empty()).finish(0);
        assert_eq!(
            empty.to_proto().totals.map(|totals| totals.subsidy),
            Some("0.00".into())
        );
    }

    #[test]
    fn the_full_answer_collected_is_every_answer_in_order() {
        let answers = answers_of_every_kind();
        let full = BatchAnswer::collect(answers.clone().into_iter()).finish(5);
        assert_eq!(full.results, answers);
        assert_eq!(full.last_sequence, 5);
    }
}
