"""Speed of `coding.exact_tables` vs the float builder `coding.tables`, in one process.

  PYTHONPATH=. python experiments/bench_exact_tables.py [--rows 65536] [--reps 11]

Same mixtures for both (K = 5, A = 256, logits N(0, 2), means in [-3, 258], s in [0.5, 20]
pixels; the exact builder gets them snapped to its grids). Runs alternate between the builders;
prints min / median wall and process CPU time per call (CPU time is less disturbed by other
jobs on a shared machine) and the ratios exact / float.
"""

import argparse
import time

import jax.numpy as jnp
import numpy as np

from l3c_jax.coding import exact_tables, tables
from l3c_jax.likelihood import dmll


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--rows", type=int, default=65536)
  parser.add_argument("--mixtures", type=int, default=5)
  parser.add_argument("--reps", type=int, default=11)
  args = parser.parse_args()
  n, k = args.rows, args.mixtures
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 2, (n, k)).astype(np.float32)
  means = rng.uniform(-3, 258, (n, k)).astype(np.float32)
  log_scales = np.log(rng.uniform(0.5, 20, (n, k))).astype(np.float32)
  logit16, mean64, ls32 = (jnp.asarray(np.round(a * f).astype(np.int32))
                           for a, f in ((logits, 16), (means, 64), (log_scales, 32)))
  logits, means, log_scales = map(jnp.asarray, (logits, means, log_scales))
  builders = {
      "float": lambda: tables.frequency_table(logits, means, log_scales, dmll.RGB_ALPHABET),
      "exact": lambda: exact_tables.integer_frequencies(logit16, mean64, ls32, 256),
  }
  for build in builders.values():
    build().block_until_ready()
  wall = {name: [] for name in builders}
  cpu = {name: [] for name in builders}
  for _ in range(args.reps):
    for name, build in builders.items():
      t_wall, t_cpu = time.perf_counter(), time.process_time()
      build().block_until_ready()
      wall[name].append(time.perf_counter() - t_wall)
      cpu[name].append(time.process_time() - t_cpu)
  print(f"{n} rows x K={k} x A=256, {args.reps} reps")
  for name in builders:
    print(f"{name:6s} wall min {1e3 * min(wall[name]):7.1f} ms median "
          f"{1e3 * np.median(wall[name]):7.1f} ms | cpu min {1e3 * min(cpu[name]):7.1f} ms "
          f"median {1e3 * np.median(cpu[name]):7.1f} ms")
  ratio = lambda d, f: f(d["exact"]) / f(d["float"])
  print(f"exact / float: wall min {ratio(wall, min):.3f} median {ratio(wall, np.median):.3f} | "
        f"cpu min {ratio(cpu, min):.3f} median {ratio(cpu, np.median):.3f}")


if __name__ == "__main__":
  main()
