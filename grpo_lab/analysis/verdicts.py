"""Verdicts a reviewer accepts: superiority, non-inferiority and equivalence of two arms,
Holm's correction over the pairs of a report, a two-level paired bootstrap over seeds and
held-out problems, and the seeds a verdict needs at a target power.

Everything here is pure: numbers in, numbers (or one verdict sentence) out. The tidy
frames are turned into these numbers by ``analysis/stats.py``.

**The difference.** ``theta = A - B`` in outcome units (accuracy 0.05 = 5 points). With
``direction="higher"`` a positive difference favours A; with ``"lower"`` (lengths,
losses) a negative one does. Every test is written on the *gain* ``g = +-theta`` (positive:
A better), so one set of formulas serves both directions.

**Its distribution**, one of two kinds, each able to give a one-sided bound and a
one-sided p-value:

- ``StudentT(mean, se, df)``: the paired t over matched seeds (``se = sd / sqrt(n)``,
  ``df = n - 1``), or Welch's when seeds do not match;
- ``Bootstrap(estimate, replicates)``: percentile bounds and p-values
  ``(#{replicates on the wrong side} + 1) / (B + 1)`` (Davison & Hinkley 1997, eq. 4.11),
  from :func:`two_level_bootstrap`.

**Hypotheses** (alpha = 0.05 by default; margin delta > 0 declared before the runs):

- superiority, two-sided: H0 ``g = 0``; decided when the (1 - alpha) interval excludes 0;
- non-inferiority, "A is no more than delta worse than B": H0 ``g <= -delta``, one-sided at
  alpha; decided when the lower bound of the one-sided (1 - alpha) interval (= the low end
  of the two-sided 1 - 2 alpha interval) is above ``-delta``;
- equivalence, two one-sided tests (TOST; Schuirmann 1987, J. Pharmacokinet. Biopharm.
  15:657): H0 ``|g| >= delta``; p = the larger of the two one-sided p-values; decided when
  the two-sided (1 - 2 alpha) interval lies inside ``(-delta, +delta)``.

**Multiplicity**: with more than one pair, each hypothesis's p-values are adjusted by
Holm's step-down procedure (Holm 1979, Scand. J. Statist. 6:65) over the family of pairs
the report shows, and a verdict needs its adjusted p below alpha.

**Seeds needed** at power 1 - beta, paired design, normal approximation refined with
Student's t (Chow, Shao & Wang 2008, "Sample Size Calculations in Clinical Research",
sec. 3.2; Julious 2004, Stat. Med. 23:1921): the smallest n >= 2 with

    (t[1 - a, n - 1] + t[q, n - 1]) * sd / sqrt(n) <= effect

where sd is the spread of the paired differences over seeds and, for the observed gain g:
superiority ``a = alpha / 2, q = 1 - beta, effect = |g|``; non-inferiority ``a = alpha,
q = 1 - beta, effect = g + delta``. No n reaches it when the effect is <= 0. Equivalence
needs both one-sided tests to reject, so both tails count (near g = 0 they count alike):
the smallest n >= 2 with

    F(( delta - |g|) / se - t[1 - alpha, n - 1]) + F((delta + |g|) / se - t[1 - alpha, n - 1]) - 1 >= 1 - beta

``se = sd / sqrt(n)``, F Student's t distribution with n - 1 degrees of freedom; at g = 0
this is the rule above with ``q = 1 - beta / 2``, for |g| near delta the rule with
``q = 1 - beta`` and ``effect = delta - |g|``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

HIGHER, LOWER = "higher", "lower"
SUPERIORITY, NON_INFERIORITY, EQUIVALENCE = "superiority", "non_inferiority", "equivalence"
HYPOTHESES = (SUPERIORITY, NON_INFERIORITY, EQUIVALENCE)
BOOTSTRAP_RESAMPLES = 5000
BOOTSTRAP_SEED = 0  # the same data give the same replicates, hence the same verdicts
SHOWN_SEEDS_CAP = 10_000  # seeds needed above this are printed as "> 10000", not as a count
NO_DIFFERENCE = "no difference observed"  # why no number of seeds decides superiority


def _sign(direction: str) -> int:
    if direction not in (HIGHER, LOWER):
        raise ValueError(f"direction={direction!r} must be {HIGHER!r} or {LOWER!r} (which outcome is better)")
    return 1 if direction == HIGHER else -1


# -- distributions of the difference ---------------------------------------------------

@dataclass(frozen=True)
class StudentT:
    """The difference ``mean`` with standard error ``se`` on ``df`` degrees of freedom."""

    mean: float
    se: float
    df: float

    @property
    def estimate(self) -> float:
        return self.mean

    def quantile(self, q: float) -> float:
        """The q-quantile of the difference's sampling distribution (a bound at level q)."""
        if self.se == 0.0:
            return self.mean
        return float(self.mean + stats.t.ppf(q, self.df) * self.se)

    def p_greater(self, value: float) -> float:
        """One-sided p-value of H0 ``difference <= value`` against ``> value``."""
        if self.se == 0.0:  # a difference on the bound itself, up to round-off, is H0
            return 0.0 if self.mean > value and not on_bound(self.mean, value) else 1.0
        return float(stats.t.sf((self.mean - value) / self.se, self.df))

    def p_less(self, value: float) -> float:
        """One-sided p-value of H0 ``difference >= value`` against ``< value``."""
        if self.se == 0.0:
            return 0.0 if self.mean < value and not on_bound(self.mean, value) else 1.0
        return float(stats.t.cdf((self.mean - value) / self.se, self.df))


