"""Time the default extent against the pipeline issue #12 was filed against, on the same images.

Issue #12 asks for the new default's seconds per image to be at most 1.3× *today's default*: the
pipeline as it was when the issue was filed (commit ``6df7c81``, 2026-11-22; no extent stage, so
the paper's minimal counterfactual, and the search at full resolution). ``bench/extent.py run``
compares with ``minimal`` in today's code, which shares every later speed-up of the search. This
script times both, and the old pipeline itself, each in a process of its own (the old ``veil``
package is imported from its checkout), alternating the order over ``--passes``::

    git worktree add /tmp/veil-6df7c81 6df7c81          # the pipeline the issue was filed against
    python bench/extent_baseline.py --baseline /tmp/veil-6df7c81 --archs resnet18 mobilenet_v3_small \\
        --seeds 2024 2025 --n 40 --json baseline.json

The images are ``bench/extent.py``'s benchmark set (with ``--photo``, made photographic as ``run --photo``
makes them) and the cards its ``train`` command wrote. Each
process times ``Safeguarder.run`` per image with one torch thread, after one untimed run (numba's
compilation, the first forward pass); only the images its model flags count, as in ``run``.

On a shared machine whose speed drifts over minutes, the ratio of two pipelines timed one after the other
moves with the drift. ``--paired`` runs the filed default and the object extent at the same time instead,
each in its own process pinned to its own CPU (the CPUs swapped each pass, so neither keeps the faster one),
and ``minimal`` after them alone: the two then share whatever the machine does meanwhile (and its memory
bandwidth, which slows both a little). It needs two CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ("baseline", "minimal", "object")


def child(src: str, card: str, extent: str, items_path: str, out: str, threads: int, cpu: int = -1,
          options: str = "") -> None:
    """Time one pipeline (``extent`` "baseline": that checkout's default) over the pickled images (on CPU
    ``cpu`` alone if it is not negative; ``options``: JSON extent options of the object extent)."""
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    sys.path.insert(0, src)
    import numpy as np
    import torch

    import veil
    from veil.classify import load_classifier
    from veil.pipeline import SafeguardConfig, Safeguarder

    if not Path(veil.__file__).resolve().is_relative_to(Path(src).resolve()):
        raise SystemExit(f"imported veil from {veil.__file__}, not from {src}")
    torch.set_num_threads(threads)
    items = pickle.loads(Path(items_path).read_bytes())
    # (several cards, joined by +: one pipeline with all, named as bench/extent.py's load_cards names them; the
    # child imports the veil under test, so it cannot import that module, which imports today's)
    clfs = [load_classifier(c) for c in card.split("+")]
    if len(clfs) > 1:  # (every benchmark card is named "model" by its file: a pipeline needs them apart)
        for c, clf in zip(card.split("+"), clfs, strict=True):
            clf.name = Path(c).parent.name
    kw: dict[str, Any] = {} if extent == "baseline" else {"extent": extent}
    if extent == "object" and options:
        kw["extent_options"] = json.loads(options)
    sg = Safeguarder(SafeguardConfig(models=tuple(clfs), rationale=None, **kw), classifiers=clfs)
    sg.run(items[0]["image"])  # untimed: compilation and the first forward pass
    timed = []
    for it in items:
        t = time.perf_counter()
        timed.append((it, sg.run(it["image"]), time.perf_counter() - t))
    rows = []
    for it, res, secs in timed:
        if res.unsafe:
            mask, gt = np.asarray(res.mask, bool), it["mask"]
            rows.append({"id": it["id"], "seconds": secs, "found": bool(res.counterfactual_found),
                         "fail_closed": bool(res.fail_closed), "recall": float((mask & gt).sum() / gt.sum()),
                         "ratio": float(mask.sum() / gt.sum())})
    Path(out).write_text(json.dumps(rows))


def summarize(runs: dict[str, list[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One row per pipeline over the images every pipeline flagged: mean seconds per pass and over all
    passes, the ratio to the baseline's and to minimal's mean, and recall and area/GT where a counterfactual
    was found (a fully obscured image hides everything: not a counterfactual)."""
    import numpy as np

    ids = set.intersection(*({r["id"] for r in p} for passes in runs.values() for p in passes))
    mean_s = {name: float(np.mean([r["seconds"] for p in passes for r in p if r["id"] in ids]))
              for name, passes in runs.items()}
    out = []
    for name, passes in runs.items():
        found = [r for r in passes[0] if r["id"] in ids and r["found"]]
        rec = np.array([r["recall"] for r in found])
        rat = np.array([r["ratio"] for r in found])
        out.append({
            "pipeline": name, "images": len(ids),
            "seconds_per_pass": [float(np.mean([r["seconds"] for r in p if r["id"] in ids])) for p in passes],
            "seconds": mean_s[name],
            "vs_baseline": mean_s[name] / mean_s["baseline"] if "baseline" in mean_s else float("nan"),
            "vs_minimal": mean_s[name] / mean_s["minimal"] if "minimal" in mean_s else float("nan"),
            "found": len(found),
            "recall": float(rec.mean()) if found else float("nan"),
            "recall_50": float(np.mean(rec >= 0.5)) if found else float("nan"),
            "ratio_mean": float(rat.mean()) if found else float("nan"),
            "ratio_median": float(np.median(rat)) if found else float("nan"),
        })
    return out


