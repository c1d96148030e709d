"""What the train app's input pipeline costs per batch, alone, at any revision of tfvae.

    PYTHONPATH=/path/to/checkout python benchmarks/pipeline_cpu.py [--batches 400] [-- APP FLAGS]

On 2 cores the pipeline's map runs on the cores the training step uses, so its CPU time
per batch is taken from the step's. This builds the app's `Data` for the given train-app
flags (defaults: FMNIST-bin, batch 128), pulls `--warmup` batches of its epoch stream, then
times `--batches` more: wall time and process CPU time (user + system, all threads) per
batch, in ms. Only the app's argument parser and `Data` are used, which every revision
since 64645dd has, so an old checkout is measured by the same script (cwd and PYTHONPATH
the checkout). Run it alone: other load changes both figures.
"""

import argparse
import json
import os
import resource
import sys
import time


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=400)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3, help="timed stretches; each is printed")
    args = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)

    import tfvae
    from tfvae.apps import _train_data
    from tfvae.apps import train as train_app
    cfg, recipe, _ = train_app.parse(["--epochs", "1000", *extra])
    data = _train_data.Data(cfg, recipe.default("likelihood"))
    batches = iter(data.stream(0, 1000))
    for _ in range(args.warmup):
        next(batches)

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    rows = []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), cpu()
        for _ in range(args.batches):
            next(batches)
        wall, used = time.perf_counter() - t0, cpu() - c0
        rows.append({"wall_ms_per_batch": round(wall / args.batches * 1e3, 3),
                     "cpu_ms_per_batch": round(used / args.batches * 1e3, 3)})
    print(json.dumps({"tfvae": os.path.dirname(tfvae.__file__), "batch_size": cfg.batch_size,
                      "binarize": data.binarize, "stretches": rows}))


if __name__ == "__main__":
    main()
