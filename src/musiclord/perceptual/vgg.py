"""VGG16 (Simonyan and Zisserman 2015) as a frozen perceptual network over log-mel images.

The layout is torchvision's (`features.0.weight`, ..., `features.28.bias`), so a torchvision
VGG16 state dict loads as it is; only the convolutional part up to the last tap is built.
Nothing is downloaded: the weights come from a local file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from musiclord.errors import CheckpointError

# torchvision's configuration "D"; "M" is a 2x2 max-pool
VGG16_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                                       512, 512, 512, "M")
# indices in `features` of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
VGG16_TAPS: tuple[int, ...] = (3, 8, 15, 22, 29)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _make_features(n_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 3
    for v in VGG16_LAYOUT:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            c_in = int(v)
    return nn.Sequential(*layers[:n_layers])


class VGG16Features(nn.Module):
    """The convolutional trunk of VGG16 up to its `taps`-th tap.

    Args:
        taps: 1-5 stages (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) to return.
        mel_range: (low, high) normalised log-mel values mapped to image values 0 and 1.
    """

    def __init__(self, taps: int = 3, mel_range: tuple[float, float] = (-2.0, 3.5)) -> None:
        super().__init__()
        if not 1 <= taps <= len(VGG16_TAPS):
            raise ValueError(f"taps must be 1-{len(VGG16_TAPS)}")
        self.tap_index = VGG16_TAPS[:taps]
        self.features = _make_features(self.tap_index[-1] + 1)
        self.mel_range = mel_range
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def to_image(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, M, T) normalised log-mel -> (B, 3, M, T) ImageNet-normalised grey image (low
        frequencies at the bottom, as an image of a spectrogram is seen)."""
        lo, hi = self.mel_range
        x = ((mel - lo) / (hi - lo)).flip(-2)[:, None].expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def forward(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """Same as `taps`."""
        return self.taps(mel)

    def taps(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """mel (B, M, T) -> activations at the taps, (B, C_i, M / 2**i, T / 2**i)."""
        x = self.to_image(mel)
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.tap_index:
                out.append(x)
        return out


def load_vgg16(path: str | Path, taps: int = 3) -> VGG16Features:
    """Build VGG16Features and load a torchvision-format state dict from a local file.

    Args:
        path: a file saved with torch.save(state_dict) (torchvision's vgg16 .pth works); read with
            `torch.load(weights_only=True)`, so it cannot run code.
        taps: stages to compare.

    Raises:
        CheckpointError: missing, unreadable, or without the VGG16 convolution weights.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"VGG16 weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable VGG16 state dict ({e.__class__.__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a VGG16 state dict")
    net = VGG16Features(taps)
    wanted = {k for k in net.state_dict() if k.startswith("features.")}
    missing = sorted(wanted - set(state))
    if missing:
        raise CheckpointError(f"{path}: not a torchvision VGG16 state dict (missing {missing[0]})")
    try:
        net.load_state_dict({k: state[k] for k in wanted}, strict=False)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: VGG16 weights do not fit ({str(e)[:120]})") from None
    return net.eval()
