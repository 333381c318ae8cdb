"""Orbax checkpoints of the TrainState plus a JSON record (config, data position, timing)."""

import os
import time
from typing import Any, Callable, Optional, Tuple

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """No checkpoint of a run can be restored (one-line message)."""


def _one_line(e: BaseException, max_chars: int = 200) -> str:
  text = " ".join(str(e).split()) or type(e).__name__
  text = f"{type(e).__name__}: {text}"
  return text if len(text) <= max_chars else text[:max_chars - 3] + "..."


class Checkpointer:
  """Step-numbered checkpoints under WORKDIR/checkpoints, keeping the newest `max_to_keep`.

  Orbax writes each step into a temporary directory and renames it when complete, so a process
  killed at any moment leaves either the previous checkpoints or a finished new one; leftover
  temporaries are ignored on restore.

  Multi-process runs (orbax's rules): every process makes a Checkpointer on the same directory
  (a file system they share) and calls save / restore with the same steps and a state of
  global arrays (replicated or sharded over the mesh); orbax writes each array once (process
  0 the replicated ones and the JSON record) and synchronizes the processes around the
  temporary directory and its rename.
  """

  def __init__(self, workdir: str, max_to_keep: int = 3):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False,
                                           cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: dict) -> None:
    self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                     meta=ocp.args.JsonSave(meta)), force=True)
    self._manager.wait_until_finished()

  def restore(self, target: Any, step: Optional[int] = None) -> Tuple[Any, dict]:
    """Restores (state, meta) into the structure of `target` (types of optax states kept)."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    r = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return r["state"], r["meta"]

  def restore_newest_intact(self, target: Any, warn: Callable[[str], None]
                            ) -> Tuple[Any, dict, int]:
    """Restores the newest checkpoint that restores, newest first.

    Checkpoints newer than the one restored that fail (corrupt or truncated files: a disk
    error, a copy cut short) are moved to WORKDIR/checkpoints_broken/STEP, kept for inspection
    but out of the way of the step numbers the resumed run will write again, and `warn` gets one
    line naming each. Without this, one bad newest checkpoint blocked every resume although
    older ones were intact. When none restores, nothing is moved (a rerun must not start over
    silently).

    Returns:
      (state, meta, step).
    Raises:
      CheckpointError: no checkpoint restores (one line naming the newest one's error).
    """
    broken = []
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        state, meta = self.restore(target, step)
      except Exception as e:  # pylint: disable=broad-except  # whatever the files do to orbax
        broken.append((step, _one_line(e)))
        continue
      for bad, reason in broken:
        moved = self._set_aside(bad)
        warn(f"warning: checkpoint {bad} in {self.directory} does not restore ({reason}); "
             f"moved to {moved}; resuming from checkpoint {step}")
      return state, meta, step
    if not broken:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    raise CheckpointError(f"no checkpoint in {self.directory} restores (newest, step "
                          f"{broken[0][0]}: {broken[0][1]})")

  def _set_aside(self, step: int) -> str:
    broken = os.path.join(os.path.dirname(self.directory), "checkpoints_broken")
    os.makedirs(broken, exist_ok=True)
    dst = os.path.join(broken, str(step))
    if os.path.exists(dst):  # an earlier one of the same step
      dst = f"{dst}.{int(time.time())}"
    if jax.process_index() == 0:  # one process moves it; all wait for that, then forget it
      os.rename(os.path.join(self.directory, str(step)), dst)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices(f"l3c_checkpoint_set_aside_{step}")
    self._manager.reload()  # forget the step
    return dst

  def close(self):
    self._manager.close()
