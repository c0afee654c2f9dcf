//! SM3 (GB/T 32905-2016) for the log's hash chain, many records at a time.
//!
//! A record's chain hash in record format 3 is SM3(record ‖ previous chain hash)
//! (`record.rs`). Every 64-byte block of a record's own bytes before its last, partial
//! block is independent of the chain, so those blocks of eight records are compressed
//! together, one record per 32-bit lane of an AVX2 register; only the record's tail (its
//! last bytes, the previous hash and SM3's padding: one block, or two when the tail is
//! over 23 bytes) waits for the record before it. Before format 3 the previous hash came
//! first, so every block of every record waited for the one before (issue 12: SM3 was
//! ~15% of the server's CPU on the redemption path, and the encoder's long pole).
//!
//! Why a compression function of our own and not only the `sm3` crate: the crate hashes
//! one message at a time and cannot resume from a state computed elsewhere, which is
//! what the lanes produce. The crate stays the reference: `verify` and audit packages
//! check chains with it (`record::chain_hash_of`; `log::ChainCheck::Reference`), and
//! this file's tests compare both compression functions with it on random records. The
//! log's other readers (replay, the invoice index's catch-up, reads) check with the
//! lanes, as the writer hashes. Without AVX2 (or off x86-64) the same blocks go
//! through the scalar function, with the same result.

use super::record::{ChainHash, CHAIN_HASH_LENGTH};

/// SM3's block: 64 bytes.
const BLOCK_BYTES: usize = 64;

/// Records hashed together in the lanes of one AVX2 register.
pub(super) const LANES: usize = 8;

/// SM3's initial value.
const INITIAL_STATE: [u32; 8] = [
    0x7380_166f,
    0x4914_b2b9,
    0x1724_42d7,
    0xda8a_0600,
    0xa96f_30bc,
    0x1631_38aa,
    0xe38d_ee4d,
    0xb0fb_0e4e,
];

/// Round j's constant T_j, rotated left by j mod 32 as the round uses it.
const ROUND_CONSTANTS: [u32; 64] = rotated_round_constants();

const fn rotated_round_constants() -> [u32; 64] {
    let mut table = [0u32; 64];
    let mut round = 0;
    while round < 64 {
        let constant: u32 = if round < 16 { 0x79cc_4519 } else { 0x7a87_9d8a };
        table[round] = constant.rotate_left((round % 32) as u32);
        round += 1;
    }
    table
}

/// Where one record lies in a buffer: its bytes are `start..body_end`, and its chain
/// hash goes right after them, at `body_end..body_end + 32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RecordSpan {
    pub start: usize,
    pub body_end: usize,
}

/// A record's state after the blocks the lanes compressed: the state, and how many of
/// the record's full blocks it has taken in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Midstate {
    state: [u32; 8],
    blocks_done: usize,
}

/// Computes the format-3 chain hash of every record in `spans` (in order, the first
/// following `previous`), writes each into `buffer` after its record, and returns the
/// last. `midstates` is scratch, reused across calls so that nothing is allocated once
/// it has grown.
///
/// Precondition: the spans lie in `buffer`, each with 32 bytes after it for its hash,
/// and do not overlap.
pub(super) fn fill_chain_hashes(
    buffer: &mut [u8],
    spans: &[RecordSpan],
    previous: ChainHash,
    midstates: &mut Vec<Midstate>,
) -> ChainHash {
    midstates_of(
        spans.len(),
        |index| &buffer[spans[index].start..spans[index].body_end],
        midstates,
    );
    let mut head = previous;
    for (span, midstate) in spans.iter().zip(midstates.iter()) {
        head = finish_chain_hash(&buffer[span.start..span.body_end], *midstate, &head);
        buffer[span.body_end..span.body_end + CHAIN_HASH_LENGTH].copy_from_slice(&head.0);
    }
    head
}

