//! Backups: a directory holding a copy of a data directory and a manifest naming the
//! sequence and chain head the copy holds.
//!
//! ```text
//! B/
//!   data/                  a voucher-ledger data directory (RocksDB)
//!   backup-manifest.txt    voucher-ledger backup v1, then `key value` lines:
//!                          sequence, chain_head (hex), created_at_ms, method
//! ```
//!
//! Two ways to make one, both consistent while a server is writing:
//!
//! - [`backup_live_store`], inside the server (the `Backup` RPC): RocksDB's own checkpoint
//!   of the open database (memtables flushed, table files hard-linked), which holds
//!   exactly what was written when it was made.
//! - [`backup_data_directory`], from another process (`voucher-ledger backup`): a second
//!   process cannot open the database for writing (the server holds its lock) and a
//!   read-only instance cannot make a RocksDB checkpoint (that flushes, which a read-only
//!   instance may not), so it opens a read-only view (fixed at the moment it opened: the
//!   write-ahead log is replayed up to its last whole record) and copies every key into a
//!   new database.
//!
//! Either way the sequence and head in the manifest are read back from the copy itself.

use std::path::{Path, PathBuf};

use super::log::LogError;
use super::record::ChainHash;
use super::store::{EventStore, StoreError};

pub const MANIFEST_FILE: &str = "backup-manifest.txt";
pub const DATA_SUBDIRECTORY: &str = "data";
const MANIFEST_HEADER: &str = "voucher-ledger backup v1";

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupManifest {
    /// The last record in the copy (0: an empty log).
    pub sequence: u64,
    /// The chain hash after it.
    pub chain_head: ChainHash,
    pub created_at_ms: i64,
    /// `rocksdb-checkpoint` or `logical-copy`.
    pub method: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the copied log: {0}")]
    Log(#[from] LogError),
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", .path.display())]
    Refused { path: PathBuf, reason: String },
    #[error("{} line {line}: {reason}", .path.display())]
    Manifest {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
    move |source| BackupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// The data directory inside backup `backup`.
pub fn data_directory(backup: &Path) -> PathBuf {
    backup.join(DATA_SUBDIRECTORY)
}

/// Makes `target` (which must not exist yet) and its parent, refusing an existing one.
fn make_target(target: &Path) -> Result<(), BackupError> {
    if target.exists() {
        return Err(BackupError::Refused {
            path: target.to_path_buf(),
            reason: "already exists; a backup goes into a new directory".into(),
        });
    }
    std::fs::create_dir_all(target).map_err(io("creating", target))
}

/// Backs up the store of a running ledger into `target` with RocksDB's checkpoint.
pub fn backup_live_store(store: &EventStore, target: &Path) -> Result<BackupManifest, BackupError> {
    make_target(target)?;
    store.create_rocksdb_checkpoint(&data_directory(target))?;
    finish(target, "rocksdb-checkpoint")
}

/// Backs up the data directory `data_dir`, served or not, into `target` by copying a
/// read-only view of it.
pub fn backup_data_directory(
    data_dir: &Path,
    target: &Path,
) -> Result<BackupManifest, BackupError> {
    let source = EventStore::open_read_only(data_dir)?;
    make_target(target)?;
    source.copy_into(&data_directory(target))?;
    finish(target, "logical-copy")
}

/// Reads the sequence and head back from the copy and writes the manifest (synced).
fn finish(target: &Path, method: &str) -> Result<BackupManifest, BackupError> {
    let (sequence, chain_head) = position(&data_directory(target))?;
    let manifest = BackupManifest {
        sequence,
        chain_head,
        created_at_ms: now_ms(),
        method: method.to_string(),
    };
    let path = target.join(MANIFEST_FILE);
    let text = format!(
        "{MANIFEST_HEADER}\nsequence {}\nchain_head {}\ncreated_at_ms {}\nmethod {}\n",
        manifest.sequence, manifest.chain_head, manifest.created_at_ms, manifest.method
    );
    write_synced(&path, text.as_bytes())?;
    sync_directory(target)?;
    Ok(manifest)
}

/// The last sequence of the data directory at `path` and the chain hash after it.
pub fn position(path: &Path) -> Result<(u64, ChainHash), BackupError> {
    let store = EventStore::open_read_only(path)?;
    let sequence = store.last_sequence()?.unwrap_or(0);
    let head = store.chain_hash_after(sequence)?;
    Ok((sequence, head))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).map_err(io("creating", path))?;
    file.write_all(bytes).map_err(io("writing", path))?;
    file.sync_all().map_err(io("syncing", path))
}

fn sync_directory(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path)
        .and_then(|directory| directory.sync_all())
        .map_err(io("syncing", path))
}

/// Reads the manifest of backup `backup`; an error names the line.
pub fn read_manifest(backup: &Path) -> Result<BackupManifest, BackupError> {
    let path = backup.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(io("reading", &path))?;
    let bad = |line: usize, reason: String| BackupError::Manifest {
        path: path.clone(),
        line,
        reason,
    };
    let mut lines = text.lines();
    if lines.next() != Some(MANIFEST_HEADER) {
        return Err(bad(1, format!("expected {MANIFEST_HEADER:?}")));
    }
    let (mut sequence, mut chain_head, mut created_at_ms, mut method) = (None, None, None, None);
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let Some((key, value)) = line.split_once(' ') else {
            return Err(bad(number, format!("expected `key value`, got {line:?}")));
        };
        match key {
            "sequence" => {
                sequence = Some(
                    value
                        .parse::<u64>()
                        .map_err(|error| bad(number, format!("sequence {value:?}: {error}")))?,
                )
            }
            "chain_head" => {
                let bytes = hex::decode(value)
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| {
                        bad(number, format!("chain_head {value:?}: not 64 hex digits"))
                    })?;
                chain_head = Some(ChainHash(bytes));
            }
            "created_at_ms" => {
                created_at_ms =
                    Some(value.parse::<i64>().map_err(|error| {
                        bad(number, format!("created_at_ms {value:?}: {error}"))
                    })?)
            }
            "method" => method = Some(value.to_string()),
            other => return Err(bad(number, format!("unknown key {other:?}"))),
        }
    }
    let missing = |key: &str| bad(0, format!("has no {key} line"));
    Ok(BackupManifest {
        sequence: sequence.ok_or_else(|| missing("sequence"))?,
        chain_head: chain_head.ok_or_else(|| missing("chain_head"))?,
        created_at_ms: created_at_ms.ok_or_else(|| missing("created_at_ms"))?,
        method: method.ok_or_else(|| missing("method"))?,
    })
}

