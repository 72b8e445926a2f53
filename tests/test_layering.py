"""The package's floors: each room imports only rooms on lower floors, the generic rooms never name a
method, no method folder imports another's, and no two modules import each other (at load time or at
type-check level).

The floors, lowest first (a room may import its own modules and any room on a lower floor, never one on
its own floor or above, in any import: at module level, inside a function or under `TYPE_CHECKING`):

0. `utils`  1. `caching`, `core`, `data`  2. `serialization`  3. `modeling`  4. `methods`, `shipped`
5. `train`, `evaluate`, `synthetic`  6. `hub`  7. `experiment`  8. `cli`, `runner`, `testing`

`hf_prompt_clip/__init__.py` is the roof: it imports what users import and is on no floor.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from hf_prompt_clip.core.registry import method_order

PACKAGE = Path(__file__).parent.parent / "hf_prompt_clip"
FLOORS = [
    {"utils"},
    {"caching", "core", "data"},
    {"serialization"},
    {"modeling"},
    {"methods", "shipped"},
    {"train", "evaluate", "synthetic"},
    {"hub"},
    {"experiment"},
    {"cli", "runner", "testing"},
]
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}
#: Rooms that serve every method and so never name one.
GENERIC_ROOMS = (
    "caching",
    "core",
    "serialization",
    "modeling",
    "train",
    "evaluate",
    "experiment",
    "cli",
    "hub",
)


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """`hf_prompt_clip.a.b` for `<package>/a/b.py` (and for `<package>/a/b/__init__.py`)."""
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: Path = PACKAGE, module_level_only: bool = False) -> set[str]:
    """The absolute names of the package's modules (or objects) a file imports, relative imports resolved.

    With `module_level_only`, only the module-level imports (those that run when the module loads and those a
    type checker follows, under `if TYPE_CHECKING:`), not the ones inside functions."""
    tree = ast.parse(path.read_text())
    here = module_name(path, package).split(".")
    package_parts = here if path.name == "__init__.py" else here[:-1]
    nodes = _module_level_nodes(tree) if module_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            if stem == package.name or stem.startswith(package.name + "."):
                found.update(f"{stem}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == package.name)
    return found


def _module_level_nodes(tree: ast.Module):
    """The module-level import statements: top level and inside `if` (`TYPE_CHECKING` too) and `try` blocks."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)


def room_of(name: str) -> str | None:
    """The first-level room of an absolute module name (`hf_prompt_clip.train.trainer` -> `train`)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def upward_imports(files: list[Path], package: Path = PACKAGE) -> dict[str, list[str]]:
    """File -> the rooms it imports that are on its own floor or above (its own room excepted)."""
    offenders = {}
    for path in files:
        room = room_of(module_name(path, package))
        if room not in FLOOR:
            offenders[str(path.relative_to(package))] = [f"its room {room!r} is on no floor"]
            continue
        bad = sorted(
            {
                found
                for found in map(room_of, imports_of(path, package))
                if found and found != room and FLOOR.get(found, len(FLOORS)) >= FLOOR[room]
            }
        )
        if bad:
            offenders[str(path.relative_to(package))] = bad
    return offenders


def import_cycles(files: list[Path], package: Path = PACKAGE) -> list[list[str]]:
    """Cycles of module-level imports between modules, `TYPE_CHECKING` ones included (strongly connected
    components of two or more): a circle a type checker would follow is a circle of the design too."""
    modules = {module_name(p, package): p for p in files}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in imports_of(path, package, module_level_only=True):
            # `from .pkg import name`: the module `pkg.name` if it is one, else the package `pkg`
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_every_room_imports_only_rooms_on_lower_floors():
    assert upward_imports(package_files()) == {}


def test_no_import_circle_between_modules_also_at_type_check_level():
    assert import_cycles(package_files()) == []


def test_no_method_folder_imports_another_methods_folder():
    offenders = {}
    for folder in sorted(p for p in (PACKAGE / "methods").iterdir() if (p / "__init__.py").exists()):
        for path in sorted(folder.rglob("*.py")):
            others = {
                name.split(".")[2]
                for name in imports_of(path)
                if name.startswith("hf_prompt_clip.methods.") and len(name.split(".")) > 3
            } - {folder.name}
            if others:
                offenders[str(path.relative_to(PACKAGE))] = sorted(others)
    assert offenders == {}


def method_words() -> set[str]:
    """Every registered method's name and the identifiers of its folder's classes (`CoOpModel`, ...)."""
    import hf_prompt_clip.methods as methods

    words = set(method_order())
    for folder in Path(methods.__file__).parent.iterdir():
        if (folder / "__init__.py").exists():
            words.add(folder.name)
            for path in folder.rglob("*.py"):
                words.update(
                    node.name
                    for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.ClassDef)
                )
    return words


def named_methods(path: Path, words: set[str]) -> set[str]:
    """The method names and method classes a file's code uses as identifiers or strings (its docstrings and
    comments are prose and may cite a method as an example)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in words:
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in words:
            found.add(node.attr)
        elif isinstance(node, ast.alias) and node.name.split(".")[-1] in words:
            found.add(node.name)
        elif isinstance(node, ast.ImportFrom) and ".methods." in f".{node.module or ''}.":
            found.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.update(w for w in words if re.fullmatch(re.escape(w), node.value))
    return found


