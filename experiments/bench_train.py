"""Training-step throughput: `python experiments/bench_train.py [--steps=3] [--cases=...]`.

Prints seconds per step, steps/s and images/s for the paper model (batch 8 of 128^2 and batch 16
of 64^2), the default-model family and the smoke config, with the number of CPU threads used.
Random uint8 batches; the first (compiling) step is excluded.

With `--torch_baseline` (the default when torch is installed: `pip install 'l3c-jax[torch]'`) every
case also times our PyTorch implementation of the same model, loss and RMSprop step
(experiments/torch_reference.py, the stand-in for the official L3C-PyTorch code; same parameter
count, checked) on the same batch shape and thread count. JAX and torch steps alternate (the
order flips every repeat) so machine noise hits both alike; the column "jax/torch" is the ratio of
the median step times (< 1: JAX is faster). On a shared machine, quote only such same-run ratios.
Torch's OpenMP threads sleep when idle (`--torch_omp_wait_policy=PASSIVE`, the default here): with
libgomp's default spinning, 2 torch threads on a 2-core machine busy with other jobs ran 7-12x
slower, which would flatter JAX; on an idle machine spinning may be slightly faster (use ACTIVE).

`--compute_dtype=bfloat16` times the mixed-precision step (`--train.compute_dtype`); torch stays
float32. Every case line ends with the machine's load average (1 minute) read when the case
finished, and `uptime` is printed before and after: on a shared machine the load says how far the
absolute figures can be trusted (the same-run ratio is robust to it).

Like experiments/train.py, the step runs with XLA:CPU's YNNPACK convolutions off
(l3c_jax/train/xla_cpu.py); `--xla_ynn_convolutions` times XLA's default instead.

Threads: XLA's CPU backend uses one thread per core of the process's CPU affinity and has no
thread-count option, so `--threads=N` restricts the process to N cores (before JAX starts) and
torch gets `torch.set_num_threads(N)`; both frameworks then use N threads.
"""

import importlib.util
import os
import subprocess
import time

from absl import app
from absl import flags

flags.DEFINE_integer("steps", 3, "Timed steps per case and framework (after one warm-up step).")
flags.DEFINE_list("cases", ["paper_b8_128", "paper_b16_64", "default_b16_64", "smoke_b8_32"],
                  "Cases to run.")
flags.DEFINE_bool("torch_baseline", importlib.util.find_spec("torch") is not None,
                  "Also time the PyTorch reference step, interleaved with the JAX steps "
                  "(default: on when torch is importable).")
flags.DEFINE_enum("torch_omp_wait_policy", "PASSIVE", ["PASSIVE", "ACTIVE", "default"],
                  "OMP_WAIT_POLICY for torch's OpenMP threads (unless set in the environment). "
                  "PASSIVE: idle threads sleep. With libgomp's default spinning, torch with 2 "
                  "threads on a 2-core machine that also runs other jobs was measured 7-12x "
                  "slower per step (threads spin waiting for a descheduled peer), PASSIVE ~1x "
                  "(docs/measurements.md#training-step).")
flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"],
                  "Compute dtype of the JAX step's convs (TrainConfig.compute_dtype).")
flags.DEFINE_bool("xla_ynn_convolutions", False,
                  "Time XLA:CPU's default (YNNPACK) convolutions instead of the training "
                  "launchers' setting (l3c_jax/train/xla_cpu.py: YNNPACK for dots only, 1.8-3.4x "
                  "faster steps, docs/measurements.md#training-step). Takes effect only when "
                  "XLA_FLAGS does not set --xla_cpu_experimental_ynn_fusion_type.")
flags.DEFINE_integer("threads", 0, "Restrict the process to this many cores (0: all cores of "
                     "its CPU affinity); XLA and torch both use that many threads.")
FLAGS = flags.FLAGS

CASES = {
    # name: (model overrides, batch, crop)
    "paper_b8_128": ({}, 8, 128),
    "paper_b16_64": ({}, 16, 64),
    "default_b16_64": ({"num_channels": 32, "num_res_blocks": 4, "num_mixtures": 5}, 16, 64),
    "smoke_b8_32": ({"num_channels": 8, "num_res_blocks": 1, "num_mixtures": 2}, 8, 32),
}

# The official L3C-PyTorch code on this machine, idle, 2 threads
# (docs/measurements.md#official-l3c-pytorch-on-this-cpu).
OFFICIAL_2_THREADS_S = {"paper_b8_128": 1.77, "paper_b16_64": 0.82}


