"""`musiclord demo`: the whole pipeline on the built-in dataset, ending with the report.

prepare synth -> train (both stages, demo preset) -> evaluate (with the shipped pretrained model
beside the one just trained). Each step is skipped when its output already exists, so a second
`make demo` only re-prints the summary.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the built-in synthetic dataset")
    p.add_argument("--out", default="runs/demo", help="demo directory (data/, model/, report/ inside)")
    p.add_argument("--config", default="demo", help="training preset or YAML file")
    p.add_argument("--no-pretrained", action="store_true", help="do not compare with the shipped model")
    p.add_argument("--force", action="store_true", help="redo every step")
    p.set_defaults(func=run)


def _step(name: str, argv: list[str]) -> None:
    from musiclord.cli import main
    from musiclord.errors import MusiclordError

    log.info("demo: %s: musiclord %s", name, " ".join(argv))
    t0 = time.time()
    rc = main(argv)
    if rc:
        raise MusiclordError(f"demo step '{name}' failed (exit {rc})")
    log.info("demo: %s done in %.0f s", name, time.time() - t0)


def run(args: argparse.Namespace) -> int:
    from musiclord.models import MODEL_FILE
    from musiclord.pretrained import has_pretrained

    out = Path(args.out)
    data, model, report = out / "data", out / "model", out / "report"
    force = ["--force"] if args.force else []
    if args.force or not (data / "dataset.json").is_file():
        _step("prepare", ["prepare", "synth", "--out", str(data), *(["--force"] if data.exists() else [])])
    if args.force or not (model / MODEL_FILE).is_file() or not (model / "amortized.pt").is_file():
        resume = ["--resume"] if (model / "config.yaml").is_file() and not args.force else force
        _step("train", ["train", "--data", str(data), "--out", str(model), "--config", args.config, *resume])
    models = ["--model", str(model), "--name", "demo"]
    if has_pretrained() and not args.no_pretrained:
        models += ["--model", "pretrained", "--name", "pretrained"]
    _step("evaluate", ["evaluate", *models, "--data", str(data), "--out", str(report), "--force"])
    summary = report / "summary.txt"
    if summary.is_file():
        print(summary.read_text())
    print(f"report: {(report / 'index.html').resolve()}")
    print(f"try:    musiclord translate x.wav --model {model} --to violin -o y.wav")
    return 0
