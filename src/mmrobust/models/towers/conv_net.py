"""A small residual CNN image tower: cheap on a CPU and strong at low resolution."""

from __future__ import annotations

import torch
from torch import nn


class _ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.skip = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False), nn.BatchNorm2d(channels_out)
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class ConvImageTower(nn.Module):
    """Stem conv, one residual block per stage (stride 2 after the first), global average pool."""

    def __init__(self, widths: list[int] | tuple[int, ...] = (32, 64, 128), blocks_per_stage: int = 1) -> None:
        super().__init__()
        widths = list(widths)
        self.output_dim = widths[-1]
        layers: list[nn.Module] = [
            nn.Conv2d(3, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        channels = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(_ResidualBlock(channels, width, stride))
                channels = width
        self.features = nn.Sequential(*layers)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.features(pixels).mean(dim=(2, 3))

    def forward_spatial(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pooled, grid)``: the global average pool (= :meth:`forward`) and the last feature map as
        N x (h*w) x C tokens in row-major order.

        How this departs from a ViT's patch tokens (what TGA-ZSR's text-guided attention was defined on):
        there is no CLS token and no attention, each grid cell is a conv feature whose receptive field
        overlaps its neighbours' and covers much of a small image, and the pooled feature is the plain mean of
        the cells (not a separately learned token), so after the linear projection the pooled embedding is
        exactly the mean of the projected cells. The grid is coarse (a 32 px input gives 8 x 8 after two
        stride-2 stages).
        """
        grid = self.features(pixels)
        return grid.mean(dim=(2, 3)), grid.flatten(2).transpose(1, 2)
