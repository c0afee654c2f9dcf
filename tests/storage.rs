//! The durable log: restart equals replay, snapshots, the idempotency index in the
//! store, tamper evidence (edit, drop, swap) and the committed on-disk format fixture.

mod common;

use std::path::Path;

use common::*;
use voucher_ledger::audit::verify;
use voucher_ledger::domain::*;
use voucher_ledger::ledger::{replay, Ledger, LedgerOptions};
use voucher_ledger::storage::heap::page_faults_of_this_thread;
use voucher_ledger::storage::record::{
    check_record, encode_record, genesis_chain_hash, RecordError,
};
use voucher_ledger::storage::StoreSettings;

fn options(snapshot_interval: u64) -> LedgerOptions {
    LedgerOptions {
        sync: true,
        snapshot_interval,
        snapshots_kept: 2,
        ..LedgerOptions::default()
    }
}

/// The standard programme as commands, then `invoices` invoices on one voucher.
fn scenario_commands(invoices: usize) -> Vec<Envelope> {
    let mut commands = registration_commands();
    commands.push(approve(1, 1, 1, "1000000.00", "300000.00"));
    for number in 0..invoices {
        commands.push(post(1, 1, &format!("INV-{number}"), "100.01"));
    }
    commands.push(reverse(1, "INV-0"));
    commands.push(Command::CreateSettlementRun {
        run: SettlementRunId::from_u128(1),
        year: year(),
    });
    commands
        .into_iter()
        .enumerate()
        .map(|(index, command)| Envelope::new(Timestamp(1_767_225_600_000 + index as i64), command))
        .collect()
}

fn fill(path: &Path, invoices: usize, snapshot_interval: u64) -> LedgerState {
    let (mut ledger, _) = Ledger::open(path, options(snapshot_interval)).expect("open");
    for chunk in scenario_commands(invoices).chunks(50) {
        for reply in ledger.submit(chunk).expect("submit") {
            reply.expect("accepted");
        }
    }
    let state = ledger.state().clone();
    state
}

fn full_replay(path: &Path) -> LedgerState {
    let store = voucher_ledger::storage::EventStore::open(path, false).expect("store");
    let mut state = LedgerState::new();
    replay(&store, &mut state, genesis_chain_hash(), usize::MAX).expect("replay");
    state
}

#[test]
fn restart_from_snapshot_equals_full_replay() {
    let directory = tempfile::tempdir().expect("tempdir");
    let live = fill(directory.path(), 300, 100);
    // Dropped without close: the newest snapshot is older than the log's end.
    let (reopened, report) = Ledger::open(directory.path(), options(100)).expect("reopen");
    assert!(report.snapshot_sequence.is_some(), "{report:?}");
    assert!(report.events_replayed < 100, "{report:?}");
    assert!(reopened.state().same_projections(&live));
    drop(reopened);
    assert!(full_replay(directory.path()).same_projections(&live));
    let verified = verify(directory.path()).expect("verify");
    assert!(verified.is_clean(), "{:?}", verified.problems);
    assert_eq!(
        verified.snapshots_checked.len(),
        2,
        "two snapshots are kept"
    );
}

#[test]
fn close_writes_a_final_snapshot_so_restart_replays_nothing() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (mut ledger, _) = Ledger::open(directory.path(), options(1_000_000)).expect("open");
    ledger.submit(&scenario_commands(20)).expect("submit");
    let live = ledger.state().clone();
    ledger.close().expect("close");
    let (reopened, report) = Ledger::open(directory.path(), options(1_000_000)).expect("reopen");
    assert_eq!(report.events_replayed, 0);
    assert!(reopened.state().same_projections(&live));
}

#[test]
fn idempotency_outcomes_are_kept_in_the_store() {
    let directory = tempfile::tempdir().expect("tempdir");
    let live = fill(directory.path(), 5, 1_000_000);
    let store = voucher_ledger::storage::EventStore::open(directory.path(), true).expect("store");
    let entry = store
        .invoice(&center(1), &invoice_number("INV-3"))
        .expect("read")
        .expect("present");
    let in_memory = live
        .invoice(&center(1), &invoice_number("INV-3"))
        .expect("invoice");
    assert_eq!(
        (entry.subsidy, entry.sequence),
        (money("30.00"), in_memory.sequence)
    );
    assert!(!entry.is_reversed());
    let reversed = store
        .invoice(&center(1), &invoice_number("INV-0"))
        .expect("read")
        .expect("present");
    assert!(reversed.is_reversed());
    assert!(store
        .invoice(&center(2), &invoice_number("INV-3"))
        .expect("read")
        .is_none());
}

#[test]
fn rejected_commands_append_nothing() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (mut ledger, _) = Ledger::open(directory.path(), options(1_000_000)).expect("open");
    ledger.submit(&scenario_commands(1)).expect("submit");
    let before = ledger.reader().stored_sequence().expect("last");
    let replies = ledger
        .submit(&[Envelope::new(
            Timestamp(1_900_000_000_000),
            post(1, 404, "X", "1.00"),
        )])
        .expect("submit");
    assert_eq!(
        replies[0].as_ref().expect_err("rejected").code,
        RejectionCode::VoucherNotFound
    );
    assert_eq!(ledger.reader().stored_sequence().expect("last"), before);
}

// ------------------------------------------------------------------------ tampering

fn tampered_verify(
    edit: impl FnOnce(&voucher_ledger::storage::EventStore),
) -> (Option<u64>, Vec<String>) {
    let directory = tempfile::tempdir().expect("tempdir");
    fill(directory.path(), 10, 1_000_000);
    {
        let store =
            voucher_ledger::storage::EventStore::open(directory.path(), true).expect("store");
        edit(&store);
    }
    assert!(
        Ledger::open(directory.path(), options(1_000_000)).is_err(),
        "opening a tampered log must fail"
    );
    let report = verify(directory.path()).expect("verify runs");
    assert!(!report.is_clean());
    (report.first_bad_sequence, report.problems)
}

#[test]
fn changing_one_byte_is_detected_at_that_record() {
    let (first_bad, problems) = tampered_verify(|store| {
        let mut record = store.record(8).expect("read").expect("present");
        // An amount byte deep in the payload: frame and length stay valid.
        let index = record.len() - 40;
        record[index] ^= 0x01;
        store
            .overwrite_record_for_tests(8, Some(&record))
            .expect("write");
    });
    assert_eq!(first_bad, Some(8), "{problems:?}");
}

