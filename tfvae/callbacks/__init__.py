"""Keras callbacks of the train app (moving to one module per job)."""

from tfvae.callbacks.summaries import *  # noqa: F401,F403
from tfvae.callbacks.summaries import _as_list  # noqa: F401
