"""Model families: registry, configs (including the first model files' flat form), plans, flags."""

import json
import pathlib

import pytest
from absl import flags

from l3c_jax import model_io
from l3c_jax.coding import codec
from l3c_jax.models import families
from l3c_jax.models import plan as plan_lib
from l3c_jax.models.config import (L3CConfig, RGBBicubicConfig, RGBBicubicPhasedConfig,
                                   RGBInterlacedConfig, config_from_dict)
from l3c_jax.train import config as config_lib

SIZES = dict(num_channels=4, num_res_blocks=1, num_mixtures=2)
TINY = {"l3c": L3CConfig(latent_channels=2, **SIZES), "rgb_bicubic": RGBBicubicConfig(**SIZES),
        "rgb_bicubic_phased": RGBBicubicPhasedConfig(**SIZES),
        "rgb_interlaced": RGBInterlacedConfig(**SIZES)}


def test_registry_names_every_family_once():
  assert sorted(families.FAMILIES) == sorted(TINY)
  for name, cfg in TINY.items():
    assert families.get(cfg).name == name == cfg.family
    assert families.get(name).config_cls is type(cfg)
  with pytest.raises(ValueError, match="unknown model family 'nope'.*rgb_interlaced"):
    families.get("nope")
  with pytest.raises(ValueError, match="registered already"):
    families.register(families.get("l3c"))


@pytest.mark.parametrize("name", sorted(TINY))
def test_config_dict_round_trip(name):
  cfg = TINY[name]
  d = json.loads(json.dumps(cfg.to_dict()))
  assert d["family"] == name
  assert config_from_dict(d) == cfg
  with pytest.raises(ValueError, match="unknown field"):
    config_from_dict({**d, "num_levles": 3})


# Model configs as l3c-jax-model/1 files spelled them: one flat L3C config.
FLAT = {"latent_channels": 3, "levels_max": 1.0, "levels_min": -1.0, "log_scale_min": -7.0,
        "num_channels": 32, "num_levels": 256, "num_mixtures": 5, "num_res_blocks": 4,
        "num_scales": 3, "pixel_mean_scale": 1.0, "soft_sigma": 2.0,
        "rgb_bicubic_baseline": True, "pixel_mean_residual": True, "phase_context": True,
        "subsample_pyramid": True}


@pytest.mark.parametrize("flags_on,want", [
    ((), RGBBicubicConfig(num_channels=32, num_res_blocks=4, num_mixtures=5)),
    (("pixel_mean_residual",), RGBBicubicConfig(num_channels=32, num_res_blocks=4,
                                                num_mixtures=5, residual_means=True)),
    (("pixel_mean_residual", "phase_context"),
     RGBBicubicPhasedConfig(num_channels=32, num_res_blocks=4, num_mixtures=5)),
    (("pixel_mean_residual", "phase_context", "subsample_pyramid"),
     RGBInterlacedConfig(num_channels=32, num_res_blocks=4, num_mixtures=5)),
])
def test_flat_configs_of_the_first_format_map_to_their_family(flags_on, want):
  d = {k: v for k, v in FLAT.items()
       if k not in ("pixel_mean_residual", "phase_context", "subsample_pyramid")}
  d.update({k: True for k in flags_on})
  cfg = config_from_dict(d)
  assert cfg == want
  # The fingerprint keeps that spelling: the flat dict's non-paper fields.
  spec = families.get(cfg).network_spec(cfg)
  paper = L3CConfig()
  assert spec == {k: v for k, v in d.items() if getattr(paper, k, False) != v}


def test_flat_l3c_config_and_bad_flag_chains():
  assert config_from_dict({"num_channels": 32}) == L3CConfig(num_channels=32)
  with pytest.raises(ValueError, match="without rgb_bicubic_baseline"):
    config_from_dict({"phase_context": True})
  with pytest.raises(ValueError, match="unsupported combination"):
    config_from_dict({"rgb_bicubic_baseline": True, "subsample_pyramid": True,
                      "pixel_mean_residual": True})


