r"""Prepares JPEG-origin photos for training: the official L3C "v3" Open Images recipe
(docs/l3c_reference.md#data-recipe-v3).

For every source image: discard non-RGB images; draw a scale factor s; Lanczos-downscale by s (this
removes JPEG blocks and chroma subsampling, which a lossless model would otherwise learn); discard
images whose mean HSV saturation > 0.9 or mean HSV value > 0.8 (computed after resizing) or whose
shorter side is below --min_side; save as PNG.

Scale factor:
  * default (v3): D = shorter side, s_min = 512 / D, discard if s_min > 0.8, s ~ U(s_min, 0.8);
  * --scale_min/--scale_max: s ~ U(scale_min, scale_max) instead, for small photos (ImageNet's median
    is 500x375, so v3 would discard nearly all of them).

Output names are `<source dir name>_<source stem>.png` so several source folders never collide.
--heldout_fraction sends a deterministic share of the outputs (by a hash of the output name) to
--heldout_dst, for a held-out set the model never trains on. Existing outputs are kept unless
--overwrite, so an interrupted run resumes.

Usage:
  python experiments/prepare_images.py --src=../shared/data/train/imagenet_sample_jpeg,... \
      --dst=/path/prepared/train --heldout_fraction=0.06 --heldout_dst=/path/prepared/heldout \
      --scale_min=0.5 --scale_max=0.8
"""

import collections
import concurrent.futures
import dataclasses
import hashlib
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from absl import app
from absl import flags
import numpy as np
from PIL import Image

from l3c_jax.data.pipeline import DataError, list_images

FLAGS = flags.FLAGS

flags.DEFINE_string('src', None, 'Source directory, or comma-separated directories (searched recursively).')
flags.DEFINE_string('dst', None, 'Output directory for the training PNGs (created if missing).')
flags.DEFINE_integer('scale_seed', 123, 'Seed of the scale factors (official v3 script: 123).')
flags.DEFINE_float('scale_min', None, 'With --scale_max: draw s ~ U(scale_min, scale_max) instead of v3.')
flags.DEFINE_float('scale_max', None, 'With --scale_min: upper end of the fixed scale range.')
flags.DEFINE_integer('min_side', 128, 'Discard outputs whose shorter side is below this (training crop).')
flags.DEFINE_float('max_saturation', 0.9, 'Discard if mean HSV saturation (0..1) exceeds this.')
flags.DEFINE_float('max_value', 0.8, 'Discard if mean HSV value (0..1) exceeds this.')
flags.DEFINE_float('heldout_fraction', 0.0, 'Fraction of outputs sent to --heldout_dst (by name hash).')
flags.DEFINE_string('heldout_dst', None, 'Output directory of the held-out PNGs.')
flags.DEFINE_bool('overwrite', False, 'Re-create outputs that already exist.')
flags.DEFINE_integer('num_workers', 2, 'Worker threads (Pillow releases the GIL while resizing/coding).')

# v3 constants (docs/l3c_reference.md#data-recipe-v3).
V3_TARGET_SHORT_SIDE = 512
V3_SCALE_MAX = 0.8

DISCARD_REASONS = ('unreadable', 'not_rgb', 'too_small', 'saturated', 'overexposed')


@dataclasses.dataclass(frozen=True)
class Recipe:
  """What to do with each image; scale_range None means the official v3 factor range."""
  seed: int = 123
  scale_range: Optional[Tuple[float, float]] = None
  min_side: int = 128
  max_saturation: float = 0.9
  max_value: float = 0.8


def _name_hash64(name: str) -> int:
  """Stable 64-bit hash of a file name (Python's hash() is salted per process)."""
  return int.from_bytes(hashlib.sha256(name.encode('utf-8')).digest()[:8], 'big')


def name_fraction(name: str) -> float:
  """Stable value in [0, 1) from a file name."""
  return _name_hash64(name) / 2.0**64


