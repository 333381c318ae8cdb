"""Pure Flax linen modules of L3C."""
from l3c_jax.models.config import L3CConfig, PAPER, REFERENCE_TINY
from l3c_jax.models.l3c import L3C, L3COutput, init_params, param_shapes, count_params, head_channels
