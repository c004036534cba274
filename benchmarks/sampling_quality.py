"""Sampling settings against the intelligibility of a bundled generator's speech, on held-out test sentences.

- `--model codec_lm`: settings `TEMPERATURE:TOP_K[:TOP_P[:GUIDANCE]]` (`none` = no top-k / no nucleus; no `TOP_P` = no
  nucleus; `GUIDANCE` = classifier-free guidance scale on the text, default 1 = none); the codec LM samples speech tokens for the
  first `--num_sentences` test sentences of the 3,000-utterance corpus, the speech tokenizer decodes them.
- `--model ardm`: settings `TEMPERATURE:DDPM_STEPS:LM_GUIDANCE`; the ARDM speaks `--num_sentences` test sentences
  (chosen and voice-prompted as in `examples/pretrain_ardm.py`'s evaluation: a prompt from another utterance of the
  same voice), the codec decodes the latents.

Each setting samples every sentence once per `--seeds` seed (the same seeds for every setting), and the independent
evaluators score the audio: hama CTC NLL per phoneme and whisper tiny.en WER (%), for the ARDM also the speaker
similarity to the prompt's utterance and DNSMOS; each as the mean over all samples (sentences x seeds) with its
standard error, and per seed. The same evaluators score the references on the same sentences, in the same run: the
corpus audio, and its round trip through the model's codec (the codec LM's speech tokenizer, or the ARDM's latent
codec), the best any generator on those tokens or latents can do. A paired table then compares every setting with
the corpus audio sentence by sentence (the sample's score, averaged over the seeds, minus the corpus audio's: mean ±
SE over the sentences, and the share of sentences where the samples do at least as well). Results go to
`benchmarks/results/sampling_quality_{model}.json` and `.md`; `benchmarks/compare_sampling_quality.py` pairs two
such files (two models, the same sentences and seeds) sentence by sentence.

Usage:

    OMP_NUM_THREADS=1 python benchmarks/sampling_quality.py --model codec_lm --settings 1.0:none 0.6:25 \\
        --data_cache outputs/codec_lm_data/tokens_3k.pt
    OMP_NUM_THREADS=1 python benchmarks/sampling_quality.py --model ardm --settings 1.0:16:2 0.6:16:2 \\
        --data_cache outputs/pretrain_ardm/latents_3k.pt
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ardm_trl.evaluation import mean_and_sem
from ardm_trl.rewards import score_speech

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("sampling_quality")

# sample(setting, seed) -> waveforms, one per sentence
Sampler = Callable[[str, int], list[np.ndarray]]
# what a model's factory returns: the sampler, the sentences' texts, the audio the speaker similarity is measured
# against (None: no SIM), the sampling rate, and the reference systems' audio of the same sentences by name
Setup = tuple[Sampler, list[str], list[np.ndarray] | None, int, dict[str, list[np.ndarray]]]
PAIRED_METRICS = ("ctc_nll", "wer")


def codec_lm_sampler(args) -> Setup:
    from ardm_trl.audio import decode_codes, load_speech_tokenizer
    from ardm_trl.data.corpus_cache import tokenize_corpus
    from ardm_trl.models.codec_lm import CodecLMForSpeechSynthesis, CodecLMTokenizer, sample_and_decode

    speech_tokenizer = load_speech_tokenizer(None)
    test = tokenize_corpus(args.num_utterances, 0, speech_tokenizer, args.data_cache, "bundled")["test"]
    path = args.model_path or "pretrained/codec_lm"
    tokenizer = CodecLMTokenizer.from_pretrained(path)
    model = CodecLMForSpeechSynthesis.from_pretrained(path).float().eval()
    text_ids = [tokenizer.encode(p, add_special_tokens=False) for p in test["phonemes"][: args.num_sentences]]
    max_new = int(1.5 * max(len(s) for s in test["speech_ids"][: args.num_sentences])) + 10

    def sample(setting: str, seed: int) -> list[np.ndarray]:
        parts = setting.split(":")
        temperature, top_k, top_p, guidance = parts + ["none", "1"][len(parts) - 2 :]
        return sample_and_decode(model, text_ids, speech_tokenizer, max_new, float(temperature),
                                 None if top_k == "none" else int(top_k), seed,
                                 top_p=None if top_p == "none" else float(top_p), guidance_scale=float(guidance))  # fmt: skip

    systems = {"corpus audio": [np.asarray(a, dtype=np.float32) for a in test["audio"][: args.num_sentences]],
               "tokenizer resynthesis": decode_codes(speech_tokenizer, test["speech_ids"][: args.num_sentences])}  # fmt: skip
    return sample, list(test["text"][: args.num_sentences]), None, speech_tokenizer.sampling_rate, systems


def ardm_sampler(args) -> Setup:
    from ardm_trl import ARDMForSpeechSynthesis
    from ardm_trl.audio import load_pretrained_codec
    from ardm_trl.data.collators import ARDMDataCollator
    from ardm_trl.data.corpus_cache import encode_latent_corpus
    from ardm_trl.data.prompts import choose_eval_prompts
    from ardm_trl.data.text_tokenizer import ARDMTextTokenizer

    codec = load_pretrained_codec()
    test = encode_latent_corpus(args.num_utterances, 0, codec, args.data_cache)["test"]
    path = args.model_path or "pretrained/ardm"
    model = ARDMForSpeechSynthesis.from_pretrained(path).eval()
    tokenizer = ARDMTextTokenizer.from_pretrained(path)
    chosen, prompts, sources = choose_eval_prompts(test, args.num_sentences, seed=1234)  # pretrain_ardm's evaluation
    collate = ARDMDataCollator(model.config.patch_size)

    def sample(setting: str, seed: int) -> list[np.ndarray]:
        temperature, steps, guidance = setting.split(":")
        generator, latents = torch.Generator().manual_seed(seed), []
        for b in range(0, len(chosen), 8):
            batch = collate([{"text_input_ids": tokenizer.encode(test["phonemes"][i]), "prompt_latents": p}
                             for i, p in zip(chosen[b : b + 8], prompts[b : b + 8])])  # fmt: skip
            with torch.no_grad():
                out = model.generate(**batch, lm_guidance_scale=float(guidance), num_inference_steps=int(steps),
                                     temperature=float(temperature), generator=generator)  # fmt: skip
            latents += [out.latents[k][out.latents_mask[k]] for k in range(len(batch["text_input_ids"]))]
        return codec.decode_list(latents)

    references = [test["audio"][j] for j in sources]
    with torch.no_grad():
        reconstruction = codec.decode_list([test["latents"][i] for i in chosen])
    systems = {"corpus audio": [np.asarray(test["audio"][i], dtype=np.float32) for i in chosen],
               "codec reconstruction": reconstruction}  # fmt: skip
    return sample, [test["text"][i] for i in chosen], references, codec.sampling_rate, systems


def score(audio: list[np.ndarray], sr: int, texts: list[str], references: list[np.ndarray] | None) -> dict:
    """Per-sample metrics (`None` where undefined): CTC NLL, WER in %, and with references SIM and DNSMOS."""
    metrics = ("ctc_nll", "wer") if references is None else ("ctc_nll", "wer", "sim", "dnsmos")
    return {**score_speech(audio, sr, texts, references, metrics), "seconds": [len(w) / sr for w in audio]}


def summarize(scores: dict[str, list]) -> dict[str, dict[str, float]]:
    """Mean and standard error of each metric over its defined values."""
    return {key: dict(zip(("mean", "sem"), mean_and_sem([v for v in values if v is not None])))
            for key, values in scores.items()}  # fmt: skip


def sentence_means(samples: dict, key: str) -> list[float | None]:
    """Each sentence's `key` score averaged over the seeds of `samples` (seed -> per-sample scores); `None` where no
    seed's sample defines it."""
    per_seed = [scores[key] for scores in samples.values()]
    return [float(np.mean(defined)) if (defined := [s[i] for s in per_seed if s[i] is not None]) else None
            for i in range(len(per_seed[0]))]  # fmt: skip


