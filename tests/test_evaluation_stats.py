"""`ardm_trl.evaluation.mean_and_sem`, the mean and standard error the benchmarks report."""

import math

import numpy as np
import pytest

from ardm_trl.evaluation import mean_and_sem


def test_mean_and_sem_match_the_textbook_formula():
    values = [1.0, 2.0, 4.0, 7.0]
    mean, sem = mean_and_sem(values)
    assert mean == pytest.approx(3.5)
    assert sem == pytest.approx(np.sqrt(np.sum((np.array(values) - 3.5) ** 2) / 3) / 2)


def test_mean_and_sem_are_nan_where_undefined():
    assert all(math.isnan(v) for v in mean_and_sem([]))
    mean, sem = mean_and_sem([2.0])
    assert mean == 2.0 and math.isnan(sem)


def test_paired_difference_averages_each_prompt_before_pairing():
    from ardm_trl.stats import paired_difference

    # two prompts x two seeds; the method adds 1 to prompt 0 and 3 to prompt 1
    reference = [1.0, 2.0, 10.0, 12.0]
    values = [2.0, 3.0, 13.0, 15.0]
    out = paired_difference(values, reference, prompt_ids=[0, 0, 1, 1])
    assert out["n"] == 2
    assert out["mean"] == 2.0
    assert math.isclose(out["sem"], 1.0)  # std of (1, 3) / sqrt(2)
    assert out["ci95_low"] < 2.0 < out["ci95_high"]
    # pairs with a missing side are dropped; without prompt ids samples pair one to one
    single = paired_difference([1.0, None, 3.0], [0.0, 5.0, float("nan")])
    assert single["n"] == 1 and single["mean"] == 1.0 and math.isnan(single["sem"])
    with pytest.raises(ValueError, match="reference"):
        paired_difference([1.0], [1.0, 2.0])
