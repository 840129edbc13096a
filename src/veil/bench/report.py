"""Benchmark reports: ``report.json``, ``report.md``, ``report.html`` and PNG charts next to them.

A report is a plain dict (what ``report.json`` holds) with optional lists of rows
under ``effectiveness``, ``robustness`` and ``obfuscation`` (see
:mod:`veil.bench.metrics`, :mod:`veil.bench.attacks`, :mod:`veil.bench.obfuscation`)
plus ``dataset``, ``classifiers``, ``unreadable`` and ``settings``.

Examples
--------
>>> paths = write_report({"effectiveness": rows}, "out/")  # doctest: +SKIP
>>> sorted(paths)  # doctest: +SKIP
['f1_by_category', 'html', 'json', 'md']
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["EFFECTIVENESS_COLUMNS", "OBFUSCATION_COLUMNS", "ROBUSTNESS_COLUMNS", "markdown_table",
           "render_html", "render_markdown", "write_charts", "write_report"]

EFFECTIVENESS_COLUMNS = ("classifier", "category", "source", "n", "accuracy", "precision", "recall", "f1",
                         "auroc", "support_unsafe", "support_safe")
ROBUSTNESS_COLUMNS = ("classifier", "attack", "eps", "norm", "n", "clean_accuracy", "robust_accuracy", "note")
OBFUSCATION_COLUMNS = ("table", "attribution", "segmentation", "search", "n", "n_flagged", "cf_rate", "depth",
                       "obfuscated_fraction", "precision", "recall", "iou", "delivered_safe_rate",
                       "seconds_per_image")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table of ``columns`` (missing values show as ``–``).

    Examples
    --------
    >>> print(markdown_table([{"a": 1, "b": 0.5}], ["a", "b"]))
    | a | b |
    |---|---|
    | 1 | 0.500 |
    """
    cols = [c for c in columns if any(c in r for r in rows)] or list(columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines)


def _html_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cols = [c for c in columns if any(c in r for r in rows)] or list(columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def write_charts(report: dict[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Save the report's charts as PNG files in ``out_dir``; returns ``{chart name: path}``.

    Charts: ``f1_by_category`` and ``f1_by_source`` (effectiveness), ``robustness``
    (robust accuracy per attack and ε) and ``obfuscation`` (the grid's CF rate and IoU).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def grouped(name: str, title: str, groups: list[str], series: dict[str, list[float]], ylabel: str) -> None:
        fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(groups) * max(1, len(series)) ** 0.5 + 2), 3.6))
        width = 0.8 / max(len(series), 1)
        x = np.arange(len(groups))
        for i, (label, values) in enumerate(series.items()):
            ax.bar(x + i * width - 0.4 + width / 2, np.nan_to_num(values, nan=0.0), width, label=label)
        ax.set_xticks(x, groups, rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if series:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[name] = path

    eff = report.get("effectiveness") or []
    classifiers = list(dict.fromkeys(r["classifier"] for r in eff))
    cats = sorted({r["category"] for r in eff if r["source"] == "all" and r["category"] != "all"}) + ["all"]
    if eff:
        series = {c: [next((_num(r["f1"]) for r in eff if r["classifier"] == c and r["category"] == k
                            and r["source"] == "all"), float("nan")) for k in cats] for c in classifiers}
        grouped("f1_by_category", "F1 (unsafe = positive) per category", cats, series, "F1")
        kinds = sorted({r["source"] for r in eff if r["source"] != "all"})
        if kinds:
            series = {c: [next((_num(r["f1"]) for r in eff if r["classifier"] == c and r["category"] == "all"
                                and r["source"] == k), float("nan")) for k in kinds] for c in classifiers}
            grouped("f1_by_source", "F1: real vs AI-generated", kinds, series, "F1")

    rob = [r for r in report.get("robustness") or [] if r.get("robust_accuracy") is not None]
    if rob:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for c in dict.fromkeys(r["classifier"] for r in rob):
            for a in dict.fromkeys(r["attack"] for r in rob):
                pts = sorted((r["eps"], r["robust_accuracy"]) for r in rob
                             if r["classifier"] == c and r["attack"] == a)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{c} / {a}")
        epss = sorted({r["eps"] for r in rob})
        if len(epss) > 1 and epss[0] > 0:
            ax.set_xscale("log")
        ax.set_xlabel("ε")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(-0.02, 1.05)
        ax.set_title("Robust accuracy per attack and ε")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths["robustness"] = out / "robustness.png"
        fig.savefig(paths["robustness"], dpi=110)
        plt.close(fig)

    obf = report.get("obfuscation") or []
    if obf:
        labels = [f"{r['attribution']}/{r['segmentation']}/{r['search']}" for r in obf]
        grouped("obfuscation", "Obfuscation: counterfactual rate and IoU", labels,
                {"CF rate": [_num(r.get("cf_rate")) for r in obf], "IoU": [_num(r.get("iou")) for r in obf],
                 "delivered safe": [_num(r.get("delivered_safe_rate")) for r in obf]}, "share")
    return paths


def _sections(report: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], Sequence[str], list[str]]]:
    return [
        ("Effectiveness", report.get("effectiveness") or [], EFFECTIVENESS_COLUMNS, ["f1_by_category", "f1_by_source"]),
        ("Robustness", report.get("robustness") or [], ROBUSTNESS_COLUMNS, ["robustness"]),
        ("Obfuscation", report.get("obfuscation") or [], OBFUSCATION_COLUMNS, ["obfuscation"]),
    ]


