import itertools
import math

import numpy as np
import pytest

from veil.counterfactual import SEARCHES, is_safe, search
from veil.counterfactual.search import greedy, greedy_linear, prefix_budget
from veil.errors import InvalidParameterError, UnknownNameError

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is in the dev extra
    given = None


def make_eval(needed: set[int], calls: list[int]):
    """Unsafe score 0.9 until every region in ``needed`` is obfuscated, then 0.1 (one model)."""

    def evaluate(cands):
        calls.append(len(cands))
        return np.array([[0.1 if needed <= set(c) else 0.9] for c in cands])

    return evaluate


@pytest.mark.parametrize("name", SEARCHES.names())
def test_every_strategy_finds_a_planted_counterfactual(name):
    calls: list[int] = []
    areas = np.full(12, 1 / 12)
    out = search(list(range(12)), make_eval({0, 2}, calls), [0.5], name, max_depth=10, batch_size=4, areas=areas)
    assert out.found
    assert {0, 2} <= set(out.selected)
    assert out.scores is not None and out.scores[0] <= 0.5
    assert out.n_evaluated == sum(calls)
    assert max(calls) <= 4  # batches respected


def test_linear_reference_batches_grow_from_two_to_batch_size():
    calls: list[int] = []
    out = greedy_linear(list(range(30)), make_eval({29}, calls), np.array([0.5]), max_depth=30, batch_size=8)
    assert out.found and calls == [2, 4, 8, 8, 8] and out.selected == tuple(range(30))


@pytest.mark.parametrize(
    ("needed", "probes"),
    [
        (0, [1]),
        (1, [1, 2]),
        (2, [1, 2, 4, 3]),
        (4, [1, 2, 4, 8, 6, 5]),
        (7, [1, 2, 4, 8, 6, 7]),
        (9, [1, 2, 4, 8, 10, 9]),
    ],
)
def test_greedy_gallops_then_bisects(needed, probes):
    # Region `needed` (0-based rank) makes the image safe: prefixes 1, 2, 4, 8, 10 (max_depth)
    # are probed until one succeeds, then bisection between the last failure and it.
    calls: list[int] = []
    out = search(list(range(30)), make_eval({needed}, calls), [0.5], "greedy", max_depth=10, batch_size=8)
    assert out.found and out.selected == tuple(range(needed + 1))
    assert [len(t["regions"]) for t in out.trace] == probes
    assert out.n_evaluated == len(calls) <= prefix_budget(10) == 6
    assert set(calls) == {1}  # one candidate per round: each probe depends on the last verdict


def test_greedy_deep_search_stays_within_budget():
    # max_depth 30: 7 evaluations at most, so after 1 and 2 the probes must jump further.
    calls: list[int] = []
    out = search(list(range(40)), make_eval({29}, calls), [0.5], "greedy", max_depth=30)
    assert out.found and out.selected == tuple(range(30))
    assert out.n_evaluated == len(calls) <= prefix_budget(30) == 7
    assert [len(t["regions"]) for t in out.trace][:2] == [1, 2]


def test_greedy_takes_prefixes_and_stops_at_first_success():
    calls: list[int] = []
    out = search([5, 3, 7, 1, 0], make_eval({3}, calls), [0.5], "greedy", batch_size=1)
    assert out.selected == (5, 3)
    assert out.n_evaluated == 2


def test_subset_finds_fewest_regions_and_greedy_does_not():
    # Only region 7 (ranked third) matters: greedy needs 3 regions, subset finds the single one.
    g = search([5, 3, 7, 1], make_eval({7}, []), [0.5], "greedy", batch_size=8)
    s = search([5, 3, 7, 1], make_eval({7}, []), [0.5], "subset", batch_size=8)
    assert g.selected == (5, 3, 7)
    assert s.selected == (7,)


def test_csra_prefers_small_area():
    areas = np.array([0.6, 0.05, 0.05, 0.05])

    def evaluate(cands):
        return np.array([[0.1 if (0 in c or {1, 2} <= set(c)) else 0.9] for c in cands])

    out = search([0, 1, 2, 3], evaluate, [0.5], "csra", areas=areas)
    assert out.found and set(out.selected) == {1, 2}
    assert out.n_evaluated == 15  # every non-empty subset of 4 regions


def test_not_found_within_depth():
    out = search(list(range(20)), make_eval({15}, []), [0.5], "greedy", max_depth=10)
    assert not out.found
    assert out.n_evaluated == 5  # prefixes 1, 2, 4, 8 and 10
    assert [len(t["regions"]) for t in out.trace] == [1, 2, 4, 8, 10]
    lin = greedy_linear(list(range(20)), make_eval({15}, []), np.array([0.5]), max_depth=10)
    assert not lin.found and lin.n_evaluated == 10


