"""The main job at several revisions of tfvae beside the baselines, in one run.

    python benchmarks/speed_history.py --revs 64645dd,HEAD --rounds 2 \
        --torch-python /path/to/venv-with-torch/bin/python --drop-caches

Whether a change cost speed is a question about two revisions of tfvae, and a shared
machine's speed drifts by more than the answer, so it is only answered by running the old
code and the new one on the same machine, in the same run. Each revision
is checked out in a temporary git worktree and its main job (`python -m tfvae.apps.train`,
defaults, FMNIST-bin) is timed by `main_job_any.py`, the same script for every revision;
the baselines are run.py's (`tfp_layers`, `torch`, on the same binarized images), and
`--others` adds run.py's other contenders from this checkout (`tfvae_full_plain`: a plain
compile and fit).

By default a round runs in lockstep (`_lockstep.py`): all its contenders start at once and
take turns, one chunk of `--lockstep` training steps each, so chunk k of every contender is
timed within seconds of the others'. A contender's figure against a baseline is then the
median of its per-chunk ratios (epochs after the first), with the quartiles and each
round's median: drift over minutes cancels within a pair. What does not cancel is a
process's own speed, which can differ from one start of the same program to the next, so
run two rounds or more. `--lockstep 0` runs the contenders one after another, each round
starting one place later, and times whole epochs (ratios per round, as run.py does).
Ten epochs of two revisions, the plain compile and both baselines take ~15 minutes per
round on 2 cores, most of it outside the timed chunks (starting, compiling, evaluating).

Printed: per contender its chunks' images/s (images over seconds, all rounds), its ratio to
each baseline, the last round's peak RSS (VmHWM) and test -ELBO (an upper bound on the test
NLL, nats per image); in sequential mode the median images/s per contender and each round's.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from benchmarks import _lockstep  # noqa: E402
from benchmarks import run as run_lib  # noqa: E402


def _git(*argv):
    return subprocess.run(["git", "-C", ROOT, *argv], check=True, capture_output=True,
                          text=True).stdout.strip()


def main_job_command(tree, epochs, app_args=()):
    """(argv, env, cwd) of `main_job_any.py` with `tree`'s tfvae first on the path
    (`app_args` after its `--`, to the train app)."""
    return ([sys.executable, os.path.join(HERE, "main_job_any.py"), "--epochs", str(epochs),
             "--", *app_args], {**run_lib.CHILD_ENV, "PYTHONPATH": tree}, tree)


def main_job_result(proc, tree):
    """The main job's result line as a dict, checked to come from `tree`'s tfvae."""
    result = run_lib.result_of(proc, f"main job in {tree}")
    if not result["tfvae"].startswith(tree):
        raise RuntimeError(f"the main job ran {result['tfvae']}, not the checkout in {tree}")
    return result


def run_main_job(tree, epochs, timeout, app_args=()):
    """`main_job_any.py` on `tree`, alone; its result line as a dict."""
    argv, env, cwd = main_job_command(tree, epochs, app_args)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)
    return main_job_result(proc, tree)


def summarize(rounds, baselines):
    """Markdown: per contender the median img/s, median per-round ratio to each baseline,
    the last round's peak RSS and test -ELBO; then each round's img/s."""
    names = list(rounds[0])
    head = ["contender", "median img/s"] + [f"x {run_lib.BASELINES[b]}" for b in baselines]
    head += ["peak RSS MB (last round)", "test -ELBO (last round)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        speeds = [r[name]["train_images_per_s"] for r in rounds]
        cells = [name, f"{statistics.median(speeds):,.0f}"]
        for b in baselines:
            ratios = [r[name]["train_images_per_s"] / r[b]["train_images_per_s"]
                      for r in rounds]
            cells.append(f"{statistics.median(ratios):.2f} ("
                         + ", ".join(f"{x:.2f}" for x in ratios) + ")")
        last = rounds[-1][name]
        elbo = last.get("test_neg_elbo", -last["test_elbo"] if last.get("test_elbo") else None)
        cells += [f"{last['peak_rss_mb']:,.0f}", "-" if elbo is None else f"{elbo:.2f}"]
        rows.append("| " + " | ".join(cells) + " |")
    per_round = [f"round {i + 1}: " + ", ".join(
        f"{n} {r[n]['train_images_per_s']:,.0f}" for n in names) for i, r in enumerate(rounds)]
    return "\n".join(rows) + "\n\nimg/s per round (the ratios in parentheses above are these " \
        "rounds', in this order):\n" \
        + "\n".join(per_round)


def summarize_lockstep(rounds, baselines, reference=None):
    """Markdown for rounds run in lockstep: per contender the images/s of its timed chunks
    (all rounds' chunks after the first epoch: images over seconds), and per baseline (and
    against the contender `reference`, e.g. the oldest revision) the median and quartiles of
    the paired chunk ratios of all rounds, with each round's median and the number of pairs;
    then the last round's peak RSS and test -ELBO."""
    names = list(rounds[0])
    baselines = list(baselines) + ([reference] if reference else [])
    head = ["contender", "chunk img/s"] + [
        f"x {run_lib.BASELINES.get(b, b)}: median [quartiles] (per round)" for b in baselines]
    head += ["pairs", "peak RSS MB (last round)", "test -ELBO (last round)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        images = seconds = 0.0
        for r in rounds:
            for epoch, steps, secs in r[name]["lockstep_chunks"]:
                if epoch >= 1:
                    images += steps * r[name]["images_per_step"]
                    seconds += secs
        cells, pairs = [name, f"{images / seconds:,.0f}" if seconds else "-"], 0
        for b in baselines:
            per_round = [_lockstep.paired({n: r[n]["lockstep_chunks"] for n in (name, b)},
                                          {n: r[n]["images_per_step"] for n in (name, b)},
                                          name, b) for r in rounds]
            pooled = [x for ratios in per_round for x in ratios]
            pairs = len(pooled)
            if not pooled:
                cells.append("-")
                continue
            med, q1, q3 = _lockstep.spread(pooled)
            cells.append(f"{med:.3f} [{q1:.3f}, {q3:.3f}] (" + ", ".join(
                f"{_lockstep.spread(x)[0]:.3f}" for x in per_round if x) + ")")
        last = rounds[-1][name]
        elbo = last.get("test_neg_elbo", -last["test_elbo"] if last.get("test_elbo") else None)
        cells += [str(pairs), f"{last['peak_rss_mb']:,.0f}",
                  "-" if elbo is None else f"{elbo:.2f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + ("\n\nA pair is chunk k of an epoch (after the first) of the "
                              "contender against the baseline's, timed seconds apart.")


def _contender_command(name, bargs, npz, args):
    """(argv, env, cwd) of run.py's contender `name`, from this checkout."""
    python = args.torch_python if name == "torch" else sys.executable
    return [python, *run_lib._argv(name, bargs, npz)], run_lib.CHILD_ENV, ROOT


def run_round_in_lockstep(commands, trees, chunk_steps, timeout):
    """One round: every contender started at once, taking turns chunk by chunk."""
    procs = _lockstep.run(commands, chunk_steps, timeout)
    results = {}
    for name, proc in procs.items():
        if name in trees:
            results[name] = main_job_result(proc, trees[name])
        else:
            results[name] = run_lib.result_of(proc, f"contender {name}")
        if "lockstep_chunks" not in results[name]:
            raise RuntimeError(f"{name} timed no chunk: does its script take turns?")
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--revs", default="64645dd,HEAD",
                   help="comma-separated git revisions whose main job to time")
    p.add_argument("--baselines", default="tfp_layers,torch",
                   help=f"comma-separated subset of {list(run_lib.BASELINES)}")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images")
    p.add_argument("--nll-samples", type=int, default=1000, help="the baselines' k")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--nll-examples", type=int, default=100,
                   help="the baselines' NLL images (not timed; kept small)")
    p.add_argument("--torch-python", default=sys.executable)
    p.add_argument("--drop-caches", action="store_true",
                   help="drop the page cache before every contender (root)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per contender")
    p.add_argument("--json", help="also write every round's raw results here")
    p.add_argument("--lockstep", type=int, default=128, metavar="STEPS",
                   help="start every contender of a round at once and let them take turns "
                        "every STEPS training steps (benchmarks/_lockstep.py); 0: one "
                        "contender after another, timed by whole epochs")
    p.add_argument("--others", default="",
                   help="comma-separated run.py contenders to time from this checkout too, "
                        "e.g. tfvae_full_plain")
    args = p.parse_args(argv)
    revs = [r for r in args.revs.split(",") if r]
    baselines = [b for b in args.baselines.split(",") if b]
    others = [o for o in args.others.split(",") if o]
    unknown = sorted(set(baselines) - set(run_lib.BASELINES))
    if unknown or not revs:
        p.error(f"unknown baselines {unknown}" if unknown else "--revs names no revision")
    allowed = set(run_lib.CONTENDERS) - {"tfvae_main_job", *baselines}
    bad = sorted(set(others) - allowed)
    if bad:
        p.error(f"--others: {bad} are not run.py contenders other than the baselines and "
                f"the main job; choose from {sorted(allowed)}")
    if args.lockstep < 0:
        p.error(f"--lockstep must be 0 (off) or a number of steps; got {args.lockstep}")
    shas = {}
    for rev in revs:
        try:
            shas[rev] = _git("rev-parse", "--short", "--verify", f"{rev}^{{commit}}")
        except subprocess.CalledProcessError:
            p.error(f"--revs: {rev!r} is not a commit of {ROOT}")
    if len(set(shas.values())) < len(revs):
        p.error(f"--revs names one commit twice: {args.revs}")
    run_lib.refuse_unusable(p, "baseline", "torch" in baselines, args.torch_python,
                            args.drop_caches)
    bargs = argparse.Namespace(epochs=args.epochs, nll_samples=args.nll_samples,
                               dataset=args.dataset, nll_examples=args.nll_examples,
                               limit=args.limit)
    app_args = ["--dataset", args.dataset] + (["--limit", str(args.limit)] if args.limit else [])
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        try:
            for rev in revs:
                label = f"tfvae main job @ {shas[rev]} ({rev})"
                trees[label] = os.path.join(tmp, f"tree{len(trees)}")
                _git("worktree", "add", "--detach", "--quiet", trees[label], shas[rev])
            npz = os.path.join(tmp, "fmnist_bin.npz")
            run_lib._write_data(npz, args.dataset, args.limit)
            names = [*trees, *others, *baselines]
            for i in range(args.rounds):
                if args.lockstep:
                    commands = {n: main_job_command(trees[n], args.epochs, app_args)
                                if n in trees else _contender_command(n, bargs, npz, args)
                                for n in names}
                    if args.drop_caches:
                        run_lib.drop_page_cache()
                    results = run_round_in_lockstep(commands, trees, args.lockstep,
                                                    args.timeout * len(names))
                    print(f"round {i + 1}: " + ", ".join(
                        f"{n} peak {r['peak_rss_mb']:,.0f} MB" for n, r in results.items()),
                        flush=True)
                else:
                    results = {}
                    # Each round starts one place later, so a slow stretch within rounds does
                    # not fall on the same contender every time.
                    for name in names[i % len(names):] + names[:i % len(names)]:
                        if args.drop_caches:
                            run_lib.drop_page_cache()
                        if name in trees:
                            results[name] = run_main_job(trees[name], args.epochs, args.timeout,
                                                         app_args)
                        else:
                            argv, _, _ = _contender_command(name, bargs, npz, args)
                            results[name] = run_lib._run(name, argv[1:], args.timeout, argv[0])
                        print(f"round {i + 1}: {name}: "
                              f"{results[name]['train_images_per_s']:,.0f} img/s, peak "
                              f"{results[name]['peak_rss_mb']:,.0f} MB", flush=True)
                rounds.append({n: results[n] for n in names})
                if args.json:  # after every round: a run stopped later keeps what it measured
                    with open(args.json, "w") as f:
                        json.dump(rounds, f, indent=1)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree],
                               capture_output=True)
            subprocess.run(["git", "-C", ROOT, "worktree", "prune"], capture_output=True)
            if rounds:
                if args.lockstep:
                    print(summarize_lockstep(rounds, baselines, next(iter(trees))), flush=True)
                else:
                    print(summarize(rounds, baselines), flush=True)
    return rounds


if __name__ == "__main__":
    main()
