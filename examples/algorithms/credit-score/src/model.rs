//! The scorecard: integer log-odds from four factors, a rational sigmoid onto
//! 300..850, letter bands and adverse-action reasons. The formula is documented
//! in this crate's README; every constant here is named there.

use alloc::vec::Vec;

use crate::input::Applicant;

/// Log-odds are in thousandths (fixed point, scale 1000).
pub type Milli = i64;

/// Debt-to-income ratio is capped at 500 % (50 000 basis points).
pub const MAX_DTI_BP: u64 = 50_000;
/// Income above this adds nothing (log-scale steps stop at 128 thousand).
pub const INCOME_CAP: u64 = 127_999;
/// Log-odds per income doubling (in thousands of currency units).
pub const INCOME_STEP: Milli = 250;
/// Credit history counts up to ten years.
pub const HISTORY_CAP_MONTHS: u64 = 120;
/// Log-odds per month of credit history.
pub const HISTORY_PER_MONTH: Milli = 20;
/// Late payments count up to ten.
pub const LATE_CAP: u64 = 10;
/// Log-odds lost per late payment.
pub const LATE_PENALTY: Milli = 600;
/// Softness of the sigmoid: log-odds at which the score is 3/4 of the way up.
pub const SIGMOID_K: Milli = 2000;
/// A factor is a reason when it costs at least this much below its best value.
pub const REASON_THRESHOLD: Milli = 600;

/// The four contributions to the log-odds, each in thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// `250 × ilog2(min(income, 127 999) div 1000 + 1)`: 0 ..= 1750.
    pub income: Milli,
    /// `20 × min(months, 120)`: 0 ..= 2400.
    pub history: Milli,
    /// `−(min(dti_bp, 50 000) × 3 div 10)`: −15 000 ..= 0.
    pub debt_to_income: Milli,
    /// `−600 × min(late, 10)`: −6000 ..= 0.
    pub late_payments: Milli,
}

/// Debt-to-income ratio in basis points, `floor(debt × 10 000 / income)`, capped
/// at [`MAX_DTI_BP`]; no income with some debt is the cap, no debt is 0.
pub fn debt_to_income_bp(income: u64, debt: u64) -> u64 {
    if debt == 0 {
        return 0;
    }
    if income == 0 {
        return MAX_DTI_BP;
    }
    // Both are at most 10^12, so debt × 10 000 ≤ 10^16 < 2^64.
    (debt * 10_000 / income).min(MAX_DTI_BP)
}

impl Terms {
    /// The terms of one applicant.
    pub fn of(a: &Applicant) -> Self {
        let thousands = a.income.min(INCOME_CAP) / 1000 + 1;
        let dti = debt_to_income_bp(a.income, a.debt) as Milli;
        Terms {
            income: INCOME_STEP * Milli::from(thousands.ilog2()),
            history: HISTORY_PER_MONTH * a.credit_history_months.min(HISTORY_CAP_MONTHS) as Milli,
            debt_to_income: -(dti * 3 / 10),
            late_payments: -LATE_PENALTY * a.late_payments.min(LATE_CAP) as Milli,
        }
    }

    /// The log-odds `z`: the sum of the terms.
    pub fn log_odds(&self) -> Milli {
        self.income + self.history + self.debt_to_income + self.late_payments
    }
}

/// `575 + floor(275 × z / (2000 + |z|))`: 300 ..= 849 for every `z`.
pub fn score(z: Milli) -> u16 {
    let shift = (275 * z).div_euclid(SIGMOID_K + z.abs());
    // |shift| < 275, so the sum is in 300..=849.
    (575 + shift) as u16
}

/// Letter band of a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// 740 and above.
    A,
    /// 680 ..= 739.
    B,
    /// 620 ..= 679.
    C,
    /// 560 ..= 619.
    D,
    /// Below 560.
    E,
}

impl Band {
    /// The band of `score`.
    pub fn of(score: u16) -> Self {
        match score {
            740.. => Band::A,
            680..=739 => Band::B,
            620..=679 => Band::C,
            560..=619 => Band::D,
            _ => Band::E,
        }
    }

