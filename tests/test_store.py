"""The pre-decoded image store (l3c_jax/data/store.py) and the training input built on it
(l3c_jax/train/input.py): store round trip, the CropLoader plan, resume, per-process rows, worker
processes, device prefetch. Tiny synthetic images only."""

import os
import warnings

import jax
import numpy as np
from PIL import Image
import pytest

from l3c_jax.data import pipeline
from l3c_jax.data import store as store_lib
from l3c_jax.train import input as input_lib
from l3c_jax.train.config import TrainConfig

import launchers


def _coord_image(width, height, image_id):
  """uint8 [H, W, 3] with R = x, G = y, B = image_id, so any crop reveals its source and offset."""
  y, x = np.mgrid[0:height, 0:width]
  return np.stack([x, y, np.full_like(x, image_id)], axis=-1).astype(np.uint8)


def _folder(tmp_path, n=7, noise=False):
  """n PNGs of assorted sizes (>= 20 px); coordinate images, or noise (PNG's worst case)."""
  d = tmp_path / 'images'
  d.mkdir()
  rng = np.random.default_rng(0)
  for i in range(n):
    w, h = 24 + 5 * i, 20 + 3 * (i % 4)
    img = (rng.integers(0, 256, (h, w, 3), np.uint8) if noise else _coord_image(w, h, 10 * i))
    Image.fromarray(img).save(d / f'im{i:02d}.png')
  return str(d)


def _store(tmp_path, n=7, noise=False):
  folder = _folder(tmp_path, n, noise)
  path = str(tmp_path / 'store')
  store_lib.write_store(pipeline.list_images(folder), path)
  return folder, path


def test_store_round_trip_images_and_crops_equal_the_decoded_pngs(tmp_path):
  folder, path = _store(tmp_path, noise=True)
  store = store_lib.ImageStore(path)
  paths = pipeline.list_images(folder)
  assert len(store) == len(paths) and store.names == paths
  rng = np.random.default_rng(1)
  for i, p in enumerate(paths):
    png = np.asarray(Image.open(p))
    np.testing.assert_array_equal(store.image(i), png)
    assert tuple(store.shapes[i]) == png.shape[:2]
    for _ in range(3):
      y, x = int(rng.integers(0, png.shape[0] - 16 + 1)), int(rng.integers(0, png.shape[1] - 16 + 1))
      np.testing.assert_array_equal(store.crop(i, y, x, 16), png[y:y + 16, x:x + 16])
      np.testing.assert_array_equal(store.crop(i, y, x, 16, flip=True), png[y:y + 16, x:x + 16][:, ::-1])


def test_store_batches_equal_crop_loader_batches_with_the_same_seed(tmp_path):
  folder, path = _store(tmp_path, noise=True)
  # 16-px crops: every image usable; 22-px crops: the 20-px-high ones are skipped by both.
  for crop in (16, 22):
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')  # CropLoader warns about the skipped small images
      with pipeline.CropLoader(folder, crop, batch_size=3, seed=4, num_workers=0) as png:
        expected = [next(png) for _ in range(6)]  # 2 batches per epoch: three epochs
    batches = store_lib.StoreBatches(path, crop, batch_size=3, seed=4)
    assert batches.num_usable == png.num_usable
    for i, batch in enumerate(expected):
      np.testing.assert_array_equal(batches[i], batch)


def test_store_loader_is_deterministic_given_the_seed(tmp_path):
  _, path = _store(tmp_path)

  def take(seed, n=5):
    with input_lib.StoreLoader(path, 16, batch_size=2, seed=seed, num_workers=0) as loader:
      return np.stack([next(loader) for _ in range(n)])

  np.testing.assert_array_equal(take(3), take(3))
  assert not np.array_equal(take(3), take(4))
  # Flips: R = x decreases along a row exactly in the flipped crops; about half of them.
  red = take(3, 40).reshape(-1, 16, 16, 3)[:, 0, :, 0].astype(int)
  assert 0.3 < np.mean(red[:, 0] > red[:, -1]) < 0.7


