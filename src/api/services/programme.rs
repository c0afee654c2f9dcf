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
            .execute(Command::PublishPolicy {
                policy: policy.clone(),
            })
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
                        proto::ProgrammeYear {
                            policy: Some(policy_to_proto(policy)),
                            approved: usage.used().to_string(),
                            held: usage.held.to_string(),
                            redeemed: usage.redeemed.to_string(),
                            free: usage.free_under(policy.annual_pool()).to_string(),
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
}
