//! Bounded mutation and random-input tests on stable Rust (issue 11): the decoders of
//! every stored format (record frames and payloads v1 and v2, index entries v1 to v3,
//! snapshots, signed checkpoints and their export file, backup manifests) and every
//! proto → domain converter of the API get a few thousand damaged or random inputs each,
//! for at most a couple of seconds: none may panic, and what they accept must survive a
//! round trip. A crash found here becomes a file under `tests/fixtures/fuzz/` (replayed
//! first, every run) and a fix.
//!
//! Seeds are fixed, so a failure reproduces; `FUZZ_SECONDS` and `FUZZ_SEED` widen a run
//! by hand (e.g. `FUZZ_SECONDS=120 FUZZ_SEED=7 cargo test --release --test fuzz`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use voucher_ledger::api::convert;
use voucher_ledger::api::proto;
use voucher_ledger::domain::ProgrammePolicy;
use voucher_ledger::storage::checkpoint::{parse_export, Checkpoint};
use voucher_ledger::storage::index::decode_index_entry;
use voucher_ledger::storage::record::{check_record, genesis_chain_hash, parse_frame, sm3_digest};
use voucher_ledger::storage::snapshot::decode_snapshot;

fn budget() -> (Duration, usize) {
    let seconds = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|text| text.parse::<f64>().ok())
        .unwrap_or(1.5);
    let iterations = if std::env::var_os("FUZZ_SECONDS").is_some() {
        usize::MAX
    } else {
        20_000
    };
    (Duration::from_secs_f64(seconds), iterations)
}

fn rng(target: u64) -> SmallRng {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(2026);
    SmallRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(target))
}

/// Runs `check` on inputs from `next` until the time or iteration budget is spent;
/// returns how many ran. A panic names the input (hex) so it can be committed.
fn run(name: &str, mut next: impl FnMut(&mut SmallRng) -> Vec<u8>, check: impl Fn(&[u8])) -> usize {
    let (time, iterations) = budget();
    let mut random = rng(name.bytes().map(u64::from).sum());
    for regression in regressions(name) {
        check(&regression);
    }
    let started = Instant::now();
    let mut count = 0;
    while count < iterations && started.elapsed() < time {
        let input = next(&mut random);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
        if outcome.is_err() {
            panic!(
                "{name}: panicked on input {}; commit it as tests/fixtures/fuzz/{name}-<n>.bin",
                hex::encode(&input)
            );
        }
        count += 1;
    }
    assert!(count > 0, "{name}: no input ran");
    count
}

/// Committed crash inputs for `name`: `tests/fixtures/fuzz/<name>-*.bin`.
fn regressions(name: &str) -> Vec<Vec<u8>> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let Ok(entries) = std::fs::read_dir(&directory) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|file| file.to_str())
                .is_some_and(|file| file.starts_with(&format!("{name}-")) && file.ends_with(".bin"))
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| std::fs::read(path).expect("regression input"))
        .collect()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap_or_else(|error| panic!("tests/fixtures/{name}: {error}"))
}

/// The records of a fixture log (`tests/format.rs` layout: sequence u64, length u32,
/// record).
fn fixture_records(name: &str) -> Vec<(u64, Vec<u8>)> {
    let bytes = fixture(name);
    let mut records = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 12 {
        let sequence = u64::from_le_bytes(rest[..8].try_into().expect("8"));
        let length = u32::from_le_bytes(rest[8..12].try_into().expect("4")) as usize;
        let end = (12 + length).min(rest.len());
        records.push((sequence, rest[12..end].to_vec()));
        rest = &rest[end..];
    }
    records
}

const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, b'0', b'9'];

