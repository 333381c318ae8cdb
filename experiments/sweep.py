"""Vmapped ablation sweep: `python experiments/sweep.py --flagfile=experiments/flags/sweep_smoke.flags`.

Trains N members that differ only in shape-preserving settings, with one jitted step over stacked
parameters (l3c_jax/train/ensemble.py). The member lists `--sweep_seeds`, `--sweep_lr_scales`,
`--sweep_soft_sigmas` and `--sweep_scale_weights` (members separated by ';', scales by ',') are
zipped; a list of length 1 is broadcast. The model and training settings are the usual
`--model.*` / `--train.*` flags. Writes WORKDIR/sweep_metrics.jsonl, one line per member and log
step, and exports every member's weights to WORKDIR/member_<i>/model.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags

from l3c_jax.train import config as config_lib

config_lib.define_flags()
config_lib.define_program_flags()
flags.adopt_module_key_flags(config_lib)  # so that --help lists --workdir, --model.*, --train.*
flags.DEFINE_list("sweep_seeds", ["0"], "Initialization seed per member.")
flags.DEFINE_list("sweep_lr_scales", ["1"], "Learning-rate multiplier per member.")
flags.DEFINE_list("sweep_soft_sigmas", [], "Quantizer sigma per member (default: model's).")
flags.DEFINE_string("sweep_scale_weights", "", "Per-member loss weights 'x,z1,z2;x,z1,z2;...'.")
flags.DEFINE_enum("sweep_mode", "auto", ["auto", "vmap", "loop"],
                  "vmap over members, or an unrolled loop inside the jit (auto: loop on CPU).")
FLAGS = flags.FLAGS


def _broadcast(lists):
  n = max(len(v) for v in lists.values() if v)
  out = {}
  for k, v in lists.items():
    if len(v) not in (1, n):
      raise app.UsageError(f"--sweep_{k} has {len(v)} entries; expected 1 or {n}")
    out[k] = v * n if len(v) == 1 else v
  return n, out


def members_from_flags(config):
  s = config.model.num_scales
  weights = ([[float(x) for x in m.split(",")] for m in FLAGS.sweep_scale_weights.split(";")]
             if FLAGS.sweep_scale_weights else [[1.0] * s])
  for w in weights:
    if len(w) != s:
      raise app.UsageError(f"each member needs {s} scale weights, got {w}")
  sigmas = [float(x) for x in FLAGS.sweep_soft_sigmas] or [config.model.soft_sigma]
  return _broadcast({"seeds": [int(x) for x in FLAGS.sweep_seeds],
                     "lr_scales": [float(x) for x in FLAGS.sweep_lr_scales],
                     "soft_sigmas": sigmas, "scale_weights": weights})


def main(argv):
  config = config_lib.start_launcher(argv)
  n, m = members_from_flags(config)
  for i in range(n):
    print(f"member {i}: " + ", ".join(f"{k}={m[k][i]}" for k in m))
  if FLAGS.dry_run:
    return 0
  if not FLAGS.workdir or not FLAGS.data_dir:
    print("sweep.py: error: --workdir and --data_dir are required", file=sys.stderr)
    return 2
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from l3c_jax import model_io  # pylint: disable=g-import-not-at-top
  from l3c_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import ensemble, step as step_lib  # pylint: disable=g-import-not-at-top
  cfg, tcfg = config.model, config.train
  try:
    loader = pipeline.CropLoader(pipeline.list_images(FLAGS.data_dir), tcfg.crop_size,
                                 tcfg.batch_size, seed=tcfg.seed, flip=tcfg.random_flip,
                                 num_workers=tcfg.num_workers)
  except pipeline.DataError as e:
    print(f"sweep.py: error: {e}", file=sys.stderr)
    return 1
  tx = step_lib.make_optimizer(tcfg, loader.batches_per_epoch)
  states = ensemble.create_states(cfg, tx, m["seeds"], m["lr_scales"])
  mode = ensemble.default_mode() if FLAGS.sweep_mode == "auto" else FLAGS.sweep_mode
  step = jax.jit(ensemble.make_sweep_step(cfg, tx, n, mode, tcfg.compute_dtype),
                 donate_argnums=(0,))
  ws = jnp.asarray(m["scale_weights"], jnp.float32)
  sigmas = jnp.asarray(m["soft_sigmas"], jnp.float32)
  os.makedirs(FLAGS.workdir, exist_ok=True)
  log_path = os.path.join(FLAGS.workdir, "sweep_metrics.jsonl")
  print(f"sweep: {n} members, mode {mode}, {jax.device_count()} device(s)", flush=True)
  it = iter(loader)
  t0 = time.time()
  with open(log_path, "a") as log:
    for i in range(1, tcfg.num_steps + 1):
      states, metrics = step(states, jnp.asarray(next(it)), ws, sigmas)
      if i % tcfg.log_every == 0 or i == tcfg.num_steps:
        metrics = jax.device_get(metrics)
        for j in range(n):
          rec = {k: float(v[j]) for k, v in metrics.items()}
          rec.update(step=i, member=j, seconds=time.time() - t0,
                     **{k: m[k][j] for k in m})
          log.write(json.dumps(rec) + "\n")
        print(f"step {i}: " + " | ".join(f"m{j} {float(metrics['bpsp'][j]):.3f}"
                                         for j in range(n)), flush=True)
  loader.close()
  for j in range(n):
    model_io.save_model(os.path.join(FLAGS.workdir, f"member_{j}", "model"), cfg,
                        jax.device_get(ensemble.unstack(states, j).params),
                        metadata={k: m[k][j] for k in m})
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
