"""Counterfactual search strategies: which regions to obfuscate so every classifier says safe.

A strategy receives the region ids ranked by attribution and an ``evaluate``
callable that scores a *batch* of candidate region sets, returning the unsafe
score of every classifier for every candidate (shape ``(n_candidates,
n_models)``). A candidate is a counterfactual when every score is at or below
its model's threshold. Strategies evaluate candidates in batches and stop at
the first success.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations, islice
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError
from veil.registry import Registry

Candidate = tuple[int, ...]
Evaluate = Callable[[list[Candidate]], np.ndarray]


@dataclass
class SearchOutcome:
    """What a strategy found: the chosen region ids (rank order) and their scores."""

    found: bool
    selected: Candidate
    scores: np.ndarray | None
    n_evaluated: int
    trace: list[dict[str, Any]] = field(default_factory=list)


Strategy = Callable[..., SearchOutcome]

#: name → strategy ``fn(order, evaluate, thresholds, *, max_depth, batch_size, areas) -> SearchOutcome``.
SEARCHES: Registry[Strategy] = Registry("search strategy")


def is_safe(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Row-wise: every model's unsafe score at or below its threshold."""
    return np.all(np.asarray(scores) <= np.asarray(thresholds)[None, :], axis=1)


def _batched(it: Iterable[Candidate], n: int, *, start: int | None = None) -> Iterator[list[Candidate]]:
    """Chunks of ``n`` candidates; with ``start``, chunks grow ``start, 2·start, …`` up to ``n``.

    Growing chunks keep early successes cheap (most images need a few regions) while deep
    searches still run in full batches.
    """
    it = iter(it)
    size = min(start, n) if start else n
    while chunk := list(islice(it, size)):
        yield chunk
        size = min(2 * size, n)


def _first_success(
    candidates: Iterable[Candidate], evaluate: Evaluate, thresholds: np.ndarray, batch_size: int
) -> SearchOutcome:
    n_eval = 0
    trace: list[dict[str, Any]] = []
    best: tuple[float, Candidate, np.ndarray] | None = None
    for chunk in _batched(candidates, batch_size, start=2):
        scores = np.asarray(evaluate(chunk), dtype=np.float64)
        n_eval += len(chunk)
        for cand, row in zip(chunk, scores, strict=True):
            trace.append({"regions": list(cand), "scores": [round(float(s), 6) for s in row]})
        ok = np.flatnonzero(is_safe(scores, thresholds))
        if ok.size:
            i = int(ok[0])
            return SearchOutcome(True, chunk[i], scores[i], n_eval, trace)
        worst = scores.max(axis=1)
        j = int(np.argmin(worst))
        if best is None or worst[j] < best[0]:
            best = (float(worst[j]), chunk[j], scores[j])
    return SearchOutcome(False, best[1] if best else (), best[2] if best else None, n_eval, trace)


def _check(order: Sequence[int], max_depth: int, batch_size: int) -> list[int]:
    if max_depth < 1:
        raise InvalidParameterError(f"max_depth must be at least 1, got {max_depth}")
    if batch_size < 1:
        raise InvalidParameterError(f"batch_size must be at least 1, got {batch_size}")
    return [int(r) for r in order]


def _record(trace: list[dict[str, Any]], cand: Candidate, row: np.ndarray) -> None:
    trace.append({"regions": list(cand), "scores": [round(float(s), 6) for s in row]})


def prefix_budget(max_depth: int) -> int:
    """Most evaluations :func:`greedy` spends on one image: ``⌈log₂ max_depth⌉ + 2``.

    Examples
    --------
    >>> prefix_budget(10), prefix_budget(1), prefix_budget(64)
    (6, 2, 8)
    """
    if max_depth < 1:
        raise InvalidParameterError(f"max_depth must be at least 1, got {max_depth}")
    return int(max_depth - 1).bit_length() + 2


