"""The README's trainer snippet runs as written: raw texts and a voice clip to prompt rows, one VGPO step."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.speech


def test_readme_vgpo_snippet_trains(tmp_path, monkeypatch):
    readme = (REPO / "README.md").read_text()
    snippet = next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "VGPOTrainer(" in block)
    assert "max_steps=40" in snippet and "prompt_rows_from_text(" in snippet
    snippet = snippet.replace("max_steps=40", "max_steps=1, per_device_train_batch_size=2, num_generations=2, "
                                              "max_patches=8, report_to='none'")
    snippet = snippet.replace('output_dir="vgpo"', f'output_dir="{tmp_path}"')
    monkeypatch.chdir(REPO)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    trainer = namespace["trainer"]
    assert trainer.state.global_step == 1
    assert any("reward" in h for h in trainer.state.log_history)
    assert [row["prompt"] for row in namespace["train_dataset"]] == namespace["texts"]
