"""Training input pipeline: random crops from folders of photos (numpy + Pillow, no JAX).

As in docs/l3c_reference.md#training-recipe: random 128x128 crops, random horizontal flip, batches
of uint8 pixels, reshuffled every epoch, center crops for validation. The model converts uint8 to
float 0..255 itself (no /255).

Determinism (needed to resume a run bit-exactly from a checkpoint):
  * the order of epoch `e` is a permutation drawn from an RNG seeded by (seed, e);
  * the crop offsets and flips of global batch `i` come from an RNG seeded by (seed, i);
so `CropLoader(..., start_batch=k)` yields exactly batches k, k+1, ... of a fresh loader, whatever the
thread timing. Worker threads only decode; results are assembled in index order.

Only 8-bit 'RGB' images are used (the official recipe discards non-RGB photos,
docs/l3c_reference.md#data-recipe-v3); smaller images and other modes are skipped and counted, with
one warning.
"""

import collections
import concurrent.futures
import os
import threading
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from l3c_jax.data import images

# Tags that keep the two RNG streams (epoch permutations, per-batch crops) apart even when an epoch index
# equals a batch index.
_PERMUTATION_STREAM = 0
_CROP_STREAM = 1


class DataError(ValueError):
  """A data problem with a one-line, human-readable message (callers print `str(e)`)."""


def _split_dirs(data_dir_or_dirs: Union[str, os.PathLike, Sequence]) -> List[str]:
  if isinstance(data_dir_or_dirs, (str, os.PathLike)):
    parts = str(data_dir_or_dirs).split(',')
  else:
    parts = [str(d) for d in data_dir_or_dirs]
  dirs = [p.strip() for p in parts if p.strip()]
  if not dirs:
    raise DataError('no data directory given')
  return dirs


def list_images(data_dir_or_dirs: Union[str, os.PathLike, Sequence]) -> List[str]:
  """Lists the image files under one or more directories, recursively (`images.list_images`).

  Args:
    data_dir_or_dirs: a directory, a comma-separated string of directories, or a list of directories.

  Returns:
    Sorted (plain string order, which fixes the epoch permutations of a run), de-duplicated paths
    of files with an `images.IMAGE_EXTENSIONS` suffix (any case).

  Raises:
    DataError: a directory does not exist or cannot be read, or no image is found.
  """
  dirs = _split_dirs(data_dir_or_dirs)
  for d in dirs:
    if not os.path.isdir(d):
      raise DataError(f'data directory does not exist: {d}')
    if not os.access(d, os.R_OK | os.X_OK):
      raise DataError(f'data directory is not readable: {d}')
  try:
    paths = sorted(set(images.list_images(dirs, recursive=True)))
  except OSError as err:
    raise DataError(f'cannot read data directory {err.filename}: {err.strerror or err}') from None
  if not paths:
    raise DataError(f'no images ({"/".join(e[1:] for e in images.IMAGE_EXTENSIONS)}) found in '
                    f'{",".join(dirs)}')
  return paths


def _resolve_paths(paths) -> List[str]:
  """Accepts a list of files, or (for convenience) a directory string as in `list_images`."""
  if isinstance(paths, (str, os.PathLike)):
    return list_images(paths)
  return [str(p) for p in paths]


def _probe(path: str) -> Tuple[Optional[str], int, int]:
  """Reads only the header. Returns (skip reason or None, width, height)."""
  try:
    with Image.open(path) as im:
      width, height = im.size
      mode = im.mode
  except Exception:  # Any decoder error means the file is unusable; the reason is counted, not raised.
    return 'unreadable', 0, 0
  if mode != 'RGB':
    return 'not_rgb', width, height
  return None, width, height


def _format_counts(counts: Dict[str, int]) -> str:
  return ', '.join(f'{k}={v}' for k, v in sorted(counts.items()))


