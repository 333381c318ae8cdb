"""Image data: training pipeline (crops, batches) and image I/O. numpy + Pillow only, no JAX."""

from l3c_jax.data.pipeline import CropLoader, DataError, center_crops, list_images

__all__ = ['CropLoader', 'DataError', 'center_crops', 'list_images']
