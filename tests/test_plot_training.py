"""experiments/plot_training.py draws the curve from metrics.jsonl and fails cleanly without it."""

import json
import os
import subprocess
import sys

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "plot_training.py")


def test_plot_training_writes_curve_and_table(tmp_path):
  with open(tmp_path / "metrics.jsonl", "w") as f:
    for step, bpsp in [(50, 9.0), (100, 8.0), (150, 7.0)]:
      f.write(json.dumps({"step": step, "bpsp": bpsp, "train_hours": step / 1000}) + "\n")
    f.write(json.dumps({"step": 100, "val_bpsp": 8.5, "train_hours": 0.1}) + "\n")
  out = tmp_path / "c.png"
  r = subprocess.run([sys.executable, SCRIPT, f"--workdir={tmp_path}", f"--output={out}"],
                     capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert r.returncode == 0, r.stderr[-2000:]
  assert "   100   0.10   8.0000   8.5000" in r.stdout
  assert Image.open(out).size[0] > 100


def test_plot_training_without_metrics_is_one_line_error(tmp_path):
  r = subprocess.run([sys.executable, SCRIPT, f"--workdir={tmp_path}"], capture_output=True,
                     text=True, cwd=ROOT, timeout=120)
  assert r.returncode == 1
  assert "no metrics" in r.stderr and "Traceback" not in r.stderr
