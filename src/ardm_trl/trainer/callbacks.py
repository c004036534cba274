"""Trainer callbacks shared by the pretraining scripts."""

from __future__ import annotations

import time

from transformers import TrainerCallback

__all__ = ["TimeLimitCallback"]


class TimeLimitCallback(TrainerCallback):
    """Stops training after `minutes` of wall-clock time in this run, and has the Trainer save a checkpoint then (so a
    time-limited run ends like a finished one and can be resumed).

    Args:
        minutes (`float`): the training time of this run, counted from the callback's creation.
    """

    def __init__(self, minutes: float):
        self.seconds, self.start = 60.0 * minutes, time.time()

    def on_step_end(self, args, state, control, **kwargs):
        if time.time() - self.start > self.seconds:
            control.should_training_stop = control.should_save = True
        return control
