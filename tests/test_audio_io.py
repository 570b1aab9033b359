"""Loading audio: formats, bit depths, rates, channels, and every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from musiclord.audio import audio_info, list_audio, load_audio, save_audio, stream_audio
from musiclord.errors import AudioError, MusiclordError


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


@pytest.mark.parametrize(
    "ext,fmt,subtype,tol",
    [
        (".wav", "WAV", "PCM_16", 1e-4),
        (".wav", "WAV", "FLOAT", 1e-7),
        (".flac", "FLAC", "PCM_16", 1e-4),
        (".wav", "WAV", "PCM_24", 1e-6),
        (".wav", "WAV", "PCM_U8", 1e-2),
        (".ogg", "OGG", "VORBIS", None),
    ],
)
def test_format_round_trip(tmp_path, ext, fmt, subtype, tol) -> None:
    x = sine(440.0, 16000, 0.5)
    path = tmp_path / f"a{ext}"
    sf.write(str(path), x, 16000, format=fmt, subtype=subtype)
    y = load_audio(path, 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    if tol is None:  # lossy: same length, same pitch, correlated
        assert abs(len(y) - len(x)) < 2000
        n = min(len(x), len(y))
        assert np.corrcoef(x[:n], y[:n])[0, 1] > 0.95
        assert abs(peak_hz(y, 16000) - 440.0) < 5
    else:
        assert len(y) == len(x)
        assert np.abs(y - x).max() < tol


@pytest.mark.parametrize("file_sr", [96000, 44100, 22050, 8000])
def test_resampling_keeps_length_and_frequency(tmp_path, file_sr) -> None:
    path = tmp_path / "r.wav"
    sf.write(str(path), sine(1000.0, file_sr, 1.0), file_sr, subtype="PCM_24")
    y = load_audio(path, 16000)
    assert abs(len(y) - 16000) <= 1
    assert abs(peak_hz(y, 16000) - 1000.0) < 2.0
    assert 0.4 < np.abs(y[1000:-1000]).max() < 0.6
    assert audio_info(path) == (file_sr, 1, file_sr)


def test_six_channels_are_mixed_to_mono(tmp_path) -> None:
    x = np.stack([sine(220.0 * (c + 1), 16000, 0.25, amp=0.1) for c in range(6)], axis=1)
    path = tmp_path / "six.wav"
    sf.write(str(path), x, 16000, subtype="FLOAT")
    y = load_audio(path)
    np.testing.assert_allclose(y, x.mean(axis=1), atol=1e-6)


def test_nan_and_inf_samples_become_zero(tmp_path) -> None:
    x = sine(300.0, 16000, 0.1)
    x[10], x[20], x[30] = np.nan, np.inf, -np.inf
    path = tmp_path / "nan.wav"
    sf.write(str(path), x, 16000, subtype="FLOAT")
    y = load_audio(path)
    assert np.isfinite(y).all()
    assert y[10] == y[20] == y[30] == 0.0
    assert np.isfinite(np.concatenate(list(stream_audio(path)))).all()
    # and through the resampler
    sf.write(str(path), x, 44100, subtype="FLOAT")
    assert np.isfinite(load_audio(path)).all()


def test_silence_and_one_sample_are_defined(tmp_path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(str(path), np.zeros(16000, np.float32), 16000)
    y = load_audio(path)
    assert y.shape == (16000,) and not y.any()
    one = tmp_path / "one.wav"
    sf.write(str(one), np.array([0.25], np.float32), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(one), [0.25])
    sf.write(str(one), np.array([0.25], np.float32), 96000, subtype="FLOAT")
    with pytest.raises(AudioError, match="one.wav"):
        load_audio(one)  # a sixth of a sample at 16 kHz


def write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", ["empty", "text", "truncated_header", "directory", "missing", "zero_frames"])
def test_bad_inputs_raise_an_error_naming_the_file(tmp_path, case) -> None:
    if case == "empty":
        path = write_bytes(tmp_path / "empty.wav", b"")
    elif case == "text":
        path = write_bytes(tmp_path / "notes.wav", b"this is not audio, just some text\n" * 10)
    elif case == "truncated_header":
        good = tmp_path / "good.wav"
        sf.write(str(good), sine(440.0, 16000, 0.1), 16000)
        path = write_bytes(tmp_path / "truncated.wav", good.read_bytes()[:20])
    elif case == "directory":
        path = tmp_path / "folder.wav"
        path.mkdir()
    elif case == "missing":
        path = tmp_path / "nowhere.wav"
    else:
        path = tmp_path / "zero.wav"
        sf.write(str(path), np.zeros(0, np.float32), 16000)
    for fn in (load_audio, lambda p: list(stream_audio(p))):
        with pytest.raises(AudioError) as err:
            fn(path)
        assert path.name in str(err.value)
        assert isinstance(err.value, MusiclordError)
        assert "\n" not in str(err.value)


def test_truncated_data_loads_what_is_there(tmp_path) -> None:
    good = tmp_path / "good.wav"
    sf.write(str(good), sine(440.0, 16000, 1.0), 16000)
    data = good.read_bytes()
    cut = write_bytes(tmp_path / "cut.wav", data[: len(data) // 2])
    y = load_audio(cut)
    assert 0 < len(y) < 16000 and np.isfinite(y).all()


def test_stream_matches_load_on_a_long_file_in_bounded_blocks(tmp_path) -> None:
    sr_file, minutes = 22050, 10
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=sr_file, channels=2, subtype="PCM_16") as f:
        for i in range(minutes * 6):  # ten-second blocks, sparse: a tone burst every 10 s
            block = np.zeros((sr_file * 10, 2), np.float32)
            block[:sr_file] = sine(200.0 + 10 * i, sr_file, 1.0, amp=0.3)[:, None] * rng.uniform(0.5, 1, 2)
            f.write(block)
    whole = load_audio(path)
    assert abs(len(whole) - minutes * 60 * 16000) <= 1
    block_seconds = 30.0
    sizes, parts = [], []
    for part in stream_audio(path, 16000, block_seconds=block_seconds):
        assert part.dtype == np.float32 and part.ndim == 1
        sizes.append(len(part))
        parts.append(part)
    assert max(sizes) <= block_seconds * 16000 * 1.01 + 1024
    assert len(sizes) >= minutes * 60 / block_seconds
    streamed = np.concatenate(parts)
    assert abs(len(streamed) - len(whole)) <= 1
    n = min(len(streamed), len(whole))
    assert np.abs(streamed[:n] - whole[:n]).max() < 1e-3


def test_stream_without_resampling_is_exact(tmp_path) -> None:
    path = tmp_path / "s.flac"
    x = sine(330.0, 16000, 3.0)
    sf.write(str(path), x, 16000)
    parts = list(stream_audio(path, 16000, block_seconds=1.0))
    assert [len(p) for p in parts] == [16000, 16000, 16000]
    np.testing.assert_array_equal(np.concatenate(parts), load_audio(path))


def test_save_audio_clips_and_round_trips(tmp_path) -> None:
    x = np.array([0.0, 0.5, -0.5, 2.0, -3.0, np.nan], np.float32)
    path = tmp_path / "sub" / "out.wav"
    save_audio(path, x, 16000)
    y = load_audio(path, 16000)
    np.testing.assert_allclose(y, [0.0, 0.5, -0.5, 1.0, -1.0, 0.0], atol=1e-4)


def test_list_audio_finds_audio_by_extension(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    for name in ("a/x.WAV", "b.flac", "c.txt", "a/d.ogg"):
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in list_audio(tmp_path)] == ["a/d.ogg", "a/x.WAV", "b.flac"]


def test_soxr_reference_agrees_with_load(tmp_path) -> None:
    x = sine(523.0, 44100, 0.5)
    path = tmp_path / "ref.wav"
    sf.write(str(path), x, 44100, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), soxr.resample(x, 44100, 16000, quality="HQ"), atol=1e-6)
