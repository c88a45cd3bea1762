//! The applicant record: which fields the scorer takes, their ranges, and
//! reading them from the input JSON with an error a caller can act on.

use alloc::string::String;

use crate::json::{self, Malformed, Value, Whole};

/// Concatenates message pieces (`format!` would pull in `core::fmt`, which
/// triples the module's size).
fn message(parts: &[&str]) -> String {
    parts.concat()
}

/// One applicant, every field validated and in whole units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applicant {
    /// Yearly income in whole currency units (a fraction is cut off).
    pub income: u64,
    /// Outstanding debt in whole currency units (a fraction is cut off).
    pub debt: u64,
    /// Age in years (eligibility only: it does not move the score).
    pub age: u64,
    /// Late payments on record.
    pub late_payments: u64,
    /// Months since the oldest credit line was opened.
    pub credit_history_months: u64,
}

/// Why the input cannot be scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// The input is not JSON.
    Malformed(Malformed),
    /// The input is JSON but not a valid applicant; the message says what to fix.
    Invalid(String),
}

/// The accepted range of one field.
struct Field {
    name: &'static str,
    min: u64,
    max: u64,
    /// Whether a fraction is an error (counts) or cut off (money).
    whole_only: bool,
}

impl Field {
    fn rule(&self) -> String {
        let what = if self.whole_only {
            "a whole number"
        } else {
            "a number"
        };
        let (mut min, mut max) = ([0; 20], [0; 20]);
        message(&[
            "`",
            self.name,
            "` must be ",
            what,
            " from ",
            json::decimal(self.min, &mut min),
            " to ",
            json::decimal(self.max, &mut max),
        ])
    }

    /// The field's value, or the rule it breaks.
    fn read(&self, value: &Value<'_>) -> Result<u64, String> {
        let Value::Number(n) = value else {
            return Err(message(&[&self.rule(), ", found ", value.kind()]));
        };
        match n.whole(self.max) {
            Whole::Value { whole, fraction }
                if whole >= self.min && !(fraction && self.whole_only) =>
            {
                Ok(whole)
            }
            _ => Err(self.rule()),
        }
    }
}

/// Largest amount of money accepted (10^12 currency units).
pub const MAX_MONEY: u64 = 1_000_000_000_000;

/// The fields, in the order of [`Applicant`].
const FIELDS: [Field; 5] = [
    Field {
        name: "income",
        min: 0,
        max: MAX_MONEY,
        whole_only: false,
    },
    Field {
        name: "debt",
        min: 0,
        max: MAX_MONEY,
        whole_only: false,
    },
    Field {
        name: "age",
        min: 18,
        max: 120,
        whole_only: true,
    },
    Field {
        name: "late_payments",
        min: 0,
        max: 1000,
        whole_only: true,
    },
    Field {
        name: "credit_history_months",
        min: 0,
        max: 1200,
        whole_only: true,
    },
];

/// At most this many bytes of an unknown key are quoted back in a message.
const MAX_QUOTED_KEY: usize = 40;

impl Applicant {
    /// Reads an applicant from a JSON object holding exactly the five fields.
    pub fn from_json(input: &[u8]) -> Result<Self, InputError> {
        let value = json::parse(input).map_err(InputError::Malformed)?;
        let Value::Object(members) = value else {
            return Err(InputError::Invalid(message(&[
                "the input must be a JSON object, found ",
                value.kind(),
            ])));
        };
        let mut found: [Option<u64>; 5] = [None; 5];
        for (key, value) in &members {
            let Some(i) = FIELDS.iter().position(|f| f.name == key) else {
                let (key, cut) = quote(key);
                return Err(InputError::Invalid(message(&[
                    "unknown field `",
                    key,
                    cut,
                    "` (expected income, debt, age, late_payments, credit_history_months)",
                ])));
            };
            if found[i].is_some() {
                return Err(InputError::Invalid(message(&[
                    "duplicate field `",
                    key,
                    "`",
                ])));
            }
            found[i] = Some(FIELDS[i].read(value).map_err(InputError::Invalid)?);
        }
        let mut get = |i: usize| {
            found[i].take().ok_or_else(|| {
                InputError::Invalid(message(&["missing field `", FIELDS[i].name, "`"]))
            })
        };
        Ok(Applicant {
            income: get(0)?,
            debt: get(1)?,
            age: get(2)?,
            late_payments: get(3)?,
            credit_history_months: get(4)?,
        })
    }
}

impl Applicant {
    /// Checks typed field values (income, debt, age, late payments, months of
    /// history, in whole units) against the ranges of [`Applicant::from_json`],
    /// in that order, with the same messages: for a caller whose input is
    /// already typed (the component of examples/components/credit-score-rs).
    pub fn from_values(values: [u64; 5]) -> Result<Self, String> {
        for (field, value) in FIELDS.iter().zip(values) {
            if value < field.min || value > field.max {
                return Err(field.rule());
            }
        }
        let [income, debt, age, late_payments, credit_history_months] = values;
        Ok(Applicant {
            income,
            debt,
            age,
            late_payments,
            credit_history_months,
        })
    }
}

