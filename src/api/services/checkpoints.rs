//! `CheckpointService`: signed checkpoints read back (bureau and auditor), and the
//! bureau's online backup into the server's configured backup directory.

use std::path::PathBuf;

use super::*;
use crate::limits::{CHECKPOINT_LIST_DEFAULT, CHECKPOINT_LIST_LIMIT};
use crate::storage::checkpoint::Checkpoint;

fn checkpoint_to_proto(checkpoint: &Checkpoint) -> proto::Checkpoint {
    proto::Checkpoint {
        sequence: checkpoint.sequence,
        chain_head: checkpoint.chain_head.to_string(),
        signed_at_unix_ms: checkpoint.signed_at.0,
        key_fingerprint: hex::encode(checkpoint.key_fingerprint),
        signature: hex::encode(checkpoint.signature),
        encoded: checkpoint.encode(),
    }
}

fn store_error(error: crate::storage::StoreError) -> Status {
    Status::data_loss(error.to_string())
}

#[tonic::async_trait]
impl CheckpointService for Api {
    async fn get_checkpoint(
        &self,
        request: Request<proto::GetCheckpointRequest>,
    ) -> Result<Response<proto::Checkpoint>, Status> {
        principal(&request)?.require_reader_of_everything("read checkpoints")?;
        let sequence = request.get_ref().sequence;
        let found = self
            .engine
            .reader()
            .checkpoint(sequence)
            .map_err(store_error)?;
        match found {
            Some(checkpoint) => Ok(Response::new(checkpoint_to_proto(&checkpoint))),
            None if sequence == 0 => Err(Status::not_found("no checkpoint has been signed")),
            None => Err(Status::not_found(format!(
                "no checkpoint of sequence {sequence}"
            ))),
        }
    }

    async fn list_checkpoints(
        &self,
        request: Request<proto::ListCheckpointsRequest>,
    ) -> Result<Response<proto::ListCheckpointsResponse>, Status> {
        principal(&request)?.require_reader_of_everything("read checkpoints")?;
        let body = request.get_ref();
        let limit = usize::try_from(match body.limit {
            0 => CHECKPOINT_LIST_DEFAULT,
            limit if limit > CHECKPOINT_LIST_LIMIT => {
                return Err(invalid_field(
                    "limit",
                    format!("{limit} is above {CHECKPOINT_LIST_LIMIT}"),
                ))
            }
            limit => limit,
        })
        .unwrap_or(CHECKPOINT_LIST_LIMIT as usize);
        // One more than asked says whether another page follows.
        let mut found = self
            .engine
            .reader()
            .checkpoints(body.from_sequence, limit + 1)
            .map_err(store_error)?;
        let next_sequence = if found.len() > limit {
            found.truncate(limit);
            found.last().map_or(0, |last| last.sequence + 1)
        } else {
            0
        };
        Ok(Response::new(proto::ListCheckpointsResponse {
            checkpoints: found.iter().map(checkpoint_to_proto).collect(),
            next_sequence,
        }))
    }

    async fn backup(
        &self,
        request: Request<proto::BackupRequest>,
    ) -> Result<Response<proto::BackupResponse>, Status> {
        let caller = principal(&request)?;
        caller.require_bureau("take a backup")?;
        let Some(backup_dir) = self.backup_dir.as_deref().cloned() else {
            return Err(Status::failed_precondition(
                "no backup_dir is configured in the server's [server] section",
            ));
        };
        // The server names the directory: the time and the durable sequence, never a
        // path from the client.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis());
        let name = format!("backup-{now}-{}", self.engine.committed_sequence());
        let target: PathBuf = backup_dir.join(name);
        let reader = self.engine.reader().clone();
        let requested_by = caller.name.clone();
        let made = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&backup_dir)
                .map_err(|error| format!("backup_dir {}: {error}", backup_dir.display()))?;
            reader
                .backup_to(&target)
                .map(|manifest| (target, manifest))
                .map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| Status::internal(error.to_string()))?;
        let (target, manifest) = made.map_err(|reason| {
            tracing::error!(%reason, "backup failed");
            Status::internal(format!("backup failed: {reason}"))
        })?;
        tracing::info!(
            directory = %target.display(),
            sequence = manifest.sequence,
            chain_head = %manifest.chain_head,
            by = %requested_by,
            "backup written"
        );
        Ok(Response::new(proto::BackupResponse {
            directory: target.display().to_string(),
            sequence: manifest.sequence,
            chain_head: manifest.chain_head.to_string(),
        }))
    }
}
