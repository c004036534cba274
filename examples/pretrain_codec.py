"""Train the bundled speech codec and speech tokenizer on the espeak-ng corpus, on a CPU, in a few minutes.

Usage (reproduces `pretrained/speech_codec/` and `pretrained/speech_tokenizer/`):

    python examples/pretrain_codec.py
    python examples/pretrain_codec.py --codec_steps 200 --tokenizer_steps 100 --output_dir /tmp/codec  # quick try
    python examples/pretrain_codec.py --evaluate_only --output_dir pretrained  # re-measure the round trip

Steps:
1. build the corpus with `ardm_trl.data.build_tts_corpus` (deterministic given `--seed`);
2. codec: log-mel statistics, then AdamW on random crops (masked L1 on normalised log-mel, latent noise + L2);
   then per-channel latent statistics, so that `encode` returns ~N(0, 1) channels;
3. tokenizer: FSQ encoder/decoder on the frozen codec's latents (latent MSE + log-mel L1 through the codec decoder);
4. evaluation on held-out test utterances (log-mel L1, WER / CTC NLL / speaker similarity through
   `ardm_trl.rewards`), saved to `speech_codec/round_trip_eval.json` and into the model cards.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import HfArgumentParser

from ardm_trl.audio import (
    SpeechCodecConfig,
    SpeechCodecModel,
    SpeechTokenizerConfig,
    SpeechTokenizerModel,
    lengths_to_mask,
)
from ardm_trl.data import build_tts_corpus

logger = logging.getLogger("pretrain_codec")


@dataclass
class PretrainArguments:
    output_dir: str = field(
        default="pretrained", metadata={"help": "Parent folder of speech_codec/ and speech_tokenizer/."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the corpus and of the training."})
    num_utterances: int = field(default=1200, metadata={"help": "Corpus size (train + test)."})
    num_threads: int = field(
        default=1, metadata={"help": "torch CPU threads (1 was 35x faster than 2 on a busy 2-core machine)."}
    )
    batch_size: int = field(default=12, metadata={"help": "Waveform crops per codec step."})
    crop_seconds: float = field(default=1.5, metadata={"help": "Length of the random training crops."})
    codec_steps: int = field(default=1500, metadata={"help": "Codec optimisation steps."})
    codec_learning_rate: float = field(default=2e-3, metadata={"help": "Peak AdamW learning rate of the codec."})
    tokenizer_steps: int = field(default=4000, metadata={"help": "Tokenizer optimisation steps."})
    tokenizer_batch_size: int = field(default=16, metadata={"help": "Latent crops per tokenizer step."})
    tokenizer_learning_rate: float = field(default=2e-3, metadata={"help": "Peak AdamW learning rate, tokenizer."})
    hidden_size: int = field(default=128, metadata={"help": "Channels of the codec's conv encoder/decoder."})
    num_blocks: int = field(default=2, metadata={"help": "Residual blocks per codec stack."})
    latent_dim: int = field(default=16, metadata={"help": "Codec latent channels."})
    fsq_levels: str = field(default="8,5,5,5", metadata={"help": "FSQ levels (comma separated); 1000 codes."})
    num_eval_utterances: int = field(default=25, metadata={"help": "Test utterances for the reward-based metrics."})
    evaluate_only: bool = field(default=False, metadata={"help": "Load the saved models and only evaluate them."})


def _cosine(step: int, total: int, peak: float, warmup: int = 50) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _random_crops(waveforms: list[np.ndarray], batch_size: int, length: int, rng: np.random.Generator):
    """`(B, length)` crops of randomly chosen utterances, and their true lengths (short ones are zero-padded)."""
    batch = np.zeros((batch_size, length), dtype=np.float32)
    lengths = np.zeros(batch_size, dtype=np.int64)
    for row, index in enumerate(rng.integers(0, len(waveforms), batch_size)):
        wav = waveforms[index]
        start = int(rng.integers(0, max(1, len(wav) - length + 1)))
        piece = wav[start : start + length]
        batch[row, : len(piece)] = piece
        lengths[row] = len(piece)
    return torch.from_numpy(batch), torch.from_numpy(lengths)


def train_codec(args: PretrainArguments, train_audio: list[np.ndarray]) -> SpeechCodecModel:
    config = SpeechCodecConfig(hidden_size=args.hidden_size, num_blocks=args.num_blocks, latent_dim=args.latent_dim)
    model = SpeechCodecModel(config)
    model.set_mel_statistics(train_audio[:300])
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.codec_learning_rate, weight_decay=0.0)
    rng = np.random.default_rng(args.seed)
    crop = int(args.crop_seconds * config.sampling_rate)
    start = time.time()
    model.train()
    for step in range(args.codec_steps):
        for group in optimizer.param_groups:
            group["lr"] = _cosine(step, args.codec_steps, args.codec_learning_rate)
        waveforms, lengths = _random_crops(train_audio, args.batch_size, crop, rng)
        output = model(waveforms, lengths)
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == args.codec_steps - 1:
            logger.info(
                "codec step %d: L1 %.4f  (%.0f s)", step, output.reconstruction_loss.item(), time.time() - start
            )
    model.eval()
    model.set_latent_statistics(train_audio[:400])
    logger.info("codec trained in %.0f s", time.time() - start)
    return model


def train_tokenizer(
    args: PretrainArguments, codec: SpeechCodecModel, train_audio: list[np.ndarray]
) -> SpeechTokenizerModel:
    levels = [int(level) for level in args.fsq_levels.split(",")]
    tokenizer = SpeechTokenizerModel(SpeechTokenizerConfig(codec_config=codec.config.to_dict(), fsq_levels=levels))
    tokenizer.codec.load_state_dict(codec.state_dict())
    tokenizer.codec.requires_grad_(False).eval()
    latents = codec.encode_list(train_audio)  # precompute: the codec is frozen
    parameters = [p for name, p in tokenizer.named_parameters() if not name.startswith("codec.")]
    optimizer = torch.optim.AdamW(parameters, lr=args.tokenizer_learning_rate, weight_decay=0.0)
    rng = np.random.default_rng(args.seed + 1)
    frames = int(args.crop_seconds * codec.frame_rate)
    start = time.time()
    for step in range(args.tokenizer_steps):
        for group in optimizer.param_groups:
            group["lr"] = _cosine(step, args.tokenizer_steps, args.tokenizer_learning_rate)
        batch = torch.zeros(args.tokenizer_batch_size, frames, codec.latent_dim)
        lengths = torch.zeros(args.tokenizer_batch_size, dtype=torch.long)
        for row, index in enumerate(rng.integers(0, len(latents), args.tokenizer_batch_size)):
            offset = int(rng.integers(0, max(1, len(latents[index]) - frames + 1)))
            piece = latents[index][offset : offset + frames]
            batch[row, : len(piece)], lengths[row] = piece, len(piece)
        output = tokenizer(latents=batch, latents_mask=lengths_to_mask(lengths, frames))
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 200 == 0 or step == args.tokenizer_steps - 1:
            logger.info(
                "tokenizer step %d: latent MSE %.4f mel L1 %.4f (%.0f s)",
                step, output.latent_loss.item(), output.mel_loss.item(), time.time() - start,
            )  # fmt: skip
    tokenizer.eval()
    logger.info("tokenizer trained in %.0f s", time.time() - start)
    return tokenizer


@torch.no_grad()
def mel_l1(codec: SpeechCodecModel, originals: list[np.ndarray], decoded: list[np.ndarray]) -> float:
    """Mean L1 between the natural-log mels of original and decoded waveforms (over the common length)."""
    errors = []
    for original, output in zip(originals, decoded):
        n = min(len(original), len(output))
        a = codec.features(torch.from_numpy(original[:n])[None])
        b = codec.features(torch.from_numpy(np.ascontiguousarray(output[:n]))[None])
        errors.append((a - b).abs().mean().item())
    return float(np.mean(errors))


def evaluate(
    codec: SpeechCodecModel, tokenizer: SpeechTokenizerModel, test, num_eval: int
) -> dict[str, dict[str, float]]:
    """Round-trip figures on the first `num_eval` test utterances: original vs log-mel + Griffin-Lim (no
    bottleneck) vs codec vs tokenizer."""
    rows = test.select(range(min(num_eval, len(test))))
    audio = [np.asarray(a, dtype=np.float32) for a in rows["audio"]]
    texts, sampling_rate = rows["text"], codec.sampling_rate
    griffin_lim_audio = [  # the codec's ceiling: its own mel front end and Griffin-Lim, no bottleneck
        codec.vocoder(codec.features(torch.from_numpy(wav)[None]))[0].numpy() for wav in audio
    ]
    codec_audio = codec.decode_list(codec.encode_list(audio))
    token_ids = tokenizer.encode_list(audio)
    token_audio = tokenizer.decode_list(token_ids)
    used = len(torch.unique(torch.cat(token_ids)))
    results = {
        "original": {"mel_l1": 0.0},
        "mel_griffin_lim": {"mel_l1": mel_l1(codec, audio, griffin_lim_audio)},
        "codec": {"mel_l1": mel_l1(codec, audio, codec_audio)},
        "tokenizer": {"mel_l1": mel_l1(codec, audio, token_audio), "codes_used": used},
    }
    try:
        from ardm_trl.rewards import evaluate_speech
    except ImportError as error:  # pragma: no cover
        logger.warning("ardm_trl.rewards unavailable (%s): only log-mel L1 is reported.", error)
        return results
    outputs = {"original": audio, "mel_griffin_lim": griffin_lim_audio, "codec": codec_audio, "tokenizer": token_audio}
    for name, waveforms in outputs.items():
        metrics = evaluate_speech(
            waveforms, sampling_rate, texts, reference_audio=audio, metrics=("wer", "cer", "ctc_nll", "sim")
        )
        results[name].update(metrics)
        logger.info("%s: %s", name, metrics)
    return results


def _table(results: dict[str, dict[str, float]]) -> str:
    columns = ["wer", "cer", "ctc_nll", "sim", "mel_l1"]
    lines = ["| audio | WER % | CER % | CTC NLL | speaker SIM | log-mel L1 |", "|---|---|---|---|---|---|"]
    for name, metrics in results.items():
        cells = [f"{metrics[c]:.3f}" if c in metrics else "n/a" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_card(folder: Path, args: PretrainArguments, model, results, seconds: float, kind: str) -> None:
    from ardm_trl.trainer.base import render_model_card

    config = model.config
    card = render_model_card(
        "speech_codec.md",
        model_name=folder.name,
        model_kind=kind,
        model_class=type(model).__name__,
        num_parameters=f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M",
        sampling_rate=model.sampling_rate,
        frame_rate=f"{model.frame_rate:.2f}",
        latent_dim=getattr(config, "latent_dim", None) or config.codec_config.latent_dim,
        codebook_size=getattr(config, "codebook_size", "n/a (continuous)"),
        training_arguments=json.dumps(asdict(args), indent=2),
        training_seconds=f"{seconds:.0f}",
        num_eval_utterances=args.num_eval_utterances,
        results_table=_table(results),
    )
    (folder / "README.md").write_text(card)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    (args,) = HfArgumentParser(PretrainArguments).parse_args_into_dataclasses()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.num_threads)
    output_dir = Path(args.output_dir)
    codec_dir, tokenizer_dir = output_dir / "speech_codec", output_dir / "speech_tokenizer"

    start = time.time()
    corpus = build_tts_corpus(num_utterances=args.num_utterances, seed=args.seed)
    train_audio = [np.asarray(a, dtype=np.float32) for a in corpus["train"]["audio"]]
    logger.info("corpus: %d train / %d test utterances in %.0f s", len(corpus["train"]), len(corpus["test"]),
                time.time() - start)  # fmt: skip

    if args.evaluate_only:
        codec = SpeechCodecModel.from_pretrained(codec_dir).eval()
        tokenizer = SpeechTokenizerModel.from_pretrained(tokenizer_dir).eval()
        codec_seconds = tokenizer_seconds = float("nan")
    else:
        start = time.time()
        codec = train_codec(args, train_audio)
        codec_seconds = time.time() - start
        start = time.time()
        tokenizer = train_tokenizer(args, codec, train_audio)
        tokenizer_seconds = time.time() - start
        codec.save_pretrained(codec_dir)
        tokenizer.save_pretrained(tokenizer_dir)

    results = evaluate(codec, tokenizer, corpus["test"], args.num_eval_utterances)
    logger.info("round trip:\n%s", _table(results))
    (codec_dir / "round_trip_eval.json").write_text(json.dumps(results, indent=2))
    write_card(codec_dir, args, codec, results, codec_seconds, "continuous latent speech codec")
    write_card(tokenizer_dir, args, tokenizer, results, tokenizer_seconds, "FSQ speech tokenizer")


if __name__ == "__main__":
    main()
