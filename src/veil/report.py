"""``report.html``: a page a moderator can open.

It shows, per image, the verdict, scores, search depth and obfuscated area, and
only the *delivered* image and overlays drawn on it: never the raw unsafe image.
Paths are relative, so the output folder can be moved or zipped as a whole.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:16px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9cfdb;font-size:13px}
.summary{display:flex;gap:12px;padding:16px 24px;flex-wrap:wrap}
.stat{background:#fff;border-radius:8px;padding:10px 16px;box-shadow:0 1px 2px #0002;font-size:13px}
.stat b{display:block;font-size:20px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:16px;padding:0 24px 24px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;overflow:hidden}
.card h2{font-size:14px;margin:0;padding:10px 12px;border-bottom:1px solid #e3e6ec;word-break:break-all}
.imgs{display:flex;gap:4px;padding:8px;background:#fafbfc}
.imgs figure{margin:0;flex:1;text-align:center;min-width:0}.imgs img{width:100%;height:auto;max-height:260px;object-fit:contain}
.imgs figcaption{font-size:11px;color:#667}
.body{padding:8px 12px;font-size:13px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.safe{background:#2e7d32}.obf{background:#ef6c00}.closed{background:#b71c1c}.err{background:#616161}
table{border-collapse:collapse;width:100%;margin-top:6px}td,th{padding:2px 6px;text-align:left;font-size:12px}
th{color:#667;font-weight:500}tr:nth-child(even){background:#f7f8fa}
.rationale{background:#f1f4fb;border-left:3px solid #3f51b5;padding:6px 8px;margin-top:6px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _badge(rec: dict[str, Any]) -> str:
    if rec.get("error") and rec.get("output") is None:
        return '<span class="badge err">error</span>'
    if rec.get("fail_closed"):
        return '<span class="badge closed">unsafe · fully obscured</span>'
    if rec.get("unsafe"):
        return '<span class="badge obf">unsafe · obfuscated</span>'
    return '<span class="badge safe">safe · untouched</span>'


def _top(scores: dict[str, float], n: int = 5) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: -kv[1])[:n]


def _card(rec: dict[str, Any]) -> str:
    parts = [f'<div class="card"><h2>{_badge(rec)} {_e(rec["path"])}</h2>']
    if rec.get("output"):
        figs = [f'<figure><img loading="lazy" src="{_e(rec["output"])}" alt="delivered image">'
                "<figcaption>delivered</figcaption></figure>"]
        for name, p in (rec.get("overlays") or {}).items():
            figs.append(f'<figure><img loading="lazy" src="{_e(p)}" alt="{_e(name)} overlay">'
                        f"<figcaption>{_e(name)} (on delivered image)</figcaption></figure>")
        parts.append(f'<div class="imgs">{"".join(figs)}</div>')
    body = ['<div class="body">']
    if rec.get("error"):
        body.append(f"<p><b>Error:</b> {_e(rec['error'])}</p>")
    if rec.get("note"):
        body.append(f"<p>{_e(rec['note'])}</p>")
    if rec.get("output"):
        depth = rec.get("depth")
        frac = rec.get("obfuscated_fraction") or 0.0
        body.append(
            f"<p>Regions obfuscated: <b>{'–' if depth is None else depth}</b> · "
            f"area obfuscated: <b>{100 * frac:.1f}%</b> · candidates tried: {rec.get('n_evaluated', 0)}</p>"
        )
        regions = rec.get("regions") or []
        if regions:
            counts: dict[str, int] = {}
            for r in regions:
                counts[r.get("reason", "counterfactual")] = counts.get(r.get("reason", "counterfactual"), 0) + 1
            why = ", ".join(f"{n} {_e(k)}" for k, n in counts.items())
            body.append(f"<p>Extent: <b>{_e(rec.get('extent') or '–')}</b> · hidden regions by reason: {why}</p>")
        rows = "".join(
            f"<tr><td>{_e(k)}</td><td>{v:.3f}</td><td>{rec.get('scores_after', {}).get(k, float('nan')):.3f}</td></tr>"
            for k, v in _top(rec.get("scores") or {})
        )
        body.append(f"<table><tr><th>label</th><th>before</th><th>delivered</th></tr>{rows}</table>")
        dets = rec.get("detections") or []
        if dets:
            items = ", ".join(f"{_e(d['label'])} ({d['score']:.2f})" for d in dets[:8])
            body.append(f"<p>Detected: {items}</p>")
    rat = rec.get("rationale")
    if rat and rat.get("text"):
        body.append(f'<div class="rationale"><b>Why:</b> {_e(rat["text"])}</div>')
    body.append("</div>")
    parts.append("".join(body))
    parts.append("</div>")
    return "".join(parts)


def render_report(records: Sequence[dict[str, Any]], *, title: str = "Veil report",
                  info: dict[str, Any] | None = None) -> str:
    """The report page as an HTML string."""
    n = len(records)
    n_err = sum(1 for r in records if r.get("error") and r.get("output") is None)
    n_unsafe = sum(1 for r in records if r.get("unsafe"))
    n_obf = sum(1 for r in records if r.get("counterfactual_found"))
    n_closed = sum(1 for r in records if r.get("fail_closed"))
    depths = [r["depth"] for r in records if r.get("depth") is not None]
    fracs = [r["obfuscated_fraction"] for r in records if r.get("counterfactual_found")]
    stats = [
        ("images", n), ("unsafe", n_unsafe), ("minimally obfuscated", n_obf),
        ("fully obscured (fail closed)", n_closed), ("errors", n_err),
        ("mean depth", f"{sum(depths) / len(depths):.1f}" if depths else "–"),
        ("mean obfuscated area", f"{100 * sum(fracs) / len(fracs):.1f}%" if fracs else "–"),
    ]
    info_line = ""
    if info:
        info_line = " · ".join(f"{_e(k)}: {_e(v)}" for k, v in info.items())
    head = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{_CSS}</style></head><body>")
    top = (f"<header><h1>{_e(title)}</h1><p>{info_line}</p><p>Only delivered (obfuscated) images are shown. "
           "Machine-readable results: <a style='color:#9fc3ff' href='results.jsonl'>results.jsonl</a></p></header>")
    summary = '<div class="summary">' + "".join(
        f'<div class="stat"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in stats) + "</div>"
    cards = '<div class="grid">' + "".join(_card(r) for r in records) + "</div>"
    return head + top + summary + cards + "</body></html>"


def write_report(records: Sequence[dict[str, Any]], out: str | Path, **kwargs: Any) -> Path:
    """Write ``report.html`` into ``out`` and return its path."""
    path = Path(out) / "report.html"
    path.write_text(render_report(records, **kwargs), encoding="utf-8")
    return path
