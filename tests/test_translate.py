"""Translation: streaming analysis/cross-fade/inversion invariants, Translator API, CLI, bad input."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from musiclord.audio import MelConfig, invert, logmel, silence_level
from musiclord.cli import main
from musiclord.errors import AudioError, CheckpointError, ConfigError, MusiclordError
from musiclord.models import LordModel, ModelConfig, save_model
from musiclord.translate import TranslateConfig, Translator, UnknownInstrumentError
from musiclord.translate.stream import BlockInverter, LogMelStream, MelOverlapAdd, window_weights

CLASSES = ["piano", "violin", "flute"]
TINY = ModelConfig(content_dim=4, class_dim=8, gen_channels=16, gen_blocks=2, adain_hidden=16, enc_channels=16,
                   enc_blocks=2)
FAST = TranslateConfig(gl_iters=2, nnls_iters=2, latent_steps=5)


def make_model(root: Path, stage: str = "amortized", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    m = LordModel(TINY, CLASSES)
    m.class_embeddings.normal_()
    save_model(m, root / "model.pt", MelConfig(), {"stage": stage})
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def tr(run_dir) -> Translator:
    return Translator.from_checkpoint(run_dir, device="cpu", cfg=FAST)


def tones(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A melody of decaying harmonic notes."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    out = np.zeros(n, dtype=np.float32)
    for start in np.arange(0, seconds, 0.25):
        f0 = 220 * 2 ** (rng.integers(0, 12) / 12)
        on = (t >= start) & (t < start + 0.25)
        env = np.exp(-(t[on] - start) * 6)
        out[on] += (0.4 * env * (np.sin(2 * np.pi * f0 * t[on]) + 0.3 * np.sin(4 * np.pi * f0 * t[on])))
    return out


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------ streaming pieces


@pytest.mark.parametrize("n, chunk", [(80123, 7777), (32000, 32000), (251, 100), (1, 1), (3000, 1)])
def test_logmel_stream_equals_whole_signal_logmel(n, chunk):
    cfg = MelConfig()
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    s = LogMelStream(cfg)
    frames = [s.push(x[i:i + chunk]) for i in range(0, n, chunk)] + [s.finish()]
    got = torch.cat(frames, dim=1)
    padded = np.concatenate([x, np.zeros(-n % cfg.hop_length, np.float32)])
    want = logmel(torch.from_numpy(padded), cfg)
    assert got.shape == want.shape == (128, math.ceil(n / cfg.hop_length))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_window_weights_sum_to_one_at_half_overlap():
    w = window_weights(128)
    assert (w > 0).all()
    torch.testing.assert_close(w[:64] + w[64:], torch.ones(64))


@pytest.mark.parametrize("n_frames", [1, 63, 128, 129, 300, 641])
def test_overlap_add_of_the_identity_is_the_identity(n_frames):
    x = torch.randn(8, n_frames)
    calls = []

    def fn(w):
        calls.append(w.shape[0])
        assert w.shape[1:] == (8, 16)
        return w

    ola = MelOverlapAdd(fn, win=16, hop=8, batch_size=3, pad_value=-9.0)
    out = [ola.push(x[:, i:i + 10]) for i in range(0, n_frames, 10)] + [ola.finish()]
    y = torch.cat(out, dim=1)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)
    assert max(calls) <= 3


def test_overlap_add_cross_fades_between_windows():
    """Windows translated to constants: the output moves smoothly between them, no jumps."""
    counter = iter(range(1000))
    ola = MelOverlapAdd(lambda w: torch.stack([torch.full_like(v, float(next(counter))) for v in w]),
                        win=16, hop=8, batch_size=2, pad_value=0.0)
    y = torch.cat([ola.push(torch.zeros(1, 64)), ola.finish()], dim=1)[0]
    assert y.shape == (64,)
    assert y.diff().abs().max() < 0.25  # window values step by 1; the sin² fade spreads each step


@pytest.mark.parametrize("n_frames", [1, 100, 640, 641, 1500])
def test_block_inverter_length_and_seamless_joins(n_frames):
    cfg = MelConfig()
    calls = []

    def fake_invert(m):  # a constant signal: any gain error at a join would show
        calls.append(m.shape[-1])
        return torch.ones(m.shape[0], m.shape[-1] * cfg.hop_length)

    inv = BlockInverter(cfg, block_frames=128, overlap_frames=32, invert_fn=fake_invert)
    out = [inv.push(torch.zeros(128, k)) for k in np.diff([0, *range(37, n_frames, 37), n_frames])]
    y = np.concatenate(out + [inv.finish()])
    assert y.shape == (n_frames * cfg.hop_length,)
    np.testing.assert_allclose(y, 1.0, atol=1e-6)
    assert max(calls) <= 128


def test_block_inverter_batches_blocks_with_the_same_result():
    """Blocks completed by one push are inverted max_batch at a time, with the same result."""
    cfg = MelConfig()
    frames = logmel(torch.from_numpy(tones(3.0)), cfg)  # 192 frames: 4 blocks of 64 (overlap 16)
    batches: list[int] = []

    def invert_fn(m):
        batches.append(m.shape[0])
        return invert(m, cfg, n_iter=4, nnls_iter=4)

    ys = []
    for step, max_batch, want in ((192, 8, [3, 1]), (192, 2, [2, 1, 1]), (192, 1, [1, 1, 1, 1]), (7, 8, [1] * 4)):
        batches.clear()
        inv = BlockInverter(cfg, block_frames=64, overlap_frames=16, invert_fn=invert_fn, max_batch=max_batch)
        out = [inv.push(frames[:, i : i + step]) for i in range(0, frames.shape[1], step)]
        ys.append(np.concatenate(out + [inv.finish()]))
        assert batches == want, (step, max_batch, batches)
        assert ys[-1].shape == (frames.shape[1] * cfg.hop_length,)
        np.testing.assert_allclose(ys[-1], ys[0], atol=1e-4)
    with pytest.raises(ValueError, match="max_batch"):
        BlockInverter(cfg, max_batch=0)


# ------------------------------------------------------------------------------ Translator


def test_translator_round_trip(run_dir, tr):
    assert tr.instruments == CLASSES
    assert tr.mel_config == MelConfig()
    assert tr.meta["stage"] == "amortized" and not tr.uses_latent_fit
    mel = torch.randn(3, 128, 128)
    assert tr.content_codes(mel).shape == (3, TINY.content_dim, TINY.content_frames)
    assert tr.class_codes(mel).shape == (3, TINY.class_dim)
    out = tr.translate_mel(mel, to="violin")
    assert out.shape == mel.shape and torch.isfinite(out).all()
    # a single loud window is exactly G(E_c(x), e_violin) (no gate where the input is loud)
    loud = torch.full((1, 128, 128), 2.0) + 0.1 * torch.randn(1, 128, 128)
    want = tr.model.decode(tr.model.encode_content(loud), tr.model.class_embeddings[1][None])
    torch.testing.assert_close(tr.translate_mel(loud, to="violin"), want)
    # different targets give different renderings
    assert not torch.allclose(tr.translate_mel(loud, to="piano"), tr.translate_mel(loud, to="violin"))
    assert tr.translate_mel(torch.randn(2, 128, 300), to="flute").shape == (2, 128, 300)


@pytest.mark.parametrize("sr", [16000, 44100, 8000])
@pytest.mark.parametrize("seconds", [0.3, 2.0, 7.3])
def test_output_length_is_the_input_duration(tr, sr, seconds):
    x = tones(seconds, sr)
    y = tr.translate(x, sr, to="piano")
    assert y.dtype == np.float32 and np.isfinite(y).all()
    assert y.shape == (round(len(x) * 16000 / sr),)


def test_edge_inputs_have_defined_results(tr):
    assert tr.translate(np.zeros(0, np.float32), 16000, to="piano").shape == (0,)
    assert tr.translate(np.array([0.5], np.float32), 16000, to="piano").shape == (1,)
    x = tones(1.0)
    x[100:200] = np.nan
    x[300] = np.inf
    y = tr.translate(x, 16000, to="piano")
    assert y.shape == x.shape and np.isfinite(y).all()
    stereo = np.stack([tones(1.0), tones(1.0, seed=1)], axis=1)
    assert tr.translate(stereo, 16000, to="flute").shape == (16000,)
    with pytest.raises(AudioError):
        tr.translate(np.zeros((2, 2, 2)), 16000, to="piano")
    with pytest.raises(AudioError):
        tr.translate(x, 0, to="piano")


def test_silence_stays_silent(tr):
    y = tr.translate(np.zeros(3 * 16000, np.float32), 16000, to="violin")
    assert np.abs(y).max() < 0.01
    # silence around a tone stays near silence, the tone does not
    x = np.concatenate([np.zeros(32000, np.float32), tones(2.0), np.zeros(32000, np.float32)])
    y = tr.translate(x, 16000, to="violin")
    assert np.abs(y[:24000]).max() < 0.01 and np.abs(y[-24000:]).max() < 0.01
    assert np.abs(y[32000:64000]).max() > 0.05


def test_unknown_instrument_lists_the_known_ones(tr):
    with pytest.raises(UnknownInstrumentError, match="piano, violin, flute"):
        tr.translate(tones(0.5), 16000, to="kazoo")
    with pytest.raises(MusiclordError):
        tr.translate(tones(0.5), 16000)  # neither to= nor like=


def test_like_takes_the_reference_class_code(tr, tmp_path):
    ref = tones(4.0, seed=3)
    emb = tr.like_embedding(ref, 16000)
    # the mean class code over the reference's 2 s windows (peak-normalised as translation does)
    mel = logmel(torch.from_numpy(ref * (0.9 / np.abs(ref).max())), tr.mel_config)
    want = tr.class_codes(torch.stack([mel[:, :128], mel[:, 128:256]])).mean(0)
    torch.testing.assert_close(emb, want, atol=1e-4, rtol=1e-4)
    sf.write(tmp_path / "ref.wav", ref, 16000)
    torch.testing.assert_close(tr.like_embedding(tmp_path / "ref.wav"), emb, atol=2e-3, rtol=1e-3)
    y = tr.translate(tones(1.0), 16000, like=ref)
    assert y.shape == (16000,)
    with pytest.raises(AudioError, match="silent"):
        tr.like_embedding(np.zeros(32000, np.float32), 16000)


def test_stage1_model_fits_codes_by_latent_optimisation(tmp_path):
    run = make_model(tmp_path, stage="latent")
    tr1 = Translator.from_checkpoint(run, cfg=TranslateConfig(latent_steps=150, latent_lr=0.05))
    assert tr1.uses_latent_fit
    g = tr1.model.generator
    torch.manual_seed(1)
    with torch.no_grad():
        target = g(torch.randn(2, TINY.content_dim, TINY.content_frames), tr1.model.class_embeddings[:2])
        start = torch.mean((g(torch.zeros(2, TINY.content_dim, TINY.content_frames),
                              tr1.model.class_embeddings.mean(0).expand(2, -1)) - target) ** 2)
    c = tr1.content_codes(target)
    e = tr1.class_codes(target)
    with torch.no_grad():
        fitted = torch.mean((g(c, e) - target) ** 2)
    assert fitted < 0.2 * start
    assert all(not p.requires_grad or p.grad is None for p in g.parameters())  # generator untouched


def test_refine_steps_fit_encoder_codes_to_the_input(run_dir):
    """refine_steps > 0: codes start at the encoder's and reconstruct the window better; 0 keeps them."""
    plain = Translator.from_checkpoint(run_dir)
    refined = Translator.from_checkpoint(run_dir, cfg=TranslateConfig(refine_steps=60, refine_lr=0.05,
                                                                      refine_anchor=0.01))
    torch.manual_seed(2)
    mel = torch.randn(2, TINY.n_mels, TINY.n_frames) * 0.5
    m = plain.model
    c0, c1 = plain.content_codes(mel), refined.content_codes(mel)
    assert torch.equal(c0, m.encode_content(mel).detach())
    with torch.no_grad():
        e = m.encode_class(mel)
        err0, err1 = (torch.mean((m.decode(c, e) - mel) ** 2) for c in (c0, c1))
    assert err1 < 0.9 * err0
    assert not torch.equal(c0, c1)
    assert all(p.grad is None for p in refined.model.generator.parameters())  # generator untouched


