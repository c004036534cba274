"""Smoke test of `benchmarks/diffro_vs_grpo.py` on a tiny corpus: every run kind (DiffRO, TRL's GRPO, a DiffRO
control run) trains, is evaluated by the independent evaluators and lands in the JSON / Markdown / plot; the step-0
evaluations of the same checkpoint agree across runs (GRPO must not evaluate under bf16 autocast); `--merge` joins
runs made in separate processes only when they started from the same evaluation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_repo_script


@pytest.mark.slow
@pytest.mark.speech
def test_diffro_vs_grpo_runs_every_method_from_the_same_start(tmp_path):
    output = tmp_path / "dvg.json"
    run_repo_script(
        "benchmarks/diffro_vs_grpo.py", "--num_utterances", "60",
        "--data_cache", tmp_path / "tokens.pt", "--minutes", "0.02", "--eval_every_minutes", "10",
        "--num_eval_sentences", "2", "--batch_size", "4", "--num_generations", "2", "--max_new_tokens", "16",
        "--control", "rate_level=fast", "--eval_seeds", "1", "2", "--save_dir", tmp_path / "models",
        "--output", output, timeout=1200,
    )  # fmt: skip
    results = json.loads(output.read_text())
    runs = {run["method"]: run for run in results["runs"]}
    assert list(runs) == ["diffro", "grpo", "diffro_control_rate_level_fast"]
    for run in runs.values():
        assert run["steps"] >= 1 and run["seconds_per_step"] > 0
        assert len(run["eval_curve"]) >= 2  # the start and the end of training
        assert all(np.isfinite(point["relative_f0_semitones"]) for point in run["eval_curve"])  # per-voice pitch
        # 2 sentences x 2 sampling seeds, paired between the first and the last evaluation
        assert all(len(point["ctc_nll_per_sample"]) == 4 for point in run["eval_curve"])
        first, last = run["eval_curve"][0]["ctc_nll_per_sample"], run["eval_curve"][-1]["ctc_nll_per_sample"]
        pairs = [(a, b) for a, b in zip(first, last) if a is not None and b is not None]
        change = run["paired_change"]["ctc_nll"]
        assert change["n"] == len(pairs) and change["lower"] + change["higher"] <= len(pairs)
        assert change["mean"] == pytest.approx(np.mean([b - a for a, b in pairs]))
    starts = [run["eval_curve"][0] for run in runs.values()]
    for start in starts[1:]:
        assert start["ctc_nll"] == pytest.approx(starts[0]["ctc_nll"], abs=1e-6)
        assert start["seconds_per_phoneme"] == pytest.approx(starts[0]["seconds_per_phoneme"], abs=1e-9)
    markdown = output.with_suffix(".md").read_text()
    assert markdown.count("\n|") == len(runs) + 1  # rule and rows after the header
    assert "Paired change" in markdown
    assert output.with_suffix(".png").stat().st_size > 0
    # --save_dir: every run's trained policy reloads, and training changed it wherever a reward was logged (with
    # 16-token completions GRPO's audio reward can be None for every sample, and then it has nothing to learn from)
    from ardm_trl.models.codec_lm import CodecLMForSpeechSynthesis

    repo = Path(__file__).resolve().parents[1]
    base = CodecLMForSpeechSynthesis.from_pretrained(repo / "pretrained" / "codec_lm").state_dict()
    assert runs["diffro"]["reward_first_10_steps"] is not None
    for name, run in runs.items():
        trained = CodecLMForSpeechSynthesis.from_pretrained(tmp_path / "models" / name).state_dict()
        changed = any(not torch.equal(trained[key], base[key]) for key in base)
        assert changed or run["reward_first_10_steps"] is None, name


def _result(method, start_nll, end_nll, seconds_per_step=2.0):
    """A one-run result file as `diffro_vs_grpo.py` writes it (two evaluations of 3 paired samples)."""
    curve = [{"train_minutes": minutes, "step": step, "ctc_nll": float(np.mean(nll)), "ctc_nll_per_sample": nll,
              "wer": 50.0, "wer_per_sample": [50.0, 50.0, None], "seconds_per_phoneme": 0.06, "median_f0": 150.0}
             for minutes, step, nll in ((0.0, 0, start_nll), (10.0, 40, end_nll))]  # fmt: skip
    run = {"method": method, "steps": 40, "seconds_per_step": seconds_per_step, "train_minutes": 10.0,
           "reward_first_10_steps": -3.0, "reward_last_10_steps": -2.0, "eval_curve": curve,
           "paired_change": {"ctc_nll": {"mean": float(np.mean(end_nll) - np.mean(start_nll)), "sem": 0.1, "n": 3,
                                         "lower": 3, "higher": 0}}}  # fmt: skip
    return {"args": {"methods": method}, "torch_threads": 1, "runs": [run]}


def test_merge_joins_runs_from_the_same_start_and_refuses_others(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "diffro_vs_grpo.py"
    paths = {name: tmp_path / f"{name}.json" for name in ("diffro", "grpo", "other")}
    paths["diffro"].write_text(json.dumps(_result("diffro", [2.0, 1.0, 3.0], [1.0, 1.0, 2.0])))
    paths["grpo"].write_text(json.dumps(_result("grpo", [2.0, 1.0, 3.0], [2.0, 1.0, 2.5], seconds_per_step=5.0)))
    paths["other"].write_text(json.dumps(_result("grpo", [2.5, 1.0, 3.0], [2.0, 1.0, 2.5])))
    merged = tmp_path / "merged.json"
    run_repo_script("benchmarks/diffro_vs_grpo.py", "--merge", paths["diffro"], paths["grpo"], "--output", merged)
    results = json.loads(merged.read_text())
    assert [run["method"] for run in results["runs"]] == ["diffro", "grpo"]
    assert [source["path"] for source in results["sources"]] == [str(paths["diffro"]), str(paths["grpo"])]
    markdown = merged.with_suffix(".md").read_text()
    assert "| diffro | 40 | 2.00 |" in markdown and "| grpo | 40 | 5.00 |" in markdown
    assert "-0.0667 per minute" in markdown  # diffro: mean change -2/3 nats over 10 training minutes
    assert merged.with_suffix(".png").stat().st_size > 0

    refused = tmp_path / "refused.json"
    completed = subprocess.run([sys.executable, str(script), "--merge", paths["diffro"], paths["other"], "--output",
                                refused], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert completed.returncode != 0
    assert "did not start from the same evaluation" in completed.stderr
    assert not refused.exists()  # nothing half-written
