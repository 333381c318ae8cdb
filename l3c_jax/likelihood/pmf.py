"""Dense PMF tables of the discretized logistic mixture over the whole alphabet (for coding)."""

import jax
import jax.numpy as jnp

from l3c_jax.likelihood.dmll import Alphabet


def mixture_pmf(logits: jax.Array, means: jax.Array, log_scales: jax.Array,
                alphabet: Alphabet) -> jax.Array:
  """PMF of a discretized logistic mixture over all L levels; edge bins take the tails.

  P(l) = sum_k pi_k [sigma((t_{l+1} - mu_k)/s_k) - sigma((t_l - mu_k)/s_k)], t_l = x_min + (l - 1/2) b,
  with t_0 = -inf and t_L = +inf. Matches `dmll.log_prob` wherever its 1e-12 floor is inactive.

  Args:
    logits, means, log_scales: [N, K] (log-scales already clamped).
    alphabet: the L target levels.
  Returns:
    [N, L] float32, rows sum to 1 (up to float32 rounding).
  """
  b = alphabet.bin_width
  edges = alphabet.x_min + b * (jnp.arange(1, alphabet.num_bins, dtype=jnp.float32) - 0.5)
  inv_s = jnp.exp(-log_scales)                                      # [N, K]
  cdf = jax.nn.sigmoid(inv_s[:, None, :] * (edges[None, :, None] - means[:, None, :]))  # [N, L-1, K]
  pi = jax.nn.softmax(logits, axis=-1)                              # [N, K]
  cdf = jnp.einsum("nlk,nk->nl", cdf, pi)
  n = cdf.shape[0]
  cdf = jnp.concatenate([jnp.zeros((n, 1), cdf.dtype), cdf, jnp.ones((n, 1), cdf.dtype)], axis=1)
  return jnp.maximum(cdf[:, 1:] - cdf[:, :-1], 0.0)
