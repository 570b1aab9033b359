"""Reliability and security gaps of issue 9 not covered by the tests of each area: checkpoint
errors through `musiclord train --resume`, NaN batches in a real training loop, every kind of bad
audio through `prepare folder` and `translate` folders, a property test of the translator, a crash
in the middle of a checkpoint write, and static checks that nothing unpickles or loads YAML unsafely."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musiclord.audio import MelConfig
from musiclord.checkpoint import load_checkpoint, save_checkpoint
from musiclord.cli import main
from musiclord.errors import CheckpointError
from musiclord.models import LordModel, ModelConfig, save_model
from musiclord.train.common import BatchIterator, TrainingError
from musiclord.train.config import PRESETS
from musiclord.train.latent import train_latent
from musiclord.translate import TranslateConfig, Translator
from test_train_latent import write_tiny_dataset

SRC = Path(__file__).resolve().parents[1] / "src" / "musiclord"


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    """tqdm also writes to stderr; these tests read stderr for the one-line error."""
    monkeypatch.setenv("MUSICLORD_NO_PROGRESS", "1")


pytestmark = pytest.mark.usefixtures("one_thread")


def tone(seconds: float, sr: int = 16000, f0: float = 330.0, amp: float = 0.4) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * f0 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("musiclord: error:") and "\n" not in err and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------ checkpoints via the CLI


def _train_args(data: Path, run: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--out", str(run), "--config", "tiny", "--stage", "latent",
            "latent.steps=4", "latent.checkpoint_every=0", "device=cpu", "num_threads=1", *extra]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data"), per_class=4, val_per_class=1)


@pytest.mark.parametrize("damage", ["truncated", "foreign", "other_kind", "garbage"])
def test_train_resume_with_a_bad_checkpoint_is_one_line_exit_2(data, tmp_path, capsys, damage):
    run = tmp_path / "run"
    assert main(_train_args(data, run)) == 0
    ck = run / "latent.pt"
    if damage == "truncated":
        ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    elif damage == "foreign":  # a valid torch file that is not ours
        torch.save({"state_dict": {"w": torch.zeros(3)}}, ck)
    elif damage == "other_kind":
        save_checkpoint({"step": 1}, ck, kind="amortized")
    else:
        ck.write_bytes(b"\x00\x01garbage" * 100)
    capsys.readouterr()
    assert main(_train_args(data, run, "--resume")) == 2
    err = one_line_error(capsys)
    assert "latent.pt" in err


def test_translate_with_a_foreign_or_wrong_kind_model_is_one_line_exit_2(tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(0.5), 16000)
    for name, write in {
        "foreign": lambda p: torch.save({"weights": torch.ones(2)}, p),
        "kind": lambda p: save_checkpoint({"step": 3}, p, kind="latent"),
    }.items():
        (tmp_path / name).mkdir()
        write(tmp_path / name / "model.pt")
        assert main(["translate", str(wav), "--model", str(tmp_path / name), "--to", "piano", "-o",
                     str(tmp_path / "o.wav")]) == 2
        one_line_error(capsys)
    assert not (tmp_path / "o.wav").exists()


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint({"v": torch.arange(3)}, path, kind="x")

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("musiclord.checkpoint.os.fsync", boom)
    with pytest.raises(OSError):
        save_checkpoint({"v": torch.arange(5)}, path, kind="x")
    assert torch.equal(load_checkpoint(path, kind="x")["v"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temp file left


# ------------------------------------------------------------------------------ non-finite losses


def _poison(data: Path, rows: list[int], tmp: Path) -> Path:
    """A copy of the dataset whose mel rows `rows` are NaN."""
    out = tmp / "poisoned"
    out.mkdir()
    for name in ("dataset.json", "manifest.jsonl"):
        (out / name).write_bytes((data / name).read_bytes())
    mels = np.load(data / "mels.npy")
    mels[rows] = np.nan
    np.save(out / "mels.npy", mels)
    return out


def test_a_nan_batch_is_skipped_and_counted_and_training_goes_on(data, tmp_path):
    bad_row = 5  # a train clip (train rows come first in write_tiny_dataset)
    poisoned = _poison(data, [bad_row], tmp_path)
    cfg = PRESETS["tiny"]
    cfg = dataclasses.replace(cfg, device="cpu", num_threads=1, latent=dataclasses.replace(
        cfg.latent, steps=12, batch_size=8, checkpoint_every=0, max_nonfinite=3))
    res = train_latent(cfg, poisoned, tmp_path / "run")
    # the steps whose batch holds the NaN clip, recomputed from the (pure) batch order
    it = BatchIterator(torch.zeros(1), res.rows.tolist(), 8, seed=cfg.seed)
    pos = int((res.rows == bad_row).nonzero())
    expected = sum(int(pos in it.positions(s).tolist()) for s in range(12))
    assert 0 < expected < 12
    ck = load_checkpoint(tmp_path / "run" / "latent.pt", kind="latent")
    assert ck["step"] == 12 and ck["state"]["guard"]["total"] == expected
    for k, v in ck["state"]["model"].items():
        assert torch.isfinite(v).all(), k  # a skipped step never reaches the weights
    # and the weights did move: the good steps trained
    assert (tmp_path / "run" / "model.pt").exists()


def test_only_nan_batches_stop_training_with_a_clear_line(data, tmp_path, capsys):
    poisoned = _poison(data, list(range(16)), tmp_path)  # every train clip
    cfg = PRESETS["tiny"]
    cfg = dataclasses.replace(cfg, device="cpu", num_threads=1, latent=dataclasses.replace(
        cfg.latent, steps=20, batch_size=8, checkpoint_every=0, max_nonfinite=4))
    with pytest.raises(TrainingError, match="4 non-finite losses in a row"):
        train_latent(cfg, poisoned, tmp_path / "api")
    assert main(_train_args(poisoned, tmp_path / "cli", "latent.max_nonfinite=2")) == 2
    err = one_line_error(capsys)
    assert "2 non-finite losses in a row" in err


def test_stage2_nan_batches_are_skipped_and_a_bad_resume_checkpoint_is_one_line(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(data, run)) == 0  # stage 1 on clean data
    poisoned = _poison(data, [3], tmp_path)  # one train clip NaN for stage 2
    from musiclord.train.amortized import train_amortized

    cfg = PRESETS["tiny"]
    cfg = dataclasses.replace(cfg, device="cpu", num_threads=1, amortized=dataclasses.replace(
        cfg.amortized, steps=8, batch_size=8, val_every=4, checkpoint_every=0, max_nonfinite=5))
    train_amortized(cfg, poisoned, run)
    ck = load_checkpoint(run / "amortized.pt", kind="amortized")
    assert ck["step"] == 8 and 0 < ck["state"]["guard"]["total"]
    for part in ("model", "disc"):
        for k, v in ck["state"][part].items():
            assert torch.isfinite(v).all(), (part, k)
    # a truncated stage-2 checkpoint through `train --resume --stage amortized`
    amort = run / "amortized.pt"
    amort.write_bytes(amort.read_bytes()[:1000])
    capsys.readouterr()
    args = _train_args(data, run, "--resume")
    args[args.index("latent")] = "amortized"
    assert main(args) == 2
    assert "amortized.pt" in one_line_error(capsys)


# ------------------------------------------------------------------------------ bad audio


def write_zoo(folder: Path, seconds: float) -> tuple[dict[str, int], set[str]]:
    """Every kind of input of issue 9 in one folder: (good file -> expected 16 kHz frames, bad files)."""
    folder.mkdir(parents=True, exist_ok=True)
    good: dict[str, int] = {}
    x = tone(seconds)
    sf.write(folder / "pcm8.wav", x, 16000, subtype="PCM_U8")
    sf.write(folder / "pcm24.wav", x, 16000, subtype="PCM_24")
    sf.write(folder / "hi96k.wav", tone(seconds, 96000), 96000, subtype="PCM_16")
    sf.write(folder / "six.wav", np.stack([tone(seconds, f0=220.0 * (c + 1)) for c in range(6)], 1), 16000)
    nan = x.copy()
    nan[100:300], nan[1000], nan[2000] = np.nan, np.inf, -np.inf
    sf.write(folder / "nonfinite.wav", nan, 16000, subtype="FLOAT")
    for name in ("pcm8.wav", "pcm24.wav", "hi96k.wav", "six.wav", "nonfinite.wav"):
        good[name] = len(x)
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "zero_frames.wav", np.zeros(0, np.float32), 16000)
    (folder / "text.wav").write_text("just some notes, not audio\n" * 20)
    ok = folder / "pcm8.wav"
    (folder / "truncated_header.wav").write_bytes(ok.read_bytes()[:22])
    bad = {"empty.wav", "zero_frames.wav", "text.wav", "truncated_header.wav"}
    return good, bad


def test_prepare_folder_skips_and_reports_each_bad_file(tmp_path, capsys):
    root = tmp_path / "rec"
    good, bad = write_zoo(root / "b", 2.5)
    sf.write(root / "b" / "silence.wav", np.zeros(16000 * 3, np.float32), 16000)
    sf.write(root / "b" / "one_sample.wav", np.array([0.3], np.float32), 16000, subtype="FLOAT")
    (root / "a").mkdir()
    for j in range(2):
        sf.write(root / "a" / f"{j}.wav", tone(2.5, f0=500.0 + 40 * j), 16000)
    out = tmp_path / "ds"
    assert main(["prepare", "folder", "--root", str(root), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    header = json.loads((out / "dataset.json").read_text())
    skipped = {Path(s["file"]).name: s["reason"] for s in header["skipped"]}
    assert set(skipped) == bad | {"silence.wav", "one_sample.wav"}, skipped
    assert all(r and "\n" not in r for r in skipped.values())
    from musiclord.data import Dataset

    ds = Dataset.open(out)
    sources = {Path(r.source).name for r in ds.records if r.cls == "b"}
    assert sources == set(good)  # every readable kind made clips
    assert np.isfinite(np.asarray(ds.mels, dtype=np.float32)).all()


def test_prepare_folder_with_no_audio_is_one_line_exit_2(tmp_path, capsys):
    root = tmp_path / "rec"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        (root / cls / "readme.txt").write_text("no audio here")
    assert main(["prepare", "folder", "--root", str(root), "--out", str(tmp_path / "ds"), "--quiet"]) == 2
    assert "no audio file" in one_line_error(capsys)
    assert not (tmp_path / "ds").exists()


CLASSES = ["piano", "violin", "flute"]
TINY = ModelConfig(content_dim=4, class_dim=8, gen_channels=16, gen_blocks=2, adain_hidden=16, enc_channels=16,
                   enc_blocks=2)
FAST = TranslateConfig(gl_iters=2, nnls_iters=2, latent_steps=5)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    m = LordModel(TINY, CLASSES)
    m.class_embeddings.normal_()
    save_model(m, root / "model.pt", MelConfig(), {"stage": "amortized"})
    return root


def test_translate_folder_goes_past_each_bad_file_and_reports_it(run_dir, tmp_path, capsys):
    src = tmp_path / "in"
    good, bad = write_zoo(src, 1.0)
    sf.write(src / "silence.wav", np.zeros(16000, np.float32), 16000)
    sf.write(src / "one_sample.wav", np.array([0.3], np.float32), 16000, subtype="FLOAT")
    good |= {"silence.wav": 16000, "one_sample.wav": 1}
    out = tmp_path / "out"
    rc = main(["translate", str(src), "--model", str(run_dir), "--to", "violin", "-o", str(out), "--gl-iters", "2"])
    assert rc == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("musiclord: error:") and f"{len(bad)} of {len(good) + len(bad)} files failed" in last
    assert {name for name in bad if name in last} == bad
    assert not any(name in last for name in good)
    for name, frames in good.items():
        y, sr = sf.read(out / name, dtype="float32")
        assert sr == 16000 and len(y) == frames and np.isfinite(y).all(), name
    assert np.abs(sf.read(out / "silence.wav")[0]).max() < 0.01
    assert not any((out / name).exists() for name in bad)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_translate_one_bad_file_or_an_empty_folder_is_one_line_exit_2(run_dir, tmp_path, capsys):
    _, bad = write_zoo(tmp_path / "zoo", 0.5)
    for name in sorted(bad):
        assert main(["translate", str(tmp_path / "zoo" / name), "--model", str(run_dir), "--to", "piano", "-o",
                     str(tmp_path / "o.wav")]) == 2, name
        assert name in one_line_error(capsys)
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "notes.txt").write_text("not audio")
    assert main(["translate", str(tmp_path / "nothing"), "--model", str(run_dir), "--to", "piano", "-o",
                 str(tmp_path / "o")]) == 2
    assert "no audio files" in one_line_error(capsys)
    assert not (tmp_path / "o.wav").exists()


@pytest.fixture(scope="module")
def tr(run_dir) -> Translator:
    return Translator.from_checkpoint(run_dir, device="cpu", cfg=FAST)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(0, 40000),
    sr=st.sampled_from([8000, 16000, 22050, 44100, 96000]),
    channels=st.integers(1, 3),
    amp=st.sampled_from([0.0, 1e-6, 0.3, 1.0, 30.0]),
    n_bad=st.integers(0, 3),
    to=st.sampled_from(CLASSES),
    gate=st.booleans(),
    normalize=st.booleans(),
    batch_size=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_translator_property_any_waveform_gives_finite_audio_of_its_duration(
        tr, n, sr, channels, amp, n_bad, to, gate, normalize, batch_size, seed):
    rng = np.random.default_rng(seed)
    x = (amp * rng.standard_normal((n, channels))).astype(np.float32)
    if n and n_bad:
        x.reshape(-1)[rng.integers(0, x.size, n_bad)] = rng.choice([np.nan, np.inf, -np.inf], n_bad)
    wave = x[:, 0] if channels == 1 else x
    cfg = dataclasses.replace(FAST, gate=gate, normalize=normalize, batch_size=batch_size)
    t = Translator(tr.model, tr.mel_config, tr.meta, device="cpu", cfg=cfg)
    try:
        y = t.translate(wave, sr, to=to)
    except Exception as e:  # the only allowed failure: too short to resample, as a user error
        from musiclord.errors import AudioError

        assert isinstance(e, AudioError) and sr != 16000 and n * 16000 < 2 * sr, (type(e), e)
        return
    assert y.dtype == np.float32 and y.shape == (round(n * 16000 / sr),)
    assert np.isfinite(y).all()
    if gate and amp == 0.0 and n_bad == 0:  # the gate keeps silence silent (an untrained model would not)
        assert np.abs(y).max(initial=0.0) < 0.01  # as test_translate.test_silence_stays_silent


# ------------------------------------------------------------------------------ static security checks


def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text()) for p in sorted(SRC.rglob("*.py"))]


def test_every_torch_load_is_weights_only():
    calls = 0
    for path, text in _sources():
        for m in re.finditer(r"torch\.load\(", text):
            call = text[m.start(): text.find("\n\n", m.start())]
            depth, end = 0, 0
            for i, ch in enumerate(call):  # the call's own parentheses
                depth += ch == "("
                depth -= ch == ")"
                if depth == 0 and ch == ")":
                    end = i
                    break
            if not end:
                continue  # in prose (a docstring), not a call
            assert "weights_only=True" in call[:end], f"{path}: {call[:end]}"
            calls += 1
    assert calls >= 1


def test_no_pickle_or_unsafe_yaml_anywhere():
    for path, text in _sources():
        assert not re.search(r"^\s*(import pickle|from pickle|import dill|import cloudpickle)", text, re.M), path
        assert not re.search(r"yaml\.(load|unsafe_load|full_load|load_all)\(", text), path
        assert not re.search(r"yaml\.(Unsafe|Full)?Loader\b", text), path
        assert "allow_pickle=True" not in text, path
        assert not re.search(r"(?<![\w.])(eval|exec)\(", text), path


def test_checkpoint_payload_needs_no_pickle(tmp_path):
    """What training writes loads with weights_only=True and our loader, never torch's pickle path."""
    path = tmp_path / "x.pt"
    save_checkpoint({"state": {"w": torch.ones(2)}, "config": {"a": [1, 2.5, "x", None]}}, path, kind="x")
    obj = torch.load(path, weights_only=True)
    assert obj["config"] == {"a": [1, 2.5, "x", None]}
    with pytest.raises(CheckpointError, match="expected y"):
        load_checkpoint(path, kind="y")


