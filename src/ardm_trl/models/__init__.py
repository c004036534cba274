"""Model families of ardm_trl. Importing this module registers them with the transformers Auto classes."""

from .ardm import *  # noqa: F401,F403
from .ardm import __all__ as _ardm_all
from .codec_lm import *  # noqa: F401,F403
from .codec_lm import __all__ as _codec_lm_all
from .token_reward import *  # noqa: F401,F403
from .token_reward import __all__ as _token_reward_all

__all__ = [*_ardm_all, *_codec_lm_all, *_token_reward_all]
