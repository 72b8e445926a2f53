"""The package's floors: `core/` is the ground floor and imports nothing above it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "hf_prompt_clip"
ABOVE_CORE = {
    "data",
    "evaluate",
    "experiment",
    "hub",
    "methods",
    "synthetic",
    "train",
    "cli",
    "runner",
    "shipped",
    "testing",
}


def imported_packages(path: Path) -> set[str]:
    """The first-level `hf_prompt_clip` subpackages or modules a file imports (relative or absolute)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level >= 2 and node.module:  # from ..hub import x
                found.add(node.module.split(".")[0])
            elif node.level >= 2:  # from .. import hub
                found.update(alias.name for alias in node.names)
            elif node.level == 0 and (node.module or "").startswith("hf_prompt_clip."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("hf_prompt_clip."))
    return found


def test_core_imports_nothing_above_it():
    offenders = {
        path.name: sorted(imported_packages(path) & ABOVE_CORE)
        for path in sorted((PACKAGE / "core").glob("*.py"))
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_check_sees_upward_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from ..hub import push\nfrom .. import evaluate\nimport hf_prompt_clip.train.trainer\n"
    )
    assert imported_packages(sample) == {"hub", "evaluate", "train"}
