"""Tables of an evaluation: per-(set, method) summaries, Markdown tables, published numbers.

Counting rule: `counting` (bits over the unpadded image's sub-pixels in its own mode); a set's
figure is the mean of per-image values, total bits / total sub-pixels beside it.
"""

import csv
import math
import statistics
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from l3c_jax.evaluation.sets import SET_TITLES

COUNTING_NOTE = ("Counting rule (l3c_jax/evaluation/counting.py): bpsp = 8 * file bytes / "
                 "sub-pixels of the unpadded image in its own mode (gray and palette 1 per pixel, "
                 "gray+alpha 2, RGB 3, RGBA 4), bpp = 8 * file bytes / pixels; set figure = mean "
                 "of per-image values (total bits / total sub-pixels beside it). Every decode "
                 "checked bit-exact.")


def ordered_unique(items: Iterable) -> List:
  seen, out = set(), []
  for x in items:
    if x not in seen:
      seen.add(x)
      out.append(x)
  return out


def summarize(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
  """Per-(set, method) summary of per-image rows.

  Args:
    rows: per-image rows (`runner.evaluate_images`) with keys set, method, kind, height, width,
      num_subpixels, num_bytes, bpp, bpsp, bpsp_theoretical (None for classical), encode_s,
      decode_s, exact.
  Returns:
    one dict per (set, method), in first-appearance order, with num_images, bpsp_mean (mean of
    per-image bpsp, the paper's convention), bpsp_total (total bits / total sub-pixels),
    bpp_mean, bpp_total,
    bpsp_theoretical_mean / _total (None when absent), encode_s_median, decode_s_median,
    num_exact.
  """
  groups: Dict[Tuple[str, str], List[Mapping[str, Any]]] = {}
  for r in rows:
    groups.setdefault((r["set"], r["method"]), []).append(r)
  summary = []
  for (set_label, method), rs in groups.items():
    subpixels = sum(r["num_subpixels"] for r in rs)
    pixels = sum(r["height"] * r["width"] for r in rs)
    theo = [r.get("bpsp_theoretical") for r in rs]
    has_theo = all(t is not None for t in theo)
    summary.append({
        "set": set_label,
        "method": method,
        "kind": rs[0].get("kind", ""),
        "num_images": len(rs),
        "bpsp_mean": statistics.fmean(r["bpsp"] for r in rs),
        "bpsp_total": 8.0 * sum(r["num_bytes"] for r in rs) / subpixels,
        "bpp_mean": statistics.fmean(r["bpp"] for r in rs),
        "bpp_total": 8.0 * sum(r["num_bytes"] for r in rs) / pixels,
        "bpsp_theoretical_mean": statistics.fmean(theo) if has_theo else None,
        "bpsp_theoretical_total": (sum(t * r["num_subpixels"] for t, r in zip(theo, rs))
                                   / subpixels) if has_theo else None,
        "encode_s_median": statistics.median(r["encode_s"] for r in rs),
        "decode_s_median": statistics.median(r["decode_s"] for r in rs),
        "num_exact": sum(1 for r in rs if r.get("exact", True)),
    })
  return summary


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


def methods_in_order(summary: Sequence[Mapping[str, Any]]) -> List[Tuple[str, str]]:
  """(method, kind) pairs in first-appearance order."""
  return ordered_unique((s["method"], s["kind"]) for s in summary)


def summary_markdown(summary: Sequence[Mapping[str, Any]]) -> str:
  """Wide table (methods x sets, mean bpsp) followed by one detailed table per set."""
  sets = ordered_unique(s["set"] for s in summary)
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
  out = ["Mean of per-image bpsp (lower is better).\n\n", markdown_table(headers, body)]
  for st in sets:
    rows = []
    for s in summary:
      if s["set"] != st:
        continue
      rows.append([s["method"], s["num_images"], fmt(s["bpsp_mean"], 4), fmt(s["bpsp_total"], 4),
                   fmt(s["bpp_mean"], 4), fmt(s["bpsp_theoretical_mean"], 4),
                   fmt(s["encode_s_median"]), fmt(s["decode_s_median"]),
                   f"{s['num_exact']}/{s['num_images']}"])
    out.append(f"\n### {SET_TITLES.get(st, st)}\n")
    out.append(markdown_table(
        ["method", "images", "bpsp mean", "bpsp total", "bpp mean", "theoretical mean",
         "encode s (median)", "decode s (median)", "bit-exact"], rows))
  return "".join(out)


def per_image_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
  """One table per set: images x methods, actual bpsp (theoretical in brackets for ours)."""
  out = []
  for st in ordered_unique(r["set"] for r in rows):
    set_rows = [r for r in rows if r["set"] == st]
    methods = ordered_unique(r["method"] for r in set_rows)
    images = ordered_unique(r["image"] for r in set_rows)
    cell = {(r["image"], r["method"]): r for r in set_rows}
    body = []
    for im in images:
      first = next(r for r in set_rows if r["image"] == im)
      line = [im, f"{first['width']}x{first['height']}" +
              ("" if first["mode"] == "RGB" else f" ({first['mode']})")]
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


def settings_markdown(settings: Mapping[str, Any]) -> str:
  """Bullet list of the run settings (nested dicts flattened one level)."""
  lines = []
  for k, v in settings.items():
    if isinstance(v, Mapping):
      lines.append(f"- {k}: " + "; ".join(f"{kk}={vv}" for kk, vv in v.items()) + "\n")
    else:
      lines.append(f"- {k}: {v}\n")
  return (COUNTING_NOTE + "\n\n" + "".join(lines))


# --- published numbers ----------------------------------------------------------------------------

PAPER_COLUMNS = ("method", "set", "bpsp", "tag", "source", "note")
_TAG_RANK = {"C": 0, "D": 1, "R": 2, "M": 3}


def load_paper_numbers(path: str) -> List[Dict[str, Any]]:
  """Reads the published-numbers CSV (columns method, set, bpsp, tag, source, note).

  Tags: C confirmed in a public source, D derived by arithmetic from one, R recalled from the
  paper (unconfirmed), M measured on this project's machine.
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

  published_methods = ordered_unique(r["method"] for r in paper_rows if r["set"] in set_keys)
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


def bar_series(summary: Sequence[Mapping[str, Any]], include_theoretical: bool = False
               ) -> Tuple[List[str], Dict[str, List[Optional[float]]]]:
  """Mean bpsp of a summary as bar-chart data: set titles and method -> one value per set.

  Args:
    summary: from `summarize`.
    include_theoretical: learned methods get an '(actual)' and a '(theoretical)' series.
  Returns:
    (set titles, series) for `figures.bar_chart`; None where a method has no value for a set.
  """
  sets = ordered_unique(s["set"] for s in summary)
  by_key = {(s["set"], s["method"]): s for s in summary}
  series: Dict[str, List[Optional[float]]] = {}
  for method, kind in methods_in_order(summary):
    variants = [("actual", "bpsp_mean")]
    if kind == "learned" and include_theoretical:
      variants.append(("theoretical", "bpsp_theoretical_mean"))
    for variant, key in variants:
      label = f"{method} ({variant})" if len(variants) > 1 else method
      series[label] = [by_key[(st, method)][key] if (st, method) in by_key else None
                       for st in sets]
  return [SET_TITLES.get(s, s) for s in sets], series
