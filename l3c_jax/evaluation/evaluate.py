"""Real-coding evaluation of our codec, the one path behind `l3c-jax eval`,
`experiments/evaluate.py` and `experiments/reproduce_table.py`.

Every image is compressed to bytes, decompressed and compared with the original; bpsp comes
from the actual file size, the model cross-entropy ("estimated") from the codec's own
`theory_bits`, both counted by `counting` (sub-pixels of the image in its own mode).

The `l3c-jax eval` JSON is shaped like CompressAI's `compressai.utils.eval_model` output
({"name", "description", "results": {metric: [value]}}), with the per-image rows added under
"per_image". Dataset numbers are means of per-image values.
"""

import dataclasses
import json
import os
from typing import Callable, Dict, Iterable, Optional, Sequence

import numpy as np

from l3c_jax.coding import codec
from l3c_jax.coding.bitstream import CodecError
from l3c_jax.data import images
from l3c_jax.evaluation import counting


@dataclasses.dataclass
class ImageResult:
  """One evaluated image. Times in seconds; bpp and bpsp by `counting` (unpadded image).

  `bpsp_per_scale` (actual) and `bpsp_estimated_per_scale` (model cross-entropy) are keyed by
  the group names of the model's coding plan (`codec.CodingStats`), whatever they are.
  """
  file: str
  height: int = 0
  width: int = 0
  mode: str = ""
  num_subpixels: int = 0
  num_bytes: int = 0
  bpp: float = float("nan")
  bpsp: float = float("nan")
  bpsp_estimated: float = float("nan")
  bpsp_per_scale: Optional[Dict[str, float]] = None
  bpsp_estimated_per_scale: Optional[Dict[str, float]] = None
  encoding_time: float = float("nan")
  decoding_time: float = float("nan")
  roundtrip_ok: bool = False
  error: Optional[str] = None


def _same_image(a: images.ImageData, b: images.ImageData) -> bool:
  return (a.mode == b.mode and a.pixels.shape == b.pixels.shape
          and np.array_equal(a.pixels, b.pixels) and a.palette == b.palette
          and a.transparency == b.transparency and a.metadata == b.metadata)


def evaluate_image(image: images.ImageData, model, tile_size: int = codec.DEFAULT_TILE_SIZE,
                   file: str = "", method: str = "model") -> ImageResult:
  """Codes one image for real, checks the round trip and counts its bits.

  Args:
    image: the image as stored (its mode decides the sub-pixel count, `counting`).
    model: a `model_io.Model`.
    tile_size: codec tile size.
    file: the image's path, recorded in the result.
    method: `codec.encode`'s method: 'model' (default) measures the model; 'auto' measures what
      `l3c-jax compress` writes (embedded PNG / WebP streams where smaller).
  Returns:
    ImageResult; `error` says why when the round trip failed.
  """
  res = ImageResult(file=file, height=image.height, width=image.width, mode=image.mode,
                    num_subpixels=image.num_subpixels)
  data, stats = codec.encode(image, model, tile_size=tile_size, estimate=True, method=method)
  # The estimate is extra work done only for this report; it is not part of encoding.
  res.encoding_time = stats.times_s["total"] - stats.times_s.get("estimate", 0.0)
  res.num_bytes = len(data)
  res.bpp = counting.bits_per_pixel(8 * len(data), image)
  res.bpsp = counting.bits_per_subpixel(8 * len(data), image)
  res.bpsp_estimated = counting.bits_per_subpixel(sum(stats.theory_bits.values()), image)
  res.bpsp_per_scale = {k: counting.bits_per_subpixel(v, image)
                        for k, v in stats.actual_bits.items()}
  res.bpsp_estimated_per_scale = {k: counting.bits_per_subpixel(v, image)
                                  for k, v in stats.theory_bits.items()}
  try:
    decoded, dstats = codec.decode(data, model)
    res.decoding_time = dstats.times_s["total"]
    res.roundtrip_ok = _same_image(image, decoded)
    if not res.roundtrip_ok:
      res.error = "decoded image differs from the original"
  except CodecError as e:
    res.error = f"decoding failed: {e}"
  return res


