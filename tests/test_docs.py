"""Documentation a file cites must be in the repository, down to the section.

Comments and docs cite repository files such as `docs/l3c_reference.md#quantizer`. Every such
citation in a tracked .py/.md/.flags/.csv file must name an existing file and, with a '#section',
an existing heading of it. Team notes that live outside the repository must not be cited at all:
a reader of the repository cannot open them.
"""

import os
import re
import subprocess
from typing import Dict, List, Set

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANNED_SUFFIXES = (".py", ".md", ".flags", ".csv")

# Notes kept outside the repository (assembled so that this file does not cite them itself).
EXTERNAL_NOTES = tuple(n + ".md" for n in ("l3c" + "_spec", "jax" + "_notes",
                                          "peers_and" + "_ecosystem", "sty" + "le"))
_EXTERNAL = re.compile("|".join([re.escape(n) for n in EXTERNAL_NOTES]
                                + [r"shared/" + "docs", r"(?<![\w/])" + "baselines" + r"\.md"]))
# A repository path of a markdown file, optionally with a section: docs/x.md#some-section.
_CITATION = re.compile(r"(?<![\w./:-])((?:[\w-]+/)+[\w.-]+\.md)(#[\w-]+)?")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)

def scanned_files() -> List[str]:
  """Tracked files with a scanned suffix, relative to the repository root."""
  try:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    paths = out.splitlines()
  except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk, skipping builds
    skip = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache"}
    paths = []
    for top, dirs, files in os.walk(ROOT):
      dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
      paths += [os.path.relpath(os.path.join(top, f), ROOT) for f in files]
  own = os.path.relpath(os.path.abspath(__file__), ROOT)
  return sorted(p for p in paths if p.endswith(SCANNED_SUFFIXES) and p != own)


def heading_anchor(heading: str) -> str:
  """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to '-'."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> Set[str]:
  return {heading_anchor(h) for h in _HEADING.findall(markdown)}


def broken_citations(files: Dict[str, str], exists) -> List[str]:
  """'path:line: problem' for every external note named and every citation that does not resolve.

  Args:
    files: repository-relative path -> text.
    exists: callable(path) -> markdown text of a repository file, or None if there is none.
  """
  problems = []
  for path, text in files.items():
    for lineno, line in enumerate(text.splitlines(), 1):
      for m in _EXTERNAL.finditer(line):
        problems.append(f"{path}:{lineno}: cites {m.group(0)!r}, which is not in the repository")
      for m in _CITATION.finditer(line):
        target, section = m.group(1), m.group(2)
        # Markdown links are relative to their file; comments cite from the repository root.
        content = exists(target)
        if content is None and path.endswith(".md"):
          content = exists(os.path.normpath(os.path.join(os.path.dirname(path), target)))
        if content is None:
          problems.append(f"{path}:{lineno}: {target} does not exist")
        elif section and section[1:] not in anchors(content):
          problems.append(f"{path}:{lineno}: {target} has no section {section}")
  return problems


def _read_repo_file(path: str):
  full = os.path.join(ROOT, path)
  if not os.path.isfile(full):
    return None
  with open(full, encoding="utf-8", errors="replace") as f:
    return f.read()


def test_every_cited_document_and_section_exists():
  files = {p: _read_repo_file(p) for p in scanned_files()}
  assert len(files) > 50, "file list looks wrong"
  problems = broken_citations({p: t for p, t in files.items() if t is not None}, _read_repo_file)
  assert not problems, "\n".join(problems)


@pytest.mark.parametrize("text, expected", [
    ("see docs/l3c_reference.md#quantizer", []),
    ("see docs/missing.md", ["a.py:1: docs/missing.md does not exist"]),
    ("see docs/l3c_reference.md#no-such-section",
     ["a.py:1: docs/l3c_reference.md has no section #no-such-section"]),
    ("(" + "l3c" + "_spec.md Sec. 3)",
     ["a.py:1: cites '" + "l3c" + "_spec.md', which is not in the repository"]),
    ("../" + "shared/docs/x", ["a.py:1: cites 'shared/" + "docs', which is not in the repository"]),
    ("bare " + "baselines.md", ["a.py:1: cites 'baselines.md', which is not in the repository"]),
    ("https://github.com/o/r/blob/main/README.md is a link, not a repository path", []),
])
def test_broken_citations_are_reported(text, expected):
  assert broken_citations({"a.py": text}, _read_repo_file) == expected


def test_markdown_links_resolve_relative_to_their_file():
  link = "[notes](l3c_pytorch/README.md)"
  assert broken_citations({"third_party/README.md": link}, _read_repo_file) == []
  assert broken_citations({"docs/README.md": link}, _read_repo_file) == [
      "docs/README.md:1: l3c_pytorch/README.md does not exist"]


def test_heading_anchor_follows_github():
  assert heading_anchor("Official L3C-PyTorch on this CPU") == "official-l3c-pytorch-on-this-cpu"
  assert heading_anchor("Data recipe v3") == "data-recipe-v3"
