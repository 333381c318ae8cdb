"""Convolutions with L3C-PyTorch's padding and initialization, ResBlocks, sub-pixel upsampling."""

from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from l3c_jax.models import fixed_point

# EDSR's DIV2K RGB mean, subtracted (times 255) from the input (`sub_rgb_mean`).
RGB_MEAN = (0.4488, 0.4371, 0.4040)

# PyTorch's default Conv2d init: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)) for the kernel.
torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _torch_bias_init(fan_in: int):
  bound = 1.0 / np.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def _plain_conv_1x1(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """1x1 conv, NHWC x [B, H, W, I], HWIO kernel [1, 1, I, O] -> [B, H, W, O] (no bias)."""
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((0, 0), (0, 0)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


_conv_1x1 = jax.custom_vjp(_plain_conv_1x1)


def _conv_1x1_fwd(x, kernel):
  return _conv_1x1(x, kernel), (x, kernel)


def _conv_1x1_bwd(res, g):
  # Same forward and input gradient as the plain conv; only the kernel gradient is computed as a
  # matmul over all B*H*W positions. Why: XLA:CPU lowers the kernel gradient of a 1x1 conv to a
  # transposed-layout convolution that is ~6x slower than this dot (measured: 550 ms vs 83 ms for
  # the RGB head's 192->120 conv at batch 16 of 64^2), the largest single op of a training step;
  # a paper-config step got 12-15 % faster (interleaved A/B, batch 16 of 64^2 and 8 of 128^2;
  # docs/measurements.md#training-step).
  # The result differs from the conv's only in float32 summation order. (custom_vjp: the model
  # supports reverse-mode differentiation only, which is all that training uses.)
  x, kernel = res
  _, vjp_x = jax.vjp(lambda v: _plain_conv_1x1(v, kernel), x)
  dkernel = jnp.einsum("bhwi,bhwo->io", x, g)
  return vjp_x(g)[0], dkernel.reshape(kernel.shape)


_conv_1x1.defvjp(_conv_1x1_fwd, _conv_1x1_bwd)


def _conv_general_dilated_1x1(lhs, rhs, window_strides, padding, lhs_dilation=None,
                              rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                              precision=None):
  """`lax.conv_general_dilated` signature (as flax calls it) for unstrided 1x1 NHWC convs."""
  del lhs_dilation, rhs_dilation, dimension_numbers, precision  # all trivial for these convs
  if (rhs.shape[:2] != (1, 1) or tuple(window_strides) != (1, 1) or feature_group_count != 1
      or any(tuple(p) != (0, 0) for p in padding)):
    raise ValueError("_conv_general_dilated_1x1 handles unstrided, unpadded 1x1 convs only")
  return _conv_1x1(lhs, rhs)


class _ConvParams(nn.Module):
  """The kernel [k, k, I, O] and bias [O] of a conv, named and initialized as flax's nn.Conv
  (the exact form keeps the float form's parameter tree)."""
  shape: Tuple[int, ...]
  zero_init: bool = False

  @nn.compact
  def __call__(self):
    fan_in = int(np.prod(self.shape[:-1]))
    zeros = nn.initializers.zeros
    kernel = self.param("kernel", zeros if self.zero_init else torch_kernel_init, self.shape)
    bias = self.param("bias", zeros if self.zero_init else _torch_bias_init(fan_in),
                      self.shape[-1:])
    return kernel, bias


class Conv(nn.Module):
  """Square conv with symmetric padding (k//2 * dilation) and PyTorch default init. NHWC.

  NOTE(l3c-pytorch): explicit symmetric padding, never XLA 'SAME', which pads (1, 2) for the
  5x5 stride-2 conv on even sizes and would shift the sampling grid against the reference.

  With exact=True the layer computes in exact fixed point (`fixed_point.fixed_point_conv`):
  inputs clipped to [-2^range_log2, 2^range_log2] on their grid, same parameters.

  dtype: the float layer's compute dtype (flax's `dtype`: inputs and kernel are cast to it, the
  output has it; parameters stay float32). None (the default): float32 computation, as before
  the option existed. The exact form ignores it (its arithmetic is exact by construction).
  zero_init: kernel and bias start at 0 (the last conv of a residual branch added to a trained
  network, so that it starts as the identity and a warm start loses nothing).
  """
  features: int
  kernel_size: int = 3
  stride: int = 1
  dilation: int = 1
  exact: bool = False
  range_log2: int = 4
  dtype: Optional[Any] = None
  zero_init: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    pad = (self.kernel_size // 2) * self.dilation
    if self.exact:
      kernel, bias = _ConvParams(
          (self.kernel_size, self.kernel_size, x.shape[-1], self.features), self.zero_init,
          name="conv")()
      return fixed_point.fixed_point_conv(x, kernel, bias, range_log2=self.range_log2,
                                          stride=self.stride, padding=pad,
                                          dilation=self.dilation)
    fan_in = x.shape[-1] * self.kernel_size * self.kernel_size
    return nn.Conv(
        self.features, (self.kernel_size, self.kernel_size),
        strides=(self.stride, self.stride),
        padding=((pad, pad), (pad, pad)),
        kernel_dilation=(self.dilation, self.dilation),
        kernel_init=nn.initializers.zeros if self.zero_init else torch_kernel_init,
        bias_init=nn.initializers.zeros if self.zero_init else _torch_bias_init(fan_in),
        conv_general_dilated=_conv_general_dilated_1x1 if self.kernel_size == 1 else None,
        dtype=self.dtype,
        name="conv")(x)


class AffineConv1x1(nn.Module):
  """A 1x1 conv 3->3 initialized to the affine map x * scale + bias (input normalization).

  NOTE(l3c-pytorch): L3C-PyTorch sets `requires_grad=False` on the module object, which has no
  effect, so its two input-normalization convs are trainable parameters (and counted in the
  5,008,395). We keep them as ordinary parameters for the same count and exact weight import.
  """
  scale: float
  bias: Sequence[float]
  exact: bool = False
  range_log2: int = 8

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    kernel = self.param(
        "kernel", lambda k, s: (np.eye(c, dtype=np.float32) * self.scale).reshape(s), (1, 1, c, c))
    bias = self.param("bias", lambda k, s: np.asarray(self.bias, np.float32).reshape(s), (c,))
    if self.exact:
      return fixed_point.fixed_point_conv(x, kernel, bias, range_log2=self.range_log2)
    return jnp.einsum("bhwi,io->bhwo", x, kernel[0, 0]) + bias


class ResBlock(nn.Module):
  """EDSR residual block: x + conv(relu(conv(x))), no normalization. dtype: as `Conv`'s."""
  features: int
  exact: bool = False
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x):
    h = Conv(self.features, 3, exact=self.exact, dtype=self.dtype, name="conv0")(x)
    h = Conv(self.features, 3, exact=self.exact, dtype=self.dtype, name="conv1")(nn.relu(h))
    return x + h


class ResBody(nn.Module):
  """`num_blocks` ResBlocks, a final 3x3 conv and a global skip (EDSR body). dtype: as
  `Conv`'s; zero_final: the final conv starts at 0, so the body starts as the identity."""
  features: int
  num_blocks: int
  exact: bool = False
  dtype: Optional[Any] = None
  zero_final: bool = False

  @nn.compact
  def __call__(self, x):
    h = x
    for b in range(self.num_blocks):
      h = ResBlock(self.features, self.exact, self.dtype, name=f"block{b}")(h)
    return x + Conv(self.features, 3, exact=self.exact, dtype=self.dtype,
                    zero_init=self.zero_final, name="final")(h)


def pixel_shuffle(x: jax.Array, factor: int = 2) -> jax.Array:
  """Depth-to-space with PyTorch's PixelShuffle channel order.

  out[b, factor*h + i, factor*w + j, c] = x[b, h, w, c*factor^2 + i*factor + j] (the channel is the
  outermost part of the split; TF's depth_to_space puts it innermost).

  Args:
    x: [B, H, W, C * factor^2].
  Returns:
    [B, H * factor, W * factor, C].
  """
  b, h, w, cr = x.shape
  c = cr // (factor * factor)
  x = x.reshape(b, h, w, c, factor, factor)
  x = x.transpose(0, 1, 4, 2, 5, 3)
  return x.reshape(b, h * factor, w * factor, c)
