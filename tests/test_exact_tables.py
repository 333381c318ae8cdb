"""Tests of `coding.exact_tables` (numerics v1): exactness, validity, accuracy, determinism."""

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from l3c_jax.coding import entropy
from l3c_jax.coding import exact_tables as et
from l3c_jax.coding import tables as float_tables
from l3c_jax.models.config import L3CConfig

TOTAL = 1 << 24
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- references -------------------------------------------------------------------------------

def reference_cdf(logit16, mean64, ls32, num_bins):
  """The builder's steps 1-4 in NumPy int64 (no wrap possible): [N, A + 1] C'_j."""
  t = et.load_tables()
  logit16 = np.clip(np.asarray(logit16, np.int64), et.LOGIT16_MIN, et.LOGIT16_MAX)
  r = logit16.max(-1, keepdims=True) - logit16
  w = t["EXP_TABLE"].astype(np.int64)[np.minimum(r, len(t["EXP_TABLE"]) - 1)]
  wq = (w << 14) // w.sum(-1, keepdims=True)
  first = np.argmax(logit16, -1)
  wq[np.arange(len(wq)), first] += (1 << 14) - wq.sum(-1)
  ls = np.clip(np.asarray(ls32, np.int64), et.LS32_MIN, et.LS32_MAX) - et.LS32_MIN
  m = t["INV_SCALE_M"].astype(np.int64)[ls][..., None]
  e = t["INV_SCALE_E"].astype(np.int64)[ls][..., None]
  mean = np.clip(np.asarray(mean64, np.int64), et.MEAN64_MIN, et.MEAN64_MAX)[..., None]
  j = np.arange(num_bins + 1)
  u = np.clip(((64 * j - 32) - mean) * m >> e, -(1 << 16), 1 << 16)       # [N, K, A + 1]
  s = t["SIGMOID_TABLE"].astype(np.int64)[u + (1 << 16)]
  c = (wq[..., None] * s).sum(1) >> 6
  c[:, 0], c[:, -1] = 0, TOTAL
  return c + ((-c * num_bins) >> 24) + j                                  # c - ceil(cA/2^24) + j


def oracle_pmf(logit16, mean64, ls32, num_bins):
  """float64 PMF of the discretized logistic mixture with the snapped (clamped) parameters."""
  logits = np.clip(np.asarray(logit16, np.float64), et.LOGIT16_MIN, et.LOGIT16_MAX) / 16
  pi = np.exp(logits - logits.max(-1, keepdims=True))
  pi /= pi.sum(-1, keepdims=True)
  mu = np.clip(np.asarray(mean64, np.float64), et.MEAN64_MIN, et.MEAN64_MAX) / 64
  s = np.exp(np.clip(np.asarray(ls32, np.float64), et.LS32_MIN, et.LS32_MAX) / 32)
  edges = np.arange(1, num_bins) - 0.5
  z = (edges - mu[..., None]) / s[..., None]
  cdf = (pi[..., None] * 0.5 * (1 + np.tanh(z / 2))).sum(1)              # sigmoid, no overflow
  cdf = np.concatenate([np.zeros((len(cdf), 1)), cdf, np.ones((len(cdf), 1))], axis=1)
  return np.diff(cdf, axis=1)


def random_params(rng, n, k, num_bins, extreme=False):
  """int32 [n, k] (logit16, mean64, ls32): realistic, or spanning and exceeding the clamps."""
  if extreme:
    logit16 = rng.integers(-(1 << 24), 1 << 24, (n, k))
    mean64 = rng.integers(-(1 << 20), 1 << 20, (n, k))
    ls32 = rng.integers(et.LS32_MIN - 500, et.LS32_MAX + 500, (n, k))
    # corner rows: everything at (or beyond) the clamps, ties in the logits
    logit16[:8] = 0
    mean64[:4], mean64[4:8] = -(1 << 31), (1 << 31) - 1
    ls32[0:8:2], ls32[1:8:2] = -(1 << 31), (1 << 31) - 1
  else:
    logit16 = np.round(rng.normal(0, 2, (n, k)) * 16)
    mean64 = np.round(rng.uniform(-3, num_bins + 2, (n, k)) * 64)
    ls32 = np.round(np.log(rng.uniform(0.5, 20, (n, k))) * 32)
  return tuple(np.asarray(a, np.int32) for a in (logit16, mean64, ls32))


def counts(table):
  return np.asarray(table, np.float64) + 1


# --- the constant tables ----------------------------------------------------------------------

