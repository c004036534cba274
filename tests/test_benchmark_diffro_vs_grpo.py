"""Smoke test of `benchmarks/diffro_vs_grpo.py` on a tiny corpus: every run kind (DiffRO, TRL's GRPO, a DiffRO
control run) trains, is evaluated by the independent evaluators and lands in the JSON / Markdown / plot; the step-0
evaluations of the same checkpoint agree across runs (GRPO must not evaluate under bf16 autocast)."""

import json

import numpy as np
import pytest
from conftest import run_repo_script

pytestmark = [pytest.mark.slow, pytest.mark.speech]


def test_diffro_vs_grpo_runs_every_method_from_the_same_start(tmp_path):
    output = tmp_path / "dvg.json"
    run_repo_script(
        "benchmarks/diffro_vs_grpo.py", "--num_utterances", "60",
        "--data_cache", tmp_path / "tokens.pt", "--minutes", "0.02", "--eval_every_minutes", "10",
        "--num_eval_sentences", "2", "--batch_size", "4", "--num_generations", "2", "--max_new_tokens", "16",
        "--control", "rate_level=fast", "--eval_seeds", "1", "2", "--output", output, timeout=1200,
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
