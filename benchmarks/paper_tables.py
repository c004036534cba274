"""Shared harness of `benchmarks/task_a.py` and `benchmarks/task_b.py`: the VGPO paper's Tables 1 and 3 at small scale.

Every row of a table is one method applied to the same ARDM (the bundled one by default) and evaluated on the same
held-out prompts (test sentences *and* test voices of the espeak corpus, with zero-shot voice prompts from other
utterances of the same speaker) by the independent evaluators of `ardm_trl.rewards.evaluate_speech`. Each row also
records what the method cost on this machine:

- `train_s`: wall-clock of everything the method needs before sampling (value-model training, preference data,
  policy training); the shared value model's cost is counted in every row that uses it;
- `infer_s_per_utt`: sampling time per evaluated utterance (for Best-of-K: the K samples *and* their rewards).

`kl` is `ardm_kl` of the trained policy to the base model on the policy's own samples (in epsilon units, as the
trainers log it); Best-of-K rows carry the analytic bound `log K - (K - 1) / K` instead, and guided sampling has no
KL estimate (its sampler is not a model with a density we can evaluate). Metrics are medians over `--eval_seeds`.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel

from ardm_trl.audio import load_pretrained_codec
from ardm_trl.data import build_tts_corpus
from ardm_trl.data.prompts import voice_prompt_rows
from ardm_trl.data.text_tokenizer import ARDMTextTokenizer
from ardm_trl.evaluation import evaluate_ardm, score_audio
from ardm_trl.trainer import ValueConfig, VGPOConfig, VGPOTrainer, train_value_model
from ardm_trl.trainer.ardm_dpo_config import ARDMDPOConfig
from ardm_trl.trainer.ardm_dpo_trainer import ARDMDPOTrainer
from ardm_trl.trainer.best_of_k import best_of_k
from ardm_trl.trainer.preference_data import build_preference_dataset

ROOT = Path(__file__).resolve().parents[1]

logger = logging.getLogger("paper_tables")


def add_common_arguments(parser: argparse.ArgumentParser, output_name: str) -> None:
    """The options both tables share (each script adds its own rows' options)."""
    parser.add_argument(
        "--model", default=str(ROOT / "pretrained" / "ardm"), help="ARDM folder (with text_vocab.json)."
    )
    parser.add_argument("--corpus_utterances", type=int, default=240, help="Size of the espeak corpus.")
    parser.add_argument("--num_train_prompts", type=int, default=64, help="Training prompts (train split).")
    parser.add_argument("--num_eval_prompts", type=int, default=16, help="Held-out prompts (test split).")
    parser.add_argument("--eval_seeds", type=int, nargs="+", default=[1234, 1235], help="Sampling seeds (median).")
    parser.add_argument("--max_patches", type=int, default=48, help="Maximum patches per sample (~4.5 s).")
    parser.add_argument("--num_inference_steps", type=int, default=16, help="Denoising steps per patch.")
    parser.add_argument("--lm_guidance_scale", type=float, default=2.0, help="LM guidance weight w.")
    parser.add_argument("--value_steps", type=int, default=150, help="Steps of the value-model training (Alg. 1).")
    parser.add_argument("--policy_steps", type=int, default=40, help="Training steps of DPO and VGPO.")
    parser.add_argument("--learning_rate", type=float, default=5e-5, help="Policy learning rate (DPO and VGPO).")
    parser.add_argument("--dpo_beta", type=float, default=2.0, help="ARDM-DPO beta.")
    parser.add_argument("--num_threads", type=int, default=1, help="torch threads.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_json", default=str(ROOT / "benchmarks" / "results" / f"{output_name}.json"))
    parser.add_argument("--quick", action="store_true", help="Tiny settings: checks that every row runs.")
    parser.add_argument("--replot", action="store_true",
                        help="Only redraw the table and plot from --output_json (as diffro_vs_grpo.py --replot).")


def parse_table_args(parser: argparse.ArgumentParser, argv: list[str] | None, **quick: Any) -> argparse.Namespace:
    """Parse, apply the tiny `--quick` settings (common ones, then the script's own `quick` overrides) and set up
    logging."""
    args = parser.parse_args(argv)
    if args.quick:
        tiny = dict(corpus_utterances=120, num_train_prompts=4, num_eval_prompts=2, eval_seeds=[1234], max_patches=6,
                    num_inference_steps=4, value_steps=2, policy_steps=1)  # fmt: skip
        for key, value in {**tiny, **quick}.items():
            setattr(args, key, value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    return args


@dataclass
class Row:
    """One method's result: median metrics over the evaluation seeds, and its cost."""

    name: str
    metrics: dict[str, float]
    train_s: float = 0.0
    infer_s_per_utt: float = 0.0
    kl_bound: float | None = None
    per_seed: list[dict[str, float]] = field(default_factory=list)


class PaperTable:
    """Builds the prompts, the reward and the shared pieces once, then evaluates methods row by row.

    Args:
        args: the parsed options of `add_common_arguments`.
        task (`str`): `"f0"` (Task A) or `"ctc"` (Task B): the corpus mix and the value-model recipe.
        reward: the training reward (a `SpeechReward` reading latents through the codec).
        metrics (`Sequence[str]`): `evaluate_speech` metrics of the table (`"kl"` is added for trained policies).
    """

    def __init__(self, args: argparse.Namespace, task: str, reward_factory: Callable, metrics: Sequence[str]):
        torch.set_num_threads(args.num_threads)
        torch.manual_seed(args.seed)
        self.args, self.task, self.metrics = args, task, tuple(metrics)
        self.policy = AutoModel.from_pretrained(args.model).eval()
        self.tokenizer = ARDMTextTokenizer.from_pretrained(args.model)
        self.codec = load_pretrained_codec()
        self.reward = reward_factory(self.codec)
        corpus = build_tts_corpus(num_utterances=args.corpus_utterances, seed=args.seed,
                                  hard_fraction=0.9 if task == "ctc" else 0.15)  # fmt: skip
        self.train_rows = voice_prompt_rows(corpus["train"], self.codec, self.tokenizer, limit=args.num_train_prompts,
                                            include_target_latents=True, seed=args.seed)  # fmt: skip
        self.eval_rows = voice_prompt_rows(corpus["test"], self.codec, self.tokenizer, limit=args.num_eval_prompts,
                                           seed=1)  # fmt: skip
        self.generation = dict(max_patches=args.max_patches, num_inference_steps=args.num_inference_steps,
                               lm_guidance_scale=args.lm_guidance_scale)  # fmt: skip
        self.rows: list[Row] = []
        self._value_model, self.value_train_s = None, 0.0
        logger.info("%d training prompts, %d held-out prompts", len(self.train_rows), len(self.eval_rows))

    # ------------------------------------------------------------------------------------------ shared pieces
    def training_prompts(self) -> list[dict[str, Any]]:
        """Training rows without the target latents and prompt audio (the trainers sample their own)."""
        return [{k: v for k, v in row.items() if k not in ("latents", "prompt_audio")} for row in self.train_rows]

    def value_model(self):
        """The value model of Alg. 1, trained once (Task A: on corpus audio; Task B: on the base model's samples)."""
        if self._value_model is None:
            start = time.perf_counter()
            # the demo's recipe (examples/vgpo.py): Task A on corpus audio, Task B on the policy's group-normalised samples
            args = ValueConfig(output_dir=str(Path(self.args.output_json).parent / f"{self.task}_value" /
                                              "value_training"), max_steps=self.args.value_steps,
                               per_device_train_batch_size=16, learning_rate=3e-4, group_normalize=self.task != "f0",
                               logging_steps=25, save_strategy="no", report_to="none", use_cpu=True, num_draws=8)  # fmt: skip
            self._value_model = train_value_model(self.policy, self.train_rows, self.reward, args,
                                                  source="corpus" if self.task == "f0" else "samples",
                                                  max_patches=self.args.max_patches)  # fmt: skip
            self.value_train_s = time.perf_counter() - start
        return self._value_model

    def fresh_policy(self):
        return AutoModel.from_pretrained(self.args.model)

    # ------------------------------------------------------------------------------------------ rows
    def _median(self, name: str, per_seed: list[dict[str, float]], **row_fields) -> Row:
        keys = per_seed[0].keys()
        metrics = {k: float(np.median([m[k] for m in per_seed])) for k in keys}
        row = Row(name=name, metrics=metrics, per_seed=per_seed, **row_fields)
        self.rows.append(row)
        logger.info("%s: %s (train %.0f s, %.2f s/utt)", name, metrics, row.train_s, row.infer_s_per_utt)
        return row

    def evaluate_model(self, name: str, model, train_s: float = 0.0, compute_kl: bool = False,
                       reference=None, **generation: Any) -> Row:  # fmt: skip
        """A model (base or trained) sampled once per prompt and seed."""
        per_seed, seconds = [], []
        for seed in self.args.eval_seeds:
            out = evaluate_ardm(model, self.eval_rows, self.codec, reference=reference, compute_kl=compute_kl,
                                metrics=self.metrics, seed=seed, **{**self.generation, **generation})  # fmt: skip
            per_seed.append(out.metrics)
            seconds.append(out.generation_seconds / len(self.eval_rows))
        return self._median(name, per_seed, train_s=train_s, infer_s_per_utt=float(np.median(seconds)))

    def best_of_k(self, name: str, reward_funcs, k: int) -> Row:
        """Best-of-K by `reward_funcs`: K samples per prompt, the best one evaluated."""
        prompts = [{key: v for key, v in row.items() if key != "prompt_audio"} for row in self.eval_rows]
        per_seed, seconds = [], []
        for seed in self.args.eval_seeds:
            start = time.perf_counter()
            out = best_of_k(self.policy, prompts, reward_funcs, num_samples=k, batch_size=max(1, 16 // k),
                            audio_decoder=self.codec, generator=torch.Generator().manual_seed(seed),
                            **self.generation)  # fmt: skip
            seconds.append((time.perf_counter() - start) / len(prompts))
            audio = self.codec.decode_list(out.latents)
            per_seed.append(score_audio(audio, self.codec.sampling_rate, out.prompts,
                                        [row["prompt_audio"] for row in self.eval_rows], self.metrics))  # fmt: skip
        bound = math.log(k) - (k - 1) / k
        return self._median(name, per_seed, infer_s_per_utt=float(np.median(seconds)), kl_bound=bound)

    def guided(self, scale: float) -> Row:
        """Value-guided sampling (Alg. 2) from the base model with guidance scale `scale`."""
        value_model = self.value_model()
        return self.evaluate_model(f"Guided sampling (λ={scale:g})", self.policy, train_s=self.value_train_s,
                                   value_model=value_model, value_guidance_scale=scale)  # fmt: skip

    def dpo(self, num_samples: int = 4, beta: float | None = None) -> Row:
        """ARDM-DPO on best-vs-worst pairs of `num_samples` base samples per training prompt."""
        beta = self.args.dpo_beta if beta is None else beta
        start = time.perf_counter()
        pairs = build_preference_dataset(self.policy, self.training_prompts(), self.reward, num_samples=num_samples,
                                         audio_decoder=self.codec, generator=torch.Generator().manual_seed(self.args.seed),
                                         **self.generation)  # fmt: skip
        config = ARDMDPOConfig(output_dir=self._run_dir(f"dpo_beta{beta:g}"), max_steps=self.args.policy_steps,
                               per_device_train_batch_size=4, learning_rate=self.args.learning_rate, beta=beta,
                               num_draws=4, lm_guidance_scale=self.args.lm_guidance_scale, logging_steps=5,
                               save_strategy="no", report_to="none", use_cpu=True, seed=self.args.seed)  # fmt: skip
        trainer = ARDMDPOTrainer(self.fresh_policy(), args=config, train_dataset=pairs)
        trainer.train()
        train_s = time.perf_counter() - start
        return self.evaluate_model(f"ARDM-DPO (β={beta:g})", trainer.model.eval(), train_s=train_s, compute_kl=True,
                                   reference=trainer.ref_model)  # fmt: skip

    def vgpo(self, name: str, w_kl: float, **config_overrides: Any) -> Row:
        """VGPO (Alg. 3) from the base model with the shared value model (a copy: online updates change it)."""
        value_model = copy.deepcopy(self.value_model())
        start = time.perf_counter()
        config = VGPOConfig(output_dir=self._run_dir(name), max_steps=self.args.policy_steps,
                            per_device_train_batch_size=4, num_generations=2, learning_rate=self.args.learning_rate,
                            w_kl=w_kl, num_draws=4, logging_steps=5, save_strategy="no", report_to="none",
                            use_cpu=True, seed=self.args.seed, **{**self.generation, **config_overrides})  # fmt: skip
        trainer = VGPOTrainer(self.fresh_policy(), value_model, self.reward, config,
                              train_dataset=self.training_prompts(), audio_decoder=self.codec)  # fmt: skip
        trainer.train()
        train_s = time.perf_counter() - start + self.value_train_s
        return self.evaluate_model(name, trainer.model.eval(), train_s=train_s, compute_kl=True,
                                   reference=trainer.ref_model)  # fmt: skip

    def _run_dir(self, name: str) -> str:
        safe = "".join(c if c.isalnum() else "_" for c in name)
        return str(Path(self.args.output_json).parent / "runs" / f"{self.task}_{safe}")

    # ------------------------------------------------------------------------------------------ output
    def write(self, title: str, columns: Sequence[tuple[str, str, str]], command: str) -> str:
        """Print and save the table. `columns`: (metric key, header, number format) in order."""
        rows = [row.__dict__ for row in self.rows]
        output = Path(self.args.output_json)
        output.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "title": title, "command": command, "args": vars(self.args), "columns": [list(c) for c in columns],
            "environment": {"machine": platform.machine(), "processor": platform.processor() or "unknown",
                            "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
            "num_eval_prompts": len(self.eval_rows), "rows": rows, "table": render_table(rows, columns),
        }  # fmt: skip
        output.write_text(json.dumps(report, indent=1))
        write_markdown(report, output.with_suffix(".md"))
        write_plot(report, output.with_suffix(".png"))
        return report["table"]


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[Sequence[str]]) -> str:
    """The Markdown table of `rows` (`Row` fields as dicts). The last column lists the first metric per evaluation
    seed: the sampling noise each median carries."""
    first_key, first_header, first_fmt = columns[0]
    header = ("| Method | " + " | ".join(h for _, h, _ in columns) + " | KL ↓ | train (s) | sampling (s/utt) | "
              f"{first_header.split()[0]} per seed |")  # fmt: skip
    lines = [header, "|" + "---|" * (len(columns) + 5)]
    for row in rows:
        metrics = row["metrics"]
        cells = [format(metrics[k], fmt) if k in metrics else "—" for k, _, fmt in columns]
        if "kl" in metrics:
            kl = f"{metrics['kl']:.4f}"
        else:
            kl = f"≤ {row['kl_bound']:.2f} (bound)" if row.get("kl_bound") is not None else "—"
        seeds = " / ".join(format(m[first_key], first_fmt) for m in row.get("per_seed", []) if first_key in m)
        lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {kl} | {row['train_s']:.0f} | "
                     f"{row['infer_s_per_utt']:.2f} | {seeds or '—'} |")  # fmt: skip
    return "\n".join(lines)


def write_markdown(report: dict[str, Any], path: Path) -> None:
    path.write_text(f"## {report['title']}\n\n`{report['command']}`\n\n{report['table']}\n")


def write_plot(report: dict[str, Any], path: Path) -> None:
    """The reward metric of each row (median, the bar spans the seeds) against what the row cost: training seconds
    plus sampling seconds for all held-out prompts of one seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, header, _ = report["columns"][0]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for row in report["rows"]:
        cost = row["train_s"] + row["infer_s_per_utt"] * report["num_eval_prompts"]
        seeds = [m[key] for m in row["per_seed"]]
        median = row["metrics"][key]
        ax.errorbar([cost], [median], yerr=[[median - min(seeds)], [max(seeds) - median]], fmt="o", capsize=3)
        ax.annotate(row["name"], (cost, median), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(right=ax.get_xlim()[1] * 3)  # room for the labels of the costliest rows
    ax.set(xlabel="cost: training s + sampling s for the held-out prompts (one seed)", ylabel=header,
           title=report["title"])  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replot(json_path: str | Path, columns: Sequence[Sequence[str]]) -> str:
    """Re-render the table and plot of a finished run from its JSON (after a change of their format; nothing
    reruns)."""
    json_path = Path(json_path)
    report = json.loads(json_path.read_text())
    report.setdefault("columns", [list(c) for c in columns])
    report["table"] = render_table(report["rows"], report["columns"])
    json_path.write_text(json.dumps(report, indent=1))
    write_markdown(report, json_path.with_suffix(".md"))
    write_plot(report, json_path.with_suffix(".png"))
    return report["table"]
