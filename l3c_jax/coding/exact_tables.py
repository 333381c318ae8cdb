"""Bit-exact integer frequency tables from integer mixture parameters (numerics version 1).

Format version 1 built the range coder's tables with float32 math whose results change with
XLA flags (fast math, max ISA), CPU and jax version, so a file could decode differently on
another machine. This module replaces it: its inputs are INTEGER mixture parameters and
it uses only int32 add, sub, mul, arithmetic shifts, clip/min/max, compare/select, floor
division of non-negative numbers and gathers from constant tables. Integer ops have one
result, so the tables are identical under any compiler flag, CPU or jax version, as long as no
intermediate wraps; the bounds below show none does.

Parameters (their grids and clamps define numerics version 1, `NUMERICS_VERSION`):
  * logit16: mixture logit * 16 (grid 1/16), clamped to [-2^20, 2^20] (only so that
    differences of logits stay far inside int32).
  * mean64: mean in 1/64 bin measured from the alphabet's first level x_min (pixels 0..255:
    64 * mean in pixel units), clamped to [MEAN64_MIN, MEAN64_MAX] = [-2^15, 2^15 - 1].
  * ls32: log(s / bin_width) * 32 (grid 1/32), clamped to [LS32_MIN, LS32_MAX] =
    [-4 * 32, 7 * 32], i.e. s in [0.018, 1097] bins.
  * coeff16: raw R->G->B coupling logit * 16, clamped to [-256, 256]; its weight is
    lambda_q = COEFF_TABLE[coeff16 + 256] = round(4096 sigmoid(coeff16 / 16)) in Q12.

Constant tables (generated once by `generate_tables` with Python integers and `decimal` at 60
digits, each entry correctly rounded; shipped as numerics_v1.npz, sha256 pinned in
`TABLES_SHA256` and checked on load):
  * SIGMOID_TABLE[i] = round(2^16 sigmoid((i - 2^16) / 2^12)), i = 0..2^17: sigmoid of u in Q12
    over [-16, 16]; values in [0, 2^16], non-decreasing.
  * EXP_TABLE[i] = round(2^14 exp(-i / 16)) for i = 0.. up to and including the first 0 (168
    entries); indices beyond the end are clamped to that 0.
  * INV_SCALE_M[l], INV_SCALE_E[l] for l = ls32 - LS32_MIN: with inv = 64 exp(-ls32 / 32) (u in
    Q12 per 1/64-bin unit of distance: u * 2^12 = (d / 64) exp(-ls32 / 32) 2^12 = d * inv), E is
    the smallest e >= 0 with M = round(inv 2^e) >= 2^11; then M in [2^11, 2^12) and E in [0, 16].
  * COEFF_TABLE[c + 256] = round(2^12 sigmoid(c / 16)), c = -256..256; values in [0, 2^12].

Builder, for one row with K components and A <= 256 levels (interior bin edge j, 0 < j < A, lies
between levels j - 1 and j, at j - 1/2 bins = 64 j - 32 in 1/64-bin units). Bounds per step:
  1. (per row, `_row_params`) r_k = max_k' logit16_k' - logit16_k in [0, 2^21];
     w_k = EXP_TABLE[min(r_k, 167)] in [0, 2^14], = 2^14 for an argmax; W = sum_k w_k in
     [2^14, K 2^14]; w'_k = (w_k << 14) // W with w_k << 14 <= 2^28; the deficit
     2^14 - sum_k w'_k in [0, K) is added to the first argmax, so sum_k w'_k = 2^14 exactly and
     each w'_k in [0, 2^14]. m_k, e_k = INV_SCALE_M/E[clip(ls32_k) - LS32_MIN], m_k < 2^12.
  2. (per edge and component) d = 64 j - 32 - mean64_k in [32 - 32767, 16288 + 32768] =
     [-32735, 49056], so |d| < 2^16 and |d * m_k| < 2^28; u_q = (d * m_k) >> e_k (floor), clipped
     to [-2^16, 2^16]; S_kj = SIGMOID_TABLE[u_q + 2^16] in [0, 2^16], non-decreasing in j.
     (The implementation also evaluates j = 0 and j = A <= 256 before overwriting them in step
     3: d in [-32799, 49120], still |d| < 2^16.)
  3. C_j = sum_k w'_k S_kj: every partial sum is in [0, 2^14 * 2^16] = [0, 2^30];
     c_j = C_j >> 6 in [0, 2^24], non-decreasing in j; c_0 := 0, c_A := 2^24.
  4. C'_j = c_j - ceil(c_j A / 2^24) + j. c_j A can reach 2^32, so with c = h 2^12 + l
     (h = c >> 12 in [0, 2^12], l = c & 4095): h A <= 2^20, l A < 2^20 and
     ceil(c A / 2^24) = -((-(h A) + ((-(l A)) >> 12)) >> 12) (nested floors of -cA / 2^12).
     g(c) = c - ceil(c A / 2^24) is non-decreasing (A / 2^24 < 1: the ceil grows by at most 1
     per unit of c), so C'_{j+1} - C'_j >= 1; C'_0 = 0 and C'_A = 2^24 - A + A = 2^24.
  5. q_i = C'_{i+1} - C'_i >= 1, sum_i q_i = 2^24, each q_i <= 2^24 - A + 1; the table holds
     q_i - 1 as float32 (exact below 2^24), the convention of `coding.entropy`.

Coupling (`coupled_mean64`): mean64_c = clip(base64_c) + sum_{c' < c} (lambda_q x_c' + 32) >> 6
with x_c' clipped to [0, 255]: lambda_q x_c' + 32 < 2^12 * 255 + 32 < 2^20, each term is at most
16320, so the sum is in [-2^15, 2^15 + 32640] before the builder's clamp.

Implementation (same results as the steps above): steps 1, 2-3 and 4-5 are three jitted calls
because within one XLA fusion the per-row values would be recomputed for every entry (XLA drops
optimization barriers before fusion on CPU; measured 3x slower for the float builder this
replaced); steps 4-5 read two neighbours and are memory bound, so step 4's vector ops cost
nothing there). Step 2 gathers from SIGMOID_CORE = SIGMOID_TABLE[2^16 - sat: 2^16 + sat + 1],
sat = 48266, with u_q clipped to [-sat, sat]: S is already 0 / 2^16 beyond (see
`_device_tables`). On this AVX2 AMD EPYC, LLVM scalarizes the gather together with its index
arithmetic (add, shift, clamp, load, insert per entry and component), so this builder took
1.34-1.40x the time of the float builder it replaced (numerics 0, git history before format
version 2) for 65536 rows x K=5 x A=256 and 1.66x for 16384 rows (machine shared with other
jobs; whole-codec figures: experiments/bench_versus.py).
Float inputs (the chunked iterators' head rows) are mapped to int32 by NaN -> 0, clip to
[-2^24, 2^24], round half to even: exact float ops with one result (XLA's fast-math mode may
assume no NaNs; the codec must never feed NaNs).
"""

