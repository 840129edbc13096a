"""``bench/extent_time.py``: where the default's time goes, in parts that do not overlap."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.bench.conftest import bench_script


@pytest.fixture(scope="module")
def et():
    return bench_script("extent_time")


def test_a_part_counts_only_when_called_from_its_parent(et):
    clock = et.Clock()
    calls = []

    def inner():
        calls.append("inner")
        time.sleep(0.002)

    wrapped_inner = clock.wrap("inner", inner, "outer")

    def outer(n):
        for _ in range(n):
            wrapped_inner()

    def look():  # a whole run inside the second look: its own outer and inner are the look's
        wrapped_outer(1)

    wrapped_outer = clock.wrap("outer", outer, None)
    wrapped_look = clock.wrap("look", look, "outer")

    def extent():
        wrapped_inner()
        wrapped_look()

    wrapped_extent = clock.wrap("outer", extent, None)
    wrapped_extent()
    wrapped_inner()  # (called from nowhere: not a part of the run)
    assert len(calls) == 3
    # only the first inner call counts: the look's came from an outer inside the look, the last from no parent
    assert clock.calls == {"outer": 1, "inner": 1, "look": 1}
    assert clock.spent["inner"] >= 0.002 and clock.spent["look"] >= 0.002
    assert clock.spent["outer"] >= clock.spent["inner"] + clock.spent["look"]


def test_a_generator_part_times_each_item_it_is_asked_for(et):
    clock = et.Clock()

    def items():
        for i in range(3):
            time.sleep(0.002)
            yield i

    gen = clock.wrap_generator("figures", items, "extent")

    def extent():
        return list(gen())

    assert clock.wrap("extent", extent, None)() == [0, 1, 2]
    assert clock.calls["figures"] == 4  # (three items and the end)
    assert clock.spent["figures"] >= 0.006
    assert list(gen()) == [0, 1, 2]  # (outside the extent: yielded, not counted)
    assert clock.calls == {"figures": 4, "extent": 1}
    assert clock.spent["figures"] <= clock.spent["extent"]


def test_the_felzenszwalb_part_wraps_what_the_figure_search_calls(et, monkeypatch):
    # extent_time times the cut by replacing veil.segment.graph.felzenszwalb_graph: the figure search must
    # look it up there when it runs, or the part would read 0 s; the graph's making and each cut count
    import veil.segment.graph as graph
    from veil.segment.figures import attached_figures

    clock = et.Clock()
    monkeypatch.setattr(graph, "felzenszwalb_graph", et.timed_graph(clock, graph.felzenszwalb_graph, "cut", "search"))
    img = np.random.default_rng(0).integers(90, 130, (60, 80, 3)).astype(np.uint8)
    seed = np.zeros((60, 80), bool)
    seed[20:30, 10:20] = True
    clock.wrap("search", lambda: attached_figures(img, seed), None)()
    assert clock.calls["cut"] == 2 and clock.spent["cut"] > 0  # the graph, and one cut of it


@pytest.mark.parametrize("photo", [False, True])
def test_photo_reaches_each_cards_profile(et, monkeypatch, photo):
    # --photo profiles run --photo's images: main hands it to each card's profile (whose drawing takes it on)
    calls = []
    monkeypatch.setattr(et, "profile", lambda arch, seeds, n, threads, photo=False: calls.append((arch, photo)) or {
        "arch": arch, "flagged": 0, "images": 0, "classified": 0.0, "seconds": 0.0, "parts": dict.fromkeys(et.PARTS, 0.0)})
    et.main(["--archs", "a", "b", *(["--photo"] if photo else [])])
    assert calls == [("a", photo), ("b", photo)]


def test_step_counts_keep_the_outermost_extent_and_split_the_rest_to_the_search(et):
    from veil.counterfactual.extent import ExtentOutcome

    def outcome(n: int, by: dict[str, int]) -> ExtentOutcome:
        return ExtentOutcome(np.zeros((2, 2), np.int32), (), (), n, [], by)

    inner, outer = outcome(3, {"closure": 3}), outcome(10, {"closure": 6, "look": 4})

    def extend(nested: bool) -> ExtentOutcome:  # (the second look calls extend again, from inside it)
        if nested:
            counter(False)
            return outer
        return inner

    counter = et.StepCounts(extend)
    assert counter(True) is outer and counter.take() is outer and counter.take() is None
    steps = et.by_step(14, outer)  # the pipeline's count: the search's 4 and the extent's 10
    assert steps == {**dict.fromkeys(et.STEPS, 0), "search": 4, "closure": 6, "look": 4}
    assert et.by_step(5, None) == {**dict.fromkeys(et.STEPS, 0), "search": 5}  # no counterfactual: all the search's
