"""Benchmark runner and report writers: per-image rows -> per-set summaries -> MD/CSV/JSON/PNG.

Shared by `experiments/evaluate.py` (one model + classical codecs on some image folders) and
`experiments/reproduce_table.py` (every model, the paper's named sets, published numbers beside).

Counting rule (the paper's, l3c_spec.md Sec. 7): bpsp = bits / (3 * H * W) of the *unpadded*
image; a set's figure is the mean of per-image bpsp. The total-bits / total-sub-pixels figure is
reported beside it (it weights large images more). "actual" bpsp comes from the length of a real
coded file; "theoretical" (estimated) bpsp from the model's likelihood, -log2 p summed over all
scales, with no coding overhead.

Charts are drawn with Pillow only (no matplotlib dependency).
"""

import csv
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from l3c_jax.evaluation import classical

# --- named evaluation sets ------------------------------------------------------------------------

# Set key -> folder names tried under --data_dir, first existing wins. Keys match the `set` column
# of experiments/reference/paper_numbers.csv.
NAMED_SETS: Dict[str, Tuple[str, ...]] = {
    "openimages_val500": ("open_images_val500", "openimages_val500", "val_oi_500_r",
                          "open_images/val500", "openimages/val_oi_500_r"),
    "clic_mobile": ("clic_mobile", "clic/mobile", "clic/mobile_valid", "mobile_valid",
                    "CLIC.mobile"),
    "clic_pro": ("clic_pro", "clic/professional", "clic/professional_valid",
                 "professional_valid", "CLIC.pro"),
    "div2k_val": ("div2k_val", "DIV2K_valid_HR", "div2k/valid", "div2k/DIV2K_valid_HR"),
    "kodak": ("kodak",),
}

# Display names of the named sets (table headers).
SET_TITLES: Dict[str, str] = {
    "openimages_val500": "Open Images 500",
    "clic_mobile": "CLIC.mobile",
    "clic_pro": "CLIC.pro",
    "div2k_val": "DIV2K",
    "kodak": "Kodak",
}


@dataclasses.dataclass(frozen=True)
class EvalSet:
  """A folder of images to evaluate.

  Attributes:
    label: name used in tables (named-set key, sub-path of data_dir, or folder name).
    directory: folder holding the images.
  """
  label: str
  directory: str


def resolve_set(data_dir: str, name: str) -> Optional[EvalSet]:
  """Finds the folder of a set.

  Args:
    data_dir: folder holding the set folders.
    name: a named-set key (`NAMED_SETS`), a sub-path of data_dir ('val/mcmaster'), or an
      absolute folder.
  Returns:
    EvalSet, or None when no matching folder exists.
  """
  name = name.strip()
  if os.path.isabs(name):
    return EvalSet(os.path.basename(os.path.normpath(name)), name) if os.path.isdir(name) else None
  for candidate in NAMED_SETS.get(name, ()):
    path = os.path.join(data_dir, candidate)
    if os.path.isdir(path):
      return EvalSet(name, path)
  path = os.path.join(data_dir, name)
  if os.path.isdir(path):
    return EvalSet(name.strip("/"), path)
  return None


def parse_list(spec: str) -> List[str]:
  """'a, b,,c' -> ['a', 'b', 'c']."""
  return [p.strip() for p in spec.split(",") if p.strip()]


# --- the learned codec ("ours") -------------------------------------------------------------------


class OursUnavailableError(RuntimeError):
  """The learned codec (l3c_jax.compress / decompress / load_model) cannot be used."""


def ours_unavailable_reason() -> Optional[str]:
  """None when `l3c_jax.compress`, `decompress`, `load_model`, `load_default_model` import."""
  try:
    import l3c_jax  # pylint: disable=import-outside-toplevel
  except ImportError as e:  # pragma: no cover - the package itself is importable in tests
    return f"l3c_jax does not import: {e}"
  missing = []
  for n in ("compress", "decompress", "load_model", "load_default_model"):
    try:
      getattr(l3c_jax, n)  # the public API is lazy: this imports the codec modules
    except AttributeError:
      missing.append(n)
    except Exception as e:  # pylint: disable=broad-except
      return (f"the learned codec does not import ({type(e).__name__}: {e}); "
              "rows for our model are skipped")
  if missing:
    return ("the learned codec is not available yet (l3c_jax has no " + ", ".join(missing) +
            "); rows for our model are skipped")
  return None


def _model_config(model):
  for attr in ("config", "cfg"):
    cfg = getattr(model, attr, None)
    if cfg is not None:
      return cfg
  raise OursUnavailableError(f"model object {type(model).__name__} has no .config")


def pad_to_multiple(image: np.ndarray, factor: int) -> np.ndarray:
  """Edge-replicates an [H, W, C] image at the bottom/right to multiples of `factor`.

  Args:
    image: [H, W, C] array.
    factor: the model's padding factor 2^S.
  Returns:
    [H', W', C] array with H', W' the next multiples of `factor`.
  """
  h, w = image.shape[:2]
  ph, pw = (-h) % factor, (-w) % factor
  if ph == 0 and pw == 0:
    return image
  return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")


