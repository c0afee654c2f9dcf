//! `ProgrammeService`: publish a year's policy, read the programme's pool figures.

use super::*;

#[tonic::async_trait]
impl ProgrammeService for Api {
    async fn publish_policy(
        &self,
        request: Request<proto::PublishPolicyRequest>,
    ) -> Result<Response<proto::PublishPolicyResponse>, Status> {
        principal(&request)?.require_bureau("publish a policy")?;
        let policy = match &request.get_ref().source {
            Some(proto::publish_policy_request::Source::Policy(policy)) => {
                convert::policy_from_proto(policy)?
            }
            Some(proto::publish_policy_request::Source::PolicyToml(text)) => {
                ProgrammePolicy::from_toml(text).map_err(crate::api::errors::invalid)?
            }
            None => return Err(invalid_field("source", "give a policy or a policy_toml")),
        };
        let reply = self
            .execute(
                origin_of(&request)?,
                Command::PublishPolicy {
                    policy: policy.clone(),
                },
            )
            .await?;
        Ok(Response::new(proto::PublishPolicyResponse {
            policy: Some(policy_to_proto(&policy)),
            sequence: reply.last_sequence(),
        }))
    }

    async fn get_programme(
        &self,
        request: Request<proto::GetProgrammeRequest>,
    ) -> Result<Response<proto::GetProgrammeResponse>, Status> {
        principal(&request)?;
        let wanted = request.get_ref().year;
        if wanted != 0 {
            convert::year("year", wanted)?;
        }
        let (years, as_of) = self
            .read(|state| {
                state
                    .policies()
                    .filter(|policy| wanted == 0 || policy.year().get() == wanted)
                    .map(|policy| {
                        let usage = state.pool_usage(policy.year());
                        let pool = state.pool(policy.year()).unwrap_or(policy.annual_pool());
                        proto::ProgrammeYear {
                            policy: Some(policy_to_proto(policy)),
                            approved: usage.used().to_string(),
                            held: usage.held.to_string(),
                            redeemed: usage.redeemed.to_string(),
                            free: usage.free_under(pool).to_string(),
                            receivable: usage.receivable.to_string(),
                            pool: pool.to_string(),
                            closed: state.year_closed(policy.year()),
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
        if wanted != 0 && years.is_empty() {
            return Err(Status::not_found(format!(
                "no policy is published for {wanted}"
            )));
        }
        Ok(Response::new(proto::GetProgrammeResponse {
            years,
            as_of_sequence: as_of,
        }))
    }

    async fn confirm_clock(
        &self,
        request: Request<proto::ConfirmClockRequest>,
    ) -> Result<Response<proto::ConfirmClockResponse>, Status> {
        principal(&request)?.require_bureau("confirm the clock")?;
        let reason = convert::reason("reason", &request.get_ref().reason)?;
        let reply = self
            .execute(origin_of(&request)?, Command::ConfirmClock { reason })
            .await?;
        // The confirmation is durable: the sweep may trust the clock again.
        self.clock.confirm();
        let (confirmed, _) = self.read(|state| state.last_time()).await?;
        Ok(Response::new(proto::ConfirmClockResponse {
            confirmed_time_unix_ms: confirmed.0,
            sequence: reply.last_sequence(),
        }))
    }
}
