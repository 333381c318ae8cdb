"""The registry of model families: a family is picked by the name in its config.

| name                 | module           | what                                               |
|----------------------|------------------|----------------------------------------------------|
| `l3c`                | `models.l3c`     | the paper's L3C (learned latents)                  |
| `rgb_bicubic`        | `models.pyramid` | the paper's RGB / RGB-Shared baselines             |
| `rgb_bicubic_phased` | `models.pyramid` | bicubic pyramid coded in four pixel phases         |
| `rgb_interlaced`     | `models.pyramid` | interlaced pyramid, phases 1-3 coded (the default) |

Adding a family: one module with a frozen (hashable: it is a jit static argument) config
dataclass, a Flax module, and a `plan.Family` subclass; then one `register(...)` line below.
The shared code reads these config attributes: `family` (class attribute naming it),
`padding_factor`, `to_dict()`, `num_scales`, `num_mixtures`, `log_scale_min`,
`pixel_mean_scale`, and for LATENT steps `latent_channels`, `num_levels`, `levels_min`,
`levels_max`. WORKSPACE.md walks through it with the shipped family.
"""

import dataclasses
import functools
from typing import Any, Dict

import jax
import jax.numpy as jnp

from l3c_jax.models import l3c
from l3c_jax.models import plan as plan_lib
from l3c_jax.models import pyramid

FAMILIES: Dict[str, plan_lib.Family] = {}


def register(family: plan_lib.Family) -> None:
  """Adds a family to the registry (its name must be new)."""
  if family.name in FAMILIES:
    raise ValueError(f"model family {family.name!r} is registered already")
  FAMILIES[family.name] = family


register(l3c.FAMILY)
for _family in pyramid.FAMILIES.values():
  register(_family)


def get(config_or_name) -> plan_lib.Family:
  """The family of a config (or of a family name)."""
  name = config_or_name if isinstance(config_or_name, str) else config_or_name.family
  try:
    return FAMILIES[name]
  except KeyError:
    raise ValueError(f"unknown model family {name!r} (known: {', '.join(sorted(FAMILIES))})"
                     ) from None


def config_fields(name: str) -> Dict[str, dataclasses.Field]:
  """{field name: dataclass field} of a family's config."""
  return {f.name: f for f in dataclasses.fields(get(name).config_cls)}


def _legacy_family(d: Dict[str, Any]) -> Dict[str, Any]:
  """A model config of l3c-jax-model/1 files (one flat L3C config with pyramid flags) -> family
  form.

  Those files spelled the pyramids as `rgb_bicubic_baseline` plus `pixel_mean_residual`,
  `phase_context`, `subsample_pyramid` (each needing the one before) and the pixel alphabet as
  `latent_channels=3, num_levels=256`.
  """
  d = dict(d)
  flags = {k: bool(d.pop(k, False)) for k in
           ("rgb_bicubic_baseline", "pixel_mean_residual", "phase_context", "subsample_pyramid")}
  if not flags["rgb_bicubic_baseline"]:
    if any(flags.values()):
      raise ValueError(f"pyramid options without rgb_bicubic_baseline: {flags}")
    return {"family": "l3c", **d}
  for k in ("latent_channels", "num_levels", "levels_min", "levels_max", "soft_sigma"):
    d.pop(k, None)  # implied by the pixel alphabet / unused without learned latents
  if flags["subsample_pyramid"]:
    family = "rgb_interlaced"
  elif flags["phase_context"]:
    family = "rgb_bicubic_phased"
  else:
    return {"family": "rgb_bicubic", "residual_means": flags["pixel_mean_residual"], **d}
  if not flags["pixel_mean_residual"] or (family == "rgb_interlaced"
                                          and not flags["phase_context"]):
    raise ValueError(f"unsupported combination of pyramid options {flags}")
  return {"family": family, **d}


def config_from_dict(d: Dict[str, Any]):
  """Builds a family config from its dict (`config.to_dict()`, or an l3c-jax-model/1 config).

  Unknown keys raise, so typos fail loudly.
  """
  d = dict(d)
  if "family" not in d:
    d = _legacy_family(d)
  cls = get(d.pop("family")).config_cls
  unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
  if unknown:
    raise ValueError(f"unknown field(s) {unknown} for model family {cls.family!r}")
  return cls(**d)


def module(config, dtype=None):
  """The Flax module of a config's family.

  dtype: compute dtype of its float convs (training's mixed precision, e.g. jnp.bfloat16);
  None (float32) is the only one for coding: parameters are float32 either way.
  """
  if dtype is None:
    return get(config).module(config)
  return get(config).module(config, dtype)


@functools.lru_cache(maxsize=None)
def plan(config):
  """The coding plan of a config's family (a tuple, built once per config)."""
  return get(config).plan(config)


def runner(config, params, jit: bool = False, dtype=None) -> plan_lib.Runner:
  """A `plan.Runner` of the config's module with these parameters.

  dtype: compute dtype (`module`); the jitted runner (the codec's) computes in float32 only.
  """
  if jit and dtype is not None:
    raise ValueError("the jitted (codec) runner computes in float32; dtype is for training")
  return plan_lib.Runner(module(config, dtype), params, jit=jit)


def init_params(config, rng: jax.Array, image_size: int = 16):
  """Initializes the model's parameters (PyTorch default init) -> params pytree."""
  size = max(image_size, config.padding_factor)
  x = jnp.zeros((1, size, size, 3), jnp.float32)
  return module(config).init(rng, x)["params"]


def param_shapes(config):
  """Parameter shapes without compiling or allocating (jax.eval_shape)."""
  return jax.eval_shape(lambda k: init_params(config, k), jax.random.key(0))


def count_params(params) -> int:
  return int(sum(int(jnp.size(p)) if hasattr(p, "size") else 0
                 for p in jax.tree_util.tree_leaves(params)))
