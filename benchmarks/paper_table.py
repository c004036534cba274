"""The VGPO paper's Table 1 (Task A, F0 variance) or Table 3 (Task B, CTC likelihood on hard sentences) at small scale:
every method evaluated on the same held-out test prompts and sampling seeds, each cell with its standard error and the
change against Base paired per prompt.

Methods that train are trained separately (`examples/vgpo.py`, `examples/ardm_dpo.py`, each saving its policy and a
`run_info.json`); this script evaluates what they saved, so long runs can go on in the background and rows be added as
they finish (`--keep` reuses the rows already in `--output_json`).

Usage:

    OMP_NUM_THREADS=1 python benchmarks/paper_table.py --task ctc --best_of 8 --codec_reconstruction \
        --value_model outputs/value_ctc/model --guidance_scales 8 32 \
        --policy "VGPO=outputs/vgpo_ctc/model" --policy "ARDM-DPO=outputs/dpo_ctc/model" \
        --output_json benchmarks/results/task_b.json

    # the KL-reward frontier of runs from their checkpoints (Task A: VGPO against ARDM-DPO)
    python benchmarks/paper_table.py --task f0 --frontier "VGPO=outputs/vgpo_f0" --frontier "ARDM-DPO=outputs/dpo_f0"

Writes the JSON (every per-sample score), the Markdown table beside it and, with `--frontier`, a plot of reward
against KL (`<output>_frontier.png`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModel

from ardm_trl.audio import load_pretrained_codec
from ardm_trl.data.text_tokenizer import ARDMTextTokenizer
from ardm_trl.evaluation import score_audio_per_sample, score_samples
from ardm_trl.models.ardm import sampling_settings
from ardm_trl.tables import MethodResult, ResultsTable
from ardm_trl.tasks import get_task, task_prompts
from ardm_trl.trainer import best_of_k

logger = logging.getLogger("paper_table")
ROOT = Path(__file__).resolve().parents[1]

def parse_named(values: list[str]) -> list[tuple[str, str]]:
    """`"name=path"` pairs, split at the last `=` (a name may hold one: `"VGPO (w_KL=2^-6)=outputs/vgpo"`)."""
    pairs = []
    for value in values:
        if "=" not in value:
            raise ValueError(f"Expected NAME=PATH, got {value!r}.")
        name, path = value.rsplit("=", 1)
        pairs.append((name, path))
    return pairs


def run_info(path: Path) -> dict:
    """`run_info.json` of a trained policy's folder (or its parent): training seconds, command, settings."""
    for folder in (path, path.parent):
        if (folder / "run_info.json").is_file():
            return json.loads((folder / "run_info.json").read_text())
    return {}


