"""Does the MTR's `pitch_level` head read pitch on the codec LM's own samples, as it does on corpus tokens?

Zero-shot pitch control with DiffRO follows the MTR's `pitch_level` head. This script measures, without training
anything, how that head's expected level `P(high) - P(low)` relates to the pitch measured on the decoded audio,
relative to each utterance's voice (`ardm_trl.rewards.VoicePitchReference`, in semitones):

- on corpus tokens of held-out test utterances (what the head was trained and evaluated on), per true label;
- on speech tokens sampled by the codec LM for the same held-out sentences (what DiffRO's reward reads).

A head that reads pitch gives a clearly positive rank correlation on both. The pitch measure itself is checked too:
per true label, the median F0, the voice-relative F0 and the voice identification of the corpus's original audio
against the same utterances' tokens decoded by the speech tokenizer. Results go to
`benchmarks/results/mtr_pitch_fidelity.json`.

Usage:

    OMP_NUM_THREADS=1 python benchmarks/mtr_pitch_fidelity.py --data_cache outputs/codec_lm_data/tokens_3k.pt
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from ardm_trl.audio import decode_codes, load_speech_tokenizer
from ardm_trl.data.corpus_cache import tokenize_corpus
from ardm_trl.models.codec_lm import CodecLMForSpeechSynthesis, CodecLMTokenizer, sample_codes
from ardm_trl.models.token_reward import TokenRewardDataCollator, TokenRewardModel
from ardm_trl.rewards import resynthesis_pitch_reference

ROOT = Path(__file__).resolve().parents[1]

logger = logging.getLogger("mtr_pitch_fidelity")


@torch.no_grad()
def expected_level(mtr: TokenRewardModel, codes: list[list[int]]) -> np.ndarray:
    """`P(high) - P(low)` of the MTR's pitch head for each code sequence."""
    names = mtr.config.attribute_labels["pitch_level"]
    high, low = names.index("high"), names.index("low")
    collate = TokenRewardDataCollator(mtr.config)
    out = []
    for i in range(0, len(codes), 16):
        batch = collate([{"speech_ids": c or [0]} for c in codes[i : i + 16]])
        probs = mtr.attribute_log_probs(
            "pitch_level", batch["input_ids"], attention_mask=batch["attention_mask"]
        ).exp()
        out.extend((probs[:, high] - probs[:, low]).tolist())
    return np.array(out)


def pitch_measures(reference, audio: list[np.ndarray], sampling_rate: int) -> dict[str, list]:
    """Median F0 (Hz), F0 in semitones against the identified voice's norm, and the identified voice, per waveform
    (with the reference's F0 tracker)."""
    from ardm_trl.rewards import median_f0

    rel = reference.relative_f0(audio, sampling_rate)  # carries the median F0 of every sample it could measure

    def f0(waveform: np.ndarray, measured: dict | None) -> float:
        value = measured["median_f0"] if measured else median_f0(waveform, sampling_rate, method=reference.f0_method)
        return np.nan if value is None else value

    return {
        "f0": [f0(w, r) for w, r in zip(audio, rel)],
        "semitones": [np.nan if r is None else r["semitones"] for r in rel],
        "voice": [None if r is None else r.get("voice") for r in rel],
    }


