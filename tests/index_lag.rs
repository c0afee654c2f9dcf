//! The invoice index written just after the log (issue 12, `storage::index_lag`): a
//! crash between a batch's log write and its index write loses nothing (the next open
//! derives the entries from the log; a read-only open sees them too), readers of the
//! index wait for a pending index write instead of reading an index without the batch,
//! and an abandoned one turns their wait into an error.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use voucher_ledger::audit::verify;
use voucher_ledger::domain::*;
use voucher_ledger::ledger::{Ledger, LedgerOptions, LedgerReader};
use voucher_ledger::storage::{EventStore, StoreSettings};

fn options() -> LedgerOptions {
    LedgerOptions {
        sync: true,
        ..LedgerOptions::default()
    }
}

fn at(index: usize) -> Timestamp {
    Timestamp(1_767_225_600_000 + index as i64 * 1_000)
}

/// Three batches: the programme and a voucher; twenty invoices; twenty-one more with two
/// reversals, one of an invoice of the second batch (indexed before the last batch) and
/// one of an invoice of the last batch itself.
fn batches() -> Vec<Vec<Envelope>> {
    let mut setup = registration_commands();
    setup.push(approve(1, 1, 1, "1000000.00", "300000.00"));
    let first: Vec<Command> = (0..20)
        .map(|number| post(1, 1, &format!("INV-{number}"), "100.01"))
        .collect();
    let mut last: Vec<Command> = (20..40)
        .map(|number| post(1, 1, &format!("INV-{number}"), "250.00"))
        .collect();
    // Sorts after every stored key: the read-only merge's last step.
    last.push(post(1, 1, "INV-99", "12.34"));
    last.push(reverse(1, "INV-3"));
    last.push(reverse(1, "INV-25"));
    let mut index = 0;
    [setup, first, last]
        .into_iter()
        .map(|commands| {
            commands
                .into_iter()
                .map(|command| {
                    index += 1;
                    Envelope::new(at(index), command)
                })
                .collect()
        })
        .collect()
}

fn submit_all(ledger: &mut Ledger, batch: &[Envelope]) {
    for reply in ledger.submit(batch).expect("submit") {
        reply.expect("accepted");
    }
}

/// Every index entry, in key order, as the store reads them.
fn index_of(store: &EventStore) -> Vec<(Uscc, InvoiceNumber, InvoiceEntry)> {
    let mut entries = Vec::new();
    store
        .scan_invoices(|entry| entries.push(entry.expect("entry decodes")))
        .expect("scan");
    entries
}

/// The directory after all three batches written normally.
fn control(path: &Path) -> Vec<(Uscc, InvoiceNumber, InvoiceEntry)> {
    let (mut ledger, _) = Ledger::open(path, options()).expect("open");
    for batch in batches() {
        submit_all(&mut ledger, &batch);
    }
    drop(ledger);
    let store = EventStore::open_read_only(path).expect("read-only");
    assert!(
        store.index_lag_report().is_none(),
        "a normal run leaves no lag"
    );
    index_of(&store)
}

/// A ledger in `path` after the first `indexed` of `batches`, then the next batch's log
/// part written (the batch durable and answered) and its index part still pending; with
/// that batch's replies.
fn index_part_pending(
    path: &Path,
    batches: &[Vec<Envelope>],
    indexed: usize,
) -> (Ledger, Vec<Result<Reply, Rejection>>) {
    let (mut ledger, _) = Ledger::open(path, options()).expect("open");
    for batch in &batches[..indexed] {
        submit_all(&mut ledger, batch);
    }
    let mut replies = Vec::new();
    ledger
        .commit_batch(&batches[indexed], &mut replies)
        .expect("the log part is written");
    assert!(replies.iter().all(Result::is_ok), "{replies:?}");
    (ledger, replies)
}

/// The directory after the first two batches, then the last one's log written and its
/// index part dropped, as a process killed between the two writes leaves it.
fn crashed_between_the_writes(path: &Path) -> u64 {
    let (mut ledger, _) = index_part_pending(path, &batches(), 2);
    let last = ledger.state().last_sequence();
    ledger.abandon_pending_index_for_tests();
    drop(ledger);
    last
}

