"""Where the time of one translation goes: torch.profiler over `Translator.translate_file`.

    python -m benchmarks.profile_translate [--device cuda] [--seconds 60] [--model PATH]

Translates a synthetic recording (`bench_translate.write_recording`) once to warm up (plans,
kernels), then once under the profiler, and prints the operators that took the most time (on a
GPU: device time and host time separately; the gap between them is launch and sync overhead).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

from benchmarks.bench_translate import build_model, write_recording
from musiclord.translate import Translator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_translate", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", default="", help="a model file or run directory (default: demo-sized, random)")
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args(argv)
    gpu = args.device.startswith("cuda")
    with tempfile.TemporaryDirectory(prefix="musiclord-prof-") as tmp:
        tmp_p = Path(tmp)
        model = args.model or build_model(tmp_p)
        src, dst = tmp_p / "in.wav", tmp_p / "out.wav"
        write_recording(src, args.seconds)
        tr = Translator.from_checkpoint(model, device=args.device)
        for label in ("first", "second"):
            t0 = time.perf_counter()
            tr.translate_file(src, dst, to=tr.instruments[-1])
            print(f"{label} translation: {time.perf_counter() - t0:.3f} s for {args.seconds:g} s of audio")
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
        with profile(activities=activities) as prof:
            t0 = time.perf_counter()
            tr.translate_file(src, dst, to=tr.instruments[-1])
            wall = time.perf_counter() - t0
    print(f"profiled translation: {wall:.3f} s (profiler overhead included)")
    keys = prof.key_averages()
    if gpu:
        print(keys.table(sort_by="self_cuda_time_total", row_limit=args.rows))
    print(keys.table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
