"""l3c-jax: L3C (Mentzer et al., CVPR 2019) in JAX/Flax with a real constriction codec."""
__version__ = "0.1.0"
