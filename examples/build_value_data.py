"""Build a value-model dataset from an ARDM's own samples (VGPO Alg. 1, Task B style): `num_generations` samples per
training prompt of a task preset (`ardm_trl.tasks`: its prompts and its reward), drawn the way the policy samples in
RL, written in resumable chunks.

Usage:

    OMP_NUM_THREADS=1 python examples/build_value_data.py --task f0 --output_dir outputs/value_data/f0 \
        --num_prompts 512 --num_generations 8 --temperature 0.25 --lm_guidance_scale 1.5

    # two processes on two cores: each writes every other chunk
    python examples/build_value_data.py ... --num_shards 2 --shard 0
    python examples/build_value_data.py ... --num_shards 2 --shard 1

Each chunk of `--chunk_prompts` prompts is saved as `chunk-XXXXX.pt` (a list of rows: `text_input_ids`, `latents`,
`prompt_latents`, `reward`, `token_rewards` (the reward spread over the sample's patches), `group_id`, `prompt`, the
corpus labels); a killed run resumes at the first missing chunk. `--rescore` adds `token_rewards` to chunks saved
without them.

"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from transformers import AutoModel

from ardm_trl.audio import load_pretrained_codec
from ardm_trl.data.text_tokenizer import ARDMTextTokenizer
from ardm_trl.tasks import get_task, task_prompts
from ardm_trl.trainer import build_value_dataset

logger = logging.getLogger("build_value_data")


def add_token_rewards(path: Path, reward, codec, patch_size: int, output: Path, force: bool = False) -> None:
    """Give the rows of a chunk their per-patch `token_rewards` and `reward` by `reward` (rows it gives no reward are
    dropped), written to `output` under a temporary name and renamed. Without `force`, chunks whose rows all have
    token rewards are left alone."""
    records = torch.load(path, weights_only=False)
    if not force and all("token_rewards" in r for r in records):
        return
    start = time.perf_counter()
    audio = codec.decode_list([r["latents"] for r in records])
    num_tokens = [-(-r["latents"].shape[0] // patch_size) for r in records]
    tokens = reward.token_rewards(prompts=[r["prompt"] for r in records], audio=audio,
                                  sampling_rate=codec.sampling_rate, token_seconds=patch_size / codec.frame_rate,
                                  num_tokens=num_tokens)  # fmt: skip
    kept = [dict(r, token_rewards=t.tolist(), reward=float(t.sum())) for r, t in zip(records, tokens) if t is not None]
    partial = output.with_suffix(".partial")
    torch.save(kept, partial)
    partial.replace(output)
    logger.info("%s: per-patch rewards for %d rows, %.0f s", output.name, len(kept), time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pretrained/ardm", help="The ARDM that samples (with text_vocab.json).")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--task", default="ctc", choices=["ctc", "f0", "pitch"], help="Task preset: prompts, reward.")
    parser.add_argument("--corpus_utterances", type=int, default=3000)
    parser.add_argument("--num_prompts", type=int, default=512, help="Training prompts (train split).")
    parser.add_argument("--num_generations", type=int, default=8, help="Samples per prompt.")
    parser.add_argument("--chunk_prompts", type=int, default=8, help="Prompts per saved chunk.")
    parser.add_argument("--temperature", type=float, default=0.25)
    parser.add_argument("--lm_guidance_scale", type=float, default=1.5)
    parser.add_argument("--num_inference_steps", type=int, default=16)
    parser.add_argument("--max_patches", type=int, default=64)
    parser.add_argument("--num_shards", type=int, default=1)
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--token_rewards", type=int, default=1, help="1: also store per-patch rewards.")
    parser.add_argument("--rescore", action="store_true", help="Add per-patch rewards to existing chunks only.")
    parser.add_argument("--source_dir", help="With --rescore: score the chunks of this folder by the task's reward "
                        "into --output_dir (the same samples, another reward).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.num_threads)

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(args), indent=1))
    policy = AutoModel.from_pretrained(args.model).eval()
    tokenizer = ARDMTextTokenizer.from_pretrained(args.model)
    codec = load_pretrained_codec()
    task = get_task(args.task)
    rows = task_prompts(task, "train", codec, tokenizer, limit=args.num_prompts, seed=args.seed,
                        corpus_utterances=args.corpus_utterances)  # fmt: skip
    rows = [{k: v for k, v in row.items() if k != "prompt_audio"} for row in rows]
    reward = task.reward(codec)
    generation = dict(temperature=args.temperature, lm_guidance_scale=args.lm_guidance_scale,
                      num_inference_steps=args.num_inference_steps, max_patches=args.max_patches)
    num_chunks = (len(rows) + args.chunk_prompts - 1) // args.chunk_prompts
    for chunk in range(args.shard, num_chunks, args.num_shards):
        path = out / f"chunk-{chunk:05d}.pt"
        if args.rescore:
            source = Path(args.source_dir) / path.name if args.source_dir else path
            if source.exists() and not (args.source_dir and path.exists()):
                add_token_rewards(source, reward, codec, policy.config.patch_size, path, force=bool(args.source_dir))
            continue
        if path.exists():
            continue
        start = time.perf_counter()
        first = chunk * args.chunk_prompts
        prompts = rows[first : first + args.chunk_prompts]
        generator = torch.Generator().manual_seed(args.seed * 100003 + chunk)
        data = build_value_dataset(policy, prompts, reward, num_generations=args.num_generations,
                                   batch_size=len(prompts), audio_decoder=codec, generator=generator,
                                   token_rewards=bool(args.token_rewards), **generation)
        records = [dict(record, group_id=first + record["group_id"], latents=torch.tensor(record["latents"]),
                        prompt_latents=torch.tensor(record["prompt_latents"])) for record in data]
        partial = path.with_suffix(".partial")
        torch.save(records, partial)
        partial.replace(path)
        rewards = torch.tensor([r["reward"] for r in records])
        logger.info("chunk %d/%d: %d rows, mean reward %.3f, %.0f s", chunk + 1, num_chunks, len(records),
                    rewards.nanmean(), time.perf_counter() - start)


if __name__ == "__main__":
    main()
