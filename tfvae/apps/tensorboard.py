"""Serve TensorBoard for tfvae runs on 127.0.0.1: `python -m tfvae.apps.tensorboard --logdir runs`.

Uses the `tensorboard` package's own program API (`tensorboard.program.TensorBoard`), bound
to the loopback interface on a free port unless `--port` says otherwise, prints the URL and
serves until Ctrl-C. The train app's `--tensorboard` flag calls `launch` from here.
"""

import os
import signal
import socket
import sys
import time

from tfvae.apps import _cli

PROG = "tfvae-tensorboard"
#: seconds between TensorBoard's re-reads of the logdir; small so a live run shows up fast.
RELOAD_INTERVAL = 2


def free_port(host="127.0.0.1"):
    """A TCP port that was free on `host` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def launch(logdir, host="127.0.0.1", port=None, reload_interval=RELOAD_INTERVAL):
    """Starts a TensorBoard server in background threads; returns (url, server).

    Args:
        logdir: the directory of runs (e.g. "runs").
        host: the interface to bind. Default value: "127.0.0.1" (this machine only).
        port: the port; None picks a free one.
        reload_interval: seconds between reloads of the logdir.

    Raises:
        OSError: the server cannot start (the port is in use, the host cannot be bound);
            one line naming the host, the port and the fix.
    """
    from tensorboard import program  # noqa: PLC0415  (imports TensorFlow pieces; slow)
    port = port or free_port(host)
    tb = program.TensorBoard()
    tb.configure(argv=[None, "--logdir", os.path.abspath(logdir), "--host", host,
                       "--port", str(port), "--reload_interval", str(reload_interval),
                       # the pure-Python loader: no helper binary, same plugins
                       "--load_fast", "false"])
    try:
        url = tb.launch()
    except program.TensorBoardPortInUseError:
        raise OSError(f"port {port} on {host} is already in use; pass another port, or none "
                      "to pick a free one.") from None
    except program.TensorBoardServerException as e:
        raise OSError(f"cannot serve on {host}:{port}: {_cli.one_line(e)}") from None
    return url, tb


def serve_forever():
    """Blocks until Ctrl-C (the server threads are daemons and end with the process)."""
    # A process started in the background by a shell inherits SIGINT as *ignored*, and
    # Python then never raises KeyboardInterrupt: restore the default so Ctrl-C (or a
    # supervisor's SIGINT) always stops the server.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nTensorBoard stopped.", flush=True)


def _main(argv):
    parser = _cli.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default="runs",
                        help="directory of runs, as the train app's --logdir (default: runs)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=None,
                        help="port (default: a free one)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.logdir):
        raise _cli.UsageError(f"`--logdir` {args.logdir!r} is not a directory (train "
                              "something first: python -m tfvae.apps.train).")
    if args.port is not None and not 0 < args.port < 65536:
        raise _cli.UsageError(f"`--port` must be in 1..65535; got {args.port}.")
    with _cli.user_errors("cannot start TensorBoard: "):
        url, _ = launch(args.logdir, host=args.host, port=args.port)
    print(f"TensorBoard serving {os.path.abspath(args.logdir)} at {url} "
          "(press Ctrl-C to stop)", flush=True)
    serve_forever()
    return 0


def main(argv=None):
    return _cli.run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
