//! The API's proto → domain converters on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voucher_ledger::api::{convert, proto};

fuzz_target!(|input: &[u8]| {
    let Some((&which, rest)) = input.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let pieces: Vec<&str> = text.split('|').collect();
    let piece = |index: usize| pieces.get(index).copied().unwrap_or("").to_string();
    match which % 8 {
        0 => {
            if let Ok(money) = convert::money("f", &text) {
                assert_eq!(convert::money("f", &money.to_string()).ok(), Some(money));
            }
        }
        1 => {
            if let Ok(date) = convert::date("f", &text) {
                assert_eq!(convert::date("f", &date.to_string()).ok(), Some(date));
            }
        }
        2 => {
            let _ = convert::uscc("f", &text);
            let _ = convert::voucher_id("f", &text);
            let _ = convert::run_id("f", &text);
        }
        3 => {
            let _ = convert::invoice_number("f", &text);
            let _ = convert::contract_number("f", &text);
            let _ = convert::bank_reference("f", &text);
        }
        4 => {
            let _ = convert::reason("f", &text);
            let _ = convert::legal_name("f", &text);
        }
        5 => {
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
        6 => {
            let _ = convert::policy_from_proto(&proto::Policy {
                year: 2026,
                annual_pool: piece(0),
                default_enterprise_cap: piece(1),
                contract_fee_ceiling: piece(2),
                rate_domestic: piece(3),
                rate_maas_multimodal: piece(4),
                rate_other: piece(5),
                redemption_grace_days: None,
            });
        }
        _ => {
            let _ = voucher_ledger::domain::ProgrammePolicy::from_toml(&text);
        }
    }
});
