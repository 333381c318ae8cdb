r"""Accelerator check: `python experiments/device_check.py --data_dir=STORE [--preset=auto]`.

What a user with a new GPU (or TPU) machine wants to know before starting a long run, measured
in one process and printed as one table (and --json):
  input        the real input path alone (StoreLoader with grain workers, or the PNG
               CropLoader for a folder, behind the DevicePrefetcher): crops/s;
  train f32    the training step of the preset's model fed by that input path: steps/s,
               images/s (compilation and the first steps excluded);
  train bf16   the same with --train.compute_dtype=bfloat16;
  sweep x4     one step of a 4-member sweep (experiments/sweep.py's step; vmapped, or a loop on
               a CPU as the sweep does there) on one batch;
  codec        encode and decode seconds of a 512x512 crop with the shipped default model
               (compilation excluded), exact round trip checked;
  portable     a file written here decodes exactly in a CPU-only process, and the file that
               process writes for the same pixels decodes here; whether the two files are
               byte-identical.
Presets: `paper` (the paper's model, batch 30 of 128^2 crops), `smoke` (a tiny model, batch 8 of
32^2: proves the script on a CPU in about a minute), `auto` (paper on an accelerator, smoke on a
CPU). One device is used (the check is per chip). Exits 1 if any check failed; each failure is
one line and the other checks still run.
Expected on one H200 (the budget it was sized for): under 8 minutes in all, most of it
compilation.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

FLAGS = flags.FLAGS


def _define(define, name, default, help_text, **kw):
  """Defines --name, or adopts it as a key flag where another launcher imported into the same
  process (the tests) defined it already."""
  if name in FLAGS:
    flags.declare_key_flag(name)
  else:
    define(name, default, help_text, **kw)


_define(flags.DEFINE_string, "data_dir", None, "Training data: an image store "
        "(prepare_store.py) or a folder of PNGs.")
flags.DEFINE_enum("preset", "auto", ["auto", "paper", "smoke"], "Model and batch (see above).")
_define(flags.DEFINE_float, "seconds", 15.0, "Timed seconds per throughput measurement.")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Compute dtypes of the training rows.")
flags.DEFINE_string("codec_image", os.path.join("..", "shared", "data", "kodak", "kodim23.png"),
                    "Photo whose 512x512 crop is coded (a smooth random image if missing).")
flags.DEFINE_integer("workers", 2, "Input worker processes (store) or threads (PNG folder).")
_define(flags.DEFINE_string, "json", None, "Also write the results here (JSON).")
flags.DEFINE_string("cross_worker", None, "Internal: 'PIXELS.npy,IN.l3c,OUT_DIR' (the CPU-only "
                    "side of the portable check).")

PRESETS = {
    # name: (model overrides, batch, crop)
    "paper": ({}, 30, 128),
    "smoke": ({"num_channels": 8, "num_res_blocks": 1, "num_mixtures": 2}, 8, 32),
}


def _log(msg):
  print(msg, file=sys.stderr, flush=True)


def _rate(fn, seconds: float, min_calls: int = 3):
  """Calls fn() until `seconds` passed and at least min_calls were made -> (calls/s, calls)."""
  n, t0 = 0, time.perf_counter()
  while n < min_calls or time.perf_counter() - t0 < seconds:
    fn()
    n += 1
  return n / (time.perf_counter() - t0), n


def _configs(preset: str, dtype: str):
  from l3c_jax.models import L3CConfig  # pylint: disable=g-import-not-at-top
  from l3c_jax.train.config import TrainConfig  # pylint: disable=g-import-not-at-top
  overrides, batch, crop = PRESETS[preset]
  tcfg = TrainConfig(batch_size=batch, crop_size=crop, num_workers=FLAGS.workers,
                     compute_dtype=dtype)
  return L3CConfig(**overrides), tcfg


def check_input(preset: str, device) -> dict:
  """Crops/s of the training input path alone (loader + device prefetch)."""
  import jax  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import input as input_lib  # pylint: disable=g-import-not-at-top
  _, tcfg = _configs(preset, "float32")
  loader = input_lib.make_loader(tcfg, FLAGS.data_dir, tcfg.batch_size)
  try:
    batches = input_lib.DevicePrefetcher(loader, lambda b: jax.device_put(b, device), 2)
    jax.block_until_ready(next(batches))  # workers started, first pages read
    rate, _ = _rate(lambda: jax.block_until_ready(next(batches)), FLAGS.seconds)
  finally:
    loader.close()
  return {"crops_per_s": rate * tcfg.batch_size, "kind": type(loader).__name__}


def check_train(preset: str, dtype: str, device) -> dict:
  """Steps/s and images/s of the train step fed by the real input path."""
  import jax  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import input as input_lib  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  cfg, tcfg = _configs(preset, dtype)
  loader = input_lib.make_loader(tcfg, FLAGS.data_dir, tcfg.batch_size)
  try:
    tx = step_lib.make_optimizer(tcfg, loader.batches_per_epoch)
    t0 = time.perf_counter()
    with jax.default_device(device):
      state = jax.jit(lambda k: step_lib.create_train_state(cfg, tx, k))(jax.random.key(0))
    f = jax.jit(lambda s, x: step_lib.train_step(s, x, cfg, tx, dtype=tcfg.compute_dtype),
                donate_argnums=(0,))
    batches = input_lib.DevicePrefetcher(loader, lambda b: jax.device_put(b, device), 2)
    holder = {"state": state}

    def step():
      holder["state"], m = f(holder["state"], next(batches))
      return m

    for _ in range(2):  # compilation, then one step at speed with the pipeline full
      jax.block_until_ready(step())
    first_s = time.perf_counter() - t0
    metrics = {}

    def timed():
      metrics["last"] = step()

    # Steps are dispatched asynchronously; the rate is taken over a window closed by a wait.
    n, t1 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t1 < FLAGS.seconds:
      timed()
      n += 1
    jax.block_until_ready(metrics["last"])
    rate = n / (time.perf_counter() - t1)
    bpsp = float(jax.device_get(metrics["last"]["bpsp"]))
  finally:
    loader.close()
  return {"steps_per_s": rate, "images_per_s": rate * tcfg.batch_size, "first_s": first_s,
          "bpsp": bpsp}


def check_sweep(preset: str, device) -> dict:
  """Seconds per step of a 4-member vmapped sweep on one batch."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import ensemble  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  cfg, tcfg = _configs(preset, "float32")
  members = 4
  tx = step_lib.make_optimizer(tcfg, 1000)
  with jax.default_device(device):
    states = ensemble.create_states(cfg, tx, list(range(members)), [1.0] * members)
    # vmap on accelerators; on the CPU the sweep's default is a loop (XLA:CPU's batched convs
    # were ~100x slower per member than the loop's).
    mode = ensemble.default_mode()
    sweep_step = jax.jit(ensemble.make_sweep_step(cfg, tx, members, mode=mode),
                         donate_argnums=(0,))
    rng = np.random.default_rng(0)
    x = jax.device_put(rng.integers(0, 256, (tcfg.batch_size, tcfg.crop_size, tcfg.crop_size, 3),
                                    dtype=np.uint8), device)
    ws = jnp.ones((members, cfg.num_scales), jnp.float32)
    sigmas = jnp.full((members,), cfg.soft_sigma, jnp.float32)
  holder = {"states": states}

  def step():
    holder["states"], m = sweep_step(holder["states"], x, ws, sigmas)
    jax.block_until_ready(m)

  for _ in range(2):  # the second call compiles again: its states are the first's outputs, now
    step()            # committed to the device (measured: ~14 s per "step" without it)
  rate, _ = _rate(step, FLAGS.seconds)
  return {"steps_per_s": rate, "member_images_per_s": rate * members * tcfg.batch_size,
          "mode": mode}


