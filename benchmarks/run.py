"""The side-by-side benchmark: tfvae against the baselines, same data, same machine, one run.

    python benchmarks/run.py                 # full protocol: Fashion-MNIST, 10 epochs
    python benchmarks/run.py --quick         # smoke run: synthetic data, 1 epoch, small k
    python benchmarks/run.py --contenders tfp_layers,tfvae_full_plain --epochs 3 --rounds 3
    python benchmarks/run.py --contenders tfvae_main_job,tfp_layers,torch --rounds 2 \
        --nll-examples 100 --torch-python /path/to/venv-with-torch/bin/python --drop-caches

Every contender runs in its own process (so peak RSS is its own) on the same binarized
data, MLP 784-512-256-32, Adam 1e-3, batch 128. The table reports training images/s (the
median epoch after the first), the ratio to each baseline, peak RSS, test -ELBO, test NLL
(importance sampling, k = 1000 on the first 1000 test images) and evaluation images/s.
Timings on a shared machine drift, so the contenders run in an interleaved order and only
ratios within one run mean anything. With `--rounds R` the whole list runs R times (A B A B
...); the table's images/s is then each contender's median over the rounds (its other
columns are the last round's), and a note gives every round's ratio to the baseline (a pair
run back to back) and their median.

The third command is the scale-down comparison: the main job as users run it (`python -m
tfvae.apps.train`, defaults, peak RSS by phase: benchmarks/memory_profile.py) beside the
TFP-layers pattern and a minimal PyTorch VAE (`baselines/torch_vae.py`, in an interpreter
that has PyTorch), and the peak RSS of `import tensorflow` alone.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from benchmarks.common import RESULT_PREFIX  # noqa: E402

#: The environment of every child process: this one's when this module is imported. Run as
#: a script, that is before `_write_data` imports tfvae, which sets TF_USE_LEGACY_KERAS=1
#: (and TensorFlow's import sets more); imported by a process that has imported tfvae (the
#: tests), it carries the variable, which only the import floor below must not see.
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

CONTENDERS = {
    "tfp_layers": [os.path.join(HERE, "baselines", "tfp_layers.py")],
    "tfvae_full_xla": [os.path.join(HERE, "protocol.py"), "--posterior", "full_covariance",
                       "--jit"],
    "keras3": [os.path.join(HERE, "baselines", "keras3_vae.py")],
    "tfvae_diag_xla": [os.path.join(HERE, "protocol.py"), "--posterior", "diagonal", "--jit"],
    "tfvae_full": [os.path.join(HERE, "protocol.py"), "--posterior", "full_covariance"],
    # a plain compile(optimizer=Adam(1e-3)) and fit: the library's defaults
    "tfvae_full_plain": [os.path.join(HERE, "protocol.py"), "--posterior", "full_covariance",
                         "--plain"],
    "tfvae_diag": [os.path.join(HERE, "protocol.py"), "--posterior", "diagonal"],
    # the main job itself, `python -m tfvae.apps.train` with its defaults, by phase
    "tfvae_main_job": [os.path.join(HERE, "memory_profile.py")],
    # run with --torch-python, an interpreter that has PyTorch
    "torch": [os.path.join(HERE, "baselines", "torch_vae.py")],
}
BASELINES = {"tfp_layers": "TFP layers", "keras3": "Keras 3", "torch": "PyTorch"}
#: the contenders of a plain `run.py` (the main job and PyTorch on request)
DEFAULT_CONTENDERS = [n for n in CONTENDERS if n not in ("tfvae_main_job", "torch")]


def _write_data(path, dataset, limit):
    import numpy as np
    from tfvae import data
    x_train, _ = data.load_arrays(dataset, "train")
    x_test, _ = data.load_arrays(dataset, "test")
    x_train = x_train[:limit] if limit else x_train
    # FMNIST-bin: pixels / 255 thresholded at 0.5, stored as uint8 {0, 1}.
    np.savez(path, x_train=(x_train > 127.5).astype(np.uint8),
             x_test=(x_test > 127.5).astype(np.uint8))
    return len(x_train)


def _argv(name, args, npz):
    """The contender's command line (after the interpreter) for run.py's settings."""
    if name == "tfvae_main_job":  # the train app's own flags, after memory_profile's
        argv = list(CONTENDERS[name]) + ["--epochs", str(args.epochs), "--", "--dataset",
                                          args.dataset]
        return argv + (["--limit", str(args.limit)] if args.limit else [])
    argv = list(CONTENDERS[name]) + ["--epochs", str(args.epochs), "--nll-samples",
                                     str(args.nll_samples), "--nll-examples",
                                     str(args.nll_examples)]
    argv += ["--data", npz] if name in BASELINES else ["--dataset", args.dataset]
    if args.limit and name not in BASELINES:
        argv += ["--limit", str(args.limit)]
    if name == "tfvae_full_xla":
        argv.append("--compare-eval")
    return argv


def drop_page_cache():
    """Writes back and drops the kernel's clean page cache (root only), so every contender
    maps its shared libraries from the same state: a file just written (an install) is
    mapped in larger pieces and reads ~100 MB more RSS (README.md, "Several devices and
    clusters"). Raises PermissionError where it may not."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("1\n")


def import_tensorflow_peak_mb(python=sys.executable):
    """Peak RSS (MB, VmHWM) of a fresh process that only imports TensorFlow: the floor under
    every TensorFlow contender. In the user's environment, without the TF_USE_LEGACY_KERAS=1
    that importing tfvae sets here: with it, TensorFlow's import skips Keras 3 (~80 MB less)."""
    code = ("import tensorflow; from benchmarks.common import peak_rss_mb; "
            "print(peak_rss_mb())")
    env = {k: v for k, v in CHILD_ENV.items() if k != "TF_USE_LEGACY_KERAS"}
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True,
                         env=env, cwd=os.path.dirname(HERE)).stdout
    return float(out.split()[-1])