def is_heldout(name: str, heldout_fraction: float) -> bool:
  return name_fraction(name) < heldout_fraction


def scale_range(width: int, height: int, recipe: Recipe) -> Optional[Tuple[float, float]]:
  """Range of the scale factor for a width x height image, or None if v3 discards it as too small."""
  if recipe.scale_range is not None:
    return recipe.scale_range
  s_min = V3_TARGET_SHORT_SIDE / min(width, height)
  if s_min > V3_SCALE_MAX:
    return None
  return s_min, V3_SCALE_MAX


def image_rng(name: str, seed: int) -> np.random.Generator:
  # NOTE(l3c-pytorch): the official script draws all factors from one sequential RNG seeded with 123;
  # we seed per output name so results do not depend on worker order, the source set, or resuming.
  return np.random.default_rng([seed, _name_hash64(name)])


def mean_saturation_value(img: Image.Image) -> Tuple[float, float]:
  """Mean HSV saturation and value of an RGB image, both in 0..1."""
  hsv = np.asarray(img.convert('HSV'), dtype=np.float64)
  return hsv[..., 1].mean() / 255.0, hsv[..., 2].mean() / 255.0


def process_image(src_path: str, out_path: str, name: str, recipe: Recipe) -> str:
  """Applies the recipe to one image and writes `out_path` unless discarded.

  Returns:
    'written' or a discard reason from DISCARD_REASONS.
  """
  try:
    with Image.open(src_path) as im:
      if im.mode != 'RGB':
        return 'not_rgb'
      width, height = im.size
      rng_range = scale_range(width, height, recipe)
      if rng_range is None:
        return 'too_small'
      s = image_rng(name, recipe.seed).uniform(*rng_range)
      new_size = (max(1, round(width * s)), max(1, round(height * s)))
      if min(new_size) < recipe.min_side:
        return 'too_small'
      im.load()
      small = im.resize(new_size, resample=Image.Resampling.LANCZOS)
  except (OSError, ValueError, Image.DecompressionBombError):
    return 'unreadable'
  saturation, value = mean_saturation_value(small)
  if saturation > recipe.max_saturation:
    return 'saturated'
  if value > recipe.max_value:
    return 'overexposed'
  # Write then rename, so an interrupted run never leaves a truncated PNG that a rerun would keep.
  tmp_path = out_path + '.part'
  small.save(tmp_path, format='PNG')
  os.replace(tmp_path, out_path)
  return 'written'


def plan_outputs(src_dirs: Sequence[str]) -> List[Tuple[str, str]]:
  """Maps every source image to a unique output name `<dir name>_<relative stem>.png`.

  Raises:
    DataError: a source directory is missing/empty, or two sources share a directory name.
  """
  prefixes = {}
  for d in src_dirs:
    prefix = os.path.basename(os.path.normpath(d))
    if prefix in prefixes and os.path.normpath(prefixes[prefix]) != os.path.normpath(d):
      raise DataError(f'two source directories are both named {prefix!r}: {prefixes[prefix]}, {d}')
    prefixes[prefix] = d
  plan = []
  for prefix, d in prefixes.items():
    for path in list_images(d):
      rel = os.path.splitext(os.path.relpath(path, d))[0].replace(os.sep, '_')
      plan.append((path, f'{prefix}_{rel}'))
  # Same stem with two extensions (a.jpg, a.png): keep both, distinguished by the extension.
  counts = collections.Counter(stem for _, stem in plan)
  named = []
  for path, stem in plan:
    if counts[stem] > 1:
      stem += '_' + os.path.splitext(path)[1][1:].lower()
    named.append((path, stem + '.png'))
  return named


