"""The train app's run: everything after the command line is parsed (`tfvae.apps.train`
parses it without importing TensorFlow, then calls `train` here)."""

import gc
import os
import shutil
import time

from tfvae import callbacks as callbacks_lib
from tfvae import export
from tfvae._tf import tf, tfk
from tfvae.apps import _cli
from tfvae.apps import _strategy
from tfvae.apps._divergence import Diverged, DivergenceGuard
from tfvae.apps._run_dir import (RUN_FILE, default_run_name, load_run,  # noqa: F401
                                 prepare_run_dir, remove_partial_checkpoints, run_identity)
from tfvae.apps import _train_controls as _controls
from tfvae.apps import _disentanglement
from tfvae.apps._build import (  # noqa: F401  (build_model, dry_run: re-exported by train)
    build_model, dry_run, kl_warmup_fraction)
from tfvae.apps._train_data import Data
from tfvae.apps._train_report import EpochTimer, summary  # noqa: F401  (public)
from tfvae.apps import tensorboard as tensorboard_app
from tfvae.optimizers import FlatAdam

#: test images that feed the image summaries, histograms and the projector
SUMMARY_IMAGES = 1000


# ---------------------------------------------------------------------------- training

class ReleaseFreeMemory(tfk.callbacks.Callback):
    """Collects garbage cycles and returns malloc's free pages to the kernel
    (`_cli.release_free_memory`) after the first train call and the first validation, which
    held XLA's compilation scratch, and at each epoch's end, after the callbacks before it
    (summaries, the decomposition, the checkpoint) freed theirs.

    At the first train call it first freezes the objects alive then (the model, its traced
    and compiled step, the data pipelines: `gc.freeze()`), so each collection scans only
    what came after, not every object of the process (benchmarks/README.md has the
    times). At the end of training it releases once more, still frozen, then thaws
    (`thaw`; `train` calls it too if training raises), so the objects are collectable
    again.
    """

    def __init__(self):
        super().__init__()
        self._supports_tf_logs = True  # never needs the logs
        self._first_validation = True
        self._first_train_call = self._frozen = False

    def on_train_begin(self, logs=None):
        self._first_train_call = True

    def on_train_batch_end(self, batch, logs=None):
        if self._first_train_call:
            self._first_train_call = False
            if not self._frozen:
                gc.freeze()
                self._frozen = True
            _cli.release_free_memory()

    def on_test_end(self, logs=None):
        if self._first_validation:
            self._first_validation = False
            _cli.release_free_memory()

    def on_epoch_end(self, epoch, logs=None):
        _cli.release_free_memory()

    def on_train_end(self, logs=None):
        _cli.release_free_memory()  # before the test split's evaluation and the export
        self.thaw()

    def thaw(self):
        """Undoes this callback's `gc.freeze()`, if it froze anything (`gc.unfreeze()`)."""
        if self._frozen:
            self._frozen = False
            gc.unfreeze()


