"""Time the policy's teacher-forced head pass (forward + backward, LM guidance 1.5, as in VGPO's loss) on the bundled
ARDM with each token's LM state broadcast over its noise draws (the library's path: one projection per token) against
materialised copies (one projection per draw). Medians of interleaved repeats, one thread.

Usage:

    OMP_NUM_THREADS=1 python benchmarks/head_projection.py
"""

from __future__ import annotations

import statistics
import time

import torch
from transformers import AutoModel

import ardm_trl  # noqa: F401  (registers the ARDM with AutoModel)
from ardm_trl.audio import bundled_model_dir
from ardm_trl.models.ardm import diffusion, draw_noisy_tokens


def main(batch: int = 8, patches: int = 64, draws: int = 4, repeats: int = 4) -> None:
    torch.set_num_threads(1)
    model = AutoModel.from_pretrained(bundled_model_dir("ardm")).train()
    config = model.config
    latents = torch.randn(batch, patches * config.patch_size, config.latent_dim)
    text = torch.randint(2, config.text_vocab_size, (batch, 20))
    mask = torch.ones(batch, patches * config.patch_size, dtype=torch.bool)
    noise = draw_noisy_tokens(model.noise_schedule, *model.patchify(latents, mask), num_draws=draws)
    gather = diffusion.NoiseDraws.gather

    def step() -> float:
        start = time.perf_counter()
        out = model(text_input_ids=text, latents=latents, draws=noise, lm_guidance_scale=1.5).head_prediction
        out.square().mean().backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"broadcast": [], "materialised": []}
    for _ in range(repeats):
        for name, picked in (("broadcast", gather), ("materialised", lambda self, x: gather(self, x).contiguous())):
            diffusion.NoiseDraws.gather = picked
            step()  # warm-up
            times[name].extend(step() for _ in range(2))
    diffusion.NoiseDraws.gather = gather
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name}: median {value:.3f} s over {len(times[name])}")
    print(f"materialised / broadcast: {medians['materialised'] / medians['broadcast']:.3f}")


if __name__ == "__main__":
    main()
