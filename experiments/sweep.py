"""Vmapped ablation sweep: `python experiments/sweep.py --flagfile=experiments/flags/sweep_smoke.flags
--workdir=DIR --data_dir=... [--val_dir=...]`.

Trains N members that differ only in shape-preserving settings, with one jitted step over stacked
parameters (l3c_jax/train/ensemble.py; the driver is l3c_jax/train/sweep_loop.py). The member
lists `--sweep_seeds`, `--sweep_lr_scales`, `--sweep_soft_sigmas` and `--sweep_scale_weights`
(members separated by ';', scales by ',') are zipped; a list of length 1 is broadcast. The model
and training settings are the usual `--model.*` / `--train.*` flags.

Writes WORKDIR/sweep.json (members and config), WORKDIR/sweep_metrics.jsonl (a train record per
live member and log step, a validation record per live member every --train.eval_every steps
with --val_dir; both carry `member`), WORKDIR/checkpoints/ (the stacked state, data position and
each member's status, every --train.checkpoint_every steps and on SIGTERM/SIGINT) and, at the
end, every member's weights to WORKDIR/member_<i>/model.

- Resume: rerunning the same command continues from the newest checkpoint (records of the log
  past it are dropped, none is written twice). Different --sweep_* lists or --model.* flags on
  the same workdir are refused with one line; --train.* may change (e.g. --train.num_steps).
- NaN guard per member: a member's non-finite step leaves its state as it was; a member whose
  every step of a logging window was non-finite is frozen (updates masked off), reported in one
  line and dropped from logging and validation, and the others go on. The sweep ends with one
  summary line per member; it exits 1 if every member diverged.
- Devices: the member axis is split over a 1-D mesh: k = ceil(N / D) members per device on
  ceil(N / k) devices, the member axis padded with frozen copies to k x devices (e.g. 5 members
  on 4 devices: 2 each on 3 devices, 1 padding member); the batch is replicated. The rule is
  printed at start; --sweep_devices=D uses the first D devices only. Checkpoints hold the N
  members, so a sweep resumes on another device count.
"""

import sys

from absl import app
from absl import flags

from l3c_jax.train import config as config_lib
from l3c_jax.train import xla_cpu

config_lib.define_flags()
config_lib.define_program_flags()
flags.adopt_module_key_flags(config_lib)  # so that --help lists --workdir, --model.*, --train.*
flags.DEFINE_list("sweep_seeds", ["0"], "Initialization seed per member.")
flags.DEFINE_list("sweep_lr_scales", ["1"], "Learning-rate multiplier per member.")
flags.DEFINE_list("sweep_soft_sigmas", [], "Quantizer sigma per member (default: model's).")
flags.DEFINE_string("sweep_scale_weights", "", "Per-member loss weights 'x,z1,z2;x,z1,z2;...'.")
flags.DEFINE_enum("sweep_mode", "auto", ["auto", "vmap", "loop"],
                  "vmap over members, or an unrolled loop inside the jit (auto: loop on CPU).")
flags.DEFINE_integer("sweep_devices", 0,
                     "Devices to spread the members over (0: all); see the docstring.")
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
  if not FLAGS.workdir:
    print("sweep.py: error: --workdir is required", file=sys.stderr)
    return 2
  from l3c_jax import compile_cache  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import sweep_loop  # pylint: disable=g-import-not-at-top
  compile_cache.enable()  # shared with train.py's and the CLI's; L3C_JAX_CACHE_DIR=off disables it
  try:
    result = sweep_loop.train_sweep(config, m, FLAGS.workdir, FLAGS.data_dir, FLAGS.val_dir,
                                    mode=FLAGS.sweep_mode, num_devices=FLAGS.sweep_devices)
  except sweep_loop.SweepError as e:
    print(f"sweep.py: error: {e}", file=sys.stderr)
    return 1
  if not [r for r in result["members"] if r["status"] == "trained"]:
    print("sweep.py: error: every member diverged", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  xla_cpu.use_training_flags()  # as train.py: before JAX's backend starts
  app.run(lambda argv: sys.exit(main(argv)))
