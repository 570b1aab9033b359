"""Run the benchmarks and append their tables, dated, with the machine, to docs/benchmarks.md.

    python -m benchmarks.run_all                # every benchmarks/bench_*.py
    python -m benchmarks.run_all --only audio   # just bench_audio.py
    python -m benchmarks.run_all --only train translate
    python -m benchmarks.run_all --device cuda  # musiclord's work on the GPU (+ the paper preset)
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import logging
import sys
from pathlib import Path

import torch

from benchmarks.common import machine_info

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Appended by `python -m benchmarks.run_all` (`make bench`); each section says the machine and the
command. Figures from a shared machine are upper bounds on time: other work only adds to them.
"""


def discover() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=[], help="benchmark names (audio train translate, or comma-separated)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: all usable cores)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if not (args.device == "cpu" or args.device.startswith("cuda")):
        parser.error(f"--device must be cpu or cuda[:N], got {args.device!r}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = discover()
    if args.only:
        wanted = [n.strip() for arg in args.only for n in arg.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {unknown}; have {names}")
        names = wanted
    if args.threads:
        torch.set_num_threads(args.threads)
    started = dt.datetime.now(dt.timezone.utc)
    info = machine_info(args.device)
    sections, failed = [], []
    for name in names:
        logging.info("running %s", name)
        try:  # one failing benchmark must not lose the others' figures
            body = importlib.import_module(f"benchmarks.bench_{name}").run(device=args.device).strip()
        except Exception as e:  # noqa: BLE001 - reported in the section and in the exit status
            logging.exception("benchmark %s failed", name)
            failed.append(name)
            body = f"FAILED: {type(e).__name__}: {e}".splitlines()[0]
        sections.append(f"### {name}\n\n{body}\n")
        logging.info("%s", sections[-1])
    command = "python -m benchmarks.run_all" + (" " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else "")
    text = "\n".join(
        [f"## {started:%Y-%m-%d %H:%M} UTC: {', '.join(names)}", ""]
        + [f"- {k}: {v}" for k, v in info.items()]
        + [f"- command: `{command}`", ""]
        + sections
    )
    print(text)
    if not args.no_write:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        existing = DOC.read_text() if DOC.exists() else HEADER
        DOC.write_text(existing.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n")
    if failed:
        logging.error("failed: %s", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
