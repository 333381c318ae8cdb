"""`model_io.atomic_write`: a writer killed between writing and renaming leaves a temporary that
says who owns it, and the next write into that directory removes it."""

import os
import signal
import subprocess
import sys

from l3c_jax import model_io

# The child writes, and stops just before the rename (os.replace patched to announce and sleep),
# the one moment where a SIGKILL leaves the temporary behind.
_CHILD = """
import os, sys, time
from l3c_jax import model_io
def stuck(src, dst):
  print("ready", flush=True)
  time.sleep(120)
os.replace = stuck
model_io.atomic_write(sys.argv[1], b"half-written")
"""


def _temps(directory):
  return sorted(n for n in os.listdir(directory) if n.endswith(model_io.TEMP_SUFFIX))


def test_sigkilled_writer_leftover_is_removed_by_the_next_write(tmp_path):
  # A real process on purpose: SIGKILL, which no handler sees, is what is tested.
  target = tmp_path / "out.l3c"
  proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(target)], stdout=subprocess.PIPE,
                          text=True)
  try:
    assert proc.stdout.readline().strip() == "ready"
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  leftover = _temps(tmp_path)
  assert len(leftover) == 1 and leftover[0].startswith(".out.l3c.")
  assert f".{proc.pid}@" in leftover[0]  # the owner's pid is in the name
  # A write in progress (this live process's own temporary) must not be touched.
  host = model_io._host_tag()  # pylint: disable=protected-access
  live = tmp_path / f".other.{os.getpid()}@{host}.abcdefgh{model_io.TEMP_SUFFIX}"
  live.write_bytes(b"in progress")
  # Nor a file that merely ends like ours without an owner.
  foreign = tmp_path / f"notes{model_io.TEMP_SUFFIX}"
  foreign.write_bytes(b"someone else's")
  model_io.atomic_write(str(tmp_path / "next.bin"), b"data")
  assert _temps(tmp_path) == sorted([live.name, foreign.name])
  assert (tmp_path / "next.bin").read_bytes() == b"data" and not target.exists()


def test_temp_names_of_long_targets_fit_in_a_file_name(tmp_path):
  name = "x" * 240 + ".png"  # a legal name; the temporary's extra parts must not overflow it
  model_io.atomic_write(str(tmp_path / name), b"ok")
  assert (tmp_path / name).read_bytes() == b"ok" and not _temps(tmp_path)
