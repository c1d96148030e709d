"""Schedules: callables step -> value, for term weights (KL warm-up) and targets (capacity).

```none
linear(step) = start + (end - start) * clip((step - delay) / steps, 0, 1)
warm-up:   beta(step) = linear(start=0, end=beta, steps=N)          (Bowman et al. 2016)
capacity:  C(step)    = linear(start=0, end=C_max, steps=N)         (Burgess et al. 2018)
```
A schedule is evaluated inside the compiled train step with the optimizer's iteration
count (an int64 tensor), so it is a pure function of the step: a resumed run continues it
where it stopped.

#### References
[1] Bowman et al. (2016), Generating Sentences from a Continuous Space, arXiv:1511.06349.
[2] Burgess et al. (2018), Understanding disentangling in beta-VAE, arXiv:1804.03599.
"""

import math
import numbers

import numpy as np

from tfvae._tf import tf


def _check_number(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number; got {value!r}.")
    return float(value)


def check_steps(steps, name="steps"):
    """A schedule's length: a positive int (a zero-length ramp is a step function; say so)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
        raise ValueError(f"`{name}` must be a positive int (the length of the linear ramp); "
                         f"got {steps!r}.")
    return int(steps)


class LinearSchedule:
    """A linear ramp from `start` to `end` over `steps` optimizer steps, flat outside it.

    Args:
        start: the value up to step `delay`.
        end: the value from step `delay + steps` on.
        steps: the ramp's length, a positive int.
        delay: steps to hold `start` before the ramp, a non-negative int. Default value: 0.

    Example:

    ```python
    warmup = LinearSchedule(0.0, 4.0, steps=1000)
    float(warmup(500))   # 2.0
    ```
    """

    def __init__(self, start, end, steps, delay=0):
        self.start = _check_number(start, "start")
        self.end = _check_number(end, "end")
        self.steps = check_steps(steps)
        if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) or delay < 0:
            raise ValueError(f"`delay` must be a non-negative int; got {delay!r}.")
        self.delay = int(delay)

    def __call__(self, step):
        """The value at `step` (an int or an integer tensor), a float32 scalar tensor."""
        step = tf.cast(step, tf.float32)
        frac = tf.clip_by_value((step - float(self.delay)) / float(self.steps), 0.0, 1.0)
        return tf.constant(self.start, tf.float32) + (self.end - self.start) * frac

    @property
    def min_value(self):
        return min(self.start, self.end)

    def get_config(self):
        return {"start": self.start, "end": self.end, "steps": self.steps, "delay": self.delay}

    def __repr__(self):
        return (f"LinearSchedule(start={self.start:g}, end={self.end:g}, steps={self.steps}, "
                f"delay={self.delay})")

    def __eq__(self, other):
        return isinstance(other, LinearSchedule) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(tuple(self.get_config().items()))


def warmup(value, steps):
    """KL warm-up: 0 at step 0, rising linearly to `value` at step `steps`."""
    return LinearSchedule(0.0, value, steps)


def value_at(schedule_or_value, step):
    """A float or a schedule's value at `step`, as a float32 tensor."""
    if callable(schedule_or_value):
        return tf.cast(schedule_or_value(step), tf.float32)
    return tf.constant(float(schedule_or_value), tf.float32)
