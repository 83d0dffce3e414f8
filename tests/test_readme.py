"""The README's Python example runs as written, on the shipped digits checkpoint."""
import re
from pathlib import Path

import pytest
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


def published_repos(hub_repos: dict) -> list[str]:
    """The Hub repos an app.HUB_REPOS-shaped dict loads (None: the shipped copy), sorted."""
    return sorted(repo for repo, _revision in filter(None, hub_repos.values()))


def check_front_matter(readme: Path, hub_repos: dict) -> None:
    """The README's front matter is what the Hub reads to build the Space: the Gradio it installs must be the
    one the requirements pin, the app file must exist, and `models` must name the repos `hub_repos` loads."""
    import gradio
    from huggingface_hub import metadata_load

    meta = metadata_load(readme)
    assert meta["sdk"] == "gradio" and (ROOT / meta["app_file"]).is_file() and meta["title"]
    assert meta["sdk_version"] == gradio.__version__
    assert len(meta["short_description"]) <= 60  # the Hub's limit
    assert sorted(meta["models"]) == published_repos(hub_repos)


def test_front_matter_makes_a_gradio_space_listing_the_apps_hub_models():
    import app

    check_front_matter(ROOT / "README.md", app.HUB_REPOS)


def test_front_matter_check_fails_when_a_published_repo_is_not_listed(tmp_path, monkeypatch):
    """With a repo in HUB_REPOS (none is published yet) the check has something to compare: the README without it
    in `models` fails, the same README listing it passes."""
    from huggingface_hub import metadata_load, metadata_save

    import app

    monkeypatch.setitem(app.HUB_REPOS, "digits", ("someone/diffusion-digits", "0" * 40))
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    with pytest.raises(AssertionError):
        check_front_matter(readme, app.HUB_REPOS)
    metadata_save(readme, {**metadata_load(readme), "models": ["someone/diffusion-digits"]})
    check_front_matter(readme, app.HUB_REPOS)
