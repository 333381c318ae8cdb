"""Benchmark runner of `experiments/evaluate.py` and `experiments/reproduce_table.py`.

Every image of every set is read once (`counting.read_image`: its own mode, pixels only) and
coded by our model(s) through `evaluate.evaluate_image` (the same path as `l3c-jax eval`) and by
each classical codec (`classical.code_image`); all are counted by `counting`.
"""

import dataclasses
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from l3c_jax.coding.codec import DEFAULT_TILE_SIZE
from l3c_jax.data import images
from l3c_jax.evaluation import classical, counting, evaluate, sets


@dataclasses.dataclass
class LearnedCodec:
  """One of our models under a table name.

  Attributes:
    name: method name used in tables.
    model: a loaded `model_io.Model`.
    model_dir: where it was loaded from ('' for the shipped default model).
  """
  name: str
  model: Any
  model_dir: str = ""


def _stderr(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def _learned_row(base: Dict[str, Any], codec: LearnedCodec, res: evaluate.ImageResult
                 ) -> Dict[str, Any]:
  row = dict(base, method=codec.name, kind="learned", num_bytes=res.num_bytes, bpp=res.bpp,
             bpsp=res.bpsp, bpsp_theoretical=res.bpsp_estimated, encode_s=res.encoding_time,
             decode_s=res.decoding_time, exact=res.roundtrip_ok)
  # Keys are the group names of the model's coding plan (opaque here).
  for k, v in (res.bpsp_estimated_per_scale or {}).items():
    row[f"bpsp_theoretical_{k}"] = v
  return row


def evaluate_images(eval_set: sets.EvalSet, paths: Sequence[str], codecs: Sequence[str],
                    learned: Sequence[LearnedCodec] = (),
                    progress: Optional[Callable[[str], None]] = _stderr
                    ) -> Tuple[List[Dict[str, Any]], List[str]]:
  """Codes every image with our model(s) and every classical codec.

  Args:
    eval_set: the set the images belong to (its label goes into every row).
    paths: image files.
    codecs: classical codec keys (already checked available).
    learned: our models.
    progress: called with one line per image and method; None for silence.
  Returns:
    (rows, notes): one row per (image, method) with keys set, image, height, width, mode,
    num_subpixels, method, kind ('learned' | 'classical'), num_bytes, bpp, bpsp,
    bpsp_theoretical (learned only, plus bpsp_theoretical_<group>), encode_s, decode_s, exact;
    notes lists skipped images.
  """
  rows, notes, compiled = [], [], {id(c): set() for c in learned}
  for i, path in enumerate(paths):
    name = os.path.basename(path)
    tag = f"[{eval_set.label} {i + 1}/{len(paths)}] {name}"
    try:
      image = counting.read_image(path)
    except (images.ImageError, OSError) as e:
      notes.append(f"{eval_set.label}/{name}: {e}")
      if progress:
        progress(f"{tag}: skipped ({e})")
      continue
    base = {"set": eval_set.label, "image": name, "height": image.height, "width": image.width,
            "mode": image.mode, "num_subpixels": image.num_subpixels}
    for codec in learned:
      # Compiling is not coding time: done once per tile shape, untimed, as `l3c-jax eval` does.
      evaluate.precompile(image, codec.model, DEFAULT_TILE_SIZE, compiled[id(codec)])
      row = _learned_row(base, codec, evaluate.evaluate_image(image, codec.model, file=path))
      rows.append(row)
      if progress:
        progress(f"{tag} {codec.name}: {row['bpsp']:.4f} bpsp actual, "
                 f"{row['bpsp_theoretical']:.4f} theoretical, "
                 f"enc {row['encode_s']:.2f}s dec {row['decode_s']:.2f}s"
                 + ("" if row["exact"] else "  ROUND TRIP MISMATCH"))
    for key in codecs:
      res = classical.code_image(image, key)
      bits = 8 * res.num_bytes
      rows.append(dict(base, method=classical.CODEC_NAMES[key], kind="classical",
                       num_bytes=res.num_bytes, bpp=counting.bits_per_pixel(bits, image),
                       bpsp=counting.bits_per_subpixel(bits, image), bpsp_theoretical=None,
                       encode_s=res.encode_s, decode_s=res.decode_s, exact=True))
      if progress:
        progress(f"{tag} {classical.CODEC_NAMES[key]}: {rows[-1]['bpsp']:.4f} bpsp, "
                 f"enc {res.encode_s:.2f}s dec {res.decode_s:.3f}s")
  return rows, notes


def load_learned(model_specs: Sequence[Tuple[str, Optional[str]]], notes: List[str],
                 log: Optional[Callable[[str], None]] = _stderr) -> List[LearnedCodec]:
  """Loads one model per (name, model_dir); what cannot be loaded becomes a note.

  Args:
    model_specs: (method name, model folder or None/'' for the shipped default model).
    notes: list the skip reasons are appended to.
    log: called with each note; None for silence.
  Returns:
    the models that loaded.
  """
  from l3c_jax import model_io  # pylint: disable=import-outside-toplevel
  out = []
  for name, model_dir in model_specs:
    try:
      model = model_io.load_model(model_dir) if model_dir else model_io.load_default_model()
      out.append(LearnedCodec(name, model, model_dir or ""))
    except Exception as e:  # pylint: disable=broad-except
      # A missing or broken checkpoint must not stop the other measurements.
      msg = f"model {name} ({model_dir or 'default'}) could not be loaded: {e}; skipped"
      notes.append(msg)
      if log:
        log(f"NOTE: {msg}")
  return out


def run_benchmark(set_names: Sequence[str], data_dir: str, codecs: Sequence[str],
                  learned: Sequence[LearnedCodec], max_images: Optional[int], notes: List[str],
                  strict_sets: bool = True, log: Optional[Callable[[str], None]] = _stderr
                  ) -> Tuple[List[Dict[str, Any]], List[sets.EvalSet], List[str]]:
  """Resolves sets and codecs, then codes every image of every set.

  Args:
    set_names: set names for `sets.resolve_set`.
    data_dir: folder holding the sets.
    codecs: requested classical codec keys; those missing from the imagecodecs build are skipped
      with a note.
    learned: our models.
    max_images: first N images per set (None or 0: all).
    notes: list receiving skip notes.
    strict_sets: raise ValueError for a set that is not found (else note and skip it).
    log: progress/notes sink (stderr by default); None for silence.
  Returns:
    (rows, resolved sets, codecs actually run).
  """
  if codecs:
    codecs, codec_notes = classical.available_codecs(codecs)
    for msg in codec_notes.values():
      notes.append(msg)
      if log:
        log(f"NOTE: {msg}")
  resolved = []
  for name in set_names:
    es = sets.resolve_set(data_dir, name)
    if es is None:
      msg = f"set {name!r} not found under {data_dir}"
      if strict_sets:
        raise ValueError(msg)
      notes.append(msg + "; skipped")
      if log:
        log(f"NOTE: {msg}; skipped")
      continue
    resolved.append(es)
  rows: List[Dict[str, Any]] = []
  for es in resolved:
    paths = images.list_images(es.directory, max_images or None)
    if log:
      log(f"== {es.label}: {len(paths)} images in {es.directory}")
    if not paths:
      notes.append(f"set {es.label}: no images in {es.directory}")
      continue
    set_rows, set_notes = evaluate_images(es, paths, codecs, learned, progress=log)
    rows.extend(set_rows)
    notes.extend(set_notes)
  return rows, resolved, list(codecs)
