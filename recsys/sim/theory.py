"""Closed forms from queueing theory that the simulator is checked against.

Rates are per second and times in seconds (``lam`` arrivals/s, ``mu`` services/s per server).
Waiting time ``W`` is the time in queue before service starts.

- M/M/c: Erlang C probability of waiting, mean wait, and the exact waiting-time distribution
  ``P(W > t) = C * exp(-(c mu - lam) t)``.
- M/D/1: mean wait and Erlang's (1909) exact waiting-time distribution, evaluated in
  high-precision decimals because its alternating sum cancels badly in floats.
- M/G/1: the Pollaczek-Khinchine mean wait.
- Little's law: ``L = lam * W``.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

from recsys.errors import ConfigError


def _check_stable(lam: float, mu: float, c: int) -> float:
    if lam <= 0 or mu <= 0 or c < 1:
        raise ConfigError(f"need lam > 0, mu > 0 and c >= 1, got lam={lam}, mu={mu}, c={c}")
    rho = lam / (c * mu)
    if rho >= 1.0:
        raise ConfigError(f"utilisation {rho:.3f} >= 1: the queue has no steady state")
    return rho


def erlang_b(c: int, offered_erlangs: float) -> float:
    """Erlang B blocking probability, by the stable recursion B(k) = aB(k-1) / (k + aB(k-1))."""
    b = 1.0
    for k in range(1, c + 1):
        b = offered_erlangs * b / (k + offered_erlangs * b)
    return b


def erlang_c(c: int, lam: float, mu: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (Erlang C)."""
    rho = _check_stable(lam, mu, c)
    a = lam / mu
    b = erlang_b(c, a)
    return b / (1.0 - rho * (1.0 - b))


def mmc_mean_wait(c: int, lam: float, mu: float) -> float:
    """Mean waiting time of M/M/c: ``C / (c mu - lam)``."""
    return erlang_c(c, lam, mu) / (c * mu - lam)


def mmc_wait_cdf(t: float, c: int, lam: float, mu: float) -> float:
    """``P(W <= t)`` for M/M/c."""
    return 1.0 - erlang_c(c, lam, mu) * math.exp(-(c * mu - lam) * max(t, 0.0))


def mmc_wait_quantile(q: float, c: int, lam: float, mu: float) -> float:
    """The ``q``-quantile (0 < q < 1) of the M/M/c waiting time (0 when P(W=0) >= q)."""
    if not 0.0 < q < 1.0:
        raise ConfigError(f"quantile must be in (0, 1), got {q}")
    p_wait = erlang_c(c, lam, mu)
    if 1.0 - q >= p_wait:
        return 0.0
    return math.log(p_wait / (1.0 - q)) / (c * mu - lam)


def mmc_mean_queue_length(c: int, lam: float, mu: float) -> float:
    """Mean number waiting (Little's law on the mean wait)."""
    return lam * mmc_mean_wait(c, lam, mu)


def md1_mean_wait(lam: float, service_s: float) -> float:
    """Mean waiting time of M/D/1: ``rho D / (2 (1 - rho))``."""
    rho = _check_stable(lam, 1.0 / service_s, 1)
    return rho * service_s / (2.0 * (1.0 - rho))


def md1_wait_cdf(t: float, lam: float, service_s: float, digits: int = 60) -> float:
    """``P(W <= t)`` for M/D/1 (Erlang):

    ``(1 - rho) * sum_{k=0}^{floor(t/D)} (lam (k D - t))^k / k! * exp(lam (t - k D))``.
    """
    rho = _check_stable(lam, 1.0 / service_s, 1)
    if t < 0:
        return 0.0
    with localcontext() as ctx:
        ctx.prec = digits
        lam_d, d, t_d = Decimal(lam), Decimal(service_s), Decimal(t)
        total = Decimal(0)
        factorial = Decimal(1)
        for k in range(int(t // service_s) + 1):
            if k:
                factorial *= k
            x = lam_d * (k * d - t_d)
            power = x**k if k else Decimal(1)  # Decimal refuses 0 ** 0
            total += power / factorial * (-x).exp()
        value = (Decimal(1) - Decimal(rho)) * total
    return min(max(float(value), 0.0), 1.0)


def md1_wait_quantile(q: float, lam: float, service_s: float) -> float:
    """The ``q``-quantile of the M/D/1 waiting time, by bisection on the exact CDF."""
    if not 0.0 < q < 1.0:
        raise ConfigError(f"quantile must be in (0, 1), got {q}")
    if md1_wait_cdf(0.0, lam, service_s) >= q:
        return 0.0
    lo, hi = 0.0, service_s
    while md1_wait_cdf(hi, lam, service_s) < q:
        lo, hi = hi, hi * 2.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if md1_wait_cdf(mid, lam, service_s) < q else (lo, mid)
    return (lo + hi) / 2.0


def mg1_mean_wait(lam: float, mean_service_s: float, cv: float) -> float:
    """Pollaczek-Khinchine: ``lam E[S^2] / (2 (1 - rho))`` with ``E[S^2] = m^2 (1 + cv^2)``."""
    rho = _check_stable(lam, 1.0 / mean_service_s, 1)
    second_moment = mean_service_s**2 * (1.0 + cv**2)
    return lam * second_moment / (2.0 * (1.0 - rho))


def littles_law_l(lam: float, mean_time_s: float) -> float:
    """Little's law: mean number in a system = arrival rate x mean time in it."""
    return lam * mean_time_s
