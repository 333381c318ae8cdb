"""Pure Flax linen modules of the model families and their coding plans."""
from l3c_jax.models.config import (L3CConfig, PAPER, REFERENCE_TINY, RGBBicubicConfig,
                                   RGBBicubicPhasedConfig, RGBInterlacedConfig, config_from_dict)
from l3c_jax.models.families import count_params, init_params, param_shapes
from l3c_jax.models.l3c import L3C, L3COutput, head_channels
