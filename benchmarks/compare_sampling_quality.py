"""Two models' `benchmarks/sampling_quality.py` results, paired sentence by sentence.

Both result files must come from the same corpus, test sentences and seeds (the script checks `--model`,
`--num_utterances`, `--num_sentences` and `--seeds`), so the same sentence was spoken with the same voice prompt and
sampling seed by both models. For every setting the two files share, each sentence's score is averaged over the seeds
in each file, and the table reports the candidate minus the baseline: mean ± SE over the sentences, and the share of
sentences where the candidate does at least as well. A negative change is an improvement for CTC NLL and WER.

Usage:

    python benchmarks/compare_sampling_quality.py CANDIDATE.json BASELINE.json [BASELINE2.json ...] \\
        [--output comparison.json]

Several baseline files (runs of the same baseline model with the same sentences and seeds, different settings) are
merged; where two hold the same setting, the first wins. The table names every folder the baseline was sampled from.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sampling_quality import PAIRED_METRICS, paired_difference, paired_rows, sentence_means

MATCHING_ARGS = ("model", "num_utterances", "num_sentences", "seeds")


def compare(candidate: dict, baseline: dict) -> dict[str, dict[str, dict[str, float]]]:
    """Per shared setting and metric: the paired difference candidate - baseline over the test sentences.

    Raises:
        ValueError: If the two runs did not sample the same sentences with the same seeds, share no setting, or hold
            no per-sample scores for a shared setting.
    """
    mismatched = [k for k in MATCHING_ARGS if candidate["args"][k] != baseline["args"][k]]
    if mismatched:
        details = ", ".join(f"{k}: {candidate['args'][k]} vs {baseline['args'][k]}" for k in mismatched)
        raise ValueError(f"the two runs are not paired (different {details})")
    shared = [s for s in candidate["settings"] if s in baseline["settings"]]
    if not shared:
        raise ValueError(f"no shared setting: {list(candidate['settings'])} vs {list(baseline['settings'])}")
    unpaired = [s for s in shared if "per_sample" not in candidate["settings"][s] or
                "per_sample" not in baseline["settings"][s]]  # fmt: skip
    if unpaired:
        raise ValueError(f"settings {unpaired} were stored without per-sample scores (an older sampling_quality.py)")
    return {setting: {key: paired_difference(sentence_means(candidate["settings"][setting]["per_sample"], key),
                                             sentence_means(baseline["settings"][setting]["per_sample"], key))
                      for key in PAIRED_METRICS}
            for setting in shared}  # fmt: skip


def model_path(run: dict) -> str:
    """The model a run sampled (`sampling_quality.py` defaults to the bundled one under pretrained/)."""
    return run["args"]["model_path"] or f"pretrained/{run['args']['model']}"


def merge_runs(runs: list[dict]) -> dict:
    """One result of several runs on the same sentences and seeds, each setting from the first run that has it. The
    runs are meant to be of one model (the same weights may have been sampled from different folders, so the paths
    are kept, not checked).

    Raises:
        ValueError: If the runs differ in what `MATCHING_ARGS` pairs on.
    """
    for run in runs[1:]:
        differing = [k for k in MATCHING_ARGS if run["args"][k] != runs[0]["args"][k]]
        if differing:
            raise ValueError(f"cannot merge runs that differ in {differing}")
    settings = {}
    for run in runs:
        for setting, result in run["settings"].items():
            settings.setdefault(setting, result)
    paths = list(dict.fromkeys(model_path(run) for run in runs))
    return {"args": {**runs[0]["args"], "model_path": " = ".join(paths)}, "settings": settings}


def markdown(comparison: dict, candidate: dict, baseline: dict) -> str:
    names = [model_path(run) for run in (candidate, baseline)]
    lines = [f"`{names[0]}` minus `{names[1]}`, {candidate['args']['num_sentences']} test sentences x seeds "
             f"{candidate['args']['seeds']}, paired by sentence (share = sentences where `{names[0]}` scores at least "
             "as well)", "", "| setting | CTC NLL change | share | WER change (points) | share |", "|---" * 5 + "|"]  # fmt: skip
    lines += paired_rows(comparison)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("candidate", type=Path)
    parser.add_argument("baseline", type=Path, nargs="+")
    parser.add_argument("--output", type=Path, default=None, help="also write the comparison as JSON and .md here")
    args = parser.parse_args()
    candidate = json.loads(args.candidate.read_text())
    baseline = merge_runs([json.loads(path.read_text()) for path in args.baseline])
    comparison = compare(candidate, baseline)
    table = markdown(comparison, candidate, baseline)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(comparison, indent=1))
        args.output.with_suffix(".md").write_text(table)
    print(table, end="")


if __name__ == "__main__":
    main()
