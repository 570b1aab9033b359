import dataclasses

import pytest
import torch

from musiclord.audio import MelConfig
from musiclord.errors import CheckpointError, ConfigError
from musiclord.models import LordModel, ModelConfig, adain, load_model, save_model

TINY = ModelConfig(n_mels=16, n_frames=32, content_dim=4, content_frames=8, class_dim=8,
                   gen_channels=16, gen_blocks=3, enc_channels=16, enc_blocks=2, adain_hidden=16)


def test_shapes():
    torch.manual_seed(0)
    m = LordModel(TINY, ["a", "b"])
    mel = torch.randn(3, 16, 32)
    c = m.encode_content(mel)
    assert c.shape == (3, 4, 8)
    e = m.encode_class(mel)
    assert e.shape == (3, 8)
    assert m.decode(c, e).shape == (3, 16, 32)
    assert m.translate(mel, m.class_embeddings[1]).shape == (3, 16, 32)
    # the class encoder pools over time: any length works
    assert m.encode_class(torch.randn(2, 16, 50)).shape == (2, 8)


def test_adain_sets_statistics():
    x = torch.randn(2, 5, 40) * 3 + 7
    scale, shift = torch.randn(2, 5), torch.randn(2, 5)
    y = adain(x, scale, shift)
    assert torch.allclose(y.mean(-1), shift, atol=1e-4)
    assert torch.allclose(y.std(-1, unbiased=False), (1 + scale).abs(), atol=1e-3)


def test_class_embedding_changes_output():
    torch.manual_seed(0)
    m = LordModel(TINY, ["a", "b"])
    c = torch.randn(1, 4, 8)
    a = m.decode(c, torch.randn(1, 8))
    b = m.decode(c, torch.randn(1, 8))
    assert not torch.allclose(a, b)


def test_bad_sizes_rejected():
    with pytest.raises(ConfigError):
        ModelConfig(n_frames=128, content_frames=48)
    with pytest.raises(ConfigError):
        ModelConfig(n_frames=128, content_frames=2, gen_blocks=4)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    m = LordModel(TINY, ["cello", "violin"])
    m.class_embeddings.normal_()
    save_model(m, tmp_path / "model.pt", MelConfig(), meta={"stage": "amortized"})
    m2, mel_cfg, meta = load_model(tmp_path)  # a run directory works too
    assert m2.classes == ["cello", "violin"] and meta["stage"] == "amortized" and mel_cfg == MelConfig()
    mel = torch.randn(2, 16, 32)
    with torch.no_grad():
        assert torch.equal(m.eval().translate(mel, m.class_embeddings[0]), m2.translate(mel, m2.class_embeddings[0]))


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no trained model"):
        load_model(tmp_path)
    from musiclord.checkpoint import save_checkpoint

    save_checkpoint({"model_config": {"bogus": 1}}, tmp_path / "model.pt", kind="model")
    with pytest.raises(CheckpointError):
        load_model(tmp_path)


@pytest.mark.parametrize("mode", ["mean", "standard"])
def test_content_norm_hides_each_code_channels_level(mode, tmp_path):
    """With `content_norm` the generator sees only each channel's pattern over time: codes that
    differ by a per-channel offset ("mean"; and gain, "standard") decode alike, and the reported
    codes are normalised so."""
    torch.manual_seed(0)
    cfg = ModelConfig(n_mels=32, n_frames=32, content_dim=4, content_frames=8, class_dim=8, gen_channels=16,
                      gen_blocks=2, adain_hidden=16, enc_channels=16, enc_blocks=2, content_norm=mode)
    model = LordModel(cfg, ["a", "b"]).eval()
    c, e = torch.randn(3, 4, 8), torch.randn(3, 8)
    gain = torch.rand(3, 4, 1) * 3 + 0.2 if mode == "standard" else torch.ones(3, 4, 1)
    offset = torch.randn(3, 4, 1) * 5
    torch.testing.assert_close(model.decode(c * gain + offset, e), model.decode(c, e), atol=1e-3, rtol=1e-3)
    codes = model.encode_content(torch.randn(3, 32, 32))
    torch.testing.assert_close(codes.mean(-1), torch.zeros(3, 4), atol=1e-5, rtol=0)
    if mode == "standard":
        torch.testing.assert_close(codes.var(-1, unbiased=False), torch.ones(3, 4), atol=1e-3, rtol=0)
    else:
        assert not torch.allclose(codes.var(-1, unbiased=False), torch.ones(3, 4), atol=1e-2)
    plain = LordModel(dataclasses.replace(cfg, content_norm="none"), ["a", "b"]).eval()
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain.decode(c * gain + offset, e), plain.decode(c, e), atol=1e-3)
    save_model(model, tmp_path / "m.pt", MelConfig(), meta={})
    assert load_model(tmp_path / "m.pt")[0].cfg.content_norm == mode
    with pytest.raises(ConfigError, match="content_norm"):
        dataclasses.replace(cfg, content_norm="instance")
