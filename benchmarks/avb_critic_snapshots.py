"""The AVB critic's estimate, snapshot against a weight average, on the Gaussian toys of
tests/test_avb.py (`_gaussian_toy`: a fixed q(z|x) whose log q - log p is known).

    .venv/bin/python benchmarks/avb_critic_snapshots.py

For each (dimension, KL, data seed, initialization seed) the term's default critic with
adaptive contrast trains as in the test (its own `critic_batch` / `update`, batch 128), and
at the listed steps prints the relative error of E_q[estimate] against the true mean
log-ratio (2,000 fresh samples, exact truth) for the critic's last step ("raw",
`estimate(average=False)`) and for the term's weight average ("ema", `critic_average=0.99`,
an option that is off by default; benchmarks/README.md says why).
"""

import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from tfvae._tf import tf  # noqa: E402
from test_avb import _critic_on_toy  # noqa: E402

CASES = [(2, 1.0, 1, 2), (2, 1.0, 1, 3), (2, 1.0, 1, 1), (2, 1.0, 0, 0), (2, 1.0, 2, 4),
         (8, 23.0, 1, 2)]
STEPS = (300, 600, 900, 1200)


def run(d, kl, data_seed, init_seed):
    term, q, prior, step, _ = _critic_on_toy(d, kl, data_seed, init_seed, critic_average=0.99)

    def relative_error(average):
        x = tf.random.stateless_normal([2000, d], [7, data_seed])
        q_z = q(x)
        z = q_z.sample(seed=(5, data_seed))
        truth = (q_z.log_prob(z) - prior.log_prob(z)).numpy()
        estimate = term.estimate(x, q_z, z[None], prior, seed=(9, data_seed),
                                 average=average)["kl"].numpy()
        return estimate.mean() / truth.mean() - 1

    rows = []
    for i in range(max(STEPS)):
        step(tf.constant([i, 100 + data_seed]))
        if i + 1 in STEPS:
            raw, averaged = relative_error(False), relative_error(True)
            rows.append(f"{i + 1}: raw {raw:+.1%} ema {averaged:+.1%}")
    print(f"D={d} KL={kl} data seed {data_seed} init seed {init_seed}: " + ", ".join(rows),
          flush=True)


if __name__ == "__main__":
    for case in CASES:
        run(*case)
