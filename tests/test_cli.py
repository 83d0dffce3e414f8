"""The sampling and evaluation command lines, on a small checkpoint trained here with the real train command."""
import json
import shlex
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from diffusion_core.diffusion import DiffusionConfig
from diffusion_core.evaluate import main as evaluate_main
from diffusion_core.files.checkpoint import save_checkpoint
from diffusion_core.models import UNetConfig, build_model
from diffusion_core.pipeline import ModelInfo, SamplingDefaults, checkpoint_config
from diffusion_core.sample import main as sample_main


@pytest.fixture(scope="module")
def spiral_ckpt(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spiral")
    (tmp / "tiny.json").write_text(json.dumps({"model": {"type": "mlp", "hidden": 32, "num_layers": 2, "time_dim": 16},
                                              "steps": 30, "sample_every": 1000, "save_every": 1000}))
    out = tmp / "ckpt"
    subprocess.run([sys.executable, "-m", "diffusion_core.train", "--dataset", "spiral", "--config",
                    str(tmp / "tiny.json"), "--out", str(out), "--threads", "1"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def image_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("img") / "ckpt"
    config = UNetConfig(in_channels=3, image_size=8, base_channels=8, channel_mults=(1, 2), groups=4, num_classes=4)
    info = ModelInfo("pokemon", (3, 8, 8), ("red", "green", "blue", "white"), DiffusionConfig(T=50),
                     SamplingDefaults("ddim", 5, 0.0, 2.0))
    save_checkpoint(out, build_model(config).state_dict(), checkpoint_config(config, info))
    return out


def test_sample_points_npz(spiral_ckpt, tmp_path):
    out = tmp_path / "pts.npz"
    assert sample_main(["--checkpoint", str(spiral_ckpt), "--num", "7", "--sampler", "ddim", "--steps", "5",
                            "--seed", "1", "--out", str(out)]) == 0
    with np.load(out) as z:
        assert z["samples"].dtype == np.float32 and z["samples"].shape == (7, 2) and "labels" not in z.files


def test_sample_images_npz_and_png_with_labels(image_ckpt, tmp_path):
    args = ["--checkpoint", str(image_ckpt), "--num", "8", "--label", "all", "--sampler", "dpm++", "--steps", "3",
            "--guidance", "3", "--seed", "0", "--batch", "3"]
    assert sample_main(args + ["--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as z:
        assert z["samples"].dtype == np.uint8 and z["samples"].shape == (8, 8, 8, 3)
        assert z["labels"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert sample_main(args + ["--out", str(tmp_path / "s.png")]) == 0
    png = Image.open(tmp_path / "s.png")
    assert png.format == "PNG" and png.size == (2 * (2 * 10 + 2), 2 * (4 * 10 + 2))  # 4 rows (classes) of 2, x2
    # same seed, same samples
    assert sample_main(args + ["--out", str(tmp_path / "t.npz")]) == 0
    assert np.array_equal(np.load(tmp_path / "s.npz")["samples"], np.load(tmp_path / "t.npz")["samples"])


@pytest.mark.parametrize("bad", [["--label", "9"], ["--steps", "0"], ["--guidance", "-2"], ["--num", "0"],
                                 ["--out", "x.txt"], ["--guidance-interval", "500", "100"]])
def test_sample_bad_input_is_a_clear_error(image_ckpt, tmp_path, capsys, bad):
    args = ["--checkpoint", str(image_ckpt), "--num", "2", "--sampler", "ddim", "--seed", "0",
            "--out", str(tmp_path / "x.npz")]
    args = args + bad if "--out" not in bad else args[:-2] + bad
    assert sample_main(args) == 2
    assert "error:" in capsys.readouterr().err


def test_sample_missing_checkpoint(tmp_path, capsys):
    assert sample_main(["--checkpoint", str(tmp_path / "nope"), "--num", "1", "--seed", "0",
                            "--out", str(tmp_path / "x.npz")]) == 2
    assert "nope" in capsys.readouterr().err


def test_evaluate_spiral_prints_json(spiral_ckpt, capsys):
    assert evaluate_main(["--checkpoint", str(spiral_ckpt), "--sampler", "ddim", "--steps", "10", "--num", "300"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) >= {"mean_distance", "coverage_ks", "n"} and metrics["n"] == 300
    assert 0 <= metrics["coverage_ks"] <= 1 and metrics["mean_distance"] > 0


def test_evaluate_write_card_records_metrics_command_and_a_reproducible_picture(spiral_ckpt, tmp_path, capsys):
    import shutil
    folder = tmp_path / "card"
    shutil.copytree(spiral_ckpt, folder)
    argv = ["--checkpoint", str(folder), "--suite", "--write-card", "--num", "200"]
    assert evaluate_main(argv) == 0
    config = json.loads((folder / "config.json").read_text())
    assert set(config["metrics"]) == {"ddpm-1000", "ddim-50", "dpm++-20"}
    assert config["evaluation"]["command"] == "python -m diffusion_core.evaluate " + " ".join(argv)
    card = (folder / "README.md").read_text()
    assert config["evaluation"]["command"] in card and "![samples at the default settings](samples.png)" in card
    sample_command = config["evaluation"]["samples"]["command"]
    assert sample_command in card
    # the recorded sample command draws exactly the card's picture
    again = tmp_path / "again.png"
    assert sample_main(shlex.split(sample_command)[3:-1] + [str(again)]) == 0
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(folder / "samples.png")))


@pytest.mark.parametrize("T, shipped", [(1000, (166, 881)), (200, None)])
def test_digits_suite_intervals_follow_the_checkpoints_schedule(tmp_path, T, shipped):
    """'every step' is (-1, T - 1] and 'EDM2 interval' the steps with sigma in EDM2's (0.28, 5.42], for any T."""
    from diffusion_core.evaluate import suite
    from diffusion_core.pipeline import Pipeline

    config = UNetConfig(in_channels=1, image_size=8, base_channels=8, channel_mults=(1,), groups=4, num_classes=10)
    info = ModelInfo("digits", (1, 8, 8), tuple("0123456789"), DiffusionConfig(T=T), SamplingDefaults("ddim", 5))
    save_checkpoint(tmp_path, build_model(config).state_dict(), checkpoint_config(config, info))
    pipe = Pipeline.load(str(tmp_path))
    settings = suite(pipe)
    assert settings["ddim-20 g=2 every step"]["guidance_interval"] == (-1, T - 1)
    t_lo, t_hi = settings["ddim-20 g=2 EDM2 interval"]["guidance_interval"]
    sigma = (1 / pipe.schedule.snr()).sqrt()
    assert sigma[t_lo] <= 0.28 < sigma[t_lo + 1] and sigma[t_hi] <= 5.42 < sigma[t_hi + 1]
    assert shipped is None or (t_lo, t_hi) == shipped  # the interval the shipped digits card reports
