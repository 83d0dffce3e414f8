"""tools/gpu_pokemon.sh, the prepared GPU run, end to end on the CPU with tiny models: a lent GPU has minutes, so
the script must work the first time it runs there."""
import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from diffusion_core.data.datasets import cache_dir
from diffusion_core.train import config_from_args, parse_args
from diffusion_core.training.config import load_train_config

ROOT = Path(__file__).resolve().parent.parent
TINY = {"model": {"type": "unet", "in_channels": 3, "image_size": 48, "base_channels": 8, "channel_mults": [1, 2],
                  "num_res_blocks": 1, "attention": False, "groups": 4, "num_classes": 10},
        "batch_size": 2, "warmup_steps": 2, "sample_every": 1000, "save_every": 1000, "mixed_precision": "no"}


@pytest.mark.parametrize("name", ["pokemon64_gpu", "pokemon64_gpu_dropout"])
def test_the_gpu_configs_load_and_differ_only_in_dropout(name):
    config = load_train_config("pokemon", ROOT / "configs" / f"{name}.json")
    assert (config.model.base_channels, config.model.patch_size) == (64, 1)
    assert config.max_per_drawing == 2 and config.older_drawings and config.mixed_precision == "bf16"
    assert config.model.dropout == (0.1 if name.endswith("dropout") else 0.0)


@pytest.mark.skipif(not (cache_dir() / "pokemon.npz").exists(), reason="no cached Pokémon (fetch pokemon)")
def test_gpu_script_calibrates_trains_side_by_side_packs_and_evaluates(tmp_path):
    configs = []
    for name, dropout in (("a", 0.0), ("b", 0.1)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**TINY, "model": {**TINY["model"], "dropout": dropout}}))
        configs.append(f"{name}={path}")
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "ARMS": str(tmp_path / "arms"), "PYTHON": sys.executable,
           "DIFFUSION_CORE_CACHE": str(cache_dir()), "RUNS": " ".join(configs), "CALIB_SECONDS": "1",
           "TRAIN_SECONDS": "1", "MIN_STEPS": "3", "THREADS": "1", "EVAL_NUM": "10", "DEADLINE": "900"}
    done = subprocess.run(["bash", "tools/gpu_pokemon.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["a.tar", "a_samples.tar", "b.tar", "b_samples.tar", "logs.tar"]
    for name in ("a", "b"):
        with tarfile.open(out / f"{name}.tar") as tar:
            members = tar.getnames()
            assert {"pokemon/model.safetensors", "pokemon/config.json", "pokemon/README.md"} <= set(members)
            assert not any("train_state" in m or "samples" in m for m in members)
            training = json.load(tar.extractfile("pokemon/config.json"))["training"]
        with tarfile.open(out / f"{name}_samples.tar") as tar:
            assert tar.getnames()[-1].startswith("pokemon/samples/step_")
        args = parse_args(shlex.split(training["command"])[3:])  # the card's command asks for what was trained
        assert args.steps == training["steps"] >= 3 and args.out == Path("checkpoints/pokemon")  # the shipped name
        assert config_from_args(args).to_dict() == training["config"]
        assert f"{name}:" in done.stdout
    with tarfile.open(out / "logs.tar") as tar:
        calib = json.load(tar.extractfile("./calib_a.json"))["train_loop"]
        evaluation = json.load(io.TextIOWrapper(tar.extractfile("./eval_b.json")))
        found = json.load(tar.extractfile("./noise_found_a.json"))["x0_pred_error_per_255"]
    assert calib["images_per_s"] > 0 and calib["batch"] == 2
    assert 0 <= evaluation["colour_accuracy"] <= 1 and "line_copies" in json.dumps(evaluation)
    assert set(found) == {"t=20", "t=50", "t=100", "t=300", "t=600"} and "filter_noise_found_figure" in found["t=20"]
    assert "a noise found on the figures (model, filter):" in done.stdout