import decimal
import functools
import hashlib
import importlib.resources
import io
import zipfile
from typing import Dict, Iterator, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from l3c_jax.coding import tables  # rows, chunks, prefetch, the coder's total frequency
from l3c_jax.models import fixed_point
from l3c_jax.models.config import L3CConfig

# The parameter grids and clamps are the model's (models.fixed_point snaps the heads to them).
NUMERICS_VERSION = fixed_point.NUMERICS_VERSION

PRECISION_BITS = tables.PRECISION_BITS
TOTAL_FREQUENCY = tables.TOTAL_FREQUENCY
MAX_NUM_BINS = 256

LOGIT_STEPS = 1 << fixed_point.LOGIT_FRAC_BITS       # logit16 = logit * 16
MEAN_STEPS = 1 << fixed_point.MEAN_FRAC_BITS         # mean64 = 64 * mean in bins, from x_min
LS_STEPS = 1 << fixed_point.LOG_SCALE_FRAC_BITS      # ls32 = 32 * log(s / bin_width)
COEFF_STEPS = 1 << fixed_point.COEFF_FRAC_BITS       # coeff16 = 16 * raw coupling logit

LOGIT16_MIN, LOGIT16_MAX = -(1 << 20), 1 << 20
MEAN64_MIN, MEAN64_MAX = fixed_point.MEAN64_MIN, fixed_point.MEAN64_MAX
LS32_MIN = round(fixed_point.LOG_SCALE_MIN * LS_STEPS)
LS32_MAX = round(fixed_point.LOG_SCALE_MAX * LS_STEPS)
COEFF16_MIN = -round(fixed_point.COEFF_RAW_MAX * COEFF_STEPS)
COEFF16_MAX = round(fixed_point.COEFF_RAW_MAX * COEFF_STEPS)
PIXEL_MAX = 255           # coupled_mean64 reads x_prev clipped to [0, 255]

WEIGHT_BITS = 14          # w'_k in Q14, EXP_TABLE values in Q14
U_FRAC_BITS = 12          # sigmoid argument u in Q12
U_MAX_Q = 16 << U_FRAC_BITS   # |u| <= 16: sigmoid(-16) 2^16 < 0.01 rounds to 0
SIGMOID_BITS = 16         # SIGMOID_TABLE values in Q16
COEFF_BITS = 12           # lambda_q in Q12
INV_SCALE_MIN_M = 1 << 11

_FLOAT_INPUT_LIMIT = float(1 << 24)

TABLES_FILE = "numerics_v1.npz"
TABLES_SHA256 = "59b66e6023ad7727214e2b955cb9ff5c0236866be6e72f05019660c730ca5127"
TABLE_NAMES = ("SIGMOID_TABLE", "EXP_TABLE", "INV_SCALE_M", "INV_SCALE_E", "COEFF_TABLE")


# ---------------------------------------------------------------------------------------------
# Table generation (Python integers + decimal only) and loading.

def _round_decimal(v: decimal.Decimal) -> int:
  """round(v) for v >= 0 computed to 60 digits; refuses values too close to a tie to be sure."""
  n = int(v.to_integral_value(rounding=decimal.ROUND_FLOOR))
  frac = v - n
  if abs(frac - decimal.Decimal("0.5")) < decimal.Decimal(10) ** -40:
    raise ArithmeticError(f"{v} is too close to a rounding tie")
  return n + (1 if frac > decimal.Decimal("0.5") else 0)


def generate_tables() -> Dict[str, np.ndarray]:
  """The constant tables of numerics version 1 (see the module doc), as int32 arrays.

  Platform independent: every entry is a correctly rounded integer from `decimal` at 60 digits
  (no float math). Takes about 3 s.
  """
  with decimal.localcontext(decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)):
    one = decimal.Decimal(1)

    def sigmoid(x: decimal.Decimal) -> decimal.Decimal:
      return one / (one + (-x).exp())

    u_one = 1 << U_FRAC_BITS
    s_one = 1 << SIGMOID_BITS
    sigmoid_table = [_round_decimal(s_one * sigmoid(decimal.Decimal(i - U_MAX_Q) / u_one))
                     for i in range(2 * U_MAX_Q + 1)]
    w_one = 1 << WEIGHT_BITS
    exp_table = []
    while not exp_table or exp_table[-1] > 0:
      exp_table.append(_round_decimal(w_one * (decimal.Decimal(-len(exp_table)) / LOGIT_STEPS
                                              ).exp()))
    inv_m, inv_e = [], []
    for ls32 in range(LS32_MIN, LS32_MAX + 1):
      inv = (decimal.Decimal(-ls32) / LS_STEPS).exp() * (1 << (U_FRAC_BITS - 6))
      e = 0
      while _round_decimal(inv * (1 << e)) < INV_SCALE_MIN_M:
        e += 1
      inv_m.append(_round_decimal(inv * (1 << e)))
      inv_e.append(e)
    coeff_table = [_round_decimal((1 << COEFF_BITS) * sigmoid(decimal.Decimal(c) / COEFF_STEPS))
                   for c in range(COEFF16_MIN, COEFF16_MAX + 1)]
  out = dict(SIGMOID_TABLE=sigmoid_table, EXP_TABLE=exp_table, INV_SCALE_M=inv_m,
             INV_SCALE_E=inv_e, COEFF_TABLE=coeff_table)
  return {name: np.asarray(values, dtype=np.int32) for name, values in out.items()}


def tables_file_bytes(tables: Dict[str, np.ndarray]) -> bytes:
  """A reproducible .npz (stored zip, fixed timestamps, names sorted) of int32 tables."""
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
    for name in sorted(tables):
      array_buf = io.BytesIO()
      np.lib.format.write_array(array_buf, np.ascontiguousarray(tables[name], dtype="<i4"),
                                allow_pickle=False)
      info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
      info.external_attr = 0o644 << 16
      zf.writestr(info, array_buf.getvalue())
  return buf.getvalue()


def _check_tables(t: Dict[str, np.ndarray]) -> None:
  """The properties the bounds in the module doc rely on."""
  s = t["SIGMOID_TABLE"]
  assert s.shape == (2 * U_MAX_Q + 1,) and s[0] == 0 and s[-1] == 1 << SIGMOID_BITS
  assert np.all(np.diff(s) >= 0) and np.all(s + s[::-1] == 1 << SIGMOID_BITS)
  e = t["EXP_TABLE"]
  assert e[0] == 1 << WEIGHT_BITS and e[-1] == 0 and np.all(e[:-1] > 0)
  assert np.all(np.diff(e) <= 0)
  m, sh = t["INV_SCALE_M"], t["INV_SCALE_E"]
  assert m.shape == sh.shape == (LS32_MAX - LS32_MIN + 1,)
  assert np.all((m >= INV_SCALE_MIN_M) & (m < 2 * INV_SCALE_MIN_M))
  assert np.all((sh >= 0) & (sh <= 16))
  c = t["COEFF_TABLE"]
  assert c.shape == (COEFF16_MAX - COEFF16_MIN + 1,) and c.min() >= 0
  assert c.max() <= 1 << COEFF_BITS and np.all(np.diff(c) >= 0)


