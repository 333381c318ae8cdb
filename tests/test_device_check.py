"""experiments/device_check.py end to end on the CPU (the smoke preset), in a subprocess."""

import json
import os
import subprocess
import sys

import pytest

import launchers
from conftest import write_images


@pytest.mark.slow
def test_device_check_runs_every_check_and_reports_them(tmp_path):
  images = write_images(tmp_path / "images", n=4)
  out = tmp_path / "check.json"
  proc = subprocess.run(
      [sys.executable, os.path.join(launchers.ROOT, "experiments", "device_check.py"),
       f"--data_dir={images}", "--preset=smoke", "--seconds=0.2", "--workers=0",
       f"--json={out}", f"--codec_image={tmp_path / 'missing.png'}"],
      capture_output=True, text=True, timeout=1200, check=False, cwd=launchers.ROOT)
  assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
  result = json.loads(out.read_text())
  assert result["failures"] == []
  for name in ("input", "train float32", "train bfloat16", "sweep x4"):
    assert result[name]["steps_per_s" if name != "input" else "crops_per_s"] > 0, name
  assert result["codec 512x512"]["encode_s"] > 0 and result["codec 512x512"]["bpsp"] > 0
  assert result["portable"]["here_to_other_exact"] and result["portable"]["other_to_here_exact"]
  for row in ("input", "train float32", "train bfloat16", "sweep x4", "codec 512x512",
              "portable"):
    assert any(line.startswith(row) for line in proc.stdout.splitlines()), proc.stdout
