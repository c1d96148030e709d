"""The run's settings in TensorBoard's hparams plugin."""

from tfvae._tf import tf


def write_hparams(run_dir, config, run_name):
    """Logs the run's settings to the hparams plugin (session = the run directory).

    Scalars (bool, int, float, str) are logged as they are, anything else as its string;
    None values are left out.
    """
    from tensorboard.plugins.hparams import api as hp  # noqa: PLC0415
    values = {}
    for key, value in config.items():
        if isinstance(value, (bool, int, float, str)):
            values[key] = value
        elif value is not None:
            values[key] = str(value)
    writer = tf.summary.create_file_writer(run_dir)
    with writer.as_default():
        hp.hparams(values, trial_id=run_name)
    writer.close()