@functools.lru_cache(maxsize=None)
def load_tables() -> Dict[str, np.ndarray]:
  """The shipped constant tables (read-only int32 arrays), after checking the file's sha256."""
  data = (importlib.resources.files("l3c_jax.coding") / TABLES_FILE).read_bytes()
  digest = hashlib.sha256(data).hexdigest()
  if digest != TABLES_SHA256:
    raise RuntimeError(
        f"l3c_jax/coding/{TABLES_FILE} has sha256 {digest}, expected {TABLES_SHA256}: the "
        f"numerics v{NUMERICS_VERSION} tables are damaged or were changed; files coded with "
        "them would not decode. Reinstall l3c_jax (or restore the file from git).")
  with np.load(io.BytesIO(data), allow_pickle=False) as npz:
    out = {name: npz[name] for name in TABLE_NAMES}
  _check_tables(out)
  for a in out.values():
    a.setflags(write=False)
  return out


def sigmoid_saturation(sigmoid_table: np.ndarray) -> int:
  """The smallest u_q >= 0 with SIGMOID_TABLE[u_q + 2^16] = 2^16 (48266 in v1)."""
  return int(np.argmax(sigmoid_table == 1 << SIGMOID_BITS)) - U_MAX_Q


@functools.lru_cache(maxsize=None)
def _device_tables() -> Dict[str, jax.Array]:
  """The tables as device arrays, passed to the jitted functions as arguments (not baked into
  the HLO as 0.5 MB constants), plus SIGMOID_CORE, the part the builder gathers from.

  SIGMOID_CORE = SIGMOID_TABLE[2^16 - sat: 2^16 + sat + 1]. By the table's symmetry
  S[2^16 - v] = 2^16 - S[2^16 + v] (checked on load), S is 0 for u_q <= -sat and 2^16 for
  u_q >= sat, so clipping u_q to [-sat, sat] instead of [-2^16, 2^16] gives the same values from
  a 28 % smaller table (377 KB). (A uint16 form, 193 KB, measured no faster.)
  """
  out = {name: jnp.asarray(a) for name, a in load_tables().items()}
  table = load_tables()["SIGMOID_TABLE"]
  sat = sigmoid_saturation(table)
  out["SIGMOID_CORE"] = jnp.asarray(table[U_MAX_Q - sat:U_MAX_Q + sat + 1])
  return out


def __getattr__(name: str):  # module constants SIGMOID_TABLE etc., loaded on first use
  if name in TABLE_NAMES:
    return load_tables()[name]
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------
# The builder (int32 only).

def _gather(table: jax.Array, index: jax.Array) -> jax.Array:
  """table[index] for int32 indices the caller keeps in [0, len(table)).

  A plain lax.gather: jnp indexing would add a select per element to wrap negative indices.
  (XLA clamps out-of-range gather starts anyway, so even a bug could not read outside.)
  """
  dnums = jax.lax.GatherDimensionNumbers(offset_dims=(), collapsed_slice_dims=(0,),
                                         start_index_map=(0,))
  return jax.lax.gather(table, index[..., None], dnums, slice_sizes=(1,),
                        mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS)


def _ceil_mul_div_total(c: jax.Array, num_bins: int) -> jax.Array:
  """ceil(c * A / 2^24) for int32 c in [0, 2^24] without forming c * A (up to 2^32).

  With c = h 2^12 + l: h A <= 2^20, l A < 2^20; floor(-cA / 2^24) is two nested floor shifts by
  12 of -(h A) 2^12 - l A, and ceil(x) = -floor(-x).
  """
  high = jax.lax.shift_right_arithmetic(c, jnp.int32(12)) * num_bins
  low = jnp.bitwise_and(c, jnp.int32(4095)) * num_bins
  inner = -high + jax.lax.shift_right_arithmetic(-low, jnp.int32(12))
  return -jax.lax.shift_right_arithmetic(inner, jnp.int32(12))


@jax.jit
def _row_params(logit16, mean64, ls32, exp_table, inv_m, inv_e):
  """Step 1 of the module doc: [N, K] int32 parameters -> (w', mean64, m, e), each [N, K]."""
  logit16 = jnp.clip(logit16, LOGIT16_MIN, LOGIT16_MAX)
  r = jnp.max(logit16, axis=-1, keepdims=True) - logit16                # [0, 2^21]
  w = _gather(exp_table, jnp.minimum(r, exp_table.shape[0] - 1))        # [0, 2^14]
  total = jnp.sum(w, axis=-1, keepdims=True)                            # [2^14, K 2^14]
  w_q14 = jax.lax.div(jax.lax.shift_left(w, jnp.int32(WEIGHT_BITS)), total)   # w << 14 <= 2^28
  deficit = (1 << WEIGHT_BITS) - jnp.sum(w_q14, axis=-1, keepdims=True)       # [0, K)
  is_max = (r == 0).astype(jnp.int32)
  first_max = (is_max == 1) & (jnp.cumsum(is_max, axis=-1) == 1)
  w_q14 = w_q14 + jnp.where(first_max, deficit, 0)
  ls_index = jnp.clip(ls32, LS32_MIN, LS32_MAX) - LS32_MIN
  return (w_q14, jnp.clip(mean64, MEAN64_MIN, MEAN64_MAX), _gather(inv_m, ls_index),
          _gather(inv_e, ls_index))


def _sigmoid_q16(sigmoid_core: jax.Array, u_q12: jax.Array) -> jax.Array:
  """SIGMOID_TABLE[clip(u_q12, -2^16, 2^16) + 2^16] from SIGMOID_CORE, int32 in [0, 2^16]."""
  sat = (sigmoid_core.shape[0] - 1) // 2
  return _gather(sigmoid_core, jnp.clip(u_q12 + sat, 0, 2 * sat))   # |u_q12| < 2^28: no wrap


