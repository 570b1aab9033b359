"""Shared benchmark helpers: the machine's description, a timer, and measured compute peaks."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

T = TypeVar("T")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info(device: str = "cpu") -> dict[str, str]:
    """What a reader needs to compare figures: CPU, cores, torch, device, load at the start."""
    info = {
        "cpu": cpu_model(),
        "cores": str(usable_cores()),
        "torch": torch.__version__,
        "torch threads": str(torch.get_num_threads()),
        "device": (device if not device.startswith("cuda")
                   else f"{device} ({torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda})"),
        "python": platform.python_version(),
    }
    try:
        info["load average (1 min)"] = f"{os.getloadavg()[0]:.1f}"
    except OSError:
        pass
    return info


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_call(fn: Callable[[], T], warmup: int = 0, device: str = "cpu") -> tuple[float, T]:
    """Wall-clock seconds of one call of fn (after `warmup` untimed calls) and its result."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def timeit(fn: Callable[[], object], repeat: int = 3, warmup: int = 1, device: str = "cpu") -> float:
    """Best wall-clock seconds of `repeat` calls after `warmup` calls.

    The minimum, not the mean: on a shared machine other work only ever adds time.
    """
    for _ in range(warmup):
        fn()
    return min(timed_call(fn, device=device)[0] for _ in range(repeat))


def measure_peak(device: str = "cpu", repeat: int = 3) -> dict[str, float]:
    """Measured float32 throughput in GFLOP/s, for training benchmarks to compare against.

    Returns:
        {"matmul_gflops": a large square matmul, "conv1d_gflops": a Conv1d, forward only, like the
        generators' (CPU: the demo's scale, 256 -> 256 channels, kernel 5, 128 frames, batch 32;
        GPU: the paper preset's, 512 channels, batch 256, large enough to fill the chip)}.
        On CUDA both run as torch is set (by default cuDNN convolutions in TF32, matmuls not).
    """
    gpu = device.startswith("cuda")
    n = 8192 if gpu else 2048
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    t_mm = timeit(lambda: a @ b, repeat=repeat, device=device)
    c, batch = (512, 256) if gpu else (256, 32)
    conv = torch.nn.Conv1d(c, c, 5, padding=2).to(device)
    x = torch.randn(batch, c, 128, device=device)
    with torch.no_grad():
        t_conv = timeit(lambda: conv(x), repeat=repeat, device=device)
    conv_flops = 2 * batch * 128 * c * c * 5
    return {"matmul_gflops": 2 * n**3 / t_mm / 1e9, "conv1d_gflops": conv_flops / t_conv / 1e9}


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub markdown table; floats are formatted by the caller."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
