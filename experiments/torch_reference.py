"""A PyTorch L3C training step: the speed baseline of experiments/bench_train.py (needs torch).

The official L3C-PyTorch code is not available here, so this is our own torch implementation of the
same network, loss and optimizer (docs/l3c_reference.md, Architecture to Training recipe), written
with torch.nn / torch.nn.functional in PyTorch's default NCHW layout like the official code. It has
exactly the parameters of `l3c_jax.models.L3C` for the same `L3CConfig` (5,008,395 for the paper
config), so both frameworks do the same FLOPs. Modules are named so that `state_dict()` uses the
official names (those of the parity fixture, tests/testdata/l3c_pytorch_tiny/README.md):
`l3c_jax.convert.convert_state_dict` turns its weights into l3c-jax params (the test compares the
two losses on the same weights).

This is a benchmark baseline only: the library never imports it. The L3C options that only exist
in l3c-jax (other model families, `pixel_mean_scale` != 1) are not supported.
"""

import math
from typing import Dict, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from l3c_jax.models.config import L3CConfig

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # EDSR's DIV2K mean, as in l3c_jax.models.layers
LOG_PROB_FLOOR = 1e-12


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
  """Conv with symmetric padding (k//2 * dilation) and PyTorch's default init."""
  return nn.Conv2d(c_in, c_out, k, stride=stride, padding=(k // 2) * dilation, dilation=dilation)


def _affine_1x1(scale: float, bias) -> nn.Conv2d:
  """A trainable 1x1 conv 3->3 initialized to x * scale + bias (input normalization)."""
  conv = nn.Conv2d(3, 3, 1)
  with torch.no_grad():
    conv.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1) * scale)
    conv.bias.copy_(torch.tensor(bias, dtype=torch.float32))
  return conv


class _Holder(nn.Module):
  """Holds one submodule as `.head` (reproduces the official `heads.*.head` names)."""

  def __init__(self, head: nn.Module):
    super().__init__()
    self.head = head

  def forward(self, x):
    return self.head(x)


class ResBlock(nn.Module):
  """x + conv(relu(conv(x)))."""

  def __init__(self, c: int):
    super().__init__()
    self.body = nn.Sequential(_conv(c, c, 3), nn.ReLU(), _conv(c, c, 3))

  def forward(self, x):
    return x + self.body(x)


def _res_body(c: int, num_blocks: int) -> nn.Sequential:
  return nn.Sequential(*[ResBlock(c) for _ in range(num_blocks)], _conv(c, c, 3))


class Encoder(nn.Module):
  """5x5/2 down, ResBlocks + conv with a global skip (-> F), 1x1 to C_q (-> y)."""

  def __init__(self, cfg: L3CConfig):
    super().__init__()
    c = cfg.num_channels
    self.down = _conv(c, c, 5, stride=2)
    self.body = _res_body(c, cfg.num_res_blocks)
    self.to_q = nn.Sequential(_conv(c, cfg.latent_channels, 1))
    # Fixed centers: float32 torch.linspace, bit-identical to quantizer.quantization_levels.
    self.register_buffer("levels", torch.linspace(cfg.levels_min, cfg.levels_max,
                                                  cfg.num_levels, dtype=torch.float32))

  def forward(self, e_in):
    d = self.down(e_in)
    feat = d + self.body(d)
    return feat, self.to_q(feat)


class Decoder(nn.Module):
  """1x1 head on z, fusion by addition, ResBlocks + conv with skip, 3x3 conv to 4Cf, shuffle."""

  def __init__(self, cfg: L3CConfig):
    super().__init__()
    c = cfg.num_channels
    self.head = _conv(cfg.latent_channels, c, 1)
    self.body = _res_body(c, cfg.num_res_blocks)
    self.tail = nn.Sequential(_conv(c, 4 * c, 3), nn.PixelShuffle(2))

  def forward(self, z, f_above: Optional[torch.Tensor]):
    h = self.head(z)
    if f_above is not None:
      h = h + f_above
    return self.tail(h + self.body(h))


