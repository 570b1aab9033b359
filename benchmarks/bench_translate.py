"""End-to-end translation speed and memory (issue 8, part 4).

`Translator.translate_file` (load, analyse, encode, generate, invert, write) of a 60 s and a
10-minute recording, each in a fresh subprocess so that its peak resident memory is its own
(VmHWM from /proc/self/status; `ru_maxrss` would carry the parent's peak over); the peak right
after loading the model (before translating) is reported too, so the growth due to translation
is visible.

The model has the demo preset's sizes and random weights (speed does not depend on the weights),
saved as a stage-2 bundle (encoders, no per-window latent fit), or runs/demo/model if present.
The input is a synthetic 44.1 kHz mono recording: a melody of harmonic notes with vibrato and
decays, with short rests (so the silence gate skips a few windows, as in real music).

On a GPU (`device="cuda"`) each subprocess translates its file twice: the first run pays the
one-off costs of a fresh process (cuFFT plans, kernel loading), the second is what every
further file costs; both are reported, with the GPU's peak allocated memory.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.common import markdown_table, timed_call

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL = ROOT / "runs" / "demo" / "model"
FILE_SR = 44100
# (seconds, Griffin-Lim iterations; 0 = TranslateConfig's default)
CASES = ((60, 0), (60, 32), (60, 16), (600, 0))


def write_recording(path: Path, seconds: float, sr: int = FILE_SR, seed: int = 0) -> None:
    """A melody of 0.25-1 s harmonic notes (some rests), written block by block as 16-bit WAV."""
    rng = np.random.default_rng(seed)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        done = 0
        total = int(seconds * sr)
        while done < total:
            n = min(int(rng.uniform(0.25, 1.0) * sr), total - done)
            t = np.arange(n) / sr
            if rng.random() < 0.1:
                x = np.zeros(n)
            else:
                f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
                ph = 2 * np.pi * np.cumsum(f0 * (1 + 0.004 * np.sin(2 * np.pi * 5.5 * t))) / sr
                x = sum(np.sin(h * ph) / h**1.5 for h in range(1, 12) if h * f0 < sr / 2.5)
                x = 0.5 * x * np.exp(-2.0 * t) * np.minimum(1.0, t / 0.01)
            f.write(x.astype(np.float32))
            done += n


def build_model(out_dir: Path) -> Path:
    """A stage-2 bundle with the demo preset's ModelConfig and random weights."""
    import torch

    from musiclord.audio import MelConfig
    from musiclord.models import LordModel, save_model
    from musiclord.train.config import PRESETS

    torch.manual_seed(0)
    model = LordModel(PRESETS["demo"].model, ["cello", "piano", "violin", "flute"])
    model.class_embeddings.normal_(0, 0.3)
    save_model(model, out_dir / "model.pt", MelConfig(), meta={"stage": "amortized"})
    return out_dir


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: VmHWM (per address space, so it starts afresh
    at exec; `ru_maxrss` carries the parent's peak over into a child)."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(model: str, in_path: str, out_path: str, threads: int, gl_iters: int = 0, device: str = "cpu") -> None:
    """Run in a subprocess: load the model, translate one file (twice on a GPU), print a JSON
    line of figures."""
    import torch

    from musiclord.translate import Translator
    from musiclord.translate.translator import TranslateConfig

    if threads:
        torch.set_num_threads(threads)
    gpu = device.startswith("cuda")
    t0 = time.perf_counter()
    cfg = TranslateConfig(gl_iters=gl_iters) if gl_iters else TranslateConfig()
    tr = Translator.from_checkpoint(model, device=device, cfg=cfg)
    if gpu:
        torch.cuda.synchronize()
    t_load = time.perf_counter() - t0
    rss_model = peak_rss_mb()
    runs = []
    for _ in range(2 if gpu else 1):
        t0 = time.perf_counter()
        info = tr.translate_file(in_path, out_path, to=tr.instruments[-1])
        runs.append(time.perf_counter() - t0)  # the output is on disk: nothing left on the device
    rss = peak_rss_mb()
    print(json.dumps({
        "seconds": runs[0], "seconds_warm": runs[-1], "load_s": t_load, "audio_s": info["seconds_in"],
        "out_s": info["seconds_out"], "rss_model_mb": rss_model, "rss_peak_mb": rss, "gl_iters": tr.cfg.gl_iters,
        "nnls_iters": tr.cfg.nnls_iters, "block_s": tr.cfg.block_seconds, "threads": torch.get_num_threads(),
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if gpu else 0.0,
    }))


def translate_in_subprocess(model: Path, in_path: Path, out_path: Path, gl_iters: int = 0,
                            device: str = "cpu") -> dict:
    import torch

    cmd = [sys.executable, "-m", "benchmarks.bench_translate", "--child", str(model), str(in_path), str(out_path),
           str(torch.get_num_threads()), str(gl_iters), device]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))})
    if res.returncode != 0:
        raise RuntimeError(f"translation subprocess failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


REAL_CLIPS = Path(os.environ.get("MUSICLORD_REAL_CLIPS", "/work/shared/data/real-clips"))
QUALITY_FILES = ("cello_phrase_smstools.wav", "cello_sneaky_phrase_fs609221.wav", "clarinet_phrase_fs328734.wav",
                 "sax_phrase_smstools.wav", "strings_orchestra_brahms_librosa.hq.ogg", "piano_smstools.wav",
                 "violin_B3_smstools.wav", "trumpet_A4_smstools.wav", "oboe_A4_smstools.wav")


def gl_quality(iters: tuple[int, ...] = (16, 32, 64), block_s: float = 10.0, device: str = "cpu") -> str:
    """Spectral convergence of `invert` at several GL iteration counts on the first `block_s`
    seconds of real recordings (one block, as the translator inverts them), against the true
    STFT magnitude: what changing the translator's `gl_iters` would cost in quality."""
    import torch

    from musiclord.audio import MelConfig, invert, load_audio, logmel, spectral_convergence

    cfg = MelConfig()
    files = [REAL_CLIPS / f for f in QUALITY_FILES if (REAL_CLIPS / f).exists()]
    if not files:
        return f"(no recordings in {REAL_CLIPS}: GL quality not measured)"
    n = int(block_s * cfg.sample_rate) // cfg.hop_length * cfg.hop_length
    sc: dict[int, list[float]] = {it: [] for it in iters}
    secs: dict[int, float] = {it: 0.0 for it in iters}
    total = 0.0
    for f in files:
        x = load_audio(f, cfg.sample_rate)[:n]
        x = x[: len(x) // cfg.hop_length * cfg.hop_length]
        x = torch.from_numpy(0.9 * x / max(float(np.abs(x).max()), 1e-9))[None]
        total += x.shape[1] / cfg.sample_rate
        lm = logmel(x, cfg).to(device)
        for it in iters:
            t, y = timed_call(lambda: invert(lm, cfg, n_iter=it), warmup=int(device != "cpu"), device=device)
            secs[it] += t
            sc[it].append(float(spectral_convergence(y.cpu(), x, cfg)[0]))
    rows = [[it, f"{np.mean(sc[it]):.4f}", f"{np.max(sc[it]):.4f}", f"{secs[it] / total:.3f}"] for it in iters]
    return (f"Griffin-Lim iterations vs quality: `invert` ({device}) of the first {block_s:g} s of {len(files)} real recordings "
            f"({total:.0f} s in all; {', '.join(f.name for f in files)}), SC against the true magnitude:\n\n"
            + markdown_table(["GL iterations", "mean SC", "worst SC", "inversion s per audio s"], rows))


def run(cases: tuple[tuple[float, int], ...] = CASES, device: str = "cpu", repeats: int = 0) -> str:
    """The translate table; `repeats` runs of the first length at default settings (0: 5 on a
    CPU, 1 on a GPU)."""
    from musiclord.pretrained import has_pretrained, pretrained_path

    gpu = device.startswith("cuda")
    repeats = repeats or (1 if gpu else 5)
    rows, figs = [], []
    with tempfile.TemporaryDirectory(prefix="musiclord-bench-") as tmp:
        tmp_p = Path(tmp)
        if (DEMO_MODEL / "model.pt").exists() or DEMO_MODEL.with_suffix(".pt").exists():
            model, which = DEMO_MODEL, "runs/demo/model"
        else:
            model, which = build_model(tmp_p), "demo-preset sizes, random weights"
        runs = [(sec, gl, model, "demo") for sec, gl in cases]
        if has_pretrained():  # the shipped model (a wider generator), at the default settings
            runs.insert(1, (cases[0][0], 0, pretrained_path(), "shipped"))
        for sec, gl, path, name in runs:
            src = tmp_p / f"in_{int(sec)}s.wav"
            if not src.exists():
                write_recording(src, sec)
            # The headline cases (first length, default iterations) run `repeats` times (this VM's
            # speed drifts by up to 1.5x within minutes): their rows give the median run and the range.
            reps = repeats if (sec, gl) == (cases[0][0], 0) else 1
            tries = [translate_in_subprocess(path, src, tmp_p / f"out_{int(sec)}s.wav", gl, device) for _ in range(reps)]
            tries.sort(key=lambda r: r["seconds"])
            r = tries[len(tries) // 2]
            r["default"] = gl == 0 and name == "demo"
            log.info("%s, %.0f s, GL %d: %s s (RTF %.4f; warm %.2f s), peak %.0f MB", name, sec, r["gl_iters"],
                     "/".join(f"{t['seconds']:.2f}" for t in tries), r["seconds"] / r["audio_s"], r["seconds_warm"],
                     r["rss_peak_mb"])
            figs.append(r)
            rtf = f"{r['seconds'] / r['audio_s']:.4f}"
            if reps > 1:
                rtf += f" (median of {reps}: {tries[0]['seconds'] / r['audio_s']:.4f}-{tries[-1]['seconds'] / r['audio_s']:.4f})"
            row = [name, f"{r['audio_s']:.0f} s", f"{r['gl_iters']}" + (" (default)" if gl == 0 else ""),
                   f"{r['seconds']:.2f}", rtf, f"{r['audio_s'] / r['seconds']:.1f}x"]
            if gpu:
                row += [f"{r['seconds_warm']:.2f}", f"{r['seconds_warm'] / r['audio_s']:.4f}", f"{r['gpu_peak_mb']:.0f}"]
            rows.append(row + [f"{r['rss_model_mb']:.0f}", f"{r['rss_peak_mb']:.0f}",
                               f"{r['rss_peak_mb'] - r['rss_model_mb']:.0f}"])
    r0 = figs[0]
    header = ["model", "input", "GL iterations", "compute s", "real-time factor", "faster than real time"]
    if gpu:
        header += ["2nd file s", "2nd file RTF", "GPU peak (MB)"]
    table = markdown_table(header + ["RSS after model load (MB)", "peak RSS (MB)", "growth (MB)"], rows)
    lines = [
        f"`Translator.translate_file` end to end on {device} (demo model: {which}; shipped: "
        f"musiclord/pretrained/model.pt; 44.1 kHz mono 16-bit WAV in, 16 kHz WAV out), "
        f"NNLS {r0['nnls_iters']} iterations, {r0['block_s']:g} s inversion blocks, torch threads {r0['threads']}, "
        f"one subprocess per run (loading the model, and on a CPU the numba kernels: {r0['load_s']:.2f} s, not included)"
        + (": the first file in a fresh process and the second in the same one." if gpu else "."),
        "",
        table,
        "",
        "- Target: real-time factor <= 0.05 on 2 CPU cores, <= 0.005 on one H100.",
    ]
    dflt = [r for r in figs if r["default"]]
    if len(dflt) > 1:
        a, b = dflt[0], dflt[-1]
        flat = b["rss_peak_mb"] < 1.2 * a["rss_peak_mb"] + 20
        lines.append(f"- Peak memory {a['rss_peak_mb']:.0f} MB at {a['audio_s']:.0f} s vs {b['rss_peak_mb']:.0f} MB "
                     f"at {b['audio_s']:.0f} s: {'flat' if flat else 'NOT flat'}"
                     + (f" (GPU {a['gpu_peak_mb']:.0f} vs {b['gpu_peak_mb']:.0f} MB)." if gpu else "."))
    return "\n".join(lines) + "\n\n" + gl_quality(device=device)


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
    else:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        print(run())