def table(model: str, rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in rows:
        per = " / ".join(f"{s:.2f}" for s in r["seconds_per_pass"])
        lines.append(f"| {model} | {r['pipeline']} | {r['images']} | {per} | {r['seconds']:.2f} | "
                     f"{r['vs_baseline']:.2f}× | {r['vs_minimal']:.2f}× | {r['found']} | {r['recall']:.3f} | "
                     f"{100 * r['recall_50']:.0f} % | {r['ratio_mean']:.2f} | {r['ratio_median']:.2f} |")
    return lines


HEADER = ("| model | pipeline | images | s/img per pass | s/img | vs the filed default | vs minimal | "
          "counterfactual | recall mean | ≥ 0.5 | area/GT mean | median |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, type=Path,
                   help="a checkout of the pipeline to compare with (its src/ holds the veil package)")
    p.add_argument("--archs", nargs="+", default=["resnet18", "mobilenet_v3_small"],
                   help="cards trained by `bench/extent.py train` (or card paths); A+B: cards A and B together, "
                        "in one pipeline")
    p.add_argument("--seeds", nargs="+", type=int, default=[2024, 2025])
    p.add_argument("--n", type=int, default=40, help="images per seed")
    p.add_argument("--data", choices=["objects", "kit"], default="objects",
                   help="the object family of bench/extent.py's images (kit: for cards trained with "
                        "`train --data kit`)")
    p.add_argument("--photo", action="store_true",
                   help="the same images made photographic, as bench/extent.py run --photo draws them")
    p.add_argument("--passes", type=int, default=2, help="each pipeline this many times, the order reversed each pass")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--paired", action="store_true",
                   help="run the filed default and the object extent at once, each pinned to its own CPU")
    p.add_argument("--extent-options", default="",
                   help="JSON options of the object extent (a preset to time; the filed default and minimal as ever)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    src = a.baseline / "src"
    if not (src / "veil" / "pipeline.py").is_file():
        p.error(f"{a.baseline} holds no src/veil/pipeline.py: give the root of a veil checkout")
    if a.passes < 1:
        p.error("--passes must be at least 1")
    try:
        options = json.loads(a.extent_options) if a.extent_options else {}
    except json.JSONDecodeError as exc:
        p.error(f"--extent-options is not JSON ({exc})")
    if not isinstance(options, dict):
        p.error(f"--extent-options must be a JSON object of options, got {a.extent_options}")
    cpus = sorted(os.sched_getaffinity(0))
    if a.paired and len(cpus) < 2:
        p.error(f"--paired needs two CPUs; this process may use {len(cpus)}")
    sys.path.insert(0, str(ROOT / "bench"))
    import extent as bx  # (imports today's veil: only for the images and the cards)

    cards: dict[str, str] = {}  # (arch → its card paths, joined by + when several run together)
    for arch in a.archs:
        ones = [one for one in arch.split("+") if one]
        if not ones:
            p.error(f"no card named in {arch!r}")
        paths = [bx.card_path(one) for one in ones]
        for one, path in zip(ones, paths, strict=True):
            if not path.is_file():
                p.error(f"no card {path}: train it with `python bench/extent.py train --arch {one}`")
        if len({bx.card_name(one) for one in ones}) < len(ones):  # (the child names each card by its folder)
            p.error(f"the cards of {arch!r} must have different names (folders)")
        cards[arch] = "+".join(map(str, paths))
    t0 = time.monotonic()
    items = [{"id": it["id"], "image": it["image"], "mask": it["mask"]}
             for seed in a.seeds for it in bx.benchmark_set(seed, a.n, family=a.data, photo=a.photo)]
    print(f"{len(items)} images ({time.monotonic() - t0:.0f} s to draw)", flush=True)
    result: dict[str, Any] = {"command": " ".join(sys.argv), "machine": platform.platform(),
                              "baseline": str(a.baseline), "extent_options": options, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        items_path = Path(tmp) / "items.pkl"
        items_path.write_bytes(pickle.dumps(items))
        env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
        env.pop("PYTHONPATH", None)
        lines: list[str] = []
        lines_ratio: list[str] = []
        for arch, card in cards.items():
            runs: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in PIPELINES}
            for k in range(a.passes):
                # (paired: the filed default and the object extent at once, on CPUs swapped each pass; then minimal)
                groups = ([[("baseline", cpus[k % 2]), ("object", cpus[1 - k % 2])], [("minimal", -1)]] if a.paired
                          else [[(name, -1)] for name in (PIPELINES if k % 2 == 0 else PIPELINES[::-1])])
                for group in groups:
                    t = time.monotonic()
                    procs = []
                    for name, cpu in group:
                        out = Path(tmp) / f"{arch.replace('/', '_')}-{name}-{k}.json"
                        code = str(src if name == "baseline" else ROOT / "src")
                        procs.append((name, cpu, out, subprocess.Popen(
                            [sys.executable, __file__, "--child", code, str(card), name, str(items_path), str(out),
                             str(a.threads), str(cpu), a.extent_options], env=env, cwd=tmp)))
                    for name, cpu, out, proc in procs:
                        if proc.wait() != 0:
                            raise SystemExit(f"{arch} {name} pass {k + 1} failed (exit {proc.returncode})")
                        runs[name].append(json.loads(out.read_text()))
                        on = f" on CPU {cpu}" if cpu >= 0 else ""
                        print(f"{arch} {name} pass {k + 1}{on}: {len(runs[name][-1])} flagged, "
                              f"{time.monotonic() - t:.0f} s", flush=True)
            rows = summarize(runs)
            result["models"][arch] = {"rows": rows, "per_image": runs, "paired": a.paired}
            lines += table(arch, rows)
            per_pass = {r["pipeline"]: r["seconds_per_pass"] for r in rows}
            lines_ratio.append(f"{arch}: the object extent against the filed default, per pass: " + " / ".join(
                f"{o / b:.2f}×" for o, b in zip(per_pass["object"], per_pass["baseline"], strict=True)))
    print(HEADER)
    print("\n".join(lines))
    print("\n" + "\n".join(lines_ratio))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    if len(sys.argv) == 10 and sys.argv[1] == "--child":
        child(*sys.argv[2:7], int(sys.argv[7]), int(sys.argv[8]), sys.argv[9])
    else:
        main()
