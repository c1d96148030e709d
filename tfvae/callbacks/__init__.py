"""Keras callbacks of the train app, one job per module.

```none
hooks.py          the factory registry, CallbackContext, extra_callbacks (adding callbacks
                  without editing the train app)
images.py         image_grid, interleave_rows, encode_png
summaries.py      SummaryCallback (images, posterior histograms, projector), EpochScalarsCallback
projector.py      ProjectorWriter (the embedding projector's files)
hparams.py        write_hparams (the hparams plugin)
checkpoint.py     CheckpointCallback (epoch-end and every-N-steps checkpoints)
decomposition.py  DecompositionCallback and its registered train-app factory
```
Importing this package registers the built-in factories (the decomposition).
"""

from tfvae.callbacks.checkpoint import CheckpointCallback
from tfvae.callbacks.decomposition import DecompositionCallback
from tfvae.callbacks.hooks import EXTRA_CALLBACKS, CallbackContext, extra_callbacks, \
    register_callback
from tfvae.callbacks.hparams import write_hparams
from tfvae.callbacks.images import encode_png, image_grid, interleave_rows
from tfvae.callbacks.projector import ProjectorWriter
from tfvae.callbacks.summaries import EpochScalarsCallback, SummaryCallback, posterior_moments

__all__ = ["EXTRA_CALLBACKS", "register_callback", "CallbackContext", "extra_callbacks",
           "image_grid", "interleave_rows", "encode_png", "posterior_moments",
           "SummaryCallback", "EpochScalarsCallback", "ProjectorWriter", "write_hparams",
           "CheckpointCallback", "DecompositionCallback"]
