"""Wall and CPU time of ``veil version`` and ``veil --help``: the shell's start-up.

Runs the installed ``veil`` console script with ``PYTHONPATH`` set to this checkout's ``src``
(and, with ``--before SRC``, to another source tree, e.g. an older commit unpacked with
``git archive <commit> src | tar -x -C /tmp/before``), alternating the commands and the trees
run by run so that both see the same load. Prints min / median / max wall seconds and the
median CPU seconds (user + system) of the child.

    python bench/startup.py --runs 10
    python bench/startup.py --runs 10 --before /tmp/before/src
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (("version",), ("--help",))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--before", type=Path, default=None, help="another source tree (its src/) to time alongside")
    ap.add_argument("--veil", default=shutil.which("veil") or str(Path(sys.executable).with_name("veil")),
                    help="the console script (default: the one next to this Python)")
    args = ap.parse_args()
    trees = {"after": ROOT / "src"}
    if args.before:
        trees = {"before": args.before, **trees}
    wall: dict[tuple[str, str], list[float]] = {(t, " ".join(c)): [] for t in trees for c in COMMANDS}
    cpu: dict[tuple[str, str], list[float]] = {k: [] for k in wall}
    for _ in range(args.runs):
        for cmd in COMMANDS:
            for tree, src in trees.items():
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                subprocess.run([args.veil, *cmd], env={**os.environ, "PYTHONPATH": str(src)},
                               stdout=subprocess.DEVNULL, check=True)
                wall[(tree, " ".join(cmd))].append(time.perf_counter() - t)
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[(tree, " ".join(cmd))].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    print(f"{args.runs} runs each; load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| command | code | wall min | wall median | wall max | CPU median |\n|---|---|---|---|---|---|")
    for (tree, cmd), v in sorted(wall.items(), key=lambda kv: (kv[0][1], kv[0][0] != "before")):
        print(f"| `veil {cmd}` | {tree} | {min(v):.3f} | {statistics.median(v):.3f} | {max(v):.3f} "
              f"| {statistics.median(cpu[(tree, cmd)]):.3f} |")
    print(f"\ncommand: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
