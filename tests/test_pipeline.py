"""Tests for l3c_jax/data/pipeline.py on tiny synthetic images."""

import os
import warnings

import numpy as np
from PIL import Image
import pytest

from l3c_jax.data import pipeline
from l3c_jax.data.pipeline import CropLoader, DataError, center_crops, list_images

SHARED_DATA = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data')


def _coord_image(width, height, image_id):
  """uint8 [H, W, 3] with R = x, G = y, B = image_id, so any crop reveals its source and offset."""
  y, x = np.mgrid[0:height, 0:width]
  return np.stack([x, y, np.full_like(x, image_id)], axis=-1).astype(np.uint8)


def _write(path, array_or_image):
  im = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  im.save(path)
  return str(path)


def _coord_set(tmp_path, n, width=40, height=36):
  return [_write(tmp_path / f'img{i:02d}.png', _coord_image(width, height, 10 * i)) for i in range(n)]


def test_list_images_missing_dir_is_one_line_data_error(tmp_path):
  with pytest.raises(DataError) as e:
    list_images(str(tmp_path / 'nope'))
  assert 'does not exist' in str(e.value) and '\n' not in str(e.value)


def test_list_images_empty_dir_is_data_error(tmp_path):
  (tmp_path / 'notes.txt').write_text('not an image')
  with pytest.raises(DataError) as e:
    list_images(str(tmp_path))
  assert 'no images' in str(e.value) and '\n' not in str(e.value)


def test_list_images_recursive_sorted_over_comma_separated_dirs(tmp_path):
  img = _coord_image(8, 8, 0)
  expected = [_write(tmp_path / 'a' / 'z.PNG', img), _write(tmp_path / 'a' / 'sub' / 'b.jpg', img),
              _write(tmp_path / 'b' / 'c.JPEG', img), _write(tmp_path / 'b' / 'd.bmp', img)]
  (tmp_path / 'b' / 'readme.txt').write_text('x')
  got = list_images(f'{tmp_path / "b"}, {tmp_path / "a"}')
  assert got == sorted(expected)
  assert list_images([str(tmp_path / 'a'), str(tmp_path / 'b')]) == got


def test_crop_loader_batch_shape_and_dtype(tmp_path):
  paths = _coord_set(tmp_path, 5)
  with CropLoader(paths, crop_size=16, batch_size=3, num_workers=2) as loader:
    batch = next(loader)
    assert batch.shape == (3, 16, 16, 3) and batch.dtype == np.uint8
    assert loader.num_usable == 5 and loader.batches_per_epoch == 1 and loader.position == 1


def test_crop_loader_crops_are_windows_of_their_source(tmp_path):
  paths = _coord_set(tmp_path, 4)
  with CropLoader(paths, crop_size=16, batch_size=4, flip=False, num_workers=0) as loader:
    for _ in range(3):
      for crop in next(loader):
        x0, y0, image_id = (int(v) for v in crop[0, 0])
        source = _coord_image(40, 36, image_id)
        np.testing.assert_array_equal(crop, source[y0:y0 + 16, x0:x0 + 16])


def test_crop_loader_skips_and_counts_small_and_grayscale(tmp_path):
  paths = _coord_set(tmp_path, 3)
  paths.append(_write(tmp_path / 'small.png', _coord_image(12, 40, 1)))
  paths.append(_write(tmp_path / 'gray.png', Image.fromarray(np.zeros((40, 40), np.uint8), 'L')))
  paths.append(_write(tmp_path / 'rgba.png', Image.new('RGBA', (40, 40))))
  with pytest.warns(UserWarning, match='skipped 3 of 6'):
    loader = CropLoader(paths, crop_size=16, batch_size=2, num_workers=0)
  assert loader.num_usable == 3
  assert loader.num_skipped == {'too_small': 1, 'not_rgb': 2}
  with pytest.warns(UserWarning, match='min side 37'):
    big = _write(tmp_path / 'big.png', _coord_image(50, 50, 2))
    loader = CropLoader(paths[:4] + [big], crop_size=16, batch_size=2, min_size=37, num_workers=0)
  assert loader.num_usable == 1
  assert loader.num_skipped == {'too_small': 4}  # the 40x36 images are now too small too


def test_crop_loader_without_usable_images_is_data_error(tmp_path):
  paths = [_write(tmp_path / 'small.png', _coord_image(8, 8, 0))]
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    with pytest.raises(DataError) as e:
      CropLoader(paths, crop_size=16, batch_size=2)
  assert 'no usable image' in str(e.value) and '\n' not in str(e.value)