def test_store_loader_resumes_at_start_batch_and_seek(tmp_path):
  _, path = _store(tmp_path)
  with input_lib.StoreLoader(path, 16, batch_size=2, seed=5, num_workers=0) as fresh:
    assert fresh.batches_per_epoch == 3
    reference = [next(fresh) for _ in range(10)]  # crosses three epoch boundaries
  for k in (1, 3, 7):
    with input_lib.StoreLoader(path, 16, batch_size=2, seed=5, num_workers=0,
                               start_batch=k) as resumed:
      assert resumed.position == k
      for i in range(k, 10):
        np.testing.assert_array_equal(next(resumed), reference[i])
      assert resumed.position == 10
  with input_lib.StoreLoader(path, 16, batch_size=2, seed=5, num_workers=0, start_batch=9) as sk:
    sk.seek(4)
    np.testing.assert_array_equal(next(sk), reference[4])
    with pytest.raises(pipeline.DataError, match='seek'):
      sk.seek(2)


def test_rows_of_two_processes_make_up_the_global_batch(tmp_path):
  """Multi-process training: each process makes only its rows of every global batch (padding
  rows repeat real ones); together they are the 1-process batches, epochs included."""
  folder, path = _store(tmp_path, n=7)
  full = store_lib.StoreBatches(path, 16, batch_size=3, seed=4)
  # Batch 3 padded to 4 rows over 2 processes: rows (0, 1) and (2, 3 -> plan row 0).
  parts = [store_lib.StoreBatches(path, 16, batch_size=3, seed=4, rows=r)
           for r in ((0, 1), (2, 0))]
  crops = pipeline.CropLoader(pipeline.list_images(folder), 16, 3, seed=4, num_workers=0,
                              rows=(2, 0))
  for shard in parts:
    assert shard.batches_per_epoch == full.batches_per_epoch == 2  # global: 7 // 3
  for b in range(5):  # across epochs
    whole = full[b]
    np.testing.assert_array_equal(np.concatenate([parts[0][b], parts[1][b]]), whole[[0, 1, 2, 0]])
    np.testing.assert_array_equal(next(crops), whole[[2, 0]])
  crops.close()
  for bad in ((), (3,), (-1, 0)):
    with pytest.raises(pipeline.DataError, match='rows'):
      store_lib.StoreBatches(path, 16, batch_size=3, rows=bad)


def test_store_loader_worker_processes_give_the_same_batches(tmp_path):
  _, path = _store(tmp_path)
  with input_lib.StoreLoader(path, 16, batch_size=2, seed=2, num_workers=0, start_batch=2) as a:
    expected = [next(a) for _ in range(6)]
  with input_lib.StoreLoader(path, 16, batch_size=2, seed=2, num_workers=2, start_batch=2) as b:
    got = [next(b) for _ in range(6)]
    assert b.position == 8
  for e, g in zip(expected, got):
    assert type(g) is np.ndarray  # a plain copy, not grain's shared-memory array
    np.testing.assert_array_equal(g, e)


def test_device_prefetcher_yields_the_same_batches_and_counts_consumed_ones(tmp_path):
  _, path = _store(tmp_path)
  with input_lib.StoreLoader(path, 16, batch_size=2, seed=1, num_workers=0, start_batch=3) as a:
    expected = [next(a) for _ in range(5)]
  for size in (0, 2):
    with input_lib.StoreLoader(path, 16, batch_size=2, seed=1, num_workers=0,
                               start_batch=3) as loader:
      batches = input_lib.DevicePrefetcher(loader, jax.device_put, size)
      assert batches.position == 3
      for i, e in enumerate(expected):
        got = next(batches)
        assert isinstance(got, jax.Array)
        np.testing.assert_array_equal(np.asarray(got), e)
        assert batches.position == 3 + i + 1  # what a checkpoint stores
        assert loader.position == 3 + i + 1 + size  # the loader runs `size` ahead
  # A finite source: the queued batches still come out.
  assert [int(x) for x in input_lib.DevicePrefetcher(_Counter(3), lambda v: v, 2)] == [0, 1, 2]


