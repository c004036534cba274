"""`benchmarks/compare_sampling_quality.py` pairs two models' stored sampling_quality results sentence by sentence: the
per-sentence means over the seeds, their difference, and a clear error when the runs were not paired."""

import json

import numpy as np
import pytest
from conftest import run_repo_script


def result(model_path, settings, seeds=(1, 2)):
    """A sampling_quality result with per-sample scores `settings[setting][metric][seed_index][sentence]`."""
    args = {"model": "ardm", "model_path": model_path, "num_utterances": 3000, "num_sentences": 3, "seeds": list(seeds)}
    return {"args": args, "settings": {
        setting: {"per_sample": {str(seed): {key: values[key][i] for key in values} for i, seed in enumerate(seeds)}}
        for setting, values in settings.items()}}  # fmt: skip


def test_compare_pairs_sentences_over_seeds_and_merges_baseline_runs(tmp_path):
    candidate = result("outputs/new", {"0:16:1.5": {"ctc_nll": [[1.0, 2.0, 3.0], [1.2, 2.0, None]],
                                                    "wer": [[10.0, 50.0, 0.0], [30.0, 50.0, 0.0]]}})  # fmt: skip
    baseline_a = result(None, {"0:16:1.5": {"ctc_nll": [[1.5, 1.0, 3.0], [1.5, 1.0, 3.0]],
                                            "wer": [[20.0, 40.0, 0.0], [20.0, 40.0, 0.0]]}})  # fmt: skip
    baseline_b = result("pretrained/ardm", {"0:16:1.5": {"ctc_nll": [[9.0] * 3] * 2, "wer": [[99.0] * 3] * 2},
                                            "1:16:2": {"ctc_nll": [[9.0] * 3] * 2, "wer": [[99.0] * 3] * 2}})  # fmt: skip
    paths = []
    for name, run in {"new": candidate, "a": baseline_a, "b": baseline_b}.items():
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(run))
    out = tmp_path / "comparison.json"
    completed = run_repo_script("benchmarks/compare_sampling_quality.py", *paths, "--output", out)
    comparison = json.loads(out.read_text())
    # the first baseline run wins the shared setting; "1:16:2" is only in the baseline, so it is not compared
    assert list(comparison) == ["0:16:1.5"]
    nll, wer = comparison["0:16:1.5"]["ctc_nll"], comparison["0:16:1.5"]["wer"]
    nll_diffs = [1.1 - 1.5, 2.0 - 1.0, 3.0 - 3.0]  # sentence 3: only seed 1 defines it
    assert nll["mean"] == pytest.approx(np.mean(nll_diffs))
    assert nll["sem"] == pytest.approx(np.std(nll_diffs, ddof=1) / np.sqrt(3))
    assert nll["share_at_least_as_good"] == pytest.approx(2 / 3) and nll["num_sentences"] == 3
    assert wer["mean"] == pytest.approx(np.mean([0.0, 10.0, 0.0]))
    assert "outputs/new` minus `pretrained/ardm`" in completed.stdout
    assert out.with_suffix(".md").read_text() == completed.stdout


def test_compare_refuses_runs_on_different_seeds(tmp_path):
    scores = {"0:16:2": {"ctc_nll": [[1.0] * 3] * 2, "wer": [[1.0] * 3] * 2}}
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    paths[0].write_text(json.dumps(result("a", scores, seeds=(1, 2))))
    paths[1].write_text(json.dumps(result("b", scores, seeds=(3, 4))))
    with pytest.raises(AssertionError, match=r"not paired \(different seeds: \[1, 2\] vs \[3, 4\]\)"):
        run_repo_script("benchmarks/compare_sampling_quality.py", *paths)