def refuse_unusable(parser, kind, torch, torch_python, drop_caches):
    """`parser.error` (one line, exit 2) before anything runs: a torch `kind` (contender,
    baseline) whose interpreter cannot import PyTorch, or --drop-caches without root."""
    if torch and subprocess.run([torch_python, "-c", "import torch"],
                                capture_output=True).returncode != 0:
        parser.error(f"the torch {kind} needs PyTorch, which {torch_python} cannot import: "
                     "pass --torch-python with an interpreter that has it (e.g. a venv with "
                     "`pip install torch numpy`)")
    if drop_caches:
        try:
            drop_page_cache()
        except OSError as e:
            parser.error(f"--drop-caches needs root (writing /proc/sys/vm/drop_caches): {e}")


def _as_protocol_row(result):
    """A main-job result line (memory_profile.py) in the fields of the table's rows."""
    elbo = result.get("test_elbo")
    return {**result, "contender": "tfvae main job (train app defaults)",
            "test_neg_elbo": -elbo if elbo is not None else float("nan"),
            "test_nll": float("nan"), "eval_images_per_s": float("nan")}


def result_of(proc, what):
    """The last result line (common.RESULT_PREFIX) of a finished child as a dict; a
    RuntimeError naming `what` with the end of its output if it failed or printed none."""
    lines = [l for l in proc.stdout.splitlines() if l.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): " + " | ".join(tail))
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def _run(name, argv, timeout, python=sys.executable):
    t0 = time.time()
    proc = subprocess.run([python, *argv], capture_output=True, text=True,
                          timeout=timeout, env=CHILD_ENV)
    result = result_of(proc, f"contender {name}")
    if name == "tfvae_main_job":
        result = _as_protocol_row(result)
    result["wall_s"] = round(time.time() - t0, 1)
    if "--nll-samples" in argv:
        result["nll_samples"] = int(argv[argv.index("--nll-samples") + 1])
    return result


def _cell(value, spec):
    """A table cell: `value` formatted, or "-" for NaN (a figure the contender has not)."""
    return "-" if value != value else format(value, spec)