#[test]
fn an_index_write_lost_in_a_crash_is_derived_from_the_log_when_the_directory_opens() {
    let expected_directory = tempfile::tempdir().expect("tempdir");
    let expected = control(expected_directory.path());
    assert_eq!(expected.len(), 41);
    assert_eq!(
        expected
            .iter()
            .filter(|(_, _, entry)| entry.is_reversed())
            .count(),
        2
    );

    let directory = tempfile::tempdir().expect("tempdir");
    let last = crashed_between_the_writes(directory.path());

    // Read only (an auditor's `verify`, an offline export): the index on disk stops at
    // the second batch, and the store reads what the log implies for the rest.
    {
        let store = EventStore::open_read_only(directory.path()).expect("read-only");
        let watermark = store.index_watermark().expect("watermark");
        assert!(watermark < last, "the index stops before the last batch");
        let note = match store.index_lag_report() {
            Some(Ok(note)) => note,
            other => panic!("the lag is reported as a note: {other:?}"),
        };
        assert!(note.contains("derived from the log"), "{note}");
        assert_eq!(
            index_of(&store),
            expected,
            "scan: stored and derived, in key order"
        );
        let wanted: Vec<(Uscc, InvoiceNumber)> = expected
            .iter()
            .map(|(center, number, _)| (*center, number.clone()))
            .collect();
        let found = store.invoices(&wanted).expect("multi-get");
        for ((_, number, entry), found) in expected.iter().zip(found) {
            assert_eq!(found.as_ref(), Some(entry), "{number}");
        }
        let (center, number, entry) = &expected[0];
        assert_eq!(
            store.invoice(center, number).expect("get").as_ref(),
            Some(entry)
        );
    }
    let report = verify(directory.path()).expect("verify runs");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.invoice_index_entries, 41);
    // An offline reader (exports) reads the same.
    {
        let reader = LedgerReader::open_read_only(directory.path()).expect("offline reader");
        let wanted: Vec<(Uscc, InvoiceNumber)> = expected
            .iter()
            .map(|(center, number, _)| (*center, number.clone()))
            .collect();
        let found = reader.invoices(&wanted).expect("multi-get");
        let found: Vec<InvoiceEntry> = found
            .into_iter()
            .map(|entry| entry.expect("found"))
            .collect();
        let entries: Vec<InvoiceEntry> =
            expected.iter().map(|(_, _, entry)| entry.clone()).collect();
        assert_eq!(found, entries);
    }
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("derived from the log")),
        "{:?}",
        report.notes
    );

    // A writable open writes what was missing, then works as if nothing had happened:
    // a retry of a lost batch's invoice is a duplicate, not a second subsidy.
    let (mut ledger, _) = Ledger::open(directory.path(), options()).expect("reopen");
    let retry = batches()[2][3].clone();
    let replies = ledger
        .submit(&[Envelope::new(at(1_000), retry.command)])
        .expect("submit");
    match &replies[0] {
        Ok(Reply::InvoiceOutcome(outcome)) => {
            assert!(outcome.duplicate, "{outcome:?}");
            assert!(outcome.sequence <= last, "{outcome:?}");
        }
        other => panic!("a retry is answered as a duplicate: {other:?}"),
    }
    let reversed_retry = post(1, 1, "INV-25", "250.00");
    match &ledger
        .submit(&[Envelope::new(at(1_001), reversed_retry)])
        .expect("submit")[0]
    {
        Ok(Reply::InvoiceOutcome(outcome)) => {
            assert!(outcome.duplicate && outcome.reversed, "{outcome:?}");
            assert!(outcome.subsidy.is_zero(), "{outcome:?}");
        }
        other => panic!("a reversed invoice's retry says so: {other:?}"),
    }
    drop(ledger);
    let store = EventStore::open_read_only(directory.path()).expect("read-only");
    assert!(
        store.index_lag_report().is_none(),
        "the open wrote the entries"
    );
    assert_eq!(
        store.index_watermark().expect("watermark"),
        store.last_sequence().expect("last").unwrap_or(0)
    );
    assert_eq!(index_of(&store), expected);
    drop(store);
    let report = verify(directory.path()).expect("verify runs");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(
        !report
            .notes
            .iter()
            .any(|note| note.contains("derived from the log")),
        "{:?}",
        report.notes
    );
}

/// Copies the files of a data directory in use into `image`, as a crash would leave them:
/// what RocksDB has written to its files, nothing of its memtables.
fn crash_image(path: &Path, image: &Path) {
    for entry in std::fs::read_dir(path).expect("the directory lists") {
        let entry = entry.expect("an entry");
        if entry.file_name() != "LOCK" && entry.file_type().expect("a type").is_file() {
            std::fs::copy(entry.path(), image.join(entry.file_name())).expect("copied");
        }
    }
}

/// A crash image of a running ledger that wrote all three batches, index parts and all
/// (its index's memtable not in the files), and the log's last sequence.
fn crash_image_after_all_batches() -> (tempfile::TempDir, u64) {
    let directory = tempfile::tempdir().expect("tempdir");
    let (mut ledger, _) = Ledger::open(directory.path(), options()).expect("open");
    for batch in batches() {
        submit_all(&mut ledger, &batch);
    }
    let last = ledger.state().last_sequence();
    let image = tempfile::tempdir().expect("tempdir");
    crash_image(directory.path(), image.path());
    drop(ledger);
    (image, last)
}

