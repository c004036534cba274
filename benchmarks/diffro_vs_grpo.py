"""DiffRO against TRL's GRPOTrainer on the bundled codec LM, side by side, under the same wall-clock budget.

- **DiffRO** (`DiffROTrainer`): reward = the MTR's CTC log-likelihood of the phonemes, read from straight-through
  Gumbel-Softmax tokens; no audio is decoded during training.
- **GRPO** (TRL's own `GRPOTrainer` on the same codec LM, through `CodecLMTokenizer`): the conventional audio-level
  reward, decode tokens -> waveform (the speech tokenizer) -> hama CTC log-likelihood per phoneme of the text.

Both start from the same checkpoint and train for `--minutes` of training wall-clock each (evaluation time excluded).
Every `--eval_every_minutes` the current policy samples speech for `--num_eval_sentences` held-out test sentences,
and the *independent* evaluators score it: hama CTC NLL per phoneme and whisper tiny.en WER (%). Logged per method:
seconds per step, the training reward, and the evaluation curve against training minutes. Each `--control` target
adds a DiffRO run with an attribute reward (e.g. `rate_level=fast`, `pitch_level=high`) and measures the decoded
speech (seconds per phoneme for rate; for pitch the median F0 and, since the codec LM picks the voice itself, the F0
in semitones relative to each sample's voice, identified by speaker embedding: `ardm_trl.rewards.VoicePitchReference`)
before and after.

Results go to `benchmarks/results/diffro_vs_grpo.json`, `.md` (table) and `.png` (evaluation curves); `--replot`
redraws the table and plot from the JSON. To use both cores, run each method in its own process (`--methods diffro`,
`--methods grpo`, one thread each, the same `--seed` and evaluation flags) and join the two results with
`--merge A.json B.json --output C.json`, which checks that the runs started from the same evaluation.

Usage:

    OMP_NUM_THREADS=2 python benchmarks/diffro_vs_grpo.py --minutes 10 --eval_every_minutes 2.5
    python benchmarks/diffro_vs_grpo.py --methods diffro --control rate_level=fast pitch_level=high --minutes 5
    python benchmarks/diffro_vs_grpo.py --merge diffro.json grpo.json --output benchmarks/results/side_by_side.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import TrainerCallback

from ardm_trl.audio import load_speech_tokenizer
from ardm_trl.data.corpus_cache import tokenize_corpus
from ardm_trl.evaluation import mean_and_sem
from ardm_trl.models.codec_lm import CodecLMForSpeechSynthesis, CodecLMTokenizer, sample_and_decode
from ardm_trl.models.token_reward import AttributeReward, CTCReward, TokenRewardModel
from ardm_trl.rewards import resynthesis_pitch_reference
from ardm_trl.trainer.diffro_config import DiffROConfig
from ardm_trl.trainer.diffro_trainer import DiffROTrainer

ROOT = Path(__file__).resolve().parents[1]

logger = logging.getLogger("diffro_vs_grpo")


class WallClockEvaluation(TrainerCallback):
    """Stops after `budget_s` seconds of training and evaluates every `every_s` seconds (evaluation not counted)."""

    def __init__(self, evaluate, budget_s: float, every_s: float):
        self.evaluate, self.budget_s, self.every_s = evaluate, budget_s, every_s
        self.train_s, self.next_eval, self.curve, self.step_times = 0.0, 0.0, [], []

    def _maybe_evaluate(self, state, model, force: bool = False) -> None:
        if force or self.train_s >= self.next_eval:
            was_training = model.training
            self.curve.append({"train_minutes": self.train_s / 60, "step": state.global_step, **self.evaluate(model)})
            logger.info("eval %s", self.curve[-1])
            model.train(was_training)
            self.next_eval += self.every_s

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._maybe_evaluate(state, model, force=True)
        self.last = time.time()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        elapsed = time.time() - self.last
        self.train_s += elapsed
        self.step_times.append(elapsed)
        if self.train_s >= self.budget_s:
            control.should_training_stop = True
            self._maybe_evaluate(state, model, force=True)
        else:
            self._maybe_evaluate(state, model)
        self.last = time.time()
        return control


def make_evaluator(tokenizer, speech_tokenizer, rows: dict, args, pitch_reference=None) -> callable:
    """Independent evaluation of a policy on held-out sentences: hama CTC NLL, whisper WER, duration, median F0 and,
    with a `VoicePitchReference`, the mean F0 in semitones relative to each sample's (identified) voice.

    Every sentence is sampled once per seed of `args.eval_seeds`, with the same seeds at every evaluation, so the
    per-sample NLL and WER (kept in the result) pair each sample with the one the starting policy drew from the same
    noise: `paired_change` turns them into a change with a paired standard error."""
    from ardm_trl.rewards import median_f0, score_speech

    texts = rows["text"][: args.num_eval_sentences]
    phonemes = rows["phonemes"][: args.num_eval_sentences]
    text_ids = [tokenizer.encode(p, add_special_tokens=False) for p in phonemes]
    max_new = int(1.5 * max(len(s) for s in rows["speech_ids"][: args.num_eval_sentences])) + 10
    sr = speech_tokenizer.sampling_rate

    def evaluate(model) -> dict:
        policy = model.eval()
        audio, all_texts, all_phonemes = [], [], []
        for seed in args.eval_seeds:
            audio += sample_and_decode(policy, text_ids, speech_tokenizer, max_new, 1.0, None, seed=seed)
            all_texts, all_phonemes = all_texts + list(texts), all_phonemes + list(phonemes)
        per_sample = score_speech(audio, sr, all_texts, metrics=("ctc_nll", "wer"))
        nll, wer = per_sample["ctc_nll"], per_sample["wer"]
        scores = dict(zip(("ctc_nll", "ctc_nll_sem"), mean_and_sem([v for v in nll if v is not None])))
        scores["wer"], scores["wer_sem"] = mean_and_sem([v for v in wer if v is not None])
        scores["ctc_nll_per_sample"], scores["wer_per_sample"] = nll, wer
        f0 = [f for f in (median_f0(w, sr, method=args.f0_method) for w in audio) if f is not None]
        scores["seconds_per_phoneme"] = float(
            np.mean([len(w) / sr / max(len(p), 1) for w, p in zip(audio, all_phonemes)])
        )
        scores["median_f0"] = float(np.mean(f0)) if f0 else float("nan")
        if pitch_reference is not None:
            relative = [r["semitones"] for r in pitch_reference.relative_f0(audio, sr) if r is not None]
            scores["relative_f0_semitones"], scores["relative_f0_sem"] = mean_and_sem(relative)
        return scores

    return evaluate


def paired_change(start: list[float | None], end: list[float | None]) -> dict:
    """Mean per-sample change `end - start` over the samples defined at both points, its paired standard error, and
    how many samples improved (went down) or got worse."""
    pairs = [(a, b) for a, b in zip(start, end) if a is not None and b is not None]
    diffs = [b - a for a, b in pairs]
    mean, sem = mean_and_sem(diffs)
    return {"mean": mean, "sem": sem, "n": len(diffs), "lower": sum(d < 0 for d in diffs),
            "higher": sum(d > 0 for d in diffs)}  # fmt: skip


def audio_ctc_reward_factory(tokenizer: CodecLMTokenizer, speech_tokenizer):
    """The conventional reward for GRPO: decode the completion's speech tokens and score the audio with hama."""
    from ardm_trl.rewards import ctc_log_likelihood

    def audio_ctc_log_likelihood(prompts, completions, completion_ids, text, **kwargs) -> list[float | None]:
        codes = [torch.tensor(tokenizer.speech_codes(ids) or [0]) for ids in completion_ids]
        audio = speech_tokenizer.decode_list(codes)
        return [ctc_log_likelihood(w, speech_tokenizer.sampling_rate, t) for w, t in zip(audio, text)]

    return audio_ctc_log_likelihood