def _codec_pixels() -> np.ndarray:
  from l3c_jax.data import images  # pylint: disable=g-import-not-at-top
  if os.path.exists(FLAGS.codec_image):
    pixels = images.read_image(FLAGS.codec_image).pixels[..., :3]
    if pixels.shape[0] >= 512 and pixels.shape[1] >= 512:
      return np.ascontiguousarray(pixels[:512, :512])
  # A smooth random image: codes like a photo more than noise does.
  rng = np.random.default_rng(0)
  coarse = rng.integers(0, 256, (9, 9, 3)).astype(np.float64)
  t = np.linspace(0, 8, 512)
  i = np.clip(t.astype(int), 0, 7)
  f = (t - i)[:, None, None]
  rows = coarse[i] * (1 - f) + coarse[i + 1] * f
  cols = rows[:, i] * (1 - f[None, :, 0]) + rows[:, i + 1] * f[None, :, 0]
  return (cols + rng.normal(0, 4, cols.shape)).clip(0, 255).astype(np.uint8)


def check_codec(pixels: np.ndarray) -> dict:
  """Encode / decode seconds of the 512x512 crop with the shipped model (after a warm-up)."""
  import l3c_jax  # pylint: disable=g-import-not-at-top
  model = l3c_jax.load_default_model()
  data = l3c_jax.compress(pixels, model, method="model")  # compiles
  l3c_jax.decompress(data, model)
  enc, dec = [], []
  for _ in range(2):
    t0 = time.perf_counter()
    data = l3c_jax.compress(pixels, model, method="model")
    enc.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    out = l3c_jax.decompress(data, model)
    dec.append(time.perf_counter() - t0)
    if not np.array_equal(out, pixels):
      raise AssertionError("the 512x512 round trip is not exact")
  return {"encode_s": min(enc), "decode_s": min(dec), "bpsp": 8 * len(data) / pixels.size,
          "data": data}


