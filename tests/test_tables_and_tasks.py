"""The results table (paired changes against Base) and the task presets' prompt splits."""

import math

import pytest

from ardm_trl.tables import MethodResult, MetricColumn, ResultsTable, write_run_info


def test_results_table_pairs_every_row_with_the_reference_per_prompt(tmp_path):
    prompt_ids, seeds = [0, 1, 2, 0, 1, 2], [0, 0, 0, 1, 1, 1]
    table = ResultsTable("t", [MetricColumn("nll", "NLL ↓", ".2f", False), MetricColumn("sim", "SIM ↑")],
                         prompt_ids, seeds)
    table.add(MethodResult("Base", {"nll": [1.0, 2.0, 3.0, 1.2, 2.2, 3.2], "sim": [0.8] * 6}))
    table.add(MethodResult("VGPO", {"nll": [0.9, 1.6, 3.0, 1.1, 1.8, 3.2], "sim": [0.8] * 6}, kl=0.01,
                           train_seconds=10))
    cell = table.cell("VGPO", "nll")
    # per-prompt changes (-0.1, -0.4, 0.0): mean -0.1667, SE of the three
    assert cell["change"] == pytest.approx(-0.5 / 3)
    assert cell["change_sem"] == pytest.approx(math.sqrt(((0.1 - 0.5 / 3) ** 2 + (0.4 - 0.5 / 3) ** 2 +
                                                          (0.5 / 3) ** 2) / 2) / math.sqrt(3))
    assert cell["per_seed"] == {0: pytest.approx(5.5 / 3), 1: pytest.approx(6.1 / 3)}
    assert "change" not in table.cell("Base", "nll")
    text = table.markdown()
    assert text.count("\n") == 3 and "(-0.17 ± " in text and "0.0100" in text
    table.save(tmp_path / "t.json")
    again = ResultsTable.load(tmp_path / "t.json")
    assert again.markdown() == text
    assert (tmp_path / "t.md").read_text().endswith(text + "\n")
    with pytest.raises(ValueError, match="samples"):
        table.add(MethodResult("bad", {"nll": [1.0]}))
    with pytest.raises(KeyError, match="No row"):
        table.row("missing")
    write_run_info(tmp_path / "run", 12.5, "python x.py", task="ctc")
    assert '"train_seconds": 12.5' in (tmp_path / "run" / "run_info.json").read_text()


def test_task_splits_hold_out_sentences_and_keep_voice_prompts_outside_the_split(tmp_path):
    from ardm_trl.tasks import get_task, split_rows, task_prompts

    class Codec:  # voice prompts are latents: a stand-in encoder
        sampling_rate = 22050

        def encode_list(self, waveforms):
            import torch

            return [torch.zeros(len(w) // 512 + 1, 4) for w in waveforms]

    from ardm_trl.data.corpus_cache import load_or_build_corpus

    corpus = load_or_build_corpus(tmp_path, 120, 0, 22050, hard_fraction=0.9)
    _, validation = split_rows(corpus, "validation")
    rows, test = split_rows(corpus, "test")
    sentences = rows["sentence_id"]
    assert validation and test and not {sentences[i] for i in validation} & {sentences[i] for i in test}
    _, high = split_rows(corpus, "test", min_voice_pitch="high")
    assert high and all(rows["pitch_level"][i] == "high" for i in high)
    _, female = split_rows(corpus, "test", gender="female")
    assert female and set(female) < set(test) and all(rows["gender"][i] == "female" for i in female)
    task_a = get_task("f0")
    assert task_a.gender == "female" and task_a.f0_metric == "f0v_robust"
    assert task_a.reward(None).kwargs["outlier_semitones"] == task_a.f0_outlier_semitones

    class Tokenizer:
        def encode(self, text):
            return [1] * len(text)

    prompts = task_prompts("ctc", "test", Codec(), Tokenizer(), limit=4, corpus_utterances=120,
                           corpus_cache_dir=str(tmp_path))
    assert len(prompts) == 4 and all("prompt_latents" in p for p in prompts)
    assert get_task("ctc").max_patches == 64
    with pytest.raises(ValueError, match="Unknown task"):
        get_task("mos")
    with pytest.raises(ValueError, match="split"):
        split_rows(corpus, "dev")