def test_translate_file_streams_and_writes_16k(tr, tmp_path):
    x = tones(3.3, 44100)
    sf.write(tmp_path / "in.flac", np.stack([x, x], axis=1), 44100)
    stats = tr.translate_file(tmp_path / "in.flac", tmp_path / "out" / "o.wav", to="violin")
    info = sf.info(tmp_path / "out" / "o.wav")
    assert info.samplerate == 16000 and info.channels == 1
    assert info.frames == round(len(x) * 16000 / 44100)
    assert stats["seconds_out"] == pytest.approx(info.frames / 16000) == pytest.approx(stats["seconds_in"])
    assert not list((tmp_path / "out").glob(".*"))  # no temp file left behind


def test_long_input_memory_is_bounded(run_dir, tmp_path):
    """5 minutes of sparse tones: peak traced memory no larger than for 1 minute."""
    cfg = TranslateConfig(gl_iters=1, nnls_iters=1, chunk_seconds=10.0, batch_size=16)
    tr_ = Translator.from_checkpoint(run_dir, cfg=cfg)
    peaks = {}
    for minutes in (1, 5):
        x = np.zeros(minutes * 60 * 16000, np.float32)
        for s in range(0, minutes * 60, 7):
            x[s * 16000: s * 16000 + 8000] = tones(0.5, seed=s)
        path = tmp_path / f"long{minutes}.wav"
        sf.write(path, x, 16000, subtype="PCM_16")
        del x
        tracemalloc.start()
        tr_.translate_file(path, tmp_path / f"out{minutes}.wav", to="piano")
        peaks[minutes] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert sf.info(tmp_path / f"out{minutes}.wav").frames == minutes * 60 * 16000
    # the whole 5-minute signal alone would be 19 MB as float32
    assert peaks[5] < 1.3 * peaks[1] + 1e6, peaks
    assert peaks[5] < 15e6, peaks


