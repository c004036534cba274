"""Tests of the DiffRO trainer on a tiny codec LM (built in the test) with simple differentiable rewards."""

from pathlib import Path

import pytest
import torch
from conftest import accelerate_launch
from datasets import Dataset

from ardm_trl.models.codec_lm import CodecLMConfig, CodecLMForSpeechSynthesis
from ardm_trl.models.token_reward import CTCReward, TokenRewardConfig, TokenRewardModel
from ardm_trl.trainer.diffro_config import DiffROConfig
from ardm_trl.trainer.diffro_trainer import DiffROTrainer

torch.set_num_threads(1)

CODEBOOK, TEXT_VOCAB = 24, 12
TINY_LM = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 2,
           "num_hidden_layers": 2}  # fmt: skip


def tiny_policy(seed: int = 0) -> CodecLMForSpeechSynthesis:
    torch.manual_seed(seed)
    return CodecLMForSpeechSynthesis(
        CodecLMConfig(text_vocab_size=TEXT_VOCAB, codebook_size=CODEBOOK, lm_config=TINY_LM)
    )


def prompts_dataset(n: int = 32, **columns) -> Dataset:
    rows = [{"text_ids": [i % TEXT_VOCAB, (3 * i + 1) % TEXT_VOCAB, (5 * i + 2) % TEXT_VOCAB][: 1 + i % 3],
             "prompt": f"sentence {i}"} for i in range(n)]  # fmt: skip
    for key, values in columns.items():
        for row, value in zip(rows, values):
            row[key] = value
    return Dataset.from_list(rows)


def token_fraction(soft_tokens, token_mask, token):
    return (soft_tokens[..., token] * token_mask).sum(-1) / token_mask.sum(-1).clamp(min=1)


def prefer_token_3(soft_tokens, token_mask, **columns):
    return token_fraction(soft_tokens, token_mask, 3)


def make_args(tmp_path, **kwargs) -> DiffROConfig:
    defaults = dict(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=2, learning_rate=3e-3,
                    logging_steps=1, report_to="none", use_cpu=True, save_strategy="no", max_new_tokens=12, seed=0)  # fmt: skip
    return DiffROConfig(**{**defaults, **kwargs})


def one_batch(trainer: DiffROTrainer) -> list[dict]:
    return next(iter(trainer.get_train_dataloader()))


def test_reward_gradient_reaches_the_policy(tmp_path):
    trainer = DiffROTrainer(
        tiny_policy(), prefer_token_3, args=make_args(tmp_path, beta=0.0), train_dataset=prompts_dataset()
    )
    assert trainer.ref_model is None  # beta = 0: no reference
    model = trainer.model
    loss = trainer.compute_loss(model, one_batch(trainer))
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None for g in grads.values())
    for name in ("speech_head.weight", "model.layers.0.self_attn.q_proj.weight", "model.embed_tokens.weight"):
        assert grads[name].abs().sum() > 0, name
    # a reward that ignores the soft tokens gives no gradient: the gradient above came through the reward
    model.zero_grad()

    def constant(soft_tokens, token_mask, **columns):
        return soft_tokens.new_ones(soft_tokens.shape[0])

    trainer.reward_funcs, trainer.reward_names = [constant], ["constant"]
    with pytest.raises(ValueError, match="'constant' returned a tensor with no gradient"):  # it would train on nothing
        trainer.compute_loss(model, one_batch(trainer))


@pytest.mark.parametrize("filters", [{}, {"top_k": 6, "top_p": 0.8, "temperature": 0.7}])
def test_replay_reproduces_the_sampled_tokens_and_logits(tmp_path, filters):
    args = make_args(tmp_path, beta=0.0, gumbel_temperature=0.7, min_new_tokens=2, **filters)
    trainer = DiffROTrainer(tiny_policy(), prefer_token_3, args=args, train_dataset=prompts_dataset())
    rollout = trainer.rollout(trainer.model, one_batch(trainer))
    replay = trainer.replay(trainer.model, rollout)
    sample, mask = rollout.sample, rollout.sample.completion_mask
    assert (sample.completion_mask.sum(-1) > 2).all()  # min_new_tokens respected
    # forward value of the straight-through one-hot is exactly the sampled one-hot
    hard = torch.nn.functional.one_hot(sample.speech_ids, CODEBOOK + 1).float()
    torch.testing.assert_close(replay.soft_tokens.detach(), hard, rtol=0, atol=1e-6)
    assert torch.equal(replay.soft_tokens.argmax(-1)[mask], sample.speech_ids[mask])
    # the teacher-forced pass gives the logits the tokens were sampled from
    torch.testing.assert_close(replay.logits.detach()[mask], sample.logits[mask], rtol=1e-4, atol=1e-5)
    assert torch.equal((replay.logits.detach() + sample.gumbel_noise).argmax(-1)[mask], sample.speech_ids[mask])
    if filters:  # the filters removed tokens, and the same ones in the replay
        removed = torch.isinf(sample.logits[mask])
        assert removed.any() and torch.equal(torch.isinf(replay.logits.detach()[mask]), removed)


