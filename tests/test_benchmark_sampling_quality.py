"""Smoke test of `benchmarks/sampling_quality.py` on a tiny corpus, for both bundled generators: every setting is
sampled once per seed, scored by the independent evaluators, and lands in the JSON and the Markdown table; the
references (corpus audio, codec round trip) are scored on the same sentences and the paired comparison with the
corpus audio is the per-sentence difference of the stored scores."""

import json

import numpy as np
import pytest
from conftest import run_repo_script

pytestmark = [pytest.mark.slow, pytest.mark.speech]


@pytest.mark.parametrize(
    ("model", "settings", "keys", "round_trip"),
    [("codec_lm", ["1.0:none", "0.6:25"], {"ctc_nll", "wer", "seconds"}, "tokenizer resynthesis"),
     ("ardm", ["1.0:4:2", "0.6:4:2"], {"ctc_nll", "wer", "seconds", "sim", "dnsmos"}, "codec reconstruction")],
)  # fmt: skip
def test_sampling_quality_scores_every_setting_and_seed(tmp_path, model, settings, keys, round_trip):
    output = tmp_path / "sq.json"
    run_repo_script("benchmarks/sampling_quality.py", "--model", model, "--num_utterances", "200", "--data_cache",
                    tmp_path / "cache.pt", "--settings", *settings, "--seeds", "1", "2", "--num_sentences", "2",
                    "--output", output, timeout=1200)  # fmt: skip
    results = json.loads(output.read_text())
    assert list(results["settings"]) == settings
    for result in results["settings"].values():
        assert keys <= set(result)
        assert list(result["per_seed"]) == ["1", "2"]
        assert np.isfinite(result["ctc_nll"]["mean"]) and result["seconds"]["mean"] > 0
        # the pooled mean is the mean of the per-seed means when every sample is defined (2 sentences per seed)
        per_seed = [s["seconds"] for s in result["per_seed"].values()]
        assert result["seconds"]["mean"] == pytest.approx(np.mean(per_seed))
    assert list(results["references"]) == ["corpus audio", round_trip]
    corpus = results["references"]["corpus audio"]["per_sentence"]
    for result in results["settings"].values():
        assert keys <= set(results["references"]["corpus audio"])
        for key in ("ctc_nll", "wer"):
            samples = [result["per_sample"][seed][key] for seed in ("1", "2")]
            diffs = [np.mean([s[i] for s in samples]) - corpus[key][i] for i in range(2)]
            paired = result["vs_corpus_audio"][key]
            assert paired["num_sentences"] == 2
            assert paired["mean"] == pytest.approx(np.mean(diffs))
            assert paired["share_at_least_as_good"] == pytest.approx(np.mean([d <= 0 for d in diffs]))
    table = [line for line in output.with_suffix(".md").read_text().splitlines() if line.startswith("|")]
    # header, rule, one row per setting and per reference; then the paired table: header, rule, one row per setting
    assert len(table) == (len(settings) + 2 + 2) + (len(settings) + 2)
