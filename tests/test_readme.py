"""The README's Python example runs as written, on the shipped digits checkpoint."""
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def test_readme_python_example_runs(monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 6
    monkeypatch.chdir(ROOT)
    torch.set_num_threads(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 10 and printed[-1].startswith("9 -1 ")  # 10 DPM-Solver++ steps, ending at t = -1
    assert scope["images"].shape == (16, 1, 28, 28) and scope["labels"].tolist() == sorted(scope["labels"].tolist())
    assert scope["images"].min() >= -1 and scope["images"].max() <= 1
