"""The credit-score model as a component of `sealbox:credit-score/scorer@0.1.0`,
in Python, built with componentize-py (see ../build.sh and ../README.md).

The same model as the core module examples/algorithms/credit-score (its README
has the formula): integer arithmetic only, so every implementation gives the
same answer. An out-of-range field is `err` with the core module's message,
word for word, naming the field by its JSON name (`late_payments`,
`credit_history_months`); the fields are checked in the core module's order.
"""

from componentize_py_types import Err

import wit_world
from wit_world.imports.types import Applicant, Assessment, Band, Reason

MAX_MONEY = 10**12

# (JSON name, attribute, minimum, maximum, whole number only), in the order checked.
FIELDS = (
    ("income", "income", 0, MAX_MONEY, False),
    ("debt", "debt", 0, MAX_MONEY, False),
    ("age", "age", 18, 120, True),
    ("late_payments", "late_payments", 0, 1000, True),
    ("credit_history_months", "credit_history_months", 0, 1200, True),
)

MAX_DTI_BP = 50_000
INCOME_CAP = 127_999
INCOME_STEP = 250
HISTORY_CAP_MONTHS = 120
HISTORY_PER_MONTH = 20
LATE_CAP = 10
LATE_PENALTY = 600
SIGMOID_K = 2000
REASON_THRESHOLD = 600


def check(applicant: Applicant) -> None:
    for name, attr, low, high, whole in FIELDS:
        value = getattr(applicant, attr)
        if not low <= value <= high:
            what = "a whole number" if whole else "a number"
            raise Err(f"`{name}` must be {what} from {low} to {high}")


def debt_to_income_bp(income: int, debt: int) -> int:
    if debt == 0:
        return 0
    if income == 0:
        return MAX_DTI_BP
    return min(debt * 10_000 // income, MAX_DTI_BP)


def ilog2(n: int) -> int:
    return n.bit_length() - 1


def band_of(score: int) -> Band:
    if score >= 740:
        return Band.A
    if score >= 680:
        return Band.B
    if score >= 620:
        return Band.C
    if score >= 560:
        return Band.D
    return Band.E


def assess(a: Applicant) -> Assessment:
    income = INCOME_STEP * ilog2(min(a.income, INCOME_CAP) // 1000 + 1)
    history = HISTORY_PER_MONTH * min(a.credit_history_months, HISTORY_CAP_MONTHS)
    dti = debt_to_income_bp(a.income, a.debt)
    debt_to_income = -(dti * 3 // 10)
    late = -LATE_PENALTY * min(a.late_payments, LATE_CAP)
    z = income + history + debt_to_income + late
    # Python's // rounds toward minus infinity: the README's floor.
    score = 575 + (275 * z) // (SIGMOID_K + abs(z))
    best_income = INCOME_STEP * ilog2(INCOME_CAP // 1000 + 1)
    best_history = HISTORY_PER_MONTH * HISTORY_CAP_MONTHS
    costs = [
        (Reason.HIGH_DEBT_TO_INCOME, -debt_to_income),
        (Reason.LATE_PAYMENTS, -late),
        (Reason.SHORT_CREDIT_HISTORY, best_history - history),
        (Reason.LOW_INCOME, best_income - income),
    ]
    # sorted() is stable: equal costs keep the order above.
    costs.sort(key=lambda c: -c[1])
    reasons = [reason for reason, cost in costs if cost >= REASON_THRESHOLD]
    return Assessment(score=score, band=band_of(score), reasons=reasons)


class WitWorld(wit_world.WitWorld):
    def score(self, applicant: Applicant) -> Assessment:
        check(applicant)
        return assess(applicant)