/// Fills `midstates` with one state per record of `count` (record `index`'s bytes,
/// before its chain hash, are `record(index)`): each group of eight records has its
/// blocks that all eight have in full compressed together in the lanes; the rest of a
/// record, and every record of a shorter last group, is left to
/// [`finish_chain_hash`]. The writer's chain hashes and the log's readers' checks of
/// them both start here (readers: `log.rs`; before the thirtieth round of issue 12 they
/// hashed one record at a time, SM3 ~30% of deriving the invoice index after a crash).
pub(super) fn midstates_of<'a>(
    count: usize,
    record: impl Fn(usize) -> &'a [u8],
    midstates: &mut Vec<Midstate>,
) {
    midstates.clear();
    midstates.reserve(count);
    let lanes_available = lanes_available();
    let mut first = 0;
    while first < count {
        let group = (count - first).min(LANES);
        let records: Option<[&[u8]; LANES]> = (group == LANES && lanes_available)
            .then(|| std::array::from_fn(|lane| record(first + lane)));
        let shared_blocks = records.map_or(0, |records| {
            records
                .iter()
                .map(|record| record.len() / BLOCK_BYTES)
                .min()
                .unwrap_or(0)
        });
        match records {
            Some(records) if shared_blocks > 0 => {
                let states = compress_in_lanes(records, shared_blocks);
                midstates.extend(states.map(|state| Midstate {
                    state,
                    blocks_done: shared_blocks,
                }));
            }
            _ => midstates.extend((0..group).map(|_| Midstate::INITIAL)),
        }
        first += group;
    }
    debug_assert_eq!(midstates.len(), count);
}

impl Midstate {
    /// No block taken in yet.
    const INITIAL: Midstate = Midstate {
        state: INITIAL_STATE,
        blocks_done: 0,
    };
}

/// SM3(record ‖ previous) of a record whose first `midstate.blocks_done` blocks are
/// already in `midstate` (from [`midstates_of`]).
pub(super) fn finish_chain_hash(
    record: &[u8],
    midstate: Midstate,
    previous: &ChainHash,
) -> ChainHash {
    let Midstate {
        mut state,
        blocks_done,
    } = midstate;
    let (blocks, rest) = record.as_chunks::<BLOCK_BYTES>();
    for block in &blocks[blocks_done..] {
        compress(&mut state, block);
    }
    // The tail: the record's last bytes, the previous hash, 0x80, zeros, and the
    // message's length in bits (big-endian) at the end of the last block.
    let mut tail = [[0u8; BLOCK_BYTES]; 2];
    let tail_bytes = tail.as_flattened_mut();
    tail_bytes[..rest.len()].copy_from_slice(rest);
    let used = rest.len() + CHAIN_HASH_LENGTH;
    tail_bytes[rest.len()..used].copy_from_slice(&previous.0);
    tail_bytes[used] = 0x80;
    let tail_blocks = if used + 9 <= BLOCK_BYTES { 1 } else { 2 };
    let length_in_bits = ((record.len() + CHAIN_HASH_LENGTH) as u64) * 8;
    let end = tail_blocks * BLOCK_BYTES;
    tail_bytes[end - 8..end].copy_from_slice(&length_in_bits.to_be_bytes());
    for block in &tail[..tail_blocks] {
        compress(&mut state, block);
    }
    let mut hash = [0u8; CHAIN_HASH_LENGTH];
    for (bytes, word) in hash.as_chunks_mut::<4>().0.iter_mut().zip(state) {
        *bytes = word.to_be_bytes();
    }
    ChainHash(hash)
}

// The short names below (p0, p1, a..h, ss1, ss2, tt1, tt2, words for W) are the
// standard's, GB/T 32905-2016 section 5, so the code reads against it line by line.

fn p0(x: u32) -> u32 {
    x ^ x.rotate_left(9) ^ x.rotate_left(17)
}

fn p1(x: u32) -> u32 {
    x ^ x.rotate_left(15) ^ x.rotate_left(23)
}

