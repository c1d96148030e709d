"""The main job at several revisions of tfvae beside the baselines, interleaved in one run.

    python benchmarks/speed_history.py --revs 64645dd,HEAD --rounds 3 \
        --torch-python /path/to/venv-with-torch/bin/python --drop-caches

Whether a change cost speed is a question about two revisions of tfvae, and a shared
machine's speed drifts by more than the answer, so it is only answered by running the old
code and the new one on the same machine, in the same run. Each revision
is checked out in a temporary git worktree and its main job (`python -m tfvae.apps.train`,
defaults, FMNIST-bin) is timed by `main_job_any.py`, the same script for every revision;
the baselines are run.py's (`tfp_layers`, `torch`, on the same binarized images). Every
round runs the whole list, each round starting one place later, so that drift reaches
every contender (it does not cancel: read the per-round ratios, not only their median).
Ten epochs of two revisions and both baselines take ~7 minutes per round on 2 cores.

Printed: a table of each contender's median images/s over the rounds, its ratio to each
baseline (the median of the per-round ratios and each round's), the last round's peak RSS
(VmHWM) and test -ELBO (an upper bound on the test NLL, nats per image), then each
round's images/s.
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

from benchmarks import run as run_lib  # noqa: E402


def _git(*argv):
    return subprocess.run(["git", "-C", ROOT, *argv], check=True, capture_output=True,
                          text=True).stdout.strip()


def run_main_job(tree, epochs, timeout, app_args=()):
    """`main_job_any.py` with `tree`'s tfvae first on the path (`app_args` after its `--`, to
    the train app); its result line as a dict."""
    env = {**run_lib.CHILD_ENV, "PYTHONPATH": tree}
    proc = subprocess.run([sys.executable, os.path.join(HERE, "main_job_any.py"), "--epochs",
                           str(epochs), "--", *app_args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=tree)
    result = run_lib.result_of(proc, f"main job in {tree}")
    if not result["tfvae"].startswith(tree):
        raise RuntimeError(f"the main job ran {result['tfvae']}, not the checkout in {tree}")
    return result


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
    args = p.parse_args(argv)
    revs = [r for r in args.revs.split(",") if r]
    baselines = [b for b in args.baselines.split(",") if b]
    unknown = sorted(set(baselines) - set(run_lib.BASELINES))
    if unknown or not revs:
        p.error(f"unknown baselines {unknown}" if unknown else "--revs names no revision")
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
            names = [*trees, *baselines]
            for i in range(args.rounds):
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
                        python = args.torch_python if name == "torch" else sys.executable
                        results[name] = run_lib._run(name, run_lib._argv(name, bargs, npz),
                                                     args.timeout, python)
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
                print(summarize(rounds, baselines), flush=True)
    return rounds


if __name__ == "__main__":
    main()
