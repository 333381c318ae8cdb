"""Training input: the loader a config asks for, grain workers over an image store, and batches
prefetched onto the devices ahead of the step.

Two sources, one batch plan (`pipeline.batch_plan`: the epoch permutation from (seed, epoch), the
crops and flips of batch i from (seed, i)), so a run resumes at a batch index whichever it uses:
  * image folders (`--data_dir`, the default): `pipeline.CropLoader`, PNG decoding in threads;
  * an image store (`--train.data_store`, or a `--data_dir` that is one): `StoreLoader`, crops
    read from a memory map (`data/store.py`) by grain worker processes.
In a multi-process run both make only the rows of each global batch that the process's devices
hold (`train/distributed.py`): every process reads its own crops of the same global batches.

Why grain: JAX's standard data loader; its `MapDataset` takes our random-access batch source as
is, and `mp_prefetch` runs it in worker processes (out of the trainer's GIL) and hands the
batches back in index order through shared memory, so the order stays deterministic and no
process pool, queue or shared-memory code is written here.
"""

import collections
import os
from typing import Callable, Optional

import numpy as np

from l3c_jax.data import pipeline
from l3c_jax.data import store as store_lib


def resolve_workers(num_workers: int) -> int:
  """-1 -> one per core (os.cpu_count()); otherwise the number itself (0: no workers)."""
  return (os.cpu_count() or 1) if num_workers < 0 else int(num_workers)


