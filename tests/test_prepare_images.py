"""Tests for experiments/prepare_images.py (the v3 Open Images recipe) on tiny synthetic photos."""

import os

import numpy as np
from PIL import Image
import pytest

from l3c_jax.data.pipeline import DataError

import launchers


@pytest.fixture(scope='module')
def prep():
  return launchers.load('prepare_images')


def _photo(width, height, seed=0, low=40, high=160):
  """Mid-grey-ish RGB noise: moderate saturation and value, passes the v3 filters."""
  rng = np.random.default_rng(seed)
  return Image.fromarray(rng.integers(low, high, (height, width, 3), dtype=np.uint8))


def _save(im, path, **kwargs):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  im.save(path, **kwargs)
  return path


def _fixed(prep, lo=0.5, hi=0.8, min_side=32):
  return prep.Recipe(scale_range=(lo, hi), min_side=min_side)


def test_prepare_writes_png_downscaled_within_the_range(prep, tmp_path):
  src = str(tmp_path / 'photos')
  for i in range(6):
    _save(_photo(120, 90, seed=i), os.path.join(src, f'p{i}.jpg'), quality=90)
  counts = prep.prepare([src], str(tmp_path / 'out'), _fixed(prep), num_workers=2)
  assert counts['written_train'] == 6
  sizes = set()
  for i in range(6):
    with Image.open(tmp_path / 'out' / f'photos_p{i}.png') as im:
      assert im.format == 'PNG' and im.mode == 'RGB'
      w, h = im.size
    assert 60 <= w <= 96 and 45 <= h <= 72 and abs(w / h - 4 / 3) < 0.05
    sizes.add(w)
  assert len(sizes) > 1  # the factor is random per image


def test_prepare_v3_range_and_discard_of_small_images(prep, tmp_path):
  src = str(tmp_path / 'oi')
  _save(_photo(760, 700), os.path.join(src, 'big.png'))  # s_min = 512/700 = 0.73 <= 0.8: kept
  _save(_photo(630, 630), os.path.join(src, 'small.png'))  # s_min = 0.81 > 0.8: discarded
  counts = prep.prepare([src], str(tmp_path / 'out'), prep.Recipe(), num_workers=0)
  assert counts['written_train'] == 1 and counts['too_small'] == 1
  with Image.open(tmp_path / 'out' / 'oi_big.png') as im:
    assert 512 <= min(im.size) <= 560


def test_prepare_discards_saturated_bright_gray_and_small(prep, tmp_path):
  src = str(tmp_path / 'mix')
  _save(_photo(80, 80), os.path.join(src, 'ok.png'))
  red = np.zeros((80, 80, 3), np.uint8)
  red[..., 0] = _photo(80, 80, low=150, high=200).getchannel(0)
  _save(Image.fromarray(red), os.path.join(src, 'red.png'))  # saturation 1, value ~0.7
  _save(_photo(80, 80, low=235, high=256), os.path.join(src, 'white.png'))  # value ~0.96
  _save(_photo(80, 80).convert('L'), os.path.join(src, 'gray.png'))
  _save(_photo(40, 80), os.path.join(src, 'thin.png'))  # shorter side <= 32 after x0.8
  counts = prep.prepare([src], str(tmp_path / 'out'), _fixed(prep), num_workers=0)
  assert counts == {'sources': 5, 'written_train': 1, 'saturated': 1, 'overexposed': 1,
                    'not_rgb': 1, 'too_small': 1}
  assert os.listdir(tmp_path / 'out') == ['mix_ok.png']


def test_prepare_heldout_split_is_deterministic_and_disjoint(prep, tmp_path):
  src = str(tmp_path / 'many')
  for i in range(16):
    _save(_photo(48, 48, seed=i), os.path.join(src, f'im{i:02d}.png'))
  recipe = _fixed(prep, min_side=16)
  splits = []
  for run in ('a', 'b'):
    train, held = tmp_path / run / 'train', tmp_path / run / 'held'
    counts = prep.prepare([src], str(train), recipe, 0.5, str(held), num_workers=2)
    assert counts['written_train'] + counts['written_heldout'] == 16
    splits.append((sorted(os.listdir(train)), sorted(os.listdir(held))))
  (train_a, held_a), (train_b, held_b) = splits
  assert train_a == train_b and held_a == held_b
  assert held_a and train_a and not set(train_a) & set(held_a)
  assert held_a == sorted(n for n in train_a + held_a if prep.is_heldout(n, 0.5))
  # Same bytes in both runs: the scale factor is seeded by name, not by worker order.
  for name in train_a:
    assert (tmp_path / 'a' / 'train' / name).read_bytes() == (tmp_path / 'b' / 'train' / name).read_bytes()


def test_prepare_rerun_keeps_existing_outputs_unless_overwrite(prep, tmp_path):
  src = str(tmp_path / 's')
  for i in range(3):
    _save(_photo(80, 80, seed=i), os.path.join(src, f'x{i}.png'))
  dst = str(tmp_path / 'out')
  assert prep.prepare([src], dst, _fixed(prep), num_workers=0)['written_train'] == 3
  target = os.path.join(dst, 's_x0.png')
  os.utime(target, (1, 1))
  counts = prep.prepare([src], dst, _fixed(prep), num_workers=0)
  assert counts.get('written_train', 0) == 0 and counts['existing'] == 3
  assert os.path.getmtime(target) == 1
  counts = prep.prepare([src], dst, _fixed(prep), overwrite=True, num_workers=0)
  assert counts['written_train'] == 3 and os.path.getmtime(target) > 1


def test_prepare_prefixes_source_dir_names_so_stems_do_not_collide(prep, tmp_path):
  a, b = str(tmp_path / 'setA'), str(tmp_path / 'setB')
  _save(_photo(80, 80, seed=1), os.path.join(a, 'same.jpg'))
  _save(_photo(80, 80, seed=2), os.path.join(b, 'same.png'))
  _save(_photo(80, 80, seed=3), os.path.join(b, 'same.jpg'))
  counts = prep.prepare([a, b], str(tmp_path / 'out'), _fixed(prep), num_workers=0)
  assert counts['written_train'] == 3
  assert sorted(os.listdir(tmp_path / 'out')) == ['setA_same.png', 'setB_same_jpg.png',
                                                  'setB_same_png.png']
  with pytest.raises(DataError):
    prep.plan_outputs([a, str(tmp_path / 'other' / 'setA')])


def test_prepare_cli_missing_or_empty_src_is_one_line_error(tmp_path):
  (tmp_path / 'empty').mkdir()
  for src in (tmp_path / 'missing', tmp_path / 'empty'):
    # sys.exit(message): the interpreter prints the message as the one stderr line, status 1; any
    # other exception (a traceback) would propagate out of main and fail the test.
    with pytest.raises(SystemExit) as exited:
      launchers.run_main('prepare_images', f'--src={src}', f'--dst={tmp_path / "out"}')
    message = exited.value.code
    assert isinstance(message, str) and '\n' not in message, message
    assert message.startswith('prepare_images: error:'), message


def test_prepare_cli_prints_summary(tmp_path, capsys):
  src = tmp_path / 'cli'
  _save(_photo(60, 60), str(src / 'one.png'))
  _save(_photo(60, 60).convert('L'), str(src / 'gray.png'))
  launchers.run_main('prepare_images', f'--src={src}', f'--dst={tmp_path / "out"}',
                     '--scale_min=0.5', '--scale_max=0.8', '--min_side=16')
  out = capsys.readouterr().out
  assert 'wrote 1 (train 1' in out and 'not_rgb=1' in out
  assert os.listdir(tmp_path / 'out') == ['cli_one.png']
