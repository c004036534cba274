"""The answers file of a CMOS test: checking a submission against the key, appending it, reading them back.

`answers.jsonl` holds one JSON object per submission:
`{"test_id", "test_type", "listener", "started_at", "submitted_at", "received_at", "user_agent",
"answers": [{"item", "choice", "answered_at", "played"}]}`, where `choice` is one of `CHOICES`
(`"A+2"`, `"A+1"`, `"0"`, `"B+1"`, `"B+2"`) as the listener saw the sides.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .page import CHOICES

try:  # POSIX: also serialise appends between processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["CHOICE_VALUES", "append_submission", "load_answers", "validate_submission"]

# Preference for side A: "A+2" -> +2 ... "B+2" -> -2.
CHOICE_VALUES: dict[str, int] = dict(zip(CHOICES, (2, 1, 0, -1, -2)))

_APPEND_LOCK = threading.Lock()


def validate_submission(submission: Any, key: Mapping[str, Any], source: str = "submission") -> None:
    """Raise `ValueError` unless `submission` is a complete, well-formed answer sheet for the test of `key`: the
    same test id, a listener id, and one known choice for every item of the test (no unknown or repeated items)."""
    if not isinstance(submission, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(submission).__name__}.")
    if submission.get("test_id") != key["test_id"]:
        raise ValueError(f"{source}: test_id {submission.get('test_id')!r} is not this test's ({key['test_id']!r}); "
                         "answers from another build of the test cannot be scored with this key.")
    listener = submission.get("listener")
    if not isinstance(listener, str) or not listener.strip():
        raise ValueError(f"{source}: no listener id.")
    answers = submission.get("answers")
    if not isinstance(answers, list):
        raise ValueError(f"{source}: `answers` must be a list.")
    known = {item["id"] for item in key["items"]}
    seen = set()
    for answer in answers:
        if not isinstance(answer, dict):
            raise ValueError(f"{source}: each answer must be an object with `item` and `choice`.")
        item = answer.get("item")
        if item not in known:
            raise ValueError(f"{source}: answer for unknown item {item!r} (the test's items: {sorted(known)}).")
        if item in seen:
            raise ValueError(f"{source}: item {item!r} is answered twice.")
        seen.add(item)
        if answer.get("choice") not in CHOICE_VALUES:
            raise ValueError(f"{source}: item {item!r} has choice {answer.get('choice')!r}; "
                             f"expected one of {list(CHOICE_VALUES)}.")
    if seen != known:
        raise ValueError(f"{source}: items {sorted(known - seen)} are not answered.")


@contextmanager
def _locked(fd: int):
    with _APPEND_LOCK:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)


def append_submission(path: str | Path, submission: Mapping[str, Any]) -> None:
    """Append `submission` as one JSON line, whole or not at all: a single `write` of the complete line on an
    `O_APPEND` descriptor, under a thread lock and (on POSIX) an exclusive `flock`, then `fsync`."""
    line = (json.dumps(submission, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        with _locked(fd):
            written = os.write(fd, line)
            if written != len(line):  # a short write on a regular file means the disk is full
                os.ftruncate(fd, os.fstat(fd).st_size - written)
                raise OSError(f"Could not append the whole submission to {path} ({written}/{len(line)} bytes).")
            os.fsync(fd)
    finally:
        os.close(fd)


def load_answers(path: str | Path) -> list[dict[str, Any]]:
    """Read the submissions of an answers file (in the order they were received)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist: no answers were submitted yet.")
    submissions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            submissions.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number} is not a JSON line ({error}).") from error
    return submissions
