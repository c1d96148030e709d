"""The train app's training controls: the optimizer with its learning-rate schedule and
gradient clipping, and early stopping. All of them are functions of checkpointed state (the
optimizer's step counter, the early-stopping record), so a resumed run is exact."""

from tfvae._tf import tfk
from tfvae.callbacks.early_stopping import EarlyStopping, EarlyStoppingState
from tfvae.optimizers import FlatAdam


def learning_rate(cfg, total_steps):
    """The learning rate (a float or a schedule of the optimizer step) of `cfg.lr_schedule`
    over a run of `total_steps` optimizer steps."""
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        return tfk.optimizers.schedules.CosineDecay(cfg.learning_rate, max(total_steps, 1))
    warmup = min(cfg.lr_warmup_steps, total_steps)
    return tfk.optimizers.schedules.CosineDecay(
        0.0, max(total_steps - warmup, 1), warmup_target=cfg.learning_rate,
        warmup_steps=warmup)


def optimizer(cfg, total_steps):
    """Adam at `learning_rate(cfg, total_steps)`, the model's gradient clipped to a global
    norm of `cfg.clipnorm` when set: `tfvae.optimizers.FlatAdam`, Adam's arithmetic with
    its moments in two flat vectors, which XLA compiles with less memory."""
    return FlatAdam(learning_rate(cfg, total_steps), global_clipnorm=cfg.clipnorm)


def early_stopping(cfg, model):
    """(state, callback) for `--early-stopping PATIENCE`, or (None, None) when it is off.
    Make the state inside the strategy's scope and put it in the run's checkpoint."""
    if not cfg.early_stopping:
        return None, None
    monitor = "val_elbo" if getattr(model, "reports_elbo", False) else "val_loss"
    state = EarlyStoppingState(model)
    return state, EarlyStopping(state, cfg.early_stopping, monitor=monitor)


def finish(state, callback, out):
    """Ends an early-stopping run with its best epoch's weights; says so through `out`."""
    if state is None or not state.restore_best():
        return
    what = "stopped early; " if bool(state.stopped.numpy()) else ""
    best = float(state.best.numpy())
    value = (f"validation ELBO {best:.3f} nats, a lower bound on log p(x)" if callback.monitor == "val_elbo"
             else f"validation loss {-best:.3f}")
    out(f"Early stopping: {what}the model has the weights of epoch "
        f"{int(state.best_epoch.numpy())}, the best on the validation split ({value}).")
