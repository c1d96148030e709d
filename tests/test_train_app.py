"""The train app end to end: export parity in a process without tfvae, TensorBoard event
files, resume after SIGKILL and after an interruption (bit-for-bit the uninterrupted run),
presets, model/callback hooks, and one-line exit-2 errors for bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tfvae
from tfvae import callbacks as callbacks_lib
from tfvae import config as config_lib
from tfvae._tf import tf, tfk
from tfvae.apps import _build, _cli
from tfvae.apps import _train_controls as _controls
from tfvae.apps import sample as sample_app
from tfvae.apps import train as train_app
from tfvae.optimizers import FlatAdam
from tfvae.registry import MODELS

# Tiny and fast: 6 steps of 64 synthetic images per epoch, a 32-unit MLP, no XLA compile
# (compiling costs more than these runs train). Latent 4: XLA and latent 3 do not mix on
# this stack ("Reading input as constant from a dynamic tensor"), so tests avoid 3 anyway.
TINY = ["--dataset", "synthetic", "--latent-dim", "4", "--hidden-units", "32",
        "--batch-size", "64", "--steps-per-epoch", "6", "--test-limit", "128",
        "--export-iwae-samples", "20", "--no-jit", "--verbose", "0",
        # One step per call, so step-level hooks (the interrupt below) see every step.
        "--steps-per-execution", "1"]
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
       "PYTHONUNBUFFERED": "1"}


def dirs(root, name=None):
    args = ["--logdir", str(root / "runs"), "--export-dir", str(root / "saved")]
    return args + (["--run-name", name] if name else [])


def run_in_process(argv, lines=None):
    """parse + train in this process; returns the train app's Result."""
    cfg, model_cls, args = train_app.parse(argv)
    return train_app.train(cfg, model_cls, args,
                           out=(lines.append if lines is not None else lambda s: None))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    lines = []
    result = run_in_process(TINY + ["--epochs", "2", "--seed", "3"] + dirs(root), lines)
    result.lines = lines
    result.root = root
    return result


# ---------------------------------------------------------------------------- export

ISOLATED_LOADER = textwrap.dedent("""
    import sys
    # The SavedModel must need TensorFlow only: make these imports fail outright.
    for name in ("tfvae", "tensorflow_probability", "tf_keras", "keras"):
        sys.modules[name] = None
    try:
        import tfvae
    except ImportError:
        pass
    else:
        raise SystemExit("tfvae was importable")
    import numpy as np
    import tensorflow as tf
    path, inputs, output = sys.argv[1:4]
    m = tf.saved_model.load(path)
    d = np.load(inputs)
    out = {}
    # Same call order as the in-memory check: the three random signatures share one
    # generator, saved with the model.
    for k, v in m.signatures["encode"](x=tf.constant(d["x"])).items():
        out["encode_" + k] = v.numpy()
    out["decode_mean"] = m.signatures["decode"](z=tf.constant(d["z"]))["mean"].numpy()
    x = tf.constant(d["x"])
    out["reconstruction"] = m.signatures["reconstruct"](x=x)["reconstruction"].numpy()
    out["sample"] = m.signatures["sample"](n=tf.constant(5))["images"].numpy()
    out["log_likelihood"] = m.signatures["log_likelihood"](x=x)["log_likelihood"].numpy()
    np.savez(output, **out)
    print(sorted(m.signatures))
""")


