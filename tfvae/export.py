"""SavedModel export with tensor-only serving signatures, written atomically.

```none
signature        inputs                      outputs
encode           x [B, H, W, C] float32      what the posterior declares: z [B, D] always;
                                             loc [B, D], scale_tril [B, D, D] (Gaussians);
                                             log_q [B] (posteriors with a density)
decode           z [B, D] float32            mean [B, H, W, C]   (probabilities for Bernoulli)
reconstruct      x [B, H, W, C] float32      reconstruction [B, H, W, C] = E[x | z = E[z|x]]
sample           n [] int32                  images [n, H, W, C] = E[x|z], z ~ p(z)
log_likelihood   x [B, H, W, C] float32      log_likelihood [B], nats: importance-weighted
                                             log p(x) with k samples (Burda et al. 2016)
```
`z` (encode), `sample` and `log_likelihood` are random: they draw seeds from a
`tf.random.Generator` saved with the model, so each call gets fresh noise and a fresh load
repeats the same sequence (`reseed(seed)` restarts it). `log_likelihood` is the estimator of
`tfvae.evaluation.log_likelihood` on one batch with k fixed at export (`iwae_samples`,
default 100): a lower bound on log p(x) in expectation that tightens with k; report numbers
from `tfvae.apps.evaluate` with k >= 1000.

Everything the signatures compute is plain TensorFlow ops, so the SavedModel loads with
`tf.saved_model.load` where neither tfvae nor TensorFlow Probability is installed, and
`saved_model_cli show --all --dir DIR` lists the signatures. `metadata.json` beside
`saved_model.pb` holds the run's config, dataset, final metrics and package versions.

#### What a model exports

The posterior head decides `encode`'s outputs (`Posterior.export_tensors`) and whether
`log_likelihood` exists (`Posterior.has_proposal`: a density, or a fitted importance
distribution; a point mass has neither). A model may also define
``export_signatures(self, module) -> dict``: name -> a `tf.function` with an
`input_signature` (added or replacing a default) or None (dropping one). `module` is the
`ExportModule`, with `module.x_spec`, `module.z_spec` and `module.seed()` (a fresh stateless
seed, int32 [2]).

Exports are atomic (`tfvae.atomic`): readers see the old export or the new one, never a
half-written directory.
"""

import datetime
import json
import os
import platform
import shutil
import tempfile

import numpy as np

from tfvae import atomic
from tfvae import evaluation
from tfvae import validation
from tfvae._tf import tf

SIGNATURES = ("encode", "decode", "reconstruct", "sample", "log_likelihood")
METADATA_FILE = "metadata.json"
FORMAT = "tfvae-savedmodel/1"


class _Untracked:
    """Holds an object without making it a checkpoint/SavedModel dependency."""

    def __init__(self, obj):
        self.obj = obj