def correlation(x: np.ndarray, y: np.ndarray) -> dict:
    keep = np.isfinite(x) & np.isfinite(y)
    rho, p = spearmanr(x[keep], y[keep])
    return {"n": int(keep.sum()), "spearman": float(rho), "p_value": float(p)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codec_lm_path", default="pretrained/codec_lm")
    parser.add_argument("--reward_model_path", default="pretrained/token_reward")
    parser.add_argument("--data_cache", default="outputs/codec_lm_data/tokens.pt")
    parser.add_argument("--num_utterances", type=int, default=3000)
    parser.add_argument("--corpus_seed", type=int, default=0)
    parser.add_argument("--num_sentences", type=int, default=64)
    parser.add_argument("--pitch_reference_utterances", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--f0_method", choices=["ac", "shs"], default="shs",
                        help="F0 tracker (ardm_trl.rewards.f0_track): spectral 'shs' or autocorrelation 'ac'")
    parser.add_argument("--reference_audio", choices=["resynthesis", "original"], default="resynthesis",
                        help="build the voice reference from the tokenizer's resynthesis or from the original audio")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "mtr_pitch_fidelity.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    from ardm_trl.data import build_tts_corpus
    from ardm_trl.rewards import VoicePitchReference

    speech_tokenizer = load_speech_tokenizer(None)
    data = tokenize_corpus(args.num_utterances, args.corpus_seed, speech_tokenizer, args.data_cache, "bundled")
    test = data["test"]
    n = min(args.num_sentences, len(test["text"]))
    tokenizer = CodecLMTokenizer.from_pretrained(args.codec_lm_path)
    mtr = TokenRewardModel.from_pretrained(args.reward_model_path).eval()
    policy = CodecLMForSpeechSynthesis.from_pretrained(args.codec_lm_path).eval()
    reference_seed = args.corpus_seed + 1000
    if args.reference_audio == "resynthesis":
        reference = resynthesis_pitch_reference(
            speech_tokenizer, args.pitch_reference_utterances, reference_seed, args.f0_method
        )
    else:
        reference_corpus = build_tts_corpus(args.pitch_reference_utterances, reference_seed, test_fraction=0.0)
        reference = VoicePitchReference.from_dataset(reference_corpus["train"], f0_method=args.f0_method)

    corpus_codes = [list(c) for c in test["speech_ids"][:n]]
    labels = list(test["pitch_level"][:n])
    text_ids = [tokenizer.encode(p, add_special_tokens=False) for p in test["phonemes"][:n]]
    max_new = int(1.5 * max(len(c) for c in corpus_codes)) + 10
    sampled_codes = sample_codes(policy, text_ids, max_new, seed=args.seed)

    sr = speech_tokenizer.sampling_rate
    results = {"args": vars(args)}
    measured = {}
    for name, codes in (("corpus tokens", corpus_codes), ("codec LM samples", sampled_codes)):
        level, measured[name] = (
            expected_level(mtr, codes),
            pitch_measures(reference, decode_codes(speech_tokenizer, codes), sr),
        )
        semitones = np.array(measured[name]["semitones"])
        results[name] = {
            "correlation": correlation(level, semitones),
            "mean_expected_level": float(np.mean(level)),
            "mean_relative_semitones": float(np.nanmean(semitones)),
        }
        if name == "corpus tokens":
            corpus_level = level

    # the pitch measure itself: the corpus's original audio against its own tokens, decoded
    corpus = build_tts_corpus(args.num_utterances, args.corpus_seed)["test"]
    if list(corpus["text"][:n]) != list(test["text"][:n]):
        raise ValueError("The token cache does not match build_tts_corpus(num_utterances, corpus_seed).")
    original = pitch_measures(reference, [np.asarray(a, np.float32) for a in corpus["audio"][:n]],
                              corpus["sampling_rate"][0])  # fmt: skip
    decoded, voices = measured["corpus tokens"], list(corpus["voice"][:n])
    results["corpus tokens"]["f0_decoded_vs_original"] = correlation(
        np.log(np.array(original["f0"], dtype=float)), np.log(np.array(decoded["f0"], dtype=float))
    )
    results["corpus tokens"]["voice_identified_correctly"] = {
        "original audio": float(np.mean([v == t for v, t in zip(original["voice"], voices) if v])),
        "decoded tokens": float(np.mean([v == t for v, t in zip(decoded["voice"], voices) if v])),
    }
    results["corpus tokens"]["by_label"] = {}
    genders = list(corpus["gender"][:n])
    groups = [(lab, lab, None) for lab in sorted(set(labels))]
    groups += [(f"{g} {lab}", lab, g) for g in sorted(set(genders)) for lab in sorted(set(labels))]
    for key, lab, gender in groups:
        sel = np.array([x == lab and gender in (None, g) for x, g in zip(labels, genders)])
        if not sel.any():
            continue
        results["corpus tokens"]["by_label"][key] = {
            "n": int(sel.sum()),
            "expected_level": float(np.mean(corpus_level[sel])),
            "f0_original": float(np.nanmean(np.array(original["f0"])[sel])),
            "f0_decoded": float(np.nanmean(np.array(decoded["f0"])[sel])),
            "semitones_original": float(np.nanmean(np.array(original["semitones"])[sel])),
            "semitones_decoded": float(np.nanmean(np.array(decoded["semitones"])[sel])),
        }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1))
    logger.info("%s", json.dumps({k: v for k, v in results.items() if k != "args"}, indent=1))


if __name__ == "__main__":
    main()
