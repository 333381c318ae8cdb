"""The one counting rule of every evaluation: bits per pixel and bits per sub-pixel.

A *pixel* is one position of the unpadded image, H * W of them. A *sub-pixel* is one stored
sample of a pixel in the image's own mode (`ImageData.num_subpixels`, the denominator the codec's
`CodingStats` uses too):

  mode        sub-pixels per pixel
  'L', '1'    1 (gray; bilevel)
  'P'         1 (the palette index; the palette itself is side information)
  'LA'        2 (gray + alpha)
  'RGB'       3
  'RGBA'      4 (colour + alpha)

So a gray image is not counted as if it were RGB, and the same image gets the same bpsp from
`l3c-jax eval`, `experiments/evaluate.py` and `experiments/reproduce_table.py`, for our codec and
for every classical codec alike (each measured on that same image). Padding added by a codec is
never counted. Pixels only: an image's metadata (ICC profile, EXIF, text chunks) is left out
before coding, by every evaluation path, because the classical codecs are given the pixel array
alone; counting 0.5-9 KB ICC profiles in our files but in no other codec's made 14 small
held-out photos look up to 0.3 bpsp worse than they are (`l3c-jax compress` keeps metadata by
default, so its files are larger by about the metadata's size). A set's figure is the mean of
per-image values (the paper's convention); the total-bits / total-sub-pixels figure is reported
beside it.
"""

from l3c_jax.data import images


def read_image(path: str) -> images.ImageData:
  """Reads an image the way every evaluation path counts it: its own mode, pixels only (the
  module docstring). Raises what `images.read_image` raises."""
  return images.read_image(path, metadata=False)


def bits_per_pixel(num_bits: float, image: images.ImageData) -> float:
  """bpp = bits / (H * W) of the unpadded image."""
  return float(num_bits) / image.num_pixels


def bits_per_subpixel(num_bits: float, image: images.ImageData) -> float:
  """bpsp = bits / (H * W * C), C the channels of the image in its own mode (module docstring)."""
  return float(num_bits) / image.num_subpixels
