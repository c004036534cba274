"""The papers the trainers implement, as their model cards cite them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    title: str
    url: str
    citation: str


VGPO = Paper(
    title="Fine-tuning speech autoregressive diffusion models with value guided policy optimization",
    url="https://openreview.net/forum?id=LLWIaUZvEu",
    citation="""@inproceedings{vgpo2026,
  title     = {Fine-tuning speech autoregressive diffusion models with value guided policy optimization},
  booktitle = {International Conference on Learning Representations (submission)},
  year      = {2026},
  url       = {https://openreview.net/forum?id=LLWIaUZvEu}
}""",
)

ARDM_DPO = Paper(
    title="Direct preference optimization for speech autoregressive diffusion models",
    url="https://arxiv.org/abs/2509.18928",
    citation="""@article{liu2025ardmdpo,
  title   = {Direct Preference Optimization for Speech Autoregressive Diffusion Models},
  author  = {Liu, Zhijun and Jia, Dongya and Wang, Xiaoqiang and Du, Chenpeng and Wang, Shuai and Chen, Zhuo and
             Li, Haizhou},
  journal = {arXiv preprint arXiv:2509.18928},
  year    = {2025},
  url     = {https://arxiv.org/abs/2509.18928}
}""",
)

DIFFRO = Paper(
    title="Differentiable Reward Optimization for LLM based TTS system",
    url="https://arxiv.org/abs/2507.05911",
    citation="""@article{diffro2025,
  title   = {Differentiable Reward Optimization for LLM based TTS system},
  journal = {arXiv preprint arXiv:2507.05911},
  year    = {2025},
  url     = {https://arxiv.org/abs/2507.05911}
}""",
)

__all__ = ["ARDM_DPO", "DIFFRO", "VGPO", "Paper"]