class _Counter:
  """A finite loader: 0, 1, ..., n-1."""

  def __init__(self, n):
    self.n, self.position = n, 0

  def __iter__(self):
    return self

  def __next__(self):
    if self.position == self.n:
      raise StopIteration
    self.position += 1
    return self.position - 1


def test_write_store_skips_and_counts_non_rgb_and_refuses_existing(tmp_path):
  folder = _folder(tmp_path, n=2)
  Image.new('L', (30, 30)).save(os.path.join(folder, 'gray.png'))
  with open(os.path.join(folder, 'broken.png'), 'wb') as f:
    f.write(b'\x89PNG\r\n\x1a\n' + b'\0' * 40)
  path = str(tmp_path / 'store')
  with pytest.warns(UserWarning, match='skipped 2 of 4'):
    stats = store_lib.write_store(pipeline.list_images(folder), path)
  assert stats['num_images'] == 2 and stats['skipped'] == {'not_rgb': 1, 'unreadable': 1}
  assert store_lib.is_store(path) and not store_lib.is_store(folder)
  assert store_lib.ImageStore(path).skipped == stats['skipped']
  with pytest.raises(pipeline.DataError, match='already exists'):
    store_lib.write_store(pipeline.list_images(folder), path)


def test_damaged_store_and_too_small_crops_are_one_line_data_errors(tmp_path):
  _, path = _store(tmp_path, n=2)
  with pytest.raises(pipeline.DataError, match='no usable image'):
    store_lib.StoreBatches(path, 64, batch_size=1)
  with open(os.path.join(path, store_lib.PIXELS_FILE), 'r+b') as f:
    f.truncate(100)
  with pytest.raises(pipeline.DataError, match='incomplete or damaged'):
    store_lib.ImageStore(path)
  with pytest.raises(pipeline.DataError, match='not an image store'):
    store_lib.ImageStore(str(tmp_path))


def test_make_loader_picks_the_store_or_the_folders(tmp_path):
  folder, path = _store(tmp_path)
  tcfg = TrainConfig(crop_size=16, num_workers=0)
  with input_lib.make_loader(tcfg, folder, 2) as loader:
    assert isinstance(loader, pipeline.CropLoader)
  with input_lib.make_loader(tcfg, path, 2, start_batch=4) as loader:  # --data_dir=STORE
    assert isinstance(loader, input_lib.StoreLoader) and loader.position == 4
  store_cfg = TrainConfig(crop_size=16, num_workers=0, data_store=path)
  with input_lib.make_loader(store_cfg, None, 2, rows=(1,)) as loader:
    assert isinstance(loader, input_lib.StoreLoader) and loader.num_usable == 7
    assert next(loader).shape == (1, 16, 16, 3)
  with pytest.raises(pipeline.DataError, match='not an image store'):
    input_lib.make_loader(TrainConfig(data_store=folder), None, 2)
  with pytest.raises(pipeline.DataError, match='no training data'):
    input_lib.make_loader(TrainConfig(), None, 2)
  assert input_lib.resolve_workers(-1) == os.cpu_count() and input_lib.resolve_workers(3) == 3


def test_prepare_store_launcher_writes_a_store_and_refuses_to_overwrite(tmp_path, capsys):
  folder = _folder(tmp_path, n=3)
  dst = str(tmp_path / 'st')
  assert launchers.run_main('prepare_store', f'--images={folder}', f'--store={dst}') == 0
  assert '3 of 3 images' in capsys.readouterr().out and len(store_lib.ImageStore(dst)) == 3
  assert launchers.run_main('prepare_store', f'--images={folder}', f'--store={dst}') == 1
  assert 'exists' in capsys.readouterr().err
  assert launchers.run_main('prepare_store', f'--images={folder}', f'--store={dst}',
                            '--replace') == 0
  assert launchers.run_main('prepare_store', f'--images={folder}', f'--store={folder}',
                            '--replace') == 1
  assert 'not a store' in capsys.readouterr().err


