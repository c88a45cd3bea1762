//! `name-match`: an example sealed algorithm written the ordinary way — `std`,
//! `serde_json` for the input and output, `strsim` from crates.io for the
//! string metric — to show that a vendor's existing Rust code seals as it is.
//!
//! Export `screen` (ABI v1, see `sealbox-guest`): a name and a list of
//! candidates (a watch list, a customer register) in, the candidates that
//! match at or above a threshold out, best first:
//!
//! ```text
//! {"name":"Jon Smyth","candidates":["John Smith","Jane Doe","J. Smith"],"threshold":0.8}
//! → {"matches":[{"candidate":"John Smith","index":0,"score":0.8883}, …],"screened":3}
//! ```
//!
//! Names are compared case- and accent-insensitively after folding runs of
//! whitespace and punctuation; the score is Jaro-Winkler similarity rounded
//! to 4 decimals. Input that cannot be screened gets `{"error":…}`, never a
//! trap.

use serde::{Deserialize, Serialize};

/// Default threshold when the request gives none.
pub const DEFAULT_THRESHOLD: f64 = 0.85;

/// At most this many candidates per request (bounds the work of one call).
pub const MAX_CANDIDATES: usize = 10_000;

/// A screening request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The name to screen.
    pub name: String,
    /// The names to screen it against.
    pub candidates: Vec<String>,
    /// Minimum similarity in 0..=1 for a candidate to be reported.
    #[serde(default)]
    pub threshold: Option<f64>,
}

/// One candidate at or above the threshold.
#[derive(Debug, Serialize, PartialEq)]
pub struct Match {
    /// The candidate as given.
    pub candidate: String,
    /// Its position in the request's list.
    pub index: usize,
    /// Jaro-Winkler similarity of the normalised names, rounded to 4 decimals.
    pub score: f64,
}

/// The answer to a request.
#[derive(Debug, Serialize, PartialEq)]
pub struct Response {
    /// Matches, best first (ties keep the request's order).
    pub matches: Vec<Match>,
    /// How many candidates were compared.
    pub screened: usize,
}

/// Why a request cannot be screened.
#[derive(Debug, PartialEq)]
pub enum ScreenError {
    /// The threshold is not a number in 0..=1.
    Threshold(f64),
    /// More than [`MAX_CANDIDATES`] candidates.
    TooManyCandidates(usize),
}

impl std::fmt::Display for ScreenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScreenError::Threshold(t) => write!(f, "threshold {t} is not between 0 and 1"),
            ScreenError::TooManyCandidates(n) => {
                write!(f, "{n} candidates, at most {MAX_CANDIDATES} per request")
            }
        }
    }
}

/// Lower-cases, drops accents of Latin letters and folds every run of
/// non-alphanumeric characters into one space.
pub fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        let c = fold_accent(c);
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out
}

/// The unaccented letter for the common Latin-1 accented lower-case letters.
fn fold_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        other => other,
    }
}

/// Screens `request.name` against its candidates.
pub fn screen(request: &Request) -> Result<Response, ScreenError> {
    let threshold = request.threshold.unwrap_or(DEFAULT_THRESHOLD);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ScreenError::Threshold(threshold));
    }
    if request.candidates.len() > MAX_CANDIDATES {
        return Err(ScreenError::TooManyCandidates(request.candidates.len()));
    }
    let name = normalise(&request.name);
    let mut matches: Vec<Match> = request
        .candidates
        .iter()
        .enumerate()
        .map(|(index, candidate)| {
            let score = strsim::jaro_winkler(&name, &normalise(candidate));
            Match {
                candidate: candidate.clone(),
                index,
                score: (score * 10_000.0).round() / 10_000.0,
            }
        })
        .filter(|m| m.score >= threshold)
        .collect();
    // Stable: equal scores keep the request's order.
    matches.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(Response {
        matches,
        screened: request.candidates.len(),
    })
}

/// The entry's logic: request JSON in, response (or `{"error":…}`) JSON out.
pub fn screen_json(input: &[u8]) -> Vec<u8> {
    let answer = match serde_json::from_slice::<Request>(input) {
        Err(e) => serde_json::json!({ "error": "malformed_request", "message": e.to_string() }),
        Ok(request) => match screen(&request) {
            Ok(response) => serde_json::json!(response),
            Err(e) => serde_json::json!({ "error": "invalid_request", "message": e.to_string() }),
        },
    };
    answer.to_string().into_bytes()
}

sealbox_guest::entry!(
    /// ABI v1 entry: screens the request JSON at `ptr..ptr + len`.
    screen => crate::screen_json
);

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, candidates: &[&str], threshold: Option<f64>) -> Request {
        Request {
            name: name.into(),
            candidates: candidates.iter().map(|c| c.to_string()).collect(),
            threshold,
        }
    }

    #[test]
    fn normalise_folds_case_accents_and_punctuation() {
        assert_eq!(normalise("  José  O'Brien-Núñez "), "jose o brien nunez");
        assert_eq!(normalise("SMITH, John"), "smith john");
        assert_eq!(normalise("--"), "");
    }

    #[test]
    fn an_identical_name_scores_one_and_comes_first() {
        let r = screen(&request(
            "John Smith",
            &["Jane Doe", "JOHN  smith"],
            Some(0.5),
        ))
        .unwrap();
        assert_eq!(r.screened, 2);
        assert_eq!(r.matches[0].index, 1);
        assert_eq!(r.matches[0].score, 1.0);
    }

    #[test]
    fn candidates_below_the_threshold_are_left_out() {
        let r = screen(&request(
            "John Smith",
            &["John Smyth", "Maria Garcia"],
            Some(0.9),
        ))
        .unwrap();
        let indices: Vec<usize> = r.matches.iter().map(|m| m.index).collect();
        assert_eq!(indices, [0]);
        assert!(r.matches[0].score < 1.0 && r.matches[0].score >= 0.9);
    }

    #[test]
    fn scores_are_the_jaro_winkler_similarity_rounded_to_four_decimals() {
        // strsim's own figure for the pair, rounded here independently.
        let raw = strsim::jaro_winkler("martha", "marhta");
        let r = screen(&request("Martha", &["Marhta"], Some(0.0))).unwrap();
        assert_eq!(r.matches[0].score, (raw * 10_000.0).round() / 10_000.0);
        assert_ne!(
            r.matches[0].score, raw,
            "rounding must change a long fraction"
        );
    }

    #[test]
    fn a_threshold_outside_zero_to_one_is_refused() {
        assert_eq!(
            screen(&request("a", &["a"], Some(1.5))).unwrap_err(),
            ScreenError::Threshold(1.5)
        );
    }

    #[test]
    fn malformed_json_gets_an_error_object_not_a_panic() {
        let out: serde_json::Value = serde_json::from_slice(&screen_json(b"{\"name\":")).unwrap();
        assert_eq!(out["error"], "malformed_request");
        let out: serde_json::Value =
            serde_json::from_slice(&screen_json(br#"{"name":"a","candidates":[],"x":1}"#)).unwrap();
        assert_eq!(out["error"], "malformed_request");
        assert!(out["message"].as_str().unwrap().contains("unknown field"));
    }
}