def test_not_found_returns_the_lowest_scoring_prefix():
    def evaluate(cands):  # scores 0.9, 0.7, 0.8, 0.95, … by prefix length: never safe
        table = {1: 0.9, 2: 0.7, 4: 0.8, 8: 0.95, 10: 0.99}
        return np.array([[table[len(c)]] for c in cands])

    out = greedy(list(range(12)), evaluate, np.array([0.5]), max_depth=10)
    assert not out.found and out.selected == (0, 1) and out.scores is not None and out.scores[0] == 0.7


def test_prefix_budget():
    assert [prefix_budget(d) for d in (1, 2, 3, 4, 5, 8, 9, 10, 16, 17)] == [2, 3, 4, 4, 5, 5, 6, 6, 6, 7]
    for d in range(1, 300):
        assert prefix_budget(d) == math.ceil(math.log2(d)) + 2
    with pytest.raises(InvalidParameterError, match="max_depth"):
        prefix_budget(0)


def _table_eval(safe: list[bool], calls: list[int]):
    """Two models; prefix k is safe for both exactly when ``safe[k - 1]``."""

    def evaluate(cands):
        calls.append(len(cands))
        return np.array([[0.2, 0.3] if safe[len(c) - 1] else [0.2, 0.8] for c in cands])

    return evaluate


def _check_against_linear(safe: list[bool], max_depth: int) -> None:
    n = len(safe)
    order = list(range(100, 100 + n))
    thr = np.array([0.5, 0.5])
    calls: list[int] = []
    out = greedy(order, _table_eval(safe, calls), thr, max_depth=max_depth)
    depth = min(max_depth, n)
    assert out.n_evaluated == sum(calls) == len(out.trace) <= prefix_budget(max_depth)
    lengths = [len(t["regions"]) for t in out.trace]
    assert len(set(lengths)) == len(lengths)  # no prefix is classified twice
    assert all(1 <= k <= depth and t["regions"] == order[:k] for k, t in zip(lengths, out.trace, strict=True))
    if out.found:
        k = len(out.selected)
        assert out.selected == tuple(order[:k]) and safe[k - 1]
        # the prefix one shorter was classified and failed (or is the flagged image itself)
        assert k == 1 or (k - 1 in lengths and not safe[k - 2])
    else:
        assert depth in lengths and not safe[depth - 1]
    ref = greedy_linear(order, _table_eval(safe, []), thr, max_depth=max_depth)
    monotone = all(safe[i] <= safe[i + 1] for i in range(depth - 1))
    if monotone:
        assert out.found == ref.found
        if out.found:
            assert out.selected == ref.selected
            np.testing.assert_array_equal(out.scores, ref.scores)
    elif out.found is False:
        # a non-monotone profile can hide successes between the probes, never the last prefix
        assert not safe[depth - 1]


@pytest.mark.parametrize("n", range(1, 11))
def test_greedy_on_every_profile_up_to_depth_10(n):
    """Exhaustive: every safe/unsafe pattern of n prefixes, at max_depth n and a deeper one."""
    for pattern in itertools.product([False, True], repeat=n):
        _check_against_linear(list(pattern), n)
        _check_against_linear(list(pattern), n + 7)


def test_greedy_monotone_profiles_at_depth_up_to_200():
    for depth in range(1, 201):
        for first in {1, 2, depth // 3 + 1, depth // 2 + 1, depth, depth + 1}:
            safe = [k >= first for k in range(1, depth + 1)]
            _check_against_linear(safe, depth)


if given is not None:

    @settings(max_examples=300, deadline=None)
    @given(
        data=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=120),
        max_depth=st.integers(1, 130),
        threshold=st.floats(0.05, 0.95),
        monotone=st.booleans(),
    )
    def test_greedy_property(data, max_depth, threshold, monotone):
        """Unsafe scores along the ranking (falling when ``monotone``): same prefix as one at a time."""
        scores = sorted(data, reverse=True) if monotone else data
        safe = [s <= threshold for s in scores]
        _check_against_linear(safe, max_depth)


def test_several_models_must_all_be_safe():
    def evaluate(cands):
        return np.array([[0.1 if 0 in c else 0.9, 0.1 if 1 in c else 0.9] for c in cands])

    out = search([0, 1, 2], evaluate, [0.5, 0.5], "greedy")
    assert out.selected == (0, 1)
    assert is_safe(np.array([[0.1, 0.6]]), np.array([0.5, 0.5])).tolist() == [False]


def test_bad_arguments():
    with pytest.raises(UnknownNameError, match="greedy"):
        search([0], make_eval({0}, []), [0.5], "nope")
    with pytest.raises(InvalidParameterError, match="max_depth"):
        search([0], make_eval({0}, []), [0.5], "greedy", max_depth=0)
