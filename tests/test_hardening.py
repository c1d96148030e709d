"""Bad inputs to the apps and the library (issue 11): each ends in exit code 2 and exactly one
line on stderr that starts with the app's name, no traceback, nothing written; a diverged
run stops, exports nothing and keeps only finite checkpoints; no NaN model is exported."""

import contextlib
import gc
import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

import tfvae
from tfvae import data, export
from tfvae._tf import tf
from tfvae.apps import evaluate as evaluate_app
from tfvae.apps import sample as sample_app
from tfvae.apps import tensorboard as tensorboard_app
from tfvae.apps import train as train_app

HUGE = "99999999999999999999"
# 2 steps of 32 synthetic images, a 16-unit MLP, no XLA: set-up dominates, as it should.
TINY = ["--dataset", "synthetic", "--latent-dim", "2", "--hidden-units", "16",
        "--batch-size", "32", "--steps-per-epoch", "2", "--epochs", "1", "--test-limit", "32",
        "--export-iwae-samples", "2", "--no-jit", "--verbose", "0",
        "--steps-per-execution", "1"]
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
       "PYTHONUNBUFFERED": "1"}


def files_under(root):
    """Every file below `root` (directories alone do not count as output)."""
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, names in os.walk(root) for f in names)


def one_line_error(capsys, main, argv, prog, *fragments):
    """Runs `main(argv)` in this process; asserts exit 2 and one stderr line; returns it."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (argv, err)
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), (argv, err)
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (argv, lines[0])
    return lines[0]


@pytest.fixture(autouse=True)
def _no_tfds(monkeypatch):
    # No prepared TFDS dataset may stand in for the IDX files these tests write.
    monkeypatch.setattr(data, "_load_tfds", lambda *a, **k: None)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An untrained (finite) 28x28 VAE exported as the train app would, on synthetic data."""
    root = tmp_path_factory.mktemp("export")
    model = tfvae.VAE(latent_dim=2, hidden_units=(16,), posterior="diagonal", seed=0)
    path = root / "model"
    export.save(model, path, iwae_samples=2, metadata={
        "dataset": {"name": "synthetic", "binarize": "static"}})
    return str(path)


def damaged_copy(src, dst, damage):
    shutil.copytree(src, dst)
    damage(dst)
    return str(dst)


def _truncate_variables(path):
    f = os.path.join(path, "variables", "variables.data-00000-of-00001")
    with open(f, "r+b") as h:
        h.truncate(os.path.getsize(f) // 3)


def _scramble_variables(path):
    f = os.path.join(path, "variables", "variables.index")
    size = os.path.getsize(f)
    with open(f, "wb") as h:
        h.write(np.random.default_rng(0).bytes(size))


def _garbage_pb(path):
    with open(os.path.join(path, "saved_model.pb"), "wb") as h:
        h.write(b"\x0a\xff\xff\xff\x0f not a protobuf")


def _metadata(text):
    def write(path):
        with open(os.path.join(path, "metadata.json"), "w") as h:
            h.write(text)
    return write


DAMAGE = {"truncated variables": _truncate_variables, "corrupted index": _scramble_variables,
          "unreadable saved_model.pb": _garbage_pb, "metadata is a list": _metadata("[1, 2]"),
          "metadata not JSON": _metadata("{oops")}


# ---------------------------------------------------------------------------- train: flags

@pytest.mark.parametrize("extra,fragments", [
    (["--batch-size", HUGE], ["`--batch-size` must be at most 2147483647"]),
    (["--epochs", HUGE], ["`--epochs` must be at most"]),
    (["--steps-per-epoch", HUGE], ["`--steps-per-epoch` must be at most"]),
    (["--seed", HUGE], ["`--seed` must be in 0..4294967295"]),
    (["--seed", "-5"], ["`--seed` must be an int >= 0"]),
    (["--latent-dim", "1000000"], ["latent_dim=1000000", "full_covariance", "GiB",
                                   "smaller --latent-dim"]),
    (["--hidden-units", "2000000000"], ["GiB", "--hidden-units"]),
    (["--model", "vae", "--posterior", "implicit"], ["cannot build model 'vae'",
                                                     "implicit posterior", "'avb'"]),
    (["--set", "model.objective='iwae'", "--posterior", "deterministic"],
     ["point mass", "model 'ae'"]),
    (["--set", "model.beta=inf"], ["`beta` must be a finite number"]),
    (["--learning-rate", "inf"], ["`--learning-rate` must be positive"]),
    (["--learning-rate", "nan"], ["`--learning-rate` must be positive"]),
    (["--limit", HUGE], ["`--limit` must be at most"]),
    (["--test-limit", HUGE], ["`--test-limit` must be at most"]),
    (["--steps-per-execution", HUGE], ["`--steps-per-execution` must be at most"]),
    (["--checkpoint-every-steps", HUGE], ["`--checkpoint-every-steps` must be at most"]),
    (["--keep-checkpoints", HUGE], ["`--keep-checkpoints` must be at most"]),
    (["--export-iwae-samples", HUGE], ["`--export-iwae-samples` must be at most"]),
    (["--tensorboard-port", "70000"], ["`--tensorboard-port` must be at most 65535"]),
])
def test_train_refuses_bad_settings_before_writing(tmp_path, capsys, extra, fragments):
    argv = TINY + extra + ["--logdir", str(tmp_path / "runs"),
                           "--export-dir", str(tmp_path / "saved")]
    one_line_error(capsys, train_app.main, argv, "tfvae-train", *fragments)
    assert files_under(tmp_path) == []


# ---------------------------------------------------------------------------- train: data

def _idx_set(root, images=None, labels=None, image_dtype=np.uint8, gz=True):
    """fashion_mnist IDX files under root/fashion_mnist/: 8 train and 4 test images."""
    d = root / "fashion_mnist"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, n in (("train", 8), ("t10k", 4)):
        x = rng.integers(0, 256, (n, 28, 28)) if images is None else images(n)
        y = rng.integers(0, 10, n) if labels is None else labels(n)
        extra = () if image_dtype is np.uint8 else (image_dtype,)  # the default: uint8
        data.write_idx(d / f"{split}-images-idx3-ubyte{suffix}", x, *extra)
        data.write_idx(d / f"{split}-labels-idx1-ubyte{suffix}", y)
    return d


def _truncated_gz(root):
    d = _idx_set(root)
    f = d / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:200])
    return f.name