@dataclass(frozen=True)
class Bootstrap:
    """The difference ``estimate`` with bootstrap ``replicates`` of it."""

    estimate: float
    replicates: np.ndarray

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.replicates, q))

    def p_greater(self, value: float) -> float:
        return float((np.sum(self.replicates <= value) + 1) / (len(self.replicates) + 1))

    def p_less(self, value: float) -> float:
        return float((np.sum(self.replicates >= value) + 1) / (len(self.replicates) + 1))


Difference = StudentT | Bootstrap

ROUND_OFF = 1e-9  # relative: 0.45 - 0.50 is -0.04999999999999999, which is -0.05


def on_bound(value: float, bound: float) -> bool:
    """Whether ``value`` equals ``bound`` up to float round-off."""
    return abs(value - bound) <= ROUND_OFF * max(1.0, abs(bound))


def no_spread(values: np.ndarray) -> bool:
    """Whether values differ by rounding alone (0.5 + 0.1 - 0.5 is not exactly 0.1): a
    t-test on them would divide by a standard deviation of rounding noise (scipy warns of
    catastrophic cancellation) and report an interval of nothing but that noise."""
    scale = max(1.0, float(np.abs(values).max()))
    return float(np.ptp(values)) <= ROUND_OFF * scale


def paired_t(differences: Sequence[float]) -> StudentT:
    """The paired-t distribution of the mean of per-seed differences (>= 2 of them)."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2 or not np.all(np.isfinite(d)):
        raise ValueError(f"differences={list(d)} must be at least 2 finite values")
    se = 0.0 if no_spread(d) else float(d.std(ddof=1) / math.sqrt(len(d)))
    return StudentT(float(d.mean()), se, len(d) - 1)


def welch_t(a: Sequence[float], b: Sequence[float]) -> StudentT:
    """Welch's distribution of mean(a) - mean(b) for unmatched runs (>= 2 each), with the
    Welch-Satterthwaite degrees of freedom."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"welch_t needs at least 2 runs per arm, got {len(x)} and {len(y)}")
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1)) if se > 0 else math.inf
    return StudentT(float(x.mean() - y.mean()), se, df)


