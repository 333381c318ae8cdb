"""Trains L3C: `python experiments/train.py --flagfile=experiments/flags/paper_l3c.flags --workdir=DIR`.

Every hyper-parameter is a `--model.<field>` / `--train.<field>` flag of the one config system
(l3c_jax/train/config.py); flagfiles under experiments/flags/ set them. A rerun with the same
--workdir resumes from the newest checkpoint (weights, optimizer, step, schedule, data position).

Training data: image folders (`--data_dir`), or an image store decoded once by
experiments/prepare_store.py (`--train.data_store=STORE`, or `--data_dir=STORE`), which costs
~20x less CPU per crop (docs/measurements.md#input-pipeline).

Several devices or hosts: the global batch (--train.batch_size) is split over all devices of all
processes, padded to a multiple of the device count with zero-weight rows (the rule is printed at
start). Multi-host: run the same command on every host with --multihost (on a cluster that jax
detects: Slurm, Open MPI, TPU pods), or with --coordinator_address=HOST:PORT
--num_processes=N --process_id=I on each (e.g. two processes on one machine:
--coordinator_address=127.0.0.1:12345), and a --workdir on a file system all hosts share.

On the CPU, XLA's YNNPACK convolutions are turned off for the run (l3c_jax/train/xla_cpu.py:
1.8-3.4x faster steps measured); an XLA_FLAGS that sets
--xla_cpu_experimental_ynn_fusion_type wins.
"""

import json
import math
import sys

from absl import app
from absl import flags

from l3c_jax.train import config as config_lib
from l3c_jax.train import xla_cpu

config_lib.define_flags()
config_lib.define_program_flags()
flags.adopt_module_key_flags(config_lib)  # so that --help lists --workdir, --model.*, --train.*
flags.DEFINE_boolean("multihost", False,
                     "Call jax.distributed.initialize() (multi-host runs); implied by the three "
                     "flags below, which it otherwise detects from the cluster environment.")
flags.DEFINE_string("coordinator_address", None,
                    "Multi-host: HOST:PORT of process 0's coordinator (e.g. 127.0.0.1:12345 for "
                    "several processes on one machine).")
flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's index, 0..num_processes-1.")
FLAGS = flags.FLAGS


def main(argv):
  config = config_lib.start_launcher(argv)
  import jax  # pylint: disable=g-import-not-at-top
  from l3c_jax.models import param_shapes  # pylint: disable=g-import-not-at-top
  if FLAGS.dry_run:
    shapes = param_shapes(config.model)
    n = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(shapes))
    print(json.dumps(config.to_dict(), sort_keys=True))
    print(f"parameters: {n}")
    return 0
  explicit = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if FLAGS.multihost or any(v is not None for v in explicit):
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                               num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  from l3c_jax import compile_cache  # pylint: disable=g-import-not-at-top
  compile_cache.enable()  # shared with the CLI's; L3C_JAX_CACHE_DIR=off disables it
  if not FLAGS.workdir or not (FLAGS.data_dir or config.train.data_store):
    print("train.py: error: --workdir and --data_dir (or --train.data_store) are required "
          "(or use --dry_run)", file=sys.stderr)
    return 2
  from l3c_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import loop  # pylint: disable=g-import-not-at-top
  try:
    loop.train_and_evaluate(config, FLAGS.workdir, FLAGS.data_dir, FLAGS.val_dir)
  except (pipeline.DataError, loop.TrainError) as e:
    print(f"train.py: error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  xla_cpu.use_training_flags()  # before JAX's backend starts (a command-line run only)
  app.run(lambda argv: sys.exit(main(argv)))
