"""Cross-environment bit-exactness check of `.l3c` files (numerics version 1), e.g. across jax
versions (WORKSPACE.md, "Exact numerics"):

  python experiments/check_portable.py write DIR  # encode the test images here; save pixels,
                                                  # files and per-stage digests
  python experiments/check_portable.py check DIR  # in the other environment: decode every file
                                                  # and re-encode every image; compare pixels,
                                                  # bytes and per-stage digests with DIR's

Run each side with PYTHONPATH=<l3c-jax checkout> and that environment's python (another venv,
other XLA_FLAGS, another machine). Exit status 0 only if everything is identical. Digests (sha256, 16 hex) are taken per coding step, in
coding order, identically on the encode and decode side:
  head   the integer head parameters (codec._head_rows output: logit16/mean64/ls32/coeff16)
  tables the range coder's integer frequency tables of one substream (all chunks; uniform and
         latent steps: pixel steps are window-coded since format version 4, the encoder
         computes intervals and the decoder window tables, so they have no common table)
  sym    the symbols of one substream (pixel steps: of the step, all channels)
so a mismatch is located at the first stage that differs.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
from PIL import Image

import jax
from l3c_jax import model_io
from l3c_jax.coding import codec
from l3c_jax.data import images
from l3c_jax.models import families

KODAK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared",
                     "data", "kodak")
TINY = {"family": "l3c", "num_channels": 8, "num_res_blocks": 1, "latent_channels": 2,
        "num_mixtures": 2, "exact": True}

# ---------------------------------------------------------------------------------------------
# Per-stage digests: hooks on the codec's module functions / _TileCoder methods.
_LOG = []
_KEEP = None  # when a list: also keep the arrays (diagnosis)


def _h(a) -> str:
  return hashlib.sha256(np.ascontiguousarray(np.asarray(a)).tobytes()).hexdigest()[:16]


_orig_head_rows = codec._head_rows
# The encoder codes from symbol intervals (3-entry tables, same bytes); here it builds the whole
# tables like the decoder, so that both sides log the same stages.
codec.ENCODE_FROM_INTERVALS = False


def _head_rows(head, coupled, chunk):
  out = _orig_head_rows(head, coupled, chunk)
  _LOG.append(("head", _h(out)))
  if _KEEP is not None:
    _KEEP.append(("head", np.asarray(out)))
  return out


codec._head_rows = _head_rows


class _HashIter:
  def __init__(self, it, key):
    self.it, self.key, self.h, self.tabs = iter(it), key, hashlib.sha256(), []

  def __iter__(self):
    for start, table in self.it:
      t = np.ascontiguousarray(np.asarray(table))
      self.h.update(np.int64(start).tobytes())
      self.h.update(t.tobytes())
      if _KEEP is not None:
        self.tabs.append((start, t.copy()))
      yield start, table

  def done(self):
    _LOG.append(("tables:" + self.key, self.h.hexdigest()[:16]))
    if _KEEP is not None:
      _KEEP.append(("tables:" + self.key, self.tabs))


_orig_write = codec._TileCoder.write
_orig_read = codec._TileCoder.read


def _write(self, key, symbols, table_iter, per_row):
  hi = _HashIter(table_iter, key)
  data = _orig_write(self, key, symbols, hi, per_row)
  hi.done()
  _LOG.append(("sym:" + key, _h(np.asarray(symbols, np.int32))))
  return data


def _read(self, key, data, table_iter, n, per_row):
  hi = _HashIter(table_iter, key)
  out = _orig_read(self, key, data, hi, n, per_row)
  hi.done()
  _LOG.append(("sym:" + key, _h(np.asarray(out, np.int32))))
  return out


codec._TileCoder.write = _write
codec._TileCoder.read = _read


def _logged_pixel_symbols(orig):
  """Pixel steps log their symbols only (the encoder's interval tables and the decoder's head
  rows have no counterpart on the other side)."""
  def pixel_symbols(self, step, head, num_channels):
    n = len(_LOG)
    out = orig(self, step, head, num_channels)
    del _LOG[n:]
    _LOG.append(("sym:" + step.name, _h(np.asarray(out, np.int32))))
    return out
  return pixel_symbols


codec._Encoding.pixel_symbols = _logged_pixel_symbols(codec._Encoding.pixel_symbols)
codec._Decoding.pixel_symbols = _logged_pixel_symbols(codec._Decoding.pixel_symbols)

# ---------------------------------------------------------------------------------------------


def _load(name, mode="RGB"):
  return np.asarray(Image.open(os.path.join(KODAK, name)).convert(mode))


def test_images():
  k23, k05 = _load("kodim23.png"), _load("kodim05.png")
  g05 = _load("kodim05.png", "L")
  small = {
      "k23_rgb_37x50": k23[200:237, 300:350],
      "k05_gray_41x29": g05[100:141, 400:429],
      "k05_rgb_24x40": k05[300:324, 100:140],
  }
  big = {"k23_rgb_512x512": k23[0:512, 128:640]}
  return small, big


def models():
  return {
      "default": model_io.load_default_model(),
      "tiny_l3c": model_io.random_model(families.config_from_dict(TINY), seed=3),
  }


def cases():
  small, big = test_images()
  for mname, model in models().items():
    imgs = dict(small)
    if mname == "default":
      imgs.update(big)
    for iname, pixels in imgs.items():
      yield f"{mname}__{iname}", model, pixels


def env():
  import flax
  return {"jax": jax.__version__, "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__")
          else __import__("jaxlib").__version__, "flax": flax.__version__,
          "numpy": np.__version__, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}


def write(d):
  os.makedirs(d, exist_ok=True)
  manifest = {"env": env(), "cases": {}}
  for name, model, pixels in cases():
    _LOG.clear()
    t0 = time.perf_counter()
    data, _ = codec.encode(images.from_array(pixels), model, method="model")
    dt = time.perf_counter() - t0
    np.save(os.path.join(d, name + ".npy"), pixels)
    with open(os.path.join(d, name + ".l3c"), "wb") as f:
      f.write(data)
    manifest["cases"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                               "encode_s": round(dt, 2), "fingerprint": model.fingerprint,
                               "digests": list(map(list, _LOG))}
    print(f"wrote {name}: {pixels.shape} {len(data)} B sha {hashlib.sha256(data).hexdigest()[:16]} "
          f"encode {dt:.1f}s ({len(_LOG)} stage digests)", flush=True)
  with open(os.path.join(d, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)


def _first_diff(a, b):
  for i, (x, y) in enumerate(zip(a, b)):
    if list(x) != list(y):
      return i, x, y
  if len(a) != len(b):
    return min(len(a), len(b)), None, None
  return None


def check(d):
  with open(os.path.join(d, "manifest.json")) as f:
    manifest = json.load(f)
  print("files written with", manifest["env"], flush=True)
  print("checking with     ", env(), flush=True)
  ok_all = True
  rows = []
  for name, model, pixels_now in cases():
    ref = manifest["cases"][name]
    pixels = np.load(os.path.join(d, name + ".npy"))
    assert np.array_equal(pixels, pixels_now), "test image crop differs"
    assert model.fingerprint == ref["fingerprint"], "model fingerprint differs"
    data = open(os.path.join(d, name + ".l3c"), "rb").read()
    # decode
    _LOG.clear()
    t0 = time.perf_counter()
    try:
      img, _ = codec.decode(data, model)
      dec_ok = bool(np.array_equal(img.pixels, pixels))
      dec_err = ""
    except Exception as e:  # noqa
      dec_ok, dec_err = False, f"{type(e).__name__}: {e}"
    t_dec = time.perf_counter() - t0
    dec_digest = _first_diff(ref["digests"], _LOG)
    # re-encode
    _LOG.clear()
    t0 = time.perf_counter()
    data2, _ = codec.encode(images.from_array(pixels), model, method="model")
    t_enc = time.perf_counter() - t0
    enc_ok = data2 == data
    enc_digest = _first_diff(ref["digests"], _LOG)
    ok = dec_ok and enc_ok and dec_digest is None and enc_digest is None
    ok_all &= ok
    line = (f"{name:28s} {str(pixels.shape):14s} decode {'EXACT' if dec_ok else 'FAIL'} "
            f"({t_dec:.1f}s)  re-encode bytes {'IDENTICAL' if enc_ok else 'DIFFER'} "
            f"({t_enc:.1f}s)  stage digests dec/enc "
            f"{'same' if dec_digest is None else 'DIFF'}/{'same' if enc_digest is None else 'DIFF'}"
            f" ({len(ref['digests'])})")
    print(line, flush=True)
    if dec_err:
      print("   decode error:", dec_err, flush=True)
    for side, fd in (("decode", dec_digest), ("re-encode", enc_digest)):
      if fd is not None:
        print(f"   first differing {side} stage #{fd[0]}: ref {fd[1]} now {fd[2]}", flush=True)
    if not enc_ok:
      with open(os.path.join(d, name + ".reencoded." + jax.__version__ + ".l3c"), "wb") as f:
        f.write(data2)
    rows.append(line)
  print("ALL EXACT" if ok_all else "NOT ALL EXACT", flush=True)
  return 0 if ok_all else 1


def main(argv=None) -> int:
  global KODAK
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("mode", choices=("write", "check"), help="write files here, or check them")
  p.add_argument("dir", help="folder of the files, pixels and digests")
  p.add_argument("--kodak_dir", default=KODAK, help="folder with kodim23.png and kodim05.png")
  args = p.parse_args(argv)
  KODAK, mode, d = args.kodak_dir, args.mode, args.dir
  import l3c_jax  # pylint: disable=g-import-not-at-top
  print("l3c_jax from", os.path.dirname(l3c_jax.__file__), flush=True)
  t0 = time.perf_counter()
  rc = {"write": write, "check": check}[mode](d) or 0
  print(f"{mode} total {time.perf_counter() - t0:.1f}s", flush=True)
  return rc


if __name__ == "__main__":
  sys.exit(main())
