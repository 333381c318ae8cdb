"""Parity check of l3c-jax against numbers produced by the official L3C-PyTorch code.

A reference directory (e.g. tests/testdata/l3c_pytorch_tiny or ../shared/reference/l3c_pytorch_tiny)
holds an official state dict (`weights_tiny.npz`), uint8 HWC inputs (`inputs.npz`), the official
results (`expected.json`: per-scale bits) and arrays (`expected.npz`, NCHW: symbols `{case}/S{s}`,
heads `{case}/P{s}` or their first rows `{case}/P{s}_rows`, per-channel checksums
`{case}/P{s}_chan_sum[sq]`). Every key except the symbols and the bits is optional, so a reduced
copy of the fixture works too. The official side is documented in the fixture's README.md.
"""

import dataclasses
import functools
import json
import os
from typing import Dict, List, Optional

import jax
import numpy as np

from l3c_jax import convert
from l3c_jax import losses
from l3c_jax.models.l3c import L3C

WEIGHTS_FILE = "weights_tiny.npz"
INPUTS_FILE = "inputs.npz"
EXPECTED_NPZ = "expected.npz"
EXPECTED_JSON = "expected.json"

# expected.json key of each scale's official bits; our `losses.bits_per_group` keys.
OFFICIAL_BITS_KEYS = {"x": "bits_x_given_f1", "z1": "bits_z1_given_f2",
                      "z2": "bits_z2_given_f3", "z3": "bits_z3_uniform"}


@dataclasses.dataclass
class ScaleResult:
  """One row of the table: one scale of one case."""
  scale: str                        # 'x', 'z1', 'z2', 'z3'
  ours_bits: float
  official_bits: float
  symbols_equal: Optional[bool]     # None for x (no symbols)
  num_symbols_differing: int = 0

  @property
  def rel_diff(self) -> float:
    return abs(self.ours_bits - self.official_bits) / max(abs(self.official_bits), 1e-30)


@dataclasses.dataclass
class CaseResult:
  """All comparisons for one input image."""
  case: str
  num_subpixels: int
  scales: List[ScaleResult]
  official_bpsp: float
  max_abs_head_diff: float          # over every stored head element (full heads or first rows)
  heads_compared: List[str]         # which head arrays were compared element-wise
  max_abs_chan_mean_diff: float     # checksums: max_c |mean_hw(ours) - mean_hw(official)|
  max_rel_chan_sumsq_diff: float

  @property
  def ours_bits(self) -> float:
    return sum(r.ours_bits for r in self.scales)

  @property
  def official_bits(self) -> float:
    return sum(r.official_bits for r in self.scales)

  @property
  def ours_bpsp(self) -> float:
    return self.ours_bits / self.num_subpixels


@dataclasses.dataclass
class ReferenceReport:
  cases: List[CaseResult]
  failures: List[str]

  @property
  def ok(self) -> bool:
    return not self.failures


def _nchw_to_nhwc(a: np.ndarray) -> np.ndarray:
  return np.transpose(a, (0, 2, 3, 1))


def _load_npz(path: str) -> Dict[str, np.ndarray]:
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


@functools.lru_cache(maxsize=4)
def _forward_fn(cfg):
  """Jitted (params, x) -> (L3COutput, bits per scale); cached, so repeated checks compile once."""
  model = L3C(cfg)

  @jax.jit
  def forward(p, x):
    return model.apply({"params": p}, x), losses.bits_per_group(cfg, p, x)

  return forward


