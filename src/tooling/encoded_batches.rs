//! `PostInvoices` as the load generator sends it: each request body encoded ahead on the
//! generator's thread, sent as bytes, and each answer tallied from its bytes.
//!
//! Why: the load generator shares the machine (two cores here) with the server it
//! measures. Through the generated types it spent ~1.2 µs of CPU per invoice: eight
//! `String`s built per invoice, the message encoded after the call began (on the call's
//! critical path: a batch's round trip included it), and every answer decoded into three
//! more `String`s per invoice only to be counted. What a client spends is taken from the
//! server, and TigerBeetle's benchmark, which the issue measures us against, sends
//! prebuilt fixed-size structs.
//!
//! The bytes on the wire are unchanged: a body is exactly what prost writes for the
//! `PostInvoicesRequest` of the same invoices (the tests in `load.rs` hold it to prost),
//! and an answer is read as prost would read `PostInvoicesResponse`, keeping only each
//! result's case. A `PostInvoicesBrief` answer, a few bytes however large the batch, is
//! read by prost itself.

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::api::server::redemption_route::{POST_INVOICES_BRIEF_PATH, POST_INVOICES_PATH};
use crate::tooling::ToolError;

/// `InvoiceResult`'s oneof cases by field number (redemption.proto).
const RESULT_ACCEPTED: u32 = 1;
const RESULT_REJECTED: u32 = 2;
const RESULT_INVALID: u32 = 3;

/// The body of one `PostInvoicesRequest` and where each of its invoices ends, so a shorter
/// batch (the run's last) is a prefix of it, not a second encoding.
#[derive(Clone, Debug)]
pub(crate) struct EncodedBatch {
    pub body: Bytes,
    /// `ends[i]`: the body's length up to and including invoice `i`.
    pub ends: Vec<usize>,
}

impl EncodedBatch {
    /// The body of the batch's first `count` invoices (all of them when `count` is larger).
    pub fn first(&self, count: usize) -> Bytes {
        if count >= self.ends.len() {
            return self.body.clone();
        }
        match count.checked_sub(1) {
            Some(last) => self.body.slice(..self.ends[last]),
            None => Bytes::new(),
        }
    }
}

/// Which answer the load asks for: one result per invoice (`PostInvoices`) or only the
/// exceptions and the totals (`PostInvoicesBrief`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AnswerKind {
    #[default]
    Every,
    Brief,
}

impl AnswerKind {
    pub fn method(self) -> &'static str {
        match self {
            AnswerKind::Every => "PostInvoices",
            AnswerKind::Brief => "PostInvoicesBrief",
        }
    }

    /// The method's gRPC path, as the server routes it.
    fn path(self) -> &'static str {
        match self {
            AnswerKind::Every => POST_INVOICES_PATH,
            AnswerKind::Brief => POST_INVOICES_BRIEF_PATH,
        }
    }
}

/// An answer's results counted by case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AnswerTally {
    pub accepted: u64,
    pub rejected: u64,
    pub invalid: u64,
    /// Results with no case set (prost reads them as `result: None`).
    pub without_case: u64,
}

impl AnswerTally {
    /// Every result that was not accepted.
    pub fn not_accepted(&self) -> u64 {
        self.rejected + self.invalid + self.without_case
    }

    /// Reads a `PostInvoicesResponse` body as prost would, counting each result's case;
    /// an error names what was malformed.
    pub fn of(mut body: &[u8]) -> Result<AnswerTally, Status> {
        let malformed = |error: prost::DecodeError| {
            Status::internal(format!("the PostInvoices answer is not protobuf: {error}"))
        };
        let mut tally = AnswerTally::default();
        while body.has_remaining() {
            let (tag, wire_type) = decode_key(&mut body).map_err(malformed)?;
            if tag != 1 || wire_type != WireType::LengthDelimited {
                skip_field(wire_type, tag, &mut body, DecodeContext::default())
                    .map_err(malformed)?;
                continue;
            }
            let length = decode_varint(&mut body).map_err(malformed)?;
            let length = usize::try_from(length)
                .ok()
                .filter(|length| *length <= body.len())
                .ok_or_else(|| {
                    Status::internal(format!(
                        "the PostInvoices answer has a result of {length} bytes and {} left",
                        body.len()
                    ))
                })?;
            let (result, rest) = body.split_at(length);
            body = rest;
            match result_case(result).map_err(malformed)? {
                Some(RESULT_ACCEPTED) => tally.accepted += 1,
                Some(RESULT_REJECTED) => tally.rejected += 1,
                Some(RESULT_INVALID) => tally.invalid += 1,
                _ => tally.without_case += 1,
            }
        }
        Ok(tally)
    }
}