/// One to four mutations of `original`: bit flips, interesting bytes, little-endian
/// lengths set to extremes, truncation, extension, duplicated or removed ranges.
fn mutate(random: &mut SmallRng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for _ in 0..random.random_range(1..=4) {
        let length = bytes.len();
        match random.random_range(0..8) {
            0 if length > 0 => {
                let at = random.random_range(0..length);
                bytes[at] ^= 1 << random.random_range(0..8);
            }
            1 if length > 0 => {
                let at = random.random_range(0..length);
                bytes[at] = INTERESTING[random.random_range(0..INTERESTING.len())];
            }
            2 if length >= 4 => {
                let at = random.random_range(0..=length - 4);
                let value: u32 = match random.random_range(0..4) {
                    0 => u32::MAX,
                    1 => 0,
                    2 => (length as u32).wrapping_add(random.random_range(0..16)),
                    _ => random.random(),
                };
                bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            3 if length > 0 => bytes.truncate(random.random_range(0..length)),
            4 => {
                let extra = random.random_range(1..64);
                bytes.extend((0..extra).map(|_| random.random::<u8>()));
            }
            5 if length > 2 => {
                let from = random.random_range(0..length - 1);
                let to = random.random_range(from + 1..=length.min(from + 64));
                let copy = bytes[from..to].to_vec();
                let at = random.random_range(0..=bytes.len());
                bytes.splice(at..at, copy);
            }
            6 if length > 2 => {
                let from = random.random_range(0..length - 1);
                let to = random.random_range(from + 1..=length.min(from + 64));
                bytes.drain(from..to);
            }
            _ if length > 0 => {
                let at = random.random_range(0..length);
                bytes[at] = random.random();
            }
            _ => bytes.push(random.random()),
        }
    }
    bytes
}

#[test]
fn record_frames_and_payloads_never_panic_on_damaged_bytes() {
    let mut records = fixture_records("log-v2-all-types.records");
    records.extend(fixture_records("log-v1-all-types.records"));
    assert!(records.len() > 20);
    let ran = run(
        "record",
        |random| {
            let (_, record) = &records[random.random_range(0..records.len())];
            let mut input = 7u64.to_le_bytes().to_vec();
            input.extend(mutate(random, record));
            input
        },
        |input| {
            if input.len() < 8 {
                return;
            }
            let (sequence, bytes) = input.split_at(8);
            let sequence = u64::from_le_bytes(sequence.try_into().expect("8"));
            // The payload decoder behind a frame that parses, whatever the chain says.
            if let Ok(frame) = parse_frame(sequence, bytes) {
                if let Ok((origin, event)) = frame.decode_with_origin() {
                    assert_eq!(event.type_number(), frame.event_type);
                    let _ = origin;
                }
            }
            let _ = check_record(sequence, bytes, &genesis_chain_hash());
        },
    );
    eprintln!("record: {ran} inputs");
}

#[test]
fn index_entries_never_panic_on_damaged_bytes() {
    let entries: Vec<Vec<u8>> = [
        "index-v1-entry.vlix",
        "index-v2-entry.vlix",
        "index-v3-entry.vlix",
    ]
    .iter()
    .map(|name| fixture(name))
    .collect();
    let ran = run(
        "index",
        |random| {
            let which = random.random_range(0..entries.len());
            mutate(random, &entries[which])
        },
        |input| {
            let _ = decode_index_entry(input);
        },
    );
    eprintln!("index: {ran} inputs");
}

/// Snapshot layout (`storage/snapshot.rs`): a 56-byte header, the image, SM3 of both.
/// The checksum is fixed after mutating, so the image decoder itself is reached.
fn with_valid_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() < 56 + 32 {
        return bytes;
    }
    let body = bytes.len() - 32;
    let image_length = (body - 56) as u64;
    bytes[48..56].copy_from_slice(&image_length.to_le_bytes());
    let digest = sm3_digest(&bytes[..body]);
    bytes[body..].copy_from_slice(&digest);
    bytes
}

