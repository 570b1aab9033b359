"""Inference: translate recordings of any length to a trained instrument or a reference's timbre."""

from musiclord.translate.translator import TranslateConfig, Translator, UnknownInstrumentError

__all__ = ["TranslateConfig", "Translator", "UnknownInstrumentError"]
