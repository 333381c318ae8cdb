"""Pre-decoded image store: training images decoded once into one memory-mapped uint8 file.

Why: decoding the PNG is >99 % of the work of a training crop (12.2 of 13.1 ms for a Kodak-size
image, docs/measurements.md#input-pipeline), and the PNG path decodes a whole image to take one
128x128 crop. The store pays the decode once (`experiments/prepare_store.py`); a crop then reads
only its own rows from the page cache.

Layout of a store directory:
  pixels.u8   every image's uint8 [H, W, 3] pixels, row-major, back to back;
  index.npy   int64 [N, 3]: (byte offset in pixels.u8, height, width) per image;
  meta.json   {"format": "l3c-jax-store", "version": 1, "names": [source names, in store order],
               "skipped": {reason: count}, "num_bytes": size of pixels.u8}.
Images are in `pipeline.list_images` order (sorted paths), RGB 8-bit only, the order and filter of
`pipeline.CropLoader`; so `StoreBatches` over a store yields, batch for batch, the crops that a
`CropLoader` over the source folder yields with the same seed (tests/test_store.py). A store
written with `downscale=(lo, hi)` also holds, after each image, a Lanczos-downscaled copy of it
(named `<name>@<factor>`), a scale augmentation: the same scene with more detail per pixel,
which stretches a small photo pool (the GPU stage of the default model v2 trained on one).

Why not array_record (which grain brings along): it stores serialized records, so a crop would
still read (and unpickle) the whole image; a flat memory map reads only the crop's rows, needs no
codec, and the page cache shares it between worker processes for free.

Numpy only (no JAX, no grain): the grain loader in `l3c_jax/train/input.py` wraps `StoreBatches`.
"""

import json
import os
import shutil
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from l3c_jax.data import images
from l3c_jax.data import pipeline

FORMAT = 'l3c-jax-store'
VERSION = 1
PIXELS_FILE = 'pixels.u8'
INDEX_FILE = 'index.npy'
META_FILE = 'meta.json'


def is_store(path) -> bool:
  """True if `path` is a store directory (has meta.json naming the format)."""
  meta = os.path.join(str(path), META_FILE)
  if not os.path.isfile(meta):
    return False
  try:
    with open(meta) as f:
      return json.load(f).get('format') == FORMAT
  except (OSError, ValueError):
    return False


def downscale_factor(seed: int, index: int, low: float, high: float) -> float:
  """The factor of image `index`'s downscaled copy: uniform in [low, high], from (seed, index)
  alone, so a store is the same whatever else it holds."""
  return float(np.random.default_rng([int(seed), int(index)]).uniform(low, high))


