//! {{name}}: a Sealbox algorithm, JSON in and JSON out, without `std`.
//!
//! `sealbox_guest::entry!` exports [`run`] on the Sealbox invocation ABI v1
//! (bytes in, bytes out). On wasm32 the crate is `no_std`: `alloc` only, with
//! the allocator and panic handler of `sealbox-guest`'s `no-std` feature. On
//! the host it links `std`, so `cargo test` works as usual.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::ToString;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// What a caller sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The numbers to summarise.
    pub values: Vec<f64>,
}

/// What the algorithm answers.
#[derive(Debug, PartialEq, Serialize)]
pub struct Response {
    /// How many values there were.
    pub count: usize,
    /// Their mean (`null` for none).
    pub mean: Option<f64>,
    /// The smallest (`null` for none).
    pub min: Option<f64>,
    /// The largest (`null` for none).
    pub max: Option<f64>,
}

/// The algorithm: replace it with yours.
pub fn summarise(request: &Request) -> Response {
    let values = &request.values;
    let count = values.len();
    let (mean, min, max) = if count == 0 {
        (None, None, None)
    } else {
        let sum: f64 = values.iter().sum();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (Some(sum / count as f64), Some(min), Some(max))
    };
    Response {
        count,
        mean,
        min,
        max,
    }
}

/// Bytes in, bytes out: parses the request, runs the algorithm, answers JSON.
/// Bad input gets `{"error": …}` rather than a panic, which would trap the call.
pub fn run(input: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Request>(input) {
        Ok(request) => serde_json::json!(summarise(&request)),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    }
    .to_string()
    .into_bytes()
}

sealbox_guest::entry!(
    /// The module's entry point: [`run`] on the Sealbox ABI v1.
    run => crate::run
);

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(input: &str) -> serde_json::Value {
        serde_json::from_slice(&run(input.as_bytes())).expect("the answer is JSON")
    }

    #[test]
    fn summarises_the_values() {
        assert_eq!(
            answer(r#"{"values":[1,2,6]}"#),
            serde_json::json!({"count": 3, "mean": 3.0, "min": 1.0, "max": 6.0})
        );
    }

    #[test]
    fn no_values_have_no_mean() {
        assert_eq!(
            answer(r#"{"values":[]}"#),
            serde_json::json!({"count": 0, "mean": null, "min": null, "max": null})
        );
    }

    #[test]
    fn bad_input_gets_an_error_object() {
        let out = answer(r#"{"values":"three"}"#);
        assert!(
            out["error"]
                .as_str()
                .is_some_and(|e| e.contains("invalid type"))
        );
    }
}
