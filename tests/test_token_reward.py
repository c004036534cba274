"""Tests of the multi-task token reward model (MTR) and its trainer, on a synthetic token language."""

import random

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import AutoModel

from ardm_trl.models.token_reward import (
    AttributeReward,
    CTCReward,
    TokenRewardConfig,
    TokenRewardDataCollator,
    TokenRewardModel,
    pad_text_ids,
)
from ardm_trl.trainer.token_reward_config import TokenRewardTrainingConfig
from ardm_trl.trainer.token_reward_trainer import TokenRewardTrainer

torch.set_num_threads(1)

NUM_UNITS, CODEBOOK = 6, 16
RATES = {"slow": 3, "normal": 2, "fast": 1}  # tokens per text unit
TINY_ENCODER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}  # fmt: skip


def tiny_config(**kwargs) -> TokenRewardConfig:
    labels = {"gender": ["female", "male"], "rate_level": list(RATES)}
    return TokenRewardConfig(codebook_size=CODEBOOK, num_text_units=NUM_UNITS, attribute_labels=labels,
                             encoder_config=TINY_ENCODER, **kwargs)  # fmt: skip


def synthetic_rows(n: int, seed: int) -> list[dict]:
    """Unit u of a `male` speaker is code u + 6, of a `female` one code u; `rate` repeats each code."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        text = [rng.randrange(NUM_UNITS)]
        while len(text) < rng.randint(3, 6):
            text.append(rng.choice([u for u in range(NUM_UNITS) if u != text[-1]]))
        gender, rate = rng.choice(["female", "male"]), rng.choice(list(RATES))
        codes = [u + (NUM_UNITS if gender == "male" else 0) for u in text for _ in range(RATES[rate])]
        rows.append({"speech_ids": codes, "text_ids": text, "gender": gender, "rate_level": rate,
                     "quality": float(len(codes)) / 10})  # fmt: skip
    return rows


def test_soft_one_hot_equals_hard_ids_and_gradients_reach_soft_tokens():
    torch.manual_seed(0)
    model = TokenRewardModel(tiny_config()).eval()
    ids = torch.randint(0, CODEBOOK, (2, 7))
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    hard = model(input_ids=ids, attention_mask=mask)
    soft_tokens = F.one_hot(ids, CODEBOOK).float().requires_grad_()
    soft = model(soft_tokens=soft_tokens, attention_mask=mask)
    torch.testing.assert_close(soft.ctc_log_probs, hard.ctc_log_probs)
    torch.testing.assert_close(soft.attribute_logits["gender"], hard.attribute_logits["gender"])
    reward = CTCReward(model)(soft_tokens, mask, text_ids=[[1, 2], [3]])
    assert reward.shape == (2,)
    reward.sum().backward()
    assert soft_tokens.grad[0].abs().sum() > 0 and soft_tokens.grad[1, :5].abs().sum() > 0
    assert soft_tokens.grad[1, 5:].abs().sum() == 0  # padding does not influence the reward


def test_ctc_reward_is_the_summed_log_likelihood_by_default_and_mean_divides_by_text_length():
    torch.manual_seed(0)
    model = TokenRewardModel(tiny_config()).eval()
    soft_tokens = F.one_hot(torch.randint(0, CODEBOOK, (2, 9)), CODEBOOK).float()
    mask = torch.ones(2, 9, dtype=torch.long)
    text_ids = [[1, 2, 3], [4]]
    summed = CTCReward(model)(soft_tokens, mask, text_ids=text_ids)
    per_unit = CTCReward(model, reduction="mean")(soft_tokens, mask, text_ids=text_ids)
    torch.testing.assert_close(per_unit, summed / torch.tensor([3.0, 1.0]))
    assert (summed < 0).all() and summed[0] < per_unit[0]
    with pytest.raises(ValueError, match="reduction"):
        CTCReward(model, reduction="max")


def test_ctc_unalignable_text_gets_chance_level_and_bad_inputs_raise():
    model = TokenRewardModel(tiny_config(ctc_upsample=1)).eval()
    text = torch.tensor([[0, 1, 2, 3, 4]])
    value = model.ctc_log_likelihood(text, input_ids=torch.tensor([[1, 2]]), reduction="sum")
    assert value.item() == pytest.approx(-5 * torch.log(torch.tensor(NUM_UNITS + 1.0)).item())
    with pytest.raises(ValueError, match="codebook_size"):
        model(soft_tokens=torch.rand(1, 3, CODEBOOK + 1))
    with pytest.raises(ValueError, match="exactly one"):
        model()
    with pytest.raises(ValueError, match="at least 2"):
        tiny_config().__class__(attribute_labels={"rate": ["fast"]})


def test_attribute_reward_reads_target_column_and_skips_none():
    model = TokenRewardModel(tiny_config()).eval()
    soft = F.one_hot(torch.randint(0, CODEBOOK, (3, 4)), CODEBOOK).float()
    mask = torch.ones(3, 4)
    reward = AttributeReward(model, "rate_level")(soft, mask, target_rate_level=["fast", None, 0])
    log_probs = model.attribute_log_probs("rate_level", soft_tokens=soft, attention_mask=mask)
    torch.testing.assert_close(reward, torch.stack([log_probs[0, 2], torch.tensor(0.0), log_probs[2, 0]]))
    with pytest.raises(ValueError, match="Unknown label"):
        AttributeReward(model, "rate_level")(soft, mask, target_rate_level=["very fast", None, None])


def test_save_load_identical(tmp_path):
    model = TokenRewardModel(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, TokenRewardModel) and reloaded.config.attribute_labels == model.config.attribute_labels
    ids = torch.randint(0, CODEBOOK, (2, 5))
    torch.testing.assert_close(
        reloaded(input_ids=ids).ctc_log_probs, model(input_ids=ids).ctc_log_probs, rtol=0, atol=0
    )


def test_trainer_learns_every_task_and_reports_per_task_metrics(tmp_path):
    torch.manual_seed(0)
    model = TokenRewardModel(tiny_config())
    train, test = Dataset.from_list(synthetic_rows(256, seed=0)), Dataset.from_list(synthetic_rows(64, seed=1))
    args = TokenRewardTrainingConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=16, per_device_eval_batch_size=64, max_steps=160,
        learning_rate=3e-3, logging_steps=40, report_to="none", use_cpu=True, save_strategy="no",
        task_weights={"quality": 0.5}, seed=0,
    )  # fmt: skip
    trainer = TokenRewardTrainer(model=model, args=args, train_dataset=train, eval_dataset=test)
    trainer.evaluate()
    before = trainer.state.log_history[-1]  # eval metrics are flushed into the log, TRL-style
    trainer.train()
    trainer.evaluate()
    after = trainer.state.log_history[-1]
    for key in ("eval_loss/ctc", "eval_loss/gender", "eval_loss/rate_level", "eval_loss/quality",
                "eval_accuracy/gender", "eval_accuracy/rate_level", "eval_quality_mae", "eval_ctc_nll"):  # fmt: skip
        assert key in after, key
    assert after["eval_ctc_nll"] < 0.5 * before["eval_ctc_nll"]
    assert after["eval_accuracy/gender"] > 0.9 and after["eval_accuracy/rate_level"] > 0.75  # chance: 0.5, 0.33
    assert after["eval_quality_mae"] < before["eval_quality_mae"]
    train_logs = [log for log in trainer.state.log_history if "loss/ctc" in log]
    assert train_logs and "accuracy/gender" in train_logs[-1]


def test_task_weights_validation():
    model = TokenRewardModel(tiny_config())
    with pytest.raises(ValueError, match="unknown tasks"):
        TokenRewardTrainer(model, TokenRewardTrainingConfig(output_dir="unused", task_weights={"emotion": 1.0}))
    with pytest.raises(ValueError, match=">= 0"):
        TokenRewardTrainingConfig(output_dir="unused", task_weights='{"ctc": -1}')


def test_collator_maps_names_and_missing_labels():
    config = tiny_config()
    batch = TokenRewardDataCollator(config)(
        [
            {"speech_ids": [1, 2, 3], "text_ids": [0, 1], "gender": "male", "rate_level": None, "quality": 3.0},
            {"speech_ids": [4], "text_ids": [2], "gender": 0, "rate_level": "fast", "quality": None},
        ]
    )
    assert batch["attribute_labels"]["gender"].tolist() == [1, 0]
    assert batch["attribute_labels"]["rate_level"].tolist() == [-100, 2]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert torch.equal(batch["text_ids"], pad_text_ids([[0, 1], [2]]))
    assert torch.isnan(batch["quality_labels"][1])


def test_rows_without_text_are_left_out_of_the_ctc_loss():
    torch.manual_seed(0)
    model = TokenRewardModel(tiny_config()).eval()
    rows = synthetic_rows(2, seed=3)
    unlabeled = {**rows[1], "text_ids": None, "gender": None, "rate_level": None}
    both = model(**TokenRewardDataCollator(model.config)([rows[0], unlabeled]))
    alone = model(**TokenRewardDataCollator(model.config)([rows[0]]))
    torch.testing.assert_close(both.task_losses["ctc"], alone.task_losses["ctc"])
    assert set(both.task_losses) == {"ctc", "gender", "rate_level", "quality"}