def test_training_raises_a_simple_differentiable_reward(tmp_path):
    policy = tiny_policy()
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    args = make_args(tmp_path, max_steps=30, logging_steps=5, beta=0.01)
    trainer = DiffROTrainer(policy, prefer_token_3, args=args, train_dataset=prompts_dataset(64))
    trainer.train()
    logs = [log for log in trainer.state.log_history if "reward" in log]
    first, last = logs[0]["rewards/prefer_token_3/mean"], logs[-1]["rewards/prefer_token_3/mean"]
    assert first < 0.1  # ~ 1 / 24 at initialisation
    assert last > 3 * first
    for key in ("reward", "reward_std", "kl", "kl_per_token", "entropy", "completions/mean_length",
                "completions/clipped_ratio", "replay/max_abs_logit_diff", "rewards/prefer_token_3/std"):  # fmt: skip
        assert key in logs[-1], key
    assert logs[-1]["kl"] > 0 and logs[-1]["replay/max_abs_logit_diff"] < 1e-4
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert trainer.ref_model is not None  # frozen copy of the initial policy
    assert all(torch.equal(before[k], v) for k, v in trainer.ref_model.state_dict().items())


def test_rewards_are_selected_per_row_by_a_dataset_column(tmp_path):
    """Zero-shot control in miniature: the row's `target` column says which token the reward prefers."""
    texts = [[1, 2] if i % 2 == 0 else [8, 9] for i in range(64)]
    targets = [3 if i % 2 == 0 else 7 for i in range(64)]

    def prefer_target(soft_tokens, token_mask, target, **columns):
        return torch.stack([token_fraction(soft_tokens[i : i + 1], token_mask[i : i + 1], t)[0]
                            for i, t in enumerate(target)])  # fmt: skip

    args = make_args(tmp_path, max_steps=40, beta=0.0)
    trainer = DiffROTrainer(
        tiny_policy(), prefer_target, args=args, train_dataset=prompts_dataset(64, target=targets, text_ids=texts)
    )
    trainer.train()
    policy = trainer.model.eval()
    codes = policy.sample_speech(texts, max_new_tokens=12, generator=torch.Generator().manual_seed(1)).codes_list()
    share = lambda rows, tok: sum(r.count(tok) for r in rows) / max(sum(len(r) for r in rows), 1)  # noqa: E731
    even, odd = codes[0::2], codes[1::2]
    assert share(even, 3) > 2 * share(odd, 3) and share(odd, 7) > 2 * share(even, 7)


def test_lora_trains_only_adapters_and_reference_is_the_base(tmp_path):
    peft = pytest.importorskip("peft")
    policy = tiny_policy()
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    args = make_args(tmp_path, max_steps=3, beta=0.1, learning_rate=1e-2)
    trainer = DiffROTrainer(policy, prefer_token_3, args=args, train_dataset=prompts_dataset(), peft_config=config)
    assert trainer.ref_model is None  # the reference is the policy with adapters disabled
    before = {k: v.clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k for k in changed)
    assert all(not after[k].requires_grad for k in after if "lora_" not in k)
    logs = [log for log in trainer.state.log_history if "kl" in log]
    assert logs[-1]["kl"] > 0  # policy (adapters on) and reference (adapters off) now differ


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda soft_tokens, token_mask, **kw: soft_tokens.sum(-1), "shape"),
        (lambda soft_tokens, token_mask, **kw: soft_tokens[:, 0, 0] * float("nan"), "non-finite"),
        (lambda soft_tokens, token_mask, **kw: [1.0] * soft_tokens.shape[0], "tensor"),
    ],
)
def test_bad_reward_raises_naming_it(tmp_path, bad, message):
    def culprit(soft_tokens, token_mask, **columns):
        return bad(soft_tokens, token_mask)

    trainer = DiffROTrainer(tiny_policy(), [prefer_token_3, culprit], args=make_args(tmp_path, beta=0.0),
                            train_dataset=prompts_dataset())  # fmt: skip
    with pytest.raises(ValueError, match=rf"'culprit'.*{message}|{message}.*'culprit'"):
        trainer.compute_loss(trainer.model, one_batch(trainer))


