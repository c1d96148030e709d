"""Baseline (c): a minimal PyTorch VAE, as the PyTorch examples repository writes one.

`nn.Linear` encoder 784-512-256 to a diagonal Gaussian's mean and log-variance (32 each),
the reparameterized sample, a mirrored decoder to Bernoulli logits, the loss
BCE-with-logits (summed over pixels) + the analytic KL, Adam 1e-3, batch 128, a shuffling
`DataLoader` over float32 tensors. Architecture and optimizer follow DESIGN.md's benchmark
protocol; the posterior is diagonal, as in the examples. PyTorch's default thread count.
Needs an interpreter with torch (run.py's `--torch-python`); imports no TensorFlow.

    python benchmarks/baselines/torch_vae.py --data data.npz --epochs 10
"""

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from benchmarks import common  # noqa: E402


def main(argv=None):
    args = common.baseline_args(argv)
    common.TURNS.begin()  # under a lockstep coordinator: nothing heavy before this turn

    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812
    torch.manual_seed(args.seed)

    x_train, x_test = common.load_npz(args.data)
    pixels, latent = int(x_train[0].size), 32

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Linear(pixels, 512), nn.ReLU(), nn.Linear(512, 256),
                                     nn.ReLU(), nn.Linear(256, 2 * latent))
            self.dec = nn.Sequential(nn.Linear(latent, 256), nn.ReLU(), nn.Linear(256, 512),
                                     nn.ReLU(), nn.Linear(512, pixels))

        def encode(self, x):
            mu, logvar = self.enc(x).chunk(2, dim=-1)
            return mu, logvar

        def forward(self, x):
            mu, logvar = self.encode(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            return self.dec(z), mu, logvar

    def neg_elbo(x, logits, mu, logvar):
        """Per-example -ELBO [B]: -log p(x|z) (one sample) + KL(q || N(0, I)), analytic."""
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
        return rec + kl

    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x_train.reshape(len(x_train), -1))),
        batch_size=128, shuffle=True)
    times = []
    model.train()
    turns = common.TURNS  # a lockstep coordinator's turns, if any (benchmarks/_lockstep.py)
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        for (x,) in train:
            turns.steps_begin()
            loss = neg_elbo(x, *model(x)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            turns.steps_end(1)
        times.append(time.perf_counter() - t0)
        turns.epoch_end()

    model.eval()
    test = torch.from_numpy(x_test.reshape(len(x_test), -1))
    with torch.no_grad():
        elbo = -torch.cat([neg_elbo(xb, *model(xb)) for xb in test.split(1000)]).mean()
        # IWAE: log mean_k p(x|z_k) p(z_k) / q(z_k|x), k = nll_samples, per image.
        x_eval = test[:args.nll_examples]
        t0 = time.perf_counter()
        log_px = []
        for xb in x_eval.split(100):
            mu, logvar = model.encode(xb)
            std = torch.exp(0.5 * logvar)
            log_w = []
            for _ in range(args.nll_samples):
                eps = torch.randn_like(mu)
                z = mu + eps * std
                log_pxz = -F.binary_cross_entropy_with_logits(
                    model.dec(z), xb, reduction="none").sum(-1)
                log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
                log_qz = -0.5 * (eps.pow(2) + math.log(2 * math.pi) + logvar).sum(-1)
                log_w.append(log_pxz + log_pz - log_qz)
            log_px.append(torch.logsumexp(torch.stack(log_w), 0) - math.log(args.nll_samples))
        eval_s = time.perf_counter() - t0
        nll = -torch.cat(log_px).mean()
    common.report(contender="minimal PyTorch VAE (diagonal)",
                  train_images_per_s=common.steady_images_per_s(times, len(x_train)),
                  epoch_s=[round(t, 2) for t in times], test_neg_elbo=float(-elbo),
                  test_nll=float(nll), eval_images_per_s=len(x_eval) / eval_s,
                  eval_method="straightforward loop over samples",
                  images_per_step=len(x_train) / len(train),
                  torch_version=torch.__version__, torch_threads=torch.get_num_threads())
    return 0


if __name__ == "__main__":
    sys.exit(main())
