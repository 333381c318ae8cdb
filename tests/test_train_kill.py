"""A training run killed with SIGKILL resumes from its last checkpoint (slow: real processes)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import write_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_sigkilled_run_resumes_from_last_checkpoint(tmp_path):
  data = write_images(tmp_path / "data", n=6)
  work = tmp_path / "work"
  cmd = [sys.executable, os.path.join(ROOT, "experiments", "train.py"),
         f"--flagfile={os.path.join(ROOT, 'experiments', 'flags', 'smoke.flags')}",
         f"--workdir={work}", f"--data_dir={data}", "--train.crop_size=16",
         "--train.num_steps=100000", "--train.checkpoint_every=5", "--train.log_every=5",
         "--train.eval_every=100000"]
  # A real process on purpose: what is tested is surviving SIGKILL, which only a process can get.
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  ckpt_dir = work / "checkpoints"
  deadline = time.time() + 240
  while time.time() < deadline:
    steps = ([int(d) for d in os.listdir(ckpt_dir) if d.isdigit()] if ckpt_dir.exists() else [])
    if [s for s in steps if s >= 10]:
      break
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)   # possibly in the middle of writing a checkpoint
  proc.wait()
  saved = max(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())
  r = subprocess.run(cmd[:-4] + ["--train.crop_size=16", f"--train.num_steps={saved + 2}",
                                 "--train.checkpoint_every=5", "--train.eval_every=100000"],
                     cwd=ROOT, capture_output=True, text=True, timeout=240)
  assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
  assert f"Resuming from step {saved}" in r.stdout