def _scan(paths: Sequence[str], min_side: int, what: str):
  """Returns (usable [(path, w, h)], skipped counts) and warns once if anything was skipped."""
  usable = []
  skipped = collections.Counter()
  for p in paths:
    reason, width, height = _probe(p)
    if reason is None and min(width, height) < min_side:
      reason = 'too_small'
    if reason is None:
      usable.append((p, width, height))
    else:
      skipped[reason] += 1
  if skipped:
    warnings.warn(f'{what}: skipped {sum(skipped.values())} of {len(paths)} images '
                  f'({_format_counts(skipped)}; min side {min_side}, RGB only)', stacklevel=3)
  return usable, dict(skipped)


def _decode_rgb(path: str) -> np.ndarray:
  """Decodes a whole image to uint8 [H, W, 3]; raises on corrupt, >8-bit or non-RGB files."""
  image = images.read_image(path)
  if image.mode != 'RGB':
    raise ValueError(f'mode {image.mode}')
  return image.pixels


def epoch_permutation(seed: int, epoch: int, num_images: int) -> np.ndarray:
  """The image order of epoch `epoch`: a permutation of range(num_images) seeded by (seed, epoch)."""
  return np.random.default_rng([seed, _PERMUTATION_STREAM, epoch]).permutation(num_images)


def batch_plan(seed: int, batch_index: int, batches_per_epoch: int, num_images: int,
               batch_size: int, permutation=None):
  """What global batch `batch_index` holds: the one plan of `CropLoader` and the store loaders.

  Args:
    seed: base seed of the permutation and crop RNGs.
    batch_index: global batch index (0, 1, ... over all epochs).
    batches_per_epoch: batches per epoch (epoch = batch_index // batches_per_epoch).
    num_images: images in the pool (the permutation's length).
    batch_size: crops per batch.
    permutation: optional epoch -> permutation function (a cache of `epoch_permutation`).

  Returns:
    [(permutation, position in it, uniforms [3] = (u_x, u_y, u_flip))], one per crop: the image
    is permutation[position] (a loader may walk on from there past an unusable image).
  """
  epoch, j = divmod(batch_index, batches_per_epoch)
  perm = (permutation(epoch) if permutation is not None
          else epoch_permutation(seed, epoch, num_images))
  # Uniforms rather than pixel offsets, so a replacement image of another size reuses them.
  uniforms = np.random.default_rng([seed, _CROP_STREAM, batch_index]).random((batch_size, 3))
  start = j * batch_size
  return [(perm, (start + t) % num_images, uniforms[t]) for t in range(batch_size)]


def check_rows(rows: Optional[Sequence[int]], batch_size: int) -> Tuple[int, ...]:
  """The rows a loader makes of each batch: all by default; each in [0, batch_size)."""
  if rows is None:
    return tuple(range(batch_size))
  rows = tuple(int(r) for r in rows)
  if not rows or min(rows) < 0 or max(rows) >= batch_size:
    raise DataError(f'rows must be a non-empty selection of 0..{batch_size - 1}, got {rows}')
  return rows


def crop_window(u: np.ndarray, height: int, width: int, crop: int,
                flip: bool = True) -> Tuple[int, int, bool]:
  """(y, x, flipped) of the crop that the uniforms `u` = (u_x, u_y, u_flip) pick in an image."""
  x = min(int(u[0] * (width - crop + 1)), width - crop)
  y = min(int(u[1] * (height - crop + 1)), height - crop)
  return y, x, bool(flip and u[2] < 0.5)