def prepare(src_dirs: Sequence[str], dst: str, recipe: Recipe, heldout_fraction: float = 0.0,
            heldout_dst: Optional[str] = None, overwrite: bool = False,
            num_workers: int = 2) -> Dict[str, int]:
  """Runs the recipe over all source images.

  Returns:
    Counts: 'written_train', 'written_heldout', 'existing', 'sources' and each discard reason.

  Raises:
    DataError: bad sources or options (one-line message).
  """
  if heldout_fraction > 0 and not heldout_dst:
    raise DataError('--heldout_fraction > 0 needs --heldout_dst')
  if not 0.0 <= heldout_fraction < 1.0:
    raise DataError(f'--heldout_fraction must be in [0, 1), got {heldout_fraction}')
  if heldout_dst and os.path.abspath(heldout_dst) == os.path.abspath(dst):
    raise DataError('--heldout_dst must differ from --dst')
  plan = plan_outputs(src_dirs)
  os.makedirs(dst, exist_ok=True)
  if heldout_fraction > 0:
    os.makedirs(heldout_dst, exist_ok=True)

  counts = collections.Counter(sources=len(plan))
  jobs = []
  for src_path, name in plan:
    heldout = heldout_fraction > 0 and is_heldout(name, heldout_fraction)
    out_path = os.path.join(heldout_dst if heldout else dst, name)
    if not overwrite and os.path.exists(out_path):
      counts['existing'] += 1
      continue
    jobs.append((src_path, out_path, name, heldout))

  def run(job):
    src_path, out_path, name, heldout = job
    status = process_image(src_path, out_path, name, recipe)
    if status == 'written':
      return 'written_heldout' if heldout else 'written_train'
    return status

  if num_workers > 0:
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
      counts.update(pool.map(run, jobs))
  else:
    counts.update(map(run, jobs))
  return dict(counts)


def summary_line(counts: Dict[str, int], dst: str, heldout_dst: Optional[str]) -> str:
  written = counts.get('written_train', 0) + counts.get('written_heldout', 0)
  discarded = {r: counts[r] for r in DISCARD_REASONS if counts.get(r)}
  line = (f'prepare_images: {counts.get("sources", 0)} sources; wrote {written} '
          f'(train {counts.get("written_train", 0)} -> {dst}')
  if heldout_dst:
    line += f', heldout {counts.get("written_heldout", 0)} -> {heldout_dst}'
  line += f'); kept {counts.get("existing", 0)} existing; discarded {sum(discarded.values())}'
  if discarded:
    line += ' (' + ', '.join(f'{k}={v}' for k, v in discarded.items()) + ')'
  return line


def main(argv):
  del argv
  if not FLAGS.src or not FLAGS.dst:
    sys.exit('prepare_images: error: --src and --dst are required')
  if (FLAGS.scale_min is None) != (FLAGS.scale_max is None):
    sys.exit('prepare_images: error: give both --scale_min and --scale_max, or neither (v3 range)')
  scale = None
  if FLAGS.scale_min is not None:
    if not 0.0 < FLAGS.scale_min <= FLAGS.scale_max <= 1.0:
      sys.exit(f'prepare_images: error: need 0 < scale_min <= scale_max <= 1, '
               f'got {FLAGS.scale_min}, {FLAGS.scale_max}')
    scale = (FLAGS.scale_min, FLAGS.scale_max)
  recipe = Recipe(seed=FLAGS.scale_seed, scale_range=scale, min_side=FLAGS.min_side,
                  max_saturation=FLAGS.max_saturation, max_value=FLAGS.max_value)
  src_dirs = [d.strip() for d in FLAGS.src.split(',') if d.strip()]
  try:
    counts = prepare(src_dirs, FLAGS.dst, recipe, FLAGS.heldout_fraction, FLAGS.heldout_dst,
                     FLAGS.overwrite, FLAGS.num_workers)
  except DataError as e:
    sys.exit(f'prepare_images: error: {e}')
  print(summary_line(counts, FLAGS.dst, FLAGS.heldout_dst if FLAGS.heldout_fraction > 0 else None))


if __name__ == '__main__':
  app.run(main)
