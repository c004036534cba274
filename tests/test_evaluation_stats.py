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
