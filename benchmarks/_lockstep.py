"""Lockstep timing: benchmark processes take turns on the machine, a chunk of steps each.

A shared machine's speed drifts over minutes by more than the differences benchmarks ask
about (one revision of the main job read 5,371 and 9,326 images/s in two rounds of one run).
Contenders run one after another see different machines. Here every contender process is
started at once and a coordinator (`run`) hands one token round: a process works only while
it holds it. It gives the token back after each chunk of `chunk_steps` training steps, and
at no other time. So everything it does besides training (importing, compiling, validating,
evaluating) happens while the others wait. Chunk k of every contender is timed within a few
seconds of chunk k of the others. `paired` then gives per-chunk ratios, each taken over a
few seconds of the same machine.

Stdlib only: the PyTorch baseline's interpreter and `main_job_any.py`, which must import
nothing before the train app caps malloc's arenas, both use it. A process started without a
coordinator (no TFVAE_BENCH_LOCKSTEP in its environment) never waits and records no chunk.
"""

import os
import select
import statistics
import subprocess
import tempfile
import time

#: "READ_FD,WRITE_FD,CHUNK_STEPS" in a child's environment: the token arrives on READ_FD,
#: goes back on WRITE_FD; the child's exit (EOF on WRITE_FD) ends its turns.
ENV = "TFVAE_BENCH_LOCKSTEP"


class Turns:
    """A contender's side: wait for the token before working, give it back between chunks.

    Call `begin()` before anything heavy, then around every training call `steps_begin()`
    and `steps_end(steps)`, and `epoch_end()` once an epoch's training steps are done (before
    its validation). `chunks` holds [epoch, steps, seconds] per chunk of training steps.
    """

    def __init__(self, spec=None):
        spec = os.environ.get(ENV) if spec is None else spec
        self.active = bool(spec)
        if self.active:
            read_fd, write_fd, steps = (int(s) for s in spec.split(","))
            self._read, self._write, self.chunk_steps = read_fd, write_fd, steps
        self.chunks, self.epoch = [], 0
        self._t0, self._steps, self._owed, self._started = None, 0, False, False
        self._in_epoch = False  # steps have ended since the last epoch_end

    def _wait(self):
        if not os.read(self._read, 1):
            raise RuntimeError("the lockstep coordinator went away")

    def begin(self):
        """Waits for this process's first turn (once; at once without a coordinator)."""
        if self.active and not self._started:
            self._started = True
            self._wait()

    def steps_begin(self):
        """Before a training call: hands the token round first if a chunk closed since."""
        if not self.active:
            return
        self.begin()
        if self._owed:
            self._owed = False
            os.write(self._write, b"y")
            self._wait()
        if self._t0 is None:
            self._t0, self._steps = time.perf_counter(), 0

    def steps_end(self, steps):
        """After a training call of `steps` steps (finished: results read or synchronous)."""
        self._in_epoch = True
        if self.active and self._t0 is not None:
            self._steps += steps
            if self._steps >= self.chunk_steps:
                self._close()

    def epoch_end(self):
        """The epoch's training steps are done: its last chunk closes, however short. Only
        the first call after an epoch's steps counts, so a Keras callback may call it at
        both the validation's start and the epoch's end."""
        if not self._in_epoch:
            return
        if self.active and self._t0 is not None:
            self._close()
        self.epoch += 1
        self._in_epoch = False

    def _close(self):
        self.chunks.append([self.epoch, self._steps, time.perf_counter() - self._t0])
        self._t0, self._owed = None, True


#: The process's own: one coordinator, one token per process.
TURNS = Turns()


def run(commands, chunk_steps, timeout):
    """Starts every command at once and hands the token round them in order until each has
    exited. `commands` maps a name to (argv, env, cwd). Returns name -> CompletedProcess
    (text stdout and stderr). Raises TimeoutError after `timeout` seconds in all (every
    process killed)."""
    kids, fds = {}, []
    deadline = time.monotonic() + timeout
    try:
        for name, (argv, env, cwd) in commands.items():
            go_r, go_w = os.pipe()
            back_r, back_w = os.pipe()
            fds += [go_w, back_r]
            out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
            try:
                proc = subprocess.Popen(
                    argv, env={**env, ENV: f"{go_r},{back_w},{chunk_steps}"}, cwd=cwd,
                    pass_fds=(go_r, back_w), stdout=out, stderr=err, text=True)
            except BaseException:
                out.close()
                err.close()
                raise
            finally:  # the child's ends: this process keeps none
                os.close(go_r)
                os.close(back_w)
            kids[name] = (proc, go_w, back_r, out, err)
        live, i = list(kids), 0
        while live:
            i %= len(live)
            proc, go_w, back_r, _, _ = kids[live[i]]
            try:
                os.write(go_w, b"g")
                answer = _read_one(back_r, deadline)
            except BrokenPipeError:  # exited before its first turn
                answer = b""
            if answer == b"y":
                i += 1
            else:  # EOF: the process exited; wait for it before the next one works
                proc.wait(max(1.0, deadline - time.monotonic()))
                live.pop(i)
        done = {}
        for name, (proc, _, _, out, err) in kids.items():
            out.seek(0)
            err.seek(0)
            done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out.read(),
                                                     err.read())
        return done
    finally:
        for proc, _, _, out, err in kids.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()
            err.close()
        for fd in fds:
            os.close(fd)


def _read_one(fd, deadline):
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("lockstep: a contender held its turn past the timeout")
        ready, _, _ = select.select([fd], [], [], min(left, 5.0))
        if ready:
            return os.read(fd, 1)


def paired(chunks, images_per_step, name, base, skip_epochs=1):
    """Per-chunk ratios of `name`'s images/s to `base`'s: chunk k of epoch e against chunk k
    of epoch e, for epochs from `skip_epochs` on (the first compiles). `chunks` and
    `images_per_step` map contenders to their [epoch, steps, seconds] lists and mean images
    per step. Returns the list of ratios, in order."""
    def keyed(n):
        out, seen = {}, {}
        for epoch, steps, seconds in chunks[n]:
            if epoch >= skip_epochs:
                k = seen[epoch] = seen.get(epoch, -1) + 1
                out[(epoch, k)] = steps * images_per_step[n] / seconds
        return out
    a, b = keyed(name), keyed(base)
    return [a[k] / b[k] for k in sorted(a) if k in b]


def spread(ratios):
    """The median and the quartiles of `ratios` (exclusive method; the median alone for
    fewer than 4)."""
    med = statistics.median(ratios)
    if len(ratios) < 4:
        return med, med, med
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return med, q1, q3
