//! `RegistryService`: computing centers, enterprises, cap overrides, related parties.

use super::*;

#[tonic::async_trait]
impl RegistryService for Api {
    async fn register_center(
        &self,
        request: Request<proto::RegisterCenterRequest>,
    ) -> Result<Response<proto::CenterResponse>, Status> {
        principal(&request)?.require_bureau("register a center")?;
        let body = request.get_ref();
        let center = convert::uscc("uscc", &body.uscc)?;
        let command = Command::RegisterCenter {
            center,
            name: convert::legal_name("name", &body.name)?,
            tier: convert::tier("tier", body.tier)?,
            listing_basis: convert::listing_basis("listing_basis", body.listing_basis)?,
            capacity: convert::capacity(body.intelligent_pflops, body.racks),
        };
        let reply = self.execute(origin_of(&request)?, command).await?;
        self.center_response(center, Some(reply.last_sequence()))
            .await
    }

    async fn set_center_status(
        &self,
        request: Request<proto::SetCenterStatusRequest>,
    ) -> Result<Response<proto::CenterResponse>, Status> {
        principal(&request)?.require_bureau("change a center's status")?;
        let body = request.get_ref();
        let center = convert::uscc("uscc", &body.uscc)?;
        let command = Command::SetCenterStatus {
            center,
            status: convert::center_status("status", body.status)?,
            reason: convert::reason("reason", &body.reason)?,
        };
        let reply = self.execute(origin_of(&request)?, command).await?;
        self.center_response(center, Some(reply.last_sequence()))
            .await
    }

    async fn get_center(
        &self,
        request: Request<proto::GetCenterRequest>,
    ) -> Result<Response<proto::CenterResponse>, Status> {
        let center = convert::uscc("uscc", &request.get_ref().uscc)?;
        principal(&request)?.require_center_reader(&center, "read")?;
        self.center_response(center, None).await
    }

    async fn list_centers(
        &self,
        request: Request<proto::ListCentersRequest>,
    ) -> Result<Response<proto::ListCentersResponse>, Status> {
        let caller = principal(&request)?.clone();
        let (centers, as_of) = self
            .read(|state| {
                state
                    .centers()
                    .map(|account| center_to_proto(state, account))
                    .collect::<Vec<_>>()
            })
            .await?;
        // The list of centers is public; the money owed to each is not.
        let centers = centers
            .into_iter()
            .map(|mut center| {
                let own =
                    caller.subject.map(|subject| subject.to_string()) == Some(center.uscc.clone());
                if !matches!(caller.role, Role::Bureau | Role::Auditor) && !own {
                    for amount in [
                        &mut center.redeemed_total,
                        &mut center.reversed_total,
                        &mut center.amount_due,
                        &mut center.clawback_owed,
                        &mut center.paid_total,
                    ] {
                        amount.clear();
                    }
                }
                center
            })
            .collect();
        Ok(Response::new(proto::ListCentersResponse {
            centers,
            as_of_sequence: as_of,
        }))
    }

    async fn register_enterprise(
        &self,
        request: Request<proto::RegisterEnterpriseRequest>,
    ) -> Result<Response<proto::EnterpriseResponse>, Status> {
        principal(&request)?.require_bureau("register an enterprise")?;
        let body = request.get_ref();
        let enterprise = convert::uscc("uscc", &body.uscc)?;
        let reply = self
            .execute(
                origin_of(&request)?,
                Command::RegisterEnterprise {
                    enterprise,
                    name: convert::legal_name("name", &body.name)?,
                },
            )
            .await?;
        self.enterprise_response(enterprise, Some(reply.last_sequence()))
            .await
    }

    async fn grant_cap_override(
        &self,
        request: Request<proto::GrantCapOverrideRequest>,
    ) -> Result<Response<proto::EnterpriseResponse>, Status> {
        principal(&request)?.require_bureau("grant a cap override")?;
        let body = request.get_ref();
        let enterprise = convert::uscc("uscc", &body.uscc)?;
        let command = Command::GrantCapOverride {
            enterprise,
            year: convert::year("year", body.year)?,
            cap: convert::positive_money("cap", &body.cap)?,
            reason: convert::reason("reason", &body.reason)?,
        };
        let reply = self.execute(origin_of(&request)?, command).await?;
        self.enterprise_response(enterprise, Some(reply.last_sequence()))
            .await
    }

    async fn declare_related_party(
        &self,
        request: Request<proto::DeclareRelatedPartyRequest>,
    ) -> Result<Response<proto::DeclareRelatedPartyResponse>, Status> {
        principal(&request)?.require_bureau("declare related parties")?;
        let body = request.get_ref();
        let command = Command::DeclareRelatedParty {
            enterprise: convert::uscc("enterprise", &body.enterprise)?,
            center: convert::uscc("center", &body.center)?,
            reason: convert::reason("reason", &body.reason)?,
        };
        let reply = self.execute(origin_of(&request)?, command).await?;
        Ok(Response::new(proto::DeclareRelatedPartyResponse {
            sequence: reply.last_sequence(),
        }))
    }

    async fn get_enterprise(
        &self,
        request: Request<proto::GetEnterpriseRequest>,
    ) -> Result<Response<proto::EnterpriseResponse>, Status> {
        let enterprise = convert::uscc("uscc", &request.get_ref().uscc)?;
        principal(&request)?.require_enterprise_reader(&enterprise, "read")?;
        self.enterprise_response(enterprise, None).await
    }
}
