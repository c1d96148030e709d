"""`--help` and argument errors answer before TensorFlow is imported (the import alone takes
seconds), and the lazy package and registries still give every component by name.

Each case runs in a fresh interpreter, as a user's command does, and reports whether
`tensorflow` is in `sys.modules` when the app has answered.
"""

import json
import os
import subprocess
import sys

import pytest

from tfvae.apps import _train_args
from tfvae.apps import _train_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = """
import json, runpy, sys
sys.argv = [{module!r}] + {argv!r}
code = 0
try:
    runpy.run_module({module!r}, run_name="__main__")
except SystemExit as e:
    code = e.code or 0
sys.stdout.flush()
print("\\n" + json.dumps({{"code": code, "tensorflow": "tensorflow" in sys.modules}}))
"""


def probe(module, argv, cwd):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", PROBE.format(module=module, argv=argv)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=cwd)
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc


APPS = ["train", "evaluate", "sample", "latent", "tensorboard", "attributes"]


@pytest.mark.parametrize("app", APPS)
def test_help_does_not_import_tensorflow(app, tmp_path):
    result, proc = probe(f"tfvae.apps.{app}", ["--help"], tmp_path)
    assert result == {"code": 0, "tensorflow": False}, proc.stderr
    assert proc.stdout.startswith("usage: tfvae-"), proc.stdout[:200]
    assert proc.stderr == "", proc.stderr


ARGUMENT_ERRORS = [
    ("train", ["--epochs", "three"], "--epochs"),
    ("train", ["--no-such-flag"], "unrecognized arguments"),
    ("train", ["--model", "avb", "--critic-steps", "x"], "--critic-steps"),
    ("train", ["--posterior", "ful_covariance"], "--posterior"),
    ("evaluate", ["--num-samples", "many"], "--num-samples"),
    ("sample", ["--num", "1.5"], "--num"),
    ("latent", ["--dim", "2"], "required: --model, --out"),
    ("tensorboard", ["--port", "http"], "--port"),
    ("attributes", ["--model", "m", "--attribute", "x", "--oops"], "unrecognized arguments"),
]


@pytest.mark.parametrize("app,argv,names", ARGUMENT_ERRORS)
def test_argument_errors_do_not_import_tensorflow(app, argv, names, tmp_path):
    result, proc = probe(f"tfvae.apps.{app}", argv, tmp_path)
    assert result == {"code": 2, "tensorflow": False}, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"tfvae-{app}: error: ") and names in proc.stderr
    assert os.listdir(tmp_path) == []


def test_the_flag_snapshot_matches_the_components():
    # The train app builds its parser from tfvae/apps/_train_flags.py until a component is
    # imported; a signature or docstring change must be followed by `make flags`.
    live = _train_args.snapshot()
    assert live["models"] == _train_flags.SNAPSHOT["models"], "run `make flags`"
    for name in live["models"]:
        cold = _train_args.parser_spec(name)  # components are imported: this is live ...
        stored = _train_flags.SNAPSHOT["model_flags"][name]  # ... and this the snapshot
        assert [_train_flags.SNAPSHOT["flags"][i] for i in stored["flags"]] == cold["flags"], \
            f"model {name!r}: the flag snapshot is stale; run `make flags`"
    assert live == _train_flags.SNAPSHOT, "the flag snapshot is stale; run `make flags`"


def test_a_component_registered_in_process_gets_live_flags():
    # Once anything is registered the snapshot is not used: a plugin model is selectable
    # and its own arguments are flags.
    from tfvae.models.vae import VAE
    from tfvae.registry import MODELS

    @MODELS.register("test_fast_start_model")
    class Plugin(VAE):
        """A plugin model.

        Args:
            plugin_knob: a setting only this model has.
        """

        def __init__(self, plugin_knob=3, **kwargs):
            super().__init__(**kwargs)
            self.plugin_knob = plugin_knob

    try:
        spec = _train_args.parser_spec("test_fast_start_model")
        assert "test_fast_start_model" in spec["models"]
        flags = {f["flag"]: f for f in spec["flags"]}
        assert flags["--plugin-knob"]["kind"] == "int"
        assert "a setting only this model has" in flags["--plugin-knob"]["help"]
        args = _train_args.build_parser(spec).parse_args(["--plugin-knob", "5"])
        assert getattr(args, "model.plugin_knob") == 5
    finally:
        MODELS.unregister("test_fast_start_model")


