//! `text-redact`: an example sealed algorithm — a PII redaction transform a
//! vendor could sell as a black box.
//!
//! Export `redact` (ABI v1, see `sealbox-guest`): UTF-8 text in, the same text
//! out with e-mail addresses, phone numbers and card/IBAN-like numbers replaced
//! by `[EMAIL]`, `[PHONE]` and `[NUMBER]`. Export `version() -> i32` returns the
//! rule-set version (1), a plain numeric export for `runtime run --invoke`.
//!
//! Matching is on ASCII bytes only, so any other byte — and therefore every
//! multi-byte UTF-8 sequence — is copied unchanged: valid UTF-8 in gives valid
//! UTF-8 out, and no input makes the transform fail. The rules are in this
//! crate's README.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod email;
pub mod iban;
pub mod number;

use alloc::vec::Vec;

use number::Kind;

/// Version of the redaction rules; bumped whenever they change.
pub const RULES_VERSION: i32 = 1;

sealbox_guest::entry!(
    /// ABI v1 entry: redacts the text at `ptr..ptr + len`.
    redact => crate::redact
);

/// Numeric export: the rule-set version.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn version() -> i32 {
    RULES_VERSION
}

/// Whether a match may start at `i`: the text start, or after a byte that is
/// not an ASCII letter or digit.
fn word_start(text: &[u8], i: usize) -> bool {
    i == 0 || !text[i - 1].is_ascii_alphanumeric()
}

/// `text` with e-mail addresses, IBANs, phone numbers and long digit runs
/// replaced by their placeholders. E-mail addresses are found first; an IBAN
/// is tried before a phone or digit run at the same place.
pub fn redact(text: &[u8]) -> Vec<u8> {
    let emails = email::find_all(text);
    let mut emails = emails.iter().peekable();
    // Placeholders are at most 8 bytes and replace at least 5, except "[EMAIL]"
    // (7) for the shortest address "a@b.cd" (6): this rarely reallocates.
    let mut out = Vec::with_capacity(text.len() + text.len() / 8 + 8);
    let mut i = 0;
    while i < text.len() {
        let limit = match emails.peek() {
            Some(e) if e.start == i => {
                out.extend_from_slice(b"[EMAIL]");
                i = e.end;
                emails.next();
                continue;
            }
            Some(e) => e.start,
            None => text.len(),
        };
        if word_start(text, i) {
            if let Some(end) = iban::match_at(text, i, limit) {
                out.extend_from_slice(b"[NUMBER]");
                i = end;
                continue;
            }
            if let Some(c) = number::scan(text, i, limit) {
                match c.kind() {
                    Some(Kind::Phone) => out.extend_from_slice(b"[PHONE]"),
                    Some(Kind::Number) => out.extend_from_slice(b"[NUMBER]"),
                    // Any candidate starting inside this one ends at the same
                    // place, with fewer digits and no '+', so none of them
                    // matches either: copy it whole (keeps the scan linear).
                    None => out.extend_from_slice(&text[i..c.end]),
                }
                i = c.end;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> String {
        String::from_utf8(redact(text.as_bytes())).unwrap()
    }

    #[test]
    fn sample_letter_end_to_end() {
        // letter.expected.txt was written by hand from the rules in the README.
        assert_eq!(
            run(include_str!("../../../inputs/letter.txt")),
            include_str!("../../../inputs/letter.expected.txt")
        );
    }

    #[test]
    fn each_kind_in_a_sentence() {
        assert_eq!(
            run("Mail jane@example.com, call +44 20 7946 0958."),
            "Mail [EMAIL], call [PHONE]."
        );
        assert_eq!(
            run("Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00."),
            "Card [NUMBER], IBAN [NUMBER]."
        );
    }

    #[test]
    fn dates_amounts_and_short_numbers_stay() {
        let text = "On 2026-11-29 10:30 we paid EUR 1,250.00 for order 5521 (room 12).";
        assert_eq!(run(text), text);
    }

    #[test]
    fn matches_start_and_end_at_word_boundaries() {
        // Inside a word nothing starts; a digit run followed by a letter stays.
        assert_eq!(
            run("ref4111111111111111 4111111111111111x"),
            "ref4111111111111111 4111111111111111x"
        );
        assert_eq!(run("id:4111111111111111!"), "id:[NUMBER]!");
    }

    #[test]
    fn digits_in_an_address_are_part_of_the_address() {
        assert_eq!(run("4111111111111111@cards.example"), "[EMAIL]");
    }

    #[test]
    fn non_ascii_text_passes_through() {
        assert_eq!(
            run("Grüße an zoe@example.de — Tel. +49 30 1234567 ✓"),
            "Grüße an [EMAIL] — Tel. [PHONE] ✓"
        );
        // Documented limit: a non-ASCII local part is not recognised.
        assert_eq!(run("zoë@example.de"), "zoë@example.de");
        // Invalid UTF-8 is copied byte for byte.
        assert_eq!(
            redact(b"\xff\xfe 4111111111111111 \xc3"),
            b"\xff\xfe [NUMBER] \xc3"
        );
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert_eq!(redact(b""), b"");
    }

    #[test]
    fn a_run_that_never_matches_is_copied_in_linear_time() {
        // "1 1 1 … 1x": every group start would rescan the rest without the
        // whole-candidate skip. 200 000 groups finish instantly with it.
        let text = ["1 ".repeat(200_000), "1x".into()].concat();
        assert_eq!(run(&text), text);
    }
}