#[test]
fn snapshots_never_panic_on_damaged_images() {
    let snapshot = fixture("snapshot-v3-all-types.vlsn");
    let sequence = u64::from_le_bytes(snapshot[8..16].try_into().expect("8"));
    let ran = run(
        "snapshot",
        |random| {
            let mutated = mutate(random, &snapshot[..snapshot.len() - 32]);
            let mut framed = mutated;
            framed.extend_from_slice(&[0; 32]);
            if random.random_bool(0.9) {
                with_valid_checksum(framed)
            } else {
                framed
            }
        },
        |input| {
            let _ = decode_snapshot(sequence, input);
        },
    );
    eprintln!("snapshot: {ran} inputs");
}

#[test]
fn checkpoints_and_their_export_never_panic_on_damaged_bytes() {
    let (private, _) = voucher_ledger::storage::checkpoint::generate_key_pair().expect("key pair");
    let signer =
        voucher_ledger::storage::checkpoint::CheckpointSigner::from_pem(&private).expect("key");
    let checkpoint = signer
        .sign(
            9,
            voucher_ledger::storage::record::ChainHash([3; 32]),
            voucher_ledger::domain::Timestamp(1),
        )
        .expect("sign")
        .encode();
    let export =
        voucher_ledger::storage::checkpoint::export_text(&[
            Checkpoint::decode(&checkpoint).expect("decode")
        ]);
    let trusted = signer.trusted_key();
    let ran = run(
        "checkpoint",
        |random| {
            if random.random_bool(0.5) {
                mutate(random, &checkpoint)
            } else {
                let mut text = b"T".to_vec();
                text.extend(mutate(random, export.as_bytes()));
                text
            }
        },
        |input| {
            if input.first() == Some(&b'T') {
                if let Ok(text) = std::str::from_utf8(&input[1..]) {
                    let _ = parse_export(text);
                }
            } else if let Ok(decoded) = Checkpoint::decode(input) {
                assert_eq!(decoded.encode(), input);
                let _ = trusted.check(&decoded);
            }
        },
    );
    eprintln!("checkpoint: {ran} inputs");
}

/// Text a hostile client might send: pieces of valid values, digits of other scripts,
/// characters NFKC expands, controls, bidi and format characters, long runs.
fn hostile_text(random: &mut SmallRng) -> String {
    const PIECES: [&str; 32] = [
        "0",
        "1",
        "9",
        ".",
        "-",
        "+",
        "e",
        "E",
        " ",
        "\t",
        "\n",
        "\u{0}",
        "12.34",
        "91330100MA2H00001P",
        "2026-06-30",
        "2026-02-29",
        "9999-12-31",
        "INV-1",
        "ＩＮＶ",
        "１２３",
        "٣",
        "\u{202e}",
        "\u{200b}",
        "\u{fdfa}",
        "\u{3300}",
        "ß",
        "ﬁ",
        "é",
        "e\u{301}",
        "🦀",
        "00000000-0000-0000-0000-000000000000",
        "99999999999999999999",
    ];
    let mut text = String::new();
    for _ in 0..random.random_range(0..8) {
        if random.random_bool(0.8) {
            text.push_str(PIECES[random.random_range(0..PIECES.len())]);
        } else if let Some(character) = char::from_u32(random.random_range(0..0x3_0000)) {
            text.push(character);
        }
    }
    if random.random_bool(0.02) {
        text = text.repeat(random.random_range(1..200));
    }
    text
}

