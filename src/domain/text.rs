//! The text rules every field of the ledger follows, and the one canonical form in which
//! contract and invoice numbers are compared.
//!
//! - **Refused everywhere**: control characters (Unicode category Cc), format characters
//!   (Cf: zero-width spaces and joiners, U+2060 word joiner, U+FEFF, the bidirectional
//!   embeddings, overrides and isolates U+202A–U+202E, U+2066–U+2069, …), line and
//!   paragraph separators, unassigned code points and private-use characters, and
//!   leading or trailing white space. They make two strings that look the same compare
//!   different (`INV-777` and `INV-777` + U+200B), or reorder what a reviewer sees
//!   (`Good` + U+202E + `Co`).
//! - **Canonical form** of identifiers (contract and invoice numbers): Unicode NFKC (so
//!   full-width `ＨＴ－００１` becomes `HT-001`), trimmed, ASCII letters upper-cased. Two
//!   numbers are the same number when their canonical forms are equal; the number as
//!   typed is kept for display.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Why a text was refused: a sentence naming the offending character and its position.
pub fn check_text(text: &str) -> Result<(), String> {
    if text.trim() != text {
        return Err("must not start or end with white space".into());
    }
    // Fast path (nearly every number and reference): printable ASCII has no control,
    // format or separator characters.
    if text.bytes().all(|byte| (b' '..=b'~').contains(&byte)) {
        return Ok(());
    }
    for (position, character) in text.chars().enumerate() {
        if let Some(kind) = forbidden_kind(character) {
            return Err(format!(
                "contains {kind} U+{:04X} at character {}",
                u32::from(character),
                position + 1
            ));
        }
    }
    Ok(())
}

/// The kind of character, if the ledger refuses it.
fn forbidden_kind(character: char) -> Option<&'static str> {
    match character.general_category() {
        GeneralCategory::Control => Some("the control character"),
        GeneralCategory::Format => Some("the invisible format character"),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
            Some("the line separator")
        }
        GeneralCategory::PrivateUse => Some("the private-use character"),
        GeneralCategory::Surrogate | GeneralCategory::Unassigned => {
            Some("the unassigned code point")
        }
        _ => None,
    }
}

/// True when `text` is its own canonical form (checked without allocating).
pub fn is_canonical_identifier(text: &str) -> bool {
    text.is_ascii() && !text.bytes().any(|byte| byte.is_ascii_lowercase()) && text.trim() == text
}

/// The canonical form of an identifier: NFKC, trimmed, ASCII letters upper-cased.
/// The caller has already refused forbidden characters with [`check_text`].
pub fn canonical_identifier(text: &str) -> String {
    // Fast path: ASCII is its own NFKC form.
    if text.is_ascii() {
        return text.trim().to_ascii_uppercase();
    }
    let normalized: String = text.nfkc().collect();
    normalized.trim().to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_number_share_a_canonical_form() {
        for spelling in ["HT-001", "ht-001", "ＨＴ－００１", "Ht-001"] {
            assert_eq!(canonical_identifier(spelling), "HT-001", "{spelling}");
        }
        assert_eq!(canonical_identifier("ｉｎｖ-７７７"), "INV-777");
    }

    #[test]
    fn invisible_and_bidirectional_characters_are_refused() {
        for (text, code) in [
            ("INV-777\u{200B}", "U+200B"),
            ("INV-\u{2060}777", "U+2060"),
            ("\u{FEFF}INV", "U+FEFF"),
            ("Good\u{202E}Co", "U+202E"),
            ("A\u{2066}B", "U+2066"),
            ("A\u{0007}B", "U+0007"),
            ("A\u{2028}B", "U+2028"),
        ] {
            let error = check_text(text).expect_err(text);
            assert!(error.contains(code), "{error}");
        }
        assert!(check_text(" INV").is_err());
        assert!(
            check_text("INV\u{3000}").is_err(),
            "ideographic space at the end"
        );
        assert!(check_text("杭州算力中心 A-1").is_ok());
    }
}