# ------------------------------------------------------------------------------ CLI


def test_cli_folder_with_a_bad_file_goes_on_and_fails_at_the_end(run_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.wav", tones(1.0, 22050), 22050)
    sf.write(src / "b.flac", np.stack([tones(0.7, 48000)] * 6, axis=1), 48000)
    (src / "c.wav").write_text("this is not audio")
    rc = main(["translate", str(src), "--model", str(run_dir), "--to", "violin", "-o", str(tmp_path / "out"),
               "--gl-iters", "2"])
    assert rc == 2
    assert "c.wav" in capsys.readouterr().err
    assert sf.info(tmp_path / "out" / "a.wav").frames == 16000
    assert sf.info(tmp_path / "out" / "b.wav").frames == round(0.7 * 16000)
    assert not (tmp_path / "out" / "c.wav").exists()


def test_cli_errors_are_one_line(run_dir, tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, tones(0.5), 16000)
    assert main(["translate", str(wav), "--model", str(run_dir), "--to", "kazoo", "-o", str(tmp_path / "o.wav")]) == 2
    err = capsys.readouterr().err.strip()
    assert "kazoo" in err and "piano, violin, flute" in err and len(err.splitlines()) == 1
    (tmp_path / "trunc").mkdir()
    (tmp_path / "trunc" / "model.pt").write_bytes((run_dir / "model.pt").read_bytes()[:500])
    assert main(["translate", str(wav), "--model", str(tmp_path / "trunc"), "--to", "piano", "-o",
                 str(tmp_path / "o.wav")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["translate", str(wav), "--model", str(tmp_path / "nowhere"), "--to", "piano", "-o",
                 str(tmp_path / "o.wav")]) == 2
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    assert main(["translate", str(empty), "--model", str(run_dir), "--to", "piano", "-o",
                 str(tmp_path / "o.wav")]) == 2
    assert "no audio" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --to and --like are mutually exclusive
        main(["translate", str(wav), "--model", str(run_dir), "--to", "piano", "--like", str(wav), "-o", "x.wav"])


def test_cli_like_and_file_output(run_dir, tmp_path):
    wav, ref = tmp_path / "a.ogg", tmp_path / "ref.wav"
    sf.write(wav, tones(1.5, 32000), 32000)
    sf.write(ref, tones(3.0, seed=5), 16000)
    assert main(["translate", str(wav), "--model", str(run_dir), "--like", str(ref), "-o", str(tmp_path / "o.wav"),
                 "--gl-iters", "2"]) == 0
    assert sf.info(tmp_path / "o.wav").frames == 24000


def test_checkpoint_errors_from_the_api(tmp_path):
    with pytest.raises(CheckpointError):
        Translator.from_checkpoint(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError):
        Translator.from_checkpoint(tmp_path)


def test_silence_level_is_the_floor():
    cfg = MelConfig()
    assert float(logmel(torch.zeros(4000), cfg).max()) == pytest.approx(silence_level(cfg))


def test_translate_mel_with_one_reference_per_clip(tr):
    torch.manual_seed(2)
    src, refs = torch.randn(2, 128, 128) + 1.0, torch.randn(2, 128, 128) + 1.0
    both = tr.translate_mel(src, like_mel=refs)
    for i in range(2):
        torch.testing.assert_close(both[i:i + 1], tr.translate_mel(src[i:i + 1], like_mel=refs[i:i + 1]))
    shared = tr.translate_mel(src, like_mel=refs[:1])
    torch.testing.assert_close(shared[1:], tr.translate_mel(src[1:], like_mel=refs[:1]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_translation_matches_cpu(run_dir, tr):
    from musiclord.audio import spectral_convergence

    gpu = Translator.from_checkpoint(run_dir, device="cuda", cfg=FAST)
    mel = 2.0 + 0.3 * torch.randn(2, 128, 300)
    # cuDNN convolutions run in TF32 by default (10-bit mantissa): equal to ~1e-2, not 1e-3
    torch.testing.assert_close(gpu.translate_mel(mel, to="violin").cpu(), tr.translate_mel(mel, to="violin"),
                               atol=3e-2, rtol=1e-2)
    x = tones(12.0)  # two inversion blocks on the GPU
    y_gpu, y_cpu = gpu.translate(x, 16000, to="flute"), tr.translate(x, 16000, to="flute")
    assert y_gpu.shape == y_cpu.shape == x.shape and np.isfinite(y_gpu).all()
    sc = spectral_convergence(torch.from_numpy(y_gpu)[None], torch.from_numpy(y_cpu)[None], MelConfig())
    assert float(sc[0]) < 0.5


def test_translate_config_refuses_bad_amounts_of_work():
    """One check for every caller (`translate`, `evaluate`, the Python API)."""
    for bad in ({"batch_size": 0}, {"gl_iters": 0}, {"latent_steps": -1}, {"refine_steps": -1}):
        with pytest.raises(ConfigError, match="refine-steps >= 0"):
            TranslateConfig(**bad)
    TranslateConfig(latent_steps=0, refine_steps=0)
