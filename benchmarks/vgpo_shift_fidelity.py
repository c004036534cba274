"""How much of the value-guidance shift a VGPO-trained policy has learned.

VGPO's fixed point is the value-guided sampler: the policy's epsilon prediction should differ from the reference's by
`-sigma_t grad V / w_kl` (Eq. 15-16). On rollouts of the reference for held-out prompts, at random noise draws, this
compares the learned shift `eps_policy - eps_ref` with that target: the cosine between them (over all draws, and the
mean per token) and their norms, overall and per quarter of the diffusion timesteps (q1 = least noise).

Usage:

    OMP_NUM_THREADS=1 python benchmarks/vgpo_shift_fidelity.py --policy outputs/vgpo_f0/model \
        --value_model outputs/value_f0/model --w_kl 0.00390625 --task f0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModel

from ardm_trl.audio import load_pretrained_codec
from ardm_trl.data.text_tokenizer import ARDMTextTokenizer
from ardm_trl.models.ardm import draw_noisy_tokens
from ardm_trl.tasks import get_task, task_prompts
from ardm_trl.trainer import VGPOConfig, VGPOTrainer
from ardm_trl.trainer.rollout import generate_rollouts, prepare_prompt_batch

ROOT = Path(__file__).resolve().parents[1]


def shift_statistics(learned: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Cosine of the flattened shifts, mean cosine per token, mean norms per token (rows are tokens)."""
    cosine = torch.nn.functional.cosine_similarity(learned.flatten(), target.flatten(), dim=0).item()
    per_token = torch.nn.functional.cosine_similarity(learned, target, dim=-1).mean().item()
    return {"cosine": cosine, "mean_token_cosine": per_token, "norm_learned": learned.norm(dim=-1).mean().item(),
            "norm_target": target.norm(dim=-1).mean().item(), "tokens": learned.shape[0]}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", required=True, help="The VGPO-trained ARDM.")
    parser.add_argument("--reference", default=str(ROOT / "pretrained" / "ardm"), help="The ARDM it started from.")
    parser.add_argument("--value_model", required=True)
    parser.add_argument("--w_kl", type=float, required=True, help="The run's w_kl (the target is -sigma grad V / w_kl).")
    parser.add_argument("--task", default="f0", choices=["f0", "ctc", "pitch"])
    parser.add_argument("--split", default="validation")
    parser.add_argument("--num_prompts", type=int, default=16)
    parser.add_argument("--corpus_utterances", type=int, default=3000)
    parser.add_argument("--num_generations", type=int, default=2)
    parser.add_argument("--num_draws", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    reference = AutoModel.from_pretrained(args.reference).eval()
    policy = AutoModel.from_pretrained(args.policy).eval()
    value_model = AutoModel.from_pretrained(args.value_model).eval()
    tokenizer = ARDMTextTokenizer.from_pretrained(args.reference)
    codec = load_pretrained_codec()
    task = get_task(args.task)
    rows = [{k: v for k, v in row.items() if k not in ("latents", "prompt_audio")}
            for row in task_prompts(task, args.split, codec, tokenizer, limit=args.num_prompts,
                                    corpus_utterances=args.corpus_utterances)]  # fmt: skip
    config = VGPOConfig(output_dir="vgpo-shift-fidelity", use_cpu=True, report_to="none", w_kl=args.w_kl,
                        num_draws=args.num_draws, max_patches=task.max_patches, temperature=0.25,
                        lm_guidance_scale=1.5)  # fmt: skip
    trainer = VGPOTrainer(policy, value_model, task.reward(codec), config, ref_model=reference,
                          processing_class=tokenizer, audio_decoder=codec, train_dataset=rows)  # fmt: skip
    batch = prepare_prompt_batch(rows, args.num_generations, tokenizer, policy.config.text_pad_token_id,
                                 policy.config.patch_size)  # fmt: skip
    with torch.no_grad(), trainer.sampling_reference() as ref:
        rollouts = generate_rollouts(ref, batch, **trainer._generation_kwargs())
    patches, mask = policy.patchify(rollouts.latents, rollouts.latents_mask)
    draws = draw_noisy_tokens(policy.noise_schedule, patches, mask, args.num_draws)
    with torch.no_grad():
        epsilon, ref_epsilon, sigma = trainer.policy_and_reference_epsilon(policy, rollouts, draws)
    grad = trainer._critic_gradient(value_model, rollouts, draws).detach()
    learned = (epsilon - ref_epsilon).flatten(0, -2)
    target = (-sigma * grad / args.w_kl).flatten(0, -2)
    timesteps = draws.timesteps.flatten().float()
    report = {"command": "python benchmarks/vgpo_shift_fidelity.py " + " ".join(argv if argv is not None else
                                                                               __import__("sys").argv[1:]),
              "all": shift_statistics(learned, target)}  # fmt: skip
    edges = torch.quantile(timesteps, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])).tolist()
    for q in range(4):
        low, high = edges[q], edges[q + 1]
        keep = (timesteps >= low) & ((timesteps < high) if q < 3 else (timesteps <= high))
        report[f"timesteps_q{q + 1}"] = dict(shift_statistics(learned[keep], target[keep]), t_low=low, t_high=high)
    text = json.dumps(report, indent=1)
    print(text)
    if args.output_json:
        Path(args.output_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_json).write_text(text)
    return report


if __name__ == "__main__":
    main()