def _header(report: dict[str, Any]) -> list[tuple[str, str]]:
    ds = report.get("dataset") or {}
    items = []
    if ds:
        items.append(("dataset", f"{ds.get('root', ds.get('name', ''))} ({ds.get('layout', '?')}, "
                                 f"{ds.get('n', '?')} images: {ds.get('unsafe', '?')} unsafe, "
                                 f"{ds.get('safe', '?')} safe)"))
    for c in report.get("classifiers") or []:
        cov = c.get("coverage")
        items.append((f"classifier {c.get('name')}", f"threshold {c.get('threshold')}; covers "
                      + (", ".join(cov) if cov else "all categories")))
    if report.get("unreadable") is not None:
        items.append(("unreadable images", str(len(report["unreadable"]))))
    if report.get("command"):
        items.append(("command", str(report["command"])))
    return items


def render_markdown(report: dict[str, Any], charts: dict[str, Path] | None = None) -> str:
    """The report as Markdown (charts linked by file name)."""
    charts = charts or {}
    lines = [f"# {report.get('title', 'Veil benchmark report')}", ""]
    lines += [f"- **{k}**: {v}" for k, v in _header(report)]
    for title, rows, cols, chart_names in _sections(report):
        if not rows:
            continue
        lines += ["", f"## {title}", ""]
        lines += [f"![{n}]({charts[n].name})" for n in chart_names if n in charts]
        lines += ["", markdown_table(rows, cols)]
    bad = report.get("unreadable") or []
    if bad:
        lines += ["", "## Unreadable images", ""] + [f"- `{b['id']}`: {b['error']}" for b in bad[:50]]
        if len(bad) > 50:
            lines.append(f"- … and {len(bad) - 50} more (see report.json)")
    return "\n".join(lines) + "\n"


def render_html(report: dict[str, Any], charts: dict[str, Path] | None = None) -> str:
    """The report as one self-contained-looking HTML page (charts referenced by file name)."""
    charts = charts or {}
    title = html.escape(str(report.get("title", "Veil benchmark report")))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 7px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}"
        "img{max-width:100%;margin:0.5em 1em 0.5em 0}</style></head><body>",
        f"<h1>{title}</h1><ul>",
    ]
    parts += [f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in _header(report)]
    parts.append("</ul>")
    for sec, rows, cols, chart_names in _sections(report):
        if not rows:
            continue
        parts.append(f"<h2>{html.escape(sec)}</h2>")
        parts += [f"<img src='{html.escape(charts[n].name)}' alt='{html.escape(n)}'>"
                  for n in chart_names if n in charts]
        parts.append(_html_table(rows, cols))
    bad = report.get("unreadable") or []
    if bad:
        parts.append("<h2>Unreadable images</h2><ul>")
        parts += [f"<li><code>{html.escape(b['id'])}</code>: {html.escape(b['error'])}</li>" for b in bad[:200]]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _jsonable(obj.item())
    return obj


def write_report(report: dict[str, Any], out_dir: str | os.PathLike[str], *, charts: bool = True) -> dict[str, Path]:
    """Write ``report.json``, ``report.md``, ``report.html`` and the charts into ``out_dir``.

    Returns
    -------
    dict
        ``{"json", "md", "html", <chart names>: path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean = _jsonable(report)
    chart_paths = write_charts(clean, out) if charts else {}
    paths: dict[str, Path] = {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(clean, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["md"].write_text(render_markdown(clean, chart_paths), encoding="utf-8")
    paths["html"].write_text(render_html(clean, chart_paths), encoding="utf-8")
    return {**paths, **chart_paths}
