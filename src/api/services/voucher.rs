//! `VoucherService`: approve, cancel, read and list vouchers.

use super::*;

#[tonic::async_trait]
impl VoucherService for Api {
    async fn approve_voucher(
        &self,
        request: Request<proto::ApproveVoucherRequest>,
    ) -> Result<Response<proto::VoucherResponse>, Status> {
        principal(&request)?.require_bureau("approve vouchers")?;
        let body = request.get_ref();
        let voucher = if body.voucher_id.is_empty() {
            // Randomness is drawn here, outside the state machine, and logged with the command.
            VoucherId::random()
        } else {
            convert::voucher_id("voucher_id", &body.voucher_id)?
        };
        let approve = ApproveVoucher {
            voucher,
            year: convert::year("year", body.year)?,
            enterprise: convert::uscc("enterprise", &body.enterprise)?,
            center: convert::uscc("center", &body.center)?,
            contract_number: convert::contract_number("contract_number", &body.contract_number)?,
            contract_fee: convert::positive_money("contract_fee", &body.contract_fee)?,
            term_start: convert::date("term_start", &body.term_start)?,
            term_end: convert::date("term_end", &body.term_end)?,
            requested: convert::money("requested", &body.requested)?,
            enterprise_class: convert::enterprise_class("enterprise_class", body.enterprise_class)?,
            declarations: convert::declarations("declarations", &body.declarations)?,
        };
        let reply = self
            .execute(origin_of(&request)?, Command::ApproveVoucher(approve))
            .await?;
        let duplicate = matches!(
            reply,
            Reply::VoucherApproved {
                duplicate: true,
                ..
            }
        );
        self.voucher_response(voucher, Some(reply.last_sequence()), duplicate)
            .await
    }

    async fn cancel_voucher(
        &self,
        request: Request<proto::CancelVoucherRequest>,
    ) -> Result<Response<proto::VoucherResponse>, Status> {
        principal(&request)?.require_bureau("cancel vouchers")?;
        let body = request.get_ref();
        let voucher = convert::voucher_id("voucher_id", &body.voucher_id)?;
        let reply = self
            .execute(
                origin_of(&request)?,
                Command::CancelVoucher {
                    voucher,
                    reason: convert::reason("reason", &body.reason)?,
                },
            )
            .await?;
        self.voucher_response(voucher, Some(reply.last_sequence()), false)
            .await
    }

    async fn get_voucher(
        &self,
        request: Request<proto::GetVoucherRequest>,
    ) -> Result<Response<proto::VoucherResponse>, Status> {
        let voucher = convert::voucher_id("voucher_id", &request.get_ref().voucher_id)?;
        let caller = principal(&request)?.clone();
        let (found, as_of) = self
            .read(|state| {
                state.voucher(&voucher).map(|found| {
                    (
                        found.terms.center,
                        found.terms.enterprise,
                        voucher_to_proto(found),
                    )
                })
            })
            .await?;
        // Another's voucher is answered exactly as a missing one: a caller learns nothing
        // about vouchers it may not read, not even that they exist.
        let not_found = || Status::not_found(format!("voucher {voucher} does not exist"));
        let (center, enterprise, voucher_proto) = found.ok_or_else(not_found)?;
        if !caller.may_read_voucher(&center, &enterprise) {
            return Err(not_found());
        }
        Ok(Response::new(proto::VoucherResponse {
            voucher: Some(voucher_proto),
            sequence: as_of,
            duplicate: false,
        }))
    }

    async fn list_vouchers(
        &self,
        request: Request<proto::ListVouchersRequest>,
    ) -> Result<Response<proto::ListVouchersResponse>, Status> {
        let caller = principal(&request)?.clone();
        let body = request.get_ref();
        let page_size = match body.page_size {
            0 => LIST_PAGE_DEFAULT,
            size if size > LIST_PAGE_LIMIT => {
                return Err(invalid_field(
                    "page_size",
                    format!("must be at most {LIST_PAGE_LIMIT}, got {size}"),
                ))
            }
            size => size,
        } as usize;
        let after = if body.page_token.is_empty() {
            None
        } else {
            Some(convert::voucher_id("page_token", &body.page_token)?)
        };
        let filter = match &body.owner {
            Some(proto::list_vouchers_request::Owner::Enterprise(text)) => {
                let enterprise = convert::uscc("enterprise", text)?;
                caller.require_enterprise_reader(&enterprise, "list vouchers")?;
                (Some(enterprise), None)
            }
            Some(proto::list_vouchers_request::Owner::Center(text)) => {
                let center = convert::uscc("center", text)?;
                caller.require_center_reader(&center, "list vouchers")?;
                (None, Some(center))
            }
            None => return Err(invalid_field("owner", "give an enterprise or a center")),
        };
        // O(page) under the read lock: the state keeps vouchers ordered by owner, and
        // one more than the page tells whether another page follows.
        let ((vouchers, more), as_of) = self
            .read(|state| {
                let found = match filter {
                    (Some(enterprise), _) => {
                        state.vouchers_of_enterprise(&enterprise, after, page_size + 1)
                    }
                    (_, Some(center)) => state.vouchers_of_center(&center, after, page_size + 1),
                    (None, None) => Vec::new(),
                };
                let more = found.len() > page_size;
                let page: Vec<proto::Voucher> = found
                    .into_iter()
                    .take(page_size)
                    .map(voucher_to_proto)
                    .collect();
                (page, more)
            })
            .await?;
        let next_page_token = if more {
            vouchers
                .last()
                .map(|voucher| voucher.voucher_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(proto::ListVouchersResponse {
            vouchers,
            next_page_token,
            as_of_sequence: as_of,
        }))
    }
}