class _Scale(nn.Module):
  def __init__(self, cfg: L3CConfig):
    super().__init__()
    self.enc = Encoder(cfg)
    self.dec = Decoder(cfg)


class _Atrous(nn.Module):
  """3x3 convs at dilation 1, 2, 4 in parallel, concat, 1x1 to K_p."""

  def __init__(self, c: int, k_p: int):
    super().__init__()
    self.atrous = nn.ModuleList([_conv(c, c, 3, dilation=r) for r in (1, 2, 4)])
    self.lin = _conv(3 * c, k_p, 1)

  def forward(self, f):
    return self.lin(torch.cat([conv(f) for conv in self.atrous], dim=1))


class _ProbClf(nn.Module):
  def __init__(self, c: int, k_p: int):
    super().__init__()
    self.atrous = _Atrous(c, k_p)

  def forward(self, f):
    return self.atrous(f)


def quantize_ste(y: torch.Tensor, levels: torch.Tensor, sigma: float):
  """Straight-through quantization: hard centers forward, soft-assignment gradient.

  Args:
    y: [B, C, h, w]. levels: [L].
  Returns:
    (z [B, C, h, w] float32, symbols [B, C, h, w] int64).
  """
  d = torch.square(y.unsqueeze(-1) - levels)          # [B, C, h, w, L]
  symbols = torch.argmin(d, dim=-1)
  y_hard = levels[symbols]
  y_soft = torch.sum(torch.softmax(-sigma * d, dim=-1) * levels, dim=-1)
  return y_soft + (y_hard - y_soft).detach(), symbols


def dmll_log_prob(head: torch.Tensor, targets: torch.Tensor, x_min: float, x_max: float,
                  num_bins: int, num_mixtures: int, coupled: bool,
                  log_scale_min: float = -7.0) -> torch.Tensor:
  """Discretized logistic mixture log-likelihood (nats), float32 formula of
  docs/l3c_reference.md#mixture-likelihood-and-coupling.

  Args:
    head: [B, K_p, H, W], channel index p*C*K + c*K + k.
    targets: [B, C, H, W] values on the alphabet's levels.
  Returns:
    [B, C, H, W] log-probabilities.
  """
  b, c, h, w = targets.shape
  k = num_mixtures
  p = head.reshape(b, 4 if coupled else 3, c, k, h, w)
  logits, means = p[:, 0], p[:, 1]
  log_scales = torch.clamp(p[:, 2], min=log_scale_min)
  t = targets.unsqueeze(2)                            # [B, C, 1, H, W]
  if coupled:  # mu_G += l_gr x_R; mu_B += l_br x_R + l_bg x_G (true pixel values)
    lam = torch.sigmoid(p[:, 3])
    means = torch.stack([
        means[:, 0],
        means[:, 1] + lam[:, 0] * t[:, 0],
        means[:, 2] + lam[:, 1] * t[:, 0] + lam[:, 2] * t[:, 1]], dim=1)
  bin_width = (x_max - x_min) / (num_bins - 1)
  centered = t - means
  inv_s = torch.exp(-log_scales)
  plus_in = inv_s * (centered + bin_width / 2)
  min_in = inv_s * (centered - bin_width / 2)
  cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
  log_cdf_plus = plus_in - F.softplus(plus_in)
  log_one_minus_cdf_min = -F.softplus(min_in)
  log_p = torch.where(
      t < x_min + 0.001, log_cdf_plus,
      torch.where(t > x_max - 0.001, log_one_minus_cdf_min,
                  torch.log(torch.clamp(cdf_delta, min=LOG_PROB_FLOOR))))
  return torch.logsumexp(log_p + F.log_softmax(logits, dim=2), dim=2)


