r"""Decodes training images once into an image store (l3c_jax/data/store.py) for fast training.

Training from PNG folders decodes a whole image for every 128x128 crop (>99 % of the input
work); a store holds the decoded pixels in one memory-mapped file, so a crop reads only its rows.
Keeps the images of `--images` in the training loader's order (sorted paths, RGB 8-bit only), so a
run on the store draws the same crops as a run on the folder with the same seed.

Usage (once per pool; ~12 ms per Kodak-size image, ~1 byte per sub-pixel on disk):
  python experiments/prepare_store.py --images=../prepared/train --store=../stores/train
  # with a downscaled copy of each image (scale augmentation, factor in [0.6, 0.8]):
  python experiments/prepare_store.py --images=../prepared/train --store=../stores/train_x2 \
    --downscaled_copy=0.6,0.8
  python experiments/train.py ... --train.data_store=../stores/train  # or --data_dir=STORE
"""

import os
import shutil
import sys
import time

from absl import app
from absl import flags

from l3c_jax.data import pipeline
from l3c_jax.data import store as store_lib

FLAGS = flags.FLAGS


# Names differ from prepare_images.py's --src / --dst / --overwrite: tests import every launcher
# into one process, where absl refuses a flag defined twice.
flags.DEFINE_string('images', None, 'Image folder, or comma-separated folders (searched '
                    'recursively).')
flags.DEFINE_string('store', None, 'Store directory to create.')
flags.DEFINE_bool('replace', False, 'Replace an existing store at --store.')
flags.DEFINE_list('downscaled_copy', [], 'LOW,HIGH (e.g. 0.6,0.8): also store one Lanczos-'
                  'downscaled copy of each image, factor uniform in [LOW, HIGH] per image '
                  '(scale augmentation; copies with a side below 128 px are left out).')
flags.DEFINE_integer('downscale_seed', 0, 'Seed of the --downscaled_copy factors.')


def main(argv):
  del argv
  if not FLAGS.images or not FLAGS.store:
    print('prepare_store: error: --images and --store are required', file=sys.stderr)
    return 2
  if os.path.exists(FLAGS.store):
    if not FLAGS.replace:
      print(f'prepare_store: error: {FLAGS.store} exists (--replace replaces it)',
            file=sys.stderr)
      return 1
    if not store_lib.is_store(FLAGS.store):
      print(f'prepare_store: error: {FLAGS.store} exists and is not a store; not replacing it',
            file=sys.stderr)
      return 1
    shutil.rmtree(FLAGS.store)
  t0 = time.time()
  try:
    paths = pipeline.list_images(FLAGS.images)
    downscale = None
    if FLAGS.downscaled_copy:
      try:
        low, high = (float(v) for v in FLAGS.downscaled_copy)
      except ValueError:
        print(f'prepare_store: error: --downscaled_copy takes LOW,HIGH: '
              f'{",".join(FLAGS.downscaled_copy)}', file=sys.stderr)
        return 2
      downscale = (low, high)
    stats = store_lib.write_store(paths, FLAGS.store, downscale=downscale,
                                  downscale_seed=FLAGS.downscale_seed)
  except pipeline.DataError as e:
    print(f'prepare_store: error: {e}', file=sys.stderr)
    return 1
  skipped = ', '.join(f'{k}={v}' for k, v in sorted(stats['skipped'].items())) or 'none'
  copies = (f' + {stats["num_copies"]} downscaled copies ({stats["copies_too_small"]} too small '
            f'left out)' if downscale else '')
  print(f'prepare_store: {stats["num_images"] - stats["num_copies"]} of {len(paths)} images'
        f'{copies} -> {FLAGS.store} '
        f'({stats["num_bytes"] / 2**20:.1f} MiB, {time.time() - t0:.1f} s; skipped: {skipped})')
  return 0


if __name__ == '__main__':
  app.run(lambda argv: sys.exit(main(argv)))