def _cdf_at(w_q14, mean64, inv_m, inv_e, sigmoid_core, j, num_bins: int):
  """Steps 2-3 at chosen edges: per-row (w', mean64, m, e) [N, K] and edge indices j ([N, E] or
  [1, E] int32 in [0, A]) -> [N, E] int32 c_j (c_0 = 0, c_A = 2^24). The one formula of every
  table and interval builder, so they agree bit for bit."""
  edge64 = 64 * j - 32
  cdf_q30 = jnp.zeros((), jnp.int32)
  for k in range(w_q14.shape[-1]):  # unrolled: one fused elementwise loop over [N, E]
    d = edge64 - mean64[:, k:k + 1]                                     # |d| < 2^16
    u_q12 = jax.lax.shift_right_arithmetic(d * inv_m[:, k:k + 1], inv_e[:, k:k + 1])
    cdf_q30 = cdf_q30 + w_q14[:, k:k + 1] * _sigmoid_q16(sigmoid_core, u_q12)   # <= 2^30
  c = jax.lax.shift_right_arithmetic(cdf_q30, jnp.int32(30 - PRECISION_BITS))   # [0, 2^24]
  return jnp.where(j == 0, 0, jnp.where(j == num_bins, TOTAL_FREQUENCY, c))


@functools.partial(jax.jit, static_argnames=("num_bins",))
def _integer_cdf(w_q14, mean64, inv_m, inv_e, sigmoid_core, num_bins: int):
  """Steps 2-3: per-row (w', mean64, m, e) [N, K] -> [N, A + 1] int32 c_j, c_0 = 0 <= c_1 <= ...
  <= c_A = 2^24. sigmoid_core: SIGMOID_CORE of `_device_tables`."""
  # All A + 1 edges in one fused loop (j = 0 and j = A are computed like the others, |d| < 2^16
  # still holds, and then replaced): cheaper than concatenating the end columns.
  j = jnp.arange(num_bins + 1, dtype=jnp.int32)[None, :]
  return _cdf_at(w_q14, mean64, inv_m, inv_e, sigmoid_core, j, num_bins)


def _cumulative(cdf: jax.Array, j: jax.Array, num_bins: int) -> jax.Array:
  """Step 4: c_j at edges j -> C'_j = c_j - ceil(c_j A / 2^24) + j (int32, same shape)."""
  return cdf - _ceil_mul_div_total(cdf, num_bins) + j


@jax.jit
def _frequencies(cdf: jax.Array) -> jax.Array:
  """Steps 4-5: [N, A + 1] int32 c_j -> [N, A] float32 q_i - 1 (exact, q_i >= 1).

  Step 4 is done here rather than in `_integer_cdf` because this pass is memory bound: its
  few vector ops (done twice, for C'_j and C'_{j+1}) are nearly free, while the gather loop
  there is not.
  """
  num_bins = cdf.shape[1] - 1
  j = jnp.arange(num_bins + 1, dtype=jnp.int32)[None, :]
  cdf = _cumulative(cdf, j, num_bins)                                  # C'_j
  return (cdf[:, 1:] - cdf[:, :-1] - 1).astype(jnp.float32)


def _check_num_bins(num_bins: int) -> None:
  if not 2 <= num_bins <= MAX_NUM_BINS:
    raise ValueError(f"num_bins must be in [2, {MAX_NUM_BINS}], got {num_bins}")


def integer_frequencies(logit16: jax.Array, mean64: jax.Array, ls32: jax.Array,
                        num_bins: int) -> jax.Array:
  """Integer frequencies (minus one) of discretized logistic mixtures, bit-exact everywhere.

  Args:
    logit16, mean64, ls32: [N, K] int32 parameters on the grids of the module doc (clamped
      inside).
    num_bins: A, the alphabet size (2..256).
  Returns:
    [N, A] float32 holding q_i - 1, q_i >= 1, sum_i q_i = 2^24 per row (`coding.entropy`'s
    convention).
  """
  _check_num_bins(num_bins)
  t = _device_tables()
  row = _row_params(jnp.asarray(logit16, jnp.int32), jnp.asarray(mean64, jnp.int32),
                    jnp.asarray(ls32, jnp.int32), t["EXP_TABLE"], t["INV_SCALE_M"],
                    t["INV_SCALE_E"])
  return _frequencies(_integer_cdf(*row, t["SIGMOID_CORE"], num_bins=num_bins))


def integer_cdf(logit16: jax.Array, mean64: jax.Array, ls32: jax.Array,
                num_bins: int) -> jax.Array:
  """[N, K] int32 parameters -> [N, A + 1] int32 c_j of step 3 (0 = c_0 <= ... <= c_A = 2^24)."""
  _check_num_bins(num_bins)
  t = _device_tables()
  row = _row_params(jnp.asarray(logit16, jnp.int32), jnp.asarray(mean64, jnp.int32),
                    jnp.asarray(ls32, jnp.int32), t["EXP_TABLE"], t["INV_SCALE_M"],
                    t["INV_SCALE_E"])
  return _integer_cdf(*row, t["SIGMOID_CORE"], num_bins=num_bins)


def _coupled_mean64(base64, coeff16, x_prev, coeff_table, channel: int):
  """Traceable body of `coupled_mean64`."""
  def lam(i):  # lambda_q of coupling pair i, [N, K] in [0, 2^12]
    return _gather(coeff_table, jnp.clip(coeff16[:, i, :], COEFF16_MIN, COEFF16_MAX)
                   - COEFF16_MIN)

  def term(i, c_prev):  # round(64 lambda x) = (lambda_q x + 32) >> 6; lambda_q x <= 2^20
    x = jnp.clip(x_prev[:, c_prev:c_prev + 1], 0, PIXEL_MAX)
    return jax.lax.shift_right_arithmetic(lam(i) * x + 32, jnp.int32(6))

  # base64 is clipped first so the sum stays in [-2^15, 2^15 - 1 + 2 * 16320] (each term is at
  # most (4096 * 255 + 32) >> 6 = 16320); the builder clamps it again.
  mean = jnp.clip(base64[:, channel, :], MEAN64_MIN, MEAN64_MAX)
  if channel == 1:
    mean = mean + term(0, 0)
  elif channel == 2:
    mean = mean + term(1, 0) + term(2, 1)
  return mean


@functools.partial(jax.jit, static_argnames=("channel",))
def _coupled_mean64_jit(base64, coeff16, x_prev, coeff_table, channel):
  return _coupled_mean64(base64, coeff16, x_prev, coeff_table, channel)


def coupled_mean64(base64: jax.Array, coeff16: jax.Array, x_prev: jax.Array,
                   channel: int) -> jax.Array:
  """mean64 of RGB channel `channel` with the integer R->G->B coupling.

  mean64_c = base64_c + sum_{c' < c} ((lambda_q(c, c') x_c' + 32) >> 6), lambda_q from
  COEFF_TABLE (Q12), i.e. 64 lambda x rounded (half up); coupling pairs as in
  `dmll.coupled_means`: coefficient 0 = G from R, 1 = B from R, 2 = B from G.

  Args:
    base64: [N, 3, K] int32 uncoupled means (1/64 pixel), per target channel.
    coeff16: [N, 3, K] int32 raw coupling logits * 16, per coupling pair (clamped inside).
    x_prev: [N, 3] int32 pixel values; only channels < `channel` are read (clipped to 0..255).
    channel: 0 (R), 1 (G) or 2 (B).
  Returns:
    [N, K] int32 mean64 (not yet clamped to the builder's range; the builder does that).
  """
  return _coupled_mean64_jit(jnp.asarray(base64, jnp.int32), jnp.asarray(coeff16, jnp.int32),
                             jnp.asarray(x_prev, jnp.int32), _device_tables()["COEFF_TABLE"],
                             channel=channel)


