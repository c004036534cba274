"""Model families of ardm_trl. Importing this module registers them with the transformers Auto classes."""

from .ardm import *  # noqa: F401,F403
from .ardm import __all__ as _ardm_all

__all__ = list(_ardm_all)
