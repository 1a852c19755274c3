"""The Δ-encoder pre-training pairs (:mod:`.delta_pairs`); every other dataset lives in :mod:`codecprim.data`."""

from .delta_pairs import *  # noqa: F403
