"""Finite scalar quantisation (FSQ; Mentzer et al., 2023, "Finite Scalar Quantization: VQ-VAE Made Simple")."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FiniteScalarQuantizer"]


class FiniteScalarQuantizer(nn.Module):
    """Bound each of `len(levels)` channels with tanh, round it to `levels[i]` values (straight-through gradient).

    The implicit codebook is the grid of all level combinations: `prod(levels)` codes, all reachable by
    construction (no codebook collapse, no commitment loss). Ids are mixed-radix integers over the per-channel
    indices. The module has no parameters or buffers.
    """

    def __init__(self, levels: list[int]):
        super().__init__()
        self.level_list = [int(level) for level in levels]
        self.basis_list = [math.prod(self.level_list[:i]) for i in range(len(self.level_list))]
        self.codebook_size = math.prod(self.level_list)

    @property
    def dim(self) -> int:
        return len(self.level_list)

    def _levels(self, device: torch.device) -> torch.Tensor:
        return torch.tensor(self.level_list, device=device)

    def _half_width(self, device: torch.device) -> torch.Tensor:
        return (self._levels(device) // 2).float()

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Map `z (..., dim)` into a box whose integer points are the levels (shifted by 1/2 for even levels)."""
        levels = self._levels(z.device).float()
        half_l = (levels - 1) * (1 + 1e-3) / 2
        offset = torch.where(self._levels(z.device) % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return `(codes (..., dim) scaled to [-1, 1], ids (...))`; rounding passes gradients straight through."""
        bounded = self.bound(z.float())
        rounded = bounded + (torch.round(bounded) - bounded).detach()  # straight-through estimator
        ids = self._grid_to_ids(torch.round(bounded).detach())
        return rounded / self._half_width(z.device), ids

    def _grid_to_ids(self, grid: torch.Tensor) -> torch.Tensor:
        digits = (grid + self._half_width(grid.device)).long()  # (..., dim) in [0, level)
        return (digits * torch.tensor(self.basis_list, device=grid.device)).sum(dim=-1)

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Ids `(...)` -> codes `(..., dim)` scaled to [-1, 1] (the inverse of the ids `forward` returns)."""
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.codebook_size):
            raise ValueError(
                f"Token ids must lie in [0, {self.codebook_size}), got values in [{int(ids.min())}, {int(ids.max())}]."
            )
        basis = torch.tensor(self.basis_list, device=ids.device)
        digits = (ids.long().unsqueeze(-1) // basis) % self._levels(ids.device)  # (..., dim)
        half_width = self._half_width(ids.device)
        return (digits.float() - half_width) / half_width
