"""Model cards: every trainer writes one at `save_model`, naming its paper (with BibTeX), the base model (as Hub
metadata when it is a Hub id, by folder name when local) and a usage line that resolves; VGPO's Hub upload carries
its value model."""

from pathlib import Path

import pytest
import torch
from test_vgpo import dataset, make_models, mean_latent, vgpo_args

from ardm_trl import ARDMValueModel
from ardm_trl.trainer import VGPOTrainer
from ardm_trl.trainer.base import base_model_name, is_hub_id


def test_vgpo_save_model_writes_a_card_with_paper_citation_and_base_model(tmp_path):
    policy, value_model = make_models()
    policy.config._name_or_path = "my-org/my-ardm"
    trainer = VGPOTrainer(policy, value_model, mean_latent, vgpo_args(tmp_path / "run", max_steps=1),
                          train_dataset=dataset())  # fmt: skip
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    card = (tmp_path / "final" / "README.md").read_text()
    assert "base_model: my-org/my-ardm" in card and "openreview.net/forum?id=LLWIaUZvEu" in card
    assert "@inproceedings{vgpo2026" in card and "mean_latent" in card and "(unknown)" not in card
    assert 'from_pretrained("path/to/final")' in card
    assert (tmp_path / "final" / "value_model" / "config.json").is_file()


def test_a_local_base_model_is_named_by_its_folder_and_value_models_keep_the_ardm_name(tmp_path):
    policy, _ = make_models()
    policy.save_pretrained(tmp_path / "ardm")
    from ardm_trl import ARDMForSpeechSynthesis

    loaded = ARDMForSpeechSynthesis.from_pretrained(tmp_path / "ardm")
    assert base_model_name(loaded) == "ardm (a local folder)"
    assert ARDMValueModel.from_ardm(loaded).config._name_or_path == str(tmp_path / "ardm")
    assert is_hub_id("org/name") and not is_hub_id(str(tmp_path / "ardm")) and not is_hub_id("/abs/path")


@pytest.mark.parametrize("kind", ["dpo", "diffro", "value"])
def test_every_trainer_writes_a_card_at_save_model(tmp_path, kind):
    from test_bad_inputs import _trainer_with

    from ardm_trl.trainer import ValueConfig, ValueTrainer, build_value_dataset

    if kind == "value":
        policy, value_model = make_models()
        data = build_value_dataset(policy, [dict(r) for r in dataset(2)], mean_latent, num_generations=2,
                                   max_patches=3, min_patches=3, num_inference_steps=2)  # fmt: skip
        args = ValueConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, use_cpu=True,
                           save_strategy="no", report_to="none")  # fmt: skip
        trainer = ValueTrainer(value_model, args, train_dataset=data)
        paper = "openreview.net"
    else:
        _, build = _trainer_with(kind, tmp_path, None)
        trainer = build()
        paper = "2509.18928" if kind == "dpo" else "2507.05911"
    trainer.save_model(str(tmp_path / "saved"))
    card = Path(tmp_path / "saved" / "README.md").read_text()
    assert paper in card and "```bibtex\n@" in card


def test_vgpo_push_to_hub_uploads_the_value_model_too(tmp_path, monkeypatch):
    import transformers.trainer

    uploaded = {}

    class FakeApi:
        def upload_folder(self, folder_path, **kwargs):
            uploaded["files"] = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*"))

    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: FakeApi())
    policy, value_model = make_models()
    trainer = VGPOTrainer(policy, value_model, mean_latent, vgpo_args(tmp_path, max_steps=1), train_dataset=dataset())
    trainer.hub_model_id = "me/vgpo-run"  # as after `init_hf_repo`; nothing leaves the machine
    trainer.push_to_hub()
    assert "value_model/model.safetensors" in uploaded["files"] and "README.md" in uploaded["files"]
    assert torch.equal(ARDMValueModel.from_pretrained(tmp_path / "value_model").head.output.weight,
                       value_model.head.output.weight)  # fmt: skip


def test_the_cards_usage_snippet_loads_model_and_tokenizer_in_a_fresh_process(tmp_path):
    """The card's Python block, run as written (its placeholder path pointed at the saved folder) in a new
    interpreter, loads the trained model and the text tokenizer the trainer saved beside it."""
    import re
    import subprocess
    import sys

    from ardm_trl.data.text_tokenizer import ARDMTextTokenizer

    policy, value_model = make_models()
    tokenizer = ARDMTextTokenizer.from_texts(["abcdefghijklmn"])
    trainer = VGPOTrainer(policy, value_model, mean_latent, vgpo_args(tmp_path / "run", max_steps=1),
                          train_dataset=dataset(), processing_class=tokenizer)  # fmt: skip
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    assert (tmp_path / "final" / "text_vocab.json").is_file()
    card = (tmp_path / "final" / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert "AutoTokenizer.from_pretrained" in snippet
    snippet = snippet.replace("path/to/final", str(tmp_path / "final"))
    check = ("\nimport torch\nassert type(model).__name__ == 'ARDMForSpeechSynthesis'"
             f"\nassert tokenizer.encode('abc') == {tokenizer.encode('abc')}"
             f"\nsaved = torch.load({str(tmp_path / 'w.pt')!r})"
             "\nassert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())")  # fmt: skip
    torch.save({k: v.detach().clone() for k, v in trainer.model.state_dict().items()}, tmp_path / "w.pt")
    result = subprocess.run([sys.executable, "-c", snippet + check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
