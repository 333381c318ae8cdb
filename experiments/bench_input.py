r"""Training-input throughput: `python experiments/bench_input.py --data_dir=DIR [--seconds=N]`.

Times, in one run and alternating (so machine noise hits all alike), the loaders that feed
training at the paper's crop 128 and batch 30:
  png            pipeline.CropLoader on the PNG folder, --png_workers decoding threads (the path
                 training used before the store; still the default of --data_dir=FOLDER);
  store_inline   train.input.StoreLoader on an image store, batches made in the calling thread;
  store_workers  the same with --store_workers grain worker processes;
  store_device   store_workers behind train.input.DevicePrefetcher, each batch put onto the
                 default device 2 batches ahead (what the training loop runs).
For each: crops/s, and CPU-seconds per crop: user + system time of this process and all its
children (the worker processes too, while they run: psutil), over the timed window. The window
starts after one warm-up batch (thread / process start-up and the store's first page-ins are
not timed; the page cache is warm after the first round). Prints the machine's load average:
on a shared machine, compare the rows of one run, not runs.

The store is --store_dir, or is built from --data_dir into a temporary directory first (its
one-off decode time is printed).
"""

import os
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import psutil

FLAGS = flags.FLAGS
if "data_dir" in FLAGS:  # defined by another launcher imported into the same process (tests)
  flags.declare_key_flag("data_dir")
else:
  flags.DEFINE_string("data_dir", None, "Folder(s) of training PNGs (comma-separated).")
flags.DEFINE_string("store_dir", None, "An image store of --data_dir (prepare_store.py); "
                    "default: build one in a temporary directory.")
flags.DEFINE_float("seconds", 10.0, "Timed seconds per loader and round.")
flags.DEFINE_integer("rounds", 2, "Rounds; each runs every loader once, in alternating order.")
flags.DEFINE_integer("crop_size", 128, "Crop side (the paper: 128).")
flags.DEFINE_integer("batch_size", 30, "Crops per batch (the paper: 30).")
flags.DEFINE_integer("png_workers", 2, "Decoding threads of the PNG loader (training's default).")
flags.DEFINE_integer("store_workers", 2, "Worker processes of the store loader (-1: one per "
                     "core).")
flags.DEFINE_list("loaders", ["png", "store_inline", "store_workers", "store_device"],
                  "Loaders to time.")

LOADERS = ("png", "store_inline", "store_workers", "store_device")


def _cpu_seconds() -> float:
  """User + system CPU seconds of this process, its live children and its reaped children."""
  me = psutil.Process()
  t = me.cpu_times()
  total = t.user + t.system + t.children_user + t.children_system
  for child in me.children(recursive=True):
    try:
      c = child.cpu_times()
      total += c.user + c.system
    except psutil.Error:  # exited meanwhile: counted in children_* once reaped
      pass
  return total


def _make(name: str, paths, store_dir: str):
  from l3c_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import input as input_lib  # pylint: disable=g-import-not-at-top
  if name == "png":
    return pipeline.CropLoader(paths, FLAGS.crop_size, FLAGS.batch_size, seed=0,
                               num_workers=FLAGS.png_workers)
  workers = 0 if name == "store_inline" else FLAGS.store_workers
  loader = input_lib.StoreLoader(store_dir, FLAGS.crop_size, FLAGS.batch_size, seed=0,
                                 num_workers=workers)
  if name == "store_device":
    import jax  # pylint: disable=g-import-not-at-top
    device = jax.devices()[0]
    return loader, input_lib.DevicePrefetcher(loader, lambda b: jax.device_put(b, device), 2)
  return loader


def _time_one(name: str, paths, store_dir: str, seconds: float):
  """Returns (crops, wall seconds, CPU seconds) over a window of `seconds` after a warm-up."""
  made = _make(name, paths, store_dir)
  loader, it = made if isinstance(made, tuple) else (made, made)
  try:
    out = next(it)
    if hasattr(out, "block_until_ready"):
      out.block_until_ready()
    n = 0
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
      out = next(it)
      n += out.shape[0]
    if hasattr(out, "block_until_ready"):
      out.block_until_ready()
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
  finally:
    loader.close()
  return n, wall, cpu


def main(argv):
  del argv
  if not FLAGS.data_dir:
    print("bench_input: error: --data_dir is required", file=sys.stderr)
    return 2
  unknown = [n for n in FLAGS.loaders if n not in LOADERS]
  if unknown:
    print(f"bench_input: error: unknown loader {unknown[0]} (known: {', '.join(LOADERS)})",
          file=sys.stderr)
    return 2
  from l3c_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from l3c_jax.data import store as store_lib  # pylint: disable=g-import-not-at-top
  paths = pipeline.list_images(FLAGS.data_dir)
  tmp = None
  store_dir = FLAGS.store_dir
  if not store_dir:
    tmp = tempfile.mkdtemp(prefix="bench_input_")
    store_dir = os.path.join(tmp, "store")
    t0 = time.perf_counter()
    stats = store_lib.write_store(paths, store_dir)
    print(f"store: {stats['num_images']} images, {stats['num_bytes'] / 2**20:.0f} MiB, "
          f"built in {time.perf_counter() - t0:.1f} s (once per pool) in {store_dir}")
  try:
    print(f"{len(paths)} PNGs in {FLAGS.data_dir}; crop {FLAGS.crop_size}, "
          f"batch {FLAGS.batch_size}; {os.cpu_count()} cores; "
          f"load average before {os.getloadavg()[0]:.2f}", flush=True)
    totals = {name: [0, 0.0, 0.0] for name in FLAGS.loaders}
    for r in range(FLAGS.rounds):
      order = list(FLAGS.loaders) if r % 2 == 0 else list(reversed(FLAGS.loaders))
      for name in order:
        n, wall, cpu = _time_one(name, paths, store_dir, FLAGS.seconds)
        for k, v in enumerate((n, wall, cpu)):
          totals[name][k] += v
        print(f"  round {r + 1} {name:<14s} {n / wall:8.1f} crops/s  "
              f"{1e3 * cpu / max(n, 1):8.3f} CPU-ms/crop", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    print(f"{'loader':<14s} {'crops':>7s} {'crops/s':>9s} {'CPU-ms/crop':>12s} "
          f"{'cores busy':>10s} {'CPU/crop vs png':>16s}")
    base = totals.get("png")
    for name, (n, wall, cpu) in totals.items():
      per_crop = cpu / max(n, 1)
      ratio = ""
      if base and base[0]:
        ratio = f"{(base[2] / base[0]) / per_crop:.1f}x less" if per_crop else "-"
      print(f"{name:<14s} {n:7d} {n / wall:9.1f} {1e3 * per_crop:12.3f} {cpu / wall:10.2f} "
            f"{ratio:>16s}")
  finally:
    if tmp:
      shutil.rmtree(tmp, ignore_errors=True)
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