def _grain():
  """Imports grain; its absl flags get their defaults if the program parsed no flags (tests,
  library use), since grain reads some of them unconditionally."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  import grain  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  return grain


class StoreLoader:
  """`pipeline.CropLoader`'s interface over an image store: an endless iterator of uint8
  [len(rows), crop, crop, 3] batches, made by grain worker processes.

  Attributes:
    num_usable, num_skipped, batches_per_epoch: as in CropLoader.
    position: index of the next batch handed out (checkpoint it; pass it back as start_batch).
  """

  def __init__(self, store, crop_size: int, batch_size: int, seed: int = 0, flip: bool = True,
               num_workers: int = 2, start_batch: int = 0, min_size: Optional[int] = None,
               prefetch_batches: int = 2, rows=None):
    """Opens the store; the workers start with the first batch.

    Args:
      store: an image store directory (or `store.ImageStore`).
      crop_size, batch_size, seed, flip, start_batch, min_size: as in CropLoader.
      num_workers: worker processes; 0 makes batches in the calling thread; -1 one per core.
      prefetch_batches: batches each worker makes ahead.
      rows: the rows of each batch to make (`store.StoreBatches`); None: all.

    Raises:
      pipeline.DataError: not a store, bad rows, or no usable image.
    """
    self._source = store_lib.StoreBatches(store, crop_size, batch_size, seed=seed, flip=flip,
                                          min_size=min_size, rows=rows)
    self.num_usable = self._source.num_usable
    self.num_skipped = self._source.num_skipped
    self.batches_per_epoch = self._source.batches_per_epoch
    self.num_workers = resolve_workers(num_workers)
    self.position = int(start_batch)
    self._prefetch = max(1, int(prefetch_batches))
    self._iterator = None
    self._started = False

  def seek(self, batch_index: int) -> None:
    """Makes batch `batch_index` the next one; only before the first batch is taken."""
    if self._started:
      raise pipeline.DataError('StoreLoader.seek after batches were requested')
    self.position = int(batch_index)

  def _start(self):
    if self.num_workers == 0:
      return None
    grain = _grain()
    source = self._source
    # Element k of the dataset is global batch k: the slice starts at the resume position.
    ds = grain.MapDataset.range(self.position, 2**62).map(source.__getitem__)
    # No reading threads inside a worker. grain's default, 16 threads reading 500 elements
    # ahead, means here up to 500 batches (~0.7 GB) per worker and ~8x the CPU per batch in GIL
    # contention (19-23 ms vs 2.4 ms per batch of 30 128^2 crops,
    # docs/measurements.md#input-pipeline): a batch is numpy copies that hold the GIL, so the
    # processes are the parallelism and per_worker_buffer_size the read-ahead.
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    return iter(ds.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=self.num_workers, per_worker_buffer_size=self._prefetch)))

  def __iter__(self):
    return self

  def __next__(self):
    """Returns batch number `position` as uint8 [len(rows), crop, crop, 3] and advances."""
    if not self._started:
      self._started = True
      self._iterator = self._start()
    if self._iterator is None:
      batch = self._source[self.position]
    else:
      # A plain copy (~0.1 ms per batch of 30 128^2 crops): grain's shared-memory array is
      # unlinked here and now, not whenever the consumer drops it (or at interpreter exit,
      # where its finalizer fails).
      shared = next(self._iterator)
      batch = np.array(shared)
      del shared
    self.position += 1
    return batch

  def close(self):
    """Stops the worker processes."""
    it, self._iterator = self._iterator, None
    self._started = False
    if it is not None:
      it.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
    return False


class DevicePrefetcher:
  """Batches put onto the devices `size` steps ahead of the consumer.

  `flax.jax_utils.prefetch_to_device` for the `jax.sharding` API: `put` (e.g.
  `loop.shard_batch`, `jax.make_array_from_process_local_data` with the batch sharding) starts
  an asynchronous host-to-device copy, so keeping `size` of them in flight overlaps the copies
  with the running step. No thread: the loader behind it already works ahead.

  Attributes:
    position: batches handed to the consumer, counted in the loader's batch indices (what a
      checkpoint must store, not the loader's own position, which runs `size` ahead).
  """

  def __init__(self, loader, put: Callable, size: int = 2):
    self._loader = loader
    self._put = put
    self._size = max(0, int(size))
    self._queue = collections.deque()

  @property
  def position(self) -> int:
    return self._loader.position - len(self._queue)

  def __iter__(self):
    return self

  def __next__(self):
    try:
      while len(self._queue) <= self._size:
        self._queue.append(self._put(next(self._loader)))
    except StopIteration:
      if not self._queue:
        raise
    return self._queue.popleft()


def make_loader(tcfg, data_dir: Optional[str], batch_size: int, start_batch: int = 0,
                rows=None):
  """The training loader for a `TrainConfig`: a StoreLoader over `tcfg.data_store` (or over
  `data_dir` if it is a store), else a CropLoader over the `data_dir` folders.

  Args:
    tcfg: the TrainConfig (crop_size, seed, random_flip, num_workers, data_store).
    data_dir: image folder(s), comma-separated, or a store directory; unused with data_store.
    batch_size: the global batch size (what the epochs and the batch plan count).
    start_batch: the first batch (resume).
    rows: the rows of each global batch this process makes, in its order
      (`distributed.BatchLayout.plan_rows`); None: all.

  Raises:
    pipeline.DataError: no data, or nothing usable.
  """
  seed = tcfg.seed
  store = tcfg.data_store or (data_dir if data_dir and store_lib.is_store(data_dir) else "")
  if store:
    if not store_lib.is_store(store):
      raise pipeline.DataError(f'not an image store (prepare one with '
                               f'experiments/prepare_store.py): {store}')
    return StoreLoader(store, tcfg.crop_size, batch_size, seed=seed, flip=tcfg.random_flip,
                       num_workers=tcfg.num_workers, start_batch=start_batch, rows=rows)
  if not data_dir:
    raise pipeline.DataError('no training data: give --data_dir or --train.data_store')
  return pipeline.CropLoader(pipeline.list_images(data_dir), tcfg.crop_size, batch_size,
                             seed=seed, flip=tcfg.random_flip,
                             num_workers=resolve_workers(tcfg.num_workers),
                             start_batch=start_batch, rows=rows)