def write_store(paths: Sequence[str], dst: str, names: Optional[Sequence[str]] = None,
                progress=None, downscale: Optional[Tuple[float, float]] = None,
                downscale_seed: int = 0, downscale_min_side: int = 128) -> Dict[str, object]:
  """Decodes `paths` once into a store at `dst` (written beside it, then renamed into place).

  Args:
    paths: image files, in the order the store keeps (`pipeline.list_images` order for the
      CropLoader-equivalent order).
    dst: store directory to create; must not exist.
    names: names recorded per image (default: the paths).
    progress: optional callable(done, total) after each image.
    downscale: (low, high) with 0 < low <= high < 1, or None: after each image also store a
      Lanczos-downscaled copy, factor `downscale_factor(downscale_seed, k, low, high)` for the
      k-th path, size round(W r) x round(H r), named f'{name}@{r:.4f}'; a copy whose shorter
      side would be below `downscale_min_side` px is left out (counted in "copies_too_small").
      `skipped` counts source files only, as the store's meta.json and `ImageStore.skipped` do.

  Returns:
    {"num_images": kept (copies included), "num_copies": downscaled copies kept,
    "copies_too_small": copies left out, "skipped": {reason: count}, "num_bytes": size of
    pixels.u8}.

  Raises:
    pipeline.DataError: dst exists, bad `downscale`, or no image is usable.
  """
  if downscale is not None:
    low, high = (float(v) for v in downscale)
    if not 0.0 < low <= high < 1.0:
      raise pipeline.DataError(f'downscale factors must satisfy 0 < low <= high < 1: {downscale}')
  dst = os.path.abspath(str(dst))
  if os.path.exists(dst):
    raise pipeline.DataError(f'store already exists: {dst}')
  names = [str(p) for p in paths] if names is None else [str(n) for n in names]
  tmp = dst + '.partial'
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  index: List[Tuple[int, int, int]] = []
  kept: List[str] = []
  skipped: Dict[str, int] = {}
  offset = num_copies = copies_too_small = 0
  with open(os.path.join(tmp, PIXELS_FILE), 'wb') as f:
    for k, (path, name) in enumerate(zip(paths, names)):
      try:
        image = images.read_image(path, metadata=False)
        reason = None if image.mode == 'RGB' else 'not_rgb'
      except Exception:  # Any decoder error: the file is counted as unreadable, as in CropLoader.
        reason = 'unreadable'
      if reason:
        skipped[reason] = skipped.get(reason, 0) + 1
      else:
        pixels = image.pixels
        h, w = pixels.shape[:2]
        f.write(np.ascontiguousarray(pixels, np.uint8).tobytes())
        index.append((offset, h, w))
        kept.append(name)
        offset += h * w * 3
        if downscale is not None:
          r = downscale_factor(downscale_seed, k, low, high)
          size = (round(w * r), round(h * r))
          if min(size) < downscale_min_side:
            copies_too_small += 1
          else:
            small = np.asarray(Image.fromarray(np.asarray(pixels, np.uint8)).resize(
                size, resample=Image.Resampling.LANCZOS))
            f.write(np.ascontiguousarray(small, np.uint8).tobytes())
            index.append((offset, size[1], size[0]))
            kept.append(f'{name}@{r:.4f}')
            num_copies += 1
            offset += size[0] * size[1] * 3
      if progress is not None:
        progress(k + 1, len(paths))
  if not index:
    shutil.rmtree(tmp, ignore_errors=True)
    raise pipeline.DataError(f'no usable (8-bit RGB) image among {len(paths)} files')
  np.save(os.path.join(tmp, INDEX_FILE), np.asarray(index, np.int64))
  meta = {'format': FORMAT, 'version': VERSION, 'names': kept, 'skipped': skipped,
          'num_bytes': offset}
  with open(os.path.join(tmp, META_FILE), 'w') as f:
    json.dump(meta, f, indent=1)
  os.rename(tmp, dst)
  if skipped:
    counts = ', '.join(f'{k}={v}' for k, v in sorted(skipped.items()))
    warnings.warn(f'write_store: skipped {sum(skipped.values())} of {len(paths)} images '
                  f'({counts}; 8-bit RGB only)', stacklevel=2)
  return {'num_images': len(index), 'num_copies': num_copies,
          'copies_too_small': copies_too_small, 'skipped': skipped, 'num_bytes': offset}


class ImageStore:
  """Read access to a store: image views and crops straight from the memory map.

  Picklable (the memory map is reopened lazily in each process), so worker processes share the
  file through the page cache rather than copies.

  Attributes:
    path: the store directory.
    shapes: int64 [N, 2] (height, width) per image.
    names: source names per image.
    skipped: reason -> count of source files left out when the store was written.
  """

  def __init__(self, path):
    self.path = os.path.abspath(str(path))
    if not is_store(self.path):
      raise pipeline.DataError(f'not an image store (no {META_FILE} of format {FORMAT}): '
                               f'{self.path}')
    with open(os.path.join(self.path, META_FILE)) as f:
      meta = json.load(f)
    if meta.get('version') != VERSION:
      raise pipeline.DataError(f'image store version {meta.get("version")} is not {VERSION}: '
                               f'{self.path} (prepare it again)')
    self._index = np.load(os.path.join(self.path, INDEX_FILE))
    self.shapes = self._index[:, 1:3]
    self.names = list(meta['names'])
    self.skipped = dict(meta.get('skipped', {}))
    size = os.path.getsize(os.path.join(self.path, PIXELS_FILE))
    if size != meta['num_bytes'] or len(self.names) != len(self._index):
      raise pipeline.DataError(f'image store is incomplete or damaged: {self.path}')
    self._pixels = None

  def __len__(self) -> int:
    return len(self._index)

  def __getstate__(self):
    state = dict(self.__dict__)
    state['_pixels'] = None  # reopened lazily where unpickled
    return state

  def _map(self) -> np.ndarray:
    if self._pixels is None:
      self._pixels = np.memmap(os.path.join(self.path, PIXELS_FILE), np.uint8, mode='r')
    return self._pixels

  def image(self, i: int) -> np.ndarray:
    """uint8 [H, W, 3] view of image i on the memory map (nothing is read until used)."""
    offset, h, w = (int(v) for v in self._index[i])
    return self._map()[offset:offset + h * w * 3].reshape(h, w, 3)

  def crop(self, i: int, y: int, x: int, size: int, flip: bool = False) -> np.ndarray:
    """uint8 [size, size, 3] copy of image i's window at (y, x), mirrored left-right if flip.

    Reads only rows y..y+size-1 of the image (in pages of the map)."""
    window = self.image(i)[y:y + size, x:x + size]
    return np.ascontiguousarray(window[:, ::-1] if flip else window)