def _next_probe(lo: int, depth: int, remaining: int) -> int:
    """The next prefix length to try when every prefix up to ``lo`` is known (or assumed) to fail.

    Galloping doubles the step (1, 2, 4, 8, … regions) so that shallow counterfactuals cost
    few evaluations, clamped so that whatever the answer the rest fits ``remaining`` evaluations:

    * if the probe succeeds, bisecting the gap ``(lo, probe]`` takes ``⌈log₂ gap⌉`` more, so
      ``gap ≤ 2**(remaining - 1)``;
    * if it fails, the ``depth - probe`` longer prefixes plus "none succeeds" must be told apart
      with ``remaining - 1`` evaluations, so ``depth - probe + 1 ≤ 2**(remaining - 1)``.

    Both hold at once while ``depth - lo + 1 ≤ 2**remaining``, which the budget guarantees.
    """
    half = 1 << (remaining - 1)
    gallop = max(1, lo)
    step = min(max(gallop, depth - lo + 1 - half), half, depth - lo)
    return lo + step


@SEARCHES.decorator("greedy")
def greedy(
    order: Sequence[int],
    evaluate: Evaluate,
    thresholds: np.ndarray,
    *,
    max_depth: int = 10,
    batch_size: int = 8,
    areas: np.ndarray | None = None,
) -> SearchOutcome:
    """The paper's search: the shortest prefix top-1, top-2, … of the ranking that makes every model safe.

    The candidates are nested prefixes of one ranking, so the prefix length is searched
    rather than walked: galloping (1, 2, 4, 8, … regions) until a prefix succeeds, then
    bisection between the longest failing and the shortest succeeding prefix. At most
    :func:`prefix_budget` ``(max_depth) = ⌈log₂ max_depth⌉ + 2`` candidates are classified
    (6 for the default depth 10, against up to 10 one at a time), one per round, because
    each round's probe depends on the previous verdict.

    The prefix returned always succeeds and the prefix one region shorter was classified
    and failed (or is empty: the flagged image itself). Wherever the unsafe scores fall
    monotonically along the ranking (once safe, every longer prefix is safe too) this is
    the first successful prefix, the one a one-at-a-time search returns; otherwise it is
    *a* successful prefix whose predecessor fails, not necessarily the shortest.

    When no prefix within ``max_depth`` succeeds (the full ``max_depth`` prefix is classified
    and fails), ``found`` is False and ``selected`` is the evaluated prefix with the lowest
    worst-model score. ``batch_size`` is accepted for the common strategy signature.

    Examples
    --------
    >>> import numpy as np
    >>> def evaluate(cands):  # safe once region 7 (ranked third) is obfuscated
    ...     return np.array([[0.1 if 7 in c else 0.9] for c in cands])
    >>> out = greedy([9, 8, 7, 6, 3, 2, 1, 0, 4, 5, 10, 11], evaluate, np.array([0.5]))
    >>> out.selected, [len(t["regions"]) for t in out.trace]  # 1, 2 fail; 4 and 3 succeed
    ((9, 8, 7), [1, 2, 4, 3])
    """
    order = _check(order, max_depth, batch_size)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    depth = min(max_depth, len(order))
    trace: list[dict[str, Any]] = []
    if depth == 0:
        return SearchOutcome(False, (), None, 0, trace)
    results: dict[int, np.ndarray] = {}

    def probe(k: int) -> bool:
        cand = tuple(order[:k])
        row = np.asarray(evaluate([cand]), dtype=np.float64)
        if row.ndim != 2 or row.shape[0] != 1:
            raise InvalidParameterError(
                f"evaluate must return one row of scores per candidate, got shape {row.shape} for 1 candidate"
            )
        results[k] = row[0]
        _record(trace, cand, row[0])
        return bool(is_safe(row, thresholds)[0])

    budget = prefix_budget(depth)
    lo, hi = 0, None  # every prefix up to lo fails (0: the flagged image); prefix hi succeeds
    while hi is None and lo < depth:
        k = _next_probe(lo, depth, budget - len(results))
        if probe(k):
            hi = k
        else:
            lo = k
    if hi is None:  # even max_depth regions do not suffice
        best = min(results, key=lambda k: (float(results[k].max()), k))
        return SearchOutcome(False, tuple(order[:best]), results[best], len(results), trace)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(mid):
            hi = mid
        else:
            lo = mid
    return SearchOutcome(True, tuple(order[:hi]), results[hi], len(results), trace)