impl AnswerTally {
    /// Reads a `PostInvoicesBriefResponse` body (with prost: a brief answer is a few
    /// bytes, not one result per invoice): the listed exceptions counted by case, the
    /// new acceptances taken from the totals. The totals' own counts of what is listed
    /// must agree with the list: an answer that does not is an error, not a tally.
    pub fn of_brief(body: &[u8]) -> Result<AnswerTally, Status> {
        use crate::api::proto::{invoice_result::Result as Case, PostInvoicesBriefResponse};
        let answer =
            <PostInvoicesBriefResponse as prost::Message>::decode(body).map_err(|error| {
                Status::internal(format!(
                    "the PostInvoicesBrief answer is not protobuf: {error}"
                ))
            })?;
        let totals = answer
            .totals
            .ok_or_else(|| Status::internal("the PostInvoicesBrief answer has no totals"))?;
        let mut listed = AnswerTally::default();
        for item in &answer.exceptions {
            match item
                .result
                .as_ref()
                .and_then(|result| result.result.as_ref())
            {
                Some(Case::Accepted(_)) => listed.accepted += 1,
                Some(Case::Rejected(_)) => listed.rejected += 1,
                Some(Case::Invalid(_)) => listed.invalid += 1,
                None => listed.without_case += 1,
            }
        }
        let counted = (
            u64::from(totals.duplicates),
            u64::from(totals.rejected),
            u64::from(totals.invalid),
        );
        if (
            listed.accepted,
            listed.rejected,
            listed.invalid + listed.without_case,
        ) != counted
        {
            return Err(Status::internal(format!(
                "the PostInvoicesBrief answer lists {} accepted before, {} rejected and {} \
                 invalid, but its totals count {}, {} and {}",
                listed.accepted,
                listed.rejected,
                listed.invalid + listed.without_case,
                totals.duplicates,
                totals.rejected,
                totals.invalid
            )));
        }
        Ok(AnswerTally {
            accepted: u64::from(totals.accepted) + listed.accepted,
            ..listed
        })
    }
}

/// The case of one `InvoiceResult` (the last oneof field present wins, as in prost).
fn result_case(mut result: &[u8]) -> Result<Option<u32>, prost::DecodeError> {
    let mut case = None;
    while result.has_remaining() {
        let (tag, wire_type) = decode_key(&mut result)?;
        if matches!(tag, RESULT_ACCEPTED | RESULT_REJECTED | RESULT_INVALID) {
            case = Some(tag);
        }
        skip_field(wire_type, tag, &mut result, DecodeContext::default())?;
    }
    Ok(case)
}

/// The client's codec: a request is a body encoded beforehand, an answer is tallied as
/// the answer of its kind.
#[derive(Clone, Copy, Debug, Default)]
struct PreEncodedPostInvoices(AnswerKind);

impl Codec for PreEncodedPostInvoices {
    type Encode = Bytes;
    type Decode = AnswerTally;
    type Encoder = PreEncodedPostInvoices;
    type Decoder = PreEncodedPostInvoices;

    fn encoder(&mut self) -> PreEncodedPostInvoices {
        *self
    }

    fn decoder(&mut self) -> PreEncodedPostInvoices {
        *self
    }
}

impl Encoder for PreEncodedPostInvoices {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, body: Bytes, buffer: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buffer.put(body);
        Ok(())
    }
}

impl Decoder for PreEncodedPostInvoices {
    type Item = AnswerTally;
    type Error = Status;

    fn decode(&mut self, source: &mut DecodeBuf<'_>) -> Result<Option<AnswerTally>, Status> {
        let body = source.copy_to_bytes(source.remaining());
        match self.0 {
            AnswerKind::Every => AnswerTally::of(&body).map(Some),
            AnswerKind::Brief => AnswerTally::of_brief(&body).map(Some),
        }
    }
}

/// A `PostInvoices` (or `PostInvoicesBrief`) client that sends encoded bodies.
#[derive(Clone, Debug)]
pub(crate) struct EncodedPostInvoicesClient {
    grpc: tonic::client::Grpc<Channel>,
    answer: AnswerKind,
}

impl EncodedPostInvoicesClient {
    pub fn new(
        channel: Channel,
        message_bytes_limit: usize,
        answer: AnswerKind,
    ) -> EncodedPostInvoicesClient {
        EncodedPostInvoicesClient {
            grpc: tonic::client::Grpc::new(channel)
                .max_decoding_message_size(message_bytes_limit)
                .max_encoding_message_size(message_bytes_limit),
            answer,
        }
    }

