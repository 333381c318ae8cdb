"""Model configurations: one frozen dataclass per model family (see `models.families`;
the paper's numbers: docs/l3c_reference.md#architecture).

`L3CConfig` (family "l3c", the paper's model) lives in `models.l3c`, the RGB pyramid configs in
`models.pyramid`; this module gathers them and builds any of them from a dict.
"""

from l3c_jax.models.families import config_from_dict
from l3c_jax.models.l3c import PAPER, REFERENCE_TINY, L3CConfig
from l3c_jax.models.pyramid import RGBBicubicConfig, RGBBicubicPhasedConfig, RGBInterlacedConfig

__all__ = ["L3CConfig", "PAPER", "REFERENCE_TINY", "RGBBicubicConfig", "RGBBicubicPhasedConfig",
           "RGBInterlacedConfig", "config_from_dict"]