class CropLoader:
  """Endless iterator over batches of random crops, uint8 [batch_size, crop, crop, 3].

  Attributes:
    num_usable: images that passed the header scan.
    num_skipped: skip reason ('too_small', 'not_rgb', 'unreadable') -> count.
    batches_per_epoch: num_usable // batch_size (at least 1; with fewer images than a batch, an epoch
      is one batch that repeats images with different crops).
    rows: the rows of each planned batch this loader makes (all, by default).
    position: index of the next batch to be produced (= start_batch + batches produced so far);
      store it in checkpoints and pass it back as `start_batch` to resume.
  """

  def __init__(self, paths, crop_size: int, batch_size: int, seed: int = 0, flip: bool = True,
               num_workers: int = 2, start_batch: int = 0, min_size: Optional[int] = None,
               prefetch_batches: int = 2, cache: bool = False,
               rows: Optional[Sequence[int]] = None):
    """Scans image headers (no decoding) and starts the worker threads.

    Args:
      paths: image files (e.g. from `list_images`), or a data directory string.
      crop_size: side of the square crops in pixels.
      batch_size: crops per batch.
      seed: base seed of the permutation and crop RNGs.
      flip: random horizontal flip with probability 0.5.
      num_workers: decoding threads; 0 decodes in the calling thread.
      start_batch: global index of the first batch to produce (resume).
      min_size: skip images whose shorter side is below max(crop_size, min_size).
      prefetch_batches: batches decoded ahead of the consumer.
      cache: keep decoded images in memory (worth it for small pools that are read every epoch).
      rows: make only these rows of each batch of `batch_size` crops, in this order (repeats
        allowed): a process's share of a global batch (`train/distributed.py`); the epochs and
        the crops stay those of the whole batch. None: all rows.

    Raises:
      DataError: no usable image.
    """
    if crop_size <= 0 or batch_size <= 0:
      raise DataError(f'crop_size and batch_size must be positive, got {crop_size}, {batch_size}')
    paths = _resolve_paths(paths)
    if not paths:
      raise DataError('no image files given')
    self.crop_size = int(crop_size)
    self.batch_size = int(batch_size)
    self.rows = check_rows(rows, self.batch_size)
    self.seed = int(seed)
    self.flip = bool(flip)
    min_side = max(self.crop_size, int(min_size or 0))
    usable, self.num_skipped = _scan(paths, min_side, 'CropLoader')
    if not usable:
      raise DataError(f'no usable image among {len(paths)} files (need RGB with shorter side >= '
                      f'{min_side}; skipped {_format_counts(self.num_skipped)})')
    self._paths = [u[0] for u in usable]
    self.num_usable = len(usable)
    self.batches_per_epoch = max(1, self.num_usable // self.batch_size)
    self.position = int(start_batch)
    self._next_submit = self.position
    self._prefetch = max(1, int(prefetch_batches))
    self._cache = {} if cache else None
    self._bad = set()  # indices of files that failed to decode at load time
    self._lock = threading.Lock()
    self._pending = collections.deque()  # (batch index, [futures or arrays])
    self._perm_cache = (None, None)
    self._executor = (concurrent.futures.ThreadPoolExecutor(num_workers, thread_name_prefix='crops')
                      if num_workers > 0 else None)

  def seek(self, batch_index: int) -> None:
    """Makes batch `batch_index` the next one (a resume that fell back to an older checkpoint
    than the loader was made for). Only before the first batch is taken."""
    if self._pending or self._next_submit != self.position:
      raise DataError('CropLoader.seek after batches were requested')
    self.position = self._next_submit = int(batch_index)

  # -- deterministic plan ----------------------------------------------------------------------

  def _permutation(self, epoch: int) -> np.ndarray:
    cached_epoch, perm = self._perm_cache
    if cached_epoch != epoch:
      perm = epoch_permutation(self.seed, epoch, self.num_usable)
      self._perm_cache = (epoch, perm)
    return perm

  def _plan(self, batch_index: int):
    """Returns [(permutation, position in it, (u_x, u_y, u_flip))] for the crops this loader
    makes of one batch (its `rows`)."""
    plan = batch_plan(self.seed, batch_index, self.batches_per_epoch, self.num_usable,
                      self.batch_size, self._permutation)
    return [plan[r] for r in self.rows]

  # -- loading ---------------------------------------------------------------------------------

  def _image(self, index: int) -> np.ndarray:
    if self._cache is not None:
      img = self._cache.get(index)
      if img is not None:
        return img
    img = _decode_rgb(self._paths[index])
    if self._cache is not None:
      self._cache[index] = img
    return img

  def _load_crop(self, perm: np.ndarray, pos: int, u: np.ndarray) -> np.ndarray:
    """Decodes and crops the image at perm[pos]; a corrupt file is replaced by the next one of perm."""
    c = self.crop_size
    for k in range(self.num_usable):
      index = int(perm[(pos + k) % self.num_usable])
      with self._lock:
        if index in self._bad:
          continue
      try:
        img = self._image(index)
        h, w = img.shape[:2]
        if min(h, w) < c:
          raise ValueError(f'{w}x{h} is smaller than the crop')
      except Exception as e:  # Corrupt or changed file: skip it for the rest of the run.
        with self._lock:
          new = index not in self._bad
          self._bad.add(index)
        if new:
          warnings.warn(f'CropLoader: skipping unreadable image {self._paths[index]} ({e})')
        continue
      y, x, flip = crop_window(u, h, w, c, self.flip)
      crop = img[y:y + c, x:x + c]
      return np.ascontiguousarray(crop[:, ::-1] if flip else crop)
    raise DataError(f'none of the {self.num_usable} images could be decoded')

  def _submit(self, batch_index: int):
    plan = self._plan(batch_index)
    if self._executor is None:
      return [self._load_crop(*p) for p in plan]
    return [self._executor.submit(self._load_crop, *p) for p in plan]

  def __iter__(self):
    return self

  def __next__(self) -> np.ndarray:
    """Returns batch number `position` as uint8 [len(rows), crop, crop, 3] and advances."""
    if self._executor is None:
      batch = np.stack(self._submit(self.position))
    else:
      while self._next_submit < self.position + self._prefetch:
        self._pending.append((self._next_submit, self._submit(self._next_submit)))
        self._next_submit += 1
      index, futures = self._pending.popleft()
      assert index == self.position, (index, self.position)
      batch = np.stack([f.result() for f in futures])
    self.position += 1
    return batch

  def close(self):
    """Stops the worker threads (pending decodes are cancelled)."""
    if self._executor is not None:
      self._executor.shutdown(wait=True, cancel_futures=True)
      self._executor = None
    self._pending.clear()
    self._next_submit = self.position

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
    return False

  def __del__(self):
    try:
      if self._executor is not None:
        self._executor.shutdown(wait=False, cancel_futures=True)
    except Exception:  # Interpreter shutdown; nothing to clean up reliably.
      pass


def center_crops(paths, crop_size: int, max_images: Optional[int] = None) -> np.ndarray:
  """Center crops for validation (docs/l3c_reference.md#training-recipe), in the order of `paths`.

  Args:
    paths: image files, or a data directory string as in `list_images`.
    crop_size: side of the square crops in pixels.
    max_images: stop after this many usable images.

  Returns:
    uint8 [N, crop_size, crop_size, 3]; too-small, non-RGB and unreadable images are skipped (one warning).

  Raises:
    DataError: no usable image.
  """
  paths = _resolve_paths(paths)
  c = int(crop_size)
  crops = []
  skipped = collections.Counter()
  for p in paths:
    if max_images is not None and len(crops) >= max_images:
      break
    try:
      img = _decode_rgb(p)
    except Exception:
      reason, _, _ = _probe(p)
      skipped[reason or 'unreadable'] += 1
      continue
    h, w = img.shape[:2]
    if min(h, w) < c:
      skipped['too_small'] += 1
      continue
    crops.append(images.center_crop(img, c))
  if skipped:
    warnings.warn(f'center_crops: skipped {sum(skipped.values())} images ({_format_counts(skipped)}; '
                  f'crop {c}, RGB only)', stacklevel=2)
  if not crops:
    raise DataError(f'no usable image for {c}x{c} center crops among {len(paths)} files '
                    f'(skipped {_format_counts(skipped)})')
  return np.stack(crops)
