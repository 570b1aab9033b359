"""Text tables and the self-contained HTML report.

`index.html` embeds its CSS, links every figure and sound by a relative, percent-encoded path
and escapes every name (html.escape), so the report directory can be moved, zipped or opened
offline.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any
from urllib.parse import quote

SUMMARY_ROWS = (
    ("lsd", "LSD translated (dB)", "{:.2f}"),
    ("lsd_copy", "LSD copy source (dB)", "{:.2f}"),
    ("lsd_ceiling", "LSD ground truth via GL (dB)", "{:.2f}"),
    ("lsd_oracle", "LSD oracle: true notes, training bank", "{:.2f}"),
    ("lsd_ratio", "LSD ratio translated / copy", "{:.3f}"),
    ("timbre", "timbre: share classified as target", "{:.3f}"),
    ("timbre_copy", "timbre of copy source", "{:.3f}"),
    ("pitch", "raw pitch accuracy (50 cents)", "{:.3f}"),
    ("pitch_copy", "raw pitch accuracy of copy", "{:.3f}"),
    ("pitch_oracle", "raw pitch accuracy of oracle", "{:.3f}"),
    ("content_probe", "probe: instrument from content codes", "{:.3f}"),
    ("content_probe_mlp", "probe (MLP): instrument from content codes", "{:.3f}"),
    ("class_probe", "probe: instrument from class codes", "{:.3f}"),
    ("probe_chance", "probe chance level", "{:.3f}"),
)

PAIR_COLS = (("lsd", "LSD", "{:.2f}"), ("timbre", "timbre", "{:.2f}"), ("pitch", "pitch", "{:.2f}"))
BASE_COLS = (
    ("lsd_copy", "LSD copy", "{:.2f}"),
    ("lsd_ceiling", "LSD GT via GL", "{:.2f}"),
    ("lsd_oracle", "LSD oracle", "{:.2f}"),
    ("timbre_copy", "timbre copy", "{:.2f}"),
    ("pitch_copy", "pitch copy", "{:.2f}"),
)


def _fmt(v: Any, spec: str) -> str:
    return "–" if v is None else spec.format(v)


def _cell(summary: dict[str, Any], key: str, spec: str) -> str:
    """A summary value, with its 95% interval where the summary has one (`<key>_ci`)."""
    ci = summary.get(f"{key}_ci")
    text = _fmt(summary.get(key), spec)
    return text if not ci or any(v is None or v != v for v in ci) else f"{text} [{ci[0]:.2f}, {ci[1]:.2f}]"  # v != v: NaN


def summary_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table: one row per metric, one column per model."""
    names = list(metrics["models"])
    header = ["metric (split: test)", *names]
    rows = [[label, *(_cell(metrics["models"][n]["summary"], key, spec) for n in names)] for key, label, spec in SUMMARY_ROWS]
    ctl = metrics.get("controls", {})
    for key, label in (("class_mean", "control: target-class mean spectrogram"), ("random_model", "control: random-weight model")):
        if key in ctl:
            rows.append([f"{label}, timbre", *([_fmt(ctl[key]["timbre"], "{:.3f}")] * len(names))])
    return header, rows


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def summary_table(metrics: dict[str, Any]) -> str:
    """The summary as aligned text (what `make demo` prints): means over every source->target pair."""
    header, rows = summary_rows(metrics)
    n = metrics["passages"]
    head = (
        f"musiclord evaluation: {len(metrics['classes'])} instruments, "
        f"{len(metrics['baselines'])} pairs x {n} paired test passages "
        f"(pitch: {metrics['pitch_passages']} per pair), audio after Griffin-Lim ({metrics['options']['gl_iters']} it.)"
    )
    refined = {n: m["translate"]["refine_steps"] for n, m in metrics["models"].items()
               if (m.get("translate") or {}).get("refine_steps")}
    if refined:
        head += "; content codes refined after the encoder: " + ", ".join(f"{n} {s} steps" for n, s in refined.items())
    return head + "\n" + _text_table(header, rows)


def pair_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-pair table: baselines, then each model's columns."""
    names = list(metrics["models"])
    header = ["pair (test)", *(lbl for _, lbl, _ in BASE_COLS)]
    header += [f"{n}: {lbl}" for n in names for _, lbl, _ in PAIR_COLS]
    rows = []
    for pair, base in metrics["baselines"].items():
        row = [pair.replace("->", " → "), *(_fmt(base.get(k), s) for k, _, s in BASE_COLS)]
        for n in names:
            pp = metrics["models"][n]["per_pair"].get(pair, {})
            row += [_fmt(pp.get(k), s) for k, _, s in PAIR_COLS]
        rows.append(row)
    return header, rows


