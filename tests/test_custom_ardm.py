"""A differently built ARDM through everything that relies on the ARDM interface (`ARDMProtocol`): a DiTAR-style
policy whose diffusion head is a small transformer over the frames of the previous patch and the noisy patch (instead
of the bundled AdaLN MLP), trained by VGPO and ARDM-DPO, sampled with value guidance and ranked by Best-of-K; a model
that is not an ARDM is refused before any set-up."""

import pytest
import torch
from conftest import tiny_ardm_config
from test_ardm_dpo import dpo_args, mean_latent, preference_dataset, prompt_rows
from test_vgpo import dataset, vgpo_args
from torch import nn

from ardm_trl import ARDMForSpeechSynthesis, ARDMValueModel
from ardm_trl.models.ardm import ARDMProtocol
from ardm_trl.models.ardm.head import TimestepEmbedding
from ardm_trl.trainer import ARDMDPOTrainer, VGPOTrainer
from ardm_trl.trainer.best_of_k import best_of_k

GENERATION = dict(max_patches=3, min_patches=1, num_inference_steps=4)


class LocalTransformerHead(nn.Module):
    """DiTAR's local head in miniature: the `P` frames of the previous patch and the `P` noisy frames are tokens of a
    bidirectional transformer, conditioned by a prefix token (LM state + diffusion time); it predicts the noisy
    frames. Same call and shapes as the bundled head: `(hidden, previous_patch, noisy_patch, timesteps)`."""

    def __init__(self, lm_hidden: int, latent_dim: int, patch_size: int, width: int = 32):
        super().__init__()
        self.latent_dim, self.patch_size = latent_dim, patch_size
        self.frames_in = nn.Linear(latent_dim, width)
        self.position = nn.Parameter(0.02 * torch.randn(2 * patch_size, width))
        self.condition = nn.Linear(lm_hidden, width)
        self.time = TimestepEmbedding(width)
        layer = nn.TransformerEncoderLayer(width, nhead=2, dim_feedforward=2 * width, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.frames_out = nn.Linear(width, latent_dim)

    def forward(self, hidden, previous_patch, noisy_patch, timesteps):
        lead, p, d = noisy_patch.shape[:-1], self.patch_size, self.latent_dim
        previous = previous_patch.expand(*lead, -1).reshape(-1, p, d)
        noisy = noisy_patch.reshape(-1, p, d)
        frames = self.frames_in(torch.cat([previous, noisy], dim=1)) + self.position  # (L, 2P, W)
        prefix = self.condition(hidden.expand(*lead, -1)) + self.time(timesteps.expand(lead))
        tokens = torch.cat([prefix.reshape(-1, 1, prefix.shape[-1]), frames], dim=1)
        out = self.frames_out(self.encoder(tokens)[:, 1 + p :])  # the noisy frames
        return out.reshape(*lead, p * d)


class DiTARStyleARDM(ARDMForSpeechSynthesis):
    def __init__(self, config):
        super().__init__(config)
        self.head = LocalTransformerHead(config.backbone_config.hidden_size, config.latent_dim, config.patch_size)


def make_models(seed=0):
    torch.manual_seed(seed)
    policy = DiTARStyleARDM(tiny_ardm_config())
    value_model = ARDMValueModel.from_ardm(policy)
    with torch.no_grad():
        value_model.head.output.weight.normal_(0, 0.1)
    return policy, value_model


def changed(model, before):
    return [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]


def test_it_is_an_ardm_and_samples_with_value_guidance():
    policy, value_model = make_models()
    assert isinstance(policy, ARDMProtocol)
    policy.eval()
    text = torch.tensor([[1, 2, 3], [4, 5, 0]])
    plain = policy.generate(text, generator=torch.Generator().manual_seed(0), **GENERATION)
    guided = policy.generate(text, value_model=value_model, value_guidance_scale=4.0,
                             generator=torch.Generator().manual_seed(0), **GENERATION)  # fmt: skip
    assert plain.latents.shape[-1] == policy.config.latent_dim and torch.isfinite(guided.latents).all()
    assert not torch.allclose(plain.latents, guided.latents)  # the value gradient reached the head's samples


def test_vgpo_trains_its_head_and_lm(tmp_path):
    policy, value_model = make_models()
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    trainer = VGPOTrainer(policy, value_model, mean_latent, vgpo_args(tmp_path), train_dataset=dataset())
    trainer.train()
    moved = changed(policy, before)
    assert any(n.startswith("head.encoder") for n in moved) and any(n.startswith("backbone") for n in moved)
    assert trainer.state.log_history[-2]["kl"] > 0  # the last entry is the run summary
    trainer.save_model(str(tmp_path / "final"))
    reloaded = DiTARStyleARDM.from_pretrained(tmp_path / "final")
    assert all(torch.equal(p, policy.state_dict()[n]) for n, p in reloaded.state_dict().items())


def test_ardm_dpo_and_best_of_k(tmp_path):
    policy, _ = make_models()
    data = preference_dataset(policy)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    ARDMDPOTrainer(policy, args=dpo_args(tmp_path), train_dataset=data).train()
    assert any(n.startswith("head.encoder") for n in changed(policy, before))
    out = best_of_k(policy, prompt_rows(3), mean_latent, num_samples=4, batch_size=3,
                    generator=torch.Generator().manual_seed(0), **GENERATION)  # fmt: skip
    assert torch.equal(out.best_scores, out.scores.max(dim=1).values)


@pytest.mark.parametrize("build", ["vgpo", "dpo", "best_of_k"])
def test_a_model_that_is_not_an_ardm_is_refused_before_any_set_up(tmp_path, build):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    lm = Qwen2ForCausalLM(Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2))  # fmt: skip
    _, value_model = make_models()
    before = {n: p.detach().clone() for n, p in lm.named_parameters()}
    with pytest.raises(TypeError, match="not an ARDM.*ARDMProtocol"):
        if build == "vgpo":
            VGPOTrainer(lm, value_model, mean_latent, vgpo_args(tmp_path), train_dataset=dataset())
        elif build == "dpo":
            ARDMDPOTrainer(lm, args=dpo_args(tmp_path), train_dataset=prompt_rows(2))
        else:
            best_of_k(lm, prompt_rows(2), mean_latent, num_samples=2)
    assert not changed(lm, before)