def check_portable(pixels: np.ndarray, data: bytes) -> dict:
  """Files across this backend and a CPU-only process (JAX_PLATFORMS=cpu)."""
  import jax  # pylint: disable=g-import-not-at-top
  import l3c_jax  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    np.save(os.path.join(tmp, "pixels.npy"), pixels)
    with open(os.path.join(tmp, "here.l3c"), "wb") as f:
      f.write(data)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    spec = ",".join([os.path.join(tmp, "pixels.npy"), os.path.join(tmp, "here.l3c"), tmp])
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), f"--cross_worker={spec}"],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode:
      raise AssertionError(f"the CPU-only process failed: {proc.stderr.strip()[-300:]}")
    with open(os.path.join(tmp, "result.json")) as f:
      cpu = json.load(f)
    with open(os.path.join(tmp, "cpu.l3c"), "rb") as f:
      cpu_data = f.read()
  here_decodes = np.array_equal(l3c_jax.decompress(cpu_data), pixels)
  return {"here": jax.default_backend(), "other": cpu["backend"],
          "here_to_other_exact": cpu["decodes_exact"], "other_to_here_exact": here_decodes,
          "identical_files": cpu_data == data}


def cross_worker(spec: str) -> int:
  """The CPU-only side of check_portable: decode the given file, write our own."""
  import jax  # pylint: disable=g-import-not-at-top
  import l3c_jax  # pylint: disable=g-import-not-at-top
  pixels_path, data_path, out_dir = spec.split(",")
  pixels = np.load(pixels_path)
  with open(data_path, "rb") as f:
    data = f.read()
  exact = bool(np.array_equal(l3c_jax.decompress(data), pixels))
  with open(os.path.join(out_dir, "cpu.l3c"), "wb") as f:
    f.write(l3c_jax.compress(pixels, method="model"))
  with open(os.path.join(out_dir, "result.json"), "w") as f:
    json.dump({"backend": jax.default_backend(), "decodes_exact": exact}, f)
  return 0