def test_shipped_tables_equal_decimal_generation():
  generated = et.generate_tables()
  shipped = et.load_tables()
  assert sorted(generated) == sorted(shipped) == sorted(et.TABLE_NAMES)
  for name in et.TABLE_NAMES:
    np.testing.assert_array_equal(generated[name], shipped[name], err_msg=name)
  # a few hand-checked values
  assert shipped["SIGMOID_TABLE"][1 << 16] == 1 << 15
  assert shipped["EXP_TABLE"][16] == round(2 ** 14 / np.e)
  assert shipped["COEFF_TABLE"][256] == 2048
  assert et.sigmoid_saturation(shipped["SIGMOID_TABLE"]) == 48266


def test_tables_file_sha_is_checked(monkeypatch):
  monkeypatch.setattr(et, "TABLES_SHA256", "0" * 64)
  et.load_tables.cache_clear()
  try:
    with pytest.raises(RuntimeError, match="sha256"):
      et.load_tables()
  finally:
    monkeypatch.undo()
    et.load_tables.cache_clear()
  assert et.load_tables()["EXP_TABLE"][0] == 1 << 14


def test_tables_file_is_package_data():
  cfg = open(os.path.join(REPO_ROOT, "setup.cfg")).read()
  assert "coding/" + et.TABLES_FILE in cfg


# --- exactness and validity -------------------------------------------------------------------

@pytest.mark.parametrize("k,num_bins", [(1, 256), (5, 256), (10, 25), (10, 256), (5, 2)])
@pytest.mark.parametrize("extreme", [False, True])
def test_matches_int64_reference_and_is_valid(k, num_bins, extreme):
  params = random_params(np.random.default_rng(k * 1000 + num_bins), 300, k, num_bins, extreme)
  table = np.asarray(et.integer_frequencies(*params, num_bins))
  assert table.dtype == np.float32 and table.shape == (300, num_bins)
  q = counts(table)
  assert q.min() >= 1
  np.testing.assert_array_equal(q.sum(1), TOTAL)
  np.testing.assert_array_equal(q, np.diff(reference_cdf(*params, num_bins), axis=1))


def test_tables_code_losslessly():
  params = random_params(np.random.default_rng(1), 2000, 5, 256)
  table = np.asarray(et.integer_frequencies(*params, 256))
  rng = np.random.default_rng(2)
  p = counts(table) / TOTAL
  symbols = np.array([rng.choice(256, p=row) for row in p], np.int32)
  data = entropy.encode_stream(symbols, table)
  np.testing.assert_array_equal(entropy.decode_stream(data, table), symbols)


# --- accuracy against the float64 oracle ------------------------------------------------------

@pytest.mark.parametrize("k,num_bins", [(5, 256), (10, 25), (1, 256)])
def test_close_to_float64_oracle(k, num_bins):
  params = random_params(np.random.default_rng(7 + k), 2000, k, num_bins)
  q = counts(et.integer_frequencies(*params, num_bins)) / TOTAL
  p = oracle_pmf(*params, num_bins)
  # Mostly step 1: the floor deficit (< K / 2^14) goes to one component. Observed max |q - p|:
  # 9e-5 (K = 1), 1.3e-4 (K = 5), 2.5e-4 (K = 10, A = 25), 2.9e-4 (K = 10, A = 256).
  assert np.abs(q - p).max() < (k + 1) / 2 ** 14 + 1e-4
  # expected code length under q of symbols drawn from p (exactly, not sampled) vs entropy
  cross_entropy = -(p * np.log2(q)).sum(1).mean()
  entropy_bits = -(p * np.log2(np.maximum(p, 1e-300))).sum(1).mean()
  # observed excess: 8e-5 (K = 1), 5e-6 (K = 5), 5e-8 (K = 10, A = 25) relative
  assert cross_entropy < entropy_bits * 1.001, (cross_entropy, entropy_bits)


def test_extreme_parameters_stay_close_to_oracle():
  params = random_params(np.random.default_rng(3), 500, 5, 256, extreme=True)
  q = counts(et.integer_frequencies(*params, 256)) / TOTAL
  # clamped means far outside, scales at both clamps: observed 1.4e-4
  assert np.abs(q - oracle_pmf(*params, 256)).max() < 6 / 2 ** 14 + 1e-4


# --- coupling and the chunked iterators -------------------------------------------------------