def paired_difference(values: list[float | None], reference: list[float | None]) -> dict[str, float]:
    """`values - reference` sentence by sentence: mean ± SE over the sentences where both are defined, and the share of
    those sentences where `values` is at least as good (lower)."""
    diffs = [v - r for v, r in zip(values, reference, strict=True) if v is not None and r is not None]
    mean, sem = mean_and_sem(diffs)
    return {"mean": mean, "sem": sem, "num_sentences": len(diffs),
            "share_at_least_as_good": float(np.mean([d <= 0 for d in diffs])) if diffs else float("nan")}  # fmt: skip


def paired_with(samples: dict[int, dict[str, list]], reference: dict[str, list]) -> dict[str, dict[str, float]]:
    """Sentence by sentence: the samples' score averaged over the seeds minus the reference's."""
    return {key: paired_difference(sentence_means(samples, key), reference[key]) for key in PAIRED_METRICS}


def paired_rows(paired: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Markdown rows `| setting | CTC NLL change | share | WER change (points) | share |`, one per setting."""
    rows = []
    for setting, p in paired.items():
        n, w = p["ctc_nll"], p["wer"]
        rows.append(f"| {setting} | {n['mean']:+.2f} ± {n['sem']:.2f} | {n['share_at_least_as_good']:.0%} | "
                    f"{w['mean']:+.1f} ± {w['sem']:.1f} | {w['share_at_least_as_good']:.0%} |")  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["codec_lm", "ardm"], required=True)
    parser.add_argument("--model_path", default=None, help="default: the bundled model under pretrained/")
    parser.add_argument("--num_utterances", type=int, default=3000)
    parser.add_argument("--data_cache", required=True)
    parser.add_argument("--settings", nargs="+", required=True,
                        help="codec_lm: TEMPERATURE:TOP_K[:TOP_P[:GUIDANCE]]; ardm: TEMPERATURE:DDPM_STEPS:LM_GUIDANCE")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--num_sentences", type=int, default=32)
    parser.add_argument("--no_references", action="store_true",
                        help="skip scoring the corpus audio and its codec round trip on the same sentences")  # fmt: skip
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    sample, texts, references, sr, systems = (codec_lm_sampler if args.model == "codec_lm" else ardm_sampler)(args)
    results = {"args": vars(args), "settings": {}, "references": {}}
    for name, audio in {} if args.no_references else systems.items():
        scores = score(audio, sr, texts, references)
        results["references"][name] = {**summarize(scores), "per_sentence": scores}
        logger.info("%s: %s", name, json.dumps(summarize(scores)))
    for setting in args.settings:
        start, per_seed, samples = time.time(), {}, {}
        for seed in args.seeds:
            samples[seed] = score(sample(setting, seed), sr, texts, references)
            per_seed[seed] = {key: value["mean"] for key, value in summarize(samples[seed]).items()}
        pooled = {key: [v for seed in args.seeds for v in samples[seed][key]] for key in samples[args.seeds[0]]}
        results["settings"][setting] = {**summarize(pooled), "per_seed": per_seed, "per_sample": samples,
                                        "minutes": (time.time() - start) / 60}  # fmt: skip
        if "corpus audio" in results["references"]:
            corpus = results["references"]["corpus audio"]["per_sentence"]
            results["settings"][setting]["vs_corpus_audio"] = paired_with(samples, corpus)
        logger.info("%s: %s", setting, json.dumps(summarize(pooled)))

    output = Path(args.output or ROOT / "benchmarks" / "results" / f"sampling_quality_{args.model}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1))
    output.with_suffix(".md").write_text(markdown(results))
    logger.info("results in %s", output)


def markdown(results: dict) -> str:
    args = results["args"]
    keys = [k for k in ("ctc_nll", "wer", "sim", "dnsmos", "seconds") if k in next(iter(results["settings"].values()))]
    names = {"ctc_nll": "CTC NLL / phoneme", "wer": "WER %", "sim": "SIM", "dnsmos": "DNSMOS", "seconds": "duration (s)"}
    setting_name = "temperature : top-k" if args["model"] == "codec_lm" else "temperature : DDPM steps : guidance"
    lines = [f"{args['model']} `{args['model_path'] or 'bundled'}`, {args['num_sentences']} test sentences x seeds "
             f"{args['seeds']}: mean ± SE over all samples (per-seed means in brackets)", "",
             f"| {setting_name} | " + " | ".join(names[k] for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]  # fmt: skip
    digits = {"wer": 1, "sim": 3}
    for setting, r in results["settings"].items():
        cells = []
        for key in keys:
            d = digits.get(key, 2)
            seeds = " / ".join(format(s[key], f".{d}f") for s in r["per_seed"].values())
            cells.append(f"{r[key]['mean']:.{d}f} ± {r[key]['sem']:.{d}f} ({seeds})")
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    for name, r in results.get("references", {}).items():
        cells = [f"{r[key]['mean']:.{digits.get(key, 2)}f} ± {r[key]['sem']:.{digits.get(key, 2)}f}" for key in keys]
        lines.append(f"| {name} (reference) | " + " | ".join(cells) + " |")
    paired = {setting: r["vs_corpus_audio"] for setting, r in results["settings"].items() if "vs_corpus_audio" in r}
    if paired:
        lines += ["", "Sentence by sentence against the corpus audio (samples averaged over the seeds minus the corpus "
                  "audio; share = sentences where the samples score at least as well):", "",
                  f"| {setting_name} | CTC NLL change | share | WER change (points) | share |", "|---" * 5 + "|"]  # fmt: skip
        lines += paired_rows(paired)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