def test_shipped_model_keeps_its_fingerprint():
  """Loading the shipped model gives the very fingerprint stored beside it (else its files are
  orphaned); it is the exact form (what the codec codes with)."""
  model = model_io.load_default_model()
  stored = json.loads((pathlib.Path(model_io.DEFAULT_MODEL_DIR) / model_io.CONFIG_FILE).read_text())
  assert model.config.family == "rgb_interlaced" and model.config.exact
  assert model.fingerprint == stored["fingerprint"]
  assert model.exact is model


# config.json of the previous shipped model (l3c-jax-model/1: one flat L3C config with flags).
_FLAT_FORMAT_1 = {"latent_channels": 3, "levels_max": 1.0, "levels_min": -1.0,
                  "log_scale_min": -7.0, "num_channels": 32, "num_levels": 256,
                  "num_mixtures": 5, "num_res_blocks": 4, "num_scales": 3,
                  "phase_context": True, "pixel_mean_residual": True, "pixel_mean_scale": 1.0,
                  "rgb_bicubic_baseline": True, "soft_sigma": 2.0, "subsample_pyramid": True}


def test_flat_format_1_configs_load_as_their_family_with_the_same_fingerprint():
  flat = families.config_from_dict(dict(_FLAT_FORMAT_1))
  assert flat.family == "rgb_interlaced" and not flat.exact
  spelled = families.config_from_dict({"family": "rgb_interlaced", "num_channels": 32,
                                       "num_mixtures": 5, "num_res_blocks": 4})
  params = model_io.load_default_model().params
  assert (model_io.compute_fingerprint(flat, params)
          == model_io.compute_fingerprint(spelled, params))
  # The exact form is another network: another fingerprint.
  assert (model_io.compute_fingerprint(flat.replace(exact=True), params)
          != model_io.compute_fingerprint(flat, params))


@pytest.mark.parametrize("name", sorted(TINY))
def test_plan_shape(name):
  cfg = TINY[name]
  steps = families.plan(cfg)
  assert len({s.name for s in steps}) == len(steps)
  assert steps[0].prior == plan_lib.UNIFORM and steps[0].scale == cfg.num_scales
  assert all(s.prior == plan_lib.HEAD for s in steps[1:])
  scales = [s.scale for s in steps]
  assert scales == sorted(scales, reverse=True)            # coarse to fine
  groups = plan_lib.group_names(steps)
  assert groups[-1] == "x" and len(groups) == cfg.num_scales + 1
  assert steps[-1].alphabet == plan_lib.PIXEL
  # Substreams of an RGB tile: one per uniform / latent step, three per pixel step.
  want = sum(1 if s.prior == plan_lib.UNIFORM or s.alphabet == plan_lib.LATENT else 3
             for s in steps)
  assert codec._streams_per_tile(cfg, 3) == want  # pylint: disable=protected-access


@pytest.mark.parametrize("name", sorted(TINY))
def test_head_names_are_the_parameters_heads(name):
  cfg = TINY[name]
  names = {n for n, _ in families.get(cfg).head_names(cfg)}
  params = families.param_shapes(cfg)
  assert names == {k for k in params if k.startswith(("prob_heads_", "phase_heads_"))}


def _parse(*argv):
  fv = flags.FlagValues()
  config_lib.define_flags(fv)
  fv(["prog", *argv])
  return config_lib.from_flags(fv)


def test_flags_pick_the_family_and_its_defaults():
  cfg = _parse("--model.family=rgb_interlaced", "--model.num_channels=32").model
  assert cfg == RGBInterlacedConfig(num_channels=32)
  assert _parse().model == L3CConfig()
  assert _parse("--model.family=rgb_bicubic", "--model.residual_means=true").model.residual_means


def test_flags_refuse_a_field_the_family_does_not_have():
  with pytest.raises(ValueError, match="--model.latent_channels is not a field of model family "
                                       "'rgb_interlaced'"):
    _parse("--model.family=rgb_interlaced", "--model.latent_channels=3")
  with pytest.raises(flags.IllegalFlagValueError):
    _parse("--model.family=rgb_shared")
