"""`musiclord prepare` and `musiclord data info` through the CLI entry: success and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from musiclord.cli import main


def _folder(root, classes=("a", "b"), seconds=4.2):
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for j in range(2):
            t = np.arange(int(seconds * 16000)) / 16000
            sf.write(root / cls / f"{j}.wav", (0.3 * np.sin(2 * np.pi * (220 + 110 * k + 5 * j) * t)).astype(np.float32), 16000)
    return root


def test_prepare_folder_then_info(tmp_path, capsys):
    root = _folder(tmp_path / "rec")
    out = tmp_path / "ds"
    assert main(["prepare", "folder", "--root", str(root), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "classes   a, b" in text and "train" in text and "paired test windows: 0" in text
    # an existing output is kept without --force, replaced with it
    before = (out / "manifest.jsonl").read_text()
    assert main(["prepare", "folder", "--root", str(root), "--out", str(out), "--workers", "1", "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "manifest.jsonl").read_text() == before
    assert main(["prepare", "folder", "--root", str(root), "--out", str(out), "--workers", "1", "--quiet",
                 "--force", "--hop-seconds", "1.0", "--mel", "n_mels=64"]) == 0  # fmt: skip
    header = json.loads((out / "dataset.json").read_text())
    assert header["mel"]["n_mels"] == 64 and header["options"]["hop_seconds"] == 1.0
    assert len((out / "manifest.jsonl").read_text().splitlines()) > len(before.splitlines())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["prepare", "folder", "--root", "{tmp}/nowhere", "--out", "{tmp}/ds"], "no such folder"),
        (["prepare", "musicnet", "--root", "{tmp}/nowhere", "--out", "{tmp}/ds"], "no such MusicNet folder"),
        (["prepare", "synth", "--out", "{tmp}/ds", "--classes", "cello", "kazoo"], "unknown instrument 'kazoo'"),
        (["prepare", "synth", "--out", "{tmp}/ds", "--classes", "cello", "violin", "--soundfont", "{tmp}/x.sf2"],
         "no such file"),
        (["prepare", "folder", "--root", "{tmp}", "--out", "{tmp}/ds", "--mel", "n_melz=3"], "unknown config key"),
        (["data", "info", "{tmp}/nowhere"], "no such dataset directory"),
        (["data", "info", "{tmp}"], "not a musiclord dataset"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("musiclord: error:") and message in err and "\n" not in err
    assert not (tmp_path / "ds").exists()


def test_class_without_usable_clip_exits_2(tmp_path, capsys):
    root = _folder(tmp_path / "rec")
    for f in (root / "b").iterdir():
        sf.write(f, np.zeros(16000 * 3, np.float32), 16000)  # silent
    assert main(["prepare", "folder", "--root", str(root), "--out", str(tmp_path / "ds"), "--workers", "1", "--quiet"]) == 2
    assert "'b' has no usable" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]


def test_newer_dataset_version_is_refused(tmp_path, capsys):
    root = _folder(tmp_path / "rec")
    out = tmp_path / "ds"
    assert main(["prepare", "folder", "--root", str(root), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    header = json.loads((out / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps(header | {"version": 2}))
    assert main(["data", "info", str(out)]) == 2
    assert "version 2 is not supported" in capsys.readouterr().err