# ---------------------------------------------------------------------------------------------
# Chunked iterators over head rows (chunks, padding and prefetch from `coding.tables`).

def _exact_int(x: jax.Array) -> jax.Array:
  """float32 exact integers -> int32 (NaN -> 0, clip to +-2^24, round half even: one result)."""
  x = jnp.clip(jnp.where(jnp.isnan(x), 0.0, x), -_FLOAT_INPUT_LIMIT, _FLOAT_INPUT_LIMIT)
  return jnp.round(x).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("channel", "num_mixtures", "chunk"))
def _pixel_params(head_rows, x_prev_rows, start, exp_table, inv_m, inv_e, coeff_table, *,
                  channel, num_mixtures, chunk):
  """Step 1 for pixel channel `channel`, rows start..start+chunk-1: (w', mean64, m, e), each
  [chunk, K]."""
  head = _exact_int(jax.lax.dynamic_slice_in_dim(head_rows, start, chunk, axis=0))
  x_prev = _exact_int(jax.lax.dynamic_slice_in_dim(x_prev_rows, start, chunk, axis=0))
  p = head.reshape(chunk, 4, 3, num_mixtures)
  mean64 = _coupled_mean64(p[:, 1], p[:, 3], x_prev, coeff_table, channel)
  return _row_params(p[:, 0, channel], mean64, p[:, 2, channel], exp_table, inv_m,
                                 inv_e)


@functools.partial(jax.jit, static_argnames=("num_channels", "num_mixtures", "chunk"))
def _latent_params(head_rows, start, exp_table, inv_m, inv_e, *, num_channels, num_mixtures,
                   chunk):
  """Step 1 for latent rows: (w', mean64, m, e), each [chunk * C_q, K] in (position, channel)
  order."""
  head = _exact_int(jax.lax.dynamic_slice_in_dim(head_rows, start, chunk, axis=0))
  p = head.reshape(chunk, 3, num_channels, num_mixtures)
  flat = lambda a: a.reshape(chunk * num_channels, num_mixtures)
  return _row_params(flat(p[:, 0]), flat(p[:, 1]), flat(p[:, 2]), exp_table, inv_m,
                                 inv_e)




def _table(row, num_bins: int) -> jax.Array:
  return _frequencies(_integer_cdf(*row, _device_tables()["SIGMOID_CORE"], num_bins=num_bins))