class L3CCoder:
  """Adapter running our learned codec on one image: real file bytes + theoretical bits.

  Uses the public API `l3c_jax.compress(image, model=...) -> bytes`,
  `l3c_jax.decompress(bytes, model=...) -> image`, `l3c_jax.load_model(dir)` /
  `l3c_jax.load_default_model()`. The theoretical bpsp is the model's own likelihood of the image,
  from one forward pass on the edge-replicated, padded image, normalized by the unpadded 3*H*W.
  """

  def __init__(self, name: str, model_dir: Optional[str] = None, model=None):
    """Loads the model.

    Args:
      name: method name used in tables.
      model_dir: model folder for `l3c_jax.load_model`; None: the shipped default model.
      model: an already loaded model object (overrides model_dir).
    Raises:
      OursUnavailableError: the codec API is not importable.
    """
    reason = ours_unavailable_reason()
    if reason:
      raise OursUnavailableError(reason)
    import l3c_jax  # pylint: disable=import-outside-toplevel
    self.name = name
    self.model_dir = model_dir
    if model is None:
      model = l3c_jax.load_model(model_dir) if model_dir else l3c_jax.load_default_model()
    self.model = model
    self._l3c_jax = l3c_jax
    self._bits_fn = None

  def _theoretical_bits(self, image: np.ndarray) -> Dict[str, float]:
    import jax  # pylint: disable=import-outside-toplevel
    from l3c_jax import losses  # pylint: disable=import-outside-toplevel
    from l3c_jax.models.l3c import L3C  # pylint: disable=import-outside-toplevel
    cfg = _model_config(self.model)
    if self._bits_fn is None:
      def bits_fn(params, x):
        out = L3C(cfg).apply({"params": params}, x)
        return losses.bits_per_scale(out, x, cfg)
      self._bits_fn = jax.jit(bits_fn)
    x = pad_to_multiple(image, cfg.padding_factor).astype(np.float32)[None]
    bits = self._bits_fn(self.model.params, x)
    return {k: float(v) for k, v in bits.items()}

  def code(self, image: np.ndarray) -> Dict[str, Any]:
    """Codes one image for real and computes its theoretical bits.

    Args:
      image: [H, W, 3] uint8 RGB.
    Returns:
      dict with num_bytes, encode_s, decode_s, exact (decoded == image), bits_theoretical
      (total over scales) and bits_theoretical_per_scale.
    """
    t0 = time.perf_counter()
    data = self._l3c_jax.compress(image, model=self.model)
    t1 = time.perf_counter()
    decoded = np.asarray(self._l3c_jax.decompress(data, model=self.model))
    t2 = time.perf_counter()
    exact = decoded.shape == image.shape and bool(np.array_equal(decoded, image))
    per_scale = self._theoretical_bits(image)
    return {
        "num_bytes": len(data),
        "encode_s": t1 - t0,
        "decode_s": t2 - t1,
        "exact": exact,
        "bits_theoretical": float(sum(per_scale.values())),
        "bits_theoretical_per_scale": per_scale,
    }


# --- running a benchmark --------------------------------------------------------------------------