/// SM3's compression function: takes `block` into `state`.
fn compress(state: &mut [u32; 8], block: &[u8; BLOCK_BYTES]) {
    let mut words = [0u32; 68];
    for (word, bytes) in words.iter_mut().zip(block.as_chunks::<4>().0) {
        *word = u32::from_be_bytes(*bytes);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    // The message expansion runs four words ahead of the rounds, inside each round, so
    // the two overlap (expanding all 68 words first was ~25% slower here). Rounds 0..16
    // mix with XOR, 16..64 with majority and choice: two lists, not a branch per round.
    macro_rules! round {
        ($j:expr, $mix_a:expr, $mix_e:expr) => {{
            let j = $j;
            if j >= 12 {
                let next = j + 4;
                words[next] =
                    p1(words[next - 16] ^ words[next - 9] ^ words[next - 3].rotate_left(15))
                        ^ words[next - 13].rotate_left(7)
                        ^ words[next - 6];
            }
            let a12 = a.rotate_left(12);
            let ss1 = a12
                .wrapping_add(e)
                .wrapping_add(ROUND_CONSTANTS[j])
                .rotate_left(7);
            let ss2 = ss1 ^ a12;
            let tt1 = $mix_a
                .wrapping_add(d)
                .wrapping_add(ss2)
                .wrapping_add(words[j] ^ words[j + 4]);
            let tt2 = $mix_e
                .wrapping_add(h)
                .wrapping_add(ss1)
                .wrapping_add(words[j]);
            d = c;
            c = b.rotate_left(9);
            b = a;
            a = tt1;
            h = g;
            g = f.rotate_left(19);
            f = e;
            e = p0(tt2);
        }};
    }
    // Written out round by round rather than as two loops: each round's index is then a
    // constant, so the expansion's `if` and the slices' bounds checks fold away and the
    // eight state words are renamed rather than moved from round to round. Each record's
    // chain tail goes through here on the encoder's thread, the part of its work that
    // cannot wait for the AVX2 lanes (issue 12, thirty-ninth round: 200-205 -> 168-185 ns a
    // block alone; the encoder's CPU per invoice 0.92x and 0.955x in `benches/ab.sh`).
    macro_rules! xor_rounds {
        ($($j:literal)*) => { $( round!($j, (a ^ b ^ c), (e ^ f ^ g)); )* };
    }
    macro_rules! majority_rounds {
        ($($j:literal)*) => { $( round!($j, ((a & b) | ((a | b) & c)), (((f ^ g) & e) ^ g)); )* };
    }
    xor_rounds!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    majority_rounds!(
        16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47
        48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
    );
    for (word, mixed) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *word ^= mixed;
    }
}

