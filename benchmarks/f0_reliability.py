"""Is the F0-variance reward reliable on the codec's output? F0V of held-out corpus utterances against F0V of the same
audio after a codec round trip (encode, decode), by voice pitch level: rank correlation (Spearman) and the share of
utterances the tracker finds enough voicing in.

A reward that the codec's rendering scrambles cannot be optimised through the codec: Task A uses the voices for which
this table shows it survives (`ardm_trl.tasks`, `min_voice_pitch`).

Each utterance is scored with every F0 frame kept, and with the frames further than `--outlier_semitones` from the
utterance's median F0 dropped (`f0_variance(..., outlier_semitones=...)`: the tracker's octave jumps).

Usage:

    OMP_NUM_THREADS=1 python benchmarks/f0_reliability.py     # benchmarks/results/f0_reliability.json / .md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from ardm_trl.audio import load_pretrained_codec
from ardm_trl.data.corpus_cache import DEFAULT_CORPUS_CACHE_DIR, load_or_build_corpus
from ardm_trl.rewards.f0 import f0_variance


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus_utterances", type=int, default=3000)
    parser.add_argument("--hard_fraction", type=float, default=0.15)
    parser.add_argument("--outlier_semitones", type=float, default=6.0)
    parser.add_argument("--output_json", default="benchmarks/results/f0_reliability.json")
    args = parser.parse_args(argv)
    codec = load_pretrained_codec()
    corpus = load_or_build_corpus(DEFAULT_CORPUS_CACHE_DIR, args.corpus_utterances, 0, codec.sampling_rate,
                                  hard_fraction=args.hard_fraction)["test"]  # fmt: skip
    records = []
    for i in range(len(corpus)):
        row = corpus[i]
        wav = np.asarray(row["audio"], dtype=np.float32)
        rebuilt = codec.decode_list(codec.encode_list([wav]))[0]
        record = {"pitch_level": row["pitch_level"], "gender": row["gender"]}
        for unit in ("hz", "semitones"):
            record[f"original_{unit}"] = f0_variance(wav, codec.sampling_rate, unit=unit)
            record[f"codec_{unit}"] = f0_variance(rebuilt, codec.sampling_rate, unit=unit)
        for name, audio in (("original", wav), ("codec", rebuilt)):
            record[f"{name}_outliers_dropped"] = f0_variance(audio, codec.sampling_rate,
                                                             outlier_semitones=args.outlier_semitones)
        records.append(record)

    groups = {"all": lambda r: True, "mid and high": lambda r: r["pitch_level"] in ("mid", "high"),
              "high": lambda r: r["pitch_level"] == "high", "low": lambda r: r["pitch_level"] == "low",
              "female": lambda r: r["gender"] == "female",
              "female or high": lambda r: r["gender"] == "female" or r["pitch_level"] == "high"}  # fmt: skip
    summary = {}
    for name, keep in groups.items():
        subset = [r for r in records if keep(r)]
        entry = {"utterances": len(subset)}
        for unit in ("hz", "semitones", "outliers_dropped"):
            pairs = [(r[f"original_{unit}"], r[f"codec_{unit}"]) for r in subset
                     if r[f"original_{unit}"] is not None and r[f"codec_{unit}"] is not None]  # fmt: skip
            voiced = sum(r[f"codec_{unit}"] is not None for r in subset) / max(len(subset), 1)
            rho = stats.spearmanr(*zip(*pairs))[0] if len(pairs) > 2 else float("nan")
            entry[unit] = {"spearman": float(rho), "voiced_share": voiced, "pairs": len(pairs),
                           "original_median": float(np.median([p[0] for p in pairs])) if pairs else float("nan"),
                           "codec_median": float(np.median([p[1] for p in pairs])) if pairs else float("nan")}
        summary[name] = entry
    dropped = f"Spearman (Hz, frames beyond {args.outlier_semitones:g} st dropped)"
    lines = [f"| voices | utterances | Spearman (Hz) | Spearman (semitones) | {dropped} | voicing found (Hz / dropped) "
             "| median F0V original / codec (Hz) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, entry in summary.items():
        hz, st, out = entry["hz"], entry["semitones"], entry["outliers_dropped"]
        lines.append(f"| {name} | {entry['utterances']} | {hz['spearman']:.2f} | {st['spearman']:.2f} | "
                     f"{out['spearman']:.2f} | {100 * hz['voiced_share']:.0f} % / {100 * out['voiced_share']:.0f} % | "
                     f"{hz['original_median']:.1f} / {hz['codec_median']:.1f} |")
    table = "\n".join(lines)
    print(table)
    output = Path(args.output_json)
    output.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/f0_reliability.py" + (
        f" --outlier_semitones {args.outlier_semitones:g}" if args.outlier_semitones != 6.0 else "")
    output.write_text(json.dumps({"command": command, "summary": summary, "records": records}, indent=1))
    output.with_suffix(".md").write_text(f"F0V of held-out corpus audio against its codec round trip\n\n`{command}`\n\n"
                                         f"{table}\n")  # fmt: skip


if __name__ == "__main__":
    main()