def two_level_bootstrap(differences: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> Bootstrap:
    """Paired bootstrap over seeds, then problems, of the mean of ``differences[s, p] =
    A's outcome - B's outcome`` of matched seed ``s`` on held-out problem ``p``.

    Each replicate draws the seeds with replacement (one draw for both arms: the same seed
    gives both the same prompt stream), then the problems with replacement (one draw for
    both arms and every seed: all runs are scored on the same held-out set), and averages
    the differences over the drawn cells. Seeds and problems are crossed, not nested, so
    this is the pigeonhole bootstrap of Owen 2007 (Ann. Appl. Stat. 1:246), the
    hierarchical resampling of Davison & Hinkley 1997 sec. 3.8 applied to a crossed design.

    What it buys: a problem that both arms find easy (or hard) contributes 0 to every
    difference, and the evaluation noise is estimated from every (seed, problem) cell
    instead of from the n - 1 degrees of freedom of n seeds. What it does not: like every
    percentile bootstrap over few units (and rliable's over runs, Agarwal et al. 2021),
    it does not widen for few seeds as Student's t does; when the difference itself
    varies from seed to seed much more than evaluation noise explains, its interval is
    narrower than it should be. Reports keep the seed-level paired t beside it."""
    d = np.asarray(differences, dtype=float)
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 1 or not np.all(np.isfinite(d)):
        raise ValueError(f"differences of shape {d.shape} must be finite, 2+ seeds x 1+ problems")
    seeds, problems = d.shape
    rng = np.random.default_rng(seed)
    # Counts of each seed and each problem in a replicate's draws: the replicate's mean is
    # seed_counts @ d @ problem_counts / (seeds * problems).
    seed_counts = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=resamples)
    problem_counts = rng.multinomial(problems, np.full(problems, 1 / problems), size=resamples)
    replicates = np.einsum("bs,sp,bp->b", seed_counts, d, problem_counts) / (seeds * problems)
    return Bootstrap(float(d.mean()), replicates)


# -- tests -----------------------------------------------------------------------------

def interval(difference: Difference, confidence: float) -> tuple[float, float]:
    """The two-sided ``confidence`` interval of the difference."""
    tail = (1 - confidence) / 2
    return difference.quantile(tail), difference.quantile(1 - tail)


def p_superiority(difference: Difference) -> float:
    """Two-sided p-value of H0 ``difference = 0`` (twice the smaller one-sided p, at most 1)."""
    return min(1.0, 2 * min(difference.p_greater(0.0), difference.p_less(0.0)))


def p_non_inferiority(difference: Difference, margin: float, direction: str = HIGHER) -> float:
    """One-sided p-value of H0 "A is at least ``margin`` worse than B"."""
    _check_margin(margin)
    return difference.p_greater(-margin) if _sign(direction) > 0 else difference.p_less(margin)


def p_equivalence(difference: Difference, margin: float) -> float:
    """TOST p-value (Schuirmann 1987): the larger of the one-sided p-values of
    H0 ``difference <= -margin`` and H0 ``difference >= +margin``."""
    _check_margin(margin)
    return max(difference.p_greater(-margin), difference.p_less(margin))