def test_bench_input_prints_crops_per_second_and_cpu_per_crop(tmp_path, capsys):
  folder = _folder(tmp_path, n=4)
  assert launchers.run_main('bench_input', f'--data_dir={folder}', '--crop_size=16', '--batch_size=2',
                            '--seconds=0.2', '--rounds=1', '--loaders=png,store_inline') == 0
  out = capsys.readouterr().out
  rows = {line.split()[0]: line.split() for line in out.splitlines()
          if line.split() and line.split()[0] in ('png', 'store_inline')}
  assert set(rows) == {'png', 'store_inline'}, out
  assert float(rows['store_inline'][2]) > 0 and float(rows['store_inline'][3]) > 0
  assert rows['png'][-2:] == ['1.0x', 'less'] and rows['store_inline'][-1] == 'less'


def test_downscaled_copies_follow_their_images_with_lanczos_pixels_and_seeded_factors(tmp_path):
  """Scale augmentation: after each image its copy, Lanczos-downscaled by a factor in [lo, hi]
  drawn from (seed, index); copies below the minimum side left out (and not warned about)."""
  folder = _folder(tmp_path, n=4, noise=True)  # 24x20 .. 39x29
  paths = pipeline.list_images(folder)
  path = str(tmp_path / 'store')
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    stats = store_lib.write_store(paths, path, downscale=(0.6, 0.8), downscale_seed=3,
                                  downscale_min_side=14)
  store = store_lib.ImageStore(path)
  names, k = store.names, 0
  for i, p in enumerate(paths):
    assert names[k] == p
    png = np.asarray(Image.open(p))
    np.testing.assert_array_equal(store.image(k), png)
    k += 1
    r = store_lib.downscale_factor(3, i, 0.6, 0.8)
    assert 0.6 <= r <= 0.8
    h, w = png.shape[:2]
    if min(round(w * r), round(h * r)) < 14:
      continue
    assert names[k] == f'{p}@{r:.4f}'
    want = np.asarray(Image.fromarray(png).resize((round(w * r), round(h * r)),
                                                  resample=Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(store.image(k), want)
    k += 1
  assert k == len(store) == stats['num_images'] and stats['num_copies'] == k - len(paths) > 0
  assert stats['copies_too_small'] == 2 * len(paths) - k and stats['skipped'] == {}
  assert store.skipped == {}  # the store's skips count source files only
  # The factors depend on the seed and the index only.
  assert store_lib.downscale_factor(3, 1, 0.6, 0.8) != store_lib.downscale_factor(4, 1, 0.6, 0.8)
  with pytest.raises(pipeline.DataError, match='0 < low <= high < 1'):
    store_lib.write_store(paths, str(tmp_path / 'bad'), downscale=(0.8, 1.2))


def test_prepare_store_launcher_adds_downscaled_copies(tmp_path, capsys):
  folder = tmp_path / 'big'
  folder.mkdir()
  Image.fromarray(_coord_image(230, 200, 1)).save(folder / 'a.png')  # copy: >= 138 x 120 px
  Image.fromarray(_coord_image(40, 30, 2)).save(folder / 'b.png')    # copy too small
  dst = str(tmp_path / 'st')
  assert launchers.run_main('prepare_store', f'--images={folder}', f'--store={dst}',
                            '--downscaled_copy=0.6,0.8', '--downscale_seed=5') == 0
  assert '2 of 2 images + 1 downscaled copies' in capsys.readouterr().out
  store = store_lib.ImageStore(dst)
  r = store_lib.downscale_factor(5, 0, 0.6, 0.8)
  assert len(store) == 3 and tuple(store.shapes[1]) == (round(200 * r), round(230 * r))
  assert launchers.run_main('prepare_store', f'--images={folder}', f'--store={dst}2',
                            '--downscaled_copy=0.6') == 2
  assert 'LOW,HIGH' in capsys.readouterr().err
