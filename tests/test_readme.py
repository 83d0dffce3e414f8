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


def test_front_matter_makes_a_gradio_space_listing_the_apps_hub_models():
    """The README's front matter is what the Hub reads to build the Space: the Gradio it installs must be the
    one the requirements pin, the app file must exist, and `models` must name the repos app.HUB_REPOS loads."""
    import gradio
    from huggingface_hub import metadata_load

    import app

    meta = metadata_load(ROOT / "README.md")
    assert meta["sdk"] == "gradio" and (ROOT / meta["app_file"]).is_file() and meta["title"]
    assert meta["sdk_version"] == gradio.__version__
    assert len(meta["short_description"]) <= 60  # the Hub's limit
    published = sorted(repo for repo, _revision in filter(None, app.HUB_REPOS.values()))
    assert sorted(meta["models"]) == published