def _check_margin(margin: float) -> None:
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin={margin!r} must be a positive number (in outcome units)")


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): sorted ascending, the i-th smallest
    (i = 1..m) becomes ``max over j <= i of min(1, (m - j + 1) * p_(j))``. A hypothesis is
    rejected at family-wise level alpha when its adjusted p is below alpha. A NaN (a pair
    with no test) counts in the family as p = 1 and stays NaN."""
    p = np.asarray(p_values, dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p_values={list(p)} must lie in [0, 1]")
    filled = np.where(np.isnan(p), 1.0, p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(np.argsort(filled, kind="stable")):
        running = max(running, min(1.0, (m - rank) * filled[i]))
        adjusted[i] = running
    return np.where(np.isnan(p), np.nan, adjusted)


# -- seeds needed ----------------------------------------------------------------------

def seeds_for_power(sd: float, gain: float, hypothesis: str = SUPERIORITY, margin: float | None = None,
                    alpha: float = 0.05, power: float = 0.8) -> float:
    """Matched seeds at which the test of ``hypothesis`` reaches ``power``, if the paired
    differences' spread ``sd`` and the observed ``gain`` (A - B oriented so that positive
    favours A) held; formula in the module docstring. ``inf``: no number of seeds (no gain
    observed for superiority, up to float round-off; a gain outside the margin for the
    others); NaN for a NaN spread or gain; 2 when the differences do not spread at all."""
    if hypothesis not in HYPOTHESES:
        raise ValueError(f"hypothesis={hypothesis!r} must be one of {', '.join(HYPOTHESES)}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha={alpha!r} must lie in (0, 0.5)")
    if not 0.5 <= power < 1:  # below 0.5 the t-quantile sum is not monotone in n
        raise ValueError(f"power={power!r} must lie in [0.5, 1)")
    if math.isnan(sd) or math.isnan(gain):
        return math.nan
    if hypothesis == SUPERIORITY:
        a, q, effect = alpha / 2, power, abs(gain)
    else:
        _check_margin(margin)
        a = alpha
        q, effect = power, (gain + margin if hypothesis == NON_INFERIORITY else margin - abs(gain))
    # An effect below a billionth of the problem's scale is float round-off (0.1 - 0.15 +
    # 0.05, or a difference exactly on the margin): none, whatever the spread.
    if effect <= ROUND_OFF * max(sd, abs(gain), margin or 0.0):
        return math.inf
    if sd == 0:
        return 2.0
    # The normal-quantile n is a lower bound (t quantiles exceed normal ones): start there.
    n = max(2, math.floor(((stats.norm.ppf(1 - a) + stats.norm.ppf(q)) * sd / effect) ** 2))
    while (stats.t.ppf(1 - a, n - 1) + stats.t.ppf(q, n - 1)) * sd / math.sqrt(n) > effect:
        n += 1
    if hypothesis == EQUIVALENCE:  # the one-tail n is a lower bound: the other tail only costs power
        while _tost_power(n, sd, abs(gain), margin, alpha) < power:
            n += 1
    return float(n)


def _tost_power(n: int, sd: float, gain: float, margin: float, alpha: float) -> float:
    """Approximate power of the paired TOST at ``n`` seeds, if the true difference were
    ``gain`` (>= 0) with spread ``sd`` (module docstring)."""
    se, crit = sd / math.sqrt(n), stats.t.ppf(1 - alpha, n - 1)
    return float(stats.t.cdf((margin - gain) / se - crit, n - 1) + stats.t.cdf((margin + gain) / se - crit, n - 1) - 1)


def seeds_label(n: float, unreachable: str) -> str:
    """A seeds-needed figure as a reader sees it: the count, "> 10000" above the cap,
    ``unreachable`` for inf (why no number of seeds would do), "–" for NaN."""
    if math.isnan(n):
        return "–"
    if math.isinf(n):
        return unreachable
    return f"> {SHOWN_SEEDS_CAP}" if n > SHOWN_SEEDS_CAP else str(int(n))


# -- verdict sentences -----------------------------------------------------------------

def in_units(value: float, points: bool) -> str:
    """A margin as a reader reads it: accuracy 0.05 -> "5 points", else the plain value."""
    if points:
        amount = f"{100 * value:.1f}".rstrip("0").rstrip(".")
        return f"{amount} point" + ("" if amount == "1" else "s")
    return f"{value:g}"


def _cannot_tell(needed: float, unreachable: str, power: float) -> str:
    label = seeds_label(needed, unreachable)
    if math.isnan(needed):
        return "cannot tell"
    if math.isinf(needed):
        return f"cannot tell ({label})"
    return f"cannot tell (about {label} seeds at {100 * power:.0f}% power)"


def superiority_verdict(estimate: float, p_adjusted: float, direction: str, alpha: float,
                        needed: float, power: float) -> str:
    """"A better than B", "B better than A", or "cannot tell (about N seeds at 80% power)"."""
    sign = _sign(direction)
    if math.isnan(p_adjusted):
        return "cannot tell (too few runs)"
    if p_adjusted < alpha and estimate != 0:
        return "A better than B" if sign * estimate > 0 else "B better than A"
    return _cannot_tell(needed, NO_DIFFERENCE, power)


def non_inferiority_verdict(p_adjusted: float, alpha: float, margin: float, needed: float, power: float,
                            points: bool) -> str:
    """"A non-inferior to B within 5 points", or why not."""
    if math.isnan(p_adjusted):
        return "cannot tell (too few runs)"
    if p_adjusted < alpha:
        return f"A non-inferior to B within {in_units(margin, points)}"
    return _cannot_tell(needed, f"A observed more than {in_units(margin, points)} worse", power)


def equivalence_verdict(p_adjusted: float, alpha: float, margin: float, needed: float, power: float,
                        points: bool) -> str:
    """"equivalent within ±5 points", or why not."""
    if math.isnan(p_adjusted):
        return "cannot tell (too few runs)"
    if p_adjusted < alpha:
        return f"equivalent within ±{in_units(margin, points)}"
    return _cannot_tell(needed, f"observed difference beyond ±{in_units(margin, points)}", power)
