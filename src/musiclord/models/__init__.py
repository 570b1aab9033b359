"""Networks: the AdaIN generator, the stage-2 encoders and the inference bundle."""

from musiclord.models.config import ModelConfig
from musiclord.models.encoders import ClassEncoder, ContentEncoder
from musiclord.models.generator import Generator, adain
from musiclord.models.lord import MODEL_FILE, LordModel, load_model, resolve_model_path, save_model

__all__ = [
    "MODEL_FILE",
    "ClassEncoder",
    "ContentEncoder",
    "Generator",
    "LordModel",
    "ModelConfig",
    "adain",
    "load_model",
    "resolve_model_path",
    "save_model",
]
