"""Where the default pipeline's time goes, per flagged image: the parts of the object extent and the rest.

Issue #12 asks for the default's seconds per image to be at most 1.3× those of the pipeline it was filed
against (``bench/extent_baseline.py`` measures the ratio). This script says where the time goes, so that
a change aimed at the ratio can be aimed at the right part. It runs the default pipeline on
``bench/extent.py``'s benchmark images with the cards its ``train`` command wrote, one torch thread by
default (as ``extent_baseline.py``), and times these disjoint parts of each flagged image's run with
wrappers around the functions that do them::

    python bench/extent_time.py --archs resnet18 mobilenet_v3_small --seeds 11 --n 40 \\
        --plot docs/img/extent-time.png --json time.json

* the pipeline outside the extent (segmentation, attribution, search, style, verification, output);
* in the extent: *scoring candidates* (composing them at the working size, resizing them for the model,
  the forward passes), *full-size checks* (the delivered image the pipeline will judge), the *figure
  search* of the complete step (of which its Felzenszwalb cut) and the *second look* (classifying the
  tiles, and whole runs on the unsafe ones, everything in them included); the rest of the extent (label
  maps, adjacency, colour groups).

Only the flagged images count (a safe image never reaches the extent). The images classified per
flagged image are the pipeline's own count (search and extent); a second table splits it by the step that
asked for them (:data:`STEPS`: the search, then the extent's own count of each of its steps; the first and the
last verdict on the image, one classification each, are not in it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

#: The steps a flagged image's classifications are counted under: the search, then the extent's steps
#: (``ExtentOutcome.evaluated_by_step``; "prune" with its second complete step, "look" with its runs).
STEPS = ("search", "split", "closure", "margin", "trim", "complete", "prune", "look")

PARTS = ("outside the extent", "scoring candidates", "full-size checks", "figure search: Felzenszwalb",
         "figure search: the rest", "second look", "rest of the extent")


class Clock:
    """Seconds spent in wrapped functions, each counted only when called directly from its ``parent`` (the
    wrapped function running when it is called; None: none), so that the parts do not overlap: the second
    look's whole runs count as the second look, not as the extent's other parts."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.stack: list[str] = []

    def _add(self, name: str, seconds: float) -> None:
        self.spent[name] = self.spent.get(name, 0.0) + seconds
        self.calls[name] = self.calls.get(name, 0) + 1

    def _counts(self, parent: str | None) -> bool:
        return (self.stack[-1] if self.stack else None) == parent

    def wrap(self, name: str, fn: Callable[..., Any], parent: str | None) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            counts = self._counts(parent)
            self.stack.append(name if counts else "")  # (what an uncounted call calls is not counted either)
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.stack.pop()
                if counts:
                    self._add(name, time.perf_counter() - t)
        return timed

    def wrap_generator(self, name: str, fn: Callable[..., Iterator[Any]], parent: str) -> Callable[..., Iterator[Any]]:
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            inner = fn(*args, **kwargs)
            while True:
                counts = self._counts(parent)
                self.stack.append(name if counts else "")
                t = time.perf_counter()
                try:
                    item = next(inner)
                except StopIteration:
                    return
                finally:
                    self.stack.pop()
                    if counts:
                        self._add(name, time.perf_counter() - t)
                yield item
        return timed


def timed_graph(clock: Clock, build: Callable[..., Any], name: str, parent: str) -> Callable[..., Any]:
    """``build`` (:func:`veil.segment.graph.felzenszwalb_graph`) timed as ``name``: the graph's making and
    each cut made of it."""
    timed_build = clock.wrap(name, build, parent)

    def made(*args: Any, **kwargs: Any) -> Any:
        return clock.wrap(name, timed_build(*args, **kwargs), parent)
    return made


class StepCounts:
    """Wraps the pipeline's ``extend`` to keep the outcome of its outermost call: the second look runs the
    pipeline on tiles, and so calls ``extend`` again from inside it, but the outermost call returns last."""

    def __init__(self, extend: Callable[..., Any]) -> None:
        self.extend = extend
        self.last: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.last = self.extend(*args, **kwargs)
        return self.last

    def take(self) -> Any:
        """The outermost outcome since the last take (None: the image reached no extent)."""
        out, self.last = self.last, None
        return out


def by_step(n_evaluated: int, outcome: Any) -> dict[str, int]:
    """A run's ``n_evaluated`` split over :data:`STEPS`: what the extent's ``outcome`` (None: none ran) did
    not classify is the search's."""
    counts = dict.fromkeys(STEPS, 0)
    if outcome is not None:
        for step, k in outcome.evaluated_by_step.items():
            counts[step] = counts.get(step, 0) + int(k)
        counts["search"] = int(n_evaluated) - int(outcome.n_evaluated)
    else:
        counts["search"] = int(n_evaluated)
    return counts