class TableBuilder:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.task = get_task(args.task)
        self.policy = AutoModel.from_pretrained(args.model).eval()
        self.tokenizer = ARDMTextTokenizer.from_pretrained(args.model)
        self.codec = load_pretrained_codec()
        self.rows = task_prompts(self.task, args.split, self.codec, self.tokenizer, limit=args.num_prompts,
                                 corpus_utterances=args.corpus_utterances, include_target_latents=True)  # fmt: skip
        self.sampling = sampling_settings(self.policy, temperature=args.temperature,
                                          lm_guidance_scale=args.lm_guidance_scale,
                                          num_inference_steps=args.num_inference_steps,
                                          max_patches=args.max_patches or self.task.max_patches)  # fmt: skip
        columns = self.task.columns(with_error_rate=not args.no_error_rate)
        self.metrics = [c.key for c in columns]
        prompt_ids = [i for _ in args.seeds for i in range(len(self.rows))]
        seeds = [s for s in args.seeds for _ in self.rows]
        output = Path(args.output_json)
        if args.keep and output.is_file():
            self.table = ResultsTable.load(output)
            if self.table.prompt_ids != prompt_ids or self.table.seeds != seeds:
                raise ValueError(f"{output} holds other prompts or seeds; run without --keep.")
        else:
            self.table = ResultsTable(self.task.title, columns, prompt_ids, seeds)
        self.table.meta.update(
            command="python benchmarks/paper_table.py " + " ".join(sys.argv[1:]), sampling=self.sampling,
            split=args.split, num_prompts=len(self.rows), seeds=list(args.seeds),
            machine={"processor": platform.processor() or platform.machine(), "torch": torch.__version__,
                     "threads": torch.get_num_threads()},
        )  # fmt: skip

    def has(self, name: str) -> bool:
        return any(r.name == name for r in self.table.rows)

    def save(self) -> None:
        self.table.save(self.args.output_json)

    def evaluate_model(self, name: str, model, reference=None, train_seconds=None, details=None, **generation):
        if self.has(name):
            return
        start = time.perf_counter()
        scores = score_samples(model, self.rows, self.codec, self.args.seeds, self.metrics, reference=reference,
                               compute_kl=reference is not None, **{**self.sampling, **generation})  # fmt: skip
        logger.info("%s: %s (%.0f s)", name, scores.means(), time.perf_counter() - start)
        self.table.add(MethodResult(name, scores.scores, kl=scores.kl, train_seconds=train_seconds,
                                    sampling_seconds_per_utterance=scores.generation_seconds / len(scores.prompt_ids),
                                    details=details or {}))  # fmt: skip
        self.save()

    def codec_reconstruction(self) -> None:
        """The corpus audio of the same sentences (in the same voices) through the codec: the floor a sampler of
        codec latents can reach."""
        name = "Codec reconstruction"
        if self.has(name):
            return
        audio = self.codec.decode_list([row["latents"] for row in self.rows])
        scores = score_audio_per_sample(audio, self.codec.sampling_rate, [r["prompt"] for r in self.rows],
                                        [r["prompt_audio"] for r in self.rows], self.metrics)  # fmt: skip
        repeated = {k: v * len(self.args.seeds) for k, v in scores.items()}  # the same audio for every seed
        self.table.add(MethodResult(name, repeated, details={"note": "corpus audio through the codec"}))
        self.save()

    def best_of(self, k: int) -> None:
        name = f"Best-of-{k}"
        if self.has(name):
            return
        reward = self.task.reward(self.codec)
        prompts = [{key: v for key, v in row.items() if key not in ("prompt_audio", "latents")} for row in self.rows]
        latents, texts, references, seconds = [], [], [], 0.0
        for seed in self.args.seeds:
            start = time.perf_counter()
            out = best_of_k(self.policy, prompts, reward, num_samples=k, batch_size=max(1, 16 // k),
                            audio_decoder=self.codec, generator=torch.Generator().manual_seed(seed),
                            **self.sampling)  # fmt: skip
            seconds += time.perf_counter() - start
            latents.extend(out.latents)
            texts.extend(out.prompts)
            references.extend(row["prompt_audio"] for row in self.rows)
        audio = self.codec.decode_list(latents)
        scores = score_audio_per_sample(audio, self.codec.sampling_rate, texts, references, self.metrics)
        self.table.add(MethodResult(name, scores, kl_bound=math.log(k) - (k - 1) / k,
                                    sampling_seconds_per_utterance=seconds / len(latents)))  # fmt: skip
        self.save()

    def guided(self, value_model_path: str, scales: list[float]) -> None:
        value_model = AutoModel.from_pretrained(value_model_path).eval()
        info = run_info(Path(value_model_path))
        for scale in scales:
            self.evaluate_model(f"Guided sampling (λ={scale:g})", self.policy, value_model=value_model,
                                value_guidance_scale=scale, train_seconds=info.get("train_seconds"),
                                details={"value_model": value_model_path, **info})  # fmt: skip

    def trained(self, name: str, path: str) -> None:
        model = AutoModel.from_pretrained(path).eval()
        info = run_info(Path(path))
        self.evaluate_model(name, model, reference=self.policy, train_seconds=info.get("train_seconds"),
                            details={"path": path, **info})  # fmt: skip

    def frontier(self, name: str, run_dir: str) -> list[dict]:
        """KL and reward of every `checkpoint-*` of a run (and its final `model`), from the table's samples."""
        points = []
        folders = sorted(Path(run_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        for folder in folders:
            row = f"{name} @ {folder.name}"
            self.trained(row, str(folder))
            points.append(row)
        return points


def plot_frontier(table: ResultsTable, runs: dict[str, list[str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = table.columns[0].key
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, rows in runs.items():
        kls = [table.row(r).kl for r in rows]
        cells = [table.cell(r, key) for r in rows]
        ax.errorbar(kls, [c["mean"] for c in cells], yerr=[c["sem"] for c in cells], marker="o", capsize=3,
                    label=name)  # fmt: skip
    base = table.cell(table.reference, key)
    ax.axhline(base["mean"], color="gray", linestyle="--", label="Base")
    ax.set(xlabel="KL to Base (epsilon units)", ylabel=table.columns[0].header, title=f"{table.title}: frontier")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["f0", "ctc", "pitch"], required=True)
    parser.add_argument("--model", default=str(ROOT / "pretrained" / "ardm"), help="The base ARDM (text_vocab.json).")
    parser.add_argument("--split", default="test", choices=["validation", "test"])
    parser.add_argument("--num_prompts", type=int, default=32)
    parser.add_argument("--corpus_utterances", type=int, default=3000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--temperature", type=float, help="Sampling settings (default: the base model's own).")
    parser.add_argument("--lm_guidance_scale", type=float)
    parser.add_argument("--num_inference_steps", type=int)
    parser.add_argument("--max_patches", type=int, help="Default: the task's.")
    parser.add_argument("--best_of", type=int, nargs="*", default=[], help="K of Best-of-K rows.")
    parser.add_argument("--codec_reconstruction", action="store_true", help="Add the corpus audio through the codec.")
    parser.add_argument("--value_model", help="A trained value model, for guided-sampling rows.")
    parser.add_argument("--guidance_scales", type=float, nargs="*", default=[])
    parser.add_argument("--policy", action="append", default=[], help="NAME=PATH of a trained policy.")
    parser.add_argument("--frontier", action="append", default=[], help="NAME=RUN_DIR: every checkpoint of a run.")
    parser.add_argument("--keep", action="store_true", help="Reuse the rows already in --output_json.")
    parser.add_argument("--no_error_rate", action="store_true", help="No whisper WER/CER column (faster).")
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--output_json", help="Default: benchmarks/results/task_a.json or task_b.json.")
    args = parser.parse_args(argv)
    args.output_json = args.output_json or {"f0": "benchmarks/results/task_a.json", "ctc": "benchmarks/results/task_b.json",
                                            "pitch": "benchmarks/results/pitch.json"}[args.task]  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.num_threads)

    builder = TableBuilder(args)
    builder.evaluate_model("Base", builder.policy)
    if args.codec_reconstruction:
        builder.codec_reconstruction()
    for k in args.best_of:
        builder.best_of(k)
    if args.value_model:
        builder.guided(args.value_model, args.guidance_scales)
    for name, path in parse_named(args.policy):
        builder.trained(name, path)
    runs = {name: builder.frontier(name, path) for name, path in parse_named(args.frontier)}
    if runs:
        plot_frontier(builder.table, runs, Path(args.output_json).with_name(Path(args.output_json).stem +
                                                                          "_frontier.png"))  # fmt: skip
    print(builder.table.markdown())


if __name__ == "__main__":
    main()