class TorchL3C(nn.Module):
  """L3C in PyTorch (NCHW). `forward(x)` -> (symbols, z, head_params) like l3c_jax's L3C."""

  def __init__(self, cfg: L3CConfig):
    super().__init__()
    if cfg.family != "l3c" or cfg.pixel_mean_scale != 1.0:
      raise ValueError("the torch reference implements plain L3C only")
    self.cfg = cfg
    c = cfg.num_channels
    self.sub_rgb_mean = _affine_1x1(1.0, [-255.0 * m for m in RGB_MEAN])
    self.heads = nn.ModuleList(
        [_Holder(nn.Sequential(_affine_1x1(1.0 / 128.0, [0.0, 0.0, 0.0]),
                               _Holder(_conv(3, c, 3))))] +
        [_Holder(_conv(c, c, 3)) for _ in range(1, cfg.num_scales)])
    self.nets = nn.ModuleList([_Scale(cfg) for _ in range(cfg.num_scales)])
    k = cfg.num_mixtures
    self.prob_clfs = nn.ModuleList(
        [_ProbClf(c, 4 * 3 * k if s == 0 else 3 * cfg.latent_channels * k)
         for s in range(cfg.num_scales)])

  def forward(self, x: torch.Tensor, train: bool = True):
    """x: [B, 3, H, W] float32 0..255 -> (symbols, z, head_params), lists indexed by s - 1."""
    feat = self.sub_rgb_mean(x)
    symbols, zs = [], []
    for s in range(self.cfg.num_scales):
      feat, y = self.nets[s].enc(self.heads[s](feat))
      levels = self.nets[s].enc.levels
      if train:
        z, sym = quantize_ste(y, levels, self.cfg.soft_sigma)
      else:
        sym = torch.argmin(torch.square(y.unsqueeze(-1) - levels), dim=-1)
        z = levels[sym]
      symbols.append(sym)
      zs.append(z)
    heads = [None] * self.cfg.num_scales
    f = None
    for s in range(self.cfg.num_scales - 1, -1, -1):
      f = self.nets[s].dec(zs[s], f)
      heads[s] = self.prob_clfs[s](f)
    return symbols, zs, heads

  def loss(self, x: torch.Tensor, train: bool = True) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Training loss: sum over the S predicted scales of bits / (B*3*H*W).

    See docs/l3c_reference.md#loss.

    Args:
      x: [B, 3, H, W] float32 pixels 0..255.
    Returns:
      (loss, {'bpsp_x', 'bpsp_z1', ...}) with the uniform z^(S) term excluded from the loss.
    """
    cfg = self.cfg
    _, zs, heads = self(x, train)
    n = x.shape[0] * 3 * x.shape[2] * x.shape[3] * math.log(2.0)
    metrics = {"bpsp_x": -dmll_log_prob(heads[0], x, 0.0, 255.0, 256, cfg.num_mixtures, True,
                                        cfg.log_scale_min).sum() / n}
    for s in range(1, cfg.num_scales):
      metrics[f"bpsp_z{s}"] = -dmll_log_prob(
          heads[s], zs[s - 1], cfg.levels_min, cfg.levels_max, cfg.num_levels,
          cfg.num_mixtures, False, cfg.log_scale_min).sum() / n
    return sum(metrics.values()), metrics


def make_optimizer(model: nn.Module, learning_rate: float = 1e-4) -> torch.optim.Optimizer:
  """RMSprop as in L3C: alpha 0.99, eps 1e-8 (after the sqrt), no momentum, no weight decay."""
  return torch.optim.RMSprop(model.parameters(), lr=learning_rate, alpha=0.99, eps=1e-8)


def make_train_step(cfg: L3CConfig, seed: int = 0, learning_rate: float = 1e-4):
  """-> (model, step) where step(x_uint8_nchw) runs one RMSprop step and returns the loss."""
  torch.manual_seed(seed)
  model = TorchL3C(cfg)
  opt = make_optimizer(model, learning_rate)

  def step(x: torch.Tensor) -> float:
    opt.zero_grad(set_to_none=True)
    loss, _ = model.loss(x.float())
    loss.backward()
    opt.step()
    return loss.detach().item()

  return model, step


def count_params(cfg: L3CConfig) -> int:
  """Trainable parameters, counted on the meta device (no memory is allocated)."""
  with torch.device("meta"):
    model = TorchL3C(cfg)
  return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":
  from l3c_jax.models.config import PAPER  # pylint: disable=g-import-not-at-top
  n = count_params(PAPER)
  assert n == 5_008_395, n
  print(f"TorchL3C paper config: {n:,} parameters")
