"""Pretrain the small bundled ARDM (`pretrained/ardm/`) on the espeak-ng corpus, in the bundled codec's latent space.

Pipeline: `build_tts_corpus` -> `SpeechCodecModel.encode_list` (16 normalised channels at ~43 Hz) -> character
vocabulary of the espeak IPA phonemes (`ARDMTextTokenizer`, saved beside the model) -> `ARDMForSpeechSynthesis`
trained with the plain `transformers.Trainer` and `ARDMDataCollator`. Every training example gets a zero-shot voice
prompt: a random chunk of *another* utterance of the same speaker (same espeak voice and pitch level), drawn afresh
for every batch. The text is dropped (null embedding) with probability `cfg_dropout_prob` for LM guidance.

Usage:

    # runs of an hour or more on a CPU: cap glibc's allocator, or resident memory keeps growing (docs/performance.md)
    export MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072
    # ... or, ~1.4x faster where jemalloc is installed (the glibc settings spend ~half the CPU time in the kernel):
    export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:2000,muzzy_decay_ms:0

    # train for 45 minutes (time-limited; checkpoints in outputs/pretrain_ardm), save to pretrained/ardm, evaluate;
    # guided attention, the text CTC and v-prediction are on by default (docs/models.md, "Pretraining aids"). Add
    # --bf16 true only on a CPU with AVX-512 BF16 (or a GPU): elsewhere bf16 is ~10x slower than fp32.
    OMP_NUM_THREADS=2 python examples/pretrain_ardm.py --max_train_minutes 45

    # continue from the bundled weights (a new CTC head starts fresh), with a cosine schedule over 2200 steps
    OMP_NUM_THREADS=1 python examples/pretrain_ardm.py --init_from pretrained/ardm \
        --max_steps 2200 --learning_rate 7e-4 --lr_scheduler_type cosine --per_device_train_batch_size 16

    # resume the run from its last checkpoint, for 30 more minutes
    OMP_NUM_THREADS=2 python examples/pretrain_ardm.py --max_train_minutes 30 --resume_from_checkpoint true

    # only evaluate the saved model (CTC NLL, WER, speaker similarity, stopping) against the corpus audio
    python examples/pretrain_ardm.py --max_train_minutes 0 --num_eval_samples 32

    # any option from a YAML file
    python examples/pretrain_ardm.py --config pretrain_ardm.yaml

    # two processes on the CPU (`--cpu` would run one process only)
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        examples/pretrain_ardm.py --use_cpu true --max_train_minutes 30
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint
from trl import TrlParser

from ardm_trl import ARDMConfig, ARDMForSpeechSynthesis
from ardm_trl.audio import load_pretrained_codec
from ardm_trl.data.collators import ARDMDataCollator
from ardm_trl.data.corpus_cache import DEFAULT_CORPUS_CACHE_DIR, encode_latent_corpus
from ardm_trl.data.prompts import choose_eval_prompts, pick_prompt, speaker_index
from ardm_trl.data.text_tokenizer import ARDMTextTokenizer
from ardm_trl.evaluation import teacher_forced_latents, text_conditioning_gain
from ardm_trl.trainer import TimeLimitCallback

logger = logging.getLogger("pretrain_ardm")


@dataclass
class ScriptArguments:
    num_utterances: int = field(default=3000, metadata={"help": "Corpus size (train + test) of build_tts_corpus."})
    corpus_seed: int = field(default=0, metadata={"help": "Seed of the corpus."})
    codec_path: str | None = field(default=None, metadata={"help": "Codec folder; default: the bundled codec."})
    corpus_cache_dir: str = field(
        default=DEFAULT_CORPUS_CACHE_DIR,
        metadata={"help": "Where the built corpus is saved and reused (shared by the scripts)."},
    )
    data_cache: str = field(
        default="outputs/pretrain_ardm/latents.pt", metadata={"help": "Cache of the encoded corpus (reused)."}
    )
    model_dir: str = field(default="pretrained/ardm", metadata={"help": "Where the final model is saved."})
    prompt_min_frames: int = field(default=32, metadata={"help": "Shortest voice prompt, in latent frames."})
    prompt_max_frames: int = field(default=64, metadata={"help": "Longest voice prompt, in latent frames."})
    max_train_minutes: float = field(
        default=45.0, metadata={"help": "Stop training after this many minutes (0: skip training, evaluate only)."}
    )
    num_eval_samples: int = field(default=24, metadata={"help": "Test utterances generated for the evaluation."})
    eval_lm_guidance_scale: float = field(default=2.0, metadata={"help": "LM guidance weight of the evaluation."})
    eval_temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature of the evaluation (`generate(temperature=)`; 1 = the model)."}
    )
    eval_seed: int = field(default=1234, metadata={"help": "Seed of the evaluation samples."})


@dataclass
class ARDMModelArguments:
    patch_size: int = field(default=4, metadata={"help": "Latent frames per patch."})
    lm_hidden_size: int = field(default=256, metadata={"help": "Width of the Llama LM."})
    lm_intermediate_size: int = field(default=768, metadata={"help": "FFN width of the LM."})
    lm_num_layers: int = field(default=4, metadata={"help": "LM layers."})
    lm_num_heads: int = field(default=4, metadata={"help": "LM attention heads."})
    head_hidden_size: int = field(default=384, metadata={"help": "Width of the AdaLN-MLP diffusion head."})
    head_num_layers: int = field(default=3, metadata={"help": "Residual blocks of the diffusion head."})
    diffusion_batch_multiplier: int = field(default=4, metadata={"help": "Noise draws per LM state."})
    cfg_dropout_prob: float = field(default=0.1, metadata={"help": "Text dropout for LM guidance."})
    guided_attention_weight: float = field(
        default=1.0, metadata={"help": "Weight of the guided-attention loss (0 = off; see docs/models.md)."}
    )
    guided_attention_sigma: float = field(default=0.2, metadata={"help": "Width of the guided-attention window."})
    ctc_loss_weight: float = field(
        default=1.0, metadata={"help": "Weight of the auxiliary text CTC on the LM states (0 = off; docs/models.md)."}
    )
    context_noise_std: float = field(
        default=0.0,
        metadata={"help": "Std of the Gaussian noise on the patches the model reads (LM inputs, the head's previous "
                  "patch), not on its targets, against exposure bias (docs/models.md, 'Pretraining aids'); 0 = off."},
    )
    prediction_type: str = field(
        default="v_prediction",
        metadata={"help": "What the head predicts: 'v_prediction' (default: its loss weights the low-SNR steps, where "
                  "the text decides the content, ~SNR^-1 times more than 'epsilon' does) or 'epsilon' or 'sample'."},
    )
    init_from: str | None = field(
        default=None,
        metadata={"help": "Start from the weights of this saved ARDM (e.g. pretrained/ardm) instead of a fresh model; "
                  "its architecture is kept, the guided-attention settings above override its config."},
    )


# ---------------------------------------------------------------------------------------------------------- data
def encode_corpus(script_args: ScriptArguments, codec) -> dict:
    """Build the corpus and encode it with the codec (cached in `data_cache`): lists per split."""
    return encode_latent_corpus(script_args.num_utterances, script_args.corpus_seed, codec, script_args.data_cache,
                                script_args.codec_path or "bundled", script_args.corpus_cache_dir)  # fmt: skip


class ARDMPretrainingDataset(torch.utils.data.Dataset):
    """Rows `{"text_input_ids", "latents", "index"}` of one split."""

    def __init__(self, rows: dict, tokenizer: ARDMTextTokenizer):
        self.rows = rows
        self.text_ids = tokenizer.batch_encode(rows["phonemes"])

    def __len__(self) -> int:
        return len(self.text_ids)

    def __getitem__(self, index: int) -> dict:
        return {"text_input_ids": self.text_ids[index], "latents": self.rows["latents"][index], "index": index}


@dataclass
class VoicePromptCollator:
    """Adds a fresh zero-shot voice prompt (a chunk of another utterance of the same speaker) to every row, then
    batches with [`ARDMDataCollator`]."""

    collator: ARDMDataCollator
    rows: dict
    min_frames: int
    max_frames: int
    seed: int = 0

    def __post_init__(self):
        self.speakers = speaker_index(self.rows)
        self.rng = random.Random(self.seed)

    def __call__(self, features: list[dict]) -> dict:
        prompts = [pick_prompt(self.rows, self.speakers, f["index"], self.rng, self.min_frames, self.max_frames)[0]
                   for f in features]  # fmt: skip
        fallback = torch.zeros(0, self.rows["latents"][0].shape[-1])
        features = [{**f, "prompt_latents": p if p is not None else fallback} for f, p in zip(features, prompts)]
        return self.collator(features)


# ------------------------------------------------------------------------------------------------------ training
def build_model(model_args: ARDMModelArguments, latent_dim: int, vocab_size: int, max_frames: int) -> ARDMForSpeechSynthesis:
    if model_args.init_from:
        config = ARDMConfig.from_pretrained(model_args.init_from)
        if config.text_vocab_size != vocab_size or config.latent_dim != latent_dim:
            raise ValueError(f"{model_args.init_from} was trained on another text vocabulary or codec.")
        config.guided_attention_weight = model_args.guided_attention_weight
        config.guided_attention_sigma = model_args.guided_attention_sigma
        config.ctc_loss_weight = model_args.ctc_loss_weight
        config.context_noise_std = model_args.context_noise_std
        config.scheduler_config = {**config.scheduler_config, "prediction_type": model_args.prediction_type}
        return ARDMForSpeechSynthesis.from_pretrained(model_args.init_from, config=config)  # a new CTC head starts fresh
    config = ARDMConfig(
        latent_dim=latent_dim,
        patch_size=model_args.patch_size,
        text_vocab_size=vocab_size,
        backbone_config=dict(
            hidden_size=model_args.lm_hidden_size,
            intermediate_size=model_args.lm_intermediate_size,
            num_hidden_layers=model_args.lm_num_layers,
            num_attention_heads=model_args.lm_num_heads,
            num_key_value_heads=model_args.lm_num_heads,
            max_position_embeddings=1024,
        ),
        head_hidden_size=model_args.head_hidden_size,
        head_num_layers=model_args.head_num_layers,
        diffusion_batch_multiplier=model_args.diffusion_batch_multiplier,
        cfg_dropout_prob=model_args.cfg_dropout_prob,
        guided_attention_weight=model_args.guided_attention_weight,
        guided_attention_sigma=model_args.guided_attention_sigma,
        ctc_loss_weight=model_args.ctc_loss_weight,
        context_noise_std=model_args.context_noise_std,
        scheduler_config={"prediction_type": model_args.prediction_type},
        max_patches=-(-2 * max_frames // model_args.patch_size),  # twice the longest training utterance
    )
    return ARDMForSpeechSynthesis(config)


# ---------------------------------------------------------------------------------------------------- evaluation
def evaluate(model, codec, tokenizer, data: dict, script_args: ScriptArguments) -> dict:
    """Generate test sentences with voice prompts from other utterances of the same speaker; score them (hama CTC NLL,
    whisper WER, Resemblyzer SIM to the prompt's utterance, DNSMOS overall) next to the corpus audio and its codec reconstruction."""
    from ardm_trl.rewards import evaluate_speech

    test = data["test"]
    chosen, prompts, sources = choose_eval_prompts(test, script_args.num_eval_samples, script_args.eval_seed,
                                                   script_args.prompt_min_frames, script_args.prompt_max_frames)
    model.eval()
    gain_batch = ARDMDataCollator(model.config.patch_size)(
        [{"text_input_ids": tokenizer.encode(test["phonemes"][i]), "latents": test["latents"][i], "prompt_latents": p}
         for i, p in zip(chosen, prompts)]
    )  # fmt: skip
    text_gain = text_conditioning_gain(model, gain_batch, seed=script_args.eval_seed)
    logger.info("teacher-forced diffusion loss with / without the text: %s", text_gain)
    generator = torch.Generator().manual_seed(script_args.eval_seed)
    generated, num_patches, stopped = [], [], []
    start = time.time()
    for b in range(0, len(chosen), 8):
        idx = chosen[b : b + 8]
        batch = ARDMDataCollator(model.config.patch_size)(
            [{"text_input_ids": tokenizer.encode(test["phonemes"][i]), "prompt_latents": p}
             for i, p in zip(idx, prompts[b : b + 8])]
        )  # fmt: skip
        out = model.generate(**batch, lm_guidance_scale=script_args.eval_lm_guidance_scale,
                             temperature=script_args.eval_temperature, generator=generator)  # fmt: skip
        for k in range(len(idx)):
            generated.append(out.latents[k][out.latents_mask[k]])
        num_patches += out.num_patches.tolist()
        stopped += out.stopped.tolist()
    generation_seconds = time.time() - start
    sr = codec.sampling_rate
    texts = [test["text"][i] for i in chosen]
    references = [test["audio"][j] for j in sources]
    systems = {
        "generated": codec.decode_list(generated),
        "corpus audio": [test["audio"][i] for i in chosen],
        "codec reconstruction": codec.decode_list([test["latents"][i] for i in chosen]),
        # every patch re-predicted from the true previous ones (no exposure bias): how much of the text one
        # next-patch prediction carries, drawn by the sampler and as the head's conditional-mean estimate
        "teacher-forced sample": codec.decode_list(teacher_forced_latents(model, gain_batch, "sample",
                                                                          seed=script_args.eval_seed)),
        "teacher-forced mean": codec.decode_list(teacher_forced_latents(model, gain_batch, "mean",
                                                                        seed=script_args.eval_seed)),
    }
    results = {}
    for name, audio in systems.items():
        results[name] = evaluate_speech(audio, sr, texts, reference_audio=references,
                                        metrics=("ctc_nll", "wer", "sim", "dnsmos"))  # fmt: skip
        logger.info("%s: %s", name, results[name])
    true_frames = np.array([test["latents"][i].shape[0] for i in chosen])
    results["generated"].update(
        stopped_fraction=float(np.mean(stopped)),
        duration_ratio=float(np.mean(np.array([g.shape[0] for g in generated]) / true_frames)),
        mean_patches=float(np.mean(num_patches)),
        generation_seconds=generation_seconds,
        text_conditioning_gain=text_gain,
    )
    out_dir = Path(script_args.data_cache).parent / "samples"
    out_dir.mkdir(parents=True, exist_ok=True)
    import soundfile

    for k in range(min(4, len(chosen))):
        soundfile.write(out_dir / f"sample_{k}.wav", systems["generated"][k], sr)
        soundfile.write(out_dir / f"original_{k}.wav", systems["corpus audio"][k], sr)
    return {"num_samples": len(chosen), "lm_guidance_scale": script_args.eval_lm_guidance_scale,
            "temperature": script_args.eval_temperature,
            "num_inference_steps": model.config.num_inference_steps, "results": results}  # fmt: skip


def write_model_card(model_dir: Path, model, training_args, script_args, train_summary: dict, eval_report: dict | None):
    from ardm_trl.trainer.base import render_model_card

    num_parameters = sum(p.numel() for p in model.parameters())
    card = render_model_card(
        "ardm.md",
        model_name="ardm_trl/ardm-espeak-small",
        num_parameters=f"{num_parameters / 1e6:.1f} M",
        lm=f"Llama {model.config.backbone_config.hidden_size} x {model.config.backbone_config.num_hidden_layers} layers",
        head=f"AdaLN MLP {model.config.head_hidden_size} x {model.config.head_num_layers} blocks",
        latent=f"{model.config.latent_dim} channels (bundled speech codec, ~43 Hz), patch size {model.config.patch_size}",
        dataset_name=f"build_tts_corpus({script_args.num_utterances}, seed={script_args.corpus_seed}) (espeak-ng)",
        text_input="espeak-ng IPA phonemes, one id per character (text_vocab.json)",
        training_summary=json.dumps(train_summary),
        eval_results="```json\n" + json.dumps(eval_report, indent=1) + "\n```" if eval_report else "not evaluated",
        training_command=f"`{train_summary.get('command', 'unknown')}`",
    )  # fmt: skip
    (model_dir / "README.md").write_text(card)


def main():
    parser = TrlParser((ScriptArguments, ARDMModelArguments, TrainingArguments))
    parser.set_defaults(
        output_dir="outputs/pretrain_ardm/checkpoints", per_device_train_batch_size=32, learning_rate=5e-4,
        weight_decay=0.01, max_grad_norm=1.0, lr_scheduler_type="constant_with_warmup", warmup_steps=200,
        num_train_epochs=1000, logging_steps=50, save_steps=250, save_total_limit=2, report_to="none",
        dataloader_num_workers=0, seed=0, use_cpu=True, remove_unused_columns=False,
    )  # fmt: skip
    script_args, model_args, training_args = parser.parse_args_and_config()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.manual_seed(training_args.seed)

    codec = load_pretrained_codec(script_args.codec_path)
    data = encode_corpus(script_args, codec)
    model_dir = Path(script_args.model_dir)
    train_summary: dict = {}
    if script_args.max_train_minutes > 0:
        tokenizer = ARDMTextTokenizer.from_texts(data["train"]["phonemes"] + data["test"]["phonemes"])
        max_frames = max(x.shape[0] for x in data["train"]["latents"])
        model = build_model(model_args, codec.latent_dim, tokenizer.vocab_size, max_frames)
        logger.info("ARDM with %.2f M parameters", sum(p.numel() for p in model.parameters()) / 1e6)
        collator = VoicePromptCollator(
            ARDMDataCollator(model.config.patch_size, model.config.text_pad_token_id), data["train"],
            script_args.prompt_min_frames, script_args.prompt_max_frames, seed=training_args.seed,
        )  # fmt: skip
        trainer = Trainer(
            model=model, args=training_args, train_dataset=ARDMPretrainingDataset(data["train"], tokenizer),
            data_collator=collator, callbacks=[TimeLimitCallback(script_args.max_train_minutes)],
        )  # fmt: skip
        resume = training_args.resume_from_checkpoint
        if resume in ("true", "True", True):
            resume = get_last_checkpoint(training_args.output_dir)
        start = time.time()
        result = trainer.train(resume_from_checkpoint=resume)
        losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
        train_summary = {"command": "python examples/pretrain_ardm.py " + " ".join(sys.argv[1:]),
                         "steps": trainer.state.global_step, "minutes_this_run": (time.time() - start) / 60,
                         "final_train_loss": losses[-1][1] if losses else None, "train_runtime": result.metrics}  # fmt: skip
        logger.info("loss curve (step, loss): %s", losses)
        trainer.save_model(str(model_dir))
        tokenizer.save_pretrained(model_dir)
        (model_dir / "training_args.bin").unlink(missing_ok=True)  # not needed to use the model
        (model_dir / "training_log.json").write_text(json.dumps({"loss_curve": losses, **train_summary}, indent=1))
    model = ARDMForSpeechSynthesis.from_pretrained(model_dir)
    tokenizer = ARDMTextTokenizer.from_pretrained(model_dir)
    eval_report = None
    if script_args.num_eval_samples > 0:
        eval_report = evaluate(model, codec, tokenizer, data, script_args)
        (model_dir / "eval_results.json").write_text(json.dumps(eval_report, indent=1))
    if not train_summary and (model_dir / "training_log.json").is_file():
        log = json.loads((model_dir / "training_log.json").read_text())
        train_summary = {k: v for k, v in log.items() if k != "loss_curve"}
    write_model_card(model_dir, model, training_args, script_args, train_summary, eval_report)


if __name__ == "__main__":
    main()