/// Restores backup `backup` into `data_dir` (which must not exist, or be empty): copies
/// its data directory file by file, syncs, and checks that the restored log ends at the
/// manifest's sequence with its chain head. A full `verify` is the caller's next step.
pub fn restore(backup: &Path, data_dir: &Path) -> Result<BackupManifest, BackupError> {
    let manifest = read_manifest(backup)?;
    let source = data_directory(backup);
    if data_dir.exists() {
        let mut entries = std::fs::read_dir(data_dir).map_err(io("reading", data_dir))?;
        if entries.next().is_some() {
            return Err(BackupError::Refused {
                path: data_dir.to_path_buf(),
                reason: "is not empty; restore into a new directory".into(),
            });
        }
    }
    std::fs::create_dir_all(data_dir).map_err(io("creating", data_dir))?;
    for entry in std::fs::read_dir(&source).map_err(io("reading", &source))? {
        let entry = entry.map_err(io("reading", &source))?;
        let from = entry.path();
        if !from.is_file() {
            continue;
        }
        let to = data_dir.join(entry.file_name());
        std::fs::copy(&from, &to).map_err(io("copying", &from))?;
        std::fs::File::open(&to)
            .and_then(|file| file.sync_all())
            .map_err(io("syncing", &to))?;
    }
    sync_directory(data_dir)?;
    let (sequence, chain_head) = position(data_dir)?;
    if (sequence, chain_head) != (manifest.sequence, manifest.chain_head) {
        return Err(BackupError::Refused {
            path: data_dir.to_path_buf(),
            reason: format!(
                "the restored log ends at sequence {sequence} with head {chain_head}, the manifest says {} with {}",
                manifest.sequence, manifest.chain_head
            ),
        });
    }
    Ok(manifest)
}
