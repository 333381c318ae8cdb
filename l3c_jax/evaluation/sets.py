"""Named evaluation sets: where a set's images are found under a data directory."""

import dataclasses
import os
from typing import Dict, List, Optional, Tuple

# Set key -> folder names tried under --data_dir, first existing wins. Keys match the `set` column
# of experiments/reference/paper_numbers.csv.
NAMED_SETS: Dict[str, Tuple[str, ...]] = {
    "openimages_val500": ("open_images_val500", "openimages_val500", "val_oi_500_r",
                          "open_images/val500", "openimages/val_oi_500_r"),
    "clic_mobile": ("clic_mobile", "clic/mobile", "clic/mobile_valid", "mobile_valid",
                    "CLIC.mobile"),
    "clic_pro": ("clic_pro", "clic/professional", "clic/professional_valid",
                 "professional_valid", "CLIC.pro"),
    "div2k_val": ("div2k_val", "DIV2K_valid_HR", "div2k/valid", "div2k/DIV2K_valid_HR"),
    "kodak": ("kodak",),
}

# Display names of the named sets (table headers).
SET_TITLES: Dict[str, str] = {
    "openimages_val500": "Open Images 500",
    "clic_mobile": "CLIC.mobile",
    "clic_pro": "CLIC.pro",
    "div2k_val": "DIV2K",
    "kodak": "Kodak",
}


@dataclasses.dataclass(frozen=True)
class EvalSet:
  """A folder of images to evaluate.

  Attributes:
    label: name used in tables (named-set key, sub-path of data_dir, or folder name).
    directory: folder holding the images.
  """
  label: str
  directory: str


def resolve_set(data_dir: str, name: str) -> Optional[EvalSet]:
  """Finds the folder of a set.

  Args:
    data_dir: folder holding the set folders.
    name: a named-set key (`NAMED_SETS`), a sub-path of data_dir ('val/mcmaster'), or an
      absolute folder.
  Returns:
    EvalSet, or None when no matching folder exists.
  """
  name = name.strip()
  if os.path.isabs(name):
    return EvalSet(os.path.basename(os.path.normpath(name)), name) if os.path.isdir(name) else None
  for candidate in NAMED_SETS.get(name, ()):
    path = os.path.join(data_dir, candidate)
    if os.path.isdir(path):
      return EvalSet(name, path)
  path = os.path.join(data_dir, name)
  if os.path.isdir(path):
    return EvalSet(name.strip("/"), path)
  return None


def parse_list(spec: str) -> List[str]:
  """'a, b,,c' -> ['a', 'b', 'c']."""
  return [p.strip() for p in spec.split(",") if p.strip()]
