"""Devices and processes of a training run: the data-parallel mesh, how a global batch is laid
out over the devices, and the decisions every process must take at the same step.

Any batch on any device count: a global batch of B crops goes onto D devices as B rounded up to
a multiple of D rows (the paper's 30 on 4 devices: 32 rows, 8 per device). The extra rows are
copies of the first real rows with weight 0 in the loss and metrics (`losses.bpsp_metrics`), so
loss, gradient and metrics are those of the B real crops, up to float summation order
(tests/test_multidevice.py).

One global batch plan: global batch i is the same B crops whatever the number of processes
(`pipeline.batch_plan` over all usable images, epochs of B crops); process p reads only the rows
its own devices hold. So the epoch and the learning-rate schedule count global batches, a
2-process run trains on exactly the batches of a 1-process run, and a run resumes on another
process count.
"""

import collections
import dataclasses
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def make_mesh() -> Mesh:
  """A 1-D data-parallel mesh ('data') over all devices of all processes."""
  return Mesh(np.asarray(jax.devices()), ("data",))


def replicate(tree, mesh: Mesh):
  """Host values (numpy, the same on every process) -> arrays replicated on every device."""
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


@dataclasses.dataclass(frozen=True)
class BatchLayout:
  """Where the rows of a global batch live.

  Attributes:
    batch_size: real rows (crops) of the global batch, B.
    padded_size: rows on the devices: B rounded up to a multiple of num_devices.
    num_devices: devices of the mesh (all processes).
    rows: global row indices this process holds, in its local order (its devices' blocks).
    device_blocks: (device, start, stop) per local device: positions in `rows`.
  """
  batch_size: int
  padded_size: int
  num_devices: int
  rows: Tuple[int, ...]
  device_blocks: Tuple[Tuple[jax.Device, int, int], ...]

  @property
  def padding(self) -> int:
    return self.padded_size - self.batch_size

  @property
  def plan_rows(self) -> Tuple[int, ...]:
    """Rows of the batch plan this process makes: row j >= B is a copy of row j - B."""
    return tuple(j % self.batch_size for j in self.rows)

  def weights(self, num_real: Optional[int] = None) -> np.ndarray:
    """float32 [len(rows)]: 1 for this process's rows below num_real (default B), else 0."""
    real = self.batch_size if num_real is None else num_real
    return (np.asarray(self.rows) < real).astype(np.float32)

  def describe(self) -> str:
    per = self.padded_size // self.num_devices
    text = f"batch {self.batch_size} over {self.num_devices} device(s): {per} rows each"
    if self.padding:
      text += (f", {self.padding} padding row(s) (copies of real crops with weight 0: loss, "
               f"gradient and metrics are those of the {self.batch_size} real crops)")
    return text


def batch_layout(mesh: Mesh, batch_size: int) -> BatchLayout:
  """The layout of a global batch of `batch_size` rows, padded to a multiple of the devices."""
  num_devices = len(mesh.devices.flat)
  padded = -(-batch_size // num_devices) * num_devices
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  blocks = sorted((idx[0].indices(padded)[:2], d)
                  for d, idx in sharding.addressable_devices_indices_map((padded,)).items())
  rows, device_blocks = [], []
  for (start, stop), d in blocks:
    device_blocks.append((d, len(rows), len(rows) + stop - start))
    rows.extend(range(start, stop))
  return BatchLayout(batch_size, padded, num_devices, tuple(rows), tuple(device_blocks))


def shard(local: np.ndarray, layout: BatchLayout, mesh: Mesh) -> jax.Array:
  """This process's rows [len(layout.rows), ...] -> the global [padded_size, ...] array."""
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  arrays = [jax.device_put(local[lo:hi], d) for d, lo, hi in layout.device_blocks]
  return jax.make_array_from_single_device_arrays((layout.padded_size,) + local.shape[1:],
                                                  sharding, arrays)


# Bits of the flags that every process acts on at the same step.
STOP = 1        # checkpoint and stop (a signal, or a test's should_stop, on any process)
CHECKPOINT = 2  # a timed checkpoint is due (process 0's clock decides)


class Agreement:
  """Flags that all processes must act on at the same step, agreed without stalling the devices.

  With one process, the flags are the local ones, at once. With several, every process puts its
  flags onto its devices as an input of the step (`offer`); the step's own program returns their
  max over all devices (`reduce`, inside the jitted step: with a reduction program of its own
  beside the step, a 2-process CPU run went wrong, see WORKSPACE.md, Multi-device); that result of the step dispatched at step s is read at step s + lag (`record`), when the
  devices have finished it, so the host never waits for the step it just dispatched and every
  process reads the same value after the same step.
  """

  def __init__(self, mesh: Mesh, lag: int = 2):
    self.multi = jax.process_count() > 1
    self._lag = max(1, int(lag))
    self._pending = collections.deque()
    if self.multi:
      self._sharding = NamedSharding(mesh, PartitionSpec("data"))
      self._num_devices = len(mesh.devices.flat)
      self._num_local = len([d for d in mesh.devices.flat
                             if d.process_index == jax.process_index()])

  def offer(self, flags: int) -> Optional[jax.Array]:
    """This process's flags as the step's input: int32 [num_devices] (None with one process)."""
    if not self.multi:
      return None
    local = np.full((self._num_local,), flags, np.int32)
    return jax.make_array_from_process_local_data(self._sharding, local, (self._num_devices,))

  @staticmethod
  def reduce(offered: Optional[jax.Array]) -> Optional[jax.Array]:
    """Inside the jitted step: the max of every process's flags (None with one process)."""
    return None if offered is None else jnp.max(offered)

  def record(self, step: int, flags: int, reduced: Optional[jax.Array]) -> Tuple[int, int]:
    """After the step offered at `step`: (agreed flags, the step they were offered at)."""
    if not self.multi:
      return flags, step
    self._pending.append((step, reduced))
    if len(self._pending) <= self._lag:
      return 0, step
    offered, value = self._pending.popleft()
    return int(value), offered