def _href(rel: str) -> str:
    return html.escape(quote(rel), quote=True)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _audio_table(grid: dict[str, Any], audio: list[list[str]], col_prefix: str) -> str:
    header = ["source clip", *(c if c == "source" else f"{col_prefix}{c}" for c in grid["columns"])]
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = ""
    for row, files in zip(grid["rows"], audio):
        label = f"{row['source']} · {row['content_id']}"
        cells = "".join(f'<td><audio controls preload="metadata" src="{_href(f)}"></audio></td>' for f in files)
        body += f"<tr><th>{html.escape(label)}</th>{cells}</tr>"
    return f"<table class=audio><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px}
td{text-align:right}th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd}
audio{width:150px;height:28px}.audio td{text-align:center}.note{color:#555;font-size:13px}
.figs{display:flex;flex-wrap:wrap;gap:12px}"""


def write_report(metrics: dict[str, Any], out: Path) -> Path:
    """Write `out/index.html` from the metrics and the files `evaluate` wrote beside it."""
    e = html.escape
    names = list(metrics["models"])
    tc = metrics["timbre_classifier"]
    ctl = metrics.get("controls", {})
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>musiclord evaluation</title><style>{CSS}</style></head><body>",
        "<h1>musiclord evaluation</h1>",
        f"<p class=note>dataset <code>{e(metrics['dataset'])}</code>, split <b>test</b> (paired passages, a sample bank "
        f"never used for training): {metrics['passages']} passages x {len(metrics['baselines'])} source→target pairs; "
        f"pitch on {metrics['pitch_passages']} passages per pair (pYIN is slow). Every translation is judged as audio "
        f"after Griffin-Lim ({metrics['options']['gl_iters']} iterations) against the true rendering. Models: "
        f"{e(', '.join(names))}. Took {metrics.get('seconds', 0)} s.</p>",
        "<h2>Summary (mean over pairs, test split)</h2>",
        _html_table(*summary_rows(metrics)),
        "<p class=note>LSD: log-spectral distance of SS-VQ-VAE (Cífka et al. 2021), dB, lower is better. "
        "'copy source': the source clip itself as the output; 'GT via GL': the true target through the same "
        "mel + Griffin-Lim path (the inversion ceiling). Timbre: share of outputs that the evaluator's own "
        f"instrument classifier (trained on splits {e(', '.join(tc.get('splits', [])))}, {tc.get('train_clips', '?')} "
        f"clips incl. {tc.get('roundtrip_clips', '?')} round-tripped; accuracy on round-tripped test ground truth "
        f"{_fmt(tc.get('test_accuracy_roundtrip'), '{:.2f}')}) assigns to the target instrument; it may also answer "
        "'other'. Controls: the target class's mean spectrogram "
        f"(timbre {_fmt(ctl.get('class_mean', {}).get('timbre'), '{:.2f}')}, LSD {_fmt(ctl.get('class_mean', {}).get('lsd'), '{:.2f}')}) "
        "and a random-weight model "
        f"(timbre {_fmt(ctl.get('random_model', {}).get('timbre'), '{:.2f}')}, LSD {_fmt(ctl.get('random_model', {}).get('lsd'), '{:.2f}')}) "
        "must score low. Pitch: pYIN (50–2000 Hz), raw pitch accuracy within 50 cents on frames voiced in the "
        "ground truth. Probes: 5-fold cross-validated logistic regression on the test clips' codes.</p>",
        "<h2>Per pair (test split)</h2>",
        _html_table(*pair_rows(metrics)),
    ]
    grids = metrics["grids"]
    parts.append("<h2>Translation grids (test split)</h2><p class=note>Rows: a source clip per instrument; columns: "
                 "the source, then its translation to each instrument (to its own instrument: reconstruction).</p>")
    gt = grids["ground_truth"]
    parts.append(f"<h3>ground truth</h3><img src=\"{_href(gt['png'])}\" alt=\"ground truth grid\">")
    parts.append(_audio_table(grids, gt["audio"], "true "))
    for n in names:
        g = grids["models"][n]
        parts.append(f"<h3>{e(n)}</h3><img src=\"{_href(g['png'])}\" alt=\"{e(n)} grid\">")
        parts.append(_audio_table(grids, g["audio"], "→ "))
    parts.append("<h2>Codes: t-SNE (test split)</h2><div class=figs>")
    for n in names:
        for key in ("content", "class"):
            p = metrics["models"][n]["probes"][key]
            parts.append(f"<figure><img src=\"{_href(p['tsne'])}\" alt=\"{e(n)} {key} codes\"><figcaption>{e(n)}: {key} codes, "
                         f"probe {_fmt(p['accuracy'], '{:.2f}')} (chance {_fmt(p['chance'], '{:.2f}')})</figcaption></figure>")
    parts.append("</div><p class=note>All numbers: <a href=\"metrics.json\">metrics.json</a>.</p></body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
