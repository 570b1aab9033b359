"""musiclord: music inter-class disentanglement (LORD on log-mel spectrograms).

Translate solo instrument recordings from one instrument to another by separating
*what is played* (per-clip content codes) from *what plays it* (per-class embeddings).
"""

__version__ = "0.1.0"

from musiclord.errors import MusiclordError  # noqa: E402

__all__ = ["MusiclordError", "__version__"]
