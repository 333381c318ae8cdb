"""Lossless coding: integer tables (`tables`), range coder (`entropy`), container (`bitstream`)
and the codec (`codec`). Import the submodules; `CodecError` is re-exported here."""

from l3c_jax.coding.bitstream import CodecError  # noqa: F401