def precompile(image: images.ImageData, model, tile_size: int, seen: set) -> None:
  """Compiles the jitted functions for this image's tile shapes once, untimed.

  Args:
    image: the next image to be timed.
    model: a `model_io.Model`.
    tile_size: codec tile size.
    seen: tile-shape keys already compiled; updated.
  """
  f = model.config.padding_factor
  key = tuple(sorted({(images.padded_size(th, f), images.padded_size(tw, f))
                      for _, _, th, tw in codec.tile_grid(image.height, image.width,
                                                          tile_size)}))
  if key in seen:
    return
  seen.add(key)
  data, _ = codec.encode(image, model, tile_size=tile_size, estimate=True, method="model")
  codec.decode(data, model)


def _mean(values: Iterable[float]) -> float:
  values = [v for v in values if v == v]
  return float(np.mean(values)) if values else float("nan")


def evaluate(paths: Sequence[str], model, tile_size: int = codec.DEFAULT_TILE_SIZE,
             warm_up: bool = True,
             progress: Optional[Callable[[int, int, str], None]] = None,
             method: str = "model") -> dict:
  """Evaluates the codec on files / directories.

  Args:
    paths: image files and/or directories.
    model: a `model_io.Model`.
    tile_size: codec tile size.
    warm_up: compile for each new image shape before timing it (else the first image of
      each shape includes several seconds of XLA compilation).
    progress: None, or called as progress(done, total, note) after each image, note saying
      its name and bpsp (the command line draws its progress bar or lines from it).
    method: see `evaluate_image`.
  Returns:
    CompressAI-shaped dict: name, description, results {metric: [mean]}, per_image rows,
    num_images, num_failed, model info.
  """
  files = images.list_images(paths)
  rows, seen = [], set()
  for i, path in enumerate(files):
    try:
      image = counting.read_image(path)
    except (images.ImageError, OSError) as e:
      res = ImageResult(file=path, error=str(e))
    else:
      if warm_up:
        precompile(image, model, tile_size, seen)
      res = evaluate_image(image, model, tile_size, file=path, method=method)
    rows.append(res)
    note = f"{os.path.basename(path)} {res.bpsp:.3f} bpsp" if res.error is None else (
        f"{os.path.basename(path)} FAILED")
    if progress is not None:
      progress(i + 1, len(files), note)
  ok = [r for r in rows if r.roundtrip_ok]
  results = {
      "bpsp": [_mean(r.bpsp for r in ok)],
      "bpsp_estimated": [_mean(r.bpsp_estimated for r in ok)],
      "bpp": [_mean(r.bpp for r in ok)],
      "encoding_time": [_mean(r.encoding_time for r in ok)],
      "decoding_time": [_mean(r.decoding_time for r in ok)],
  }
  return {
      "name": "l3c-jax",
      "description": "Inference (real coding: constriction range coder, round trips checked)",
      # The form the files are coded with (model_io.Model.exact): its fingerprint is in them.
      "model": {"fingerprint": model.exact.fingerprint, "config": model.exact.config.to_dict()},
      "results": results,
      "num_images": len(rows),
      "num_failed": len(rows) - len(ok),
      "per_image": [dataclasses.asdict(r) for r in rows],
  }


def _finite_or_none(obj):
  if isinstance(obj, float):
    return obj if obj == obj and abs(obj) != float("inf") else None
  if isinstance(obj, dict):
    return {k: _finite_or_none(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite_or_none(v) for v in obj]
  return obj


def to_json(report: dict) -> str:
  """Strict JSON text of an `evaluate` report (NaN / inf become null)."""
  return json.dumps(_finite_or_none(report), indent=2, allow_nan=False) + "\n"