class StoreBatches:
  """Global batch index -> uint8 [batch_size, crop, crop, 3]: the plan of `pipeline.CropLoader`
  (`pipeline.batch_plan`, `pipeline.crop_window`) read from a store. Random access, stateless
  apart from a permutation cache, picklable: grain's `MapDataset` source in worker processes.

  Attributes:
    num_usable: images with shorter side >= max(crop_size, min_size).
    num_skipped: reason -> count ('too_small'; plus the store's own skips).
    batches_per_epoch: num_usable // batch_size (at least 1), as in CropLoader.
    image_ids: store indices of the usable images, in plan order.
    rows: the rows of each planned batch this source makes.
  """

  def __init__(self, store, crop_size: int, batch_size: int, seed: int = 0, flip: bool = True,
               min_size: Optional[int] = None, rows: Optional[Sequence[int]] = None):
    """Selects the usable images.

    Args:
      store: an `ImageStore` or a store directory.
      crop_size: side of the square crops.
      batch_size: crops per batch (the global batch of a multi-process run).
      seed: base seed of the permutation and crop RNGs.
      flip: random horizontal flips.
      min_size: skip images whose shorter side is below max(crop_size, min_size).
      rows: make only these rows of each batch, in this order (repeats allowed): a process's
        share of the global batch in multi-process training (`train/distributed.py`), so
        every process reads only its own crops while epochs and crops stay those of the
        global batch; None: all rows.

    Raises:
      pipeline.DataError: bad sizes or rows, or no usable image.
    """
    if crop_size <= 0 or batch_size <= 0:
      raise pipeline.DataError(f'crop_size and batch_size must be positive, got {crop_size}, '
                               f'{batch_size}')
    self.rows = pipeline.check_rows(rows, int(batch_size))
    self.store = store if isinstance(store, ImageStore) else ImageStore(store)
    self.crop_size, self.batch_size = int(crop_size), int(batch_size)
    self.seed, self.flip = int(seed), bool(flip)
    min_side = max(self.crop_size, int(min_size or 0))
    usable = np.flatnonzero(self.store.shapes.min(axis=1) >= min_side)
    self.num_skipped = dict(self.store.skipped)
    if len(usable) < len(self.store):
      self.num_skipped['too_small'] = len(self.store) - len(usable)
    self.image_ids = usable
    self.num_usable = len(self.image_ids)
    if not self.num_usable:
      raise pipeline.DataError(
          f'no usable image in {self.store.path} (none of its {len(self.store)} images has '
          f'shorter side >= {min_side})')
    self.batches_per_epoch = max(1, self.num_usable // self.batch_size)
    self._perm_cache = (None, None)

  def __getstate__(self):
    state = dict(self.__dict__)
    state['_perm_cache'] = (None, None)
    return state

  def _permutation(self, epoch: int) -> np.ndarray:
    cached_epoch, perm = self._perm_cache
    if cached_epoch != epoch:
      perm = pipeline.epoch_permutation(self.seed, epoch, self.num_usable)
      self._perm_cache = (epoch, perm)
    return perm

  def __getitem__(self, batch_index: int) -> np.ndarray:
    c = self.crop_size
    out = np.empty((len(self.rows), c, c, 3), np.uint8)
    plan = pipeline.batch_plan(self.seed, int(batch_index), self.batches_per_epoch,
                               self.num_usable, self.batch_size, self._permutation)
    for t, (perm, pos, u) in enumerate(plan[r] for r in self.rows):
      i = int(self.image_ids[perm[pos]])
      h, w = (int(v) for v in self.store.shapes[i])
      y, x, flip = pipeline.crop_window(u, h, w, c, self.flip)
      window = self.store.image(i)[y:y + c, x:x + c]
      if flip:
        # One channel at a time: numpy's copy loop then runs along the row (c long) instead of
        # over the 3 channels: 21 vs 112 us per 128^2 crop (docs/measurements.md#input-pipeline).
        for ch in range(3):
          out[t, :, :, ch] = window[:, ::-1, ch]
      else:
        out[t] = window
    return out