/// Since data directory format 6 the index is written without the write-ahead log, so a
/// crash takes every entry RocksDB had not flushed, not only one batch's: the next open
/// derives them all from the log (here 41 entries over two batches, written four at a
/// time, with a reversal of an invoice whose entry an earlier part already wrote).
#[test]
fn an_index_memtable_lost_in_a_crash_is_derived_and_written_in_parts_when_the_directory_opens() {
    let expected_directory = tempfile::tempdir().expect("tempdir");
    let expected = control(expected_directory.path());
    // Given a ledger that wrote all three batches, index parts and all, and is running,
    // when the machine crashes: its files as they are, the index's memtable not in them.
    let (image, last) = crash_image_after_all_batches();
    // Then a read-only open finds the index behind the log by more than a batch, and
    // reads what the log implies.
    {
        let store = EventStore::open_read_only(image.path()).expect("read-only");
        assert_eq!(store.last_sequence().expect("last"), Some(last));
        let watermark = store.index_watermark().expect("watermark");
        assert!(
            watermark < last - 40,
            "the crash took the index's memtable: {watermark}"
        );
        let note = match store.index_lag_report() {
            Some(Ok(note)) => note,
            other => panic!("the lag is reported as a note: {other:?}"),
        };
        assert!(note.contains("the 41 entries"), "{note}");
        assert_eq!(index_of(&store), expected);
    }
    // When it is opened for writing, the open writing what it derives four at a time.
    let options = LedgerOptions {
        store: StoreSettings {
            index_catch_up_write_entries: 4,
            ..StoreSettings::default()
        },
        ..options()
    };
    let (ledger, report) = Ledger::open(image.path(), options).expect("reopen");
    drop(ledger);
    // Then the open reports its phases, the catch-up beside the replay: the whole open
    // took at least RocksDB's open and the longer of the two, and each is within it.
    assert!(
        report.store_open + report.index_catch_up.max(report.snapshot_and_replay) <= report.elapsed
            && report.index_catch_up > std::time::Duration::ZERO,
        "{report:?}"
    );
    // Then the index is whole, its watermark at the log's end, and the directory verifies.
    let store = EventStore::open_read_only(image.path()).expect("read-only");
    assert!(
        store.index_lag_report().is_none(),
        "the open wrote the entries"
    );
    assert_eq!(store.index_watermark().expect("watermark"), last);
    assert_eq!(index_of(&store), expected);
    drop(store);
    let report = verify(image.path()).expect("verify runs");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.invoice_index_entries, 41);
}

/// The open brings the index up to the log beside the replay; when the log after the
/// index's watermark is damaged, both fail, and the open reports the replay's error (it
/// names the record and what is wrong with it), not the catch-up's.
#[test]
fn a_damaged_record_after_a_lagging_index_is_reported_as_the_replays_record_error() {
    // Given a crash image whose index lags by more than a batch.
    let (image, last) = crash_image_after_all_batches();
    // And a record after the watermark changed (its amount's bytes, the frame intact).
    let damaged = last - 3;
    {
        let store = EventStore::open_read_only(image.path()).expect("read-only");
        assert!(store.index_watermark().expect("watermark") < damaged);
    }
    {
        // A writable store's open tries the catch-up, which fails here and writes nothing.
        let store = EventStore::open(image.path(), true).expect("store");
        let mut record = store.record(damaged).expect("read").expect("present");
        let index = record.len() - 40;
        record[index] ^= 0x01;
        store
            .overwrite_record_for_tests(damaged, Some(&record))
            .expect("write");
    }
    // When the ledger opens, then it refuses, naming that record's broken chain.
    let error = Ledger::open(image.path(), options())
        .err()
        .expect("a damaged log does not open");
    assert!(
        error
            .to_string()
            .starts_with(&format!("record {damaged}: chain hash mismatch")),
        "{error}"
    );
}

#[test]
fn a_reader_of_the_index_waits_for_the_batch_index_part_then_finds_its_invoice() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (mut ledger, replies) = index_part_pending(directory.path(), &batches(), 1);
    // The batch is durable and answered; its index entries are not written yet.
    let reader = ledger.reader();
    let wanted = vec![(center(1), invoice_number("INV-7"))];
    let (sender, answers) = mpsc::channel();
    let waiting = std::thread::spawn(move || {
        let _ = sender.send(reader.invoices(&wanted));
    });
    assert!(
        answers.recv_timeout(Duration::from_millis(300)).is_err(),
        "the reader waits while the index part is pending"
    );
    ledger.write_pending_index().expect("index part written");
    let found = answers
        .recv_timeout(Duration::from_secs(10))
        .expect("the reader is let in")
        .expect("read");
    waiting.join().expect("reader thread");
    let entry = found[0].as_ref().expect("the invoice is in the index");
    let Ok(Reply::InvoiceOutcome(outcome)) = &replies[7] else {
        panic!("INV-7's answer: {:?}", replies[7]);
    };
    assert_eq!(entry.sequence, outcome.sequence);
}