class ExportModule(tf.Module):
    """The exported object: the model's variables plus tensor-only tf.functions.

    Args:
        model: a `tfvae.VAE` (anything with `encode`, `decode`, `prior`, `posterior`,
            `latent_dim`, `image_shape` and `__call__`).
        iwae_samples: k of the `log_likelihood` signature. Default value: 100.
        chunk_size: samples per step of its running logsumexp. Default value: min(k, 100).
        seed: seed of the generator behind `z`, `sample` and `log_likelihood`.
            Default value: 0.
    """

    def __init__(self, model, iwae_samples=100, chunk_size=None, seed=0):
        super().__init__(name="tfvae_export")
        # The Keras model itself stays out of the saved object graph: saving it would trace
        # every layer and store TFP distribution specs, which need TFP to load. Only its
        # variables are tracked; the signatures capture them.
        self._model_ref = _Untracked(model)
        self.model_variables = list(model.variables)
        self.iwae_samples = validation.positive_int(iwae_samples, "iwae_samples")
        self.chunk_size = int(min(chunk_size or 100, self.iwae_samples))
        self.rng = tf.random.Generator.from_seed(seed)
        h, w, c = model.image_shape
        self.x_spec = tf.TensorSpec([None, h, w, c], tf.float32, name="x")
        self.z_spec = tf.TensorSpec([None, model.latent_dim], tf.float32, name="z")
        self.has_density = bool(model.posterior.has_density)
        # A model may say why its log p(x) is not estimated (VAE-GAN: no pixel density).
        self.log_likelihood_unavailable = getattr(model, "log_likelihood_unavailable", None)
        self.has_proposal = bool(model.posterior.has_proposal) and \
            not self.log_likelihood_unavailable

        self.encode = tf.function(self._encode, input_signature=[self.x_spec])
        self.decode = tf.function(self._decode, input_signature=[self.z_spec])
        self.reconstruct = tf.function(self._reconstruct, input_signature=[self.x_spec])
        self.sample = tf.function(self._sample,
                                  input_signature=[tf.TensorSpec([], tf.int32, name="n")])
        if self.has_proposal:
            self.log_likelihood = tf.function(self._log_likelihood,
                                              input_signature=[self.x_spec])
        self.reseed = tf.function(self._reseed,
                                  input_signature=[tf.TensorSpec([], tf.int64, name="seed")])
        functions = {name: getattr(self, name) for name in SIGNATURES if hasattr(self, name)}
        hook = getattr(model, "export_signatures", None)
        if callable(hook):
            for name, fn in dict(hook(self)).items():
                if fn is None:
                    functions.pop(name, None)
                else:
                    setattr(self, name, fn)  # tracked, so its variables are saved
                    functions[name] = fn
        self._functions_ref = _Untracked(functions)  # the attributes above are what is saved

    @property
    def model(self):
        return self._model_ref.obj

    def seed(self):
        """A fresh stateless seed (int32 [2]) from the export's generator."""
        return self.rng.uniform_full_int([2], dtype=tf.int32)

    def _encode(self, x):
        return self.model.posterior.export_tensors(self.model.encode(x), self.seed())

    def _decode(self, z):
        return {"mean": self.model.decode(z).mean()}

    def _reconstruct(self, x):
        return {"reconstruction": self.model(x, training=False)}

    def _sample(self, n):
        z = self.model.prior.sample(n, seed=self.seed())
        return {"images": self.model.decode(z).mean()}

    def _log_likelihood(self, x):
        return {"log_likelihood": evaluation.log_likelihood_batch(
            self.model, x, self.iwae_samples, self.chunk_size, self.seed())}

    def _reseed(self, seed):
        # Philox state = (counter, counter, key): restart the stream at key `seed`.
        self.rng.reset(tf.stack([tf.constant(0, tf.int64), tf.constant(0, tf.int64), seed]))
        return {"seed": seed}

    def signature_functions(self):
        """{name: tf.function} of the serving signatures (traced when saved)."""
        return dict(self._functions_ref.obj)


def describe_signatures(path):
    """{name: {"inputs": {arg: [shape, dtype]}, "outputs": {key: [shape, dtype]}}} of the
    serving signatures of the SavedModel at `path`, read from its saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2  # noqa: PLC0415
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())

    def spec(info):
        dims = [-1 if d.size < 0 else int(d.size) for d in info.tensor_shape.dim]
        return [dims, tf.dtypes.as_dtype(info.dtype).name]
    out = {}
    for name, sig in sorted(proto.meta_graphs[0].signature_def.items()):
        if name.startswith("__"):
            continue
        out[name] = {"inputs": {k: spec(v) for k, v in sorted(sig.inputs.items())},
                     "outputs": {k: spec(v) for k, v in sorted(sig.outputs.items())}}
    return out


def package_versions():
    import tf_keras  # noqa: PLC0415
    import tensorflow_probability as tfp  # noqa: PLC0415
    import tfvae  # noqa: PLC0415
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__, "tf_keras": tf_keras.__version__,
            "numpy": np.__version__, "tfvae": getattr(tfvae, "__version__", "unknown")}


def _model_config(model):
    try:
        return json.loads(json.dumps(model.get_config(), default=str))
    except (NotImplementedError, TypeError, ValueError, AttributeError):
        return None


def build_metadata(model, module, signatures, metadata=None):
    """metadata.json's content; `signatures` as `describe_signatures` returns them."""
    meta = {
        "format": FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"class": f"{type(model).__module__}.{type(model).__qualname__}",
                  "name": getattr(model, "registry_name", None),
                  "config": _model_config(model)},
        "image_shape": list(model.image_shape),
        "latent_dim": int(model.latent_dim),
        "has_density": module.has_density,
        "signatures": signatures,
        "log_likelihood": {"estimator": "importance-weighted (IWAE) bound, nats per example",
                           "num_samples": module.iwae_samples,
                           "chunk_size": module.chunk_size} if module.has_proposal else
                          ({"omitted": module.log_likelihood_unavailable}
                           if module.log_likelihood_unavailable else None),
        "versions": package_versions(),
    }
    meta.update(metadata or {})
    return meta