def test_crop_loader_resume_equals_fresh_loader_regardless_of_threads(tmp_path):
  paths = _coord_set(tmp_path, 7)
  with CropLoader(paths, 16, batch_size=2, seed=5, num_workers=0) as fresh:
    reference = [next(fresh) for _ in range(9)]  # 3 batches per epoch: crosses two epoch boundaries
  for k in (0, 2, 4):
    with CropLoader(paths, 16, batch_size=2, seed=5, num_workers=3, start_batch=k) as resumed:
      assert resumed.position == k
      for i in range(k, 9):
        np.testing.assert_array_equal(next(resumed), reference[i])
      assert resumed.position == 9
  with CropLoader(paths, 16, batch_size=2, seed=6, num_workers=0) as other_seed:
    assert not np.array_equal(np.stack([next(other_seed) for _ in range(3)]), np.stack(reference[:3]))


def test_crop_loader_epochs_cover_every_image_and_reshuffle(tmp_path):
  paths = _coord_set(tmp_path, 8)
  with CropLoader(paths, 16, batch_size=2, seed=1, num_workers=2) as loader:
    epochs = [[int(c[0, 0, 2]) for _ in range(4) for c in next(loader)] for _ in range(3)]
  for order in epochs:
    assert sorted(order) == [10 * i for i in range(8)]
  assert len({tuple(o) for o in epochs}) > 1


def test_crop_loader_flips_about_half_the_crops(tmp_path):
  paths = _coord_set(tmp_path, 4)

  def flipped_fraction(flip):
    with CropLoader(paths, 16, batch_size=4, flip=flip, num_workers=0) as loader:
      crops = np.concatenate([next(loader) for _ in range(25)])
    red = crops[:, 0, :, 0].astype(int)  # R = x coordinate: decreasing along a row iff flipped
    return np.mean(red[:, 0] > red[:, -1])

  assert flipped_fraction(False) == 0.0
  assert 0.3 < flipped_fraction(True) < 0.7


def test_crop_loader_replaces_corrupt_file_deterministically(tmp_path):
  paths = _coord_set(tmp_path, 4)
  data = open(paths[1], 'rb').read()
  with open(paths[1], 'wb') as f:
    f.write(data[:60])  # header intact (scan passes), pixel data truncated (decode fails)
  with pytest.warns(UserWarning, match='unreadable image'):
    with CropLoader(paths, 16, batch_size=4, num_workers=2) as loader:
      threaded = [next(loader) for _ in range(3)]
  assert loader.num_usable == 4
  ids = {int(c[0, 0, 2]) for batch in threaded for c in batch}
  assert 10 not in ids and ids <= {0, 20, 30}
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    with CropLoader(paths, 16, batch_size=4, num_workers=0, start_batch=1) as resumed:
      np.testing.assert_array_equal(next(resumed), threaded[1])


def test_center_crops_takes_the_center_and_skips_unusable(tmp_path):
  paths = [_write(tmp_path / 'a.png', _coord_image(40, 30, 7)),
           _write(tmp_path / 'b.png', Image.fromarray(np.zeros((40, 40), np.uint8), 'L')),
           _write(tmp_path / 'c.png', _coord_image(10, 40, 8)),
           _write(tmp_path / 'd.png', _coord_image(20, 20, 9))]
  with pytest.warns(UserWarning, match='not_rgb=1, too_small=1'):
    crops = center_crops(paths, 16)
  assert crops.shape == (2, 16, 16, 3) and crops.dtype == np.uint8
  np.testing.assert_array_equal(crops[0], _coord_image(40, 30, 7)[7:23, 12:28])
  np.testing.assert_array_equal(crops[1], _coord_image(20, 20, 9)[2:18, 2:18])
  assert center_crops(paths[3:] + paths[:1], 16, max_images=1).shape[0] == 1


def test_center_crops_without_usable_images_is_data_error(tmp_path):
  paths = [_write(tmp_path / 'c.png', _coord_image(10, 40, 8))]
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    with pytest.raises(DataError):
      center_crops(paths, 16)


def test_pipeline_does_not_import_jax():
  source = open(pipeline.__file__).read()
  assert 'import jax' not in source and 'from jax' not in source


@pytest.mark.data
def test_center_crops_real_cset14_skips_grayscale_bridge():
  cset14 = os.path.join(SHARED_DATA, 'val', 'cset14')
  if not os.path.isdir(cset14):
    pytest.skip('../shared/data is absent')
  paths = list_images(cset14)
  with pytest.warns(UserWarning, match='not_rgb'):
    crops = center_crops(paths, 128)
  assert crops.shape[1:] == (128, 128, 3) and 0 < crops.shape[0] < len(paths)
