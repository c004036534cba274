"""Convolutional building blocks shared by the speech codec and the speech tokenizer."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvResBlock", "ConvStack"]


class ConvResBlock(nn.Module):
    """Pre-activation residual block over `(B, C, T)`: GELU -> dilated conv k -> GELU -> 1x1 conv, plus the input."""

    def __init__(self, channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=padding, dilation=dilation)
        self.proj = nn.Conv1d(channels, channels, 1)
        self.act = nn.GELU()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.proj(self.act(self.conv(self.act(hidden))))  # (B, C, T)


class ConvStack(nn.Module):
    """`num_blocks` residual blocks with dilations 1, 3, 9, 1, 3, 9, ... (receptive field grows fast)."""

    def __init__(self, channels: int, kernel_size: int, num_blocks: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            [ConvResBlock(channels, kernel_size, dilation=3 ** (i % 3)) for i in range(num_blocks)]
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            hidden = block(hidden)
        return hidden
