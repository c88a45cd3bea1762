// The credit-score model as a component of `sealbox:credit-score/scorer@0.1.0`,
// in JavaScript, built with componentize-js (see ../build.sh and ../README.md).
//
// The same model as the core module examples/algorithms/credit-score (its
// README has the formula): integer arithmetic only, so every implementation
// gives the same answer. `income` and `debt` are WIT u64s and arrive as BigInt;
// the arithmetic on them stays in BigInt (debt × 10 000 exceeds 2^53). An
// out-of-range field is `err` with the core module's message, word for word,
// naming the field by its JSON name (`late_payments`, `credit_history_months`);
// the fields are checked in the core module's order.

const MAX_MONEY = 1_000_000_000_000n;

// [JSON name, record property, minimum, maximum, whole number only], in the order checked.
const FIELDS = [
  ['income', 'income', 0n, MAX_MONEY, false],
  ['debt', 'debt', 0n, MAX_MONEY, false],
  ['age', 'age', 18n, 120n, true],
  ['late_payments', 'latePayments', 0n, 1000n, true],
  ['credit_history_months', 'creditHistoryMonths', 0n, 1200n, true],
];

const MAX_DTI_BP = 50_000n;
const INCOME_CAP = 127_999n;
const INCOME_STEP = 250;
const HISTORY_CAP_MONTHS = 120;
const HISTORY_PER_MONTH = 20;
const LATE_CAP = 10;
const LATE_PENALTY = 600;
const SIGMOID_K = 2000;
const REASON_THRESHOLD = 600;

// The message of the first field out of range, or null.
function check(applicant) {
  for (const [name, property, low, high, whole] of FIELDS) {
    const value = BigInt(applicant[property]);
    if (value < low || value > high) {
      const what = whole ? 'a whole number' : 'a number';
      return `\`${name}\` must be ${what} from ${low} to ${high}`;
    }
  }
  return null;
}

function debtToIncomeBp(income, debt) {
  if (debt === 0n) return 0n;
  if (income === 0n) return MAX_DTI_BP;
  const dti = (debt * 10_000n) / income; // BigInt division truncates: both are >= 0
  return dti < MAX_DTI_BP ? dti : MAX_DTI_BP;
}

// floor(log2(n)) for a whole n >= 1.
function ilog2(n) {
  return 31 - Math.clz32(n);
}

function bandOf(score) {
  if (score >= 740) return 'a';
  if (score >= 680) return 'b';
  if (score >= 620) return 'c';
  if (score >= 560) return 'd';
  return 'e';
}

function assess(applicant) {
  const income = BigInt(applicant.income);
  const debt = BigInt(applicant.debt);
  const capped = Number(income < INCOME_CAP ? income : INCOME_CAP);
  const incomeTerm = INCOME_STEP * ilog2(Math.floor(capped / 1000) + 1);
  const history = HISTORY_PER_MONTH * Math.min(applicant.creditHistoryMonths, HISTORY_CAP_MONTHS);
  const dti = Number(debtToIncomeBp(income, debt)); // at most 50 000
  const debtToIncome = -Math.floor((dti * 3) / 10);
  const late = -LATE_PENALTY * Math.min(applicant.latePayments, LATE_CAP);
  const z = incomeTerm + history + debtToIncome + late;
  const score = 575 + Math.floor((275 * z) / (SIGMOID_K + Math.abs(z)));
  const bestIncome = INCOME_STEP * ilog2(Math.floor(Number(INCOME_CAP) / 1000) + 1);
  const bestHistory = HISTORY_PER_MONTH * HISTORY_CAP_MONTHS;
  const costs = [
    ['high-debt-to-income', -debtToIncome],
    ['late-payments', -late],
    ['short-credit-history', bestHistory - history],
    ['low-income', bestIncome - incomeTerm],
  ];
  // Array.prototype.sort is stable: equal costs keep the order above.
  costs.sort((x, y) => y[1] - x[1]);
  const reasons = costs.filter(([, cost]) => cost >= REASON_THRESHOLD).map(([reason]) => reason);
  return { score, band: bandOf(score), reasons };
}

// `result<assessment, string>`: the assessment is returned, the error string thrown.
export function score(applicant) {
  const problem = check(applicant);
  if (problem !== null) throw problem;
  return assess(applicant);
}