def _stderr(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def evaluate_images(eval_set: EvalSet, paths: Sequence[str], codecs: Sequence[str],
                    coders: Sequence[L3CCoder] = (),
                    progress: Optional[Callable[[str], None]] = _stderr
                    ) -> Tuple[List[Dict[str, Any]], List[str]]:
  """Codes every image with our model(s) and every classical codec.

  Args:
    eval_set: the set the images belong to (its label goes into every row).
    paths: image files.
    codecs: classical codec keys (already checked available).
    coders: learned codecs (`L3CCoder`).
    progress: called with one line per image and method; None for silence.
  Returns:
    (rows, notes): one row per (image, method) with keys set, image, height, width, source_mode,
    method, kind ('learned' | 'classical'), num_bytes, bpsp, bpsp_theoretical (learned only),
    encode_s, decode_s, exact; notes lists skipped images.
  """
  rows, notes = [], []
  for i, path in enumerate(paths):
    name = os.path.basename(path)
    try:
      image, mode = classical.load_rgb(path)
    except (ValueError, OSError) as e:
      notes.append(f"{eval_set.label}/{name}: {e}")
      if progress:
        progress(f"[{eval_set.label} {i + 1}/{len(paths)}] {name}: skipped ({e})")
      continue
    h, w = image.shape[:2]
    n = 3 * h * w
    base = {"set": eval_set.label, "image": name, "height": h, "width": w, "source_mode": mode}
    for coder in coders:
      r = coder.code(image)
      row = dict(base, method=coder.name, kind="learned", num_bytes=r["num_bytes"],
                 bpsp=classical.bits_per_subpixel(r["num_bytes"], n),
                 bpsp_theoretical=r["bits_theoretical"] / n, encode_s=r["encode_s"],
                 decode_s=r["decode_s"], exact=r["exact"])
      for k, v in r["bits_theoretical_per_scale"].items():
        row[f"bpsp_theoretical_{k}"] = v / n
      rows.append(row)
      if progress:
        progress(f"[{eval_set.label} {i + 1}/{len(paths)}] {name} {coder.name}: "
                 f"{row['bpsp']:.4f} bpsp actual, {row['bpsp_theoretical']:.4f} theoretical, "
                 f"enc {row['encode_s']:.2f}s dec {row['decode_s']:.2f}s"
                 + ("" if row["exact"] else "  ROUND TRIP MISMATCH"))
    for key in codecs:
      res = classical.code_image(image, key)
      rows.append(dict(base, method=classical.CODEC_NAMES[key], kind="classical",
                       num_bytes=res.num_bytes, bpsp=res.bpsp, bpsp_theoretical=None,
                       encode_s=res.encode_s, decode_s=res.decode_s, exact=True))
      if progress:
        progress(f"[{eval_set.label} {i + 1}/{len(paths)}] {name} {classical.CODEC_NAMES[key]}: "
                 f"{res.bpsp:.4f} bpsp, enc {res.encode_s:.2f}s dec {res.decode_s:.3f}s")
  return rows, notes


def build_coders(model_specs: Sequence[Tuple[str, Optional[str]]], notes: List[str],
                 log: Optional[Callable[[str], None]] = _stderr) -> List[L3CCoder]:
  """Loads one `L3CCoder` per (name, model_dir); what cannot be loaded becomes a note.

  Args:
    model_specs: (method name, model folder or None/'' for the shipped default model).
    notes: list the skip reasons are appended to.
    log: called with each note; None for silence.
  Returns:
    the coders that loaded (empty when the learned codec API is not available yet).
  """
  if not model_specs:
    return []
  reason = ours_unavailable_reason()
  if reason:
    notes.append(reason)
    if log:
      log(f"NOTE: {reason}")
    return []
  coders = []
  for name, model_dir in model_specs:
    try:
      coders.append(L3CCoder(name, model_dir or None))
    except Exception as e:  # pylint: disable=broad-except
      # A missing or broken checkpoint must not stop the other measurements.
      msg = f"model {name} ({model_dir or 'default'}) could not be loaded: {e}; skipped"
      notes.append(msg)
      if log:
        log(f"NOTE: {msg}")
  return coders


def run_benchmark(set_names: Sequence[str], data_dir: str, codecs: Sequence[str],
                  coders: Sequence[L3CCoder], max_images: Optional[int], notes: List[str],
                  strict_sets: bool = True, log: Optional[Callable[[str], None]] = _stderr
                  ) -> Tuple[List[Dict[str, Any]], List[EvalSet], List[str]]:
  """Resolves sets and codecs, then codes every image of every set.

  Args:
    set_names: set names for `resolve_set`.
    data_dir: folder holding the sets.
    codecs: requested classical codec keys; those missing from the imagecodecs build are skipped
      with a note.
    coders: learned codecs.
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
    es = resolve_set(data_dir, name)
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
    paths = classical.list_images(es.directory, max_images or None)
    if log:
      log(f"== {es.label}: {len(paths)} images in {es.directory}")
    if not paths:
      notes.append(f"set {es.label}: no images in {es.directory}")
      continue
    set_rows, set_notes = evaluate_images(es, paths, codecs, coders, progress=log)
    rows.extend(set_rows)
    notes.extend(set_notes)
  return rows, resolved, list(codecs)


def _ordered_unique(items: Iterable) -> List:
  seen, out = set(), []
  for x in items:
    if x not in seen:
      seen.add(x)
      out.append(x)
  return out


def summarize(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
  """Per-(set, method) summary of per-image rows.

  Args:
    rows: per-image rows with keys set, method, kind, height, width, num_bytes, bpsp,
      bpsp_theoretical (None for classical), encode_s, decode_s, exact.
  Returns:
    one dict per (set, method), in first-appearance order, with num_images, bpsp_mean (mean of
    per-image bpsp, the paper's convention), bpsp_total (total bits / total sub-pixels),
    bpsp_theoretical_mean / _total (None when absent), encode_s_median, decode_s_median,
    num_exact.
  """
  groups: Dict[Tuple[str, str], List[Mapping[str, Any]]] = {}
  for r in rows:
    groups.setdefault((r["set"], r["method"]), []).append(r)
  summary = []
  for (set_label, method), rs in groups.items():
    subpixels = sum(3 * r["height"] * r["width"] for r in rs)
    theo = [r.get("bpsp_theoretical") for r in rs]
    has_theo = all(t is not None for t in theo)
    summary.append({
        "set": set_label,
        "method": method,
        "kind": rs[0].get("kind", ""),
        "num_images": len(rs),
        "bpsp_mean": statistics.fmean(r["bpsp"] for r in rs),
        "bpsp_total": 8.0 * sum(r["num_bytes"] for r in rs) / subpixels,
        "bpsp_theoretical_mean": statistics.fmean(theo) if has_theo else None,
        "bpsp_theoretical_total": (sum(t * 3 * r["height"] * r["width"] for t, r in zip(theo, rs))
                                   / subpixels) if has_theo else None,
        "encode_s_median": statistics.median(r["encode_s"] for r in rs),
        "decode_s_median": statistics.median(r["decode_s"] for r in rs),
        "num_exact": sum(1 for r in rs if r.get("exact", True)),
    })
  return summary


# --- writers --------------------------------------------------------------------------------------


def fmt(value: Optional[float], digits: int = 3) -> str:
  """Number for a table cell; '' for None/NaN."""
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return ""
  return f"{value:.{digits}f}"


def _cell(value: Any) -> str:
  return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                   align: Optional[Sequence[str]] = None) -> str:
  """GitHub Markdown table.

  Args:
    headers: column titles.
    rows: cell values (converted with str; '|' escaped).
    align: per column 'l' or 'r' (default: first column left, others right).
  Returns:
    the table text ending in a newline.
  """
  if align is None:
    align = ["l"] + ["r"] * (len(headers) - 1)
  sep = ["---:" if a == "r" else "---" for a in align]
  lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "|".join(sep) + "|"]
  for row in rows:
    if len(row) != len(headers):
      raise ValueError(f"row has {len(row)} cells, table has {len(headers)} columns")
    lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
  return "\n".join(lines) + "\n"


def write_csv(path: str, rows: Sequence[Mapping[str, Any]],
              columns: Optional[Sequence[str]] = None) -> None:
  """Writes dict rows as CSV (columns: given, else the union of keys in first-seen order)."""
  if columns is None:
    columns = _ordered_unique(k for r in rows for k in r)
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for r in rows:
      writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})


def _json_safe(obj):
  if isinstance(obj, dict):
    return {str(k): _json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_json_safe(v) for v in obj]
  if isinstance(obj, np.generic):
    obj = obj.item()
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  return obj


def write_json(path: str, payload: Mapping[str, Any]) -> None:
  """Writes strict JSON (NaN/inf become null, numpy scalars become numbers)."""
  with open(path, "w", encoding="utf-8") as f:
    json.dump(_json_safe(payload), f, indent=2, allow_nan=False)
    f.write("\n")


def environment_info() -> Dict[str, Any]:
  """Library versions, codec library versions and the git commit, for result headers."""
  info: Dict[str, Any] = {"python": sys.version.split()[0], "numpy": np.__version__}
  try:
    ic = classical.import_imagecodecs()
    info["imagecodecs"] = ic.__version__
    for fn in ("png_version", "webp_version", "jpeg2k_version", "jpegxl_version"):
      try:
        info[fn.replace("_version", "")] = getattr(ic, fn)()
      except Exception:  # pylint: disable=broad-except
        pass
  except ImportError:
    info["imagecodecs"] = None
  try:
    import l3c_jax  # pylint: disable=import-outside-toplevel
    info["l3c_jax"] = l3c_jax.__version__
  except Exception:  # pylint: disable=broad-except
    pass
  try:
    here = os.path.dirname(os.path.abspath(__file__))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, check=True,
                            capture_output=True, text=True, timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           check=True, capture_output=True, text=True, timeout=10).stdout.strip()
    info["commit"] = commit + ("+dirty" if dirty else "")
  except Exception:  # pylint: disable=broad-except
    info["commit"] = None
  return info


def methods_in_order(summary: Sequence[Mapping[str, Any]]) -> List[Tuple[str, str]]:
  """(method, kind) pairs in first-appearance order."""
  return _ordered_unique((s["method"], s["kind"]) for s in summary)


def summary_markdown(summary: Sequence[Mapping[str, Any]]) -> str:
  """Wide table (methods x sets, mean bpsp) followed by one detailed table per set."""
  sets = _ordered_unique(s["set"] for s in summary)
  by_key = {(s["set"], s["method"]): s for s in summary}
  headers = ["method"] + [SET_TITLES.get(s, s) for s in sets]
  body = []
  for method, kind in methods_in_order(summary):
    cells = [by_key.get((st, method)) for st in sets]
    label = f"{method} (actual)" if kind == "learned" else method
    body.append([label] + [fmt(c["bpsp_mean"]) if c else "" for c in cells])
    if kind == "learned":
      body.append([f"{method} (theoretical)"] +
                  [fmt(c["bpsp_theoretical_mean"]) if c else "" for c in cells])
  out = ["Mean of per-image bpsp (lower is better).\n", markdown_table(headers, body)]
  for st in sets:
    rows = []
    for s in summary:
      if s["set"] != st:
        continue
      rows.append([s["method"], s["num_images"], fmt(s["bpsp_mean"], 4), fmt(s["bpsp_total"], 4),
                   fmt(s["bpsp_theoretical_mean"], 4), fmt(s["encode_s_median"]),
                   fmt(s["decode_s_median"]), f"{s['num_exact']}/{s['num_images']}"])
    out.append(f"\n### {SET_TITLES.get(st, st)}\n")
    out.append(markdown_table(
        ["method", "images", "bpsp mean", "bpsp total", "theoretical mean", "encode s (median)",
         "decode s (median)", "bit-exact"], rows))
  return "".join(out)


def per_image_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
  """One table per set: images x methods, actual bpsp (theoretical in brackets for ours)."""
  out = []
  for st in _ordered_unique(r["set"] for r in rows):
    set_rows = [r for r in rows if r["set"] == st]
    methods = _ordered_unique(r["method"] for r in set_rows)
    images = _ordered_unique(r["image"] for r in set_rows)
    cell = {(r["image"], r["method"]): r for r in set_rows}
    body = []
    for im in images:
      first = next(r for r in set_rows if r["image"] == im)
      line = [im, f"{first['width']}x{first['height']}" +
              ("" if first.get("source_mode", "RGB") == "RGB" else f" ({first['source_mode']})")]
      for m in methods:
        r = cell.get((im, m))
        if r is None:
          line.append("")
        elif r.get("bpsp_theoretical") is not None:
          line.append(f"{r['bpsp']:.4f} ({r['bpsp_theoretical']:.4f})")
        else:
          line.append(f"{r['bpsp']:.4f}")
      body.append(line)
    out.append(f"\n### {SET_TITLES.get(st, st)}: per image\n")
    out.append(markdown_table(["image", "WxH"] + methods, body))
  return "".join(out)


def write_results(output_dir: str, rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any],
                  notes: Sequence[str] = (), title: str = "Lossless bpsp") -> Dict[str, str]:
  """Writes results.json, results.md, per_image.csv, summary.csv and chart.png.

  Args:
    output_dir: created if missing.
    rows: per-image rows from `evaluate_images`.
    settings: run settings (flags, codec settings, environment) recorded in JSON and Markdown.
    notes: skipped codecs / images / models, shown in the Markdown.
    title: title of the Markdown and the chart.
  Returns:
    dict name -> path of every written file.
  """
  os.makedirs(output_dir, exist_ok=True)
  summary = summarize(rows)
  paths = {k: os.path.join(output_dir, f) for k, f in (
      ("json", "results.json"), ("markdown", "results.md"), ("per_image_csv", "per_image.csv"),
      ("summary_csv", "summary.csv"), ("chart", "chart.png"))}
  write_json(paths["json"], {"settings": settings, "notes": list(notes), "summary": summary,
                             "per_image": list(rows)})
  write_csv(paths["per_image_csv"], rows)
  write_csv(paths["summary_csv"], summary)
  md = [f"# {title}\n\n", settings_markdown(settings)]
  if notes:
    md.append("\nNotes:\n" + "".join(f"- {n}\n" for n in notes))
  md.append("\n" + summary_markdown(summary))
  md.append(per_image_markdown(rows))
  with open(paths["markdown"], "w", encoding="utf-8") as f:
    f.write("".join(md))
  chart_from_summary(summary, paths["chart"], title=title)
  return paths


def settings_markdown(settings: Mapping[str, Any]) -> str:
  """Bullet list of the run settings (nested dicts flattened one level)."""
  lines = []
  for k, v in settings.items():
    if isinstance(v, Mapping):
      lines.append(f"- {k}: " + "; ".join(f"{kk}={vv}" for kk, vv in v.items()) + "\n")
    else:
      lines.append(f"- {k}: {v}\n")
  return ("Counting rule: bpsp = 8 * file bytes / (3 * H * W) of the unpadded image; set figure = "
          "mean of per-image bpsp (total bits / total sub-pixels beside it). Every decode checked "
          "bit-exact.\n\n" + "".join(lines))


def chart_from_summary(summary: Sequence[Mapping[str, Any]], path: str,
                       title: str = "Lossless bpsp", include_theoretical: bool = False) -> None:
  """Grouped bar chart of mean bpsp: one group per set, one bar colour per method."""
  sets = _ordered_unique(s["set"] for s in summary)
  by_key = {(s["set"], s["method"]): s for s in summary}
  series: Dict[str, List[Optional[float]]] = {}
  for method, kind in methods_in_order(summary):
    label = f"{method} (actual)" if kind == "learned" and include_theoretical else method
    series[label] = [by_key[(st, method)]["bpsp_mean"] if (st, method) in by_key else None
                     for st in sets]
    if kind == "learned" and include_theoretical:
      series[f"{method} (theoretical)"] = [
          by_key[(st, method)]["bpsp_theoretical_mean"] if (st, method) in by_key else None
          for st in sets]
  plot_bars([SET_TITLES.get(s, s) for s in sets], series, path, title=title,
            ylabel="bits per sub-pixel (mean per image)")


# --- published numbers ----------------------------------------------------------------------------

PAPER_COLUMNS = ("method", "set", "bpsp", "tag", "source", "note")
_TAG_RANK = {"C": 0, "D": 1, "R": 2, "M": 3}


def load_paper_numbers(path: str) -> List[Dict[str, Any]]:
  """Reads the published-numbers CSV (columns method, set, bpsp, tag, source, note).

  Tags: C confirmed in a public source, D derived by arithmetic from one, R recalled from the
  paper (unconfirmed), M measured on this project's machine (docs/baselines.md).
  """
  with open(path, newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  for r in rows:
    missing = [c for c in PAPER_COLUMNS if c not in r]
    if missing:
      raise ValueError(f"{path}: missing columns {missing}")
    r["bpsp"] = float(r["bpsp"])
    if r["tag"] not in _TAG_RANK:
      raise ValueError(f"{path}: unknown tag {r['tag']!r} for {r['method']} on {r['set']}")
  return rows


def _norm_method(name: str) -> str:
  return "".join(ch for ch in name.lower() if ch.isalnum())


def published_value(paper_rows: Sequence[Mapping[str, Any]], method: str, set_key: str
                    ) -> Optional[Mapping[str, Any]]:
  """The best-sourced published row for (method, set): lowest tag rank (C < D < R < M) first.

  Method names are compared ignoring case, spaces and punctuation ('JPEG 2000' == 'JPEG2000').
  """
  want = _norm_method(method)
  cands = [r for r in paper_rows if r["set"] == set_key and _norm_method(r["method"]) == want]
  if not cands:
    return None
  return min(cands, key=lambda r: _TAG_RANK[r["tag"]])


def paper_method_for_model(model_name: str) -> str:
  """Which published method a learned model is compared with: 'RGB Shared', 'RGB' or 'L3C'.

  Decided by the model's name: names containing 'rgb_shared' / 'rgbshared' map to the paper's
  RGB Shared baseline, other names containing 'rgb' to the RGB baseline, everything else to L3C.
  """
  norm = _norm_method(model_name)
  if "rgbshared" in norm:
    return "RGB Shared"
  if "rgb" in norm:
    return "RGB"
  return "L3C"


def _paper_cell(row: Optional[Mapping[str, Any]]) -> str:
  return "" if row is None else f"{row['bpsp']:.3f} [{row['tag']}]"


def comparison_rows(summary: Sequence[Mapping[str, Any]], paper_rows: Sequence[Mapping[str, Any]],
                    set_keys: Sequence[str]) -> Tuple[List[str], List[List[str]],
                                                      List[Dict[str, Any]]]:
  """Table 1 layout: for every set a measured ('ours') and a published ('paper') column.

  Rows: each measured method (learned models as an actual and a theoretical row; published value
  on the actual row of the model's paper method, see `paper_method_for_model`), then every
  published-only method with a value on one of the sets.

  Args:
    summary: from `summarize`; its `set` labels are matched against set_keys.
    paper_rows: from `load_paper_numbers`.
    set_keys: table columns, in order (named-set keys; sets not measured get empty 'ours' cells).
  Returns:
    (headers, markdown rows, long-form CSV records with set, method, kind
    ('actual' | 'theoretical' | 'published'), bpsp_mean, bpsp_total, num_images, tag, source,
    note).
  """
  by_key = {(s["set"], s["method"]): s for s in summary}
  headers = ["method"]
  for k in set_keys:
    title = SET_TITLES.get(k, k)
    headers += [f"{title} ours", f"{title} paper"]
  md_rows: List[List[str]] = []
  records: List[Dict[str, Any]] = []
  matched_published = set()

  for method, kind in methods_in_order(summary):
    paper_method = paper_method_for_model(method) if kind == "learned" else method
    variants = [("actual", "bpsp_mean", "bpsp_total")]
    if kind == "learned":
      variants.append(("theoretical", "bpsp_theoretical_mean", "bpsp_theoretical_total"))
    for variant, mean_key, total_key in variants:
      label = f"{method} ({variant})" if kind == "learned" else method
      line = [label]
      for k in set_keys:
        s = by_key.get((k, method))
        pub = published_value(paper_rows, paper_method, k) if variant == "actual" else None
        if pub is not None:
          matched_published.add((_norm_method(pub["method"]), k))
        line += [fmt(s[mean_key]) if s else "", _paper_cell(pub)]
        if s is not None and s[mean_key] is not None:
          records.append({"set": k, "method": method, "kind": variant, "bpsp_mean": s[mean_key],
                          "bpsp_total": s[total_key], "num_images": s["num_images"], "tag": "",
                          "source": "measured in this run", "note": ""})
      md_rows.append(line)

  published_methods = _ordered_unique(r["method"] for r in paper_rows if r["set"] in set_keys)
  for pm in published_methods:
    cells, any_value = [pm + " (published)"], False
    for k in set_keys:
      pub = published_value(paper_rows, pm, k)
      if pub is not None and (_norm_method(pm), k) in matched_published:
        pub = None  # already shown beside our measurement
      any_value |= pub is not None
      cells += ["", _paper_cell(pub)]
    if any_value:
      md_rows.append(cells)
  for r in paper_rows:
    if r["set"] in set_keys:
      records.append({"set": r["set"], "method": r["method"], "kind": "published",
                      "bpsp_mean": r["bpsp"], "bpsp_total": None, "num_images": None,
                      "tag": r["tag"], "source": r["source"], "note": r["note"]})
  return headers, md_rows, records


# --- charts (Pillow only) -------------------------------------------------------------------------

PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def _font(size: int):
  from PIL import ImageFont  # pylint: disable=import-outside-toplevel
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow without FreeType: fixed-size bitmap font
    return ImageFont.load_default()


def _text_wh(draw, text: str, font) -> Tuple[int, int]:
  left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
  return right - left, bottom - top


def _nice_step(span: float, target_ticks: int = 6) -> float:
  if span <= 0:
    return 1.0
  raw = span / target_ticks
  mag = 10 ** math.floor(math.log10(raw))
  for m in (1, 2, 2.5, 5, 10):
    if m * mag >= raw:
      return m * mag
  return 10 * mag


def _tick_label(v: float, step: float) -> str:
  decimals = max(0, -int(math.floor(math.log10(step)))) if step < 1 else 0
  if step < 1 and abs(step * 10 ** decimals - round(step * 10 ** decimals)) > 1e-9:
    decimals += 1
  return f"{v:.{decimals}f}"


def _draw_legend(draw, labels: Sequence[str], colors, x0: int, y0: int, max_width: int, font
                 ) -> int:
  """Legend items left to right, wrapping; returns the height used."""
  x, y, line_h = x0, y0, 0
  for label, color in zip(labels, colors):
    tw, th = _text_wh(draw, label, font)
    item_w = 14 + 6 + tw + 18
    if x + item_w > x0 + max_width and x > x0:
      x, y = x0, y + line_h + 6
    draw.rectangle([x, y + 2, x + 14, y + 16], fill=color)
    draw.text((x + 20, y), label, fill=(0, 0, 0), font=font)
    line_h = max(line_h, th + 4, 18)
    x += item_w
  return y + line_h - y0


def _new_chart(width: int, height: int, title: str, names: Sequence[str], right_margin: int,
               legend_gap: int):
  """White canvas with a centred title and a legend; -> (img, draw, fonts, colors, left, right, y)."""
  from PIL import Image, ImageDraw  # pylint: disable=import-outside-toplevel
  img = Image.new("RGB", (width, height), "white")
  draw = ImageDraw.Draw(img)
  fonts = (_font(18), _font(13), _font(11))
  colors = [PALETTE[i % len(PALETTE)] for i in range(len(names))]
  y = 10
  if title:
    tw, th = _text_wh(draw, title, fonts[0])
    draw.text(((width - tw) // 2, y), title, fill=(0, 0, 0), font=fonts[0])
    y += th + 14
  left, right = 80, width - right_margin
  y += _draw_legend(draw, names, colors, left, y, right - left, fonts[1]) + legend_gap
  return img, draw, fonts, colors, left, right, y


def _draw_vertical_text(img, text: str, x_center: int, y_bottom: int, font) -> None:
  from PIL import Image, ImageDraw  # pylint: disable=import-outside-toplevel
  probe = ImageDraw.Draw(img)
  tw, th = _text_wh(probe, text, font)
  tile = Image.new("RGBA", (tw + 2, th + 6), (255, 255, 255, 0))
  ImageDraw.Draw(tile).text((1, 0), text, fill=(0, 0, 0, 255), font=font)
  tile = tile.rotate(90, expand=True)
  img.paste(tile, (x_center - tile.width // 2, y_bottom - tile.height), tile)


def plot_bars(categories: Sequence[str], series: Mapping[str, Sequence[Optional[float]]],
              path: str, title: str = "", ylabel: str = "bpsp",
              size: Optional[Tuple[int, int]] = None) -> Tuple[int, int]:
  """Grouped bar chart PNG: one group per category, one colour per series, value on each bar.

  Args:
    categories: group labels along x (e.g. sets).
    series: name -> one value per category (None: no bar).
    path: output PNG path.
    title: chart title.
    ylabel: y-axis label.
    size: (width, height) in pixels; default grows with the number of bars.
  Returns:
    (width, height) of the written image.
  """
  names = list(series)
  for name in names:
    if len(series[name]) != len(categories):
      raise ValueError(f"series {name!r} has {len(series[name])} values, "
                       f"{len(categories)} categories")
  n_groups, n_series = max(1, len(categories)), max(1, len(names))
  bar_w = 34 if n_series <= 6 else 22
  group_w = n_series * bar_w + 40
  width, height = size or (max(720, 110 + n_groups * group_w + 30), 560)
  img, draw, (f_title, f_text, f_small), colors, left, right, y = _new_chart(
      width, height, title, names, right_margin=20, legend_gap=12)
  top, bottom = y + 40, height - 60  # 40 px room above the tallest bar for its label

  values = [v for name in names for v in series[name] if v is not None and math.isfinite(v)]
  vmax = max(values) if values else 1.0
  step = _nice_step(vmax * 1.05)
  ymax = step * math.ceil(vmax * 1.05 / step)
  scale = (bottom - top) / ymax

  # Grid and y ticks.
  t = 0.0
  while t <= ymax + 1e-9:
    py = bottom - t * scale
    draw.line([left, py, right, py], fill=(225, 225, 225))
    label = _tick_label(t, step)
    tw, th = _text_wh(draw, label, f_small)
    draw.text((left - 8 - tw, py - th // 2 - 2), label, fill=(0, 0, 0), font=f_small)
    t += step
  draw.line([left, top - 10, left, bottom], fill=(0, 0, 0))
  draw.line([left, bottom, right, bottom], fill=(0, 0, 0))
  # Y label, rotated.
  _draw_vertical_text(img, ylabel, 16, (top + bottom) // 2 + _text_wh(draw, ylabel, f_text)[0] // 2,
                      f_text)

  slot = (right - left) / n_groups
  bw = min(bar_w, (slot - 20) / n_series)
  for g, cat in enumerate(categories):
    gx = left + g * slot + (slot - bw * n_series) / 2
    for k, name in enumerate(names):
      v = series[name][g]
      if v is None or not math.isfinite(v):
        continue
      x0 = gx + k * bw
      draw.rectangle([x0 + 1, bottom - v * scale, x0 + bw - 2, bottom - 1], fill=colors[k])
      label = f"{v:.3f}" if v < 10 else f"{v:.2f}"
      tw, _ = _text_wh(draw, label, f_small)
      if tw <= bw - 1:
        draw.text((x0 + (bw - tw) / 2, bottom - v * scale - 15), label, fill=(0, 0, 0),
                  font=f_small)
      else:
        _draw_vertical_text(img, label, int(x0 + bw / 2), int(bottom - v * scale - 3), f_small)
    tw, _ = _text_wh(draw, cat, f_text)
    draw.text((left + g * slot + (slot - tw) / 2, bottom + 10), cat, fill=(0, 0, 0), font=f_text)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  img.save(path)
  return width, height


def plot_curve(xs: Sequence[float], ys_dict: Mapping[str, Sequence[Optional[float]]], path: str,
               xlabel: str = "step", ylabel: str = "bpsp", title: str = "",
               size: Tuple[int, int] = (800, 480)) -> Tuple[int, int]:
  """Line chart PNG (e.g. training step vs validation bpsp), drawn with Pillow.

  Args:
    xs: shared x values, ascending.
    ys_dict: series name -> y values aligned with xs (None: gap, the line is broken there).
    path: output PNG path.
    xlabel, ylabel, title: axis labels and title.
    size: (width, height) in pixels.
  Returns:
    (width, height) of the written image.
  """
  names = list(ys_dict)
  for name in names:
    if len(ys_dict[name]) != len(xs):
      raise ValueError(f"series {name!r} has {len(ys_dict[name])} values, {len(xs)} x values")
  width, height = size
  img, draw, (f_title, f_text, f_small), colors, left, right, y = _new_chart(
      width, height, title, names, right_margin=25, legend_gap=14)
  top, bottom = y, height - 60

  xs_f = [float(x) for x in xs]
  ys_all = [float(v) for n in names for v in ys_dict[n] if v is not None and math.isfinite(v)]
  if not xs_f or not ys_all:
    raise ValueError("plot_curve needs at least one finite point")
  x_lo, x_hi = min(xs_f), max(xs_f)
  if x_hi == x_lo:
    x_hi = x_lo + 1.0
  y_lo, y_hi = min(ys_all), max(ys_all)
  pad = (y_hi - y_lo) * 0.05 or max(abs(y_hi) * 0.05, 0.05)
  ystep = _nice_step(y_hi - y_lo + 2 * pad)
  y_lo = ystep * math.floor((y_lo - pad) / ystep)
  y_hi = ystep * math.ceil((y_hi + pad) / ystep)
  xstep = _nice_step(x_hi - x_lo)

  def px(x):
    return left + (x - x_lo) / (x_hi - x_lo) * (right - left)

  def py(v):
    return bottom - (v - y_lo) / (y_hi - y_lo) * (bottom - top)

  t = y_lo
  while t <= y_hi + ystep * 1e-6:
    draw.line([left, py(t), right, py(t)], fill=(225, 225, 225))
    label = _tick_label(t, ystep)
    tw, th = _text_wh(draw, label, f_small)
    draw.text((left - 8 - tw, py(t) - th // 2 - 2), label, fill=(0, 0, 0), font=f_small)
    t += ystep
  t = xstep * math.ceil(x_lo / xstep)
  while t <= x_hi + xstep * 1e-6:
    draw.line([px(t), bottom, px(t), bottom + 5], fill=(0, 0, 0))
    label = _tick_label(t, xstep) if xstep < 1 else f"{t:g}"
    tw, _ = _text_wh(draw, label, f_small)
    draw.text((px(t) - tw / 2, bottom + 8), label, fill=(0, 0, 0), font=f_small)
    t += xstep
  draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
  tw, _ = _text_wh(draw, xlabel, f_text)
  draw.text(((left + right - tw) / 2, height - 28), xlabel, fill=(0, 0, 0), font=f_text)
  _draw_vertical_text(img, ylabel, 16, (top + bottom) // 2 + _text_wh(draw, ylabel, f_text)[0] // 2,
                      f_text)

  for name, color in zip(names, colors):
    segment: List[Tuple[float, float]] = []
    points = []
    for x, v in zip(xs_f, ys_dict[name]):
      if v is None or not math.isfinite(v):
        if len(segment) > 1:
          draw.line(segment, fill=color, width=2)
        segment = []
        continue
      segment.append((px(x), py(float(v))))
      points.append(segment[-1])
    if len(segment) > 1:
      draw.line(segment, fill=color, width=2)
    if len(points) <= 60:
      for (cx, cy) in points:
        draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=color)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  img.save(path)
  return width, height
