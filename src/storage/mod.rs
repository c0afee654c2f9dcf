//! Storage: the record format with its SM3 hash chain (`record`) and the RocksDB store
//! of log, invoice index and snapshots (`store`). Knows bytes, not business rules.

pub mod record;
pub mod store;

pub use record::{ChainHash, RecordError};
pub use store::{EventStore, StoreError};
