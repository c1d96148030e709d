"""`jit_compile="auto"`, the default of every tfvae model's `compile`: XLA where it runs.

On this stack XLA is the fast path for dense torsos (the FMNIST-bin train step ~1.4x faster
on CPU, benchmarks/README.md), so a plain `model.compile(optimizer=...)` gets it. It falls
back to the graph step, logging the reason once, where XLA cannot compile the step:

```none
run_eagerly=True                       nothing is compiled
replicas on logical devices of one CPU each replica's variables on its own device, which
                                       XLA's CPU backend does not see
a multi-worker strategy without GPUs   TensorFlow has no XLA collectives on CPU
a component with supports_xla = False  the component says why in `xla_reason`
```
and, a choice of speed rather than a limit, for a model with convolutions on a host without a
GPU: XLA's CPU backend emits its own convolution loops, where the graph step hands them to
oneDNN, and trained the conv VAE slower (`benchmarks/conv_jit.py`, benchmarks/README.md).
"""

import logging

from tfvae._tf import tf, tfk

logger = logging.getLogger("tfvae")


def xla_refusal(strategy):
    """Why `strategy` cannot run an XLA-compiled train step on this host, or None."""
    if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        return None
    if tf.config.list_physical_devices("GPU"):
        return None
    if strategy.extended._in_multi_worker_mode():  # noqa: SLF001
        return ("a multi-worker strategy on CPU (TensorFlow has no XLA collectives on CPU)")
    devices = getattr(strategy.extended, "worker_devices", ())
    if len(devices) > 1:
        return (f"replicas on {len(devices)} logical devices of one CPU (XLA's CPU backend "
                "sees one device)")
    return None


def component_refusal(model):
    """The first `xla_reason` of a component (posterior, likelihood, prior, term) with
    `supports_xla = False`, or None."""
    parts = [getattr(model, "posterior", None), getattr(model, "likelihood", None),
             getattr(model, "prior_layer", None), *getattr(model, "terms", ())]
    for part in parts:
        if part is not None and getattr(part, "supports_xla", True) is False:
            name = getattr(part, "registry_name", type(part).__name__)
            return f"{name!r}: {getattr(part, 'xla_reason', 'declares no XLA support')}"
    return None


def has_convolutions(model):
    """Whether any layer of `model` is a convolution (transposed ones included)."""
    conv = (tfk.layers.Conv1D, tfk.layers.Conv2D, tfk.layers.Conv3D)
    return any(isinstance(m, conv) for m in model.submodules)


def resolve(model, jit_compile, run_eagerly):
    """The `jit_compile` to hand tf_keras: `jit_compile` itself unless it is "auto"."""
    if jit_compile != "auto":
        return jit_compile
    if run_eagerly:
        reason = "run_eagerly=True"
    else:
        reason = xla_refusal(model.distribute_strategy) or component_refusal(model)
    if reason is None:
        if has_convolutions(model) and not tf.config.list_physical_devices("GPU"):
            logger.info("%s: compiling without XLA (jit_compile=False): convolutions train "
                        "faster in the graph step on CPU.", model.name)
            return False
        return True
    logger.warning("%s: compiling without XLA (jit_compile=False): %s.", model.name, reason)
    return False