def test_coupled_mean64():
  rng = np.random.default_rng(4)
  n, k = 200, 3
  base64 = rng.integers(-40000, 40000, (n, 3, k)).astype(np.int32)
  coeff16 = rng.integers(-300, 300, (n, 3, k)).astype(np.int32)
  x_prev = rng.integers(-10, 270, (n, 3)).astype(np.int32)
  lam = et.COEFF_TABLE[np.clip(coeff16, -256, 256) + 256].astype(np.int64)
  x = np.clip(x_prev, 0, 255).astype(np.int64)[:, :, None]
  base = np.clip(base64, et.MEAN64_MIN, et.MEAN64_MAX).astype(np.int64)
  want = [base[:, 0],
          base[:, 1] + ((lam[:, 0] * x[:, 0] + 32) >> 6),
          base[:, 2] + ((lam[:, 1] * x[:, 0] + 32) >> 6) + ((lam[:, 2] * x[:, 1] + 32) >> 6)]
  for c in range(3):
    np.testing.assert_array_equal(et.coupled_mean64(base64, coeff16, x_prev, c), want[c])
  # the coupling is 64 * lambda * x to within rounding of lambda_q (2^-13) and the shift
  lam_float = 1 / (1 + np.exp(-coeff16[:, 0].clip(-256, 256) / 16))
  got = np.asarray(et.coupled_mean64(base64, coeff16, x_prev, 1)) - base[:, 1]
  assert np.abs(got - 64 * lam_float * x[:, 0]).max() <= 0.5 + 64 * 255 / 8192


def test_pixel_and_latent_iterators_match_direct_builder():
  config = L3CConfig(num_channels=8, num_res_blocks=1, latent_channels=2, num_mixtures=3)
  k, rng, n = config.num_mixtures, np.random.default_rng(5), 300
  head = np.concatenate([rng.integers(-64, 64, (n, 3 * k)),           # logit16
                         rng.integers(-1000, 17000, (n, 3 * k)),      # base64
                         rng.integers(-40, 100, (n, 3 * k)),          # ls32
                         rng.integers(-80, 80, (n, 3 * k))], axis=1).astype(np.float32)
  x_prev = np.zeros((n, 3), np.float32)
  x_prev[:, :2] = rng.integers(0, 256, (n, 2))
  chunk = float_tables.chunk_rows_for(n)
  pad = lambda a: np.pad(a, ((0, -n % chunk), (0, 0)))
  p = head.astype(np.int32).reshape(n, 4, 3, k)
  for c in range(3):
    got = list(et.pixel_tables(pad(head), pad(x_prev), n, c, config))
    assert [s for s, _ in got] == [0]
    mean64 = et.coupled_mean64(p[:, 1], p[:, 3], x_prev.astype(np.int32), c)
    np.testing.assert_array_equal(got[0][1],
                                  et.integer_frequencies(p[:, 0, c], mean64, p[:, 2, c], 256))
  cq = config.latent_channels
  lhead = np.concatenate([rng.integers(-64, 64, (n, cq * k)), rng.integers(-500, 2000, (n, cq * k)),
                          rng.integers(-100, 100, (n, cq * k))], axis=1).astype(np.float32)
  got = list(et.latent_tables(pad(lhead), n, config))
  lp = lhead.astype(np.int32).reshape(n, 3, cq, k).transpose(1, 0, 2, 3).reshape(3, n * cq, k)
  np.testing.assert_array_equal(got[0][1], et.integer_frequencies(*lp, config.num_levels))


# --- determinism across compiler flags and threads --------------------------------------------

_CHILD = textwrap.dedent("""
  import hashlib, sys
  import numpy as np
  from l3c_jax.coding import exact_tables as et
  rng = np.random.default_rng(11)
  h = hashlib.sha256()
  for n, k, a, lo, hi in [(512, 5, 256, -3000, 3000), (256, 10, 25, -10**6, 10**6)]:
    params = [rng.integers(lo, hi, (n, k)).astype(np.int32) for _ in range(3)]
    params[2] = (params[2] % 400 - 150).astype(np.int32)
    h.update(np.asarray(et.integer_frequencies(*params, a)).tobytes())
  base, coeff = (rng.integers(-3000, 20000, (64, 3, 5)).astype(np.int32) for _ in range(2))
  x = rng.integers(0, 256, (64, 3)).astype(np.int32)
  for c in range(3):
    h.update(np.asarray(et.coupled_mean64(base, coeff, x, c)).tobytes())
  print(h.hexdigest())
""")


def _child_digest(extra_env, prefix=()):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO_ROOT, **extra_env)
  out = subprocess.run([*prefix, sys.executable, "-c", _CHILD], env=env, capture_output=True,
                       text=True, timeout=120, check=True)
  return out.stdout.strip()


@pytest.mark.slow
def test_identical_under_xla_flags_and_one_thread():
  digests = {
      "default": _child_digest({"XLA_FLAGS": ""}),
      "fast_math": _child_digest({"XLA_FLAGS": "--xla_cpu_enable_fast_math=true"}),
      "sse4_2": _child_digest({"XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2"}),
  }
  if shutil.which("taskset"):
    digests["one_cpu"] = _child_digest({"XLA_FLAGS": ""}, prefix=("taskset", "-c", "0"))
  assert len(digests["default"]) == 64
  assert len(set(digests.values())) == 1, digests
