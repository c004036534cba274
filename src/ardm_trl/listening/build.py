"""Build a CMOS listening test folder from two systems' samples of the same prompts.

A test folder holds:
- `index.html`: the page listeners see ([`render_page`]);
- `audio/`: copies of the WAVs, renamed `item<k>_A`, `item<k>_B`, `item<k>_ref` (names say nothing of the systems);
- `key.json`: the hidden key (which side plays the system under test, per item), read by the server and by
  [`analyze_cmos`], never served;
- `answers.jsonl`: one line per submission, appended by [`CMOSServer`].
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import soundfile

from .page import TEST_TYPES, render_page

__all__ = [
    "ANSWERS_FILE",
    "AUDIO_DIR",
    "INDEX_FILE",
    "KEY_FILE",
    "KEY_FORMAT",
    "CMOSTest",
    "build_cmos_test",
    "items_from_folders",
    "load_items",
    "load_key",
    "load_texts",
]

logger = logging.getLogger(__name__)

INDEX_FILE = "index.html"
KEY_FILE = "key.json"
ANSWERS_FILE = "answers.jsonl"
AUDIO_DIR = "audio"
KEY_FORMAT = "ardm_trl.cmos/1"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class CMOSTest:
    """A built test: its folder, the page and the key."""

    output_dir: Path
    test_id: str
    test_type: str
    num_items: int

    @property
    def index_path(self) -> Path:
        return self.output_dir / INDEX_FILE

    @property
    def key_path(self) -> Path:
        return self.output_dir / KEY_FILE

    @property
    def answers_path(self) -> Path:
        return self.output_dir / ANSWERS_FILE


def _check_audio(path: Any, what: str, item_id: str) -> Path:
    if path is None or path == "":
        raise ValueError(f"Item {item_id!r} has no {what}.")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Item {item_id!r}: {what} {str(path)!r} does not exist.")
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise ValueError(f"Item {item_id!r}: {what} {str(path)!r} is not a browser-playable audio file "
                         f"(expected one of {', '.join(AUDIO_SUFFIXES)}).")
    try:
        info = soundfile.info(str(path))
    except Exception as error:  # soundfile raises its own error types, RuntimeError among them
        raise ValueError(f"Item {item_id!r}: {what} {str(path)!r} cannot be read as audio ({error}).") from error
    if info.frames == 0:
        raise ValueError(f"Item {item_id!r}: {what} {str(path)!r} is empty.")
    return path


def _validate_items(items: Sequence[Mapping[str, Any]], test_type: str) -> list[dict[str, Any]]:
    if test_type not in TEST_TYPES:
        raise ValueError(f"Unknown test_type {test_type!r}: use one of {', '.join(TEST_TYPES)}.")
    if len(items) == 0:
        raise ValueError("A CMOS test needs at least one item.")
    spec, seen, checked = TEST_TYPES[test_type], set(), []
    for number, item in enumerate(items):
        unknown = set(item) - {"id", "text", "audio_a_path", "audio_b_path", "reference_path"}
        if unknown:
            raise ValueError(f"Item {number} has unknown keys {sorted(unknown)}; an item has `id`, `text`, "
                             "`audio_a_path` (system under test), `audio_b_path` (baseline) and `reference_path`.")
        item_id = str(item.get("id", "")).strip()
        if not item_id:
            raise ValueError(f"Item {number} has no `id`.")
        if item_id in seen:
            raise ValueError(f"Item id {item_id!r} appears twice; ids must be unique.")
        seen.add(item_id)
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"Item {item_id!r} has no `text` (the sentence both systems read).")
        reference = item.get("reference_path")
        if spec.requires_reference or reference not in (None, ""):
            what = "reference_path (the prompt audio; required for the speaker-similarity test)"
            reference = _check_audio(reference, what, item_id)
        checked.append({
            "id": item_id, "text": text.strip(), "reference_path": reference or None,
            "audio_a_path": _check_audio(item.get("audio_a_path"), "audio_a_path (system under test)", item_id),
            "audio_b_path": _check_audio(item.get("audio_b_path"), "audio_b_path (baseline)", item_id),
        })
    if not spec.requires_reference and len({item["reference_path"] is None for item in checked}) > 1:
        raise ValueError("Give a reference_path for every item or for none.")
    return checked


def _balanced_sides(num_items: int, rng: random.Random) -> list[str]:
    """Side of the system under test per item: half `A`, half `B` (the odd one out at random), shuffled."""
    sides = ["A"] * (num_items // 2) + ["B"] * (num_items // 2)
    if num_items % 2:
        sides.append(rng.choice("AB"))
    rng.shuffle(sides)
    return sides


def build_cmos_test(
    items: Sequence[Mapping[str, Any]],
    output_dir: str | Path,
    test_type: str = "naturalness",
    seed: int = 0,
    title: str | None = None,
    system_name: str = "system",
    baseline_name: str = "baseline",
    shuffle_items: bool = True,
    overwrite: bool = False,
) -> CMOSTest:
    """Build a CMOS test folder comparing a system under test with a baseline.

    Args:
        items (`Sequence[Mapping[str, Any]]`):
            One dict per prompt: `id` (unique), `text`, `audio_a_path` (the system under test's sample),
            `audio_b_path` (the baseline's sample on the same prompt) and `reference_path` (the prompt audio;
            required for `"similarity"`, optional otherwise, for all items or none). The `a`/`b` in the keys name
            the systems, not the sides: the side each plays on is drawn per item.
        output_dir (`str` or `Path`):
            Folder to write `index.html`, `audio/` and `key.json` into.
        test_type (`str`, *optional*, defaults to `"naturalness"`):
            `"naturalness"` (N-CMOS), `"similarity"` (S-CMOS) or `"expressiveness"` (E-CMOS).
        seed (`int`, *optional*, defaults to `0`):
            Seed of the side assignment and of the item order. Sides are balanced: the system under test is
            Audio A on half the items (the odd item at random) and Audio B on the others.
        title (`str`, *optional*):
            Page heading; defaults to the paper's ("Speech Naturalness Listening Test", ...).
        system_name (`str`, *optional*, defaults to `"system"`):
            Name of the system under test, stored in the key only.
        baseline_name (`str`, *optional*, defaults to `"baseline"`):
            Name of the baseline, stored in the key only.
        shuffle_items (`bool`, *optional*, defaults to `True`):
            Present the items in a seeded random order (the same for every listener).
        overwrite (`bool`, *optional*, defaults to `False`):
            Replace an existing test in `output_dir`, including its collected answers. Without it, a folder that
            already holds a test raises: rebuilding draws new sides, which would mis-score old answers.

    Returns:
        [`CMOSTest`]: the folder, the test id, type and number of items.
    """
    checked = _validate_items(items, test_type)
    output_dir = Path(output_dir)
    existing = [name for name in (INDEX_FILE, KEY_FILE, ANSWERS_FILE, AUDIO_DIR) if (output_dir / name).exists()]
    if existing and not overwrite:
        raise ValueError(f"{output_dir} already holds a test ({', '.join(existing)}); pass overwrite=True "
                         "(--overwrite) to replace it and its answers, or choose another folder.")
    for name in existing:
        path = output_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    (output_dir / AUDIO_DIR).mkdir(parents=True, exist_ok=True)

    rng = random.Random(seed)
    sides = _balanced_sides(len(checked), rng)
    order = list(range(len(checked)))
    if shuffle_items:
        rng.shuffle(order)
    page_items, key_items = [], []
    for position, index in enumerate(order):
        item, side = checked[index], sides[index]
        on_a, on_b = (item["audio_a_path"], item["audio_b_path"]) if side == "A" else (
            item["audio_b_path"], item["audio_a_path"])
        page_item = {"id": item["id"], "text": item["text"]}
        for role, source in (("A", on_a), ("B", on_b), ("ref", item["reference_path"])):
            if source is None:
                continue
            name = f"{AUDIO_DIR}/item{position:03d}_{role}{source.suffix.lower()}"
            shutil.copyfile(source, output_dir / name)
            page_item["reference" if role == "ref" else f"audio_{role.lower()}"] = name
        page_items.append(page_item)
        key_items.append({
            "id": item["id"], "text": item["text"], "position": position, "system_side": side,
            "audio_a": page_item["audio_a"], "audio_b": page_item["audio_b"], "reference": page_item.get("reference"),
            "system_source": str(item["audio_a_path"]), "baseline_source": str(item["audio_b_path"]),
            "reference_source": None if item["reference_path"] is None else str(item["reference_path"]),
        })

    test_id = secrets.token_hex(8)  # random, so it cannot be used to guess the key
    key = {"format": KEY_FORMAT, "test_id": test_id, "test_type": test_type, "system_name": system_name,
           "baseline_name": baseline_name, "seed": seed, "created_at": datetime.now(timezone.utc).isoformat(),
           "items": key_items}
    (output_dir / KEY_FILE).write_text(json.dumps(key, indent=2) + "\n")
    (output_dir / INDEX_FILE).write_text(render_page(page_items, test_type, test_id, title), encoding="utf-8")
    logger.info("Built a %s CMOS test with %d items in %s", test_type, len(checked), output_dir)
    return CMOSTest(output_dir=output_dir, test_id=test_id, test_type=test_type, num_items=len(checked))


def load_key(test_dir: str | Path) -> dict[str, Any]:
    """Read and check the hidden key of a test folder."""
    path = Path(test_dir) / KEY_FILE
    if not path.is_file():
        raise ValueError(f"{path} does not exist: build the test first (`python -m ardm_trl.listening build`).")
    key = json.loads(path.read_text())
    if key.get("format") != KEY_FORMAT:
        raise ValueError(f"{path} is not an ardm_trl CMOS key (format {key.get('format')!r}, expected {KEY_FORMAT!r}).")
    return key


def items_from_folders(
    texts: Mapping[str, str],
    system_dir: str | Path,
    baseline_dir: str | Path,
    reference_dir: str | Path | None = None,
    system_pattern: str = "{id}.wav",
    baseline_pattern: str = "{id}.wav",
    reference_pattern: str = "{id}.wav",
) -> list[dict[str, Any]]:
    """Pair two systems' sample folders by item id.

    Args:
        texts (`Mapping[str, str]`):
            Item id -> text. Each id names one file per folder through the patterns.
        system_dir, baseline_dir (`str` or `Path`):
            Folders of the system under test's and the baseline's samples.
        reference_dir (`str` or `Path`, *optional*):
            Folder of the prompt audio (the speaker reference).
        system_pattern, baseline_pattern, reference_pattern (`str`, *optional*, default to `"{id}.wav"`):
            File names, formatted with `id`; e.g. `"{id}_after.wav"` and `"{id}_before.wav"` for the samples that
            `examples/vgpo.py` writes into one folder.
    """
    items = []
    for item_id, text in texts.items():
        item = {"id": item_id, "text": text,
                "audio_a_path": Path(system_dir) / system_pattern.format(id=item_id),
                "audio_b_path": Path(baseline_dir) / baseline_pattern.format(id=item_id)}
        if reference_dir is not None:
            item["reference_path"] = Path(reference_dir) / reference_pattern.format(id=item_id)
        items.append(item)
    return items


def load_items(path: str | Path) -> list[dict[str, Any]]:
    """Read items from a JSON list or a JSON-lines file; relative audio paths are taken from the file's folder."""
    path = Path(path)
    content = path.read_text()
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in content.splitlines() if line.strip()]
    else:
        rows = json.loads(content)
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"{path} must hold a list of item objects (a JSON list, or one object per line in .jsonl).")
    for row in rows:
        for field in ("audio_a_path", "audio_b_path", "reference_path"):
            if row.get(field) and not Path(row[field]).is_absolute():
                row[field] = str(path.parent / row[field])
    return rows


def load_texts(path: str | Path) -> dict[str, str]:
    """Read item id -> text from a JSON object, a JSON-lines file of `{"id", "text"}` rows, or `id<TAB>text` lines."""
    path = Path(path)
    content = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        texts = json.loads(content)
        if not isinstance(texts, dict):
            raise ValueError(f"{path} must hold a JSON object mapping item id to text.")
        return {str(k): v for k, v in texts.items()}
    texts = {}
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            row = json.loads(line)
            item_id, text = row.get("id"), row.get("text")
        else:
            item_id, _, text = line.partition("\t")
        if item_id in (None, "") or not text:
            raise ValueError(f"{path}:{number}: expected an id and a text (`{{\"id\", \"text\"}}` or `id<TAB>text`).")
        texts[str(item_id)] = text
    return texts