def run_diffro(args, data, tokenizer, speech_tokenizer, evaluate, rewards, targets=None, name="diffro") -> dict:
    policy = CodecLMForSpeechSynthesis.from_pretrained(args.codec_lm_path)
    rows = {"prompt": data["train"]["phonemes"],
            "text_ids": [tokenizer.encode(p, add_special_tokens=False) for p in data["train"]["phonemes"]]}  # fmt: skip
    for task, target in (targets or {}).items():
        rows[f"target_{task}"] = [target] * len(rows["prompt"])
    config = DiffROConfig(
        output_dir=f"outputs/bench_{name}", per_device_train_batch_size=args.batch_size, max_steps=100_000,
        learning_rate=args.diffro_learning_rate, beta=args.diffro_beta, max_new_tokens=args.max_new_tokens,
        logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, seed=args.seed,
        reward_weights=args.reward_weights if targets else None,
    )  # fmt: skip
    clock = WallClockEvaluation(evaluate, 60 * args.minutes, 60 * args.eval_every_minutes)
    trainer = DiffROTrainer(policy, rewards, args=config, train_dataset=Dataset.from_dict(rows), callbacks=[clock])
    trainer.train()
    save_policy(args, trainer, tokenizer, name)
    return summarize(name, clock, trainer.state.log_history, reward_key="reward")


