"""The house rules the code's layout rests on (STYLE.md): `diffusion_core` never imports gradio, so the library runs
without the app's packages; app.py and widgets.py hold no maths, only gradio wiring over diffusion_core; the
package's layers (the map in diffusion_core/__init__.py) import only downwards, with no import circles."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP_FILES = ("app.py", "widgets.py", "editing_widgets.py", "lab_widgets.py")

IMPORT_ALL = """
import importlib, json, pkgutil, sys
import diffusion_core
names = [m.name for m in pkgutil.walk_packages(diffusion_core.__path__, "diffusion_core.")
         if not m.name.endswith(".__main__")]  # a command line, run on import
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "gradio": sorted(m for m in sys.modules if m.split(".")[0] == "gradio")}))
"""


def test_no_diffusion_core_module_imports_gradio():
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert {"diffusion_core.samplers", "diffusion_core.playground.runs", "diffusion_core.train"} <= set(got["modules"])
    assert got["gradio"] == [], got["gradio"]


def torch_calls(path: Path) -> set[str]:
    """The torch.* / torch.nn.functional names a file uses, and whether it imports torch's submodules directly."""
    tree = ast.parse(path.read_text())
    used = {ast.unparse(node) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and ast.unparse(node.value) in ("torch", "F", "torch.nn.functional")}
    used |= {f"from {node.module}" for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch")}
    return used


def test_app_files_use_no_torch_maths():
    """The app may set torch's thread count; every tensor operation lives in diffusion_core."""
    for name in APP_FILES:
        assert torch_calls(ROOT / name) <= {"torch.set_num_threads"}, name


def test_the_layering_check_sees_torch_maths(tmp_path):
    """The check above is not blind: a file that does maths with torch is caught."""
    f = tmp_path / "bad.py"
    f.write_text("import torch\nfrom torch.nn import functional as F\nx = torch.randn(3).sqrt()\ny = F.relu(x)\n")
    assert torch_calls(f) == {"torch.randn", "F.relu", "from torch.nn"}


# ---------------------------------------------------------------- the package's layers (diffusion_core/__init__.py)

PACKAGE = ROOT / "diffusion_core"
ENGINE = ("schedules", "diffusion", "samplers", "flow", "guidance", "local_score", "editing", "pipeline", "device",
          "fast")
COMMANDS = ("train", "sample", "evaluate")
# what each part may import besides itself; the lowest three stand alone
ALLOWED = {"models": set(), "files": set(), "data": set(), "engine": {"models", "files"},
           "evaluation": {"models", "files", "data", "engine"},
           "training": {"models", "files", "data", "engine", "evaluation"},
           "playground": {"models", "files", "data", "engine", "evaluation", "training"},
           "commands": {"models", "files", "data", "engine", "evaluation", "training"}}


def part(module: str) -> str:
    """The layer of a module named relative to the package: 'training.loop' -> 'training', 'samplers' -> 'engine'."""
    head = module.split(".")[0]
    if head in ("", "__init__") or head in ENGINE:
        return "engine"
    return "commands" if head in COMMANDS else head


def package_imports(path: Path) -> set[str]:
    """The diffusion_core modules a file imports anywhere in it (lazy imports included), relative to the package."""
    here = path.relative_to(PACKAGE).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(here[:len(here) - node.level])
            mod = base + (node.module.split(".") if node.module else [])
            targets = [".".join(mod)] if node.module else [".".join(mod + [a.name]) for a in node.names]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            targets = [n[len("diffusion_core."):] for n in names if n and n.startswith("diffusion_core.")]
        else:
            continue
        found |= {t for t in targets if t}
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (a package's name stands for its __init__)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = package_imports(path)
    return graph


def test_each_layer_imports_only_the_layers_below_it():
    graph = import_graph()
    assert {"training.loop", "data.datasets", "files.hub", "playground.runs", "samplers"} <= set(graph)
    wrong = [(m, t) for m, targets in graph.items() for t in targets
             if part(t) != part(m) and part(t) not in ALLOWED[part(m)]]
    assert wrong == []


def test_no_import_circles():
    """Depth-first search over the import graph (lazy imports included): no module reaches itself."""
    graph, state = import_graph(), {}

    def visit(m: str, trail: tuple[str, ...]) -> None:
        state[m] = "open"
        for t in sorted(graph.get(m, ())):
            t = t if t in graph else t.rsplit(".", 1)[0]  # `from .models import UNet` names a package
            assert state.get(t) != "open", " -> ".join(trail + (m, t))
            if t not in state:
                visit(t, trail + (m,))
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, ())


def test_the_layer_checks_see_a_violation(tmp_path, monkeypatch):
    """Not blind: an engine module importing the playground, and a two-module circle, are both caught."""
    (tmp_path / "data").mkdir()
    (tmp_path / "samplers.py").write_text("from .playground.runs import x\n")
    (tmp_path / "data" / "a.py").write_text("def f():\n    from .b import y\n")
    (tmp_path / "data" / "b.py").write_text("from ..data.a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    with pytest.raises(AssertionError):
        test_no_import_circles()
    graph = import_graph()
    assert graph["samplers"] == {"playground.runs"} and graph["data.a"] == {"data.b"}
    assert part("playground.runs") not in ALLOWED[part("samplers")]