def test_export_loads_without_tfvae_and_matches_the_model(trained, tmp_path):
    model, module = trained.model, trained.module
    x = trained.data.test_images[:7]
    z = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x, z=z)
    (tmp_path / "load.py").write_text(ISOLATED_LOADER)
    proc = subprocess.run([sys.executable, "-I", str(tmp_path / "load.py"), trained.export_path,
                           str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, env=ENV, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "['decode', 'encode', 'log_likelihood', 'reconstruct', 'sample']" in proc.stdout
    got = np.load(tmp_path / "out.npz")

    # Deterministic signatures against the live model itself (float32 round-off only).
    q_z = model.encode(x)
    np.testing.assert_allclose(got["encode_loc"], q_z.mean().numpy(), atol=1e-5)
    np.testing.assert_allclose(got["encode_scale_tril"], q_z.scale.to_dense().numpy(), atol=1e-5)
    assert got["encode_scale_tril"].shape == (7, 4, 4)
    assert np.all(np.triu(got["encode_scale_tril"], 1) == 0)
    np.testing.assert_allclose(got["decode_mean"], model.decode(z).mean().numpy(), atol=1e-5)
    np.testing.assert_allclose(got["reconstruction"], model(x).numpy(), atol=1e-5)
    assert got["sample"].shape == (5, 28, 28, 1)
    assert got["log_likelihood"].shape == (7,)

    # Random signatures: the in-memory export module, never called before, holds the same
    # generator state as the fresh load, so the same calls give the same draws.
    enc = module.encode(tf.constant(x))
    module.decode(tf.constant(z))
    module.reconstruct(tf.constant(x))
    np.testing.assert_allclose(got["encode_z"], enc["z"].numpy(), atol=1e-5)
    np.testing.assert_allclose(got["sample"], module.sample(tf.constant(5))["images"].numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(got["log_likelihood"],
                               module.log_likelihood(tf.constant(x))["log_likelihood"].numpy(),
                               rtol=1e-5)
    # z is a draw from q(z|x): whitened by the exported L it is far from the mean only
    # by chance (|eps| < 6 for all 28 standard-normal draws, p > 1 - 1e-7).
    eps = np.linalg.solve(got["encode_scale_tril"],
                          (got["encode_z"] - got["encode_loc"])[..., None])
    assert np.all(np.abs(eps) < 6) and np.std(eps) > 0.2
    # The exported estimator is tfvae.evaluation.log_likelihood on one batch, draw for draw:
    # after reseed(s) the export's next seed is the first draw of Philox state (0, 0, s).
    module.reseed(tf.constant(11, tf.int64))
    exported = module.log_likelihood(tf.constant(x))["log_likelihood"].numpy()
    seed = tf.random.Generator.from_state([0, 0, 11], alg="philox").uniform_full_int(
        [2], dtype=tf.int32)
    library = tfvae.evaluation.log_likelihood(model, x, num_samples=20, chunk_size=20,
                                              seed=seed).numpy()
    np.testing.assert_allclose(exported, library, rtol=1e-6)

    meta = json.loads(open(os.path.join(trained.export_path, "metadata.json")).read())
    assert meta["recipe"]["model"]["latent_dim"] == 4 and meta["config"]["seed"] == 3
    assert meta["dataset"]["name"] == "synthetic" and meta["dataset"]["binarize"] == "static"
    assert meta["metrics"]["test"]["elbo"] == pytest.approx(trained.metrics["elbo"])
    assert meta["metrics"]["optimizer_steps"] == 12 and meta["metrics"]["epochs"] == 2
    assert meta["versions"]["tensorflow"] == tf.__version__
    assert meta["log_likelihood"]["num_samples"] == 20
    assert set(meta["signatures"]) == {"encode", "decode", "reconstruct", "sample",
                                       "log_likelihood"}


def test_saved_model_cli_lists_the_signatures(trained):
    cli = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))
    assert cli, "saved_model_cli is installed with tensorflow"
    proc = subprocess.run([cli, "show", "--all", "--dir", trained.export_path],
                          capture_output=True, text=True, env=ENV, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name, arg in [("encode", "x"), ("decode", "z"), ("reconstruct", "x"), ("sample", "n"),
                      ("log_likelihood", "x")]:
        block = proc.stdout.split(f"signature_def['{name}']:")[1].split("signature_def[")[0]
        assert f"inputs['{arg}']" in block
    assert "outputs['scale_tril']" in proc.stdout and "shape: (-1, 4, 4)" in proc.stdout


# ---------------------------------------------------------------------------- TensorBoard files

def _events(directory):
    """{(tag, plugin): {step: value proto}} over the event files directly in `directory`."""
    found = {}
    for name in os.listdir(directory):
        if name.startswith("events.out.tfevents"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
                for v in event.summary.value:
                    found.setdefault((v.tag, v.metadata.plugin_data.plugin_name), {})[
                        event.step] = v
    return found


def test_event_files_hold_scalars_images_histograms_projector_hparams(trained):
    run = trained.run_dir
    train_events = _events(os.path.join(run, "train"))
    validation = _events(os.path.join(run, "validation"))
    for metric in ("loss", "elbo", "reconstruction", "kl"):
        assert set(train_events[(f"1_objective/{metric}", "scalars")]) == {0, 1}
        assert set(validation[(f"1_objective/{metric}", "scalars")]) == {0, 1}
    # The decomposition is a validation diagnostic in its own section, not a training metric.
    assert set(validation[("4_decomposition/tc", "scalars")]) == {0, 1}
    # Each scalar says what it is: the ELBO a bound, the decomposition exact sums.
    assert "a lower bound on log p(x)" in \
        validation[("1_objective/elbo", "scalars")][0].metadata.summary_description
    assert "exact sums for Gaussian posteriors" in \
        validation[("4_decomposition/tc", "scalars")][1].metadata.summary_description
    assert not any("decomposition" in tag for tag, _ in train_events)
    assert ("5_optimizer/learning_rate", "scalars") in train_events
    # Images: [width, height, png] string tensors; the grids have the documented layout.
    expected = {"images/reconstructions": (4 * 29 - 1, 8 * 29 - 1),   # 16 in 2x(input, recon) rows
                "images/prior_samples": (8 * 29 - 1, 8 * 29 - 1),     # 64 samples
                "images/latent_traversal": (4 * 29 - 1, 9 * 29 - 1)}  # 4 dims x 9 values
    for tag, (height, width) in expected.items():
        steps = validation[(tag, "images")]
        assert set(steps) == {0, 1}
        png = tf.make_ndarray(steps[1].tensor)
        image = tf.io.decode_png(png[2]).numpy()
        assert image.shape == (height, width, 3 if image.shape[-1] == 3 else 1), tag
        assert int(png[0]) == width and int(png[1]) == height
    for tag in ("posterior/mean", "posterior/stddev"):
        assert set(validation[(tag, "histograms")]) == {0, 1}
    # Scales are positive; the histogram's bucket edges show it.
    buckets = tf.make_ndarray(validation[("posterior/stddev", "histograms")][1].tensor)
    assert buckets[0, 0] > 0
    assert ("_hparams_/session_start_info", "hparams") in _events(run)

    config = open(os.path.join(run, "projector_config.pbtxt")).read()
    assert 'tensor_path: "projector/latents.tsv"' in config and "metadata_path" in config
    latents = np.loadtxt(os.path.join(run, "projector", "latents.tsv"))
    assert latents.shape == (204, 4)  # the validation images (a tenth of 2048)
    # The projector shows the final posterior means of the first validation images.
    data = trained.data
    np.testing.assert_allclose(latents[:5], trained.model.encode(data.validation_images[:5])
                               .mean().numpy(), atol=1e-4)
    labels = open(os.path.join(run, "projector", "metadata.tsv")).read().splitlines()
    assert labels[0] == "label\tclass" and len(labels) == 205
    assert [int(l.split("\t")[0]) for l in labels[1:6]] == list(data.validation_labels[:5])


def test_run_summary_names_elbo_and_paths(trained):
    from tfvae.config import TrainConfig
    text = train_app.summary(TrainConfig(dataset="synthetic", batch_size=64), trained)
    assert f"Test ELBO: {trained.metrics['elbo']:.2f} nats per image" in text
    assert trained.run_dir in text and trained.export_path in text
    assert any(line.startswith("Starting run") for line in trained.lines)


def test_summary_labels_minibatch_terms_and_their_negative_bias():
    from tfvae.apps import _train_report
    model = MODELS.get("beta_tcvae")(latent_dim=3, hidden_units=(8,), dataset_size=55000,
                                     input_shape=(28, 28, 1))
    metrics = {"elbo": -120.0, "mi": 7.5, "tc": -0.99, "dim_kl": 4.0, "kl": 11.0}
    line = _train_report.minibatch_terms_line(model, metrics, 125)
    assert line.startswith("mi, tc, dim_kl: mss minibatch estimates (test batches of 125, "
                           "N = 55000)"), line
    assert line.endswith("Below 0 from that bias, not a negative divergence: tc -0.99"), line
    assert "Below 0" not in _train_report.minibatch_terms_line(model, {**metrics, "tc": 0.5},
                                                               125)
    vae = MODELS.get("vae")(latent_dim=3, hidden_units=(8,), input_shape=(28, 28, 1))
    assert _train_report.minibatch_terms_line(vae, metrics, 125) is None


def test_scalar_descriptions_say_estimate_bound_or_exact():
    from tfvae.callbacks.summaries import scalar_description
    avb = MODELS.get("avb")(latent_dim=3, hidden_units=(8,), input_shape=(28, 28, 1))
    assert "NOT a bound" in scalar_description("elbo", avb)
    assert "critic's estimate of KL" in scalar_description("kl", avb)
    assert "not a bound" in scalar_description("avb", avb)
    assert "average of its weights" not in scalar_description("kl", avb)  # off by default
    averaged = MODELS.get("avb")(latent_dim=3, hidden_units=(8,), input_shape=(28, 28, 1),
                                 critic_average=0.99)
    assert "validation the average of its weights" in scalar_description("kl", averaged)
    assert "from a critic" in scalar_description("avb_contrast_kl", avb)
    vae = MODELS.get("vae")(latent_dim=3, hidden_units=(8,), input_shape=(28, 28, 1))
    assert "a lower bound on log p(x)" in scalar_description("elbo", vae)
    tcvae = MODELS.get("beta_tcvae")(latent_dim=3, hidden_units=(8,), dataset_size=500,
                                     input_shape=(28, 28, 1))
    assert "TC can read below 0" in scalar_description("tc", tcvae)
    assert scalar_description("learning_rate", vae).endswith("(exact).")


def test_sample_app_writes_grids(trained, tmp_path, capsys):
    out = tmp_path / "samples.png"
    assert sample_app.main(["--model", trained.export_path, "--num", "10", "--out",
                            str(out)]) == 0
    image = tf.io.decode_png(out.read_bytes()).numpy()
    assert image.shape == (3 * 29 - 1, 4 * 29 - 1, 1)  # 10 images: 4 per row, 3 rows
    assert sample_app.main(["--model", trained.export_path, "--num", "6", "--reconstruct",
                            "--cols", "3", "--out", str(tmp_path / "r.png")]) == 0
    image = tf.io.decode_png((tmp_path / "r.png").read_bytes()).numpy()
    assert image.shape == (4 * 29 - 1, 3 * 29 - 1, 1)  # inputs, recons, inputs, recons
    # The top-left tile is the first test image, exactly (binarized like the training data).
    np.testing.assert_array_equal(image[:28, :28] / 255.0, trained.data.test_images[0])
    capsys.readouterr()
    assert sample_app.main(["--model", str(tmp_path), "--out", str(out)]) == 2
    assert sample_app.main(["--model", trained.export_path, "--num", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "no saved_model.pb" in err[0] and "`--num`" in err[1]


# ---------------------------------------------------------------------------- resume

class _Interrupt(Exception):
    pass


@pytest.fixture
def interrupt_at_step():
    """Registers an extra-callback factory that raises after optimizer step N."""
    name = "test_interrupt"
    state = {"step": None, "contexts": []}

    class Stop(tfk.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if state["step"] is not None and \
                    int(self.model.optimizer.iterations.numpy()) == state["step"]:
                raise _Interrupt()

    @callbacks_lib.register_callback(name)
    def _factory(context):
        state["contexts"].append(context)
        return Stop()
    yield state
    del callbacks_lib.EXTRA_CALLBACKS._entries[name]  # pylint: disable=protected-access


def test_interrupted_run_resumes_to_the_uninterrupted_weights(tmp_path, interrupt_at_step):
    argv = TINY + ["--epochs", "2", "--checkpoint-every-steps", "4", "--no-export"]
    straight = run_in_process(argv + dirs(tmp_path, "straight"))
    assert straight.iterations == 12

    # Interrupted during step 9 (epoch 2, its 3rd step); the last checkpoint is step 8.
    interrupt_at_step["step"] = 9
    with pytest.raises(_Interrupt):
        run_in_process(argv + dirs(tmp_path, "resumed"))
    ckpt = tf.train.latest_checkpoint(str(tmp_path / "runs" / "resumed" / "checkpoints"))
    assert ckpt.endswith("ckpt-8")
    reader = tf.train.load_checkpoint(ckpt)
    assert reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE") == 1
    assert reader.get_tensor("step_in_epoch/.ATTRIBUTES/VARIABLE_VALUE") == 2

    interrupt_at_step["step"] = None
    lines = []
    resumed = run_in_process(argv + dirs(tmp_path, "resumed"), lines)
    assert any("Resuming run 'resumed'" in l and "epoch 2/2, step 2/6" in l
               and "optimizer step 8" in l for l in lines), lines
    # Nothing trained twice or skipped: 12 steps in all, and the same data in the same order
    # with the same noise, so the weights equal the uninterrupted run's. One step more or
    # less moves Adam's weights by ~1e-3; float round-off is ~1e-7.
    assert resumed.iterations == 12
    for a, b in zip(straight.model.weights, resumed.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)
    np.testing.assert_array_equal(straight.model.rng.state.numpy(),
                                  resumed.model.rng.state.numpy())
    # The hook saw the run: its context carries the data and the writers.
    context = interrupt_at_step["contexts"][-1]
    assert context.dataset_size == 2048 - 204 and context.steps_per_epoch == 6
    assert context.images.shape == (204, 28, 28, 1) and context.model is resumed.model

    # The same command again: nothing left to train; it says so and re-exports.
    lines = []
    again = run_in_process(argv + dirs(tmp_path, "resumed"), lines)
    assert again.iterations == 12 and any("already trained 2 epochs" in l for l in lines)
    # --fresh starts over.
    lines = []
    fresh = run_in_process(argv + dirs(tmp_path, "resumed") + ["--fresh", "--epochs", "1"],
                           lines)
    assert fresh.iterations == 6 and any(l.startswith("--fresh: deleted") for l in lines)
    assert any(l.startswith("Starting run") for l in lines)


def test_training_controls_resume_to_the_uninterrupted_run(tmp_path, interrupt_at_step):
    # Clipping, a held-out validation split and early stopping: all of it is state the
    # checkpoint must carry. Patience 1 at this learning rate stops the run at epoch 9 of 12
    # (2 steps each), its validation ELBO worse than epoch 8's.
    argv = TINY + ["--epochs", "12", "--steps-per-epoch", "2", "--checkpoint-every-steps", "2",
                   "--no-export", "--clipnorm", "5", "--learning-rate", "0.3",
                   "--early-stopping", "1", "--validation-split", "300"]
    lines = []
    straight = run_in_process(argv + dirs(tmp_path, "straight"), lines)
    steps = straight.iterations
    assert steps < 24 and steps % 2 == 0, steps  # stopped early, at an epoch's end
    assert any(l.startswith("Early stopping: stopped early; the model has the weights of "
                            "epoch ") for l in lines), lines
    assert straight.data.num_validation == 300 and straight.data.num_train == 2048 - 300

    interrupt_at_step["step"] = steps - 3  # mid-epoch, one epoch before the stop
    with pytest.raises(_Interrupt):
        run_in_process(argv + dirs(tmp_path, "resumed"))
    interrupt_at_step["step"] = None
    resumed = run_in_process(argv + dirs(tmp_path, "resumed"))
    assert resumed.iterations == steps
    for a, b in zip(straight.model.weights, resumed.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)
    # The same command again trains nothing: the run stopped early, with the best weights.
    lines = []
    again = run_in_process(argv + dirs(tmp_path, "resumed"), lines)
    assert again.iterations == steps and any("It stopped early" in l for l in lines), lines
    for a, b in zip(straight.model.weights, again.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "warmup_cosine"])
def test_learning_rate_schedules_follow_their_closed_forms(schedule):
    from tfvae.apps import _train_controls  # noqa: PLC0415
    cfg = config_lib.TrainConfig(learning_rate=0.02, lr_schedule=schedule, lr_warmup_steps=10,
                                 clipnorm=2.0).validate()
    optimizer = _train_controls.optimizer(cfg, total_steps=110)
    assert optimizer.global_clipnorm == 2.0
    rate = _train_controls.learning_rate(cfg, total_steps=110)
    config = optimizer.get_config()["learning_rate"]
    assert config == 0.02 if schedule == "constant" else config["config"] == rate.get_config()
    for step in (0, 5, 10, 60, 109):
        expected = {"constant": 0.02,
                    "cosine": 0.01 * (1 + np.cos(np.pi * step / 110)),
                    "warmup_cosine": (0.02 * step / 10 if step < 10 else
                                      0.01 * (1 + np.cos(np.pi * (step - 10) / 100)))}[schedule]
        value = rate if schedule == "constant" else rate(step)
        assert float(value) == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_every_batch_of_a_split_has_one_shape():
    from tfvae.apps._train_data import Data, eval_batch_size, train_batches  # noqa: PLC0415
    assert [train_batches(n, 64) for n in (1844, 1856, 63)] == [28, 29, 1]
    assert eval_batch_size(5000, 128) == eval_batch_size(10000, 128) == 125
    assert [eval_batch_size(n, 64) for n in (204, 128, 40, 131)] == [51, 64, 40, 64]
    cfg, recipe, _ = train_app.parse(TINY + ["--steps-per-epoch", "100"])
    data = Data(cfg, recipe.default("likelihood"))
    assert data.steps_per_epoch == 1844 // 64
    assert data.epoch(0).element_spec.shape[0] == 64  # static: one XLA compilation
    sizes = {int(b.shape[0]) for split in (data.validation, data.test) for b in split}
    assert sizes == {51, 64}  # 204 validation images in 4 x 51, 128 test images in 2 x 64


@pytest.mark.parametrize("binarize", ["static", "dynamic", "none"])
def test_the_held_splits_are_uint8_and_read_as_their_float_conversion(binarize):
    # Validation and test images are held as uint8 and converted per batch: the batches and
    # the NumPy-side reads equal converting the raw images at once, for each binarization.
    from tfvae.apps._train_data import Data  # noqa: PLC0415
    cfg, recipe, _ = train_app.parse(TINY + ["--binarize", binarize])
    data = Data(cfg, recipe.default("likelihood"))
    raw = tfvae.data.load_arrays("synthetic", "test")[0][:128]  # TINY: --test-limit 128
    x = raw.astype(np.float32) / 255.0
    if binarize == "static":
        expected = (x > 0.5).astype(np.float32)
    elif binarize == "dynamic":  # one draw, seeded by --seed, the same every epoch
        u = np.random.default_rng(cfg.seed).random(raw.shape, dtype=np.float32)
        expected = (u < x).astype(np.float32)
    else:
        expected = x
    assert data.test_images.uint8.dtype == np.uint8 and data.test.element_spec.dtype == tf.float32
    batches = np.concatenate([b.numpy() for b in data.test])
    np.testing.assert_array_equal(batches, expected)
    np.testing.assert_array_equal(np.asarray(data.test_images), expected)
    # Any NumPy index reads the pixels, not the packed bytes.
    for index in (3, slice(3, 5), (..., 0), (2, 5), (slice(1, 4), 5, slice(None), 0),
                  ([0, 7, 2], ..., 0), (np.arange(128) % 3 == 0, 14), (None, 4), ()):
        np.testing.assert_array_equal(data.test_images[index], expected[index])
    assert len(data.test_images) == len(expected) and data.test_images.shape == expected.shape
    assert binarize == "none" or 0.05 < expected.mean() < 0.95  # a conversion that can differ


def test_the_validation_split_is_held_out_of_training_and_seeded():
    from tfvae.apps._train_data import Data  # noqa: PLC0415

    def data(*argv):  # grey levels: the training rows are the raw images
        cfg, recipe, _ = train_app.parse(TINY + ["--binarize", "none"] + list(argv))
        return Data(cfg, recipe.default("likelihood"))
    full = data("--validation-split", "0")
    base = data("--validation-split", "200")
    assert (base.num_train, base.num_validation) == (1848, 200)
    assert full.validation_images is full.test_images  # 0: the test split, as before
    rows = {r.tobytes() for r in full._train.numpy()}  # noqa: SLF001
    held = {(r > 0).tobytes() for r in base.validation_images}
    train = {(r > 0).tobytes() for r in base._train.numpy()}  # noqa: SLF001
    assert len(rows) == 2048 and not held & train and len(held) + len(train) >= 2040
    # The same images whatever --limit; others for another seed; a tenth by default.
    np.testing.assert_array_equal(data("--validation-split", "200", "--limit", "100")
                                  .validation_images, base.validation_images)
    assert not np.array_equal(data("--validation-split", "200", "--seed", "1")
                              .validation_images, base.validation_images)
    assert data().num_validation == 204


def test_statically_binarized_training_images_are_held_packed_and_batch_as_thresholds():
    # The packed path against the grey-level path of the same run: the same order, and each
    # batch the grey levels thresholded at 0.5, for two seeds and epochs.
    from tfvae.apps._train_data import Data  # noqa: PLC0415
    for seed in ("0", "5"):
        runs = {}
        for binarize in ("static", "none"):
            cfg, recipe, _ = train_app.parse(TINY + ["--binarize", binarize, "--seed", seed])
            runs[binarize] = Data(cfg, recipe.default("likelihood"))
        packed, grey = runs["static"], runs["none"]
        assert packed._train.dtype == tf.uint8  # noqa: SLF001
        assert packed._train.shape == (packed.num_train, 28 * 28 // 8)  # noqa: SLF001
        for epoch in (0, 3):
            got = np.concatenate([b.numpy() for b in packed.epoch(epoch)])
            want = np.concatenate([b.numpy() for b in grey.epoch(epoch)]) > 0.5
            assert got.shape == want.shape == (6 * 64, 28, 28, 1)
            np.testing.assert_array_equal(got, want.astype(np.float32))
            assert 0.05 < got.mean() < 0.95
        np.testing.assert_array_equal(np.asarray(packed.validation_images),
                                      np.asarray(grey.validation_images) > 0.5)


def test_steps_per_execution_changes_no_weight_and_still_checkpoints(tmp_path):
    argv = TINY + ["--epochs", "2", "--keep-checkpoints", "10", "--no-export"]
    one = run_in_process(argv + dirs(tmp_path, "one"))
    # 4 steps per call: calls end at steps 4, 6 (the epoch's end), 10 and 12; every-3
    # checkpoints are due at 3 and 9, so they are written at the first call end after.
    four = run_in_process(argv + ["--steps-per-execution", "4", "--checkpoint-every-steps",
                                  "3"] + dirs(tmp_path, "four"))
    assert one.iterations == four.iterations == 12
    for a, b in zip(one.model.weights, four.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)
    state = tf.train.get_checkpoint_state(str(tmp_path / "runs" / "four" / "checkpoints"))
    saved = [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths]
    assert saved == [4, 6, 10, 12]
    reader = tf.train.load_checkpoint(str(tmp_path / "runs" / "four" / "checkpoints" / "ckpt-10"))
    assert reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE") == 1
    assert reader.get_tensor("step_in_epoch/.ATTRIBUTES/VARIABLE_VALUE") == 4


def test_a_checkpoint_with_adams_moments_per_variable_is_refused(tmp_path, monkeypatch,
                                                                   capsys):
    # A run checkpointed by an earlier tfvae, whose app trained with tf_keras' Adam (two
    # moment variables per weight): FlatAdam would restore its flat moments as zeros.
    argv = TINY + ["--no-export"] + dirs(tmp_path, "old")
    with monkeypatch.context() as patch:
        patch.setattr(_controls, "optimizer", lambda cfg, total_steps: tfk.optimizers.Adam(
            cfg.learning_rate))
        assert run_in_process(argv + ["--epochs", "1"]).iterations == 6
    capsys.readouterr()
    assert train_app.main(argv + ["--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "one variable at a time" in err and "--fresh" in err, err
    # --fresh starts it over, with the app's optimizer.
    assert train_app.main(argv + ["--epochs", "1", "--fresh"]) == 0
    again = run_in_process(argv + ["--epochs", "2"])  # and that run resumes
    assert again.iterations == 12 and isinstance(again.model.optimizer, FlatAdam)


def _read_lines(proc, until, timeout):
    """stdout lines of `proc` until one contains `until`; returns them."""
    lines, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line.rstrip("\n"))
        if until in line:
            return lines
    raise AssertionError(f"no line with {until!r} in {timeout}s; got {lines[-20:]}")


def test_sigkilled_run_resumes_from_its_last_checkpoint(tmp_path):
    ckpt_dir = tmp_path / "runs" / "killed" / "checkpoints"
    cmd = [sys.executable, "-m", "tfvae.apps.train"] + TINY + dirs(tmp_path, "killed") + [
        "--checkpoint-every-steps", "2", "--verbose", "2", "--no-export"]
    # 40 epochs would take far longer than the kill: the process is mid-run when it dies.
    proc = subprocess.Popen(cmd + ["--epochs", "40"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.time() + 180
        while not (ckpt_dir / "checkpoint").exists():
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.time() < deadline, "no checkpoint within 180 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    latest = tf.train.latest_checkpoint(str(ckpt_dir))
    reader = tf.train.load_checkpoint(latest)
    epoch = int(reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    in_epoch = int(reader.get_tensor("step_in_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    iterations = int(reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"))
    assert iterations == epoch * 6 + in_epoch and latest.endswith(f"ckpt-{iterations}")

    # The same command, asking for the epoch in progress and one more, resumes (Keras
    # prints "Epoch i/n" lines only when n > 1).
    epochs = epoch + 2
    proc = subprocess.run(cmd + ["--epochs", str(epochs)], capture_output=True, text=True,
                          env=ENV, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (f"Resuming run 'killed' from {latest}: epoch {epoch + 1}/{epochs}, step "
            f"{in_epoch}/6 of it done, optimizer step {iterations}.") in proc.stdout
    # Keras numbers the epochs from the restored one on; the run ends at exactly
    # epochs * 6 optimizer steps, so the optimizer's counter continued from the checkpoint.
    assert f"Epoch {epoch + 1}/{epochs}" in proc.stdout
    if epoch > 0:
        assert "Epoch 1/" not in proc.stdout
    assert f"Done: run 'killed', {epochs * 6} optimizer steps." in proc.stdout
    final = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(ckpt_dir)))
    assert int(final.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == epochs * 6
    assert int(final.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE")) == epochs


# ---------------------------------------------------------------------------- presets and hooks

def test_default_preset_is_the_bare_command_and_flags_override_it():
    bare, bare_recipe, _ = train_app.parse([])
    preset, recipe, _ = train_app.parse(["--config", "apps/vae.toml"])
    assert preset == config_lib.TrainConfig(binarize="static", kl_warmup=0.5)
    assert bare.identity() == {**preset.identity(), "binarize": None, "kl_warmup": None}
    # the preset's warm-up is the default one, and both build the same warmed-up model
    assert _build.kl_warmup_fraction(bare, bare_recipe) == _build.DEFAULT_KL_WARMUP == 0.5
    assert bare.resolved_binarize("bernoulli") == "static" and bare.jit and bare.epochs == 10
    built, default = (r.build((28, 28, 1), seed=0).get_config() for r in (recipe, bare_recipe))
    assert built == default  # the preset spells out the defaults
    normal, normal_recipe, _ = train_app.parse(["--config", "apps/vae_normal.toml",
                                                "--latent-dim", "8", "--no-jit"])
    assert normal_recipe.tables["likelihood"] == {"name": "normal", "scale": "per_pixel",
                                                  "sigma": 0.1}
    assert normal.resolved_binarize("normal") is None and not normal.jit
    assert normal_recipe.model["latent_dim"] == 8


def test_the_kl_weight_warms_up_over_the_asked_fraction_of_the_run():
    from types import SimpleNamespace  # noqa: PLC0415
    data = SimpleNamespace(image_shape=(28, 28, 1), num_train=1848, steps_per_epoch=6,
                           test_images=np.zeros((2, 28, 28, 1), np.float32))

    def kl_weights(*argv):
        cfg, recipe, _ = train_app.parse(TINY + ["--epochs", "4", *argv])
        kl = [t for t in _build.build_model(cfg, recipe, data).terms if t.name == "kl"]
        return [float(kl[0].weight_at(tf.constant(s, tf.int64))) for s in (0, 3, 6, 12, 24)]
    # 4 epochs x 6 steps: the default half is 12 steps, a quarter 6; beta is the end point.
    assert kl_weights() == pytest.approx([0.0, 0.25, 0.5, 1.0, 1.0])
    assert kl_weights("--kl-warmup", "0.25", "--beta", "2") == pytest.approx(
        [0.0, 1.0, 2.0, 2.0, 2.0])
    assert kl_weights("--kl-warmup", "0") == [1.0] * 5
    # beta_vae takes it as its warm-up steps; presets that set their own keep them.
    cfg, recipe, _ = train_app.parse(TINY + ["--epochs", "4", "--model", "beta_vae"])
    assert _build.build_model(cfg, recipe, data).warmup_steps == 12
    cfg, recipe, _ = train_app.parse(TINY + ["--config", os.path.join("apps", "vae_warmup.toml")])
    assert _build.build_model(cfg, recipe, data).warmup_steps == 938
    # Models without a single KL weight train as before, with the fraction recorded as 0.
    cfg, recipe, _ = train_app.parse(TINY + ["--model", "capacity"])
    assert _build.kl_warmup_fraction(cfg, recipe) == 0.0


@pytest.fixture
def dummy_model():
    """A registered model with its own argument and a callback hook, removed afterwards."""
    seen = {}

    @MODELS.register("test_dummy")
    class Dummy(tfvae.VAE):
        """Args:
            gamma: a test hyperparameter.
        """

        def __init__(self, gamma=1.0, **kwargs):
            super().__init__(**kwargs)
            self.gamma = gamma
            seen["dataset_size"] = kwargs.get("dataset_size")

        def extra_callbacks(self, context):
            seen["context"] = context
            return []
    yield Dummy, seen
    MODELS.unregister("test_dummy")


def test_registered_model_flags_presets_and_hooks(dummy_model, tmp_path, capsys):
    _, seen = dummy_model
    preset = tmp_path / "d.toml"
    preset.write_text('epochs = 1\n[model]\nname = "test_dummy"\ngamma = 1.5\n')
    cfg, recipe, _ = train_app.parse(["--config", str(preset), "--gamma", "2.5"])
    assert recipe.model_cls.__name__ == "Dummy" and recipe.model["gamma"] == 2.5
    assert cfg.epochs == 1
    assert train_app.main(["--config", str(preset), "--dry-run"]) == 0
    assert '"gamma": 1.5' in capsys.readouterr().out
    # The argument belongs to the model: for another model it is an unknown key.
    assert train_app.main(["--config", str(preset), "--model", "vae"]) == 2
    assert "Unknown key 'gamma' in [model] (vae)" in capsys.readouterr().err

    result = run_in_process(["--config", str(preset), "--steps-per-epoch", "2"] +
                            [a for a in TINY if a not in ("--steps-per-epoch", "6")] +
                            dirs(tmp_path) + ["--no-export"])
    assert result.model.gamma == 1.5 and seen["dataset_size"] == 2048 - 204
    assert seen["context"].model is result.model and result.iterations == 2
    assert result.run_name.startswith("test_dummy-synthetic-bernoulli-z4-")


# ---------------------------------------------------------------------------- bad input

def _bad_inputs(tmp_path, trained):
    (tmp_path / "bad.toml").write_text("epochs = \n")
    (tmp_path / "typo.toml").write_text("latent_dims = 3\n")
    (tmp_path / "type.toml").write_text('epochs = "ten"\n')
    (tmp_path / "afile").write_text("")
    return [
        (["--dataset", "nope"], "Unknown dataset 'nope'; expected one of"),
        (["--model", "nope"], "Unknown model 'nope'; expected one of"),
        (["--epochs", "0"], "`--epochs` must be a positive int; got 0."),
        (["--epochs", "-3"], "`--epochs` must be a positive int; got -3."),
        (["--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
        (["--batch-size", "0"], "`--batch-size` must be a positive int; got 0."),
        (["--steps-per-execution", "0"],
         "`--steps-per-execution` must be a positive int; got 0."),
        (["--learning-rate", "0"], "`--learning-rate` must be positive"),
        (["--posterior", "ful"], "argument --posterior: invalid choice: 'ful'"),
        (["--config", str(tmp_path / "missing.toml")], "not found"),
        (["--config", str(tmp_path / "bad.toml")], "is not valid TOML"),
        (["--config", str(tmp_path / "typo.toml")],
         "unknown key 'latent_dims' in", "did you mean 'latent_dim' in [model]?"),
        (["--config", str(tmp_path / "type.toml")], "`--epochs` must be an int; got 'ten'"),
        (["--export-dir", str(tmp_path / "afile" / "sub")],
         "`--export-dir`", "is not a writable directory"),
        (["--logdir", str(tmp_path / "afile")], "`--logdir`", "is not a writable directory"),
        (["--set", "likelihood.scale=fixed"], "Unknown key 'scale' in [likelihood] (bernoulli)"),
        (["--set", "posterior.offdiag=1"], "allowed: ['init_scale', 'offdiag_scale']"),
        (["--set", "epochs"], "is not PATH=VALUE"),
        (["--run-name", "a/b"], "`--run-name` must be a plain directory name"),
        (["--kl-warmup", "1.5"], "`--kl-warmup` must be a fraction of the run in [0, 1]"),
        (TINY + ["--model", "avb", "--kl-warmup", "0.3"],
         "--kl-warmup does not apply to model 'avb'", "drop --kl-warmup"),
        (TINY + ["--config", os.path.join("apps", "vae_warmup.toml"), "--kl-warmup", "0.3"],
         "--kl-warmup does not apply to model 'beta_vae': it sets its own `warmup_steps`"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (TINY + ["--latent-dim", "5", "--logdir", str(trained.root / "runs"),
                 "--run-name", trained.run_name],
         "was started with different settings (recipe: "),
    ]


def test_bad_input_exits_2_with_one_line(tmp_path, trained, capsys):
    for argv, *fragments in _bad_inputs(tmp_path, trained):
        capsys.readouterr()
        code = train_app.main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tfvae-train: error: "), (argv, err)
        for fragment in fragments:
            assert fragment in lines[0], (argv, lines[0])


def test_bad_input_in_a_real_process(tmp_path):
    (tmp_path / "typo.toml").write_text("epochs = 2\nlatent_dims = 3\n")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tfvae.apps.train", "--config",
                           str(tmp_path / "typo.toml")], capture_output=True, text=True,
                          env=ENV, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("tfvae-train: error: unknown key 'latent_dims'")
    assert proc.stdout == "" and not (tmp_path / "runs").exists()
    assert time.perf_counter() - start < 60
