"""Training curve of a run: `python experiments/plot_training.py --workdir=RUN --output=curve.png`.

Reads WORKDIR/metrics.jsonl (written by train.py) and draws train bpsp (mean over each logging
interval) and validation bpsp against the step (matplotlib, l3c_jax/figures.py).
Also prints a small table: step, hours, train bpsp, validation bpsp.
"""

import json
import os
import sys

from absl import app
from absl import flags

flags.DEFINE_string("workdir", None, "Run directory holding metrics.jsonl.", required=True)
flags.DEFINE_string("output", "training_curve.png", "Output PNG.")
flags.DEFINE_string("title", "", "Chart title (default: the workdir name).")
FLAGS = flags.FLAGS


def read_curves(workdir: str):
  """-> (steps, {'train bpsp': [...], 'validation bpsp': [...]}, hours) aligned on steps."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: no metrics (not a training workdir?)")
  train, val, hours = {}, {}, {}
  with open(path) as f:
    for line in f:
      r = json.loads(line)
      if "bpsp" in r:
        train[r["step"]] = r["bpsp"]
      if "val_bpsp" in r:
        val[r["step"]] = r["val_bpsp"]
      if "train_hours" in r:
        hours[r["step"]] = r["train_hours"]
  steps = sorted(set(train) | set(val))
  return steps, {"train bpsp": [train.get(s) for s in steps],
                 "validation bpsp": [val.get(s) for s in steps]}, [hours.get(s) for s in steps]


def main(argv):
  del argv
  from l3c_jax import figures  # pylint: disable=g-import-not-at-top
  try:
    steps, curves, hours = read_curves(FLAGS.workdir)
  except FileNotFoundError as e:
    print(f"plot_training.py: error: {e}", file=sys.stderr)
    return 1
  if not steps:
    print("plot_training.py: error: metrics.jsonl has no records", file=sys.stderr)
    return 1
  figures.line_chart(steps, curves, FLAGS.output, xlabel="step", ylabel="bpsp",
                     title=FLAGS.title or os.path.basename(os.path.abspath(FLAGS.workdir)))
  print(f"{'step':>7} {'hours':>6} {'train':>8} {'val':>8}")
  for s, h, t, v in zip(steps, hours, curves["train bpsp"], curves["validation bpsp"]):
    if v is not None:
      print(f"{s:>7d} {h or 0:>6.2f} {t if t is not None else float('nan'):>8.4f} {v:>8.4f}")
  print(f"wrote {FLAGS.output}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
