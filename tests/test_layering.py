"""The house rules the code's layout rests on (STYLE.md): `diffusion_core` never imports gradio, so the library runs
without the app's packages; app.py and widgets.py hold no maths, only gradio wiring over diffusion_core."""
import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_FILES = ("app.py", "widgets.py", "editing_widgets.py", "lab_widgets.py")

IMPORT_ALL = """
import importlib, json, pkgutil, sys
import diffusion_core
names = [m.name for m in pkgutil.walk_packages(diffusion_core.__path__, "diffusion_core.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "gradio": sorted(m for m in sys.modules if m.split(".")[0] == "gradio")}))
"""


def test_no_diffusion_core_module_imports_gradio():
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert {"diffusion_core.samplers", "diffusion_core.playground", "diffusion_core.train"} <= set(got["modules"])
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
