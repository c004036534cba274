"""The diffusion head of an ARDM: MAR's AdaLN residual MLP, conditioned on the LM state, the diffusion time and the
previous patch (DiTAR's historical context). The value model and the discriminator reuse its body with a scalar
output layer."""

from __future__ import annotations

import math

import torch
from torch import nn


class TimestepEmbedding(nn.Module):
    """Sinusoidal embedding of the integer diffusion time followed by a two-layer MLP."""

    def __init__(self, hidden_size: int, frequency_size: int = 256, max_period: float = 10000.0):
        super().__init__()
        self.frequency_size = frequency_size
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        half = self.frequency_size // 2
        freqs = torch.exp(
            -math.log(self.max_period) * torch.arange(half, device=timesteps.device, dtype=torch.float32) / half
        )
        args = timesteps.float()[..., None] * freqs  # (..., half)
        embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(embedding.to(self.mlp[0].weight.dtype))


class AdaLNResBlock(nn.Module):
    """`x + gate * MLP(LN(x) * (1 + scale) + shift)`, with (shift, scale, gate) regressed from the condition."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 3 * hidden_size))
        self.modulation[-1].zero_init = True  # adaLN-zero: the block starts as the identity

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(condition).chunk(3, dim=-1)
        return x + gate * self.mlp(self.norm(x) * (1 + scale) + shift)


def is_broadcast_over_draws(x: torch.Tensor) -> bool:
    """Whether `x` `(..., K, X)` repeats one row along its draw dimension without copies (stride 0), as
    `NoiseDraws.gather` and the diffusion loss expand a token's LM state over its `K` noise draws."""
    return x.dim() >= 3 and x.shape[-2] > 1 and x.stride(-2) == 0


def project_distinct(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`linear(x)`, computed once per distinct row when `x` [`is_broadcast_over_draws`]: the result then has size 1
    there and broadcasts against the per-draw terms."""
    return linear(x.narrow(-2, 0, 1)) if is_broadcast_over_draws(x) else linear(x)


class DiffusionHeadBody(nn.Module):
    """Everything of the head but its output layer: returns features `(..., head_hidden_size)`.

    Inputs (any leading shape `...`): `hidden` (..., H) LM state, `previous_patch` (..., P*D), `noisy_patch`
    (..., P*D) and integer `timesteps` (...).
    """

    def __init__(self, lm_hidden_size: int, patch_dim: int, hidden_size: int, num_layers: int):
        super().__init__()
        self.input_proj = nn.Linear(patch_dim, hidden_size)
        self.condition_proj = nn.Linear(lm_hidden_size, hidden_size)
        self.history_proj = nn.Linear(patch_dim, hidden_size)
        self.time_embedding = TimestepEmbedding(hidden_size)
        self.blocks = nn.ModuleList([AdaLNResBlock(hidden_size) for _ in range(num_layers)])
        self.final_norm = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(
        self,
        hidden: torch.Tensor,
        previous_patch: torch.Tensor,
        noisy_patch: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> torch.Tensor:
        condition = (
            project_distinct(self.condition_proj, hidden) + project_distinct(self.history_proj, previous_patch)
            + self.time_embedding(timesteps)
        )  # (..., W): the per-token terms broadcast over the draws
        x = self.input_proj(noisy_patch)  # (..., W)
        for block in self.blocks:
            x = block(x, condition)
        shift, scale = self.final_modulation(condition).chunk(2, dim=-1)
        return self.final_norm(x) * (1 + scale) + shift


class DiffusionHead(nn.Module):
    """Body plus a linear output layer of size `out_features` (`P*D` for the policy, 1 for value/discriminator)."""

    def __init__(self, lm_hidden_size: int, patch_dim: int, hidden_size: int, num_layers: int, out_features: int):
        super().__init__()
        self.body = DiffusionHeadBody(lm_hidden_size, patch_dim, hidden_size, num_layers)
        self.output = nn.Linear(hidden_size, out_features)
        self.output.zero_init = True  # see ARDMPreTrainedModel._init_weights

    def forward(
        self,
        hidden: torch.Tensor,
        previous_patch: torch.Tensor,
        noisy_patch: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> torch.Tensor:
        return self.output(self.body(hidden, previous_patch, noisy_patch, timesteps))


__all__ = ["AdaLNResBlock", "DiffusionHead", "DiffusionHeadBody", "TimestepEmbedding"]