def save_policy(args, trainer, tokenizer: CodecLMTokenizer, name: str) -> None:
    """With `--save_dir`, the trained policy goes to `<save_dir>/<run name>` (loadable with `from_pretrained`)."""
    if args.save_dir:
        trainer.save_model(str(Path(args.save_dir) / name))
        tokenizer.save_pretrained(str(Path(args.save_dir) / name))


def run_grpo(args, data, tokenizer, speech_tokenizer, evaluate) -> dict:
    from trl import GRPOConfig, GRPOTrainer

    policy = CodecLMForSpeechSynthesis.from_pretrained(args.codec_lm_path)
    rows = {"prompt": data["train"]["phonemes"], "text": data["train"]["text"]}
    config = GRPOConfig(
        output_dir="outputs/bench_grpo", per_device_train_batch_size=args.batch_size, num_generations=args.num_generations,
        max_completion_length=args.max_new_tokens, max_steps=100_000, learning_rate=args.grpo_learning_rate,
        beta=args.grpo_beta, temperature=1.0, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
        seed=args.seed, gradient_checkpointing=False,
        bf16=False,  # GRPOConfig defaults to bf16, and on a CPU its autocast also wraps our evaluations of the model
    )  # fmt: skip
    clock = WallClockEvaluation(evaluate, 60 * args.minutes, 60 * args.eval_every_minutes)
    trainer = GRPOTrainer(model=policy, reward_funcs=audio_ctc_reward_factory(tokenizer, speech_tokenizer), args=config,
                          train_dataset=Dataset.from_dict(rows), processing_class=tokenizer, callbacks=[clock])  # fmt: skip
    trainer.train()
    save_policy(args, trainer, tokenizer, "grpo")
    return summarize("grpo", clock, trainer.state.log_history, reward_key="reward")


def summarize(name: str, clock: WallClockEvaluation, history: list[dict], reward_key: str) -> dict:
    rewards = [log[reward_key] for log in history if isinstance(log.get(reward_key), (int, float))]
    rewards = [r for r in rewards if np.isfinite(r)]
    return {
        "method": name,
        "steps": len(clock.step_times),
        "seconds_per_step": float(np.mean(clock.step_times)) if clock.step_times else None,
        "train_minutes": clock.train_s / 60,
        "reward_first_10_steps": float(np.mean(rewards[:10])) if rewards else None,
        "reward_last_10_steps": float(np.mean(rewards[-10:])) if rewards else None,
        "eval_curve": clock.curve,
        "paired_change": {
            key: paired_change(clock.curve[0][f"{key}_per_sample"], clock.curve[-1][f"{key}_per_sample"])
            for key in ("ctc_nll", "wer") if f"{key}_per_sample" in clock.curve[-1]
        },  # fmt: skip
    }


def _start_nll(run: dict) -> np.ndarray:
    """The per-sample CTC NLL of a run's first evaluation (NaN where a sample had none)."""
    values = run["eval_curve"][0].get("ctc_nll_per_sample", [])
    return np.array([np.nan if value is None else value for value in values], dtype=float)


def merge_results(paths: list[Path]) -> dict:
    """Joins the runs of several result files into one, after checking that all of them start from the same evaluation
    (the same held-out samples scored for the same checkpoint); raises `ValueError` when they do not."""
    sources = [json.loads(Path(path).read_text()) for path in paths]
    runs = [run for source in sources for run in source["runs"]]
    if not runs:
        raise ValueError(f"No runs in {', '.join(map(str, paths))}.")
    first, reference = runs[0], _start_nll(runs[0])
    for run in runs[1:]:
        start = _start_nll(run)
        nll, first_nll = run["eval_curve"][0]["ctc_nll"], first["eval_curve"][0]["ctc_nll"]
        same = start.shape == reference.shape and np.allclose(start, reference, atol=1e-6, equal_nan=True)
        if not same or abs(nll - first_nll) > 1e-6:
            raise ValueError(
                f"Run {run['method']!r} did not start from the same evaluation as {first['method']!r} (CTC NLL "
                f"{nll:.4f} vs {first_nll:.4f}): use the same --codec_lm_path, --eval_seeds, --num_eval_sentences and "
                "--data_cache for every part."
            )
    return {"sources": [{"path": str(path), "args": source["args"]} for path, source in zip(paths, sources)],
            "torch_threads": [source.get("torch_threads") for source in sources], "runs": runs}  # fmt: skip