def _not_gzip(root):
    d = _idx_set(root)
    (d / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data at all")
    return "train-images-idx3-ubyte.gz"


def _nan_pixels(root):
    def images(n):
        x = np.full((n, 28, 28), 0.5)
        x[0, 0, :3] = np.nan
        x[1, 1, 1] = np.inf
        return x
    _idx_set(root, images=images, image_dtype=np.float32)
    return "4 of 6272 pixel values are NaN or infinite"


def _dangling(root):
    d = _idx_set(root)
    os.remove(d / "train-labels-idx1-ubyte.gz")
    os.symlink(root / "missing.gz", d / "train-labels-idx1-ubyte.gz")
    return "symbolic link"


DATA_CASES = {
    "truncated .gz": (_truncated_gz, ["train-images-idx3-ubyte.gz", "truncated or damaged"]),
    "not gzip": (_not_gzip, ["train-images-idx3-ubyte.gz", "download it again"]),
    "zero images": (lambda r: _idx_set(r, images=lambda n: np.zeros((0, 28, 28))),
                    ["holds no images"]),
    "labels out of range": (lambda r: _idx_set(r, labels=lambda n: np.full(n, 12)),
                            ["train-labels-idx1-ubyte.gz", "label(s) outside 0..9",
                             "the first: 12 at index 0"]),
    "int16 pixels": (lambda r: _idx_set(r, image_dtype=np.int16),
                     ["pixels are int16", "convert the file to uint8"]),
    "NaN/Inf float pixels": (_nan_pixels, ["train-images-idx3-ubyte.gz"]),
    "32x32 images": (lambda r: _idx_set(r, images=lambda n: np.zeros((n, 32, 32))),
                     ["images are 32x32 but fashion_mnist images are 28x28"]),
    "dangling symlink": (_dangling, ["train-labels-idx1-ubyte.gz"]),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_idx_files_are_one_line_naming_the_file(tmp_path, capsys, monkeypatch, case):
    make, fragments = DATA_CASES[case]
    hint = make(tmp_path / "data")
    fragments = fragments + ([hint] if isinstance(hint, str) else [])
    monkeypatch.setenv("TFVAE_DATA_DIR", str(tmp_path / "data"))
    argv = TINY + ["--dataset", "fashion_mnist", "--logdir", str(tmp_path / "out" / "runs"),
                   "--export-dir", str(tmp_path / "out" / "saved")]
    one_line_error(capsys, train_app.main, argv, "tfvae-train", *fragments)
    assert files_under(tmp_path / "out") == []
    with pytest.raises(ValueError, match="fashion_mnist"):  # the library says the same
        data.load_arrays("fashion_mnist", "train")


def test_missing_dataset_names_what_the_app_accepts(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TFVAE_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setitem(data.IDX_DATASETS, "mnist", [])
    line = one_line_error(capsys, train_app.main,
                          TINY + ["--dataset", "mnist", "--logdir", str(tmp_path / "runs"),
                                  "--export-dir", str(tmp_path / "saved")],
                          "tfvae-train", "dataset 'mnist' not found",
                          str(tmp_path / "empty" / "mnist"), "tfds build mnist")
    assert "data_dir" not in line and "download=True" not in line  # library-only arguments


def test_good_idx_files_still_load(tmp_path, monkeypatch):
    _idx_set(tmp_path)
    monkeypatch.setenv("TFVAE_DATA_DIR", str(tmp_path))
    x, y = data.load_arrays("fashion_mnist", "train")
    assert x.shape == (8, 28, 28, 1) and x.dtype == np.uint8 and y.max() < 10


# ---------------------------------------------------------------------------- NaN

def test_nan_weights_are_never_exported(tmp_path):
    model = tfvae.VAE(latent_dim=2, hidden_units=(8,), posterior="diagonal", seed=0)
    variable = model.decoder.trainable_variables[0]
    variable.assign(tf.tensor_scatter_nd_update(variable, [[0, 0]], [np.nan]))
    with pytest.raises(ValueError, match=f"variable {variable.name!r} has 1 NaN/Inf"):
        export.save(model, tmp_path / "m")
    assert os.listdir(tmp_path) == []


def test_training_leaves_nothing_frozen_whether_it_ends_or_raises(tmp_path, monkeypatch):
    # The train app freezes the objects alive after the first train call (gc.freeze), so
    # that each epoch's collection scans only newer ones. Both ends of training must thaw
    # them: a frozen object is never collected, whatever it holds.
    from tfvae import callbacks as callbacks_lib
    from tfvae._tf import tfk
    seen = []

    class Probe(tfk.callbacks.Callback):
        def __init__(self, interrupt):
            super().__init__()
            self.interrupt = interrupt

        def on_epoch_end(self, epoch, logs=None):
            seen.append(gc.get_freeze_count())
            if self.interrupt:  # Keras then skips on_train_end
                raise KeyboardInterrupt

    assert gc.get_freeze_count() == 0
    for interrupt, code in ((False, 0), (True, 130)):
        monkeypatch.setattr(callbacks_lib, "extra_callbacks",
                            lambda model, context, i=interrupt: [Probe(i)])
        argv = TINY + ["--logdir", str(tmp_path / "runs"), "--no-export", "--fresh"]
        assert train_app.main(argv) == code
        assert gc.get_freeze_count() == 0, interrupt
    assert len(seen) == 2 and min(seen) > 1000, seen  # frozen while training ran


def test_diverging_run_stops_keeps_finite_checkpoints_and_exports_nothing(tmp_path, capsys):
    argv = TINY + ["--learning-rate", "1e6", "--steps-per-epoch", "6", "--epochs", "2",
                   "--checkpoint-every-steps", "1", "--run-name", "r",
                   "--logdir", str(tmp_path / "runs"), "--export-dir", str(tmp_path / "saved")]
    line = one_line_error(capsys, train_app.main, argv, "tfvae-train",
                          "training diverged at step", " nan", "lower --learning-rate",
                          "nothing was exported")
    assert not os.path.exists(tmp_path / "saved" / "r")
    step = int(line.split("training diverged at step ")[1].split()[0])
    assert 1 <= step <= 6  # stopped in the first epoch, not after both
    ckpt = tf.train.latest_checkpoint(str(tmp_path / "runs" / "r" / "checkpoints"))
    if ckpt is None:
        assert "no checkpoint was written" in line
    else:
        assert f"the last finite checkpoint is kept in {ckpt}" in line
        reader = tf.train.load_checkpoint(ckpt)
        for name, dtype in reader.get_variable_to_dtype_map().items():
            if dtype.is_floating:
                assert np.isfinite(reader.get_tensor(name)).all(), name


def test_interrupted_checkpoint_writes_are_removed_at_start(tmp_path):
    d = tmp_path / "checkpoints"
    (d / "ckpt-7_temp").mkdir(parents=True)
    (d / "ckpt-7_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half")
    (d / "ckpt-6.index").write_bytes(b"kept")
    train_app.remove_partial_checkpoints(str(d))
    assert os.listdir(d) == ["ckpt-6.index"]


# ---------------------------------------------------------------------------- evaluate, sample

@pytest.mark.parametrize("extra,fragments", [
    (["--seed", "-5"], ["`--seed` must be an int in 0..4294967295; got -5"]),
    (["--seed", HUGE], ["`--seed` must be an int in 0.."]),
    (["--num-samples", HUGE], ["`--num-samples` must be an int in 1..2147483647"]),
    (["--batch-size", HUGE], ["`--batch-size` must be an int in 1.."]),
    (["--num-examples", HUGE], ["`--num-examples` must be an int in 1.."]),
])
def test_evaluate_refuses_huge_and_negative_numbers(exported, tmp_path, capsys, extra,
                                                    fragments):
    argv = ["--model", exported, "--out", str(tmp_path / "ev")] + extra
    one_line_error(capsys, evaluate_app.main, argv, "tfvae-evaluate", *fragments)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_exports_are_one_line_in_evaluate_and_sample(exported, tmp_path, capsys,
                                                             damage):
    path = damaged_copy(exported, tmp_path / "model", DAMAGE[damage])
    one_line_error(capsys, evaluate_app.main, ["--model", path, "--num-examples", "4",
                                               "--num-samples", "2", "--out",
                                               str(tmp_path / "ev")],
                   "tfvae-evaluate", repr(path))
    assert not os.path.exists(tmp_path / "ev")
    one_line_error(capsys, sample_app.main, ["--model", path, "--num", "4", "--out",
                                             str(tmp_path / "s.png")],
                   "tfvae-sample", repr(path) if "metadata" not in damage else "metadata.json")
    assert not os.path.exists(tmp_path / "s.png") and not os.path.exists(tmp_path / "s.png.tmp")


def test_exports_follow_the_umask(exported):
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(exported).st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's 0700


def test_metadata_that_is_no_object_is_a_value_error(exported, tmp_path):
    path = damaged_copy(exported, tmp_path / "model", _metadata("[1]"))
    with pytest.raises(ValueError, match="must hold a JSON object"):
        export.load_metadata(path)


@pytest.mark.parametrize("extra,fragments", [
    (["--num", "3000000000"], ["`--num` must be an int in 1..2147483647"]),
    (["--num", "2000000000"], ["GiB", "ask for fewer"]),
    (["--seed", "-1"], ["`--seed` must be an int in 0.."]),
    (["--cols", HUGE], ["`--cols` must be an int in 1.."]),
    (["--num", "0"], ["`--num` must be a positive int"]),
])
def test_sample_refuses_sizes_beyond_the_machine(exported, tmp_path, capsys, extra, fragments):
    argv = ["--model", exported, "--out", str(tmp_path / "s.png")] + extra
    one_line_error(capsys, sample_app.main, argv, "tfvae-sample", *fragments)
    assert files_under(tmp_path) == []


def test_evaluate_refuses_images_of_another_shape(tmp_path, capsys, monkeypatch):
    model = tfvae.VAE(latent_dim=2, hidden_units=(8,), posterior="diagonal",
                      input_shape=(32, 32, 1), seed=0)
    export.save(model, tmp_path / "m32", iwae_samples=2,
                metadata={"dataset": {"name": "synthetic", "binarize": "static"}})
    _idx_set(tmp_path / "data")
    monkeypatch.setenv("TFVAE_DATA_DIR", str(tmp_path / "data"))
    one_line_error(capsys, evaluate_app.main,
                   ["--model", str(tmp_path / "m32"), "--dataset", "fashion_mnist",
                    "--out", str(tmp_path / "ev")],
                   "tfvae-evaluate", "images are [28, 28, 1] but the model takes [32, 32, 1]")
    assert not os.path.exists(tmp_path / "ev")


# ---------------------------------------------------------------------------- TensorBoard

def test_tensorboard_on_a_port_in_use_is_one_line(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        one_line_error(capsys, tensorboard_app.main,
                       ["--logdir", str(tmp_path / "runs"), "--port", str(port)],
                       "tfvae-tensorboard", f"port {port} on 127.0.0.1 is already in use")


def test_train_tensorboard_port_in_use_leaves_no_run_behind(tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        argv = TINY + ["--tensorboard", "--tensorboard-port", str(port), "--run-name", "r",
                       "--logdir", str(tmp_path / "runs"), "--export-dir", str(tmp_path / "s")]
        one_line_error(capsys, train_app.main, argv, "tfvae-train",
                       "cannot start TensorBoard", f"port {port} on 127.0.0.1 is already in use")
    assert files_under(tmp_path) == []  # the run folder made during set-up is gone


@pytest.mark.parametrize("argv,fragment", [
    (["--port", "70000"], "`--port` must be in 1..65535"),
    (["--logdir", "/nonexistent/runs"], "`--logdir` '/nonexistent/runs' is not a directory"),
])
def test_tensorboard_refuses_bad_flags(tmp_path, capsys, argv, fragment):
    argv = ["--logdir", str(tmp_path)] + argv
    one_line_error(capsys, tensorboard_app.main, argv, "tfvae-tensorboard", fragment)


def test_the_library_names_the_damaged_file(tmp_path):
    f = tmp_path / "x.gz"
    data.write_idx(f, np.zeros((4, 28, 28)))
    f.write_bytes(f.read_bytes()[:30])
    with pytest.raises(ValueError, match=f"{f}: cannot decompress it"):
        data.read_idx(f)
    (tmp_path / "metadata.json").write_text("{oops")
    with pytest.raises(ValueError, match="metadata.json is not valid JSON"):
        export.load_metadata(tmp_path)


# ---------------------------------------------------------------------------- full disk

@contextlib.contextmanager
def small_disk(path, size="48k"):
    """A tmpfs of `size` at `path` (root only; the test is skipped elsewhere)."""
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_full_disk_during_evaluate_out_is_one_line_and_leaves_nothing(exported, tmp_path,
                                                                       capsys):
    with small_disk(tmp_path / "disk", "16k") as disk:
        out = disk / "ev"
        one_line_error(capsys, evaluate_app.main,
                       ["--model", exported, "--num-examples", "8", "--num-samples", "2",
                        "--out", str(out)],
                       "tfvae-evaluate", "cannot write the results to --out",
                       "No space left on device")
        assert files_under(disk) == []


def test_full_disk_during_a_library_export_leaves_nothing(tmp_path):
    model = tfvae.VAE(latent_dim=2, hidden_units=(8,), posterior="diagonal", seed=0)
    with small_disk(tmp_path / "disk", "16k") as disk:
        with pytest.raises(Exception, match="No space left on device"):
            export.save(model, disk / "m", iwae_samples=2)
        assert files_under(disk) == []


@pytest.mark.slow
def test_full_disk_during_export_is_one_line_and_leaves_no_partial_export(tmp_path, capsys):
    with small_disk(tmp_path / "disk", "64k") as disk:
        argv = TINY + ["--run-name", "r", "--logdir", str(tmp_path / "runs"),
                       "--export-dir", str(disk)]
        one_line_error(capsys, train_app.main, argv, "tfvae-train",
                       f"cannot export to {str(disk / 'r')!r}", "No space left on device")
        assert os.listdir(disk) == []
    # The run itself finished and is resumable: its checkpoint is there.
    assert tf.train.latest_checkpoint(str(tmp_path / "runs" / "r" / "checkpoints"))


def test_full_disk_under_logdir_is_one_line(tmp_path, capsys):
    with small_disk(tmp_path / "disk", "64k") as disk:
        argv = TINY + ["--run-name", "r", "--logdir", str(disk),
                       "--export-dir", str(tmp_path / "saved")]
        one_line_error(capsys, train_app.main, argv, "tfvae-train", "--logdir",
                       "No space left on device")
    assert files_under(tmp_path / "saved") == []


# ---------------------------------------------------------------------------- real processes

def run_app(module, argv, cwd):
    # The environment a user has: no TF_CPP_MIN_LOG_LEVEL, no CUDA_VISIBLE_DEVICES (on a
    # machine with CUDA libraries and no GPU the device probe logs "failed call to cuInit").
    env = {k: v for k, v in ENV.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    return subprocess.run([sys.executable, "-m", module, *argv], capture_output=True,
                          text=True, env=env, timeout=300, cwd=cwd)


@pytest.mark.parametrize("app", ["train", "evaluate"])
def test_help_prints_no_tensorflow_log_line(app, tmp_path):
    proc = run_app(f"tfvae.apps.{app}", ["--help"], tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: tfvae-"), proc.stderr
    assert proc.stderr == "", proc.stderr


def test_huge_batch_size_in_a_real_process(tmp_path):
    proc = run_app("tfvae.apps.train", TINY + ["--batch-size", HUGE], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("tfvae-train: error: `--batch-size` must be at most")
    assert files_under(tmp_path) == []


@pytest.mark.slow
def test_divergence_in_a_real_process(tmp_path):
    proc = run_app("tfvae.apps.train", TINY + ["--learning-rate", "1e6", "--run-name", "r",
                                               "--steps-per-epoch", "4"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("tfvae-train: error: training diverged at step ")
    assert not os.path.exists(tmp_path / "saved_models" / "r")


def test_rerunning_a_finished_run_prints_no_checkpoint_warnings(tmp_path, capsys, caplog):
    import gc
    argv = TINY + ["--run-name", "r", "--no-export", "--logdir", str(tmp_path / "runs"),
                   "--export-dir", str(tmp_path / "saved")]
    assert train_app.main(argv) == 0
    capsys.readouterr()
    caplog.clear()
    assert train_app.main(argv) == 0  # already trained: restores, evaluates, trains nothing
    gc.collect()  # the restore status warns when it is freed
    logged = capsys.readouterr().err + caplog.text
    assert "could not be found" not in logged, logged[:500]


def test_dry_run_refuses_what_the_real_run_refuses_and_names_the_run(tmp_path, capsys):
    dirs = ["--logdir", str(tmp_path / "runs"), "--export-dir", str(tmp_path / "saved")]
    one_line_error(capsys, train_app.main, TINY + dirs + ["--dry-run", "--posterior",
                                                          "implicit"],
                   "tfvae-train", "implicit posterior")
    one_line_error(capsys, train_app.main, TINY + dirs + ["--dry-run", "--latent-dim",
                                                          "1000000"],
                   "tfvae-train", "GiB")
    assert train_app.main(TINY + dirs + ["--dry-run"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["binarize"] == "static" and shown["run_name"] is not None
    assert shown["validation_split"] == 204  # resolved: a tenth of synthetic's 2048
    one_line_error(capsys, train_app.main, TINY + dirs + ["--dry-run", "--validation-split",
                                                          "2048"],
                   "tfvae-train", "holds out every one of the 2048 training images")
    assert files_under(tmp_path) == []
    assert train_app.main(TINY + dirs + ["--no-export"]) == 0
    assert os.listdir(tmp_path / "runs") == [shown["run_name"]]  # the name the real run took


def test_evaluate_writes_outside_the_export_by_default(exported, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = files_under(exported)
    assert evaluate_app.main(["--model", exported, "--num-examples", "4",
                              "--num-samples", "2"]) == 0
    assert (tmp_path / "evaluations" / "model" / "evaluation.json").exists()
    assert files_under(exported) == before  # the export is left as it was


def test_hparams_hold_hyperparameters_only(tmp_path, monkeypatch):
    written = {}
    monkeypatch.setattr(train_app.callbacks_lib, "write_hparams",
                        lambda run_dir, hparams, name: written.update(hparams))
    assert train_app.main(TINY + ["--no-export", "--logdir", str(tmp_path / "runs"),
                                  "--export-dir", str(tmp_path / "saved")]) == 0
    assert {"learning_rate", "batch_size", "seed", "epochs", "latent_dim", "model"} <= set(written)
    assert not {"dry_run", "export", "export_dir", "fresh", "logdir", "run_name"} & set(written)


def test_every_app_has_its_console_script():
    import importlib
    import pkgutil
    import tomllib
    from tfvae import apps
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    names = {m.name for m in pkgutil.iter_modules(apps.__path__) if not m.name.startswith("_")}
    assert {f"tfvae-{n}" for n in names} == set(scripts)
    for script, target in scripts.items():
        module, func = target.split(":")
        assert module == f"tfvae.apps.{script[len('tfvae-'):]}"
        module = importlib.import_module(module)
        assert callable(getattr(module, func)) and module.PROG == script


def test_decode_refuses_non_finite_latents():
    model = tfvae.VAE(latent_dim=2, hidden_units=(8,), posterior="diagonal", seed=0)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="`z` contains NaN or Inf"):
            model.decode(np.array([[0.0, bad]], np.float32))
    assert model.decode(np.zeros((1, 2), np.float32)).mean().shape == (1, 28, 28, 1)