def greedy_linear(
    order: Sequence[int],
    evaluate: Evaluate,
    thresholds: np.ndarray,
    *,
    max_depth: int = 10,
    batch_size: int = 8,
    areas: np.ndarray | None = None,
) -> SearchOutcome:
    """The one-at-a-time form of :func:`greedy`: prefixes 1, 2, 3, … in growing batches.

    Kept as the reference that tests and ``bench/search_evals.py`` compare :func:`greedy`
    against; not registered.
    """
    order = _check(order, max_depth, batch_size)
    depth = min(max_depth, len(order))
    cands = (tuple(order[:k]) for k in range(1, depth + 1))
    return _first_success(cands, evaluate, np.asarray(thresholds), batch_size)


@SEARCHES.decorator("subset")
def subset(
    order: Sequence[int],
    evaluate: Evaluate,
    thresholds: np.ndarray,
    *,
    max_depth: int = 10,
    batch_size: int = 8,
    areas: np.ndarray | None = None,
) -> SearchOutcome:
    """The authors' published search: at depth n, every subset of the top-n that contains region n.

    Within a depth, smaller subsets come first, so the first success uses the fewest regions.
    """
    order = _check(order, max_depth, batch_size)
    depth = min(max_depth, len(order))

    def gen() -> Iterator[Candidate]:
        for n in range(1, depth + 1):
            head, newest = order[: n - 1], order[n - 1]
            for r in range(0, n):
                for combo in combinations(head, r):
                    yield (*combo, newest)

    return _first_success(gen(), evaluate, np.asarray(thresholds), batch_size)


@SEARCHES.decorator("csra")
def csra(
    order: Sequence[int],
    evaluate: Evaluate,
    thresholds: np.ndarray,
    *,
    max_depth: int = 10,
    batch_size: int = 8,
    areas: np.ndarray | None = None,
    top: int = 8,
    penalties: Sequence[float] = (0.5, 0.75, 0.8),
) -> SearchOutcome:
    """Bethany et al. (2023): all subsets of the top ``top`` regions; minimize unsafe score + area.

    The cost of a subset is its highest unsafe score plus its obfuscated fraction, plus 1
    for each penalty level (0.5, 0.75, 0.8) the fraction exceeds. The cheapest subset that
    makes every model safe wins; every subset is evaluated (there is no early stop).
    """
    order = _check(order, max_depth, batch_size)
    if areas is None:
        raise InvalidParameterError("csra needs areas (the area fraction of each region)")
    areas = np.asarray(areas, dtype=np.float64)
    head = order[: min(int(top), len(order))]
    cands = [c for r in range(1, len(head) + 1) for c in combinations(head, r)]
    n_eval, rows = 0, []
    for chunk in _batched(cands, batch_size):
        rows.append(np.asarray(evaluate(chunk), dtype=np.float64))
        n_eval += len(chunk)
    if not cands:
        return SearchOutcome(False, (), None, 0)
    scores = np.concatenate(rows, 0)
    frac = np.array([areas[list(c)].sum() for c in cands])
    cost = scores.max(axis=1) + frac + sum((frac > p).astype(float) for p in penalties)
    ok = is_safe(scores, np.asarray(thresholds))
    pool = np.flatnonzero(ok) if ok.any() else np.arange(len(cands))
    i = int(pool[np.argmin(cost[pool])])
    trace = [{"regions": list(c), "scores": [round(float(s), 6) for s in row], "cost": round(float(k), 6)}
             for c, row, k in zip(cands, scores, cost, strict=True)]
    return SearchOutcome(bool(ok.any()), cands[i], scores[i], n_eval, trace)


def search(
    order: Sequence[int],
    evaluate: Evaluate,
    thresholds: Sequence[float] | np.ndarray,
    strategy: str = "greedy",
    **options: Any,
) -> SearchOutcome:
    """Run the registered ``strategy``."""
    return SEARCHES.get(strategy)(order, evaluate, np.asarray(thresholds, dtype=np.float64), **options)