@pytest.mark.parametrize("room", GENERIC_ROOMS)
def test_generic_rooms_name_no_method(room):
    words = method_words()
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(found)
        for path in sorted((PACKAGE / room).rglob("*.py"))
        if (found := named_methods(path, words))
    }
    assert offenders == {}


# ---------------------------------------------------------------- the checks see what they look for


def write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "hf_prompt_clip"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_the_floor_check_sees_upward_imports_of_every_kind(tmp_path):
    package = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "core/__init__.py": "",
            "core/a.py": "from ..hub import push\n",
            "core/b.py": "def f():\n    from .. import evaluate\n",
            "core/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hf_prompt_clip.train.x\n",
            "core/d.py": "from ..data import templates\nfrom ..utils import logs\nfrom . import a\n",
            "methods/__init__.py": "",
            "methods/coop/__init__.py": "",
            "methods/coop/model.py": "from ...modeling import model\nfrom ...experiment import runner\n",
        },
    )
    found = upward_imports(sorted(package.rglob("*.py")), package)
    found.pop("__init__.py", None)
    for name in ("core/__init__.py", "methods/__init__.py", "methods/coop/__init__.py"):
        found.pop(name, None)
    assert found == {
        "core/a.py": ["hub"],
        "core/b.py": ["evaluate"],
        "core/c.py": ["train"],
        "core/d.py": ["data"],  # a peer on the same floor
        "methods/coop/model.py": ["experiment"],
    }


def test_the_cycle_check_sees_load_time_and_type_check_cycles_and_not_a_deferred_one(tmp_path):
    package = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "core/__init__.py": "",
            "core/a.py": "from .b import x\n",
            "core/b.py": "from .a import y\n",
            "core/c.py": "def f():\n    from .d import z\n",
            "core/d.py": "from .c import w\n",
        },
    )
    assert import_cycles(sorted(package.rglob("*.py")), package) == [
        ["hf_prompt_clip.core.a", "hf_prompt_clip.core.b"]
    ]


def test_the_method_name_check_sees_code_and_skips_prose(tmp_path):
    path = tmp_path / "x.py"
    path.write_text(
        '"""Works for CoOp and coop."""\n'
        "from ..methods.coop import CoOpModel\n"
        "def f(name):\n"
        '    """coop is an example."""\n'
        "    # coop in a comment\n"
        '    return name == "coop"\n'
    )
    assert named_methods(path, {"coop", "CoOpModel"}) == {"coop", "CoOpModel", "methods.coop"}


def test_every_module_says_what_room_it_is_in():
    silent = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "Room" not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    ]
    assert silent == []