#[test]
fn an_abandoned_index_part_fails_readers_and_the_writer_until_the_directory_is_reopened() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (mut ledger, _) = index_part_pending(directory.path(), &batches(), 1);
    ledger.abandon_pending_index_for_tests();
    let reader = ledger.reader();
    let error = reader
        .invoices(&[(center(1), invoice_number("INV-7"))])
        .expect_err("an index that lacks a batch is not read");
    assert!(error.to_string().contains("reopening"), "{error}");
    assert!(
        ledger.submit(&batches()[2]).is_err(),
        "the writer stops as after a failed write"
    );
    drop(reader);
    drop(ledger);
    let (ledger, _) = Ledger::open(directory.path(), options()).expect("reopen");
    let found = ledger
        .reader()
        .invoices(&[(center(1), invoice_number("INV-7"))])
        .expect("read");
    assert!(found[0].is_some(), "the reopened index has the batch");
}

/// The programme and a voucher, then one batch large enough to be encoded beside the
/// writer (its index entries built by the encoder while the log part is written): 1,100
/// invoices and the reversal of one of them.
fn large_batches() -> Vec<Vec<Envelope>> {
    let mut setup = registration_commands();
    setup.push(approve(1, 1, 1, "1000000.00", "300000.00"));
    let mut large: Vec<Command> = (0..1_100)
        .map(|number| post(1, 1, &format!("BIG-{number}"), "100.01"))
        .collect();
    large.push(reverse(1, "BIG-42"));
    [setup, large]
        .into_iter()
        .enumerate()
        .map(|(batch, commands)| {
            commands
                .into_iter()
                .map(|command| Envelope::new(at(batch), command))
                .collect()
        })
        .collect()
}

#[test]
fn a_large_batch_whose_index_part_is_lost_has_it_derived_when_the_directory_opens() {
    // Given the same two batches written normally, and written with the large batch's
    // index part (built by the encoder) dropped after its log part, as a crash leaves it
    let expected_directory = tempfile::tempdir().expect("tempdir");
    let expected = {
        let (mut ledger, _) = Ledger::open(expected_directory.path(), options()).expect("open");
        for batch in large_batches() {
            submit_all(&mut ledger, &batch);
        }
        drop(ledger);
        index_of(&EventStore::open_read_only(expected_directory.path()).expect("read-only"))
    };
    assert_eq!(expected.len(), 1_100);
    let reversed: Vec<&InvoiceNumber> = expected
        .iter()
        .filter(|(_, _, entry)| entry.is_reversed())
        .map(|(_, number, _)| number)
        .collect();
    assert_eq!(reversed, vec![&invoice_number("BIG-42")]);
    let directory = tempfile::tempdir().expect("tempdir");
    {
        let (mut ledger, _) = index_part_pending(directory.path(), &large_batches(), 1);
        ledger.abandon_pending_index_for_tests();
    }
    // when the directory is opened again, then its index is the normal run's, and a
    // retry of a lost invoice is a duplicate
    let (mut ledger, _) = Ledger::open(directory.path(), options()).expect("reopen");
    let retry = Envelope::new(at(3), post(1, 1, "BIG-1099", "100.01"));
    match ledger.submit(&[retry]).expect("submit")[0].clone() {
        Ok(Reply::InvoiceOutcome(outcome)) => assert!(outcome.duplicate, "{outcome:?}"),
        other => panic!("{other:?}"),
    }
    drop(ledger);
    let store = EventStore::open_read_only(directory.path()).expect("read-only");
    assert_eq!(index_of(&store), expected);
    drop(store);
    let report = verify(directory.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[test]
fn a_large_batch_answered_then_dropped_writes_its_index_part_on_the_way_out() {
    // Given a large batch committed as the engine commits it (log part written, answers
    // out), its index part still being built by the encoder
    let directory = tempfile::tempdir().expect("tempdir");
    let last = {
        let (ledger, _) = index_part_pending(directory.path(), &large_batches(), 1);
        let last = ledger.state().last_sequence();
        // when the ledger is dropped without writing it
        drop(ledger);
        last
    };
    // then the drop wrote it: the index is not behind the log, nothing is left to derive,
    // and it holds every invoice of the batch
    let store = EventStore::open_read_only(directory.path()).expect("read-only");
    assert_eq!(store.index_watermark().expect("watermark"), last);
    assert!(
        store.index_lag_report().is_none(),
        "{:?}",
        store.index_lag_report()
    );
    let entries = index_of(&store);
    assert_eq!(entries.len(), 1_100);
    assert_eq!(
        entries
            .iter()
            .filter(|(_, _, entry)| entry.is_reversed())
            .count(),
        1
    );
}
