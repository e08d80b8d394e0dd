"""The import layers: every import in cnnlab/ (top level, inside functions, and the
module names given to importlib as strings) points down the order below, and no
modules import each other in a cycle. The order is the README's (Layout)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cnnlab"

# Bottom to top; a module may import its own layer's modules (without a cycle) and
# any layer below. The package's __init__ and __main__ are the facade, above all.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "files", "hardware", "progress", "checkpoint"),
    ("cards",),
    ("layers",),
    ("models",),
    ("registry", "weights"),
    ("api",),
    ("data",),
    ("evaluate",),
    ("train",),
    ("classify", "text", "segment"),
    ("analysis",),
    ("studies",),
    ("commands",),
    ("__init__", "__main__"),
)
LAYER_OF = {part: level for level, parts in enumerate(LAYERS) for part in parts}
# A module name handed to importlib: "cnnlab.text.task" or "cnnlab.text.task:TextClassification".
MODULE_STRING = re.compile(r"cnnlab(\.\w+)+(:\w+)?")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The cnnlab module ``name`` refers to (a module, or a name defined in a package's __init__)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_in(source: str, module: str, package: str) -> set[str]:
    """Every cnnlab module that the source of ``module`` (in ``package``) imports, wherever
    in the file the import is; a module's own packages, imported before it, and imports
    for type annotations only do not count."""
    tree = ast.parse(source)
    # Imports under `if TYPE_CHECKING:` serve annotations only and never run.
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and ast.unparse(block.test).endswith("TYPE_CHECKING") for n in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            names = [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.fullmatch(node.value):
            names = [node.value.partition(":")[0]]
        found |= {target for n in names if n.startswith("cnnlab") and (target := resolve(n)) is not None
                  and target != module and (target == "cnnlab" or not module.startswith(f"{target}."))}
    return found


def imports(module: str) -> set[str]:
    path = MODULES[module]
    return imports_in(path.read_text(), module, module if path.name == "__init__.py" else module.rpartition(".")[0])


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYER_OF[parts[1] if len(parts) > 1 else "__init__"]


GRAPH = {module: imports(module) for module in MODULES}


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if m != "cnnlab" and m.split(".")[1] not in LAYER_OF)
    assert unplaced == [], "add these to LAYERS (and the README's layout)"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    if module == "cnnlab" or module.split(".")[1] not in LAYER_OF:
        pytest.skip("the facade, or a module without a layer (see the test above)")
    upward = sorted(target for target in GRAPH[module] if layer(target) > layer(module))
    assert upward == [], f"{module} imports modules of a higher layer"


def test_no_import_cycles() -> None:
    # Depth-first search; a back edge to a module still on the stack closes a cycle.
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_walk_sees_imports_inside_functions_relative_ones_and_importlib_strings() -> None:
    source = (
        "import torch\n"
        "if TYPE_CHECKING:\n"
        "    from cnnlab.commands import main\n"
        "from . import config\n"
        "def later():\n"
        "    from cnnlab.api import create_model\n"
        "    return importlib.import_module('cnnlab.data.cifar'), {'task': 'cnnlab.text.task:TextClassification'}\n"
    )
    assert imports_in(source, "cnnlab.train.loop", "cnnlab.train") == {
        "cnnlab.train.config", "cnnlab.api", "cnnlab.data.cifar", "cnnlab.text.task"}