/// The log's reader checks the chain eight records at a time, their first blocks
/// compressed together (`log.rs`): a byte changed in any record's first 64-byte block,
/// whatever its place in such a group, is caught at that record, with every record
/// before it read, and none after it.
#[test]
fn a_byte_changed_in_any_record_of_a_group_breaks_the_chain_at_that_record() {
    // Given a log of 68 records in two blocks (the programme, 60 invoices and more,
    // written 50 commands at a time), so that groups of eight fall at several offsets
    // of a block, and each block ends in a shorter group (groups do not span blocks).
    let directory = tempfile::tempdir().expect("tempdir");
    let last = fill(directory.path(), 60, 1_000_000).last_sequence();
    assert!(last > 60, "{last} records");
    let store = voucher_ledger::storage::EventStore::open(directory.path(), true).expect("store");
    let read_all = |store: &voucher_ledger::storage::EventStore| {
        let mut read = Vec::new();
        let result = store.read_log(1, genesis_chain_hash(), |logged| {
            read.push(logged.sequence);
            std::ops::ControlFlow::Continue(())
        });
        (read, result)
    };
    let (everything, result) = read_all(&store);
    assert_eq!(result.expect("the log reads").last_sequence, last);
    assert_eq!(everything, (1..=last).collect::<Vec<_>>());
    for changed in 1..=last {
        let original = store.record(changed).expect("read").expect("present");
        assert!(
            original.len() > 64 + 32,
            "record {changed} has a full block"
        );
        // When one byte of its first block, past the frame's header, is changed.
        let mut record = original.clone();
        record[40] ^= 0x20;
        store
            .overwrite_record_for_tests(changed, Some(&record))
            .expect("write");
        // Then the read stops there with a broken chain, every record before it read.
        let (read, result) = read_all(&store);
        match result {
            Err(voucher_ledger::storage::LogError::Record(RecordError::ChainBroken {
                sequence,
            })) => assert_eq!(sequence, changed),
            other => panic!("record {changed} changed: {other:?}"),
        }
        assert_eq!(read, (1..changed).collect::<Vec<_>>(), "record {changed}");
        store
            .overwrite_record_for_tests(changed, Some(&original))
            .expect("restore");
    }
    // And with every record restored the log reads whole again.
    let (read, result) = read_all(&store);
    assert_eq!(result.expect("the log reads").last_sequence, last);
    assert_eq!(read.len() as u64, last);
}

/// The two ways the reader checks the chain (eight records at a time in the SM3 lanes,
/// and one at a time with the `sm3` crate, which `verify` uses) read the same events and
/// stop at the same place with the same error: from every sequence, stopping after 1, 3,
/// 8, 9 or all records, on a sound log and on one with a record changed.
#[test]
fn the_lanes_and_the_reference_check_read_the_same_from_every_sequence() {
    use voucher_ledger::storage::ChainCheck;
    let directory = tempfile::tempdir().expect("tempdir");
    let last = fill(directory.path(), 60, 1_000_000).last_sequence();
    let store = voucher_ledger::storage::EventStore::open(directory.path(), true).expect("store");
    let read = |check: ChainCheck, from: u64, stop_after: usize| {
        let mut events = Vec::new();
        let previous = store.chain_hash_after(from - 1).expect("previous hash");
        let result = store.read_log_checked_by(check, from, previous, |logged| {
            events.push(logged);
            if events.len() == stop_after {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        });
        (events, format!("{result:?}"))
    };
    let compare_everywhere = |expect_error_at: Option<u64>| {
        for from in 1..=last {
            for stop_after in [1, 3, 8, 9, usize::MAX] {
                let lanes = read(ChainCheck::Lanes, from, stop_after);
                let reference = read(ChainCheck::Reference, from, stop_after);
                assert_eq!(lanes, reference, "from {from}, stopping after {stop_after}");
                if let Some(changed) =
                    expect_error_at.filter(|changed| stop_after == usize::MAX && from <= *changed)
                {
                    assert!(
                        lanes
                            .1
                            .contains(&format!("ChainBroken {{ sequence: {changed} }}")),
                        "from {from}: {}",
                        lanes.1
                    );
                }
            }
        }
    };
    compare_everywhere(None);
    // A record in the middle of a group of the first block, changed in its first block.
    let changed = 21;
    let mut record = store.record(changed).expect("read").expect("present");
    record[40] ^= 0x04;
    store
        .overwrite_record_for_tests(changed, Some(&record))
        .expect("write");
    compare_everywhere(Some(changed));
}

#[test]
fn the_verify_command_exits_non_zero_naming_the_first_bad_sequence() {
    let directory = tempfile::tempdir().expect("tempdir");
    fill(directory.path(), 10, 1_000_000);
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
            .args(["verify", "--data-dir"])
            .arg(directory.path())
            .output()
            .expect("run verify")
    };
    let clean = run();
    assert!(clean.status.success());
    assert!(String::from_utf8_lossy(&clean.stdout).contains("OK"));
    {
        let store =
            voucher_ledger::storage::EventStore::open(directory.path(), true).expect("store");
        let mut record = store.record(9).expect("read").expect("present");
        record[30] ^= 0x20;
        store
            .overwrite_record_for_tests(9, Some(&record))
            .expect("write");
    }
    let tampered = run();
    assert_eq!(tampered.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&tampered.stdout);
    assert!(stdout.contains("FIRST BAD SEQUENCE 9"), "{stdout}");
}

#[test]
fn dropping_a_record_is_detected() {
    let (first_bad, problems) = tampered_verify(|store| {
        store.overwrite_record_for_tests(7, None).expect("delete");
    });
    assert_eq!(first_bad, Some(7), "{problems:?}");
    assert!(problems[0].contains("missing"), "{problems:?}");
}

#[test]
fn swapping_two_records_is_detected() {
    let (first_bad, problems) = tampered_verify(|store| {
        let sixth = store.record(6).expect("read").expect("present");
        let seventh = store.record(7).expect("read").expect("present");
        store
            .overwrite_record_for_tests(6, Some(&seventh))
            .expect("write");
        store
            .overwrite_record_for_tests(7, Some(&sixth))
            .expect("write");
    });
    assert_eq!(first_bad, Some(6), "{problems:?}");
}

