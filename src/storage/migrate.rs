//! Bringing an older data directory up to the current format when it is first opened for
//! writing. The log is never rewritten: migrations only add what a newer format derives
//! from it, so a migrated directory still verifies against the same chain.
//!
//! - 1 → 2: build the `invoice_order` family (each invoice's place in its center's year,
//!   in log order) by one pass over the log; in the same pass, rewrite the index entry
//!   of every reversed invoice as v3 with the sequence of its reversal (v1 and v2 entries
//!   kept only that it was reversed, and whether it is settled depends on when); then
//!   write the version 2 marker.
//! - 2 → 3: nothing to rebuild: format 3 stores new records in log blocks (the bare
//!   records already stored are read beside them) and has the `checkpoints` family, which
//!   the open itself creates empty. Only the version 3 marker is written.
//! - 3 → 4: nothing to rebuild: format 4 writes the invoice order in groups (`index.rs`;
//!   the single entries already stored are read beside them). Only the marker is written.
//! - 4 → 5: the index's watermark is written at the log's last sequence (the index of an
//!   older format was written with its log, so it is complete), then the marker.
//! - 5 → 6: the index's watermark moves from the `default` family into the `invoices`
//!   family (format 6 writes the index without the write-ahead log, and the watermark
//!   must be persisted in order with the entries it covers), then the marker. An older
//!   format goes straight to the watermark in the `invoices` family.

use std::collections::HashMap;
use std::ops::ControlFlow;

use super::record::genesis_chain_hash;
use super::store::{CommitBatch, EventStore, StoreError};
use crate::domain::{Event, ProgrammeYear, VoucherId};

/// Invoices written per batch while building the order index.
const MIGRATION_BATCH: usize = 16_384;

pub(super) fn to_current(store: &mut EventStore) -> Result<(), StoreError> {
    if store.format_version() < 2 {
        build_invoice_order(store)?;
    }
    if store.format_version() < 5 {
        // Older formats wrote the index with the log: it is complete.
        let last = store.last_sequence()?.unwrap_or(0);
        store.write_index_watermark(last)?;
    } else if store.format_version() == 5 {
        // The watermark moves from the `default` family into the index's own, as it is
        // (a format 5 index may lag its log by a batch; the open derives the rest).
        let watermark = store.index_watermark()?;
        store.write_index_watermark(watermark)?;
    }
    store.write_format_marker()
}

fn build_invoice_order(store: &EventStore) -> Result<(), StoreError> {
    tracing::info!("data directory format 1: building the invoice order index from the log");
    let mut years: HashMap<VoucherId, ProgrammeYear> = HashMap::new();
    let mut batch = CommitBatch::default();
    let mut pending = 0usize;
    let mut failure: Option<StoreError> = None;
    let read = store.read_log(1, genesis_chain_hash(), |logged| {
        let step = match &logged.event {
            Event::VoucherApproved(approved) => {
                years.insert(approved.voucher, approved.year);
                Ok(())
            }
            Event::InvoiceReversed(reversed) => {
                match store.invoice(&reversed.center, &reversed.invoice_number) {
                    Ok(Some(mut entry)) if entry.reversed_at == Some(0) => {
                        entry.reversed_at = Some(logged.sequence);
                        store.put_invoice(
                            &mut batch,
                            &reversed.center,
                            &reversed.invoice_number,
                            &entry,
                        )
                    }
                    Ok(_) => Ok(()),
                    Err(error) => Err(error),
                }
            }
            Event::InvoiceRedeemed(redeemed) => match years.get(&redeemed.voucher) {
                Some(year) => store.put_invoice_order(
                    &mut batch,
                    &redeemed.center,
                    *year,
                    logged.sequence,
                    &redeemed.invoice_number,
                ),
                None => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(error) = step {
            failure = Some(error);
            return ControlFlow::Break(());
        }
        if matches!(logged.event, Event::InvoiceRedeemed(_)) {
            pending += 1;
        }
        if pending >= MIGRATION_BATCH {
            pending = 0;
            if let Err(error) = store.commit(std::mem::take(&mut batch)) {
                failure = Some(error);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    if let Some(error) = failure {
        return Err(error);
    }
    read.map_err(|error| StoreError::Corrupt {
        what: "the log, while building the invoice order index".into(),
        reason: error.to_string(),
    })?;
    store.commit(batch)
}