def test_lazy_package_imports_on_use_and_registries_load_the_builtins(tmp_path):
    code = """
import json, sys
import tfvae
from tfvae.registry import MODELS, POSTERIORS
before = "tensorflow" in sys.modules
names = MODELS.names()
after = "tensorflow" in sys.modules
print(json.dumps({"before": before, "after": after, "models": names,
                  "posteriors": POSTERIORS.names(), "vae": tfvae.VAE.__name__,
                  "dir": "VAE" in dir(tfvae), "data": tfvae.data.__name__}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before"] is False and out["after"] is True
    assert out["models"] == _train_flags.SNAPSHOT["models"]
    assert out["posteriors"] == _train_flags.SNAPSHOT["tables"]["posterior"]
    assert out["vae"] == "VAE" and out["dir"] and out["data"] == "tfvae.data"
    with pytest.raises(AttributeError, match="no_such_thing"):
        import tfvae
        tfvae.no_such_thing  # noqa: B018


@pytest.mark.parametrize("user_value", [None, "4"])
def test_malloc_arenas_are_capped_only_before_tensorflow_and_never_over_the_user(user_value,
                                                                                 tmp_path):
    # glibc fixes its arena limit when a second thread first allocates: the cap is set
    # before TensorFlow's threads exist or not at all, and MALLOC_ARENA_MAX wins.
    code = ("from tfvae.apps import _cli\n"
            "before = _cli.limit_malloc_arenas()\n"
            "import tfvae._tf\n"
            "print(before, _cli.limit_malloc_arenas())\n")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if user_value:
        env["MALLOC_ARENA_MAX"] = user_value
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    glibc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    expected = "True False" if glibc and not user_value else "False False"
    assert proc.stdout.split("\n")[-2] == expected, proc.stdout


def _release_after(setup, cwd):
    """(what release_free_memory returned, MB by which VmRSS fell) in a fresh process, after
    the Python lines `setup` freed memory in some way; None, None off glibc."""
    code = ("import gc\n"
            "import numpy as np\n"
            "from tfvae.apps import _cli\n"
            "def rss():\n"
            "    with open('/proc/self/status') as f:\n"
            "        return next(int(l.split()[1]) for l in f if l.startswith('VmRSS')) / 1024\n"
            + setup +
            "before = rss()\n"
            "released = _cli.release_free_memory()\n"
            "print(released, round(before - rss()))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    released, drop = proc.stdout.split()
    glibc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    if not glibc:
        assert released == "False"
        return None, None
    return released == "True", int(drop)


def test_release_free_memory_returns_freed_heap_pages_to_the_kernel(tmp_path):
    # 192 MB in 64 KB blocks (malloc's heap, below its mmap threshold); every eighth stays
    # alive, so the freed ones are holes that glibc keeps mapped until it is asked to trim.
    released, drop = _release_after("blocks = [np.ones(8192) for _ in range(3072)]\n"
                                    "kept = blocks[::8]\n"
                                    "del blocks\n", tmp_path)
    if released is not None:
        assert released and drop > 120, drop  # 168 MB were freed


def test_release_free_memory_frees_garbage_in_reference_cycles_first(tmp_path):
    # 160 MB in 64 KB blocks held only by a reference cycle, with automatic collection off:
    # nothing but an explicit collection frees them (a trim alone returns nothing). The
    # freed blocks are heap holes: only the trim after the collection returns them.
    released, drop = _release_after("gc.disable()\n"
                                    "cycle = {'blocks': [np.ones(8192) for _ in range(2560)]}\n"
                                    "cycle['self'] = cycle\n"
                                    "del cycle\n", tmp_path)
    if released is not None:
        assert drop > 120, drop  # 160 MB were unreachable
