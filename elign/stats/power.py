"""Power of the paired t test, and the smallest difference it detects.

For n pairs whose differences have standard deviation s, the two-sided one-sample t test of mean(d) = 0 at
level alpha rejects when |t| > t_{1-alpha/2, n-1}. If the true mean difference is delta, t follows the noncentral
t distribution with n - 1 degrees of freedom and noncentrality delta sqrt(n) / s, so the power is

    P(T > t_crit) + P(T < -t_crit),   T ~ nct(n - 1, delta sqrt(n) / s)

(exact, not the normal approximation; e.g. n = 34 pairs detect an effect of half an SD with power 0.808, the
value G*Power gives). :func:`detectable_difference` inverts it: the smallest |delta| the test detects with the
given power; for large n it tends to (z_{1-alpha/2} + z_{power}) s / sqrt(n) = 2.80 s / sqrt(n) at 80 %, 0.05.

Planning the number of pairs (:func:`pairs_needed`): the smallest n whose detectable difference is at most a
target. The SD of paired differences follows from the two sets' SDs and the pair correlation r:
s_d^2 = s_a^2 + s_b^2 - 2 r s_a s_b (:func:`paired_sd`).
"""

from __future__ import annotations

import math

from scipy import optimize, stats


def paired_t_power(delta: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t test with ``n`` pairs (NaN below 2 pairs or for sd <= 0)."""
    if n < 2 or not sd > 0 or not math.isfinite(delta):
        return math.nan
    df = n - 1
    t_crit = stats.t.ppf(1 - alpha / 2, df)
    ncp = abs(delta) * math.sqrt(n) / sd
    power = float(stats.nct.sf(t_crit, df, ncp) + stats.nct.cdf(-t_crit, df, ncp))
    if not math.isfinite(power):  # scipy's nct gives NaN for thousands of pairs, where t is normal anyway
        power = float(stats.norm.sf(t_crit - ncp) + stats.norm.cdf(-t_crit - ncp))
    return power


def detectable_difference(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest |mean difference| the paired t test detects with ``power`` (same units as ``sd``; NaN below 2
    pairs or for a non-positive or non-finite sd)."""
    if n < 2 or not (math.isfinite(sd) and sd > 0):
        return math.nan
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise ValueError(f"need 0 < power < 1 and 0 < alpha < 1, got power {power}, alpha {alpha}")
    if power <= alpha:  # the test rejects with probability alpha even at delta = 0
        return 0.0
    upper = sd
    while paired_t_power(upper, sd, n, alpha) < power:
        upper *= 2
    return float(optimize.brentq(lambda d: paired_t_power(d, sd, n, alpha) - power, 0.0, upper, xtol=1e-12 * sd))


def paired_sd(sd_a: float, sd_b: float, r: float) -> float:
    """SD of the differences b - a of pairs with SDs sd_a, sd_b and correlation r."""
    return math.sqrt(max(sd_a**2 + sd_b**2 - 2 * r * sd_a * sd_b, 0.0))


def pairs_needed(sd: float, target: float, alpha: float = 0.05, power: float = 0.8, max_n: int = 100_000) -> int:
    """The smallest n (>= 2) whose detectable difference is at most ``target`` (ValueError past ``max_n``)."""
    if not target > 0:
        raise ValueError(f"target difference must be > 0, got {target}")
    for n in range(2, max_n + 1):
        if detectable_difference(sd, n, alpha, power) <= target:
            return n
    raise ValueError(f"more than {max_n} pairs needed")
