"""Import official L3C-PyTorch state dicts (fab-jul/L3C-PyTorch `MultiscaleNetwork`) into l3c-jax.

Accepts a `.npz` of the state dict (no torch needed) or a `.pt` checkpoint (needs the optional
`torch` extra). Conv weights go OIHW -> HWIO; NCHW activations are never stored, so only the
weights are transposed. PixelShuffle needs no weight permutation because `layers.pixel_shuffle`
reproduces PyTorch's channel order.
"""

import os
import re
from typing import Dict, Mapping, Tuple

import numpy as np

from l3c_jax.models.config import L3CConfig


class ConversionError(ValueError):
  """The state dict does not match the expected L3C layout."""


def _conv(sd, name):
  w = np.asarray(sd[name + ".weight"], np.float32)
  b = np.asarray(sd[name + ".bias"], np.float32)
  return {"kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0)), "bias": b}


def _wrap(sd, name):
  return {"conv": _conv(sd, name)}


def _body(sd, prefix, num_blocks):
  body = {}
  for b in range(num_blocks):
    body[f"block{b}"] = {"conv0": _wrap(sd, f"{prefix}.{b}.body.0"),
                         "conv1": _wrap(sd, f"{prefix}.{b}.body.2")}
  body["final"] = _wrap(sd, f"{prefix}.{num_blocks}")
  return body


def infer_config(sd: Mapping[str, np.ndarray]) -> L3CConfig:
  """Reads C_f, ResBlocks, S, C_q and K off the tensor shapes of an official state dict."""
  try:
    num_channels = sd["heads.0.head.1.head.weight"].shape[0]
    num_scales = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"nets\.(\d+)\.", k)))
    num_blocks = max(int(m.group(1)) for k in sd
                     if (m := re.match(r"nets\.0\.enc\.body\.(\d+)\.weight", k)))
    latent_channels = sd["nets.0.enc.to_q.0.weight"].shape[0]
    num_mixtures = sd["prob_clfs.0.atrous.lin.weight"].shape[0] // 12
    levels = np.asarray(sd["nets.0.enc.levels"])
  except (KeyError, ValueError, AttributeError) as e:
    raise ConversionError(f"not an L3C-PyTorch MultiscaleNetwork state dict ({e!r})") from e
  return L3CConfig(num_scales=num_scales, num_channels=num_channels, num_res_blocks=num_blocks,
                   latent_channels=latent_channels, num_levels=len(levels),
                   levels_min=float(levels[0]), levels_max=float(levels[-1]),
                   num_mixtures=num_mixtures)


def convert_state_dict(sd: Mapping[str, np.ndarray]) -> Tuple[Dict, L3CConfig]:
  """Official state dict (numpy arrays, official names) -> (l3c-jax params, config)."""
  cfg = infer_config(sd)
  params = {}
  sub = sd["sub_rgb_mean.weight"]
  params["input_shift"] = {"kernel": np.asarray(sub, np.float32).transpose(2, 3, 1, 0),
                           "bias": np.asarray(sd["sub_rgb_mean.bias"], np.float32)}
  params["input_scale"] = {
      "kernel": np.asarray(sd["heads.0.head.0.weight"], np.float32).transpose(2, 3, 1, 0),
      "bias": np.asarray(sd["heads.0.head.0.bias"], np.float32)}
  for i in range(cfg.num_scales):
    head = "heads.0.head.1.head" if i == 0 else f"heads.{i}.head"
    params[f"enc_inputs_{i}"] = {"conv": _conv(sd, head)}
    params[f"encoders_{i}"] = {
        "down": _wrap(sd, f"nets.{i}.enc.down"),
        "body": _body(sd, f"nets.{i}.enc.body", cfg.num_res_blocks),
        "to_latent": _wrap(sd, f"nets.{i}.enc.to_q.0")}
    params[f"decoders_{i}"] = {
        "head": _wrap(sd, f"nets.{i}.dec.head"),
        "body": _body(sd, f"nets.{i}.dec.body", cfg.num_res_blocks),
        "upsample": _wrap(sd, f"nets.{i}.dec.tail.0")}
    params[f"prob_heads_{i}"] = {
        f"atrous{r}": _wrap(sd, f"prob_clfs.{i}.atrous.atrous.{j}") for j, r in enumerate((1, 2, 4))}
    params[f"prob_heads_{i}"]["out"] = _wrap(sd, f"prob_clfs.{i}.atrous.lin")
  # The levels are fixed; check the stored ones are the ones our quantizer computes.
  from l3c_jax.models.quantizer import quantization_levels  # pylint: disable=g-import-not-at-top
  ours = quantization_levels(cfg.num_levels, cfg.levels_min, cfg.levels_max)
  for i in range(cfg.num_scales):
    if not np.array_equal(ours, np.asarray(sd[f"nets.{i}.enc.levels"], np.float32)):
      raise ConversionError(f"nets.{i}.enc.levels differ from the fixed L3C levels")
  return params, cfg


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
  """Loads an official state dict from `.npz` or `.pt` (the latter needs torch)."""
  if not os.path.exists(path):
    raise ConversionError(f"{path}: no such file")
  if path.endswith(".npz"):
    with np.load(path) as f:
      return {k: f[k] for k in f.files}
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ConversionError("reading .pt needs torch: pip install 'l3c-jax[torch]' "
                          "(or convert the state dict to .npz)") from e
  obj = torch.load(path, map_location="cpu", weights_only=False)
  if isinstance(obj, dict) and "net" in obj:  # official checkpoints store {'net': state_dict, ...}
    obj = obj["net"]
  return {k: v.detach().cpu().numpy() for k, v in obj.items()}


def import_official(path: str):
  """Path to an official `.npz`/`.pt` -> (params, L3CConfig)."""
  return convert_state_dict(load_state_dict(path))
