"""Model hyper-parameters of L3C (paper Sec. 3, l3c_spec.md Sec. 2)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class L3CConfig:
  """Frozen L3C model configuration. Defaults are the paper's (L3C-PyTorch `cr.cf`).

  Attributes:
    num_scales: S, number of auto-encoder scales (`num_scales`).
    num_channels: C_f, feature channels everywhere (`Cf`).
    num_res_blocks: ResBlocks per encoder and per decoder (`enc/dec.num_blocks`).
    latent_channels: C_q, bottleneck channels of each z^(s) (`q.C`).
    num_levels: L, quantization levels of z (`q.L`).
    levels_min: lowest quantization center (`q.levels_range[0]`).
    levels_max: highest quantization center (`q.levels_range[1]`).
    soft_sigma: sigma of the soft quantizer softmax(-sigma * d^2) (`q.sigma`).
    num_mixtures: K, logistic components per sub-pixel (`prob.K`).
    log_scale_min: lower clamp of the logistic log-scales.
    rgb_bicubic_baseline: the paper's learned "RGB" baselines (Fig. A2/A3): the encoders are
      replaced by a bicubic x0.5 pyramid of the image and every scale is predicted with the
      256-level RGB mixture; needs latent_channels=3 and num_levels=256 (the "latents" are the
      RGB images x^(s)). With num_scales=1 this is RGB-Shared (applied recursively at test time).
    pixel_mean_scale: the RGB head's mean channels are multiplied by this factor. 1 is L3C
      (means straight in pixel units). Larger values (e.g. 127.5) let the optimizer move the
      means across the pixel range in few steps, like the /128 at the input; used for short runs.
    pixel_mean_residual: RGB baselines only: each RGB head predicts its means as an offset from
      the coarser image x^(s) upsampled x2 (nearest), mu = x^(s)_up + head. NOTE(l3c-pytorch): a
      deviation (the official heads predict mu outright); the net then starts from a sensible
      prediction and only learns the interpolation residual, which trains far faster on a CPU.
      The decoders' inputs x^(s) - 255 * mean are then also divided by 128, as L3C's are.
    phase_context: RGB baselines with pixel_mean_residual only: each finer image x^(s-1) is
      coded in four phases, the pixels at (even, even), (odd, odd), (even, odd), (odd, even)
      positions, each predicted by its own small head from D^(s)'s features at those positions
      plus the pixels of the earlier phases (as residuals from x^(s)). NOTE(l3c-pytorch): an
      extension beyond the paper (whose heads predict all four children of a coarse pixel
      independently, paying for their strong correlation); still one network pass per phase,
      no per-pixel autoregression.
    subsample_pyramid: with phase_context only: x^(s) is x^(s-1) subsampled (its phase-0 pixels)
      instead of bicubic-downscaled, so phase 0 of every finer image is already known and only
      phases 1-3 are coded: no bits are spent twice on the same information. NOTE(l3c-pytorch):
      an extension beyond the paper (an interlaced pyramid as in classical hierarchical coders).
  """
  num_scales: int = 3
  num_channels: int = 64
  num_res_blocks: int = 8
  latent_channels: int = 5
  num_levels: int = 25
  levels_min: float = -1.0
  levels_max: float = 1.0
  soft_sigma: float = 2.0
  num_mixtures: int = 10
  log_scale_min: float = -7.0
  rgb_bicubic_baseline: bool = False
  pixel_mean_scale: float = 1.0
  pixel_mean_residual: bool = False
  phase_context: bool = False
  subsample_pyramid: bool = False

  def __post_init__(self):
    if self.rgb_bicubic_baseline and (self.latent_channels, self.num_levels) != (3, 256):
      raise ValueError("rgb_bicubic_baseline needs latent_channels=3 and num_levels=256 "
                       f"(got {self.latent_channels}, {self.num_levels})")
    if self.pixel_mean_residual and not self.rgb_bicubic_baseline:
      raise ValueError("pixel_mean_residual needs rgb_bicubic_baseline=True")
    if self.phase_context and not self.pixel_mean_residual:
      raise ValueError("phase_context needs pixel_mean_residual=True (and rgb_bicubic_baseline)")
    if self.subsample_pyramid and not self.phase_context:
      raise ValueError("subsample_pyramid needs phase_context=True")
    if self.num_scales < 1 or self.num_channels < 1 or self.num_mixtures < 1:
      raise ValueError(f"invalid L3CConfig: {self}")

  @property
  def padding_factor(self) -> int:
    """Images are padded to a multiple of 2^S so every scale has integer size."""
    return 2 ** self.num_scales

  def replace(self, **kwargs) -> "L3CConfig":
    return dataclasses.replace(self, **kwargs)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "L3CConfig":
    """Builds a config from a dict; unknown keys raise, so typos fail loudly."""
    return cls(**d)


PAPER = L3CConfig()
# The configuration of the official parity fixture (../shared/reference/l3c_pytorch_tiny).
REFERENCE_TINY = L3CConfig(num_channels=16, num_res_blocks=2)
