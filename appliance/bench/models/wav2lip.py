"""The Wav2Lip generator (Prajwal et al. 2020) with random weights, exported to ONNX for honest timing.

The production lip-sync model (``lipsync-wav2lip-onnx``, see :mod:`appliance.engines.lipsync_onnx`) has
non-commercial weights that cannot be downloaded here; its cost is set by the architecture alone, so
this module rebuilds that architecture layer for layer and fills it with seeded random weights.

Architecture: the ``Wav2Lip`` class of github.com/Rudrabha/Wav2Lip ``models/wav2lip.py`` (96×96 model,
with ``Conv2d`` / ``Conv2dTranspose`` from ``models/conv.py``), checked against that file:

* ``face_encoder_blocks``: 7 blocks, 96→48→24→12→6→3→1 spatially, channels 16-32-64-128-256-512-512,
  each block a strided conv followed by residual 3×3 convs (every conv = Conv2d + BatchNorm + ReLU,
  residual ones add their input before the ReLU);
* ``audio_encoder``: 13 convs on the [1, 80, 16] mel chunk, strides 1, (3, 1), 3, (3, 2), then a
  3×3 valid conv and a 1×1 conv down to [512, 1, 1];
* ``face_decoder_blocks``: 7 blocks, each a (transposed) conv + residual convs, whose output is
  concatenated with the matching encoder feature map (U-Net skips): 1→3→6→12→24→48→96;
* ``output_block``: Conv2d(80→32) + BN + ReLU, plain 1×1 Conv2d(32→3), sigmoid.

Module and attribute names (``face_encoder_blocks.0.0.conv_block.0.weight`` …) are those of the
original, so a real checkpoint's ``state_dict`` (``module.`` prefix stripped) would load into the
``"full"`` model unchanged. ``"full"`` has 36,298,035 parameters (BatchNorm affine included; running
statistics are buffers), the figure usually quoted as ~36.3 M for ``wav2lip_gan.pth``.

``"tiny"`` is the same topology, layer list, kernels and strides with every channel count divided by 8
(inputs and outputs unchanged), for fast tests.

The ONNX file keeps the engine's contract: inputs ``source`` float32 [1, 1, 80, 16] and ``target``
float32 [1, 6, 96, 96], output ``output`` float32 [1, 3, 96, 96] in 0…1. It is exported in eval mode
with the legacy (TorchScript) exporter, so BatchNorm is folded into the convolutions, as in the
facefusion export of the real model. Fidelity notes: the original's ``forward`` also accepts 5-D
(B, T, …) sequences, which the 4-D export never uses; BatchNorm running statistics are left at their
defaults (mean 0, variance 1), which changes values but not the graph or its cost.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

SIZES = {"full": 1, "tiny": 8}  # channel divisor


class Conv2d(nn.Module):
    """Conv2d + BatchNorm2d + ReLU, optionally adding the input before the ReLU (``models/conv.py``)."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, residual: bool = False) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class Conv2dTranspose(nn.Module):
    """ConvTranspose2d + BatchNorm2d + ReLU (``models/conv.py``)."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, output_padding=0) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


class Wav2Lip(nn.Module):
    """The Wav2Lip 96×96 generator; ``div`` divides every internal channel count (1 = the original)."""

    def __init__(self, div: int = 1) -> None:
        super().__init__()

        def c(n: int) -> int:
            return n // div

        def res(n: int) -> Conv2d:
            return Conv2d(c(n), c(n), 3, 1, 1, residual=True)

        def up(cin: int, cout: int) -> Conv2dTranspose:
            return Conv2dTranspose(c(cin), c(cout), 3, 2, 1, output_padding=1)

        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2d(6, c(16), 7, 1, 3)),  # 96,96
            nn.Sequential(Conv2d(c(16), c(32), 3, 2, 1), res(32), res(32)),  # 48,48
            nn.Sequential(Conv2d(c(32), c(64), 3, 2, 1), res(64), res(64), res(64)),  # 24,24
            nn.Sequential(Conv2d(c(64), c(128), 3, 2, 1), res(128), res(128)),  # 12,12
            nn.Sequential(Conv2d(c(128), c(256), 3, 2, 1), res(256), res(256)),  # 6,6
            nn.Sequential(Conv2d(c(256), c(512), 3, 2, 1), res(512)),  # 3,3
            nn.Sequential(Conv2d(c(512), c(512), 3, 1, 0), Conv2d(c(512), c(512), 1, 1, 0)),  # 1,1
        ])

        self.audio_encoder = nn.Sequential(
            Conv2d(1, c(32), 3, 1, 1), res(32), res(32),  # 80,16
            Conv2d(c(32), c(64), 3, (3, 1), 1), res(64), res(64),  # 27,16
            Conv2d(c(64), c(128), 3, 3, 1), res(128), res(128),  # 9,6
            Conv2d(c(128), c(256), 3, (3, 2), 1), res(256),  # 3,3
            Conv2d(c(256), c(512), 3, 1, 0),  # 1,1
            Conv2d(c(512), c(512), 1, 1, 0),
        )

        self.face_decoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2d(c(512), c(512), 1, 1, 0)),  # 1,1
            nn.Sequential(Conv2dTranspose(c(1024), c(512), 3, 1, 0), res(512)),  # 3,3
            nn.Sequential(up(1024, 512), res(512), res(512)),  # 6,6
            nn.Sequential(up(768, 384), res(384), res(384)),  # 12,12
            nn.Sequential(up(512, 256), res(256), res(256)),  # 24,24
            nn.Sequential(up(320, 128), res(128), res(128)),  # 48,48
            nn.Sequential(up(160, 64), res(64), res(64)),  # 96,96
        ])

        self.output_block = nn.Sequential(
            Conv2d(c(80), c(32), 3, 1, 1),
            nn.Conv2d(c(32), 3, kernel_size=1, stride=1, padding=0),
            nn.Sigmoid(),
        )

    def forward(self, audio: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """``audio`` [B, 1, 80, 16] mel chunk, ``face`` [B, 6, 96, 96] -> [B, 3, 96, 96] in 0…1."""
        x = face
        feats = []
        for block in self.face_encoder_blocks:
            x = block(x)
            feats.append(x)
        x = self.audio_encoder(audio)  # B, 512, 1, 1
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), feats.pop()), dim=1)
        return self.output_block(x)


def make(size: str = "tiny", seed: int = 0) -> Wav2Lip:
    """The torch module for ``size`` ("full" or "tiny") with seeded random weights, in eval mode."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {sorted(SIZES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Wav2Lip(div=SIZES[size])
    return model.eval()


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(path: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write the Wav2Lip ONNX file for ``size`` to ``path`` (the lip-sync engine's I/O contract)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = make(size, seed)
    source = torch.zeros(1, 1, 80, 16)
    target = torch.zeros(1, 6, 96, 96)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is asked for on purpose
        torch.onnx.export(
            model, (source, target), str(path), dynamo=False,
            input_names=["source", "target"], output_names=["output"], opset_version=17,
        )
    return path
