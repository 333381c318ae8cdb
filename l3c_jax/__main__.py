"""`python -m l3c_jax` runs the l3c-jax command line (see `l3c_jax.cli`)."""

from l3c_jax.cli import run

if __name__ == "__main__":
  run()