    /// The band's letter.
    pub fn letter(self) -> &'static str {
        match self {
            Band::A => "A",
            Band::B => "B",
            Band::C => "C",
            Band::D => "D",
            Band::E => "E",
        }
    }
}

/// A factor that pulled the score down (adverse-action reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Debt is high relative to income.
    HighDebtToIncome,
    /// Late payments on record.
    LatePayments,
    /// Credit history shorter than ten years.
    ShortCreditHistory,
    /// Income below the level where it stops adding to the score.
    LowIncome,
}

impl Reason {
    /// The reason's code in the output.
    pub fn code(self) -> &'static str {
        match self {
            Reason::HighDebtToIncome => "high_debt_to_income",
            Reason::LatePayments => "late_payments",
            Reason::ShortCreditHistory => "short_credit_history",
            Reason::LowIncome => "low_income",
        }
    }
}

/// The outcome for one applicant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// 300 ..= 849; higher is lower risk.
    pub score: u16,
    /// Letter band of the score.
    pub band: Band,
    /// Factors costing at least [`REASON_THRESHOLD`], costliest first.
    pub reasons: Vec<Reason>,
}

/// Scores one applicant.
pub fn assess(a: &Applicant) -> Assessment {
    let terms = Terms::of(a);
    let score = score(terms.log_odds());
    // Each factor's cost: its best possible term minus its actual term.
    let best_income = INCOME_STEP * Milli::from((INCOME_CAP / 1000 + 1).ilog2());
    let best_history = HISTORY_PER_MONTH * HISTORY_CAP_MONTHS as Milli;
    let mut costs = [
        (Reason::HighDebtToIncome, -terms.debt_to_income),
        (Reason::LatePayments, -terms.late_payments),
        (Reason::ShortCreditHistory, best_history - terms.history),
        (Reason::LowIncome, best_income - terms.income),
    ];
    // Insertion sort, costliest first; stable, so equal costs keep the order
    // above (the library sort would add kilobytes for four items).
    for i in 1..costs.len() {
        let mut j = i;
        while j > 0 && costs[j - 1].1 < costs[j].1 {
            costs.swap(j - 1, j);
            j -= 1;
        }
    }
    let reasons = costs
        .iter()
        .filter(|&&(_, cost)| cost >= REASON_THRESHOLD)
        .map(|&(reason, _)| reason)
        .collect();
    Assessment {
        score,
        band: Band::of(score),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn applicant(income: u64, debt: u64, late: u64, months: u64) -> Applicant {
        Applicant {
            income,
            debt,
            age: 40,
            late_payments: late,
            credit_history_months: months,
        }
    }

    #[test]
    fn sample_applicant_by_hand() {
        // examples/inputs/applicant.json: 48000, 21000, age 34, 1 late, 40 months.
        // income:  48000 div 1000 + 1 = 49; ilog2(49) = 5 (32 ≤ 49 < 64); 250 × 5 = 1250
        // history: 20 × 40 = 800
        // dti:     21000 × 10000 / 48000 = 4375 bp; 4375 × 3 div 10 = 1312 → −1312
        // late:    −600 × 1 = −600
        // z = 1250 + 800 − 1312 − 600 = 138
        // score = 575 + floor(275 × 138 / 2138) = 575 + floor(37950 / 2138 = 17.75…) = 592
        // costs: history 2400 − 800 = 1600, dti 1312, late 600, income 1750 − 1250 = 500 (< 600)
        let a = applicant(48_000, 21_000, 1, 40);
        let t = Terms::of(&a);
        assert_eq!(
            t,
            Terms {
                income: 1250,
                history: 800,
                debt_to_income: -1312,
                late_payments: -600
            }
        );
        assert_eq!(t.log_odds(), 138);
        assert_eq!(
            assess(&a),
            Assessment {
                score: 592,
                band: Band::D,
                reasons: vec![
                    Reason::ShortCreditHistory,
                    Reason::HighDebtToIncome,
                    Reason::LatePayments
                ],
            }
        );
    }

    #[test]
    fn strong_applicant_by_hand() {
        // 120000 income, 10000 debt, no late payments, 240 months.
        // income: 121 → ilog2 6 → 1500; history: capped 120 → 2400
        // dti: 10000 × 10000 / 120000 = 833 bp → 833 × 3 div 10 = 249 → −249
        // z = 1500 + 2400 − 249 = 3651; score = 575 + floor(1004025 / 5651 = 177.67…) = 752
        // costs: dti 249, late 0, history 0, income 1750 − 1500 = 250: no reasons
        let a = assess(&applicant(120_000, 10_000, 0, 240));
        assert_eq!(
            a,
            Assessment {
                score: 752,
                band: Band::A,
                reasons: vec![]
            }
        );
    }

    #[test]
    fn weak_applicant_by_hand() {
        // 25000 income, 20000 debt, 3 late, 12 months.
        // income: 26 → ilog2 4 → 1000; history: 240; dti: 8000 bp → −2400; late: −1800
        // z = 1000 + 240 − 2400 − 1800 = −2960
        // score = 575 + floor(−814000 / 4960 = −164.11…) = 575 − 165 = 410
        // costs: dti 2400, late 1800, history 2160, income 750 → dti, history, late, income
        let a = assess(&applicant(25_000, 20_000, 3, 12));
        assert_eq!(
            a,
            Assessment {
                score: 410,
                band: Band::E,
                reasons: vec![
                    Reason::HighDebtToIncome,
                    Reason::ShortCreditHistory,
                    Reason::LatePayments,
                    Reason::LowIncome
                ],
            }
        );
    }

    #[test]
    fn equal_costs_keep_the_documented_order() {
        // dti 2000 bp → cost 600; 1 late → cost 600; 90 months → cost 600;
        // income 10000 → 11 → ilog2 3 → 750, cost 1000.
        let a = assess(&applicant(10_000, 2_000, 1, 90));
        assert_eq!(
            a.reasons,
            [
                Reason::LowIncome,
                Reason::HighDebtToIncome,
                Reason::LatePayments,
                Reason::ShortCreditHistory
            ]
        );
    }

    #[test]
    fn debt_to_income_edges() {
        assert_eq!(debt_to_income_bp(0, 0), 0);
        assert_eq!(debt_to_income_bp(0, 1), 50_000);
        assert_eq!(debt_to_income_bp(1, 0), 0);
        // 3 / 7 = 0.428571… → 4285 bp (floor)
        assert_eq!(debt_to_income_bp(7, 3), 4285);
        assert_eq!(debt_to_income_bp(1, 6), 50_000);
        assert_eq!(
            debt_to_income_bp(1_000_000_000_000, 1_000_000_000_000),
            10_000
        );
    }

    #[test]
    fn score_curve_points() {
        assert_eq!(score(0), 575);
        // 275 × 2000 / 4000 = 137.5 → 712; the mirror floors to −138 → 437.
        assert_eq!(score(2000), 712);
        assert_eq!(score(-2000), 437);
        // Extremes approach but never reach 300 and 850.
        assert_eq!(score(Milli::MAX / 1000), 849);
        assert_eq!(score(-Milli::MAX / 1000), 300);
    }

    #[test]
    fn score_extremes_of_the_inputs() {
        // Best: income term 1750 (127999 → 128 → 7), history 2400, nothing else.
        // z = 4150: 575 + floor(1141250 / 6150 = 185.56…) = 760
        assert_eq!(assess(&applicant(10_000_000, 0, 0, 600)).score, 760);
        // Worst: no income, capped dti −15000, 10 late −6000, no history: z = −21000.
        // 575 + floor(−5775000 / 23000 = −251.08…) = 575 − 252 = 323
        assert_eq!(assess(&applicant(0, 5, 1000, 0)).score, 323);
    }

    #[test]
    fn bands_at_their_edges() {
        let cases = [
            (849, Band::A),
            (740, Band::A),
            (739, Band::B),
            (680, Band::B),
            (679, Band::C),
            (620, Band::C),
            (619, Band::D),
            (560, Band::D),
            (559, Band::E),
            (300, Band::E),
        ];
        for (s, band) in cases {
            assert_eq!(Band::of(s), band, "score {s}");
        }
    }
}
