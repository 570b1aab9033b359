"""Datasets: prepare them from scores (synth), MusicNet or a folder of recordings; read them back.

A dataset directory (format version 1, see docs/design.md) holds dataset.json, manifest.jsonl
(`ClipRecord` rows), mels.npy (float16 (N, M, T) normalised log-mel) and waves/.
"""

from musiclord.data.dataset import Dataset, describe, read_header
from musiclord.data.folder import FolderOptions, prepare_folder
from musiclord.data.instruments import Instrument, common_range, resolve_instrument, resolve_instruments
from musiclord.data.musicnet import MusicNetOptions, class_name, prepare_musicnet
from musiclord.data.records import FORMAT, SPLITS, VERSION, ClipRecord
from musiclord.data.synth import SynthOptions, prepare_synth

__all__ = [
    "FORMAT",
    "SPLITS",
    "VERSION",
    "ClipRecord",
    "Dataset",
    "FolderOptions",
    "Instrument",
    "MusicNetOptions",
    "SynthOptions",
    "class_name",
    "common_range",
    "describe",
    "prepare_folder",
    "prepare_musicnet",
    "prepare_synth",
    "read_header",
    "resolve_instrument",
    "resolve_instruments",
]