def pixel_tables(head_rows: jax.Array, x_prev_rows: jax.Array, num_rows: int, channel: int,
                 config: L3CConfig) -> Iterator[Tuple[int, np.ndarray]]:
  """Tables of one pixel channel, chunk by chunk (chunks, padding and prefetch of
  `coding.tables`).

  Args:
    head_rows: [n_pad, 12 K] float32 exact integers in the dmll head layout
      (p * 3K + c K + k; p = 0 logit16, 1 base64, 2 ls32, 3 coeff16), raster order (from
      `tables.to_rows`).
    x_prev_rows: [n_pad, 3] float32 pixel values; channels < `channel` hold the coded values,
      the others must be 0 (the encoder and the decoder pass identical arrays).
    num_rows: number of valid rows n (pixels).
    channel: 0 (R), 1 (G) or 2 (B).
  Yields:
    (start, table) with table [m, 256] float32 for rows start..start+m-1.
  """
  chunk = tables.chunk_rows_for(num_rows)
  num_chunks = -(-num_rows // chunk)
  t = _device_tables()
  compute = lambda i: _table(_pixel_params(
      head_rows, x_prev_rows, np.int32(i * chunk), t["EXP_TABLE"], t["INV_SCALE_M"],
      t["INV_SCALE_E"], t["COEFF_TABLE"], channel=channel, num_mixtures=config.num_mixtures,
      chunk=chunk), 256)
  for i, table in enumerate(tables.prefetched(compute, num_chunks)):
    start = i * chunk
    yield start, np.asarray(table)[:min(chunk, num_rows - start)]


@functools.partial(jax.jit, static_argnames=("channel", "num_mixtures"))
def _pixel_chunk_params(head_rows, x_prev_chunk, start, exp_table, inv_m, inv_e, coeff_table, *,
                        channel, num_mixtures):
  """`_pixel_params` with the chunk's x_prev rows given [chunk, 3] instead of sliced from the
  whole array (same ops on the same values, so the same integers)."""
  chunk = x_prev_chunk.shape[0]
  head = _exact_int(jax.lax.dynamic_slice_in_dim(head_rows, start, chunk, axis=0))
  p = head.reshape(chunk, 4, 3, num_mixtures)
  mean64 = _coupled_mean64(p[:, 1], p[:, 3], _exact_int(x_prev_chunk), coeff_table, channel)
  return _row_params(p[:, 0, channel], mean64, p[:, 2, channel], exp_table, inv_m, inv_e)


def pixel_table_chunk(head_rows: jax.Array, x_prev_chunk: np.ndarray, start: int, channel: int,
                      config: L3CConfig) -> jax.Array:
  """The table of one chunk of one pixel channel, dispatched asynchronously (a device array).

  Args:
    head_rows: as for `pixel_tables`.
    x_prev_chunk: [chunk, 3] float32 pixel values of rows start..start+chunk-1 (channels <
      `channel` coded, the others 0), so the chunk's table can be computed as soon as the same
      rows of the earlier channels are decoded (the decoder pipelines channels this way).
    start: the chunk's first row.
  Returns:
    [chunk, 256] float32 (rows beyond the valid ones are padding).
  """
  t = _device_tables()
  return _table(_pixel_chunk_params(
      head_rows, x_prev_chunk, np.int32(start), t["EXP_TABLE"], t["INV_SCALE_M"],
      t["INV_SCALE_E"], t["COEFF_TABLE"], channel=channel,
      num_mixtures=config.num_mixtures), 256)


# ---------------------------------------------------------------------------------------------
# Window coding of pixel symbols (format version 4; `codec` says how the stream is ordered).
#
# A pixel row's 256 bins are partitioned into W + 2 entries around the mixture's centre:
#   entry 0:      bins 0 .. t               interval [0, C'_{t+1})
#   entry k:      bin t + k, k = 1 .. W     interval [C'_{t+k}, C'_{t+k+1})
#   entry W + 1:  bins t + W + 1 .. 255     interval [C'_{t+W+1}, 2^24)
# with t = `_window_offsets` in [0, 254 - W], so every entry holds at least one bin and q >= 1.
# The intervals are those of the whole table (same `_cdf_at` / `_cumulative` integers at W + 1
# edges), so a symbol inside the window codes exactly as with the whole table. An entry 0 or
# W + 1 holding several bins is an ESCAPE: the symbol is then coded a second time, with the
# escape's bins' own frequencies rescaled to the coder's total (`escape_frequencies`), later in
# the same stream. Cost: the escape's interval times the rescaled one is the symbol's q_s / 2^24
# up to the rescaling's rounding (< 2.2e-5 bits per escape), so the file is the whole tables'
# size but for the range coder's few more bits per substream; the decoder builds W + 1 edges per row instead of 257, and the range coder
# scans W + 2 entries instead of 256. The decoder builds whole rows only for escapes, in NumPy
# int64 (`full_rows`), from the same per-row parameters; the encoder does the same.

WINDOW_BINS = 64   # W (format version 4). 64 bins: 0.5 % (kodim23) / 3.4 % (kodim13) escapes


def _window_offsets(w_q14, mean64):
  """t [N] int32 in [0, 254 - W]: the window of bins t + 1 .. t + W centred on the weighted
  mixture mean (sum_k w'_k mean64_k) >> 14 (|w'_k mean64_k| <= 2^14 2^15 and sum_k w'_k = 2^14:
  the sum stays within 2^29, no wrap)."""
  centre64 = jax.lax.shift_right_arithmetic(jnp.sum(w_q14 * mean64, axis=-1), jnp.int32(14))
  centre = jax.lax.shift_right_arithmetic(centre64 + 32, jnp.int32(6))
  return jnp.clip(centre - WINDOW_BINS // 2 - 1, 0, 254 - WINDOW_BINS)


def window_symbols(entries: np.ndarray, offsets: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Decoded window entries [n] and their rows' t [n] -> (symbols t + entry, escaped) numpy
  [n] each; an escaped row's symbol is read again (`escape_frequencies`)."""
  entries = np.asarray(entries, np.int32)
  offsets = np.asarray(offsets, np.int32)
  escaped = (((entries == 0) & (offsets > 0))
             | ((entries == WINDOW_BINS + 1) & (offsets < 254 - WINDOW_BINS)))
  return offsets + entries, escaped


@jax.jit
def _window_offsets_jit(w_q14, mean64):
  return _window_offsets(w_q14, mean64)


@jax.jit
def _window_cdf(w_q14, mean64, inv_m, inv_e, sigmoid_core, offsets):
  """c_j [N, W + 1] at the window's edges j = t + 1 .. t + W + 1. Three calls (offsets, this,
  `_window_frequencies`) because in one fusion XLA recomputed the per-row work per entry (the
  window then cost about what whole tables do; measured 7-20x slower on an earlier version)."""
  j = offsets[:, None] + 1 + jnp.arange(WINDOW_BINS + 1, dtype=jnp.int32)[None, :]
  return _cdf_at(w_q14, mean64, inv_m, inv_e, sigmoid_core, j, 256)


@jax.jit
def _window_frequencies(cdf, offsets):
  """[N, W + 1] c_j at the window's edges -> [N, W + 2] float32 q - 1 of the window table."""
  j = offsets[:, None] + 1 + jnp.arange(WINDOW_BINS + 1, dtype=jnp.int32)[None, :]
  cum = _cumulative(cdf, j, 256)
  freq = jnp.concatenate([cum[:, :1], cum[:, 1:] - cum[:, :-1], TOTAL_FREQUENCY - cum[:, -1:]],
                         axis=1)
  return (freq - 1).astype(jnp.float32)


def pixel_window_chunk(head_rows: jax.Array, x_prev_chunk: np.ndarray, start: int,
                       channel: int, config: L3CConfig):
  """Window tables of one chunk of one pixel channel, dispatched asynchronously.

  Args: as for `pixel_table_chunk`.
  Returns:
    (table [chunk, W + 2] float32 q - 1, t [chunk] int32, row) as device arrays; row = the
    per-row (w', mean64, m, e) [chunk, K] int32, for `full_rows` of escaped rows.
  """
  t = _device_tables()
  row = _pixel_chunk_params(
      head_rows, x_prev_chunk, np.int32(start), t["EXP_TABLE"], t["INV_SCALE_M"],
      t["INV_SCALE_E"], t["COEFF_TABLE"], channel=channel, num_mixtures=config.num_mixtures)
  offsets = _window_offsets_jit(row[0], row[1])
  table = _window_frequencies(_window_cdf(*row, t["SIGMOID_CORE"], offsets), offsets)
  return table, offsets, row


FULL_ROWS_SIZES = (64, 256, 1024, 4096)   # padded row counts of `full_rows` (few compiles)
# Fewer rows than this are built on the host (`_full_rows_host`): a jitted call costs ~0.6 ms
# of dispatch on the 2-core development CPU, the host ~7 us per row; the decoder's blocks
# mostly have a few dozen escapes.
HOST_FULL_ROWS_MAX = 48


def full_rows(row, index) -> np.ndarray:
  """Whole 256-bin frequencies q of rows `index` of per-row params `row` ((w', mean64, m, e),
  arrays [N, K] int32, device or NumPy) -> [len(index), 256] int64, q >= 1, rows summing to
  2^24: the integers of the whole tables. Up to HOST_FULL_ROWS_MAX rows in NumPy
  (`_full_rows_host`), more with the same jitted `_integer_cdf` + `_frequencies` as the whole
  tables on the gathered rows padded to a size of FULL_ROWS_SIZES (4096 rows per call)."""
  rows = tuple(np.asarray(a)[index] for a in row)
  n = rows[0].shape[0]
  if n <= HOST_FULL_ROWS_MAX:
    return _full_rows_host(rows)
  out = []
  for start in range(0, n, FULL_ROWS_SIZES[-1]):
    part = tuple(a[start:start + FULL_ROWS_SIZES[-1]] for a in rows)
    m = part[0].shape[0]
    size = next(s for s in FULL_ROWS_SIZES if s >= m)
    padded = tuple(np.pad(a, ((0, size - m), (0, 0))) for a in part)
    out.append(np.asarray(_table(padded, 256))[:m].astype(np.int64) + 1)
  return np.concatenate(out)


def _full_rows_host(row) -> np.ndarray:
  """`full_rows` of all rows of NumPy int32 params [n, K], in NumPy by the steps of the module
  doc with their bounds (int32 through step 3, int64 for step 4, whose c_j A reaches 2^32)."""
  w, mean, m, e = row
  core, edge64, j = _host_constants()
  sat = (core.shape[0] - 1) // 2
  u = (edge64 - mean[:, :, None]) * m[:, :, None]                     # [n, K, 257], < 2^28
  np.right_shift(u, e[:, :, None], out=u)
  u += sat
  np.clip(u, 0, 2 * sat, out=u)
  s = core.take(u)                                                      # S_kj in [0, 2^16]
  s *= w[:, :, None]                                                    # <= 2^30
  c = s.sum(1, dtype=np.int64) >> (30 - PRECISION_BITS)                 # c_j in [0, 2^24]
  c[:, 0], c[:, -1] = 0, TOTAL_FREQUENCY
  cum = c + ((-c * 256) >> PRECISION_BITS) + j       # c - ceil(256 c / 2^24) + j (step 4)
  return np.diff(cum, axis=1)


@functools.lru_cache(maxsize=None)
def _host_constants() -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """SIGMOID_CORE, the edges 64 j - 32 (int32) and j = 0..256 (int64), for `_full_rows_host`."""
  table = load_tables()["SIGMOID_TABLE"]
  sat = sigmoid_saturation(table)
  j = np.arange(257, dtype=np.int64)
  return (table[U_MAX_Q - sat:U_MAX_Q + sat + 1].astype(np.int32),
          (64 * j - 32).astype(np.int32), j)


def escape_frequencies(q: np.ndarray, offsets: np.ndarray, high: np.ndarray) -> np.ndarray:
  """The table an escaped symbol is coded with the second time: its escape's bins only.

  Args:
    q: [n, 256] int64 whole-row frequencies (`full_rows`), q_i >= 1.
    offsets: [n] the rows' t; high: [n] bool, True for escapes into entry W + 1 (bins
      t + W + 1 .. 255), False for entry 0 (bins 0 .. t).
  Returns:
    [n, 256] int64 r, sum 2^24 per row, r_i >= 1: r_i = 1 outside the escape's n_b bins;
    inside, r_i = 1 + (q_i (2^24 - 256)) // Q with Q = their sum of q_i (the escape entry's
    frequency), and the remainder added to the first bin of largest q. So r_i / 2^24 >=
    (q_i / Q) (1 - 2^-16): the escape's interval Q / 2^24 times r_s / 2^24 codes a symbol at
    most log2(2^24 / (2^24 - 256)) = 2.2e-5 bits above its whole-table q_s / 2^24.
    Bounds: q_i (2^24 - 256) < 2^48 in int64; the bins' r sum to at most 2^24 - 256 + n_b, so
    the remainder is >= 0.
  """
  q = np.asarray(q, np.int64)
  n = q.shape[0]
  i = np.arange(256)[None, :]
  t = np.asarray(offsets, np.int64)[:, None]
  inside = np.where(np.asarray(high)[:, None], i > t + WINDOW_BINS, i <= t)
  weight = np.where(inside, q, 0)
  r = np.where(inside, 1 + weight * (TOTAL_FREQUENCY - 256) // weight.sum(1, keepdims=True), 1)
  r[np.arange(n), np.argmax(weight, axis=1)] += TOTAL_FREQUENCY - r.sum(1)
  return r


@functools.partial(jax.jit, static_argnames=("num_channels", "num_mixtures"))
def _pixel_window_intervals(head, symbols, exp_table, inv_m, inv_e, coeff_table, sigmoid_core,
                            *, num_channels, num_mixtures):
  """The encoder's side of window coding: pixel symbols [N, 3] under snapped head params
  [N, 12 K] -> (left, freq, t) [N, C] int32 (each symbol's window entry's interval: its own
  interval when inside the window, its escape's otherwise; the rows' t) and, per channel, the
  per-row (w', mean64, m, e) [N, K] (for `full_rows` of the escapes)."""
  n = head.shape[0]
  p = _exact_int(head_units(head, True)).reshape(n, 4, 3, num_mixtures)
  left, freq, offsets, rows = [], [], [], []
  for ch in range(num_channels):
    mean64 = _coupled_mean64(p[:, 1], p[:, 3], symbols, coeff_table, ch)
    row = _row_params(p[:, 0, ch], mean64, p[:, 2, ch], exp_table, inv_m, inv_e)
    t = _window_offsets(row[0], row[1])
    s = symbols[:, ch]
    below, above = s <= t, s > t + WINDOW_BINS
    lo = jnp.where(below, 0, jnp.where(above, t + WINDOW_BINS + 1, s))
    hi = jnp.where(below, t + 1, jnp.where(above, 256, s + 1))
    j = jnp.stack([lo, hi], axis=-1)
    cum = _cumulative(_cdf_at(*row, sigmoid_core, j, 256), j, 256)
    left.append(cum[:, 0])
    freq.append(cum[:, 1] - cum[:, 0])
    offsets.append(t)
    rows.append(row)
  return tuple(jnp.stack(a, axis=-1) for a in (left, freq, offsets)) + (tuple(rows),)


def pixel_window_intervals(head: jax.Array, symbols: jax.Array, num_channels: int,
                           config: L3CConfig):
  """Where each known pixel symbol lies in its window table (the decoder's
  `pixel_window_chunk`), without building the table.

  Args: as for `pixel_intervals`.
  Returns:
    (left, freq, t, rows): left, freq, t [n, num_channels] int32 numpy: the interval of the
    symbol's window entry and the row's t (`window_symbols` tells escapes: symbol <= t with
    t > 0, or symbol > t + W with t < 254 - W); rows[c] = channel c's per-row
    (w', mean64, m, e) [n, K] int32 (device arrays), the integers `pixel_window_chunk` gives
    the decoder for the same rows, for `full_rows`.
  """
  t = _device_tables()
  *out, rows = _pixel_window_intervals(
      jnp.reshape(head, (-1, head.shape[-1])), jnp.reshape(symbols, (-1, 3)).astype(jnp.int32),
      t["EXP_TABLE"], t["INV_SCALE_M"], t["INV_SCALE_E"], t["COEFF_TABLE"], t["SIGMOID_CORE"],
      num_channels=num_channels, num_mixtures=config.num_mixtures)
  return tuple(np.asarray(a) for a in out) + (rows,)


def latent_tables(head_rows: jax.Array, num_positions: int, config: L3CConfig
                  ) -> Iterator[Tuple[int, np.ndarray]]:
  """Tables of one latent scale, chunk by chunk (chunks, padding and prefetch of
  `coding.tables`).

  Args:
    head_rows: [n_pad, 3 C_q K] float32 exact integers in the dmll head layout
      (p * C_q K + c K + k; p = 0 logit16, 1 mean64, 2 ls32), raster order.
    num_positions: number of valid positions n; symbols are ordered (position, channel).
  Yields:
    (start, table): table [m * C_q, L] float32 for positions start..start+m-1.
  """
  c = config.latent_channels
  chunk = tables.latent_chunk_positions(num_positions, config)
  num_chunks = -(-num_positions // chunk)
  num_bins = config.num_levels
  _check_num_bins(num_bins)
  t = _device_tables()
  compute = lambda i: _table(_latent_params(
      head_rows, np.int32(i * chunk), t["EXP_TABLE"], t["INV_SCALE_M"], t["INV_SCALE_E"],
      num_channels=c, num_mixtures=config.num_mixtures, chunk=chunk), num_bins)
  for i, table in enumerate(tables.prefetched(compute, num_chunks)):
    start = i * chunk
    yield start, np.asarray(table)[:min(chunk, num_positions - start) * c]


# ---------------------------------------------------------------------------------------------
# Intervals of known symbols (the encoder): two edges per symbol instead of A + 1.
#
# The range coder only uses, per symbol s, its interval [C'_s, C'_s + q_s) of the 2^24 total
# (`coding.tables.interval_tables`), so the encoder, which knows s, needs c_j at j = s and
# s + 1 only: the same `_cdf_at` and `_cumulative` as the full tables, at two edges per row.

def head_units(head: jax.Array, coupled: bool) -> jax.Array:
  """Exact head parameters (`fixed_point.snap_mixture`) -> the same values in this module's
  integer units (logit16, mean64, ls32 and, coupled, coeff16), still float32: products of values
  on those grids with powers of two, so exact. [..., P C K] -> same shape."""
  grids = [fixed_point.LOGIT_FRAC_BITS, fixed_point.MEAN_FRAC_BITS,
           fixed_point.LOG_SCALE_FRAC_BITS] + ([fixed_point.COEFF_FRAC_BITS] if coupled else [])
  per = head.shape[-1] // len(grids)
  return head * np.repeat(np.exp2(np.asarray(grids, np.float32)), per)


def _interval(row, symbols: jax.Array, sigmoid_core, num_bins: int):
  """(C'_s, q_s) [N] int32 of symbols [N] under per-row params `row` ((w', mean64, m, e))."""
  j = jnp.stack([symbols, symbols + 1], axis=-1)                       # [N, 2] in [0, A]
  cum = _cumulative(_cdf_at(*row, sigmoid_core, j, num_bins), j, num_bins)
  return cum[:, 0], cum[:, 1] - cum[:, 0]


@functools.partial(jax.jit, static_argnames=("num_channels", "num_mixtures"))
def _pixel_intervals(head, symbols, exp_table, inv_m, inv_e, coeff_table, sigmoid_core, *,
                     num_channels, num_mixtures):
  """Intervals of the pixel symbols [N, 3] (channels >= num_channels ignored) under snapped
  head params [N, 12 K] -> (left [N, C], freq [N, C]) int32, C = num_channels."""
  n = head.shape[0]
  p = _exact_int(head_units(head, True)).reshape(n, 4, 3, num_mixtures)
  left, freq = [], []
  for ch in range(num_channels):  # x_prev: channel ch reads only channels < ch of the symbols
    mean64 = _coupled_mean64(p[:, 1], p[:, 3], symbols, coeff_table, ch)
    row = _row_params(p[:, 0, ch], mean64, p[:, 2, ch], exp_table, inv_m, inv_e)
    l, q = _interval(row, symbols[:, ch], sigmoid_core, 256)
    left.append(l)
    freq.append(q)
  return jnp.stack(left, axis=-1), jnp.stack(freq, axis=-1)


@functools.partial(jax.jit, static_argnames=("num_channels", "num_mixtures", "num_bins"))
def _latent_intervals(head, symbols, exp_table, inv_m, inv_e, sigmoid_core, *, num_channels,
                      num_mixtures, num_bins):
  """Intervals of latent symbols [N, C_q] under snapped head params [N, 3 C_q K] ->
  (left, freq) [N * C_q] int32 in (position, channel) order."""
  n = head.shape[0]
  p = _exact_int(head_units(head, False)).reshape(n, 3, num_channels, num_mixtures)
  flat = lambda a: a.reshape(n * num_channels, num_mixtures)
  row = _row_params(flat(p[:, 0]), flat(p[:, 1]), flat(p[:, 2]), exp_table, inv_m, inv_e)
  return _interval(row, symbols.reshape(-1), sigmoid_core, num_bins)


def pixel_intervals(head: jax.Array, symbols: jax.Array, num_channels: int, config: L3CConfig
                    ) -> Tuple[np.ndarray, np.ndarray]:
  """Where each known pixel symbol lies in its integer table, without building the table.

  Args:
    head: [..., 12 K] snapped head params (`fixed_point.snap_mixture`, pixel layout), one row
      per pixel in raster order (any leading shape, flattened).
    symbols: [..., 3] int32 pixel values (the network's RGB view; gray: R = G = B).
    num_channels: channels coded (1 gray, 3 RGB).
  Returns:
    (left, freq): [n, num_channels] int32 numpy: C'_s and q_s of the table `pixel_tables` would
    build for that pixel and channel (identical integers: same formulas).
  """
  t = _device_tables()
  k = config.num_mixtures
  left, freq = _pixel_intervals(
      jnp.reshape(head, (-1, head.shape[-1])), jnp.reshape(symbols, (-1, 3)).astype(jnp.int32),
      t["EXP_TABLE"], t["INV_SCALE_M"], t["INV_SCALE_E"], t["COEFF_TABLE"], t["SIGMOID_CORE"],
      num_channels=num_channels, num_mixtures=k)
  return np.asarray(left), np.asarray(freq)


def latent_intervals(head: jax.Array, symbols: jax.Array, config: L3CConfig
                     ) -> Tuple[np.ndarray, np.ndarray]:
  """`pixel_intervals` for a latent step: head [..., 3 C_q K], symbols [..., C_q] ->
  (left, freq) [n * C_q] int32 numpy in (position, channel) order."""
  _check_num_bins(config.num_levels)
  t = _device_tables()
  c = config.latent_channels
  left, freq = _latent_intervals(
      jnp.reshape(head, (-1, head.shape[-1])), jnp.reshape(symbols, (-1, c)).astype(jnp.int32),
      t["EXP_TABLE"], t["INV_SCALE_M"], t["INV_SCALE_E"], t["SIGMOID_CORE"], num_channels=c,
      num_mixtures=config.num_mixtures, num_bins=config.num_levels)
  return np.asarray(left), np.asarray(freq)


def _main() -> None:
  """python -m l3c_jax.coding.exact_tables: (re)writes numerics_v1.npz and prints its sha256."""
  import pathlib  # pylint: disable=g-import-not-at-top
  t = generate_tables()
  _check_tables(t)
  data = tables_file_bytes(t)
  path = pathlib.Path(__file__).with_name(TABLES_FILE)
  path.write_bytes(data)
  print(path, len(data), "bytes, sha256", hashlib.sha256(data).hexdigest())


if __name__ == "__main__":
  _main()