    /// Calls the method of the client's answer kind with `request`'s body and tallies
    /// the answer.
    pub async fn post(&mut self, request: Request<Bytes>) -> Result<AnswerTally, ToolError> {
        let method = self.answer.method();
        self.grpc
            .ready()
            .await
            .map_err(|error| Status::unavailable(format!("the channel is not ready: {error}")))
            .map_err(ToolError::rpc(method))?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(self.answer.path());
        let answer = self
            .grpc
            .unary(request, path, PreEncodedPostInvoices(self.answer))
            .await
            .map_err(ToolError::rpc(method))?;
        Ok(answer.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::api::proto;

    fn accepted(sequence: u64) -> proto::InvoiceResult {
        proto::InvoiceResult {
            result: Some(proto::invoice_result::Result::Accepted(
                proto::PostInvoiceResponse {
                    subsidy: "300.00".into(),
                    sequence,
                    duplicate: false,
                    enterprise_pays: "700.00".into(),
                    reversed: false,
                    second_subsidy: "0.00".into(),
                },
            )),
        }
    }

    #[test]
    fn an_answer_is_tallied_by_its_results_cases() {
        let answer = proto::PostInvoicesResponse {
            results: vec![
                accepted(7),
                proto::InvoiceResult {
                    result: Some(proto::invoice_result::Result::Rejected(
                        proto::Rejection::default(),
                    )),
                },
                accepted(8),
                proto::InvoiceResult {
                    result: Some(proto::invoice_result::Result::Invalid(
                        "amount: not a number".into(),
                    )),
                },
                proto::InvoiceResult { result: None },
                accepted(9),
            ],
            last_sequence: 9,
        };
        let tally = AnswerTally::of(&answer.encode_to_vec()).expect("tally");
        assert_eq!(
            tally,
            AnswerTally {
                accepted: 3,
                rejected: 1,
                invalid: 1,
                without_case: 1,
            }
        );
        assert_eq!(tally.not_accepted(), 3);
    }

    #[test]
    fn a_cut_answer_is_an_error_not_a_smaller_tally() {
        let answer = proto::PostInvoicesResponse {
            results: vec![accepted(1), accepted(2)],
            last_sequence: 2,
        }
        .encode_to_vec();
        // Cut inside the second result: prost refuses it, and so does the tally.
        let cut = &answer[..answer.len() - 6];
        assert!(proto::PostInvoicesResponse::decode(cut).is_err());
        let error = AnswerTally::of(cut).expect_err("a cut answer");
        assert!(error.message().contains("PostInvoices answer"), "{error:?}");
    }

    #[test]
    fn a_batch_prefix_ends_where_its_last_invoice_ends() {
        let batch = EncodedBatch {
            body: Bytes::from_static(b"aaabbcccc"),
            ends: vec![3, 5, 9],
        };
        assert_eq!(batch.first(0), Bytes::new());
        assert_eq!(batch.first(1), Bytes::from_static(b"aaa"));
        assert_eq!(batch.first(2), Bytes::from_static(b"aaabb"));
        assert_eq!(batch.first(3), batch.body);
        assert_eq!(batch.first(4), batch.body);
    }

    fn numbered(index: u32, result: proto::InvoiceResult) -> proto::NumberedInvoiceResult {
        proto::NumberedInvoiceResult {
            index,
            result: Some(result),
        }
    }

    fn brief_answer(
        exceptions: Vec<proto::NumberedInvoiceResult>,
    ) -> proto::PostInvoicesBriefResponse {
        proto::PostInvoicesBriefResponse {
            exceptions,
            last_sequence: 90,
            totals: Some(proto::PostInvoicesTotals {
                accepted: 85,
                duplicates: 1,
                rejected: 1,
                invalid: 1,
                subsidy: "25500.00".into(),
                enterprise_pays: "59500.00".into(),
                second_subsidy: "0.00".into(),
            }),
        }
    }

    fn rejected() -> proto::InvoiceResult {
        proto::InvoiceResult {
            result: Some(proto::invoice_result::Result::Rejected(
                proto::Rejection::default(),
            )),
        }
    }

    fn invalid() -> proto::InvoiceResult {
        proto::InvoiceResult {
            result: Some(proto::invoice_result::Result::Invalid("amount".into())),
        }
    }

    #[test]
    fn a_brief_answer_is_tallied_from_its_totals_and_its_list() {
        let answer = brief_answer(vec![
            numbered(3, accepted(4)),
            numbered(40, rejected()),
            numbered(200, invalid()),
        ]);
        let tally = AnswerTally::of_brief(&answer.encode_to_vec()).expect("tally");
        assert_eq!(
            tally,
            AnswerTally {
                accepted: 86,
                rejected: 1,
                invalid: 1,
                without_case: 0,
            }
        );
    }

    #[test]
    fn a_brief_answer_whose_list_and_totals_disagree_is_an_error() {
        // One listed exception too few, one of the wrong case, and no totals at all.
        let short = brief_answer(vec![numbered(3, accepted(4)), numbered(40, rejected())]);
        let wrong = brief_answer(vec![
            numbered(3, accepted(4)),
            numbered(40, invalid()),
            numbered(200, invalid()),
        ]);
        let mut untotalled = brief_answer(Vec::new());
        untotalled.totals = None;
        for answer in [short, wrong, untotalled] {
            let error = AnswerTally::of_brief(&answer.encode_to_vec()).expect_err("refused");
            assert!(
                error.message().contains("PostInvoicesBrief answer"),
                "{error:?}"
            );
        }
        // A cut answer is an error too, as prost finds it.
        let whole = brief_answer(vec![numbered(3, accepted(4))]).encode_to_vec();
        for cut in 1..whole.len() {
            let prost_refuses = proto::PostInvoicesBriefResponse::decode(&whole[..cut]).is_err();
            if prost_refuses {
                assert!(
                    AnswerTally::of_brief(&whole[..cut]).is_err(),
                    "cut at {cut}"
                );
            }
        }
    }
}
