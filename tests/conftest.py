import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tiny_ardm_config(**overrides):
    """A tiny ARDM configuration for fast tests (built in-process, nothing downloaded)."""
    from ardm_trl import ARDMConfig

    values = dict(
        latent_dim=4,
        patch_size=2,
        text_vocab_size=16,
        backbone_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2
        ),
        head_hidden_size=48,
        head_num_layers=2,
        max_patches=8,
        diffusion_batch_multiplier=2,
    )
    values.update(overrides)
    return ARDMConfig(**values)


@pytest.fixture
def tiny_config():
    return tiny_ardm_config()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
