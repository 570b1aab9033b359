"""The pretrained model shipped inside the package (`--model pretrained`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from musiclord.errors import CheckpointError

PRETRAINED_FILE = "model.pt"


def pretrained_path() -> Path:
    """Path of the shipped model file.

    Raises:
        CheckpointError: this installation ships no pretrained model.
    """
    path = Path(str(resources.files(__package__).joinpath(PRETRAINED_FILE)))
    if not path.is_file():
        raise CheckpointError("this musiclord installation ships no pretrained model (musiclord/pretrained/model.pt)")
    return path


def has_pretrained() -> bool:
    """Whether a pretrained model is shipped."""
    try:
        pretrained_path()
    except CheckpointError:
        return False
    return True
