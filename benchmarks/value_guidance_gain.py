"""The reward gain of value-guided sampling (VGPO Alg. 2) with a trained value model, on held-out prompts of a task:
`ardm_trl.trainer.value_evaluation.measure_guidance_gain` (guided and unguided samples from the same starting noise,
paired per prompt) at each guidance scale, with the task's reward as the library defines it now. Use it to compare
value models, or one value model under two definitions of its reward. `--random_output` is a control: the value
model's output layer replaced by random weights of the same norm (same LM and head body), so the gain left is what
any perturbation of that size buys rather than what the value model learned.

Usage:

    OMP_NUM_THREADS=1 python benchmarks/value_guidance_gain.py --value_model pretrained/value_pitch --task pitch \
        --num_prompts 24 --seeds 0 1 --scales 16 64 256
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModel

import ardm_trl  # noqa: F401  (registers the ARDM and its value model with AutoModel)
from ardm_trl.audio import bundled_model_dir, load_pretrained_codec
from ardm_trl.data.text_tokenizer import ARDMTextTokenizer
from ardm_trl.tasks import get_task, task_prompts
from ardm_trl.trainer.value_evaluation import measure_guidance_gain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--value_model", required=True)
    parser.add_argument("--policy", default=None, help="The ARDM (the bundled one by default).")
    parser.add_argument("--task", default="pitch")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--num_prompts", type=int, default=24)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--scales", type=float, nargs="+", default=[16.0, 64.0, 256.0])
    parser.add_argument("--temperature", type=float, default=0.25)
    parser.add_argument("--lm_guidance_scale", type=float, default=1.5)
    parser.add_argument("--max_patches", type=int, default=64)
    parser.add_argument("--random_output", action="store_true", help="Control: a random output layer of equal norm.")
    parser.add_argument("--output_json", default="benchmarks/results/value_guidance_gain.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy_path = args.policy or str(bundled_model_dir("ardm"))
    policy = AutoModel.from_pretrained(policy_path).eval()
    value_model = AutoModel.from_pretrained(args.value_model).eval()
    if args.random_output:
        weight = value_model.head.output.weight
        noise = torch.randn(weight.shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            weight.copy_(noise * (weight.norm() / noise.norm()))
    codec = load_pretrained_codec()
    tokenizer = ARDMTextTokenizer.from_pretrained(policy_path)
    task = get_task(args.task)
    prompts = task_prompts(task, args.split, codec, tokenizer, limit=args.num_prompts)
    sampling = dict(temperature=args.temperature, lm_guidance_scale=args.lm_guidance_scale, num_inference_steps=16,
                    max_patches=args.max_patches)  # fmt: skip
    gain = measure_guidance_gain(policy, value_model, prompts, task.reward(codec), args.scales, args.seeds,
                                 audio_decoder=codec, **sampling)  # fmt: skip
    options = []
    for key, value in vars(args).items():
        if value is None or value is False or key == "output_json":
            continue
        options.append(f"--{key}" if value is True else
                       f"--{key} {' '.join(map(str, value)) if isinstance(value, list) else value}")  # fmt: skip
    report = {"command": "python benchmarks/value_guidance_gain.py " + " ".join(options), "sampling": sampling,
        "guidance": {f"{s:g}": {"reward": gain["mean"][s], "gain": gain["gain"][s]} for s in gain["scales"]}}  # fmt: skip
    for scale, entry in report["guidance"].items():
        g = entry["gain"]
        print(f"scale {scale}: reward {entry['reward']:.3f}, gain {g['mean']:+.3f} ± {g['sem']:.3f}")
    output = Path(args.output_json)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