def table(results, machine):
    base = {k: results[k]["train_images_per_s"] for k in BASELINES if k in results}
    head = ["contender", "train img/s"] + [f"x {v}" for k, v in BASELINES.items() if k in base]
    k = next((r["nll_samples"] for r in results.values() if "nll_samples" in r), "?")
    head += ["peak RSS MB", "test -ELBO", f"test NLL (k={k})", "eval img/s"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        cells = [r["contender"], f"{r['train_images_per_s']:.0f}"]
        cells += [f"{r['train_images_per_s'] / v:.2f}" for v in base.values()]
        cells += [f"{r['peak_rss_mb']:.0f}", f"{r['test_neg_elbo']:.2f}",
                  _cell(r["test_nll"], ".2f"), _cell(r["eval_images_per_s"], ".1f")]
        rows.append("| " + " | ".join(cells) + " |")
    loops = [r for r in results.values() if "loop_eval_images_per_s" in r]
    notes = [f"Machine: {machine}."]
    main = results.get("tfvae_main_job")
    if main is not None:
        notes.append("tfvae main job: `python -m tfvae.apps.train` with its defaults "
                     "(validation images held out of the training split; validation, the "
                     "epoch-end diagnostics, checkpoints and the export included in its peak), "
                     "peak RSS by phase (import / data / first compiled step / end): "
                     + " / ".join(f"{v:.0f}" for v in main["peak_rss_by_phase_mb"].values())
                     + " MB.")
    for b, label in BASELINES.items():
        rounds = results.get(b, {}).get("train_images_per_s_rounds", [])
        for name, r in results.items():
            own = r.get("train_images_per_s_rounds", [])
            if name == b or len(own) < 2 or len(own) != len(rounds):
                continue
            ratios = [x / y for x, y in zip(own, rounds)]
            notes.append(f"{r['contender']} over {len(own)} rounds, x {label} per round: "
                         + ", ".join(f"{x:.2f}" for x in ratios)
                         + f" (median {statistics.median(ratios):.2f}; img/s "
                         + " / ".join(f"{x:.0f}" for x in own) + " against "
                         + " / ".join(f"{x:.0f}" for x in rounds) + ").")
    for r in loops:
        notes.append(f"IWAE evaluation, {r['contender']}: chunked estimator "
                     f"{r['eval_images_per_s']:.1f} img/s vs straightforward loop over samples "
                     f"{r['loop_eval_images_per_s']:.2f} img/s "
                     f"({r['eval_images_per_s'] / r['loop_eval_images_per_s']:.0f}x; NLL on the "
                     f"first {r['loop_examples']} test images "
                     f"{r['chunked_test_nll_same_examples']:.2f} vs {r['loop_test_nll']:.2f}).")
    return "\n".join(rows) + "\n\n" + "\n".join(notes)


def main(argv=None):
    p = argparse.ArgumentParser(description="tfvae vs baselines on the benchmark protocol")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--quick", action="store_true",
                   help="synthetic data (512 images), 2 epochs, k=10 on 20 test images: "
                        "checks the plumbing, measures nothing")
    p.add_argument("--contenders", default=",".join(DEFAULT_CONTENDERS),
                   help=f"comma-separated subset of {list(CONTENDERS)}")
    p.add_argument("--nll-samples", type=int, default=1000)
    p.add_argument("--nll-examples", type=int, default=1000)
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per contender")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the contender list this many times, interleaved; report the "
                        "median images/s and each round's ratio to the baseline")
    p.add_argument("--torch-python", default=sys.executable,
                   help="the interpreter of the `torch` contender (one with PyTorch; "
                        "default: this one)")
    p.add_argument("--drop-caches", action="store_true",
                   help="drop the page cache before each contender (root), so peak RSS "
                        "does not depend on which library files were written recently")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1; got {args.rounds}")
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CONTENDERS))
    if unknown:
        p.error(f"unknown contenders {unknown}; expected a subset of {list(CONTENDERS)}")
    if args.quick:
        args.dataset, args.epochs, args.limit = "synthetic", min(args.epochs, 2), 512
        args.nll_samples, args.nll_examples = 10, 20
    refuse_unusable(p, "contender", "torch" in names, args.torch_python, args.drop_caches)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "data.npz")
        _write_data(npz, args.dataset, args.limit)
        rounds = {}
        if "tfvae_main_job" in names:
            if args.drop_caches:
                drop_page_cache()
            import_mb = import_tensorflow_peak_mb()
        for name in [n for _ in range(args.rounds) for n in names]:
            if args.drop_caches:
                drop_page_cache()
            print(f"running {name} ...", file=sys.stderr, flush=True)
            result = _run(name, _argv(name, args, npz), args.timeout,
                          args.torch_python if name == "torch" else sys.executable)
            # Each result as soon as it exists: a long run that is cut short keeps them.
            print(json.dumps({name: result}), file=sys.stderr, flush=True)
            rounds.setdefault(name, []).append(result["train_images_per_s"])
            if len(rounds[name]) > 1:
                result["train_images_per_s_rounds"] = list(rounds[name])
                result["train_images_per_s"] = statistics.median(rounds[name])
            results[name] = result
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"Python {platform.python_version()}; dataset {args.dataset}, "
               f"{args.epochs} epochs")
    text = table(results, machine)
    if "tfvae_main_job" in names:
        text += f"\n`import tensorflow` alone, in a fresh process: peak RSS {import_mb:.0f} MB."
    if args.drop_caches:
        text += "\nThe page cache was dropped before each contender."
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