def check_reference(reference_dir: str, bits_rtol: float = 1e-4,
                    head_atol: float = 1e-4) -> ReferenceReport:
  """Imports the official weights, runs our model on every case and compares.

  Args:
    reference_dir: directory with weights_tiny.npz, inputs.npz, expected.npz, expected.json.
    bits_rtol: allowed relative difference of each scale's bits (and the totals).
    head_atol: allowed absolute difference of head outputs (and of per-channel head means).
  Returns:
    A ReferenceReport; `failures` lists every violated check (empty = parity holds).
  """
  params, cfg = convert.import_official(os.path.join(reference_dir, WEIGHTS_FILE))
  inputs = _load_npz(os.path.join(reference_dir, INPUTS_FILE))
  expected = _load_npz(os.path.join(reference_dir, EXPECTED_NPZ))
  with open(os.path.join(reference_dir, EXPECTED_JSON)) as f:
    expected_json = json.load(f)

  forward = _forward_fn(cfg)
  failures, cases = [], []
  for case, official in expected_json["cases"].items():
    x = np.asarray(inputs[case], np.float32)[None]   # [1, H, W, 3] HWC uint8 -> NHWC float32
    out, bits = forward(params, x)
    out = jax.tree_util.tree_map(np.asarray, out)

    rows = []
    for scale, key in OFFICIAL_BITS_KEYS.items():
      symbols_equal, num_diff = None, 0
      if scale != "x":
        s = int(scale[1:])
        ref_sym = _nchw_to_nhwc(expected[f"{case}/S{s}"])
        ours_sym = out.symbols[s - 1]
        if ours_sym.shape != ref_sym.shape:
          failures.append(f"{case} S{s}: shape {ours_sym.shape} != official {ref_sym.shape}")
          symbols_equal, num_diff = False, -1
        else:
          num_diff = int(np.sum(ours_sym != ref_sym))
          symbols_equal = num_diff == 0
          if not symbols_equal:
            failures.append(f"{case} S{s}: {num_diff} symbols differ")
      row = ScaleResult(scale, float(bits[scale]), float(official[key]), symbols_equal, num_diff)
      if not row.rel_diff <= bits_rtol:
        failures.append(f"{case} {scale}: bits rel diff {row.rel_diff:.3g} > {bits_rtol:g}")
      rows.append(row)

    max_head_diff, compared = 0.0, []
    mean_diff, sumsq_diff = 0.0, 0.0
    for i, head in enumerate(out.head_params):
      ref = None
      if f"{case}/P{i}" in expected:
        ref, name = _nchw_to_nhwc(expected[f"{case}/P{i}"]), f"P{i}"
      elif f"{case}/P{i}_rows" in expected:
        ref = _nchw_to_nhwc(expected[f"{case}/P{i}_rows"])
        name = f"P{i}[:{ref.shape[1]} rows]"
      if ref is not None:
        ours = head[:, :ref.shape[1]]
        if ours.shape != ref.shape:
          failures.append(f"{case} {name}: shape {ours.shape} != official {ref.shape}")
        else:
          max_head_diff = max(max_head_diff, float(np.max(np.abs(ours - ref))))
          compared.append(name)
      if f"{case}/P{i}_chan_sum" in expected:
        n = head.shape[0] * head.shape[1] * head.shape[2]
        h64 = head.astype(np.float64)
        ours_sum = h64.sum(axis=(0, 1, 2))
        ours_sumsq = np.square(h64).sum(axis=(0, 1, 2))
        mean_diff = max(mean_diff, float(np.max(
            np.abs(ours_sum - expected[f"{case}/P{i}_chan_sum"]) / n)))
        ref_sumsq = expected[f"{case}/P{i}_chan_sumsq"]
        sumsq_diff = max(sumsq_diff, float(np.max(
            np.abs(ours_sumsq - ref_sumsq) / np.maximum(ref_sumsq, 1e-30))))
    if not max_head_diff <= head_atol:
      failures.append(f"{case}: max abs head diff {max_head_diff:.3g} > {head_atol:g}")
    if not mean_diff <= head_atol:
      failures.append(f"{case}: per-channel head mean diff {mean_diff:.3g} > {head_atol:g}")
    if not sumsq_diff <= bits_rtol:
      failures.append(f"{case}: per-channel head sum-of-squares rel diff {sumsq_diff:.3g}")

    num_subpixels = int(official.get("num_subpixels", x.size))
    result = CaseResult(case, num_subpixels, rows, float(official["bpsp_total_reported"]),
                        max_head_diff, compared, mean_diff, sumsq_diff)
    total_rel = abs(result.ours_bits - result.official_bits) / result.official_bits
    if not total_rel <= bits_rtol:
      failures.append(f"{case}: total bits rel diff {total_rel:.3g}")
    bpsp_rel = abs(result.ours_bpsp - result.official_bpsp) / result.official_bpsp
    if not bpsp_rel <= bits_rtol:
      failures.append(f"{case}: bpsp rel diff {bpsp_rel:.3g}")
    cases.append(result)
  if not cases:
    failures.append("expected.json has no cases")
  return ReferenceReport(cases, failures)


def format_report(report: ReferenceReport) -> str:
  """The comparison as a plain-text table (one block per case)."""
  lines = []
  for c in report.cases:
    lines.append(f"case {c.case} ({c.num_subpixels} sub-pixels)")
    lines.append(f"  {'scale':<6}| {'ours bits':>14} | {'official bits':>14} | {'rel diff':>9} | "
                 "symbols equal")
    for r in c.scales:
      eq = "-" if r.symbols_equal is None else (
          "yes" if r.symbols_equal else f"NO ({r.num_symbols_differing} differ)")
      lines.append(f"  {r.scale:<6}| {r.ours_bits:14.4f} | {r.official_bits:14.4f} | "
                   f"{r.rel_diff:9.2e} | {eq}")
    total_rel = abs(c.ours_bits - c.official_bits) / c.official_bits
    lines.append(f"  {'total':<6}| {c.ours_bits:14.4f} | {c.official_bits:14.4f} | "
                 f"{total_rel:9.2e} |")
    lines.append(f"  {'bpsp':<6}| {c.ours_bpsp:14.6f} | {c.official_bpsp:14.6f} | "
                 f"{abs(c.ours_bpsp - c.official_bpsp) / c.official_bpsp:9.2e} |")
    lines.append(f"  max abs head diff {c.max_abs_head_diff:.3g} over "
                 f"{', '.join(c.heads_compared) or 'nothing'}; per-channel checksums: "
                 f"max |mean diff| {c.max_abs_chan_mean_diff:.3g}, "
                 f"max rel sumsq diff {c.max_rel_chan_sumsq_diff:.3g}")
  lines.append("PASS" if report.ok else "FAIL:\n  " + "\n  ".join(report.failures))
  return "\n".join(lines)

