"""Evaluation: translation metrics on audio, the timbre classifier, probes, figures and the report.

`evaluate(models, data_dir, out_dir, options)` runs everything; `summary_table(metrics)` gives the
text table `make demo` prints.
"""

from musiclord.evaluate.adapters import load_translator, open_dataset
from musiclord.evaluate.lsd import lsd
from musiclord.evaluate.pitch import raw_pitch_accuracy, track_f0
from musiclord.evaluate.probe import probe_accuracy, tsne_2d
from musiclord.evaluate.report import summary_table
from musiclord.evaluate.run import EvalOptions, evaluate
from musiclord.evaluate.timbre import TimbreConfig

__all__ = [
    "EvalOptions",
    "TimbreConfig",
    "evaluate",
    "load_translator",
    "lsd",
    "open_dataset",
    "probe_accuracy",
    "raw_pitch_accuracy",
    "summary_table",
    "track_f0",
    "tsne_2d",
]
