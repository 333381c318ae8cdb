"""l3c-jax: L3C (Mentzer et al., CVPR 2019) in JAX/Flax with a real constriction codec."""
__version__ = "0.3.0"


def __getattr__(name):
  """Lazy public API, so `import l3c_jax` does not import JAX."""
  if name in ("compress", "decompress", "decompress_image"):
    from l3c_jax import api
    return getattr(api, name)
  if name in ("load_model", "load_default_model", "save_model", "Model", "ModelError"):
    from l3c_jax import model_io
    return getattr(model_io, name)
  raise AttributeError(f"module 'l3c_jax' has no attribute {name!r}")
