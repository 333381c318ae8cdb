"""Independent float64 NumPy oracles for the L3C functional core (tests only).

Written from the paper (Mentzer et al., CVPR 2019, Sec. 3.2 and 3.4) and docs/l3c_reference.md
(sections Quantizer, Mixture likelihood and coupling), not from l3c_jax: the tests compare the
float32 JAX code against these. Everything here is float64 and deliberately straightforward
(explicit loops over the few mixture components / channels are fine). No JAX import.

Head layout (the spec's, shared by the official code): the last axis of a head has K_p entries,
index = p*C*K + c*K + k with p = 0 mixture logits, 1 means, 2 log-scales, 3 (RGB only) coupling
pre-activations; C target channels, K mixture components.
"""

import numpy as np

# Floor on the interior bin mass (part of the model definition,
# docs/l3c_reference.md#mixture-likelihood-and-coupling).
LOG_PROB_FLOOR = 1e-12


# ------------------------------------------------------------------------------------------------
# Quantizer (docs/l3c_reference.md#quantizer)
# ------------------------------------------------------------------------------------------------

def quantization_levels(num_levels: int, levels_min: float = -1.0,
                        levels_max: float = 1.0) -> np.ndarray:
  """The L evenly spaced centers c_l in float64: [L]."""
  return np.linspace(levels_min, levels_max, num_levels, dtype=np.float64)


def hard_symbols(y, levels) -> np.ndarray:
  """argmin_l |y - c_l|, ties to the lowest index. y [...], levels [L] -> int64 [...]."""
  y = np.asarray(y, np.float64)
  levels = np.asarray(levels, np.float64)
  d = np.abs(y[..., None] - levels)
  return np.argmin(d, axis=-1)  # np.argmin returns the first minimum


def hard_quantize(y, levels) -> np.ndarray:
  """Nearest center value c_{argmin}: [...] float64."""
  return np.asarray(levels, np.float64)[hard_symbols(y, levels)]


def _soft_weights(y, levels, sigma):
  y = np.asarray(y, np.float64)[..., None]
  levels = np.asarray(levels, np.float64)
  a = -sigma * (y - levels) ** 2
  a = a - a.max(axis=-1, keepdims=True)
  w = np.exp(a)
  return w / w.sum(axis=-1, keepdims=True), levels


def soft_quantize(y, levels, sigma: float) -> np.ndarray:
  """sum_l softmax_l(-sigma (y - c_l)^2) c_l: [...] float64."""
  w, levels = _soft_weights(y, levels, sigma)
  return np.sum(w * levels, axis=-1)


def soft_quantize_grad(y, levels, sigma: float) -> np.ndarray:
  """d(soft_quantize)/dy, element-wise, in closed form.

  With w_l = softmax(-sigma d_l^2), d_l = y - c_l: dw_l/dy = w_l (-2 sigma d_l + 2 sigma E_w[d]),
  so d/dy sum_l w_l c_l = -2 sigma Cov_w(c, d) = 2 sigma Var_w(c) (d = y - c).
  """
  w, levels = _soft_weights(y, levels, sigma)
  mean_c = np.sum(w * levels, axis=-1, keepdims=True)
  return 2.0 * sigma * np.sum(w * (levels - mean_c) ** 2, axis=-1)


# ------------------------------------------------------------------------------------------------
# Discretized logistic mixture (docs/l3c_reference.md#mixture-likelihood-and-coupling)
# ------------------------------------------------------------------------------------------------

def sigmoid(u):
  u = np.asarray(u, np.float64)
  out = np.empty_like(u)
  pos = u >= 0
  out[pos] = 1.0 / (1.0 + np.exp(-u[pos]))
  e = np.exp(u[~pos])
  out[~pos] = e / (1.0 + e)
  return out


def log_sigmoid(u):
  """log sigma(u) = -log(1 + exp(-u)), stable for both signs."""
  u = np.asarray(u, np.float64)
  return -np.logaddexp(0.0, -u)


