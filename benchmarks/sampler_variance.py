"""The ARDM sampler's own error: the variance it gives a Gaussian target when the head is exact.

For a target `x0 ~ N(0, s2)` (the conditional distribution of one token, per dimension), the exact head prediction
at `(x_t, t)` is known in closed form (`E[x0 | x_t] = alpha_t s2 x_t / (alpha_t^2 s2 + sigma_t^2)`), so whatever
variance the samples have beyond `s2` is the sampler's error, not the model's. The script runs the bundled ARDM's
scheduler (DDPM, linear betas, "trailing" spacing, v-prediction) with each variance type, step count and sampling
temperature and prints the ratio `Var[samples] / s2` for several `s2`.

Usage:

    python benchmarks/sampler_variance.py            # writes benchmarks/results/sampler_variance.json / .md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ardm_trl.models.ardm.configuration_ardm import DEFAULT_SCHEDULER
from ardm_trl.models.ardm.diffusion import build_scheduler, tempered_step


def sampled_variance_ratio(s2: float, variance_type: str, steps: int, temperature: float, num: int, seed: int) -> float:
    """`Var[x] / s2` of `num` samples of the exact-head sampler for the target `N(0, s2)`."""
    scheduler = build_scheduler({**DEFAULT_SCHEDULER, "prediction_type": "v_prediction", "variance_type": variance_type})
    scheduler.set_timesteps(steps)
    alphas_cumprod = scheduler.alphas_cumprod.double()
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num, 1, generator=generator)
    for t in scheduler.timesteps:
        alpha, sigma = alphas_cumprod[t].sqrt(), (1 - alphas_cumprod[t]).sqrt()
        xt = x.double()
        clean = alpha * s2 * xt / (alpha**2 * s2 + sigma**2)  # E[x0 | x_t]
        epsilon = (xt - alpha * clean) / sigma
        x = tempered_step(scheduler, (alpha * epsilon - sigma * clean).float(), t, x, temperature, generator)
    return float(x.double().var() / s2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variances", type=float, nargs="+", default=[1.0, 0.64, 0.3, 0.1, 0.03])
    parser.add_argument("--num", type=int, default=200_000)
    parser.add_argument("--output_json", default="benchmarks/results/sampler_variance.json")
    args = parser.parse_args(argv)
    settings = [("fixed_large", 16, 1.0), ("fixed_large", 64, 1.0), ("fixed_large", 256, 1.0), ("fixed_small", 16, 1.0),
                ("fixed_small", 64, 1.0), ("fixed_large", 16, 0.75), ("fixed_large", 16, 0.5),
                ("fixed_large", 16, 0.25)]  # fmt: skip
    results = []
    for variance_type, steps, temperature in settings:
        ratios = {f"{s2:g}": sampled_variance_ratio(s2, variance_type, steps, temperature, args.num, seed=0)
                  for s2 in args.variances}  # fmt: skip
        results.append({"variance_type": variance_type, "steps": steps, "temperature": temperature, "ratios": ratios})
    header = "| variance type | steps | temperature | " + " | ".join(f"s2 = {s:g}" for s in args.variances) + " |"
    lines = [header, "|" + "---|" * (3 + len(args.variances))]
    for r in results:
        cells = " | ".join(f"{v:.3f}" for v in r["ratios"].values())
        lines.append(f"| {r['variance_type']} | {r['steps']} | {r['temperature']:g} | {cells} |")
    table = "\n".join(lines)
    print(table)
    output = Path(args.output_json)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"command": "python benchmarks/sampler_variance.py", "results": results}, indent=1))
    output.with_suffix(".md").write_text("Var[samples] / s2 with an exact head, target N(0, s2)\n\n" + table + "\n")


if __name__ == "__main__":
    main()
