//! The credit-score model as a component: `score(applicant) -> result<assessment, string>`
//! of `sealbox:credit-score/scorer@0.1.0`.
//!
//! The model is not copied: the modules of the core-module example
//! (examples/algorithms/credit-score/src/{json,input,model}.rs) are compiled
//! into this crate as they are. The typed applicant is validated by the same
//! code as the JSON one — it is written as the core module's JSON input and
//! read back by `input::Applicant::from_json` — so an out-of-range field gets
//! the core module's message word for word, with the JSON field names
//! (`late_payments`, `credit_history_months`), and the fields are checked in
//! the same order: income, debt, age, late_payments, credit_history_months.
//!
//! `std` (not `no_std` like the core module) for its allocator: the component
//! model's canonical ABI allocates the argument and result through it.

extern crate alloc;

/// The core module's JSON reader and writer (`input` needs it).
#[path = "../../../algorithms/credit-score/src/json.rs"]
pub mod json;

/// The core module's applicant fields and their ranges.
#[path = "../../../algorithms/credit-score/src/input.rs"]
pub mod input;

/// The core module's model: terms, score, band, reasons.
#[path = "../../../algorithms/credit-score/src/model.rs"]
pub mod model;

wit_bindgen::generate!({
    path: "../wit/credit-score.wit",
    world: "scorer",
});

use sealbox::credit_score::types::{Band, Reason};

struct Scorer;

impl Guest for Scorer {
    fn score(applicant: Applicant) -> Result<Assessment, String> {
        let applicant = match input::Applicant::from_json(&applicant_json(&applicant)) {
            Ok(a) => a,
            Err(input::InputError::Invalid(message)) => return Err(message),
            // The JSON is written above from typed values: it always parses.
            Err(input::InputError::Malformed(m)) => return Err(String::from(m.problem)),
        };
        let a = model::assess(&applicant);
        Ok(Assessment {
            score: a.score,
            band: match a.band {
                model::Band::A => Band::A,
                model::Band::B => Band::B,
                model::Band::C => Band::C,
                model::Band::D => Band::D,
                model::Band::E => Band::E,
            },
            reasons: a
                .reasons
                .iter()
                .map(|r| match r {
                    model::Reason::HighDebtToIncome => Reason::HighDebtToIncome,
                    model::Reason::LatePayments => Reason::LatePayments,
                    model::Reason::ShortCreditHistory => Reason::ShortCreditHistory,
                    model::Reason::LowIncome => Reason::LowIncome,
                })
                .collect(),
        })
    }
}

/// The applicant as the core module's JSON input, fields in the core module's order.
fn applicant_json(a: &Applicant) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let fields: [(&[u8], u64); 5] = [
        (b"{\"income\":", a.income),
        (b",\"debt\":", a.debt),
        (b",\"age\":", u64::from(a.age)),
        (b",\"late_payments\":", u64::from(a.late_payments)),
        (
            b",\"credit_history_months\":",
            u64::from(a.credit_history_months),
        ),
    ];
    for (key, value) in fields {
        out.extend_from_slice(key);
        json::write_u64(&mut out, value);
    }
    out.push(b'}');
    out
}

export!(Scorer);

#[cfg(test)]
mod tests {
    use super::*;
    use sealbox::credit_score::types::Applicant;

    fn applicant(income: u64, debt: u64, age: u32, late: u32, months: u32) -> Applicant {
        Applicant {
            income,
            debt,
            age,
            late_payments: late,
            credit_history_months: months,
        }
    }

    #[test]
    fn worked_example_of_the_core_module_readme() {
        let a = Scorer::score(applicant(48_000, 21_000, 34, 1, 40)).unwrap();
        assert_eq!(a.score, 592);
        assert_eq!(a.band, Band::D);
        assert_eq!(
            a.reasons,
            [
                Reason::ShortCreditHistory,
                Reason::HighDebtToIncome,
                Reason::LatePayments
            ]
        );
    }

    #[test]
    fn out_of_range_fields_get_the_core_modules_messages_in_its_order() {
        let err = |a| Scorer::score(a).unwrap_err();
        assert_eq!(
            err(applicant(u64::MAX, 0, 17, 0, 0)),
            "`income` must be a number from 0 to 1000000000000"
        );
        assert_eq!(
            err(applicant(1, 1_000_000_000_001, 17, 0, 0)),
            "`debt` must be a number from 0 to 1000000000000"
        );
        assert_eq!(
            err(applicant(1, 1, 17, 1001, 0)),
            "`age` must be a whole number from 18 to 120"
        );
        assert_eq!(
            err(applicant(1, 1, 18, 1001, 1201)),
            "`late_payments` must be a whole number from 0 to 1000"
        );
        assert_eq!(
            err(applicant(1, 1, 120, 1000, u32::MAX)),
            "`credit_history_months` must be a whole number from 0 to 1200"
        );
    }
}