/// Whether [`compress_in_lanes`] has AVX2 to run on (else it would only be the scalar
/// function eight times, and the caller leaves the blocks to the record's own pass).
fn lanes_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The states of eight records after their first `blocks` blocks, compressed together.
/// Precondition: [`lanes_available`], and every record has at least `blocks` full blocks.
fn compress_in_lanes(records: [&[u8]; LANES], blocks: usize) -> [[u32; 8]; LANES] {
    debug_assert!(records
        .iter()
        .all(|record| record.len() >= blocks * BLOCK_BYTES));
    #[cfg(target_arch = "x86_64")]
    if lanes_available() {
        // SAFETY: the CPU has AVX2 (checked just above), the one requirement of
        // `compress_in_avx2_lanes` beyond its safe signature.
        return unsafe { avx2::compress_in_avx2_lanes(records, blocks) };
    }
    records.map(|record| {
        let mut state = INITIAL_STATE;
        for block in &record.as_chunks::<BLOCK_BYTES>().0[..blocks] {
            compress(&mut state, block);
        }
        state
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The compression function of [`super::compress`], eight records at once: lane l
    //! of every register holds record l's word.

    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_and_si256, _mm256_extract_epi32, _mm256_or_si256,
        _mm256_set1_epi32, _mm256_setr_epi32, _mm256_slli_epi32, _mm256_srli_epi32,
        _mm256_xor_si256,
    };

    use super::{BLOCK_BYTES, INITIAL_STATE, LANES, ROUND_CONSTANTS};

    #[target_feature(enable = "avx2")]
    fn rotate<const LEFT: i32, const RIGHT: i32>(x: __m256i) -> __m256i {
        debug_assert_eq!(LEFT + RIGHT, 32);
        _mm256_or_si256(_mm256_slli_epi32::<LEFT>(x), _mm256_srli_epi32::<RIGHT>(x))
    }

    #[target_feature(enable = "avx2")]
    fn xor3(x: __m256i, y: __m256i, z: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_xor_si256(x, y), z)
    }

    #[target_feature(enable = "avx2")]
    fn add4(w: __m256i, x: __m256i, y: __m256i, z: __m256i) -> __m256i {
        _mm256_add_epi32(_mm256_add_epi32(w, x), _mm256_add_epi32(y, z))
    }

    #[target_feature(enable = "avx2")]
    fn p0(x: __m256i) -> __m256i {
        xor3(x, rotate::<9, 23>(x), rotate::<17, 15>(x))
    }

    #[target_feature(enable = "avx2")]
    fn p1(x: __m256i) -> __m256i {
        xor3(x, rotate::<15, 17>(x), rotate::<23, 9>(x))
    }

    /// Word `index` (big-endian) of each lane's block, one per lane.
    #[target_feature(enable = "avx2")]
    fn gather_word(blocks: &[&[u8; BLOCK_BYTES]; LANES], index: usize) -> __m256i {
        let word = |lane: usize| i32::from_be_bytes(blocks[lane].as_chunks::<4>().0[index]);
        _mm256_setr_epi32(
            word(0),
            word(1),
            word(2),
            word(3),
            word(4),
            word(5),
            word(6),
            word(7),
        )
    }

    /// One round of SM3 on eight lanes; `MAJORITY` for rounds 16..64.
    #[target_feature(enable = "avx2")]
    fn round<const MAJORITY: bool>(
        state: &mut [__m256i; 8],
        constant: u32,
        word: __m256i,
        word_four_on: __m256i,
    ) {
        let [a, b, c, d, e, f, g, h] = *state;
        let a12 = rotate::<12, 20>(a);
        let ss1 = rotate::<7, 25>(_mm256_add_epi32(
            _mm256_add_epi32(a12, e),
            _mm256_set1_epi32(constant as i32),
        ));
        let ss2 = _mm256_xor_si256(ss1, a12);
        let (mixed_a, mixed_e) = if MAJORITY {
            (
                _mm256_or_si256(
                    _mm256_and_si256(a, b),
                    _mm256_and_si256(_mm256_or_si256(a, b), c),
                ),
                _mm256_xor_si256(_mm256_and_si256(_mm256_xor_si256(f, g), e), g),
            )
        } else {
            (xor3(a, b, c), xor3(e, f, g))
        };
        let tt1 = add4(mixed_a, d, ss2, _mm256_xor_si256(word, word_four_on));
        let tt2 = add4(mixed_e, h, ss1, word);
        *state = [
            tt1,
            a,
            rotate::<9, 23>(b),
            c,
            p0(tt2),
            e,
            rotate::<19, 13>(f),
            g,
        ];
    }

    /// The states of eight records after their first `blocks` blocks.
    ///
    /// Safety: only for a CPU with AVX2. Every record has at least `blocks` full blocks
    /// (else this panics on a slice index, it reads nothing out of bounds).
    #[target_feature(enable = "avx2")]
    pub(super) fn compress_in_avx2_lanes(
        records: [&[u8]; LANES],
        blocks: usize,
    ) -> [[u32; 8]; LANES] {
        let mut state: [__m256i; 8] = INITIAL_STATE.map(|word| _mm256_set1_epi32(word as i32));
        for block in 0..blocks {
            let lane_blocks = records.map(|record| &record.as_chunks::<BLOCK_BYTES>().0[block]);
            let mut words = [_mm256_set1_epi32(0); 68];
            for (index, word) in words.iter_mut().enumerate().take(16) {
                *word = gather_word(&lane_blocks, index);
            }
            for j in 16..68 {
                words[j] = _mm256_xor_si256(
                    _mm256_xor_si256(
                        p1(xor3(
                            words[j - 16],
                            words[j - 9],
                            rotate::<15, 17>(words[j - 3]),
                        )),
                        rotate::<7, 25>(words[j - 13]),
                    ),
                    words[j - 6],
                );
            }
            let before = state;
            for j in 0..16 {
                round::<false>(&mut state, ROUND_CONSTANTS[j], words[j], words[j + 4]);
            }
            for j in 16..64 {
                round::<true>(&mut state, ROUND_CONSTANTS[j], words[j], words[j + 4]);
            }
            for (word, earlier) in state.iter_mut().zip(before) {
                *word = _mm256_xor_si256(*word, earlier);
            }
        }
        let lane_words = |word: __m256i| -> [u32; LANES] {
            [
                _mm256_extract_epi32::<0>(word) as u32,
                _mm256_extract_epi32::<1>(word) as u32,
                _mm256_extract_epi32::<2>(word) as u32,
                _mm256_extract_epi32::<3>(word) as u32,
                _mm256_extract_epi32::<4>(word) as u32,
                _mm256_extract_epi32::<5>(word) as u32,
                _mm256_extract_epi32::<6>(word) as u32,
                _mm256_extract_epi32::<7>(word) as u32,
            ]
        };
        let by_word = state.map(lane_words);
        std::array::from_fn(|lane| std::array::from_fn(|word| by_word[word][lane]))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sm3::{Digest, Sm3};

    use super::*;

    /// The chain hash of each record as the `sm3` crate computes it.
    fn chain_by_the_crate(records: &[Vec<u8>], previous: ChainHash) -> Vec<ChainHash> {
        let mut head = previous;
        records
            .iter()
            .map(|record| {
                let mut hasher = Sm3::new();
                hasher.update(record);
                hasher.update(head.0);
                head = ChainHash(hasher.finalize().into());
                head
            })
            .collect()
    }

    /// Lays `records` out as a log block would (each followed by room for its hash,
    /// after a few bytes of header) and fills in the hashes.
    fn chain_by_this_file(records: &[Vec<u8>], previous: ChainHash) -> Vec<ChainHash> {
        let mut buffer = vec![0xAA; 20];
        let mut spans = Vec::new();
        for record in records {
            let start = buffer.len();
            buffer.extend_from_slice(record);
            spans.push(RecordSpan {
                start,
                body_end: buffer.len(),
            });
            buffer.extend_from_slice(&[0u8; CHAIN_HASH_LENGTH]);
        }
        let mut midstates = Vec::new();
        let head = fill_chain_hashes(&mut buffer, &spans, previous, &mut midstates);
        let hashes: Vec<ChainHash> = spans
            .iter()
            .map(|span| {
                let mut hash = [0u8; CHAIN_HASH_LENGTH];
                hash.copy_from_slice(&buffer[span.body_end..span.body_end + CHAIN_HASH_LENGTH]);
                ChainHash(hash)
            })
            .collect();
        assert_eq!(hashes.last().copied().unwrap_or(previous), head);
        hashes
    }

    #[test]
    fn the_compression_function_gives_the_standards_example_digest() {
        // GB/T 32905-2016, example 1: SM3("abc").
        let mut block = [0u8; BLOCK_BYTES];
        block[..3].copy_from_slice(b"abc");
        block[3] = 0x80;
        block[63] = 24;
        let mut state = INITIAL_STATE;
        compress(&mut state, &block);
        let digest: Vec<u8> = state.iter().flat_map(|word| word.to_be_bytes()).collect();
        assert_eq!(
            hex::encode(digest),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }

    /// The AVX2 function itself, not through the dispatch (which would fall back to the
    /// scalar function on a CPU without AVX2 and pass without testing it).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_lanes_give_the_states_of_eight_scalar_runs() {
        if !std::is_x86_feature_detected!("avx2") {
            eprintln!("SKIPPED: this CPU has no AVX2, the lanes are not used here");
            return;
        }
        let records: Vec<Vec<u8>> = (0..LANES)
            .map(|lane| {
                (0..2 * BLOCK_BYTES + lane)
                    .map(|i| (i * 13 + lane) as u8)
                    .collect()
            })
            .collect();
        let slices: [&[u8]; LANES] = std::array::from_fn(|lane| records[lane].as_slice());
        // SAFETY: the CPU has AVX2, checked above.
        let lanes = unsafe { avx2::compress_in_avx2_lanes(slices, 2) };
        for (lane, record) in records.iter().enumerate() {
            let mut state = INITIAL_STATE;
            for block in &record.as_chunks::<BLOCK_BYTES>().0[..2] {
                compress(&mut state, block);
            }
            assert_eq!(lanes[lane], state, "lane {lane}");
        }
    }

    #[test]
    fn eight_lanes_give_the_states_of_eight_scalar_runs() {
        let records: Vec<Vec<u8>> = (0..LANES)
            .map(|lane| {
                (0..3 * BLOCK_BYTES)
                    .map(|i| (i * 31 + lane * 7) as u8)
                    .collect()
            })
            .collect();
        let slices: [&[u8]; LANES] = std::array::from_fn(|lane| records[lane].as_slice());
        let lanes = compress_in_lanes(slices, 3);
        for (lane, record) in records.iter().enumerate() {
            let mut state = INITIAL_STATE;
            for block in record.as_chunks::<BLOCK_BYTES>().0 {
                compress(&mut state, block);
            }
            assert_eq!(lanes[lane], state, "lane {lane}");
        }
    }

    #[test]
    fn every_tail_length_chains_as_the_crate_does() {
        // Record lengths 3..260 cover tails of one block (up to 23 bytes after the last
        // full block) and of two, with and without blocks for the lanes; starting at 3,
        // some groups of eight mix records of one and two full blocks (the lanes take
        // the shared one, each record's own pass the rest).
        let records: Vec<Vec<u8>> = (3..260)
            .map(|length| (0..length).map(|i| (i ^ length) as u8).collect())
            .collect();
        let previous = ChainHash([7u8; CHAIN_HASH_LENGTH]);
        assert_eq!(
            chain_by_this_file(&records, previous),
            chain_by_the_crate(&records, previous)
        );
    }

    proptest! {
        #[test]
        fn any_records_chain_as_the_crate_does(
            records in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..400),
                0..40,
            ),
            previous in any::<[u8; CHAIN_HASH_LENGTH]>(),
        ) {
            let previous = ChainHash(previous);
            prop_assert_eq!(
                chain_by_this_file(&records, previous),
                chain_by_the_crate(&records, previous)
            );
        }

        #[test]
        fn records_of_one_length_chain_as_the_crate_does(
            length in 0usize..300,
            count in 1usize..30,
            seed in any::<u8>(),
        ) {
            // Equal lengths fill whole groups of eight, the lanes' usual case.
            let records: Vec<Vec<u8>> = (0..count)
                .map(|record| (0..length).map(|i| (i + record) as u8 ^ seed).collect())
                .collect();
            let previous = ChainHash([seed; CHAIN_HASH_LENGTH]);
            prop_assert_eq!(
                chain_by_this_file(&records, previous),
                chain_by_the_crate(&records, previous)
            );
        }
    }
}