#[test]
fn rewriting_a_record_with_a_recomputed_hash_still_breaks_the_chain() {
    // An attacker who re-frames record 6 with a valid hash over the edited content breaks
    // the link from record 7, which was hashed over the original.
    let (first_bad, problems) = tampered_verify(|store| {
        let original = store.record(6).expect("read").expect("present");
        let previous = store.record(5).expect("read").expect("present");
        let mut previous_hash = [0u8; 32];
        previous_hash.copy_from_slice(&previous[previous.len() - 32..]);
        let checked = check_record(
            6,
            &original,
            &voucher_ledger::storage::ChainHash(previous_hash),
        )
        .expect("valid");
        let mut event = checked.decode().expect("decode");
        if let Event::InvoiceRedeemed(redeemed) = &mut event {
            redeemed.subsidy = money("99.99");
        }
        let mut scratch = Vec::new();
        let mut forged = Vec::new();
        encode_record(
            &SequencedEvent {
                sequence: 6,
                at: checked.at,
                origin: Origin::system("forger"),
                event,
            },
            &voucher_ledger::storage::ChainHash(previous_hash),
            &mut scratch,
            &mut forged,
        )
        .expect("encode");
        store
            .overwrite_record_for_tests(6, Some(&forged))
            .expect("write");
    });
    assert_eq!(first_bad, Some(7), "{problems:?}");
}

// --------------------------------------------------------------------- log blocks

/// The keys of the `events` column family (each the first sequence of a stored block).
fn stored_log_keys(path: &Path) -> Vec<u64> {
    let options = rocksdb::Options::default();
    let families = rocksdb::DB::list_cf(&options, path).expect("families");
    let db = rocksdb::DB::open_cf_for_read_only(&options, path, families, false)
        .expect("read-only RocksDB");
    let family = db.cf_handle("events").expect("events");
    db.iterator_cf(family, rocksdb::IteratorMode::Start)
        .map(|item| {
            let (key, _) = item.expect("entry");
            u64::from_be_bytes(key.as_ref().try_into().expect("8-byte key"))
        })
        .collect()
}