def test_config_and_argument_validation(tmp_path):
    with pytest.raises(ValueError, match="reward_weights"):
        DiffROTrainer(tiny_policy(), prefer_token_3, args=make_args(tmp_path, reward_weights=[1.0, 2.0]))
    with pytest.raises(ValueError, match="gumbel_temperature"):
        make_args(tmp_path, gumbel_temperature=0.0)
    trainer = DiffROTrainer(tiny_policy(), prefer_token_3, args=make_args(tmp_path, beta=0.0),
                            train_dataset=Dataset.from_list([{"prompt": "no ids"}] * 8))  # fmt: skip
    with pytest.raises(ValueError, match="text_ids"):
        trainer.compute_loss(trainer.model, one_batch(trainer))


def test_token_reward_model_ctc_reward_trains_policy_and_model_card(tmp_path):
    torch.manual_seed(0)
    mtr = TokenRewardModel(TokenRewardConfig(
        codebook_size=CODEBOOK, num_text_units=TEXT_VOCAB, attribute_labels={"rate_level": ["slow", "fast"]},
        encoder_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
    ))  # fmt: skip
    args = make_args(tmp_path, max_steps=2, beta=0.05)
    trainer = DiffROTrainer(tiny_policy(), CTCReward(mtr), args=args, train_dataset=prompts_dataset())
    reward_params = {k: v.clone() for k, v in mtr.state_dict().items()}
    trainer.train()
    assert "rewards/ctc/mean" in trainer.state.log_history[0]
    assert all(torch.equal(reward_params[k], v) for k, v in mtr.state_dict().items())  # the MTR stays frozen
    trainer.save_model(str(tmp_path / "final"))
    trainer.create_model_card()
    card = (Path(args.output_dir) / "README.md").read_text()
    assert "DiffRO" in card and "ctc" in card and "2507.05911" in card


TWO_PROCESS_SCRIPT = """
import torch
from datasets import Dataset
from ardm_trl.models.codec_lm import CodecLMConfig, CodecLMForSpeechSynthesis
from ardm_trl.trainer.diffro_config import DiffROConfig
from ardm_trl.trainer.diffro_trainer import DiffROTrainer
torch.manual_seed(0)
policy = CodecLMForSpeechSynthesis(CodecLMConfig(text_vocab_size=12, codebook_size=24, lm_config={lm}))
def prefer_token_3(soft_tokens, token_mask, **columns):
    return (soft_tokens[..., 3] * token_mask).sum(-1) / token_mask.sum(-1).clamp(min=1)
data = Dataset.from_list([{{"text_ids": [i % 12, (i + 3) % 12]}} for i in range(32)])
args = DiffROConfig(output_dir="{out}", per_device_train_batch_size=4, max_steps=3, learning_rate=3e-3,
                    logging_steps=1, report_to="none", use_cpu=True, save_strategy="no", max_new_tokens=8)
trainer = DiffROTrainer(policy, prefer_token_3, args=args, train_dataset=data)
trainer.train()
trainer.save_model()
trainer.accelerator.wait_for_everyone()
if trainer.accelerator.is_main_process:
    print("WORLD", trainer.accelerator.num_processes, "STEPS", trainer.state.global_step)
trainer.accelerator.end_training()
"""


@pytest.mark.slow
def test_two_process_accelerate_run(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(TWO_PROCESS_SCRIPT.format(lm=TINY_LM, out=tmp_path / "out"))
    result = accelerate_launch(script, port=29551)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WORLD 2 STEPS 3" in result.stdout
    assert (tmp_path / "out" / "model.safetensors").exists()
