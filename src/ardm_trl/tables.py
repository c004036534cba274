"""Results tables in the shape of the VGPO paper's, with the statistics a reader needs to trust a row: every method is
scored per sample on the same prompts and sampling seeds, and each cell reports the mean with its standard error and
the change against the reference row (Base), paired per prompt ([`~ardm_trl.stats.paired_difference`])."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .stats import mean_and_sem, paired_difference


@dataclass
class MetricColumn:
    """A metric column: the `score_speech` key, its header, a number format and which direction is better."""

    key: str
    header: str
    fmt: str = ".3f"
    higher_is_better: bool = True


@dataclass
class MethodResult:
    """One row: a method's per-sample metrics (aligned with the table's samples) and what it cost.

    Attributes:
        name (`str`): the row label.
        scores (`dict[str, list[float | None]]`): per-sample metrics, in the table's sample order.
        kl (`float`, *optional*): KL to the base model on the method's own samples (trained policies).
        kl_bound (`float`, *optional*): an analytic KL bound instead (Best-of-K: `log K - (K - 1) / K`).
        train_seconds (`float`, *optional*): wall-clock of what the method needs before sampling.
        sampling_seconds_per_utterance (`float`, *optional*): sampling (and, for Best-of-K, scoring) time per sample.
        details (`dict`): anything else worth keeping (settings, the command that trained it, checkpoints).
    """

    name: str
    scores: dict[str, list[float | None]]
    kl: float | None = None
    kl_bound: float | None = None
    train_seconds: float | None = None
    sampling_seconds_per_utterance: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResultsTable:
    """Rows of methods evaluated on the same samples (`prompt_ids[i]`, `seeds[i]` for sample `i`).

    Args:
        title (`str`), columns (`list[MetricColumn]`): what the table shows; the first column is the reward.
        prompt_ids (`list[int]`), seeds (`list[int]`): the prompt and sampling seed of each sample.
        reference (`str`, *optional*, defaults to `"Base"`): the row every other row is compared to.
        meta (`dict`): the command, the machine, the settings.
    """

    title: str
    columns: list[MetricColumn]
    prompt_ids: list[int]
    seeds: list[int]
    reference: str = "Base"
    rows: list[MethodResult] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, row: MethodResult) -> MethodResult:
        for key, values in row.scores.items():
            if len(values) != len(self.prompt_ids):
                raise ValueError(f"Row {row.name!r}: {len(values)} samples of {key!r}, the table has "
                                 f"{len(self.prompt_ids)}.")  # fmt: skip
        self.rows = [r for r in self.rows if r.name != row.name] + [row]
        return row

    def row(self, name: str) -> MethodResult:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"No row {name!r} in the table (rows: {[r.name for r in self.rows]}).")

    def cell(self, name: str, key: str) -> dict[str, float]:
        """Mean and SE of `key` in row `name`, the paired change against the reference (`change`, `change_sem`,
        `change_t`), and the mean of each sampling seed (`per_seed`)."""
        values = self.row(name).scores[key]
        finite = [v for v in values if v is not None and np.isfinite(v)]
        mean, sem = mean_and_sem(finite)
        out: dict[str, Any] = {"mean": mean, "sem": sem, "n": len(finite)}
        out["per_seed"] = {
            int(seed): mean_and_sem([v for v, s in zip(values, self.seeds) if s == seed and v is not None
                                     and np.isfinite(v)])[0]
            for seed in sorted(set(self.seeds))
        }  # fmt: skip
        reference = next((r for r in self.rows if r.name == self.reference), None)
        if reference is not None and name != self.reference and key in reference.scores:
            change = paired_difference(values, reference.scores[key], self.prompt_ids)
            out.update(change=change["mean"], change_sem=change["sem"], change_t=change["t"])
        return out

    def markdown(self) -> str:
        """The table: per metric `mean ± SE`, then the paired change against the reference `(Δ ± SE)`; KL, cost, and
        the reward's mean per sampling seed."""
        first = self.columns[0]
        header = ["Method", *[c.header for c in self.columns], "KL ↓", "train (s)", "sampling (s/utt)",
                  f"{first.header.split()[0]} per seed"]  # fmt: skip
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            cells = [row.name]
            for column in self.columns:
                if column.key not in row.scores:
                    cells.append("—")
                    continue
                c = self.cell(row.name, column.key)
                text = f"{c['mean']:{column.fmt}} ± {c['sem']:{column.fmt}}"
                if "change" in c and np.isfinite(c["change"]):
                    text += f" ({c['change']:+{column.fmt}} ± {c['change_sem']:{column.fmt}})"
                cells.append(text)
            if row.kl is not None:
                cells.append(f"{row.kl:.4f}")
            else:
                cells.append(f"≤ {row.kl_bound:.2f} (bound)" if row.kl_bound is not None else "—")
            cells.append("—" if row.train_seconds is None else f"{row.train_seconds:.0f}")
            cells.append("—" if row.sampling_seconds_per_utterance is None else
                         f"{row.sampling_seconds_per_utterance:.2f}")  # fmt: skip
            if first.key in row.scores:
                seeds = self.cell(row.name, first.key)["per_seed"]
                cells.append(" / ".join(f"{v:{first.fmt}}" for v in seeds.values()))
            else:
                cells.append("—")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": [asdict(c) for c in self.columns], "prompt_ids": self.prompt_ids,
                "seeds": self.seeds, "reference": self.reference, "meta": self.meta,
                "rows": [asdict(r) for r in self.rows], "table": self.markdown()}  # fmt: skip

    def save(self, path: str | Path) -> None:
        """Write the JSON (every per-sample score) and, beside it, the Markdown table (`.md`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        command = self.meta.get("command")
        text = f"## {self.title}\n\n" + (f"`{command}`\n\n" if command else "") + self.markdown() + "\n"
        path.with_suffix(".md").write_text(text)

    @classmethod
    def load(cls, path: str | Path) -> ResultsTable:
        data = json.loads(Path(path).read_text())
        table = cls(title=data["title"], columns=[MetricColumn(**c) for c in data["columns"]],
                    prompt_ids=data["prompt_ids"], seeds=data["seeds"], reference=data["reference"],
                    meta=data.get("meta", {}))  # fmt: skip
        table.rows = [MethodResult(**row) for row in data["rows"]]
        return table


def write_run_info(folder: str | Path, train_seconds: float, command: str, **extra: Any) -> None:
    """Write `run_info.json` beside a trained model: what [`ResultsTable`] rows report as its cost and provenance
    (training seconds, the command that made it, any settings)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run_info.json").write_text(json.dumps({"train_seconds": train_seconds, "command": command, **extra},
                                                     indent=1))  # fmt: skip


__all__ = ["MethodResult", "MetricColumn", "ResultsTable", "write_run_info"]