def _timed(fn):
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def _uptime() -> str:
  """`uptime`'s line (load averages over 1, 5 and 15 minutes)."""
  try:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def jax_case(cfg, batch, crop, dtype="float32"):
  """Builds the jitted JAX train step -> (step() that blocks, number of parameters)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from l3c_jax.models.families import count_params  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  from l3c_jax.train.config import TrainConfig  # pylint: disable=g-import-not-at-top
  tx = step_lib.make_optimizer(TrainConfig(), 1000)
  holder = {"state": step_lib.create_train_state(cfg, tx, jax.random.key(0))}
  num_params = count_params(holder["state"].params)
  f = jax.jit(lambda s, x: step_lib.train_step(s, x, cfg, tx, dtype=dtype), donate_argnums=(0,))
  rng = np.random.default_rng(0)
  x = jax.device_put(rng.integers(0, 256, (batch, crop, crop, 3), dtype=np.uint8))

  def step():
    holder["state"], m = f(holder["state"], x)
    jax.block_until_ready(m)

  return step, num_params


def torch_case(cfg, batch, crop):
  """Builds the PyTorch reference train step -> (step(), number of parameters)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import torch_reference  # pylint: disable=g-import-not-at-top
  model, train_step = torch_reference.make_train_step(cfg)
  num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
  rng = np.random.default_rng(0)
  x = torch.from_numpy(rng.integers(0, 256, (batch, 3, crop, crop), dtype=np.uint8))
  return lambda: train_step(x), num_params


def bench_case(name, steps, with_torch):
  """-> dict of first-step and median step seconds for JAX (and torch)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from l3c_jax.models import L3CConfig  # pylint: disable=g-import-not-at-top
  overrides, batch, crop = CASES[name]
  cfg = L3CConfig(**overrides)
  runners = {"jax": jax_case(cfg, batch, crop, FLAGS.compute_dtype)}
  if with_torch:
    runners["torch"] = torch_case(cfg, batch, crop)
    if runners["torch"][1] != runners["jax"][1]:
      raise AssertionError(f"{name}: torch reference has {runners['torch'][1]} parameters, "
                           f"l3c-jax {runners['jax'][1]}")
  if not overrides and runners["jax"][1] != 5_008_395:
    raise AssertionError(f"paper config has {runners['jax'][1]} parameters, not 5,008,395")
  result = {k + "_first_s": _timed(step) for k, (step, _) in runners.items()}
  times = {k: [] for k in runners}
  order = list(runners)
  for _ in range(steps):
    for k in order:  # alternate which framework goes first
      times[k].append(_timed(runners[k][0]))
    order.reverse()
  for k, t in times.items():
    result[k + "_s"] = float(np.median(t))
  result["num_params"] = runners["jax"][1]
  return result


def main(argv):
  del argv
  if FLAGS.threads:
    cores = sorted(os.sched_getaffinity(0))
    if FLAGS.threads > len(cores):
      raise app.UsageError(f"--threads={FLAGS.threads} but only {len(cores)} cores available")
    os.sched_setaffinity(0, cores[:FLAGS.threads])  # before XLA sizes its thread pool
  num_threads = len(os.sched_getaffinity(0))
  from l3c_jax.train import xla_cpu  # pylint: disable=g-import-not-at-top
  if not FLAGS.xla_ynn_convolutions:
    xla_cpu.use_training_flags()  # as experiments/train.py (before JAX's backend starts)
  import jax  # pylint: disable=g-import-not-at-top
  torch_note = "torch: off"
  if FLAGS.torch_baseline:
    if FLAGS.torch_omp_wait_policy != "default":
      os.environ.setdefault("OMP_WAIT_POLICY", FLAGS.torch_omp_wait_policy)  # read at torch import
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(num_threads)
    torch_note = (f"torch {torch.__version__}: threads={torch.get_num_threads()}, "
                  f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
  print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"devices: {jax.device_count()}, CPU cores available: {os.cpu_count()}, "
        f"used: {num_threads} (XLA: threads={num_threads}, one per core of the process affinity; "
        f"{torch_note})")
  print(f"uptime: {_uptime()}")
  print(f"JAX compute dtype: {FLAGS.compute_dtype}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print(f"median of {FLAGS.steps} steps per framework after one warm-up step"
        + ("; JAX and torch steps interleaved" if FLAGS.torch_baseline else ""))
  header = (f"{'case':<16} {'batch':>5} {'crop':>5} {'first step s':>12} {'s/step':>8} "
            f"{'steps/s':>8} {'img/s':>8} {'kpx/s':>8}")
  if FLAGS.torch_baseline:
    header += f" {'torch s/step':>12} {'torch img/s':>11} {'jax/torch time ratio':>20}"
  header += f" {'load 1m':>7}"
  print(header, flush=True)
  for name in FLAGS.cases:
    _, batch, crop = CASES[name]
    r = bench_case(name, FLAGS.steps, FLAGS.torch_baseline)
    sec = r["jax_s"]
    line = (f"{name:<16} {batch:>5} {crop:>5} {r['jax_first_s']:>12.2f} {sec:>8.3f} "
            f"{1 / sec:>8.3f} {batch / sec:>8.2f} {batch * crop * crop / sec / 1e3:>8.1f}")
    if FLAGS.torch_baseline:
      line += (f" {r['torch_s']:>12.3f} {batch / r['torch_s']:>11.2f} "
               f"{sec / r['torch_s']:>20.3f}")
    line += f" {os.getloadavg()[0]:>7.2f}"
    print(line, flush=True)
  official = ", ".join(f"{k} {v} s" for k, v in OFFICIAL_2_THREADS_S.items())
  print(f"(official L3C-PyTorch, idle machine, 2 threads, docs/measurements.md: {official}/step)")
  print(f"uptime: {_uptime()}")


if __name__ == "__main__":
  app.run(main)