def profile(arch: str, seeds: list[int], n: int, threads: int, *, photo: bool = False) -> dict[str, Any]:
    import extent as bx
    import torch

    import veil.counterfactual.extent as ext
    import veil.segment.figures as figures
    from veil.classify import load_classifier
    from veil.pipeline import SafeguardConfig, Safeguarder

    torch.set_num_threads(threads)
    clf = load_classifier(str(bx.card_path(arch)))
    sg = Safeguarder(SafeguardConfig(models=(clf,), rationale=None), classifiers=[clf])
    items = [it for s in seeds for it in bx.benchmark_set(s, n, photo=photo)]
    sg.run(items[0]["image"])  # untimed: compilation and the first forward pass

    clock = Clock()
    import veil.segment.graph as graph  # (the figure search imports its Felzenszwalb graph from here per call)

    pipeline_mod = sys.modules["veil.pipeline"]
    saved = (pipeline_mod.extend, ext._Work.excess, ext._Work.full_excess, figures.figure_growths,  # type: ignore[attr-defined]
             graph.felzenszwalb_graph, Safeguarder._look, Safeguarder.unsafe_scores)
    counter = StepCounts(saved[0])
    try:
        pipeline_mod.extend = clock.wrap("extent", counter, None)  # type: ignore[attr-defined]
        ext._Work.excess = clock.wrap("scoring candidates", saved[1], "extent")  # type: ignore[method-assign]
        ext._Work.full_excess = clock.wrap("full-size checks", saved[2], "extent")  # type: ignore[method-assign]
        figures.figure_growths = clock.wrap_generator("figure search", saved[3], "extent")
        graph.felzenszwalb_graph = timed_graph(clock, saved[4], "figure search: Felzenszwalb", "figure search")
        Safeguarder._look = clock.wrap("second look", saved[5], "extent")  # type: ignore[method-assign]
        # (the extent classifies the tiles of the second look itself, with the pipeline's scorer)
        Safeguarder.unsafe_scores = clock.wrap("second look: tiles", saved[6], "extent")  # type: ignore[method-assign]
        flagged, total, classified = 0, 0.0, 0
        steps = dict.fromkeys(STEPS, 0)
        for it in items:
            t = time.perf_counter()
            res = sg.run(it["image"])
            secs = time.perf_counter() - t
            outcome = counter.take()
            if res.unsafe:
                flagged += 1
                total += secs
                classified += int(res.n_evaluated)
                for step, k in by_step(res.n_evaluated, outcome).items():
                    steps[step] = steps.get(step, 0) + k
    finally:
        (pipeline_mod.extend, ext._Work.excess, ext._Work.full_excess, figures.figure_growths,  # type: ignore[attr-defined]
         graph.felzenszwalb_graph, Safeguarder._look, Safeguarder.unsafe_scores) = saved
    s = {k: v / max(flagged, 1) for k, v in clock.spent.items()}
    felz = s.get("figure search: Felzenszwalb", 0.0)
    parts = {
        "outside the extent": total / max(flagged, 1) - s.get("extent", 0.0),
        "scoring candidates": s.get("scoring candidates", 0.0),
        "full-size checks": s.get("full-size checks", 0.0),
        "figure search: Felzenszwalb": felz,
        "figure search: the rest": s.get("figure search", 0.0) - felz,
        "second look": s.get("second look", 0.0) + s.get("second look: tiles", 0.0),
    }
    parts["rest of the extent"] = s.get("extent", 0.0) - sum(v for k, v in parts.items() if k != "outside the extent")
    return {"arch": arch, "seeds": seeds, "images": len(items), "flagged": flagged, "threads": threads,
            "seconds": total / max(flagged, 1), "classified": classified / max(flagged, 1), "parts": parts,
            "classified_by_step": {k: v / max(flagged, 1) for k, v in steps.items()}}


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = ["#9e9e9e", "#1f77b4", "#aec7e8", "#d62728", "#ff9896", "#2ca02c", "#c5b0d5"]
    fig, ax = plt.subplots(figsize=(10, 1.6 + 0.5 * len(rows)))
    for i, r in enumerate(rows):
        left = 0.0
        for name, c in zip(PARTS, colours, strict=True):
            v = r["parts"][name]
            ax.barh(i, v, left=left, color=c, label=name if i == 0 else None)
            left += v
    ax.set_yticks(range(len(rows)), [r["arch"] for r in rows])
    threads = rows[0]["threads"]
    ax.set_xlabel(f"seconds per flagged image ({threads} torch thread{'s' if threads != 1 else ''})")
    ax.invert_yaxis()
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=["resnet18", "mobilenet_v3_small"],
                   help="cards trained by `bench/extent.py train` (or card paths)")
    p.add_argument("--seeds", nargs="+", type=int, default=[11])
    p.add_argument("--n", type=int, default=40, help="images per seed")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1, as bench/extent_baseline.py)")
    p.add_argument("--photo", action="store_true",
                   help="the same images made photographic, as bench/extent.py run --photo draws them")
    p.add_argument("--plot", type=Path, help="PNG: one stacked bar per card")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = [profile(a, args.seeds, args.n, args.threads, photo=args.photo) for a in args.archs]
    print("| card | flagged | images classified | s/img | " + " | ".join(PARTS) + " |")
    print("|---" * (4 + len(PARTS)) + "|")
    for r in rows:
        print(f"| {r['arch']} | {r['flagged']} of {r['images']} | {r['classified']:.1f} | {r['seconds']:.3f} | "
              + " | ".join(f"{r['parts'][k]:.3f}" for k in PARTS) + " |")
    print()
    print("| card | images classified | " + " | ".join(STEPS) + " |")
    print("|---" * (2 + len(STEPS)) + "|")
    for r in rows:
        per = r.get("classified_by_step", {})
        print(f"| {r['arch']} | {r['classified']:.1f} | " + " | ".join(f"{per.get(k, 0.0):.1f}" for k in STEPS) + " |")
    if args.plot:
        plot(rows, args.plot)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