class Result:
    """What `train` returns: the model, its export module, paths and metrics."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


def train(cfg, recipe, args=None, out=print):
    """Runs everything after parsing; returns a `Result`. Raises UsageError on bad input."""
    del args  # everything is in cfg and recipe
    strategy = _strategy.make(cfg)  # first: logical devices exist only if made before any op
    tfk.utils.set_random_seed(cfg.seed)
    data = Data(cfg, recipe.default("likelihood"))
    with strategy.scope():  # variables (and the model's generator) mirrored per replica
        model = build_model(cfg, recipe, data)
    identity = run_identity(cfg, recipe, data)
    run_name = cfg.run_name or default_run_name(cfg, recipe, model, identity)
    run_dir = os.path.join(cfg.logdir, run_name)
    chief = _strategy.distribute.is_chief(strategy)
    export_path = os.path.join(cfg.export_dir, run_name)
    resolved = {**cfg.to_dict(), "binarize": data.binarize or "none", "run_name": run_name,
                "validation_split": data.num_validation,
                "kl_warmup": kl_warmup_fraction(cfg, recipe)}
    data_info = {"name": cfg.dataset, "binarize": data.binarize or "none",
                 "train_examples": data.num_train,
                 "validation_examples": data.num_validation,
                 "test_examples": int(len(data.test_images)),
                 "image_shape": list(data.image_shape)}
    created = chief and not os.path.exists(run_dir)
    if chief:  # other workers write to a temporary folder (tfvae.apps._strategy)
        prepare_run_dir(cfg, run_dir, identity, {"config": resolved, "recipe": recipe.to_dict(),
                                                  "data": data_info}, out)
        remove_partial_checkpoints(os.path.join(run_dir, "checkpoints"))
    _strategy.barrier(strategy)  # every worker restores after the chief prepared the run
    write_dir = _strategy.write_dir(run_dir, run_name, strategy)
    try:  # set-up; a failure here (a port in use, a full disk) leaves no new run behind
        with strategy.scope():
            model.compile(optimizer=_controls.optimizer(cfg, cfg.epochs * data.steps_per_epoch),
                          jit_compile="auto" if cfg.jit else False,
                          steps_per_execution=cfg.steps_per_execution)
            epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
            stopper_state, stopper = _controls.early_stopping(cfg, model)
        extra = {"early_stopping": stopper_state} if stopper_state is not None else {}
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch_var,
                                         step_in_epoch=step_var, **extra)
        manager = tf.train.CheckpointManager(checkpoint, os.path.join(write_dir, "checkpoints"),
                                             max_to_keep=cfg.keep_checkpoints)
        latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
        last_epoch = cfg.epochs
        if latest:
            if isinstance(model.optimizer, FlatAdam) and \
                    not FlatAdam.can_restore(latest, "optimizer"):
                raise _cli.UsageError(
                    f"run {run_name!r}: checkpoint {latest} holds Adam's moments one variable "
                    "at a time (an earlier tfvae); this one keeps them in two flat vectors "
                    "(FlatAdam) and cannot resume it exactly: add --fresh to start the run "
                    "over.")
            status = checkpoint.restore(latest)
            status.assert_existing_objects_matched()
            first_epoch, skip = int(epoch_var.numpy()), int(step_var.numpy())
            iterations = int(model.optimizer.iterations.numpy())
            if stopper_state is not None and bool(stopper_state.stopped.numpy()):
                last_epoch = first_epoch  # it stopped early: nothing left to train
            if first_epoch >= last_epoch:
                # No step will run, so Adam's slots are never created to receive their saved
                # values: without this, TensorFlow warns once per slot when the status is freed.
                status.expect_partial()
                out(f"Run {run_name!r} already trained {first_epoch} epochs (optimizer step "
                    f"{iterations}); evaluating{' and exporting' if cfg.export else ''} it. "
                    + ("It stopped early (--early-stopping); use "
                       if last_epoch < cfg.epochs else "Raise --epochs to train on, or ")
                    + "--fresh to start over.")
            else:
                out(f"Resuming run {run_name!r} from {latest}: epoch "
                    f"{first_epoch + 1}/{cfg.epochs}, step {skip}/{data.steps_per_epoch} of it "
                    f"done, optimizer step {iterations}.")
        else:
            first_epoch, skip = 0, 0
            out(f"Starting run {run_name!r}: {recipe.name} on {cfg.dataset} ({data.num_train} "
                f"training images, {data.steps_per_epoch} steps per epoch), logs in {run_dir}")

        url = None
        if cfg.tensorboard and chief:
            with _cli.user_errors("cannot start TensorBoard: "):
                url, _ = tensorboard_app.launch(cfg.logdir, port=cfg.tensorboard_port)
            out(f"TensorBoard: {url}")

        n_images = min(SUMMARY_IMAGES, len(data.validation_images))
        context = callbacks_lib.CallbackContext(
            model=model, config=resolved, run_dir=write_dir, train_data=data.epoch(0),
            validation_data=_strategy.shard(data.validation, strategy),
            images=data.validation_images[:n_images],
            labels=data.validation_labels[:n_images], dataset_size=data.num_train,
            steps_per_epoch=data.steps_per_epoch, label_names=data.label_names)
        checkpointer = callbacks_lib.CheckpointCallback(
            manager, epoch_var, step_var, cfg.checkpoint_every_steps, data.steps_per_epoch)
        timer = EpochTimer()
        release = ReleaseFreeMemory()
        # The guard first: a diverged step stops training before any other callback (epoch-end
        # summaries, the checkpoint) runs on its weights.
        callbacks = [DivergenceGuard(), timer,
                     callbacks_lib.SummaryCallback(context, seed=cfg.seed),
                     *callbacks_lib.extra_callbacks(model, context),
                     # after the extras, which may add entries to the epoch's logs
                     callbacks_lib.EpochScalarsCallback(context),
                     *([stopper] if stopper else []),  # its record goes in this epoch's save
                     checkpointer,  # after the others: a saved epoch has all its logs
                     release]
        # Hyperparameters only: what defines the run, and its length (not paths or switches
        # such as export, fresh or dry_run).
        hparams = {k: v for k, v in resolved.items() if k in cfg.identity() or k == "epochs"}
        hparams.update({"model": recipe.name, "posterior": model.posterior.registry_name,
                        "likelihood": model.likelihood.registry_name,
                        "latent_dim": model.latent_dim})
        callbacks_lib.write_hparams(write_dir, hparams, run_name)
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        _strategy.remove_write_dir(write_dir, run_dir)
        raise

    fit = dict(validation_data=_strategy.shard(data.validation, strategy), callbacks=callbacks,
               verbose=cfg.verbose)
    t0 = time.perf_counter()
    try:
        if skip and first_epoch < last_epoch:
            # The rest of an epoch interrupted after `skip` steps, then whole epochs.
            checkpointer.first_step = skip
            if cfg.verbose:  # Keras numbers an epochs=1 fit's epoch only for n > 1
                out(f"Epoch {first_epoch + 1}/{cfg.epochs} (continuing after step {skip} of "
                    f"{data.steps_per_epoch})")
            model.fit(_strategy.shard(data.epoch(first_epoch, skip=skip), strategy),
                      initial_epoch=first_epoch,
                      epochs=first_epoch + 1, steps_per_epoch=data.steps_per_epoch - skip,
                      **fit)
            first_epoch += 1
        if first_epoch < last_epoch and not getattr(model, "stop_training", False):
            model.fit(_strategy.shard(data.stream(first_epoch, cfg.epochs), strategy),
                      initial_epoch=first_epoch,
                      epochs=cfg.epochs, steps_per_epoch=data.steps_per_epoch, **fit)
    except KeyboardInterrupt:
        out(f"\nInterrupted. Checkpoints are in {manager.directory}: re-run the same "
            "command to resume.")
        raise
    except Diverged as e:
        context.close()
        latest = manager.latest_checkpoint
        kept = (f"the last finite checkpoint is kept in {latest}" if latest else
                f"no checkpoint was written ({manager.directory})")
        raise _cli.UsageError(
            f"{e}: lower --learning-rate (now {cfg.learning_rate:g}) or check the data for "
            f"NaN/Inf; nothing was exported and {kept}.") from None
    finally:  # Keras skips on_train_end when fit raises
        release.thaw()
    train_seconds = time.perf_counter() - t0
    _controls.finish(stopper_state, stopper, out)

    # The test split, first seen here (validation during training used held-out images).
    metrics = model.evaluate(_strategy.shard(data.test, strategy), return_dict=True, verbose=0)
    metrics = {k: float(v) for k, v in metrics.items()}
    meta = {"config": resolved, "recipe": recipe.to_dict(), "dataset": data_info,
            "metrics": {"test": metrics, "epochs": int(epoch_var.numpy()),
                        "optimizer_steps": int(model.optimizer.iterations.numpy())},
            "run_dir": os.path.abspath(run_dir)}
    if chief:  # on a dataset with factors: the disentanglement scores, in TensorBoard too
        with _cli.user_errors("cannot score disentanglement: "):
            scores = _disentanglement.end_of_run(cfg, model, context.writer("validation"),
                                                 int(epoch_var.numpy()), out)
        if scores is not None:
            meta["metrics"]["disentanglement"] = scores
    module = None
    _strategy.remove_write_dir(write_dir, run_dir)
    if cfg.export and chief:  # the single-device model a default-strategy run exports
        exported = _strategy.single_device_copy(model, lambda: build_model(cfg, recipe, data))
        where = f"cannot export to {export_path!r}: "
        with _cli.write_errors(where, "; free some space and re-run (the run is trained: "
                                      "only the export is redone)"), _cli.user_errors(where):
            module = export.save(exported, export_path, metadata=meta,
                                 iwae_samples=cfg.export_iwae_samples, seed=cfg.seed)
    else:
        export_path = None
    context.close()
    return Result(model=model, module=module, run_name=run_name, run_dir=run_dir,
                  export_path=export_path, metrics=metrics, url=url, data=data,
                  epoch_seconds=timer.seconds, train_seconds=train_seconds,
                  iterations=int(model.optimizer.iterations.numpy()), manager=manager)
