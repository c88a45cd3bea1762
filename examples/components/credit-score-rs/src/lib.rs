//! The credit-score model as a component: `score(applicant) -> result<assessment, string>`
//! of `sealbox:credit-score/scorer@0.1.0`.
//!
//! The model is not copied: the modules of the core-module example
//! (examples/algorithms/credit-score/src/{json,input,model}.rs) are compiled
//! into this crate as they are. The typed applicant is validated by the same
//! field rules as the JSON one (`input::Applicant::from_values`), so an
//! out-of-range field gets the core module's message word for word, with the
//! JSON field names (`late_payments`, `credit_history_months`), and the fields
//! are checked in the same order: income, debt, age, late_payments,
//! credit_history_months.
//!
//! `std` (not `no_std` like the core module), with an allocator of its own on
//! wasm32 (`arena.rs`): a bump arena inside the initial memory, so a call in a
//! fresh instance never grows memory.

extern crate alloc;

#[cfg(target_arch = "wasm32")]
mod arena;

/// The core module's JSON reader (`input` needs it).
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
        let applicant = input::Applicant::from_values([
            applicant.income,
            applicant.debt,
            u64::from(applicant.age),
            u64::from(applicant.late_payments),
            u64::from(applicant.credit_history_months),
        ])?;
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