# ------------------------------------------------------------------------------ scale-out


@pytest.mark.heavy  # two interpreters under torchrun, ~20 s on 2 cores
def test_torchrun_two_processes_run_both_stages_through_the_cli(data, tmp_path):
    """The README's launch line: both stages under torchrun (stage 2 reads what rank 0 wrote)."""
    import os
    import subprocess
    import sys

    torchrun = Path(sys.executable).with_name("torchrun")
    run = tmp_path / "run"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "musiclord.cli", "train", "--data", str(data),
           "--out", str(run), "--config", "tiny", "latent.steps=8", "amortized.steps=4", "device=cpu", "num_threads=1"]
    env = {**os.environ, "MUSICLORD_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    from musiclord.models import load_model

    assert load_model(run)[2]["stage"] == "amortized"
    assert load_checkpoint(run / "latent.pt", kind="latent")["step"] == 8
    assert load_checkpoint(run / "amortized.pt", kind="amortized")["step"] == 4


def test_translate_folder_keeps_files_that_share_a_stem(run_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "take.wav", tone(0.5), 16000)
    sf.write(src / "take.flac", tone(0.75), 16000)
    sf.write(src / "other.ogg", tone(0.25), 16000)
    out = tmp_path / "out"
    assert main(["translate", str(src), "--model", str(run_dir), "--to", "flute", "-o", str(out), "--gl-iters", "1"]) == 0
    frames = {p.name: sf.info(p).frames for p in out.iterdir()}
    assert frames == {"take.wav.wav": 8000, "take.flac.wav": 12000, "other.wav": 4000}
