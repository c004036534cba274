"""Smoke test of `benchmarks/sampling_quality.py` on a tiny corpus, for both bundled generators: every setting is
sampled once per seed, scored by the independent evaluators, and lands in the JSON and the Markdown table."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.speech]


@pytest.mark.parametrize(
    ("model", "settings", "keys"),
    [("codec_lm", ["1.0:none", "0.6:25"], {"ctc_nll", "wer", "seconds"}),
     ("ardm", ["1.0:4:2", "0.6:4:2"], {"ctc_nll", "wer", "seconds", "sim", "dnsmos"})],
)  # fmt: skip
def test_sampling_quality_scores_every_setting_and_seed(tmp_path, model, settings, keys):
    output = tmp_path / "sq.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "sampling_quality.py"), "--model", model,
               "--num_utterances", "200", "--data_cache", str(tmp_path / "cache.pt"), "--settings", *settings,
               "--seeds", "1", "2", "--num_sentences", "2", "--output", str(output)]  # fmt: skip
    completed = subprocess.run(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                               text=True, timeout=1200)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(output.read_text())
    assert list(results["settings"]) == settings
    for result in results["settings"].values():
        assert keys <= set(result)
        assert list(result["per_seed"]) == ["1", "2"]
        assert np.isfinite(result["ctc_nll"]["mean"]) and result["seconds"]["mean"] > 0
        # the pooled mean is the mean of the per-seed means when every sample is defined (2 sentences per seed)
        per_seed = [s["seconds"] for s in result["per_seed"].values()]
        assert result["seconds"]["mean"] == pytest.approx(np.mean(per_seed))
    table = [line for line in output.with_suffix(".md").read_text().splitlines() if line.startswith("|")]
    assert len(table) == len(settings) + 2  # header, rule, one row per setting
