import pickle

import pytest
import torch

from musiclord.checkpoint import load_checkpoint, save_checkpoint
from musiclord.errors import CheckpointError


def test_round_trip_and_kind(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint({"w": torch.arange(3.0), "step": 7, "names": ["a"]}, path, kind="latent")
    obj = load_checkpoint(path, kind="latent")
    assert obj["step"] == 7 and torch.equal(obj["w"], torch.arange(3.0)) and obj["names"] == ["a"]
    with pytest.raises(CheckpointError, match="expected"):
        load_checkpoint(path, kind="model")
    assert not list(tmp_path.glob("*.tmp"))


def test_a_loaded_checkpoint_written_again_takes_the_new_header(tmp_path):
    save_checkpoint({"step": 7}, tmp_path / "a.pt", kind="latent")
    save_checkpoint({**load_checkpoint(tmp_path / "a.pt"), "step": 8}, tmp_path / "b.pt", kind="model")
    obj = load_checkpoint(tmp_path / "b.pt", kind="model")  # the old header's kind does not survive
    assert obj["kind"] == "model" and obj["step"] == 8


def test_missing_truncated_and_foreign(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    good = tmp_path / "good.pt"
    save_checkpoint({"w": torch.randn(100)}, good, kind="x")
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "text.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the file is a hand-made pickle: expected
def test_pickled_code_is_never_executed(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "musiclord", "version": 1, "kind": "x", "evil": _Evil()}, f)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert "code ran" not in capsys.readouterr().out


def test_overwrite_is_atomic(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint({"v": 1}, path, kind="x")
    save_checkpoint({"v": 2}, path, kind="x")
    assert load_checkpoint(path)["v"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