#[test]
fn each_batch_is_one_stored_block_and_every_event_reads_back_from_any_sequence() {
    // Given a log written in batches of 50 commands, with snapshots falling inside blocks
    let directory = tempfile::tempdir().expect("tempdir");
    let filled = fill(directory.path(), 200, 37);
    let last = filled.last_sequence();
    // then each batch is stored under one key, the sequence of its first event
    let keys = stored_log_keys(directory.path());
    let batches = scenario_commands(200).len().div_ceil(50);
    assert!(
        keys.len() <= batches && keys.len() < last as usize / 10,
        "{} keys for {last} events in {batches} batches",
        keys.len()
    );
    assert_eq!(keys[0], 1);
    // and the ledger reopens from a snapshot inside a block, equal to a full replay
    let replayed = full_replay(directory.path());
    let (ledger, opened) = Ledger::open(directory.path(), options(37)).expect("reopen");
    let snapshot = opened.snapshot_sequence.expect("a snapshot");
    assert!(
        !keys.contains(&snapshot),
        "snapshot {snapshot} is inside a block"
    );
    assert!(ledger.state().same_projections(&replayed));
    // and reading from any sequence (first, inside, last of a block) gives the same
    // events as reading everything
    let reader = ledger.reader();
    let mut everything = Vec::new();
    reader
        .read_events(1, |logged| {
            everything.push(logged);
            std::ops::ControlFlow::Continue(())
        })
        .expect("read all");
    assert_eq!(everything.len() as u64, last);
    for from in
        (1..=last).filter(|from| from % 7 == 0 || keys.contains(from) || keys.contains(&(from + 1)))
    {
        let mut read = Vec::new();
        reader
            .read_events(from, |logged| {
                read.push(logged);
                if read.len() == 3 {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            })
            .expect("read from the middle");
        let expected: Vec<_> = everything[from as usize - 1..]
            .iter()
            .take(3)
            .cloned()
            .collect();
        assert_eq!(read, expected, "reading from {from}");
    }
    assert_eq!(reader.stored_sequence().expect("stored"), last);
    drop(reader);
    drop(ledger);
    assert!(verify(directory.path()).expect("verify").is_clean());
}

#[test]
fn dropping_a_whole_block_is_detected_at_its_first_sequence() {
    let directory = tempfile::tempdir().expect("tempdir");
    fill(directory.path(), 120, 1_000_000);
    let keys = stored_log_keys(directory.path());
    let dropped = keys[1];
    {
        let options = rocksdb::Options::default();
        let families = rocksdb::DB::list_cf(&options, directory.path()).expect("families");
        let db = rocksdb::DB::open_cf(&options, directory.path(), families).expect("RocksDB");
        let family = db.cf_handle("events").expect("events");
        db.delete_cf(family, dropped.to_be_bytes()).expect("delete");
        db.flush_wal(true).expect("flush");
    }
    let report = verify(directory.path()).expect("verify runs");
    assert_eq!(
        report.first_bad_sequence,
        Some(dropped),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems[0].contains("missing"),
        "{:?}",
        report.problems
    );
    assert!(Ledger::open(directory.path(), options(1_000_000)).is_err());
}

/// Waits (at most 10 s) until the ledger's invoice filter has been filled from the index.
fn wait_for_the_invoice_filter(ledger: &Ledger) {
    let started = std::time::Instant::now();
    while !ledger.invoice_filter_ready() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the invoice filter was not filled within 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Options whose invoice cache keeps two invoices: nearly every lookup goes to the store.
fn options_with_an_invoice_cache_of_two() -> LedgerOptions {
    LedgerOptions {
        invoice_cache_limit: 2,
        ..options(1_000_000)
    }
}

fn open_with_an_invoice_cache_of_two(path: &Path) -> Ledger {
    let (ledger, _) = Ledger::open(path, options_with_an_invoice_cache_of_two()).expect("open");
    ledger
}

#[test]
fn once_the_invoice_filter_is_filled_every_stored_invoice_is_still_found() {
    // Given invoices written before a restart (so none is in memory)
    let directory = tempfile::tempdir().expect("tempdir");
    fill(directory.path(), 40, 1_000_000);
    let (mut ledger, _) = Ledger::open(directory.path(), options(1_000_000)).expect("open");
    // when the in-memory filter has been filled from the index (bounded wait)
    wait_for_the_invoice_filter(&ledger);
    // then a repost of each stored invoice is answered from the index as a duplicate,
    // and brand-new invoices in the same batch are redeemed
    let at = 1_767_225_600_000 + 100_000;
    let envelopes: Vec<Envelope> = (1..40)
        .map(|number| post(1, 1, &format!("INV-{number}"), "100.01"))
        .chain((0..10).map(|number| post(1, 1, &format!("NEW-{number}"), "100.01")))
        .map(|command| Envelope::new(Timestamp(at), command))
        .collect();
    let replies = ledger.submit(&envelopes).expect("submit");
    for (index, reply) in replies.into_iter().enumerate() {
        match reply.expect("accepted") {
            Reply::InvoiceOutcome(outcome) => {
                assert_eq!(outcome.duplicate, index < 39, "reply {index}: {outcome:?}")
            }
            other => panic!("reply {index}: {other:?}"),
        }
    }
    drop(ledger);
    assert!(verify(directory.path()).expect("verify").is_clean());
}

/// Registers the scenario's parties and approves voucher 1 (1,000,000.00 contract,
/// 300,000.00 subsidy) at `at`.
fn register_and_approve_voucher_one(ledger: &mut Ledger, at: Timestamp) {
    let mut setup: Vec<Command> = registration_commands();
    setup.push(approve(1, 1, 1, "1000000.00", "300000.00"));
    let envelopes: Vec<Envelope> = setup.into_iter().map(|c| Envelope::new(at, c)).collect();
    for reply in ledger.submit(&envelopes).expect("submit") {
        reply.expect("accepted");
    }
}

/// When [`open_with_voucher_one_and_a_complete_filter`] registers the parties.
const REGISTERED_AT: i64 = 1_767_225_600_000;

/// A ledger whose invoice cache keeps two invoices, with the parties registered and
/// voucher 1 approved at [`REGISTERED_AT`], once its invoice filter is complete.
fn open_with_voucher_one_and_a_complete_filter(path: &Path) -> Ledger {
    let mut ledger = open_with_an_invoice_cache_of_two(path);
    register_and_approve_voucher_one(&mut ledger, Timestamp(REGISTERED_AT));
    wait_for_the_invoice_filter(&ledger);
    ledger
}

#[test]
fn an_invoice_written_after_the_filter_was_filled_is_never_called_absent() {
    // Given a ledger whose invoice filter is complete and whose cache keeps almost nothing
    let directory = tempfile::tempdir().expect("tempdir");
    let mut ledger = open_with_voucher_one_and_a_complete_filter(directory.path());
    let at = |offset: i64| Timestamp(REGISTERED_AT + offset);
    // when invoices are written by a batch large enough to be encoded beside the writer
    // (1,100) and by a small one encoded by the writer itself (20)
    let posts = |range: std::ops::Range<usize>, offset: i64| -> Vec<Envelope> {
        range
            .map(|number| {
                Envelope::new(at(offset), post(1, 1, &format!("LIVE-{number}"), "100.01"))
            })
            .collect()
    };
    for batch in [posts(0..1_100, 1), posts(1_100..1_120, 2)] {
        for reply in ledger.submit(&batch).expect("submit") {
            match reply.expect("accepted") {
                Reply::InvoiceOutcome(outcome) => assert!(!outcome.duplicate, "{outcome:?}"),
                other => panic!("{other:?}"),
            }
        }
    }
    // then, with none of them in memory any more, a repost of each is a duplicate: the
    // filter knew every key before its batch was committed
    assert!(ledger.state().invoices_in_memory() <= 2);
    let replies = ledger.submit(&posts(0..1_120, 3)).expect("submit");
    for (index, reply) in replies.into_iter().enumerate() {
        match reply.expect("accepted") {
            Reply::InvoiceOutcome(outcome) => {
                assert!(outcome.duplicate, "reply {index}: {outcome:?}")
            }
            other => panic!("reply {index}: {other:?}"),
        }
    }
    drop(ledger);
    assert!(verify(directory.path()).expect("verify").is_clean());
}

#[test]
fn a_large_batch_of_reposts_among_new_invoices_pays_none_of_them_twice() {
    // Given 700 invoices written, none of them in memory any more (a cache of two), and a
    // complete invoice filter
    let directory = tempfile::tempdir().expect("tempdir");
    let mut ledger = open_with_voucher_one_and_a_complete_filter(directory.path());
    let at = |offset: i64| Timestamp(REGISTERED_AT + offset);
    let old: Vec<Envelope> = (0..700)
        .map(|number| Envelope::new(at(1), post(1, 1, &format!("OLD-{number}"), "100.01")))
        .collect();
    for reply in ledger.submit(&old).expect("submit") {
        reply.expect("accepted");
    }
    assert!(ledger.state().invoices_in_memory() <= 2);
    // when one batch of 2,102 commands, large enough to be encoded beside the writer,
    // posts every third invoice again between new ones (the filter's answers alternate:
    // any answer given to the wrong invoice would let a repost through), approves a
    // voucher (a command naming no invoice) and reverses one stored invoice
    let mut commands: Vec<Command> = Vec::new();
    let mut expected: Vec<&str> = Vec::new();
    for place in 0..2_100 {
        if place == 1_000 {
            commands.push(approve(2, 1, 1, "1000000.00", "300000.00"));
            expected.push("approved");
        }
        if place == 1_600 {
            commands.push(reverse(1, "OLD-1"));
            expected.push("reversed");
        }
        if place % 3 == 0 {
            commands.push(post(1, 1, &format!("OLD-{}", place / 3), "100.01"));
            expected.push("duplicate");
        } else {
            commands.push(post(1, 1, &format!("NEW-{place}"), "100.01"));
            expected.push("redeemed");
        }
    }
    let envelopes: Vec<Envelope> = commands
        .into_iter()
        .map(|command| Envelope::new(at(2), command))
        .collect();
    let replies = ledger.submit(&envelopes).expect("submit");
    // then every repost is a duplicate (none paid twice), every new invoice is redeemed,
    // and the stored invoice is found and reversed
    assert_eq!(replies.len(), expected.len());
    for (index, (reply, expected)) in replies.into_iter().zip(expected).enumerate() {
        let reply = reply.unwrap_or_else(|rejection| panic!("reply {index}: {rejection:?}"));
        match (expected, reply) {
            ("duplicate", Reply::InvoiceOutcome(outcome)) => {
                assert!(outcome.duplicate, "reply {index}: {outcome:?}")
            }
            ("redeemed", Reply::InvoiceOutcome(outcome)) => {
                assert!(!outcome.duplicate, "reply {index}: {outcome:?}")
            }
            ("approved", Reply::VoucherApproved { .. })
            | ("reversed", Reply::InvoiceReversed(_)) => {}
            (expected, reply) => panic!("reply {index}: expected {expected}, got {reply:?}"),
        }
    }
    drop(ledger);
    assert!(verify(directory.path()).expect("verify").is_clean());
}

/// Waits (at most 10 s) until no larger invoice filter is being filled.
fn wait_for_the_invoice_filter_growth(ledger: &Ledger) {
    let started = std::time::Instant::now();
    while ledger.invoice_filter_size().1 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the larger invoice filter was not filled within 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn invoices_written_before_and_while_the_filter_grows_are_never_called_absent() {
    // Given a ledger whose invoice filter starts at 512 bytes (room for 682 keys), whose
    // cache keeps two invoices, and whose filter has been filled from the empty index
    let directory = tempfile::tempdir().expect("tempdir");
    let options = LedgerOptions {
        store: StoreSettings {
            invoice_filter_least_bytes: 512,
            ..StoreSettings::default()
        },
        ..options_with_an_invoice_cache_of_two()
    };
    let (mut ledger, _) = Ledger::open(directory.path(), options).expect("open");
    let at = |offset: i64| Timestamp(1_767_225_600_000 + offset);
    register_and_approve_voucher_one(&mut ledger, at(0));
    wait_for_the_invoice_filter(&ledger);
    assert_eq!(ledger.invoice_filter_size(), (512, false));
    // when 3,000 invoices are posted in batches of 300, with no wait between them (the
    // fourth batch finds 900 keys and starts a larger filter; later ones may be written
    // while it is being filled)
    let posts = |range: std::ops::Range<usize>, offset: i64| -> Vec<Envelope> {
        range
            .map(|number| {
                Envelope::new(at(offset), post(1, 1, &format!("GROW-{number}"), "100.01"))
            })
            .collect()
    };
    for batch in 0..10 {
        for reply in ledger
            .submit(&posts(batch * 300..(batch + 1) * 300, 1))
            .expect("submit")
        {
            match reply.expect("accepted") {
                Reply::InvoiceOutcome(outcome) => assert!(!outcome.duplicate, "{outcome:?}"),
                other => panic!("{other:?}"),
            }
        }
    }
    wait_for_the_invoice_filter_growth(&ledger);
    let (bytes, _) = ledger.invoice_filter_size();
    assert!(
        bytes > 512,
        "the filter stayed at {bytes} bytes for 3,000 keys"
    );
    // then, with none of them in memory, a repost of each is a duplicate (answered from
    // the index: the grown filter knew every key), and new invoices beside them are not
    assert!(ledger.state().invoices_in_memory() <= 2);
    for batch in 0..10 {
        let mut envelopes = posts(batch * 300..(batch + 1) * 300, 2);
        envelopes.extend(posts(10_000 + batch * 10..10_000 + (batch + 1) * 10, 2));
        let replies = ledger.submit(&envelopes).expect("submit");
        for (index, reply) in replies.into_iter().enumerate() {
            match reply.expect("accepted") {
                Reply::InvoiceOutcome(outcome) => assert_eq!(
                    outcome.duplicate,
                    index < 300,
                    "batch {batch}, reply {index}: {outcome:?}"
                ),
                other => panic!("batch {batch}, reply {index}: {other:?}"),
            }
        }
    }
    drop(ledger);
    assert!(verify(directory.path()).expect("verify").is_clean());
}

#[test]
fn a_batch_of_refusals_keeps_the_invoice_cache_within_its_limit() {
    // Given a ledger whose cache keeps two invoices, and a center with no such voucher
    let directory = tempfile::tempdir().expect("tempdir");
    let mut ledger = open_with_an_invoice_cache_of_two(directory.path());
    let at = Timestamp(1_767_225_600_000);
    let setup: Vec<Envelope> = registration_commands()
        .into_iter()
        .map(|command| Envelope::new(at, command))
        .collect();
    for reply in ledger.submit(&setup).expect("submit") {
        reply.expect("accepted");
    }
    // when batch after batch names new invoices that are all refused (nothing is
    // written, but the prefetch marked each one absent)
    for batch in 0..5 {
        let refused: Vec<Envelope> = (0..10)
            .map(|number| Envelope::new(at, post(1, 99, &format!("R-{batch}-{number}"), "1.00")))
            .collect();
        for reply in ledger.submit(&refused).expect("submit") {
            assert_eq!(
                reply.expect_err("refused").code,
                RejectionCode::VoucherNotFound
            );
        }
        // then the cache is emptied as after a written batch, not grown by each
        assert!(
            ledger.state().invoices_in_memory() <= 2,
            "batch {batch}: {} invoices in memory",
            ledger.state().invoices_in_memory()
        );
    }
}

// ------------------------------------------------------------------ format fixtures

const FIXTURE: &str = "tests/fixtures/log-v1.records";

/// The records of `scenario_commands(3)`, each preceded by its sequence and length.
fn encode_fixture_log() -> Vec<u8> {
    let mut state = LedgerState::new();
    let mut events = Vec::new();
    for envelope in scenario_commands(3) {
        state.execute(&envelope, &mut events).expect("accepted");
    }
    let mut chain = genesis_chain_hash();
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    for event in &events {
        let mut record = Vec::new();
        chain = encode_record(event, &chain, &mut scratch, &mut record).expect("encode");
        out.extend_from_slice(&event.sequence.to_le_bytes());
        out.extend_from_slice(&(record.len() as u32).to_le_bytes());
        out.extend_from_slice(&record);
    }
    out
}

fn split_fixture(bytes: &[u8]) -> Vec<(u64, &[u8])> {
    let mut records = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 12 {
        let sequence = u64::from_le_bytes(rest[..8].try_into().expect("8"));
        let length = u32::from_le_bytes(rest[8..12].try_into().expect("4")) as usize;
        let end = (12 + length).min(rest.len());
        records.push((sequence, &rest[12..end]));
        rest = &rest[end..];
    }
    records
}

/// The fixture of the record format written now; older versions' fixtures stay.
fn current_fixture() -> String {
    format!(
        "tests/fixtures/log-v{}.records",
        voucher_ledger::storage::record::RECORD_FORMAT_VERSION
    )
}

#[test]
fn on_disk_format_matches_the_committed_fixture() {
    let encoded = encode_fixture_log();
    let fixture = current_fixture();
    if std::env::var_os("UPDATE_FIXTURES").is_some() && !std::path::Path::new(&fixture).exists() {
        std::fs::write(&fixture, &encoded).expect("write fixture");
    }
    let current = std::fs::read(&fixture).expect(
        "the current version's fixture is committed (UPDATE_FIXTURES=1 makes a missing one)",
    );
    assert_eq!(
        encoded, current,
        "the record format changed: bump RECORD_FORMAT_VERSION, keep a reader for the old version and its fixture, and add the new version's with UPDATE_FIXTURES=1"
    );
    // The committed v2 bytes (the same scenario, chained previous-hash-first) still
    // check and decode, to the events written now.
    let v2 = std::fs::read("tests/fixtures/log-v2.records").expect("the v2 fixture is committed");
    let mut chain = genesis_chain_hash();
    let mut v2_events = Vec::new();
    for (sequence, record) in split_fixture(&v2) {
        assert_eq!(record[4..6], 2u16.to_le_bytes());
        let checked = check_record(sequence, record, &chain).expect("valid v2 record");
        v2_events.push((
            sequence,
            checked.at,
            checked.decode_with_origin().expect("decodes"),
        ));
        chain = checked.chain_hash;
    }
    let mut chain = genesis_chain_hash();
    let current_events: Vec<_> = split_fixture(&encoded)
        .into_iter()
        .map(|(sequence, record)| {
            let checked = check_record(sequence, record, &chain).expect("valid record");
            chain = checked.chain_hash;
            (
                sequence,
                checked.at,
                checked.decode_with_origin().expect("decodes"),
            )
        })
        .collect();
    assert_eq!(v2_events, current_events);
    // The committed v1 bytes (written before settlement statements) still decode and
    // replay: the v1 CenterSettled paid the center 60.00.
    let committed = std::fs::read(FIXTURE).expect("the v1 fixture is committed");
    let mut chain = genesis_chain_hash();
    let mut state = LedgerState::new();
    for (sequence, record) in split_fixture(&committed) {
        let checked = check_record(sequence, record, &chain).expect("valid record");
        state.apply(sequence, checked.at, &checked.decode().expect("decodes"));
        chain = checked.chain_hash;
    }
    assert_eq!(state.invoices_redeemed(), 3);
    assert_eq!(
        state.center(&center(1)).expect("center").paid_total,
        money("60.00")
    );
}

#[test]
fn corrupt_fixture_records_are_refused_with_their_sequence() {
    let committed = std::fs::read(FIXTURE).expect("fixture");
    let records = split_fixture(&committed);
    let genesis = genesis_chain_hash();
    let (sequence, first) = records[0];
    // A torn write: the record cut short.
    let torn = &first[..first.len() - 5];
    assert!(matches!(
        check_record(sequence, torn, &genesis),
        Err(RecordError::LengthMismatch { sequence: 1, .. })
    ));
    assert!(matches!(
        check_record(sequence, &first[..20], &genesis),
        Err(RecordError::Truncated { sequence: 1, .. })
    ));
    // A record from a future format version.
    let future_version = voucher_ledger::storage::record::RECORD_FORMAT_VERSION + 1;
    let mut future = first.to_vec();
    future[4..6].copy_from_slice(&future_version.to_le_bytes());
    assert!(matches!(
        check_record(sequence, &future, &genesis),
        Err(RecordError::UnknownVersion { version, .. }) if version == future_version
    ));
    let mut wrong_magic = first.to_vec();
    wrong_magic[0] = b'X';
    assert!(matches!(
        check_record(sequence, &wrong_magic, &genesis),
        Err(RecordError::BadMagic { .. })
    ));
    // The committed corrupt log (a torn tail) is detected at its last record.
    let corrupt =
        std::fs::read("tests/fixtures/log-v1-torn-tail.records").expect("corrupt fixture");
    let mut chain = genesis;
    let mut failure = None;
    for (sequence, record) in split_fixture(&corrupt) {
        match check_record(sequence, record, &chain) {
            Ok(checked) => chain = checked.chain_hash,
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    let failure = failure.expect("the torn tail is detected");
    assert_eq!(failure.sequence(), records.len() as u64, "{failure}");
}

#[test]
fn an_evicted_invoice_is_prefetched_so_the_ledger_decides_as_the_pure_state_machine() {
    // The durable ledger keeps at most 2 invoices in memory between batches; retries,
    // conflicts and reversals of long-evicted invoices must be answered exactly as the
    // purely in-memory state machine answers them.
    let mut envelopes = scenario_commands(12);
    let mut at = 1_800_000_000_000;
    for command in [
        post(1, 1, "INV-3", "100.01"),  // duplicate of an evicted invoice
        post(1, 1, "INV-4", "100.02"),  // conflict with an evicted invoice
        reverse(1, "INV-5"),            // reversal of an evicted invoice
        reverse(1, "INV-5"),            // already reversed
        post(1, 1, "INV-0", "100.01"),  // duplicate of an invoice reversed long ago
        reverse(1, "INV-404"),          // never posted
        post(1, 1, "INV-12", "100.01"), // new
        post(1, 1, "INV-12", "100.01"), // duplicate within the same batch
    ] {
        at += 1;
        envelopes.push(Envelope::new(Timestamp(at), command));
    }
    let mut pure = LedgerState::new();
    let mut pure_events = Vec::new();
    let pure_replies: Vec<_> = envelopes
        .iter()
        .map(|envelope| pure.execute(envelope, &mut pure_events))
        .collect();

    let directory = tempfile::tempdir().expect("tempdir");
    let small_cache = options_with_an_invoice_cache_of_two();
    let (mut ledger, _) = Ledger::open(directory.path(), small_cache.clone()).expect("open");
    let mut durable_replies = Vec::new();
    let mut durable_events = Vec::new();
    for (index, chunk) in envelopes.chunks(3).enumerate() {
        if index == 4 {
            // A restart in the middle empties the cache as well.
            drop(ledger);
            ledger = Ledger::open(directory.path(), small_cache.clone())
                .expect("reopen")
                .0;
        }
        durable_replies.extend(ledger.submit(chunk).expect("submit"));
        durable_events.extend(ledger.last_batch_events().iter().cloned());
        assert!(ledger.state().invoices_in_memory() <= 2 + chunk.len());
    }
    assert_eq!(durable_replies, pure_replies);
    assert_eq!(durable_events.len(), pure_events.len());
    assert!(durable_events
        .iter()
        .zip(&pure_events)
        .all(|(left, right)| left.event == right.event && left.sequence == right.sequence));
    assert!(ledger.state().same_projections(&pure));
    let codes: Vec<_> = pure_replies
        .iter()
        .rev()
        .take(8)
        .filter_map(|reply| reply.as_ref().err().map(|rejection| rejection.code))
        .collect();
    assert_eq!(
        codes,
        vec![
            RejectionCode::InvoiceNotFound,
            RejectionCode::InvoiceAlreadyReversed,
            RejectionCode::InvoiceConflict
        ]
    );
    drop(ledger);
    let report = verify(directory.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[test]
fn a_large_batch_encoded_beside_the_writer_is_stored_as_single_commands_are() {
    // Given the same commands committed twice: as one batch of more than 3,000 (its
    // records encoded by the encoder thread while the writer decides, in chunks) and one
    // command per batch (encoded by the writer itself)
    let envelopes = scenario_commands(3_000);
    let registrations = registration_commands().len() + 1;
    let retry = Envelope::new(
        envelopes[registrations + 9].at,
        envelopes[registrations + 5].command.clone(),
    );
    let large = tempfile::tempdir().expect("tempdir");
    let single = tempfile::tempdir().expect("tempdir");
    let large_head = {
        let (mut ledger, _) = Ledger::open(large.path(), options(1_000_000)).expect("open");
        for reply in ledger.submit(&envelopes[..registrations]).expect("submit") {
            reply.expect("accepted");
        }
        // The big batch also holds a retry, and the reversal of its own first invoice:
        // the reversal's index entry must win over the redemption's.
        let mut batch = envelopes[registrations..].to_vec();
        batch.insert(10, retry.clone());
        assert!(batch.len() > 3_000);
        for reply in ledger.submit(&batch).expect("submit the large batch") {
            reply.expect("accepted");
        }
        ledger.chain_head()
    };
    let single_head = {
        let (mut ledger, _) = Ledger::open(single.path(), options(1_000_000)).expect("open");
        let mut batch = envelopes.clone();
        batch.insert(registrations + 10, retry.clone());
        for envelope in batch {
            ledger.submit(&[envelope]).expect("submit")[0]
                .clone()
                .expect("accepted");
        }
        ledger.chain_head()
    };
    // then both logs end at the same chain head and verify
    assert_eq!(large_head, single_head);
    assert!(verify(large.path()).expect("verify").is_clean());
    assert!(verify(single.path()).expect("verify").is_clean());
    // and reopened (an empty invoice cache), the large batch's index answers from the
    // store: the reversed invoice as reversed, the last one with its subsidy
    assert!(full_replay(large.path()).same_projections(&full_replay(single.path())));
    let (ledger, _) = Ledger::open(large.path(), options(1_000_000)).expect("reopen");
    let reader = ledger.reader();
    let (first, _) = reader
        .invoice(&center(1), &invoice_number("INV-0"))
        .expect("read the index");
    assert!(first.expect("INV-0 is indexed").is_reversed());
    let (last, _) = reader
        .invoice(&center(1), &invoice_number("INV-2999"))
        .expect("read the index");
    let last = last.expect("INV-2999 is indexed");
    assert!(!last.is_reversed());
    assert!(last.subsidy > Money::ZERO);
    let large_order = invoice_order(&reader);
    drop(reader);
    drop(ledger);
    let (ledger, _) = Ledger::open(single.path(), options(1_000_000)).expect("reopen");
    let (same, _) = ledger
        .reader()
        .invoice(&center(1), &invoice_number("INV-2999"))
        .expect("read the index");
    assert_eq!(same, Some(last));
    // and the center's invoice order names the same invoices at the same sequences (a
    // large batch's places in it are noted chunk by chunk while the encoder encodes)
    let single_order = invoice_order(&ledger.reader());
    assert_eq!(large_order.len(), 3_000);
    assert_eq!(large_order[2_999].1, invoice_number("INV-2999"));
    assert_eq!(large_order, single_order);
}

/// Center 1's invoices of the year in log order, as the store's invoice order holds them.
fn invoice_order(reader: &voucher_ledger::ledger::LedgerReader) -> Vec<(u64, InvoiceNumber)> {
    let mut order = Vec::new();
    reader
        .scan_invoice_order(&center(1), year(), 0, u64::MAX, |sequence, number| {
            order.push((sequence, number));
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan the invoice order");
    order
}

/// Every invoice of `numbers` (center 1) as the store's index holds it, read through
/// `reader` (`LedgerReader::invoices` reads the index, never the writer's cache).
fn indexed(
    reader: &voucher_ledger::ledger::LedgerReader,
    numbers: &[String],
) -> Vec<Option<InvoiceEntry>> {
    let wanted: Vec<(Uscc, InvoiceNumber)> = numbers
        .iter()
        .map(|number| (center(1), invoice_number(number)))
        .collect();
    reader.invoices(&wanted).expect("read the index")
}

#[test]
fn a_large_batch_refused_whole_does_not_hand_its_index_part_to_the_next_batch() {
    // Given a ledger with one voucher, whose invoice cache keeps two invoices (so a
    // repost is answered from the store's index)
    let directory = tempfile::tempdir().expect("tempdir");
    let mut ledger = open_with_an_invoice_cache_of_two(directory.path());
    let at = |offset: i64| Timestamp(1_767_225_600_000 + offset);
    let mut setup: Vec<Envelope> = registration_commands()
        .into_iter()
        .map(|command| Envelope::new(at(0), command))
        .collect();
    setup.push(Envelope::new(
        at(0),
        approve(1, 1, 1, "1000000.00", "300000.00"),
    ));
    for reply in ledger.submit(&setup).expect("submit") {
        reply.expect("accepted");
    }
    // when a batch large enough to be encoded beside the writer is refused whole (the
    // encoder's index part for it is empty and nothing is written)
    let refused: Vec<Envelope> = (0..1_100)
        .map(|number| Envelope::new(at(1), post(1, 99, &format!("R-{number}"), "1.00")))
        .collect();
    for reply in ledger.submit(&refused).expect("submit") {
        assert_eq!(
            reply.expect_err("refused").code,
            RejectionCode::VoucherNotFound
        );
    }
    // and the next large batch is accepted, with the reversal of one of its own invoices
    let numbers: Vec<String> = (0..1_100).map(|number| format!("A-{number}")).collect();
    let mut accepted: Vec<Envelope> = numbers
        .iter()
        .map(|number| Envelope::new(at(2), post(1, 1, number, "100.01")))
        .collect();
    accepted.push(Envelope::new(at(2), reverse(1, "A-7")));
    let mut outcomes = Vec::new();
    for reply in ledger.submit(&accepted).expect("submit") {
        match reply.expect("accepted") {
            Reply::InvoiceOutcome(outcome) => outcomes.push(outcome),
            Reply::InvoiceReversed(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(outcomes.len(), numbers.len());
    // then the index holds each of its invoices as decided, the reversed one reversed,
    // while the ledger runs and after a reopen
    let check = |entries: Vec<Option<InvoiceEntry>>, when: &str| {
        for ((number, outcome), entry) in numbers.iter().zip(&outcomes).zip(entries) {
            let entry = entry.unwrap_or_else(|| panic!("{when}: {number} is not in the index"));
            assert_eq!(entry.sequence, outcome.sequence, "{when}: {number}");
            assert_eq!(entry.subsidy, outcome.subsidy, "{when}: {number}");
            assert_eq!(entry.is_reversed(), number == "A-7", "{when}: {number}");
        }
    };
    check(indexed(&ledger.reader(), &numbers), "running");
    drop(ledger);
    let mut ledger = open_with_an_invoice_cache_of_two(directory.path());
    check(indexed(&ledger.reader(), &numbers), "reopened");
    // and posting them all again (one large batch) pays nothing twice
    let again: Vec<Envelope> = numbers
        .iter()
        .map(|number| Envelope::new(at(3), post(1, 1, number, "100.01")))
        .collect();
    for (number, reply) in numbers.iter().zip(ledger.submit(&again).expect("submit")) {
        match reply.expect("answered") {
            Reply::InvoiceOutcome(outcome) => {
                assert!(outcome.duplicate, "{number}: {outcome:?}");
                assert_eq!(outcome.reversed, number == "A-7", "{number}");
            }
            other => panic!("{other:?}"),
        }
    }
    drop(ledger);
    let report = verify(directory.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
}

/// Set in the child process that the page-fault test below starts, so the child counts and
/// the parent only checks its verdict.
const COUNT_OPEN_FAULTS_IN_THIS_PROCESS: &str = "VOUCHER_LEDGER_TEST_COUNT_OPEN_FAULTS_HERE";

/// A ledger opened to decide batches under load (the server) writes, while opening, the
/// memory its first batches fill (the invoice cache's room, the invoice filter's pages, a
/// batch's worth of events), so they fault no fresh pages; a read-only open (`summary`,
/// `report`) leaves it unwritten and keeps neither the time nor the memory.
///
/// The pages are counted in a fresh process that runs only this test: beside the binary's
/// other tests the counts depend on what glibc already holds from blocks they freed (a
/// read-only open faulted 115 to 2,066 pages there, an open for batches 2,296 to 6,400),
/// and a margin that held on one machine failed on another.
#[test]
fn only_a_ledger_opened_for_batches_writes_the_memory_its_batches_fill_at_open() {
    const THIS_TEST: &str =
        "only_a_ledger_opened_for_batches_writes_the_memory_its_batches_fill_at_open";
    if std::env::var_os(COUNT_OPEN_FAULTS_IN_THIS_PROCESS).is_none() {
        let executable = std::env::current_exe().expect("this test binary's path");
        let output = std::process::Command::new(executable)
            .args(["--exact", THIS_TEST, "--nocapture", "--test-threads=1"])
            .env(COUNT_OPEN_FAULTS_IN_THIS_PROCESS, "1")
            .output()
            .expect("run this test in a fresh process");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the fresh process failed ({}):\n{stdout}\n{stderr}",
            output.status
        );
        // The filter matched this test and it ran (not "0 passed; ... 1 filtered out").
        assert!(
            stdout.contains("test result: ok. 1 passed"),
            "the fresh process did not run this test:\n{stdout}\n{stderr}"
        );
        return;
    }
    // 4 KiB pages for this process, so each page written is one fault to count.
    voucher_ledger::storage::heap::disable_transparent_huge_pages();
    let faults_of_an_open = |prepare_memory_for_batches: bool| {
        let directory = tempfile::tempdir().expect("tempdir");
        let options = LedgerOptions {
            sync: false,
            prepare_memory_for_batches,
            ..LedgerOptions::default()
        };
        let before = page_faults_of_this_thread()?;
        let (ledger, _) = Ledger::open(directory.path(), options).expect("open");
        let faults = page_faults_of_this_thread()? - before;
        drop(ledger);
        Some(faults)
    };
    // Read-only first: had the flag been ignored, both opens would write fresh memory
    // (the cache's room and the filter are larger than glibc's mmap threshold) and fault
    // alike.
    let (Some(read_only), Some(for_batches)) = (faults_of_an_open(false), faults_of_an_open(true))
    else {
        eprintln!("no /proc/thread-self/stat here: page faults not counted");
        return;
    };
    println!("page faults of an open: read-only {read_only}, for batches {for_batches}");
    // The default cache room is ~16 MiB and the filter 8 MiB: ~6,400 pages of 4 KiB in a
    // fresh process (against a few hundred for a read-only open). With the flag ignored
    // the two opens fault alike.
    assert!(
        for_batches >= read_only + 4_000,
        "an open for batches faulted {for_batches} pages, a read-only open {read_only}"
    );
}

/// The invoice filter's words are allocated zeroed, so their pages may be ones the
/// process never wrote. `write_every_page` writes one word of each without changing a
/// bit; after it, probing and inserting a batch's worth of keys faults no page in.
#[test]
fn writing_every_page_of_the_invoice_filter_keeps_its_bits_and_spares_the_first_batch_its_faults() {
    use voucher_ledger::storage::invoice_filter::InvoiceFilter;
    // 4 KiB pages for this process, so each page first touched is one fault to count.
    voucher_ledger::storage::heap::disable_transparent_huge_pages();
    let keys: Vec<Vec<u8>> = (0..8_189u32)
        .map(|index| format!("91330100MA2H0000{}/{index:08}", index % 50).into_bytes())
        .collect();
    let filter = InvoiceFilter::new(8 << 20);
    for key in &keys[..1_000] {
        filter.insert(key);
    }
    filter.write_every_page();
    for key in &keys[..1_000] {
        assert!(
            filter.may_contain(key),
            "a key inserted before is still there"
        );
    }
    let Some(before) = page_faults_of_this_thread() else {
        eprintln!("no /proc/thread-self/stat here: page faults not counted");
        return;
    };
    let mut present = 0;
    for key in &keys {
        present += usize::from(filter.may_contain(key));
        filter.insert(key);
    }
    let faults = page_faults_of_this_thread().unwrap_or(before) - before;
    assert!(present >= 1_000);
    // 8,189 keys over the filter's 2,048 pages reach nearly all of them: ~2,000 faults
    // (each read, then each written) had the pages not been written.
    assert!(
        faults <= 16,
        "{faults} page faults probing and inserting after every page was written"
    );
}