#[test]
fn proto_to_domain_converters_never_panic_and_round_trip_what_they_accept() {
    let ran = run(
        "convert",
        |random| {
            let mut input = vec![random.random_range(0..20u8)];
            input.extend(hostile_text(random).into_bytes());
            input
        },
        |input| {
            let Some((&which, rest)) = input.split_first() else {
                return;
            };
            let text = String::from_utf8_lossy(rest).into_owned();
            let number = rest
                .iter()
                .take(8)
                .fold(0u64, |value, byte| (value << 8) | u64::from(*byte));
            match which {
                0 => {
                    if let Ok(uscc) = convert::uscc("f", &text) {
                        assert_eq!(convert::uscc("f", &uscc.to_string()).ok(), Some(uscc));
                    }
                }
                1 => {
                    if let Ok(money) = convert::money("f", &text) {
                        assert_eq!(convert::money("f", &money.to_string()).ok(), Some(money));
                    }
                }
                2 => {
                    let _ = convert::positive_money("f", &text);
                }
                3 => {
                    if let Ok(date) = convert::date("f", &text) {
                        assert_eq!(convert::date("f", &date.to_string()).ok(), Some(date));
                    }
                }
                4 => {
                    let _ = convert::year("f", number as u32);
                }
                5 => {
                    if let Ok(id) = convert::voucher_id("f", &text) {
                        assert_eq!(convert::voucher_id("f", &id.to_string()).ok(), Some(id));
                    }
                }
                6 => {
                    let _ = convert::reason("f", &text);
                }
                7 => {
                    let _ = convert::legal_name("f", &text);
                }
                8 => {
                    if let Ok(contract) = convert::contract_number("f", &text) {
                        assert_eq!(
                            convert::contract_number("f", &contract.to_string()).ok(),
                            Some(contract)
                        );
                    }
                }
                9 => {
                    if let Ok(invoice) = convert::invoice_number("f", &text) {
                        assert_eq!(
                            convert::invoice_number("f", &invoice.to_string()).ok(),
                            Some(invoice)
                        );
                    }
                }
                10 => {
                    let _ = convert::bank_reference("f", &text);
                }
                11 => {
                    let _ = convert::run_id("f", &text);
                }
                12 => {
                    let _ = convert::statement_id("f", number);
                    let _ = convert::statement_state("f", number as i32);
                }
                13 => {
                    let _ = convert::tier("f", number as i32);
                    let _ = convert::listing_basis("f", number as i32);
                    let _ = convert::center_status("f", number as i32);
                }
                14 | 15 => {
                    let pieces: Vec<&str> = text.split('|').collect();
                    let piece = |index: usize| pieces.get(index).copied().unwrap_or("").to_string();
                    let _ = convert::invoice(&proto::Invoice {
                        center: piece(0),
                        voucher_id: piece(1),
                        invoice_number: piece(2),
                        amount: piece(3),
                        issue_date: piece(4),
                        delivery_proof: piece(5),
                        invoice_code: piece(6),
                        payment_proof: String::new(),
                    });
                }
                16 | 17 => {
                    let pieces: Vec<&str> = text.split('|').collect();
                    let piece = |index: usize| pieces.get(index).copied().unwrap_or("").to_string();
                    let policy = proto::Policy {
                        year: 2020 + (number % 16) as u32,
                        annual_pool: piece(0),
                        default_enterprise_cap: piece(1),
                        contract_fee_ceiling: piece(2),
                        rate_domestic: piece(3),
                        rate_maas_multimodal: piece(4),
                        rate_other: piece(5),
                        redemption_grace_days: (number % 3 == 0).then_some((number % 400) as u32),
                        ..Default::default()
                    };
                    if let Ok(policy) = convert::policy_from_proto(&policy) {
                        let again = convert::policy_from_proto(&convert::policy_to_proto(&policy));
                        assert_eq!(again.ok(), Some(policy));
                    }
                }
                _ => {
                    let _ = ProgrammePolicy::from_toml(&text);
                }
            }
        },
    );
    eprintln!("convert: {ran} inputs");
}

#[test]
fn backup_manifests_never_panic_on_damaged_text() {
    let directory = tempfile::tempdir().expect("tempdir");
    let manifest = format!(
        "voucher-ledger backup v1\nsequence 12\nchain_head {}\ncreated_at_ms 1\nmethod logical-copy\n",
        "ab".repeat(32)
    );
    let path = directory
        .path()
        .join(voucher_ledger::storage::backup::MANIFEST_FILE);
    let ran = run(
        "manifest",
        |random| mutate(random, manifest.as_bytes()),
        |input| {
            std::fs::write(&path, input).expect("write");
            let _ = voucher_ledger::storage::backup::read_manifest(directory.path());
        },
    );
    eprintln!("manifest: {ran} inputs");
}