def main(argv):
  del argv
  if FLAGS.cross_worker:
    return cross_worker(FLAGS.cross_worker)
  if not FLAGS.data_dir:
    raise app.UsageError("--data_dir is required (an image store or a folder of PNGs)")
  import jax  # pylint: disable=g-import-not-at-top
  from l3c_jax import compile_cache  # pylint: disable=g-import-not-at-top
  compile_cache.enable()
  device = jax.devices()[0]
  preset = FLAGS.preset
  if preset == "auto":
    preset = "smoke" if device.platform == "cpu" else "paper"
  _, batch, crop = PRESETS[preset]
  load = os.getloadavg()
  print(f"device: {device.platform} ({device.device_kind}), {jax.device_count()} device(s), "
        f"jax {jax.__version__}; preset {preset} (batch {batch} of {crop}^2); "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
  t_start = time.time()
  results, failures = {"device": device.device_kind, "preset": preset}, []
  pixels = _codec_pixels()
  checks = [("input", lambda: check_input(preset, device))]
  checks += [(f"train {d}", lambda d=d: check_train(preset, d, device)) for d in FLAGS.dtypes]
  checks += [("sweep x4", lambda: check_sweep(preset, device)),
             ("codec 512x512", lambda: check_codec(pixels))]
  for name, fn in checks:
    _log(f"device_check: {name} ...")
    try:
      results[name] = fn()
    except Exception as e:  # pylint: disable=broad-except
      failures.append(f"{name}: {type(e).__name__}: {e}")
  if "codec 512x512" in results:
    _log("device_check: portable ...")
    try:
      results["portable"] = check_portable(pixels, results["codec 512x512"].pop("data"))
    except Exception as e:  # pylint: disable=broad-except
      failures.append(f"portable: {type(e).__name__}: {e}")
  print(f"{'check':<16} result")
  if "input" in results:
    r = results["input"]
    print(f"{'input':<16} {r['crops_per_s']:.0f} crops/s ({r['kind']}, {FLAGS.workers} workers, "
          "device prefetch)")
  for d in FLAGS.dtypes:
    r = results.get(f"train {d}")
    if r:
      print(f"{'train ' + d:<16} {r['steps_per_s']:.2f} steps/s, {r['images_per_s']:.1f} "
            f"images/s (first two steps {r['first_s']:.1f} s; bpsp {r['bpsp']:.3f})")
  if "sweep x4" in results:
    r = results["sweep x4"]
    print(f"{'sweep x4 (' + r['mode'] + ')':<16} {r['steps_per_s']:.2f} steps/s, "
          f"{r['member_images_per_s']:.1f} member-images/s")
  if "codec 512x512" in results:
    r = results["codec 512x512"]
    print(f"{'codec 512x512':<16} encode {r['encode_s']:.2f} s, decode {r['decode_s']:.2f} s "
          f"({r['bpsp']:.3f} bpsp, exact)")
  if "portable" in results:
    r = results["portable"]
    yes = lambda b: "yes" if b else "NO"
    print(f"{'portable':<16} {r['here']} -> {r['other']}: {yes(r['here_to_other_exact'])}; "
          f"{r['other']} -> {r['here']}: {yes(r['other_to_here_exact'])}; identical files: "
          f"{yes(r['identical_files'])}")
    if not (r["here_to_other_exact"] and r["other_to_here_exact"]):
      failures.append("portable: a file did not decode exactly on the other backend")
  results["total_s"] = time.time() - t_start
  results["failures"] = failures
  print(f"total {results['total_s']:.0f} s; load {os.getloadavg()[0]:.2f}")
  for f in failures:
    print(f"FAILED {f}")
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(results, f, indent=1, default=str)
  return 1 if failures else 0


if __name__ == "__main__":
  from l3c_jax.train import xla_cpu  # pylint: disable=g-import-not-at-top
  xla_cpu.use_training_flags()  # time training as train.py runs it (no effect off the CPU)
  app.run(main)
