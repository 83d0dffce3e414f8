"""Run a notebook's code cells in order in one namespace, as Jupyter would, without Jupyter; with --write, store
what each cell printed and the picture it ends on as its outputs, so the notebook reads on GitHub unrun.

    .venv/bin/python -m tools.run_notebook notebooks/tour.ipynb --write
"""
from __future__ import annotations

import argparse
import ast
import base64
import contextlib
import io
import json
from pathlib import Path


def run_cells(path: Path) -> tuple[dict, list[dict]]:
    """Execute the code cells in order; return the namespace and, per code cell, what it printed ("stdout") and
    the value Jupyter would display ("shown": its last expression, None where it ends in a statement)."""
    namespace, results = {"__name__": "__main__"}, []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]))
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(tree, str(path), "exec"), namespace)
            shown = eval(compile(ast.Expression(last.value), str(path), "eval"), namespace) if last else None
        results.append({"stdout": printed.getvalue(), "shown": shown})
    return namespace, results


def outputs(result: dict, count: int) -> list[dict]:
    """A cell's nbformat outputs: its printed text, then its picture (PNG) if it ends on one."""
    out = []
    if result["stdout"]:
        out.append({"output_type": "stream", "name": "stdout", "text": result["stdout"].splitlines(keepends=True)})
    shown = result["shown"]
    if shown is not None and hasattr(shown, "save"):
        png = io.BytesIO()
        shown.save(png, format="PNG")
        out.append({"output_type": "execute_result", "execution_count": count, "metadata": {},
                    "data": {"image/png": base64.b64encode(png.getvalue()).decode(),
                             "text/plain": [f"<PIL.Image.Image size={shown.size[0]}x{shown.size[1]}>"]}})
    return out


def write_outputs(path: Path, results: list[dict]) -> None:
    """Store each code cell's outputs and execution count in the notebook file."""
    notebook = json.loads(path.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    for count, (cell, result) in enumerate(zip(code, results), start=1):
        cell["execution_count"], cell["outputs"] = count, outputs(result, count)
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebook", type=Path)
    p.add_argument("--write", action="store_true", help="store the outputs in the notebook")
    args = p.parse_args()
    _, results = run_cells(args.notebook.resolve())
    if args.write:
        write_outputs(args.notebook, results)
    print(f"ran {len(results)} code cells of {args.notebook}")


if __name__ == "__main__":
    main()
