"""Training hyper-parameters (the one config system behind experiments/*.py and their flagfiles).

`ExperimentConfig` = model (a model family's config, `models.families`) + training
(`TrainConfig`). `define_flags` registers `--model.family` and one absl flag per field of any
family as `--model.<field>`, and one per `TrainConfig` field as `--train.<field>`, so flagfiles
read like `--model.family=rgb_interlaced --model.num_channels=32`; `from_flags` builds the frozen
configs back. Unknown names fail in absl; a field that the chosen family does not have fails in
`from_flags`; model fields not given keep the family's defaults.
"""

import dataclasses
from typing import Any, Dict, Tuple

from l3c_jax.models import families
from l3c_jax.models.l3c import L3CConfig


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimization, data and bookkeeping settings. Defaults are the paper recipe
  (docs/l3c_reference.md#training-recipe).

  Attributes:
    crop_size: side of the random training crops (`crop` in oi.cf).
    batch_size: global batch size, split over all devices of all processes (padded to a
      multiple of the device count with zero-weight rows; train/distributed.py).
    random_flip: random horizontal flips.
    num_workers: loader workers: image-decoding threads for image folders, grain worker
      processes for an image store (`data_store`); 0 = in the training thread; -1 = one per
      core (os.cpu_count()).
    data_store: a pre-decoded image store (`experiments/prepare_store.py`) to train on
      instead of the --data_dir image folders ('' = the folders, the default; a --data_dir that
      is a store is used as one too). Crops are then read from a memory map (no PNG decoding:
      ~20x less CPU per crop with worker processes, ~75x in the training thread;
      docs/measurements.md#input-pipeline) and each process reads its own shard of the images.
    device_prefetch: batches put onto the devices ahead of the training step (0: none).
    optimizer: 'rmsprop' (the paper, PyTorch semantics) or 'adam' (optax defaults b1 0.9,
      b2 0.999, eps 1e-8), which learns much faster in short CPU runs (measured: after 80 steps
      held-out 7.9 bpsp with Adam 1e-3 vs 9.2 with RMSprop 3e-4;
      docs/measurements.md#training-step).
    learning_rate: initial learning rate (`lr.initial`).
    rmsprop_decay: RMSprop alpha (PyTorch default 0.99).
    rmsprop_eps: RMSprop epsilon, added after the square root as in PyTorch.
    lr_decay_factor: staircase decay factor (`exp_0.75_e5`: 0.75).
    lr_decay_epochs: decay every this many epochs (`exp_0.75_e5`: 5).
    lr_decay_steps: if > 0, decay every this many steps instead (stretching the schedule to a
      budget that has nothing to do with epochs).
    grad_clip_norm: global-norm gradient clipping; 0 disables it (the paper does not clip).
    num_steps: total training steps.
    seed: seed of the initialization and of the data order.
    log_every: steps between train metric lines.
    eval_every: steps between validation runs.
    checkpoint_every: steps between checkpoints (a SIGKILL loses at most this many).
    checkpoint_every_minutes: also checkpoint when this much wall time passed (0: off).
    max_checkpoints: checkpoints kept.
    val_crop_size: center-crop side for validation.
    val_max_images: validation images (the paper uses 5 batches of 30).
    val_batch_size: validation batch size.
    scale_weights: loss weights of the coding plan's groups with a head, finest first (L3C:
      x, z1, ..., z{S-1}); empty = all 1 (the paper).
    pixel_head_init: start the RGB head's mixture means at mid-grey (127.5) and its log-scales
      at log(16) instead of PyTorch's default init (~0 and ~0): with RMSprop's ~lr-sized steps
      the means otherwise need thousands of steps to reach the pixel range, which matters for
      short CPU runs. Off for the paper recipe.
    init_from: a model folder (`l3c_jax.model_io` format, e.g. WORKDIR/model of another run or
      the shipped default) whose parameters initialize a new run wherever name and shape match
      (warm start / fine-tuning); the rest keeps its fresh init. Ignored when resuming.
    compute_dtype: 'float32' (the default) or 'bfloat16': mixed precision, the encoders',
      decoders' and heads' convs compute in bfloat16 while parameters, gradients, optimizer
      state, the heads' last conv (the mixture parameters), the likelihood and the loss stay
      float32. For accelerators; a training option only (exported models are float32
      parameters, and the codec always computes in float32 or exactly). Exact layers
      (`--model.exact`) ignore it.
  """
  crop_size: int = 128
  batch_size: int = 30
  random_flip: bool = True
  num_workers: int = 2
  data_store: str = ""
  device_prefetch: int = 2
  optimizer: str = "rmsprop"
  learning_rate: float = 1e-4
  rmsprop_decay: float = 0.99
  rmsprop_eps: float = 1e-8
  lr_decay_factor: float = 0.75
  lr_decay_epochs: float = 5.0
  lr_decay_steps: int = 0
  grad_clip_norm: float = 0.0
  num_steps: int = 1_000_000
  seed: int = 0
  log_every: int = 100
  eval_every: int = 500
  checkpoint_every: int = 1000
  checkpoint_every_minutes: float = 0.0
  max_checkpoints: int = 3
  val_crop_size: int = 128
  val_max_images: int = 150
  val_batch_size: int = 30
  scale_weights: Tuple[float, ...] = ()
  pixel_head_init: bool = False
  init_from: str = ""
  compute_dtype: str = "float32"

  def __post_init__(self):
    if self.compute_dtype not in ("float32", "bfloat16"):
      raise ValueError(f"compute_dtype must be 'float32' or 'bfloat16', not "
                       f"{self.compute_dtype!r}")

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  model: Any = L3CConfig()
  train: TrainConfig = TrainConfig()

  def to_dict(self) -> dict:
    return {"model": self.model.to_dict(), "train": self.train.to_dict()}

  @classmethod
  def from_dict(cls, d: dict) -> "ExperimentConfig":
    train = dict(d.get("train", {}))
    if "scale_weights" in train:
      train["scale_weights"] = tuple(train["scale_weights"])
    return cls(model=families.config_from_dict(d.get("model", {})), train=TrainConfig(**train))


def _model_fields() -> Dict[str, Tuple[dataclasses.Field, Dict[str, Any]]]:
  """{field name: (a dataclass field, {family: its default})} over all registered families."""
  out = {}
  for name in sorted(families.FAMILIES):
    for f in dataclasses.fields(families.get(name).config_cls):
      out.setdefault(f.name, (f, {}))[1][name] = f.default
  return out


def _define(fv, name: str, f: dataclasses.Field, default, doc: str):
  """One absl flag of the dataclass field's type."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if f.type in (str, "str"):
    flags.DEFINE_string(name, default, doc, flag_values=fv)
  elif f.type in (bool, "bool"):
    flags.DEFINE_boolean(name, default, doc, flag_values=fv)
  elif f.type in (int, "int"):
    flags.DEFINE_integer(name, default, doc, flag_values=fv)
  elif f.type in (float, "float"):
    flags.DEFINE_float(name, default, doc, flag_values=fv)
  elif "Tuple" in str(f.type):
    flags.DEFINE_list(name, None if default is None else [str(v) for v in default],
                      doc + " (comma-separated floats)", flag_values=fv)
  else:
    raise TypeError(f"unsupported config field type {f.type} for {name}")


def define_flags(flag_values=None):
  """Registers `--model.family`, `--model.<field>` and `--train.<field>` absl flags."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  fv = flag_values if flag_values is not None else flags.FLAGS
  if "model.family" not in fv:
    flags.DEFINE_enum("model.family", L3CConfig.family, sorted(families.FAMILIES),
                      "Model family (models/families.py); the other --model.* flags are its "
                      "config's fields.", flag_values=fv)
  for field_name, (f, defaults) in _model_fields().items():
    name = f"model.{field_name}"
    if name not in fv:
      # No default here: a field not given keeps the chosen family's default.
      doc = "; ".join(f"{fam}: {d}" for fam, d in defaults.items())
      _define(fv, name, f, None, f"default {doc}")
  for f in dataclasses.fields(TrainConfig):
    name = f"train.{f.name}"
    if name not in fv:
      _define(fv, name, f, f.default, f"TrainConfig.{f.name}")


def from_flags(flag_values=None) -> ExperimentConfig:
  """Builds the ExperimentConfig from parsed absl flags.

  Raises:
    ValueError: a --model.<field> flag was given that the chosen family does not have.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  fv = flag_values if flag_values is not None else flags.FLAGS
  family = fv["model.family"].value
  model_kw = {name: fv[f"model.{name}"].value for name in _model_fields()
              if fv[f"model.{name}"].value is not None}
  wrong = sorted(set(model_kw) - set(families.config_fields(family)))
  if wrong:
    raise ValueError(f"--model.{wrong[0]} is not a field of model family {family!r} (its fields: "
                     f"{', '.join(families.config_fields(family))})")
  train_kw = {}
  for f in dataclasses.fields(TrainConfig):
    v = fv[f"train.{f.name}"].value
    train_kw[f.name] = tuple(float(x) for x in v) if "Tuple" in str(f.type) else v
  model = families.config_from_dict({"family": family, **model_kw})
  return ExperimentConfig(model=model, train=TrainConfig(**train_kw))


def define_program_flags(flag_values=None):
  """The launchers' shared program flags (--workdir, --data_dir, --val_dir, --dry_run).

  Guarded, so several launchers can be imported into one process (tests)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  fv = flag_values if flag_values is not None else flags.FLAGS
  defs = [("workdir", flags.DEFINE_string, None, "Run directory (checkpoints, metrics, model/)."),
          ("data_dir", flags.DEFINE_string, None, "Training image folder(s), comma-separated."),
          ("val_dir", flags.DEFINE_string, None, "Validation image folder(s) (center crops)."),
          ("dry_run", flags.DEFINE_boolean, False,
           "Build the model shapes, print the parameter count / members, exit.")]
  for name, define, default, doc in defs:
    if name not in fv:
      define(name, default, doc, flag_values=fv)
    else:
      # Defined by another launcher's module in this process (e.g. the evaluation launchers'
      # --data_dir): still one of this module's key flags, so `--help` of the launchers that
      # adopt them lists it.
      flags.declare_key_flag(name, flag_values=fv)


def start_launcher(argv) -> ExperimentConfig:
  """Common start of the launchers: reject stray arguments, quiet logging, build the config."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO
    logging.set_verbosity(logging.WARNING)
  return from_flags()