/// `key` cut to at most [`MAX_QUOTED_KEY`] bytes on a character boundary, and
/// `…` when it was cut.
fn quote(key: &str) -> (&str, &'static str) {
    if key.len() <= MAX_QUOTED_KEY {
        return (key, "");
    }
    let mut end = MAX_QUOTED_KEY;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    (&key[..end], "…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    fn invalid(text: &str) -> String {
        match Applicant::from_json(text.as_bytes()) {
            Err(InputError::Invalid(m)) => m,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn reads_a_complete_applicant() {
        let a = Applicant::from_json(
            br#"{"income": 48000.99, "debt": 2.1e4, "age": 34,
                 "late_payments": 1, "credit_history_months": 40.0}"#,
        )
        .unwrap();
        assert_eq!(
            a,
            Applicant {
                income: 48_000,
                debt: 21_000,
                age: 34,
                late_payments: 1,
                credit_history_months: 40
            }
        );
    }

    #[test]
    fn typed_values_get_the_messages_of_json_ones() {
        let json = |text: &str| Applicant::from_json(text.as_bytes());
        assert_eq!(
            Applicant::from_values([48_000, 21_000, 34, 1, 40]).unwrap(),
            json(r#"{"income":48000,"debt":21000,"age":34,"late_payments":1,"credit_history_months":40}"#).unwrap()
        );
        for (values, text) in [
            (
                [0, 0, 17, 0, 0],
                r#"{"income":0,"debt":0,"age":17,"late_payments":0,"credit_history_months":0}"#,
            ),
            (
                [MAX_MONEY + 1, 0, 17, 0, 0],
                r#"{"income":1000000000001,"debt":0,"age":17,"late_payments":0,"credit_history_months":0}"#,
            ),
            (
                [0, 0, 18, 1001, 1201],
                r#"{"income":0,"debt":0,"age":18,"late_payments":1001,"credit_history_months":1201}"#,
            ),
        ] {
            let Err(InputError::Invalid(expected)) = json(text) else {
                panic!("{text} is refused");
            };
            assert_eq!(Applicant::from_values(values).unwrap_err(), expected);
        }
    }

    #[test]
    fn field_order_does_not_matter() {
        let a = Applicant::from_json(
            br#"{"credit_history_months":0,"late_payments":0,"age":18,"debt":0,"income":0}"#,
        )
        .unwrap();
        assert_eq!(a.age, 18);
        assert_eq!(a.income, 0);
    }

    const BASE: &str = r#""income":1,"debt":1,"late_payments":1,"credit_history_months":1"#;

    #[test]
    fn out_of_range_values_name_the_field_and_its_range() {
        let rule = "`age` must be a whole number from 18 to 120";
        assert_eq!(invalid(&format!("{{{BASE},\"age\":17}}")), rule);
        assert_eq!(invalid(&format!("{{{BASE},\"age\":121}}")), rule);
        assert_eq!(invalid(&format!("{{{BASE},\"age\":30.5}}")), rule);
        assert_eq!(invalid(&format!("{{{BASE},\"age\":-30}}")), rule);
        assert_eq!(
            invalid(&format!("{{{BASE},\"age\":\"30\"}}")),
            format!("{rule}, found a string")
        );
        assert_eq!(
            invalid(
                r#"{"income":-5,"debt":1,"age":30,"late_payments":1,"credit_history_months":1}"#
            ),
            "`income` must be a number from 0 to 1000000000000"
        );
        assert_eq!(
            invalid(
                r#"{"income":1e13,"debt":1,"age":30,"late_payments":1,"credit_history_months":1}"#
            ),
            "`income` must be a number from 0 to 1000000000000"
        );
        assert_eq!(
            invalid(
                r#"{"income":1,"debt":null,"age":30,"late_payments":1,"credit_history_months":1}"#
            ),
            "`debt` must be a number from 0 to 1000000000000, found null"
        );
    }

    #[test]
    fn the_set_of_fields_must_be_exact() {
        assert_eq!(invalid(&format!("{{{BASE}}}")), "missing field `age`");
        assert_eq!(
            invalid(&format!("{{{BASE},\"age\":30,\"age\":31}}")),
            "duplicate field `age`"
        );
        assert_eq!(
            invalid(&format!("{{{BASE},\"age\":30,\"zip\":\"x\"}}")),
            "unknown field `zip` (expected income, debt, age, late_payments, credit_history_months)"
        );
        let long = "k".repeat(50);
        assert!(
            invalid(&format!("{{\"{long}\":1}}"))
                .starts_with(&format!("unknown field `{}…`", "k".repeat(40)))
        );
        assert_eq!(
            invalid("[1]"),
            "the input must be a JSON object, found an array"
        );
    }

    #[test]
    fn malformed_json_is_reported_as_such() {
        assert!(matches!(
            Applicant::from_json(b"{\"income\":"),
            Err(InputError::Malformed(Malformed { at: 10, .. }))
        ));
    }
}