def save(model, path, metadata=None, iwae_samples=100, chunk_size=None, seed=0):
    """Writes `model` as a SavedModel at `path`, atomically; returns the `ExportModule`.

    Args:
        model: the trained model.
        path: the export directory (e.g. "saved_models/run"). An existing SavedModel there
            is replaced; any other non-empty directory is refused.
        metadata: JSON-able dict merged into metadata.json (config, dataset, metrics, ...).
        iwae_samples: k of the `log_likelihood` signature. Default value: 100.
        chunk_size: samples per logsumexp step of `log_likelihood`. Default value: 100.
        seed: seed of the export's generator. Default value: 0.

    Raises:
        ValueError: `path` exists and is a file, or a non-empty directory that is no
            SavedModel; metadata is not JSON-able; or a weight of the model is NaN or
            infinite (a diverged model is never exported; the message names the variable).
    """
    check_finite(model)
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"`path` {path!r} exists and is not a directory.")
    if os.path.isdir(path) and os.listdir(path) and not _is_saved_model(path):
        raise ValueError(f"`path` {path!r} is a non-empty directory that is not a "
                         "SavedModel; refusing to replace it.")
    try:
        json.dumps(metadata)
    except TypeError as e:
        raise ValueError(f"`metadata` must be JSON-able: {e}") from None
    module = ExportModule(model, iwae_samples=iwae_samples, chunk_size=chunk_size, seed=seed)

    os.makedirs(parent, exist_ok=True)
    atomic.remove_stale_temps(parent, name)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.tmp-{os.getpid()}-")
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would outlive the rename
        _save_module(module, tmp)
        meta = build_metadata(model, module, describe_signatures(tmp), metadata)
        _write_metadata(tmp, json.dumps(meta, indent=2))
        atomic.publish(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return module


def check_finite(model):
    """Raises ValueError naming the first variable of `model` with a NaN or infinite value."""
    for variable in model.variables:
        if not variable.dtype.is_floating:
            continue
        value = variable.numpy()
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        if bad:
            raise ValueError(f"refusing to export a model with non-finite weights: variable "
                             f"{variable.name!r} has {bad} NaN/Inf value(s) of "
                             f"{np.size(value)}; training diverged (lower the learning rate, "
                             "or check the data for NaN/Inf).")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _save_module(module, directory):
    """tf.saved_model.save, tracing each signature once (in the save context)."""
    tf.saved_model.save(module, directory, signatures=module.signature_functions())


def _is_saved_model(path):
    return os.path.exists(os.path.join(path, "saved_model.pb"))


def _write_metadata(directory, text):
    with open(os.path.join(directory, METADATA_FILE), "w") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())


def load_metadata(path):
    """The metadata.json of an export, as a dict.

    Raises:
        ValueError: the file is not JSON, or not a JSON object.
        OSError: it cannot be read.
    """
    file = os.path.join(path, METADATA_FILE)
    with open(file, encoding="utf-8") as f:
        try:
            meta = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{file} is not valid JSON ({e}); re-export the model.") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{file} must hold a JSON object; got {type(meta).__name__}; "
                         "re-export the model.")
    return meta
