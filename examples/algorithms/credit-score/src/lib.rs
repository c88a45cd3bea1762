//! `credit-score`: an example sealed algorithm — a credit-risk scorecard a vendor
//! could sell as a black box.
//!
//! Export `score` (ABI v1, see `sealbox-guest`): a JSON applicant in, a JSON
//! assessment out:
//!
//! ```text
//! {"income":48000,"debt":21000,"age":34,"late_payments":1,"credit_history_months":40}
//! → {"score":592,"band":"D","reasons":["short_credit_history","high_debt_to_income","late_payments"]}
//! ```
//!
//! Input that cannot be scored gets `{"error":"malformed_json"|"invalid_input","message":…}`
//! instead, never a trap. The model is integer-only, so every host computes the
//! same score; the formula is in this crate's README.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod input;
pub mod json;
pub mod model;

use alloc::vec::Vec;

use input::{Applicant, InputError};
use model::Assessment;

sealbox_guest::entry!(
    /// ABI v1 entry: scores the applicant JSON at `ptr..ptr + len`.
    score => crate::score_json
);

/// Scores an applicant given as JSON and returns the assessment, or the error
/// object, as JSON bytes.
pub fn score_json(input: &[u8]) -> Vec<u8> {
    match Applicant::from_json(input) {
        Ok(applicant) => assessment_json(&model::assess(&applicant)),
        Err(InputError::Malformed(m)) => {
            let mut buf = [0; 20];
            let at = json::decimal(m.at as u64, &mut buf);
            let message = ["malformed JSON at byte ", at, ": ", m.problem].concat();
            error_json("malformed_json", &message)
        }
        Err(InputError::Invalid(message)) => error_json("invalid_input", &message),
    }
}

/// `{"score":…,"band":"…","reasons":[…]}`
fn assessment_json(a: &Assessment) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"score\":");
    json::write_u64(&mut out, u64::from(a.score));
    out.extend_from_slice(b",\"band\":");
    json::write_str(&mut out, a.band.letter());
    out.extend_from_slice(b",\"reasons\":[");
    for (i, reason) in a.reasons.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_str(&mut out, reason.code());
    }
    out.extend_from_slice(b"]}");
    out
}

/// `{"error":"<code>","message":"<message>"}`
fn error_json(code: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"error\":");
    json::write_str(&mut out, code);
    out.extend_from_slice(b",\"message\":");
    json::write_str(&mut out, message);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> String {
        String::from_utf8(score_json(input.as_bytes())).unwrap()
    }

    #[test]
    fn sample_applicant_end_to_end() {
        // The numbers are derived in model::tests::sample_applicant_by_hand.
        assert_eq!(
            run(include_str!("../../../inputs/applicant.json")),
            r#"{"score":592,"band":"D","reasons":["short_credit_history","high_debt_to_income","late_payments"]}"#
        );
    }

    #[test]
    fn no_reasons_is_an_empty_list() {
        assert_eq!(
            run(
                r#"{"income":120000,"debt":10000,"age":50,"late_payments":0,"credit_history_months":240}"#
            ),
            r#"{"score":752,"band":"A","reasons":[]}"#
        );
    }

    #[test]
    fn malformed_json_gets_an_error_object() {
        assert_eq!(
            run(r#"{"income":48000,"debt":}"#),
            r#"{"error":"malformed_json","message":"malformed JSON at byte 23: expected a JSON value"}"#
        );
        assert_eq!(
            run(""),
            r#"{"error":"malformed_json","message":"malformed JSON at byte 0: expected a JSON value"}"#
        );
    }

    #[test]
    fn invalid_input_gets_an_error_object_with_the_message_escaped() {
        assert_eq!(
            run(r#"{"a\"b":1}"#),
            r#"{"error":"invalid_input","message":"unknown field `a\"b` (expected income, debt, age, late_payments, credit_history_months)"}"#
        );
    }
}