def _number(value: float | None, fmt: str) -> str:
    """`value` formatted, or "—" when a run logged none (e.g. a reward that returned `None` for every sample)."""
    return "—" if value is None else format(value, fmt)


def write_markdown(results: dict, path: Path) -> None:
    lines = ["| method | steps | s / step | reward (first 10 → last 10 steps) | CTC NLL start → end | WER % start → end |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for run in results["runs"]:
        first, last = run["eval_curve"][0], run["eval_curve"][-1]
        lines.append(
            f"| {run['method']} | {run['steps']} | {_number(run['seconds_per_step'], '.2f')} | "
            f"{_number(run['reward_first_10_steps'], '.3f')} → "
            f"{_number(run['reward_last_10_steps'], '.3f')} | "
            f"{first['ctc_nll']:.3f} → {last['ctc_nll']:.3f} | {first['wer']:.1f} → {last['wer']:.1f} |"
        )
    lines += ["", "Evaluation curves (training minutes, independent evaluators on held-out sentences):", ""]
    for run in results["runs"]:
        lines.append(f"- {run['method']}: " + "; ".join(
            f"{p['train_minutes']:.1f} min: NLL {p['ctc_nll']:.3f}"
            + (f" ± {p['ctc_nll_sem']:.3f}" if "ctc_nll_sem" in p else "")
            + f", WER {p['wer']:.1f}"
            + (f" ± {p['wer_sem']:.1f}" if "wer_sem" in p else "")
            + ", "
            f"s/phoneme {p['seconds_per_phoneme']:.3f}, F0 {p['median_f0']:.0f}"
            + (f" ({p['relative_f0_semitones']:+.2f}" + (f" ± {p['relative_f0_sem']:.2f}" if "relative_f0_sem" in p else "")
               + " st vs voice)" if "relative_f0_semitones" in p else "")
            for p in run["eval_curve"]))  # fmt: skip
    paired = [run for run in results["runs"] if run.get("paired_change")]
    if paired:
        lines += ["", "Paired change, last evaluation minus first (the same sentences and sampling seeds; mean ± SE of "
                  "the per-sample differences; samples lower / higher; the change per minute of training wall-clock):",
                  ""]  # fmt: skip
        for run in paired:
            minutes = run["eval_curve"][-1]["train_minutes"] - run["eval_curve"][0]["train_minutes"]
            lines.append(f"- {run['method']}: " + "; ".join(
                f"{key} {c['mean']:+.3f} ± {c['sem']:.3f} (n = {c['n']}, {c['lower']} lower / {c['higher']} higher"
                + (f"; {c['mean'] / minutes:+.4f} per minute)" if minutes > 0 else ")")
                for key, c in run["paired_change"].items()))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def write_plot(results: dict, path: Path) -> None:
    """CTC NLL, WER and speaking rate of the independent evaluation against training minutes, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("ctc_nll", "CTC NLL per phoneme ↓"), ("wer", "WER (%) ↓"), ("seconds_per_phoneme", "s / phoneme"))
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.6))
    for ax, (key, label) in zip(axes, panels):
        for run in results["runs"]:
            curve = run["eval_curve"]
            ax.plot([p["train_minutes"] for p in curve], [p[key] for p in curve], marker="o",
                    label=f"{run['method']} ({_number(run['seconds_per_step'], '.1f')} s/step)")  # fmt: skip
        ax.set(xlabel="training minutes (evaluation excluded)", ylabel=label)
    axes[0].legend(fontsize=8)
    fig.suptitle("DiffRO vs. GRPO on the bundled codec LM (held-out sentences, independent evaluators)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codec_lm_path", default="pretrained/codec_lm")
    parser.add_argument("--reward_model_path", default="pretrained/token_reward")
    parser.add_argument("--speech_tokenizer_path", default=None)
    parser.add_argument("--num_utterances", type=int, default=3000)
    parser.add_argument("--corpus_seed", type=int, default=0)
    parser.add_argument("--data_cache", default="outputs/codec_lm_data/tokens.pt")
    parser.add_argument("--methods", default="diffro,grpo")
    parser.add_argument("--control", nargs="*", default=[],
                        help="e.g. rate_level=fast pitch_level=high: one extra DiffRO run per target")
    parser.add_argument("--reward_weights", type=float, nargs="+", default=[1.0, 1.0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--eval_every_minutes", type=float, default=2.5)
    parser.add_argument("--num_eval_sentences", type=int, default=24)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_generations", type=int, default=4)
    parser.add_argument("--max_new_tokens", type=int, default=300)
    parser.add_argument("--diffro_learning_rate", type=float, default=2e-5)
    parser.add_argument("--grpo_learning_rate", type=float, default=2e-5)
    parser.add_argument("--diffro_beta", type=float, default=0.01)
    parser.add_argument("--ctc_reduction", choices=["mean", "sum"], default="sum",
                        help="DiffRO's CTC reward per sentence (sum, on the scale of the summed KL; the default since "
                        "2026-12-04) or per text unit (mean, the default of the runs before)")  # fmt: skip
    parser.add_argument("--grpo_beta", type=float, default=0.0)
    parser.add_argument("--pitch_reference_utterances", type=int, default=400,
                        help="corpus utterances (all voices, seed corpus_seed + 1000) for the per-voice F0 reference "
                        "used to score pitch relative to each sample's voice, resynthesised by the speech tokenizer "
                        "like the samples; 0 skips it")
    parser.add_argument("--f0_method", choices=["ac", "shs"], default="shs",
                        help="F0 tracker of the evaluation (ardm_trl.rewards.f0_track); 'shs' reads the bundled codec's "
                        "output right, 'ac' does not for voices below ~110 Hz (docs/rewards.md)")
    parser.add_argument("--eval_seeds", type=int, nargs="+", default=[1234],
                        help="sampling seeds of the evaluation: each held-out sentence is sampled once per seed, with "
                        "the same seeds at every evaluation (paired samples)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "diffro_vs_grpo.json"))
    parser.add_argument("--save_dir", default=None, help="Save each run's trained policy under this folder.")
    parser.add_argument("--replot", action="store_true", help="Only redraw the table and plot from --output's JSON.")
    parser.add_argument("--merge", nargs="+", type=Path, default=None,
                        help="Only join these result files (runs of one method each, from the same start) into --output.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    output = Path(args.output)
    if args.replot or args.merge:
        if args.merge:
            results = merge_results(args.merge)
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(results, indent=1))
        else:
            results = json.loads(output.read_text())
        write_markdown(results, output.with_suffix(".md"))
        write_plot(results, output.with_suffix(".png"))
        return
    torch.manual_seed(args.seed)

    speech_tokenizer = load_speech_tokenizer(args.speech_tokenizer_path)
    data = tokenize_corpus(args.num_utterances, args.corpus_seed, speech_tokenizer, args.data_cache,
                           args.speech_tokenizer_path or "bundled")  # fmt: skip
    tokenizer = CodecLMTokenizer.from_pretrained(args.codec_lm_path)
    mtr = TokenRewardModel.from_pretrained(args.reward_model_path)
    pitch_reference = None
    if args.pitch_reference_utterances > 0:
        pitch_reference = resynthesis_pitch_reference(
            speech_tokenizer, args.pitch_reference_utterances, args.corpus_seed + 1000, args.f0_method
        )
    evaluate = make_evaluator(tokenizer, speech_tokenizer, data["test"], args, pitch_reference)
    results = {"args": vars(args), "torch_threads": torch.get_num_threads(), "runs": []}
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        if method == "diffro":
            rewards = [CTCReward(mtr, reduction=args.ctc_reduction)]
            results["runs"].append(run_diffro(args, data, tokenizer, speech_tokenizer, evaluate, rewards))
        elif method == "grpo":
            results["runs"].append(run_grpo(args, data, tokenizer, speech_tokenizer, evaluate))
        else:
            raise ValueError(f"Unknown method {method!r}: use diffro and/or grpo.")
    for control in args.control:
        task, target = control.split("=", 1)
        rewards = [CTCReward(mtr, reduction=args.ctc_reduction), AttributeReward(mtr, task)]
        results["runs"].append(run_diffro(args, data, tokenizer, speech_tokenizer, evaluate, rewards,
                                          targets={task: target}, name=f"diffro_control_{task}_{target}"))  # fmt: skip
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1))
    write_markdown(results, output.with_suffix(".md"))
    write_plot(results, output.with_suffix(".png"))
    logger.info("results in %s", output)


if __name__ == "__main__":
    main()
