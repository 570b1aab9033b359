"""The audio front end: loading, log-mel analysis and Griffin-Lim synthesis, all in torch."""

from musiclord.audio.griffinlim import griffin_lim, invert, mel_to_linear, spectral_convergence
from musiclord.audio.io import AUDIO_EXTENSIONS, audio_info, list_audio, load_audio, save_audio, stream_audio
from musiclord.audio.mel import (
    PRESETS,
    MelConfig,
    log_denormalize,
    log_normalize,
    logmel,
    mel_basis,
    mel_power,
    silence_level,
    stft,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "PRESETS",
    "MelConfig",
    "audio_info",
    "griffin_lim",
    "invert",
    "list_audio",
    "load_audio",
    "log_denormalize",
    "log_normalize",
    "logmel",
    "mel_basis",
    "mel_power",
    "mel_to_linear",
    "save_audio",
    "silence_level",
    "spectral_convergence",
    "stft",
    "stream_audio",
]
