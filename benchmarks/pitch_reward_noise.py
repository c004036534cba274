"""How much of the pitch reward's spread between samples of one prompt is the tracker's, not the speech's.

The bundled ARDM samples each validation prompt of the `pitch` task several times at its RL setting (temperature 0.25,
LM guidance 1.5); each sample's pitch track (Praat's spectral tracker, 10 ms frames, semitones above 100 Hz) is reduced
to one number by several statistics: the plain mean of the voiced frames, their median, and the mean after clipping
each frame to within `k` semitones of the sample's median. The table gives, per statistic, the pooled within-prompt
standard deviation (the sampling noise a paired table has to beat) and the standard deviation over all samples (which
holds the real differences between voices). It also prints the percentiles of the frames' distance to their sample's
median: the far tails are octave jumps of the tracker.

Usage:

    OMP_NUM_THREADS=1 python benchmarks/pitch_reward_noise.py --num_prompts 24 --seeds 0 1 2 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel

from ardm_trl.audio import bundled_model_dir, load_pretrained_codec
from ardm_trl.data.text_tokenizer import ARDMTextTokenizer
from ardm_trl.evaluation import score_samples
from ardm_trl.rewards.pitch import clipped_frames, pitch_semitones
from ardm_trl.tasks import get_task, task_prompts

CLIPS = (0.5, 1.0, 2.0, 3.0, 6.0)


def pooled_within_sd(values: np.ndarray, prompt_ids: np.ndarray) -> float:
    variances = []
    for prompt in np.unique(prompt_ids):
        group = values[(prompt_ids == prompt) & np.isfinite(values)]
        if group.size > 1:
            variances.append(np.var(group, ddof=1))
    return float(np.sqrt(np.mean(variances)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_prompts", type=int, default=24)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--split", default="validation")
    parser.add_argument("--output", default="benchmarks/results/pitch_reward_noise")
    args = parser.parse_args()
    torch.set_num_threads(1)

    task = get_task("pitch")
    policy = AutoModel.from_pretrained(bundled_model_dir("ardm")).eval()
    tokenizer = ARDMTextTokenizer.from_pretrained(bundled_model_dir("ardm"))
    codec = load_pretrained_codec()
    rows = task_prompts(task, args.split, codec, tokenizer, limit=args.num_prompts, corpus_utterances=3000)
    samples = score_samples(policy, rows, codec, args.seeds, ["pitch"], keep_audio=True, temperature=0.25,
                            lm_guidance_scale=1.5, max_patches=task.max_patches)  # fmt: skip
    tracks = [pitch_semitones(np.asarray(audio, dtype=np.float32), codec.sampling_rate) for audio in samples.audio]
    prompt_ids = np.asarray(samples.prompt_ids)

    statistics = {"mean": lambda st, v: st[v].mean(), "median": lambda st, v: np.median(st[v])}
    for clip in CLIPS:
        statistics[f"clipped mean, k = {clip:g}"] = lambda st, v, c=clip: clipped_frames(st, v, c)[v].mean()
    results = {}
    for name, statistic in statistics.items():
        values = np.array([statistic(st, v) if v.sum() >= 10 else np.nan for st, v in tracks])
        results[name] = {"within_prompt_sd": pooled_within_sd(values, prompt_ids), "overall_sd": float(np.nanstd(values))}
    distances = np.concatenate([st[v] - np.median(st[v]) for st, v in tracks if v.sum() >= 10])
    percentiles = dict(zip(("p1", "p5", "p25", "p50", "p75", "p95", "p99"),
                           np.percentile(distances, [1, 5, 25, 50, 75, 95, 99]).round(2).tolist()))  # fmt: skip
    report = {
        "command": f"OMP_NUM_THREADS=1 python benchmarks/pitch_reward_noise.py --num_prompts {args.num_prompts} "
        f"--seeds {' '.join(map(str, args.seeds))}" + (f" --split {args.split}" if args.split != "validation" else ""),
        "split": args.split, "num_prompts": len(rows), "seeds": args.seeds, "statistics": results,
        "frame_distance_to_median_semitones": percentiles,
        "frames_beyond_6_semitones": float(np.mean(np.abs(distances) > 6.0)),
    }  # fmt: skip
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    lines = [f"Pitch reward statistics on {len(rows)} {args.split} prompts x seeds {args.seeds} (bundled ARDM, "
             "temperature 0.25, LM guidance 1.5); semitones", "", "| statistic | within-prompt SD | overall SD |",
             "|---|---|---|"]  # fmt: skip
    lines += [f"| {name} | {r['within_prompt_sd']:.3f} | {r['overall_sd']:.3f} |" for name, r in results.items()]
    lines += ["", f"Frame distance to the sample's median (percentiles): {percentiles}; beyond 6 semitones: "
              f"{report['frames_beyond_6_semitones']:.1%}", "", f"`{report['command']}`"]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
