import numpy as np
import pytest

from veil.counterfactual import SEARCHES, is_safe, search
from veil.errors import InvalidParameterError, UnknownNameError


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


def test_batches_grow_from_two_to_batch_size():
    calls: list[int] = []
    out = search(list(range(30)), make_eval({29}, calls), [0.5], "greedy", max_depth=30, batch_size=8)
    assert out.found and calls == [2, 4, 8, 8, 8]


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
    assert out.n_evaluated == 10


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
