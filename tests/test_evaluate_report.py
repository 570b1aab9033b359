"""End to end: a tiny dataset and random-weight models -> metrics.json, figures, audio and an
index.html that headless Chromium opens offline with every image decoded and every sound loaded."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_evaluate_helpers import make_dataset, make_random_model

from musiclord.cli import main
from musiclord.evaluate import EvalOptions, TimbreConfig, evaluate, load_translator, summary_table

CHROMIUM = shutil.which("chromium") or (Path("/usr/bin/chromium").is_file() and "/usr/bin/chromium") or None
CLASSES = ["flute", "string"]  # two instruments keep the pYIN work small
ODD_NAME = 'odd <b>&"name'
FAST = EvalOptions(max_clips=2, pitch_clips=1, probe_clips=6, gl_iters=4, control_clips=1,
                   timbre=TimbreConfig(steps=4, batch_size=8, roundtrip_per_class=1, gl_iters=4))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("eval")
    data = make_dataset(root / "data", n_train=3, n_val=1, n_aux=2, n_test=6, classes=CLASSES)
    models = [("random", load_translator(make_random_model(root / "m1", seed=0, classes=CLASSES))),
              (ODD_NAME, load_translator(make_random_model(root / "m2", seed=1, classes=CLASSES)))]
    metrics = evaluate(models, data, root / "report", FAST)
    return root / "report", metrics


def test_metrics_cover_every_pair_for_every_model(report: tuple[Path, dict]) -> None:
    out, metrics = report
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == metrics
    pairs = {f"{a}->{b}" for a in CLASSES for b in CLASSES if a != b}
    assert set(metrics["baselines"]) == pairs
    assert metrics["split"] == "test" and metrics["passages"] == 2
    for name in ("random", ODD_NAME):
        m = metrics["models"][name]
        assert set(m["per_pair"]) == pairs
        s = m["summary"]
        assert s["split"] == "test" and s["pairs"] == len(pairs)
        assert s["lsd"] > 0 and s["lsd_copy"] > 0
        assert s["lsd_ratio"] == pytest.approx(s["lsd"] / s["lsd_copy"])
        assert 0.0 <= s["timbre"] <= 1.0
        assert m["probes"]["content"]["chance"] == pytest.approx(1 / len(CLASSES))
        assert m["probes"]["split"] == "test"
        assert all(m["per_pair"][p]["pitch"] is not None for p in pairs)
    # A random model is far from the truth; the truth through the same inversion is closer.
    s = metrics["models"]["random"]["summary"]
    assert s["lsd_ceiling"] < s["lsd"]
    assert {"class_mean", "random_model"} <= set(metrics["controls"])
    assert metrics["timbre_classifier"]["splits"] == ["train", "val", "aux"]


def test_summary_table_names_models_and_split(report: tuple[Path, dict]) -> None:
    out, metrics = report
    text = summary_table(metrics)
    assert "random" in text and ODD_NAME in text and "test" in text
    assert (out / "summary.txt").read_text().strip() == text.strip()


def test_index_html_is_self_contained_and_escaped(report: tuple[Path, dict]) -> None:
    out, _ = report
    page = (out / "index.html").read_text()
    assert ODD_NAME not in page and html.escape(ODD_NAME) in page
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    imgs = re.findall(r'<img src="([^"]+)"', page)
    audio = re.findall(r'<audio[^>]*src="([^"]+)"', page)
    assert len(imgs) == 1 + 2 + 2 * 2  # ground truth grid, a grid and two t-SNE plots per model
    assert len(audio) == 3 * len(CLASSES) * (1 + len(CLASSES))  # every cell of three grids
    from urllib.parse import unquote

    for link in links:
        assert "://" not in link and not link.startswith("/"), link
        assert (out / unquote(html.unescape(link))).is_file(), link


def _check_in_chromium(page: Path) -> dict:
    """Load a copy of `page` with a script that reports every <img> and <audio>, in headless Chromium."""
    probe = """<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images).map(function (i) {
    return {src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}; });
  var auds = Array.from(document.querySelectorAll('audio')).map(function (a) {
    return new Promise(function (res) {
      var done = function (ok) { res({src: a.getAttribute('src'), ok: ok, error: a.error ? a.error.code : null}); };
      if (a.readyState >= 1) { done(true); return; }
      a.addEventListener('loadedmetadata', function () { done(a.duration > 0); });
      a.addEventListener('error', function () { done(false); });
      a.preload = 'auto'; a.load(); }); });
  Promise.all(auds).then(function (a) {
    var pre = document.createElement('pre'); pre.id = 'musiclord-check';
    pre.textContent = JSON.stringify({images: imgs, audio: a}); document.body.appendChild(pre); });
});
</script>"""
    check = page.with_name("_chromium_check.html")
    check.write_text(page.read_text().replace("</body>", probe + "</body>"))
    try:
        with tempfile.TemporaryDirectory() as profile:
            r = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                 "--virtual-time-budget=30000", "--dump-dom", check.as_uri()],
                capture_output=True, text=True, timeout=120,
            )
    finally:
        check.unlink()
    m = re.search(r'<pre id="musiclord-check">(.*?)</pre>', r.stdout, re.S)
    assert m, f"chromium produced no result (exit {r.returncode}): {r.stderr[-400:]}"
    return json.loads(html.unescape(m.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs Debian's chromium)")
def test_every_image_and_sound_loads_in_headless_chromium(report: tuple[Path, dict]) -> None:
    out, _ = report
    page = (out / "index.html").read_text()
    result = _check_in_chromium(out / "index.html")
    assert len(result["images"]) == page.count("<img ") > 0
    assert len(result["audio"]) == page.count("<audio ") > 0
    assert all(i["ok"] for i in result["images"]), [i for i in result["images"] if not i["ok"]]
    assert all(a["ok"] for a in result["audio"]), [a for a in result["audio"] if not a["ok"]]
    # The check can fail: a missing image and a missing sound are reported as such.
    broken = out / "broken.html"
    broken.write_text(page.replace("</body>", '<img src="nope.png"><audio controls src="nope.wav"></audio></body>'))
    try:
        bad = _check_in_chromium(broken)
    finally:
        broken.unlink()
    assert [i["src"] for i in bad["images"] if not i["ok"]] == ["nope.png"]
    assert [a["src"] for a in bad["audio"] if not a["ok"]] == ["nope.wav"]


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], report: tuple[Path, dict]) -> None:
    out, _ = report
    assert main(["evaluate", "--model", str(tmp_path / "none"), "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "no trained model" in capsys.readouterr().err
    assert main(["evaluate", "--model", "a", "--model", "b", "--name", "x", "--name", "x",
                 "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "must differ" in capsys.readouterr().err
    # An existing report is not overwritten without --force.
    assert main(["evaluate", "--model", "a", "--data", str(tmp_path), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_cli_writes_a_report_and_reuses_the_cached_classifier(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "data", n_train=2, n_val=1, n_aux=1, n_test=3, classes=CLASSES)
    run = make_random_model(tmp_path / "run", classes=CLASSES)
    argv = ["evaluate", "--model", str(run), "--data", str(data), "--out", str(tmp_path / "rep"),
            "--max-clips", "1", "--pitch-clips", "0", "--gl-iters", "2", "--timbre-steps", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "LSD ratio" in out and "report:" in out
    metrics = json.loads((tmp_path / "rep/metrics.json").read_text())
    assert metrics["timbre_classifier"]["cached"] is False and metrics["pitch_passages"] == 0
    assert metrics["models"]["run"]["translate"]["refine_steps"] == 0
    assert main([*argv, "--force", "--refine-steps", "2"]) == 0  # inference settings reach the translator
    metrics = json.loads((tmp_path / "rep/metrics.json").read_text())
    assert metrics["timbre_classifier"]["cached"] is True and metrics["models"]["run"]["translate"]["refine_steps"] == 2
    assert "refined after the encoder: run 2 steps" in capsys.readouterr().out
    assert main([*argv, "--force", "--refine-steps", "-1"]) == 2
