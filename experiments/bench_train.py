"""Training-step throughput: `python experiments/bench_train.py [--steps=5] [--cases=...]`.

Prints seconds per step, steps/s and images/s for the paper model (batch 8 of 128^2 and batch 16
of 64^2), the default-model family and the smoke config, with the number of CPU threads XLA may
use. Random uint8 batches; the first (compiling) step is excluded.
"""

import os
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_integer("steps", 5, "Timed steps per case (after one warm-up step).")
flags.DEFINE_list("cases", ["paper_b8_128", "paper_b16_64", "default_b16_64", "smoke_b8_32"],
                  "Cases to run.")
FLAGS = flags.FLAGS

CASES = {
    # name: (model overrides, batch, crop)
    "paper_b8_128": ({}, 8, 128),
    "paper_b16_64": ({}, 16, 64),
    "default_b16_64": ({"num_channels": 32, "num_res_blocks": 4, "num_mixtures": 5}, 16, 64),
    "smoke_b8_32": ({"num_channels": 8, "num_res_blocks": 1, "num_mixtures": 2}, 8, 32),
}


def bench_case(overrides, batch, crop, steps):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from l3c_jax.models import L3CConfig  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  from l3c_jax.train.config import TrainConfig  # pylint: disable=g-import-not-at-top
  cfg = L3CConfig(**overrides)
  tx = step_lib.make_optimizer(TrainConfig(), 1000)
  state = step_lib.create_train_state(cfg, tx, jax.random.key(0))
  f = jax.jit(lambda s, x: step_lib.train_step(s, x, cfg, tx), donate_argnums=(0,))
  rng = np.random.default_rng(0)
  x = jax.device_put(rng.integers(0, 256, (batch, crop, crop, 3), dtype=np.uint8))
  t0 = time.perf_counter()
  state, m = f(state, x)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, m = f(state, x)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  return compile_s, float(np.median(times))


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"devices: {jax.device_count()}, CPU threads available: {len(os.sched_getaffinity(0))}")
  print(f"{'case':<16} {'batch':>5} {'crop':>5} {'first step s':>12} {'s/step':>8} "
        f"{'steps/s':>8} {'img/s':>8} {'kpx/s':>8}")
  for name in FLAGS.cases:
    overrides, batch, crop = CASES[name]
    first, sec = bench_case(overrides, batch, crop, FLAGS.steps)
    print(f"{name:<16} {batch:>5} {crop:>5} {first:>12.2f} {sec:>8.3f} {1 / sec:>8.3f} "
          f"{batch / sec:>8.2f} {batch * crop * crop / sec / 1e3:>8.1f}", flush=True)


if __name__ == "__main__":
  app.run(main)
