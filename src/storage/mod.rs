//! Storage: the only module that knows a byte layout. It owns every on-disk format and
//! the RocksDB store, and offers a typed API: events from a sequence (`log`), the
//! invoice index, snapshots.
//!
//! | file | what it owns |
//! |---|---|
//! | `codec.rs` | the explicit field-by-field codec storage's own formats use |
//! | `record.rs` | the record frame (`VLEV` v3; reads v1, v2) and the SM3 hash chain |
//! | `sm3_lanes.rs` | SM3 for the chain, eight records' leading blocks at once (AVX2): the writer's hashes, the reader's checks |
//! | `block.rs` | log blocks (`VLBK` v1): a batch's records under one key |
//! | `payload_v2.rs` | the payloads of record formats v2 and v3: origin + event, field by field |
//! | `payload_v1.rs` | record format v1's event payloads (read only; frozen shapes, bincode) |
//! | `invoice_filter.rs` | the in-memory filter that spares brand-new invoices the index lookup |
//! | `index.rs` | the invoice index key and its entries (`VLIX` v3; reads v1, v2), the invoice order (`VLIO`), the index's watermark (`VLIW`) |
//! | `index_lag.rs` | the index written just after the log and without the write-ahead log: readers' gate, the pending write, the entries an open derives after a crash |
//! | `snapshot.rs` | snapshot frames (`VLSN` v4) and the state image layout |
//! | `checkpoint.rs` | signed checkpoints (`VLCP` v1), the SM2 key files and the export file |
//! | `backup.rs` | backup directories: their manifest, making one, restoring one |
//! | `store.rs` | RocksDB: column families, group commit, point and range reads |
//! | `heap.rs` | hands back to the operating system what the open freed (RocksDB's recovery in glibc's heap, the opening threads in mimalloc's) |
//! | `log.rs` | the one loop that reads the log back as checked events |
//! | `package.rs` | the events file of an audit package (`VLPK` v1: the records as stored, framed) |
//! | `migrate.rs` | brings an older data directory up to the current format on first open |

pub mod backup;
pub mod block;
pub mod checkpoint;
pub mod codec;
pub mod heap;
pub mod index;
mod index_lag;
pub mod invoice_filter;
pub mod log;
mod migrate;
pub mod package;
mod payload_v1;
mod payload_v2;
pub mod record;
mod sm3_lanes;
pub mod snapshot;
pub mod store;

pub use index_lag::PendingIndexWrite;
pub use log::{ChainCheck, LogError, LogPosition, LoggedEvent};
pub use record::{ChainHash, RecordError};
pub use snapshot::StoredSnapshot;
pub use store::{
    CommitBatch, DeferredIndexEntries, EventStore, IndexCompaction, IndexPart, StoreError,
    StoreSettings, TableCompression,
};