def sigmoid_diff(a, b):
  """sigma(a) - sigma(b) for a >= b without cancellation near 1 (uses 1 - sigma(u) = sigma(-u))."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  both_pos = b > 0
  return np.where(both_pos, sigmoid(-b) - sigmoid(-a), sigmoid(a) - sigmoid(b))


def split_head(head, num_channels: int, num_mixtures: int, coupled: bool,
               log_scale_min: float = -7.0):
  """Raw head [..., K_p] -> dict of [..., C, K] float64 arrays.

  Log-scales are clamped below at log_scale_min; coupling coefficients are sigmoid'ed.
  """
  head = np.asarray(head, np.float64)
  num_p = 4 if coupled else 3
  assert head.shape[-1] == num_p * num_channels * num_mixtures
  p = head.reshape(head.shape[:-1] + (num_p, num_channels, num_mixtures))
  out = {"logits": p[..., 0, :, :], "means": p[..., 1, :, :],
         "log_scales": np.maximum(p[..., 2, :, :], log_scale_min)}
  out["coeffs"] = sigmoid(p[..., 3, :, :]) if coupled else None
  return out


def coupled_means(means, coeffs, x):
  """R->G->B coupled means. means, coeffs [..., 3, K]; x [..., 3] -> [..., 3, K].

  mu_R = m_0; mu_G = m_1 + lambda_{g<-r} x_R; mu_B = m_2 + lambda_{b<-r} x_R + lambda_{b<-g} x_G,
  with lambda_{g<-r}, lambda_{b<-r}, lambda_{b<-g} stored at channel 0, 1, 2 of the coupling block.
  """
  x = np.asarray(x, np.float64)
  xr = x[..., 0:1]
  xg = x[..., 1:2]
  mu = np.array(means, np.float64, copy=True)
  mu[..., 1, :] = means[..., 1, :] + coeffs[..., 0, :] * xr
  mu[..., 2, :] = means[..., 2, :] + coeffs[..., 1, :] * xr + coeffs[..., 2, :] * xg
  return mu


def component_log_probs(means, log_scales, targets, x_min: float, x_max: float, num_bins: int):
  """log P_k(target) of each logistic component discretized to the alphabet.

  means, log_scales [..., K]; targets [...] on the levels -> [..., K] float64. The lowest level
  takes the whole left tail, the highest level the whole right tail; interior bin masses are
  floored at 1e-12 (as in the model definition).
  """
  b = (x_max - x_min) / (num_bins - 1)
  t = np.asarray(targets, np.float64)[..., None]
  inv_s = np.exp(-np.asarray(log_scales, np.float64))
  c = t - np.asarray(means, np.float64)
  plus = inv_s * (c + b / 2)
  minus = inv_s * (c - b / 2)
  lowest = t < x_min + 1e-3
  highest = t > x_max - 1e-3
  interior = np.log(np.maximum(sigmoid_diff(plus, minus), LOG_PROB_FLOOR))
  return np.where(lowest, log_sigmoid(plus), np.where(highest, log_sigmoid(-minus), interior))


def logsumexp(a, axis=-1):
  a = np.asarray(a, np.float64)
  m = np.max(a, axis=axis, keepdims=True)
  return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def log_softmax(a):
  """log softmax over the last axis."""
  a = np.asarray(a, np.float64)
  return a - logsumexp(a, -1)[..., None]


def mixture_log_prob(logits, means, log_scales, targets, x_min, x_max, num_bins):
  """log p(target) of one mixture. logits/means/log_scales [..., K], targets [...] -> [...]."""
  lp = component_log_probs(means, log_scales, targets, x_min, x_max, num_bins)
  return logsumexp(lp + log_softmax(logits))


def dmll_log_prob(head, targets, x_min: float, x_max: float, num_bins: int, num_mixtures: int,
                  coupled: bool, log_scale_min: float = -7.0):
  """Per-element log-likelihood (nats): head [..., K_p], targets [..., C] -> [..., C]."""
  targets = np.asarray(targets, np.float64)
  c = targets.shape[-1]
  p = split_head(head, c, num_mixtures, coupled, log_scale_min)
  means = coupled_means(p["means"], p["coeffs"], targets) if coupled else p["means"]
  out = np.empty(targets.shape, np.float64)
  for ch in range(c):
    out[..., ch] = mixture_log_prob(p["logits"][..., ch, :], means[..., ch, :],
                                    p["log_scales"][..., ch, :], targets[..., ch],
                                    x_min, x_max, num_bins)
  return out


def mixture_pmf(logits, means, log_scales, x_min: float, x_max: float, num_bins: int):
  """Dense PMF over all L levels. logits/means/log_scales [N, K] -> [N, L] float64.

  P(l) = sum_k pi_k P_k(l), with P_k the discretized logistic whose edge bins take the tails
  (no floor: this is the exact distribution, it sums to 1).
  """
  logits = np.asarray(logits, np.float64)
  pi = np.exp(log_softmax(logits))                              # [N, K]
  levels = np.linspace(x_min, x_max, num_bins)
  b = (x_max - x_min) / (num_bins - 1)
  inv_s = np.exp(-np.asarray(log_scales, np.float64))[:, None, :]   # [N, 1, K]
  mu = np.asarray(means, np.float64)[:, None, :]
  upper = inv_s * (levels[None, :, None] + b / 2 - mu)           # [N, L, K]
  lower = inv_s * (levels[None, :, None] - b / 2 - mu)
  mass = sigmoid_diff(upper, lower)
  mass[:, 0, :] = sigmoid(upper[:, 0, :])
  mass[:, -1, :] = sigmoid(-lower[:, -1, :])
  return np.einsum("nlk,nk->nl", mass, pi)
