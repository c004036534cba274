"""Checkpoints that survive a kill: a checkpoint counts only once it is whole, and resuming picks the last whole one.

`transformers.Trainer` writes a `checkpoint-N/` folder piece by piece (weights, optimiser, RNG, `trainer_state.json`)
and `resume_from_checkpoint=True` takes the highest `N`, whole or not; a run killed inside a save then cannot resume.
Here the last act of a save is an atomically renamed marker file, and resuming looks only at marked folders.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "checkpoint_complete.json"


def is_complete_checkpoint(folder: str | os.PathLike) -> bool:
    """Whether `folder` is a checkpoint whose save finished (it holds the marker written last)."""
    return (Path(folder) / COMPLETE_MARKER).is_file()


def _checkpoint_step(folder: Path) -> int | None:
    suffix = folder.name[len(PREFIX_CHECKPOINT_DIR) + 1 :]
    return int(suffix) if folder.name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and suffix.isdigit() else None


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The whole checkpoint of `output_dir` with the highest step (`None` if there is none); incomplete ones (a save
    that was killed) are skipped with a warning."""
    folders = [(step, p) for p in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")
               if p.is_dir() and (step := _checkpoint_step(p)) is not None]  # fmt: skip
    complete = [(step, p) for step, p in folders if is_complete_checkpoint(p)]
    if not complete:
        return None
    last_step, last = max(complete, key=lambda item: item[0])
    skipped = sorted(str(p) for step, p in folders if step > last_step)
    if skipped:
        logger.warning("Skipping incomplete checkpoint(s) %s (their save did not finish); resuming from %s.",
                       ", ".join(skipped), last)  # fmt: skip
    return str(last)


def resolve_resume_checkpoint(resume_from_checkpoint: str | bool | None, output_dir: str) -> str | bool | None:
    """`resume_from_checkpoint` as `Trainer.train` should see it: `True` becomes the last whole checkpoint of
    `output_dir`; a given folder must hold `trainer_state.json` (a folder without the completion marker, e.g. written
    by another trainer, is accepted with a warning)."""
    if resume_from_checkpoint is True:
        last = last_complete_checkpoint(output_dir)
        if last is None:
            raise ValueError(
                f"`resume_from_checkpoint=True` but {output_dir} holds no complete checkpoint (a `checkpoint-N` folder "
                f"with {COMPLETE_MARKER}). Start without resuming, or pass a checkpoint folder."
            )
        return last
    if isinstance(resume_from_checkpoint, (str, os.PathLike)) and os.path.isdir(resume_from_checkpoint):
        if not is_complete_checkpoint(resume_from_checkpoint):
            if not (Path(resume_from_checkpoint) / "trainer_state.json").is_file():
                raise ValueError(
                    f"{resume_from_checkpoint} is an incomplete checkpoint (no trainer_state.json: its save was "
                    "interrupted). Resume from an earlier one, or pass `resume_from_checkpoint=True` to take the last "
                    "complete one."
                )
            logger.warning("%s has no %s marker; resuming from it as given.", resume_from_checkpoint, COMPLETE_MARKER)
    return resume_from_checkpoint


class AtomicCheckpointMixin:
    """For `transformers.Trainer` subclasses: checkpoints are marked whole by a marker written (and renamed into place)
    after everything else, on every process; `train(resume_from_checkpoint=True)` resumes from the last whole one.

    Subclasses with more state (critic models and their optimisers, noise generators) save it in
    [`_save_extra_checkpoint_state`], which runs before the marker is written.
    """

    def _save_extra_checkpoint_state(self, folder: str) -> None:
        """Hook: save state beyond the `Trainer`'s into the checkpoint `folder` (before it is marked whole)."""

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save and os.path.isdir(folder):  # a left-over of a killed save: start it afresh
            shutil.rmtree(folder)
        self.accelerator.wait_for_everyone()
        self._save_extra_checkpoint_state(folder)
        super()._save_checkpoint(model, trial)
        self.accelerator.wait_for_everyone()
        if self.args.should_save and os.path.isdir(folder):
            staging = os.path.join(folder, f".{COMPLETE_MARKER}.tmp")
            with open(staging, "w") as handle:
                json.dump({"global_step": self.state.global_step, "time": time.time()}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, os.path.join(folder, COMPLETE_MARKER))

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        resume_from_checkpoint = resolve_resume_checkpoint(resume_from_checkpoint, self.args.output_dir)
        return super().train(resume_from_checkpoint, *args, **kwargs)


__all__ = [
    "COMPLETE_MARKER",
    "AtomicCheckpointMixin",
    "is_complete_checkpoint",
    "last_complete_checkpoint",
    "resolve_resume_checkpoint",
]
