"""Evaluation, one path for `l3c-jax eval`, experiments/evaluate.py and reproduce_table.py.

  counting   the one bpp / bpsp rule (sub-pixels of the image in its own mode)
  evaluate   our codec on one image (real file + the codec's own cross-entropy); `l3c-jax eval`
  classical  PNG / WebP / JPEG 2000 / JPEG XL through imagecodecs, on the same image
  sets       named evaluation sets and where their folders are
  runner     every image of every set through our model(s) and the classical codecs
  tables     summaries, Markdown tables, published numbers
  writers    CSV / JSON / result folder (charts by l3c_jax/figures.py)
"""
