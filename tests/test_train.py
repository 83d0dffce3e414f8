"""Training: the loss falls, a seed fixes the result, resuming equals running straight through, and the same
command runs under `accelerate launch` with two CPU processes."""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from diffusion_core.device import cpu_has_fast_bf16
from diffusion_core.diffusion import DiffusionConfig
from diffusion_core.files.checkpoint import load_checkpoint, save_checkpoint
from diffusion_core.models import MLPConfig, UNetConfig, build_model, model_config_to_dict
from diffusion_core.pipeline import ModelInfo, SamplingDefaults, checkpoint_config
from diffusion_core.training.config import TrainConfig, load_train_config
from diffusion_core.training.loop import train
from diffusion_core.training.state import load_init, load_init_weights

TINY = dict(model={"type": "mlp", "hidden": 32, "num_layers": 2, "time_dim": 16}, steps=40, batch_size=128,
            warmup_steps=5, sample_every=1000, save_every=20)


def tiny_config(tmp_path, **kw):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({**TINY, **kw}))
    return load_train_config("spiral", path), path


def weights(folder):
    return load_checkpoint(folder).state_dict


def test_loss_falls_and_checkpoint_is_written(tmp_path):
    config, _ = tiny_config(tmp_path, steps=150, lr=3e-3)
    out = train(config, tmp_path / "run", "test")
    ckpt = load_checkpoint(out)
    assert ckpt.config["training"]["final_loss"] < 0.6  # an untrained eps-predictor scores ~1.0
    assert ckpt.config["model"] == {"type": "mlp", **MLPConfig(hidden=32, num_layers=2, time_dim=16).__dict__}
    assert "```bash\ntest\n```" in (out / "README.md").read_text()  # the card records the exact command
    assert "- 150 steps on 10,000 examples in " in (out / "README.md").read_text()  # and the data it saw
    assert (out / "samples" / "step_000150.png").exists()
    assert {v.dtype for v in ckpt.state_dict.values()} == {torch.float16}  # the shipped weights: half the file
    assert "exponential moving average, float16 safetensors" in (out / "README.md").read_text()


def test_float16_weights_give_the_float32_models_outputs():
    from diffusion_core.models import UNetConfig, build_model
    from diffusion_core.training.loop import shipped_weights

    torch.manual_seed(0)
    model = build_model(UNetConfig(in_channels=3, image_size=16, base_channels=16, channel_mults=(1, 2),
                                   num_classes=3, patch_size=2))
    with torch.no_grad():  # random output layer: the freshly built UNet's is zero, which would hide any error
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    loaded = build_model(model.config)
    loaded.load_state_dict(shipped_weights(model))
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x, t, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 10, 500, 999]), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        want, got = model(x, t, y), loaded(x, t, y)
    assert want.abs().mean() > 0.1
    assert (got - want).abs().max() < 1e-2 * want.abs().max()
    assert not torch.equal(got, want)  # float16 did round: the test sees the stored precision


def test_learning_rate_warms_up_then_stays_or_follows_a_half_cosine_to_zero(tmp_path):
    config, _ = tiny_config(tmp_path, steps=105, warmup_steps=5, lr_decay="constant")
    assert [config.lr_factor(s) for s in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert config.lr_factor(104) == 1.0
    cosine = replace(config, lr_decay="cosine")
    assert cosine.lr_factor(0) == pytest.approx(0.2) and cosine.lr_factor(5) == 1.0
    assert cosine.lr_factor(55) == pytest.approx(0.5) and cosine.lr_factor(105) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="lr_decay"):
        replace(config, lr_decay="step")


@pytest.mark.parametrize("lr_decay", ["constant", "cosine"])
def test_same_seed_same_weights_and_resume_equals_straight_run(tmp_path, lr_decay):
    config, _ = tiny_config(tmp_path, lr_decay=lr_decay)
    straight = weights(train(config, tmp_path / "a", "test"))
    again = weights(train(config, tmp_path / "b", "test"))
    train(config, tmp_path / "c", "test", max_steps=20)  # stop at step 20, then resume to 40
    resumed = weights(train(config, tmp_path / "c", "test"))
    assert sorted(f.name for f in (tmp_path / "c" / "samples").iterdir()) == ["step_000020.png", "step_000040.png"]
    for k in straight:
        assert torch.equal(straight[k], again[k]), k
        assert torch.equal(straight[k], resumed[k]), k
    other = weights(train(replace(config, seed=1), tmp_path / "d", "test"))
    assert not all(torch.equal(straight[k], other[k]) for k in straight)


def test_runs_one_after_another_in_one_process_with_other_precision_and_accumulation(tmp_path):
    """A notebook: Accelerate's process-wide state would refuse the second run's settings; each run starts it
    afresh, and a run repeated after a different one gives the same weights."""
    outs = []
    for i, (mp, accum) in enumerate([("no", 1), ("bf16", 2), ("no", 1)]):
        config, _ = tiny_config(tmp_path, steps=4, mixed_precision=mp, grad_accum=accum)
        outs.append(train(config, tmp_path / f"run{i}", "test"))
    assert load_checkpoint(outs[1]).config["training"]["config"]["grad_accum"] == 2
    first, last = weights(outs[0]), weights(outs[2])
    assert all(torch.equal(first[k], last[k]) for k in first)


def test_accelerate_launch_two_cpu_processes(tmp_path):
    _, path = tiny_config(tmp_path, steps=10)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "diffusion_core.train", "--dataset", "spiral", "--config", str(path), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=os.getcwd())
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 process(es)" in r.stdout + r.stderr
    assert load_checkpoint(out).config["training"]["processes"] == 2


def test_init_from_starts_at_the_checkpoint_and_the_card_records_both_commands(tmp_path):
    config, _ = tiny_config(tmp_path)
    parent = train(config, tmp_path / "parent", "first command")
    frozen = replace(config, lr=0.0, steps=10)  # lr 0: weights stay the parent's, and so does their EMA
    child = train(frozen, tmp_path / "child", "second command", init_from=str(parent))
    child_weights = weights(child)
    for k, v in weights(parent).items():
        assert torch.equal(child_weights[k], v), k
    card = (child / "README.md").read_text()
    assert "```bash\nfirst command\nsecond command\n```" in card
    assert load_checkpoint(child).config["training"]["init_from"]["training"]["command"] == "first command"


def test_init_from_resumes_its_own_state_and_replaces_the_parents(tmp_path):
    config, _ = tiny_config(tmp_path)
    parent = train(config, tmp_path / "a", "first")  # leaves a finished train_state in a/
    straight = weights(train(replace(config, steps=30), tmp_path / "b", "second", init_from=str(parent)))
    train(config, tmp_path / "c", "first")
    train(replace(config, steps=30), tmp_path / "c", "second", max_steps=10, init_from=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="pass --init-from"):  # a plain run must not resume a fine-tuning state
        train(config, tmp_path / "c", "first")
    resumed = weights(train(replace(config, steps=30), tmp_path / "c", "second", init_from=str(tmp_path / "c")))
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k
    wide = replace(config, model=MLPConfig(hidden=64, num_layers=2, time_dim=16))
    with pytest.raises(ValueError, match="differs"):
        train(wide, tmp_path / "d", "third", init_from=str(parent))


def test_bf16_on_a_cpu_without_native_bf16_warns(tmp_path):
    amd = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\nprocessor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f\n"
    assert cpu_has_fast_bf16(amd) is False
    assert cpu_has_fast_bf16(amd.replace("avx512f\n", "avx512f amx_bf16 amx_tile\n", 1)) is True
    assert cpu_has_fast_bf16("no flags here") is None
    _, path = tiny_config(tmp_path, steps=3, mixed_precision="bf16")  # its own process: Accelerate's state is global
    cmd = [sys.executable, "-m", "diffusion_core.train", "--dataset", "spiral", "--config", str(path), "--out",
           str(tmp_path / "out"), "--threads", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=os.getcwd())
    assert r.returncode == 0, r.stderr[-3000:]
    warned = "bf16 autocast is emulated" in r.stdout + r.stderr
    assert warned == (cpu_has_fast_bf16() is False and not torch.cuda.is_available())  # this machine's own flags


def test_init_from_may_set_dropout_afresh_but_not_a_weight_shape(tmp_path):
    unet = UNetConfig(in_channels=3, image_size=8, base_channels=8, channel_mults=(1, 2), groups=4, num_classes=4)
    info = ModelInfo("pokemon", (3, 8, 8), ("red", "green", "blue", "white"), DiffusionConfig(T=50),
                     SamplingDefaults("ddim", 5, 0.0, 2.0))
    saved = build_model(unet).state_dict()
    save_checkpoint(tmp_path, saved, checkpoint_config(unet, info))
    got, _ = load_init(tmp_path, model_config_to_dict(replace(unet, dropout=0.1)))
    assert got.keys() == saved.keys() and all(torch.equal(got[k], saved[k]) for k in saved)
    build_model(replace(unet, dropout=0.1)).load_state_dict(got)  # the dropout model takes the weights as they are
    with pytest.raises(ValueError, match="differs"):
        load_init(tmp_path, model_config_to_dict(replace(unet, base_channels=16)))


def test_init_from_may_add_a_refine_head_but_not_drop_one(tmp_path):
    unet = UNetConfig(in_channels=3, image_size=8, base_channels=8, channel_mults=(1, 2), groups=4, num_classes=4)
    info = ModelInfo("pokemon", (3, 8, 8), ("red", "green", "blue", "white"), DiffusionConfig(T=50),
                     SamplingDefaults("ddim", 5, 0.0, 2.0))
    config = checkpoint_config(unet, info)
    del config["model"]["refine_channels"]  # written before the field existed: it reads as its default, 0
    save_checkpoint(tmp_path / "plain", build_model(unet).state_dict(), config)
    headed = replace(unet, refine_channels=8)
    got, _ = load_init(tmp_path / "plain", model_config_to_dict(headed))
    model = build_model(headed)
    load_init_weights(model, got)  # the head keeps its zero-initialised start
    assert all(torch.equal(model.state_dict()[k], v) for k, v in got.items())
    with pytest.raises(ValueError, match="do not fit"):  # a model missing more than the head
        load_init_weights(model, {k: v for k, v in got.items() if k != "conv_in.weight"})
    save_checkpoint(tmp_path / "headed", model.state_dict(), checkpoint_config(headed, info))
    for folder, other in (("headed", unet), ("headed", replace(headed, refine_channels=16)),
                          ("plain", replace(headed, base_channels=16))):  # drop or resize a head; grow and widen
        with pytest.raises(ValueError, match="differs"):
            load_init(tmp_path / folder, model_config_to_dict(other))


def test_train_only_trains_the_named_parameters_and_the_card_says_so(tmp_path):
    config, _ = tiny_config(tmp_path, steps=20, train_only="out.")
    parent = train(replace(config, train_only=""), tmp_path / "parent", "first")
    child = train(config, tmp_path / "child", "second", init_from=str(parent))
    before, after = weights(parent), weights(child)
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("out."))
    assert not torch.equal(before["out.weight"], after["out.weight"])
    assert "training only the `out.*` weights (the rest frozen)" in (child / "README.md").read_text()
    with pytest.raises(ValueError, match="names no parameter"):
        train(replace(config, train_only="refine."), tmp_path / "none", "third")


def test_a_second_fine_tuning_into_the_same_folder_is_a_new_run_not_the_first_resumed(tmp_path):
    config, _ = tiny_config(tmp_path)
    c = tmp_path / "c"
    train(config, c, "first")
    train(replace(config, steps=30), c, "second", init_from=str(c))  # leaves its finished state in c/
    third = replace(config, steps=20, seed=1)
    elsewhere = weights(train(third, tmp_path / "e", "third", init_from=str(c)))
    in_place = train(third, c, "third", init_from=str(c))
    for k, v in weights(in_place).items():
        assert torch.equal(elsewhere[k], v), k
    assert "```bash\nfirst\nsecond\nthird\n```" in (in_place / "README.md").read_text()
    assert [f.name for f in (in_place / "samples").iterdir()] == ["step_000020.png"]  # not the earlier runs' grids
    train(replace(third, seed=2), c, "fourth", max_steps=10, init_from=str(c))
    with pytest.raises(ValueError, match="unfinished run"):  # starting afresh would throw away its 10 steps
        train(replace(third, seed=3), c, "fifth", init_from=str(c))
    state = c / "train_state" / "state.json"
    state.write_text(json.dumps({k: v for k, v in json.loads(state.read_text()).items() if k != "config"}))
    with pytest.raises(ValueError, match="before train states recorded"):  # an older state: finished or not is unknown
        train(replace(third, seed=3), c, "fifth", init_from=str(c))
    train(config, tmp_path / "p", "plain", max_steps=30)
    with pytest.raises(ValueError, match="past this run"):  # a plain run resumes with changed flags, not these
        train(replace(config, steps=20), tmp_path / "p", "plain")


def test_train_command_reports_a_missing_init_checkpoint_or_dataset(tmp_path, capsys, monkeypatch):
    from diffusion_core.train import main

    _, path = tiny_config(tmp_path)
    args = ["--dataset", "spiral", "--config", str(path), "--out", str(tmp_path / "x")]
    assert main([*args, "--init-from", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "x" / "model.safetensors").exists()
    monkeypatch.setenv("DIFFUSION_CORE_CACHE", str(tmp_path / "empty"))
    assert main(["--dataset", "digits", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "python -m diffusion_core.data fetch digits" in err
    assert not (tmp_path / "y").exists()


def _as_recorded(config: dict, recorded: dict) -> dict:
    """`config` cut down to the fields (nested ones too: the model's) that `recorded` has."""
    return {k: _as_recorded(config[k], v) if isinstance(v, dict) else config[k] for k, v in recorded.items()}


@pytest.mark.parametrize("name", ["spiral", "digits", "fashion", "pokemon", "pokemon_autoencoder", "pokemon_latent"])
def test_each_shipped_checkpoints_recorded_commands_ask_for_the_config_it_was_trained_with(name):
    """What makes a card's 'Reproduce with' true: every command of the lineage, parsed by the train command
    today, gives exactly the training config recorded beside it (presets, --config files and flags included)."""
    import shlex

    from diffusion_core.files.card import training_lineage
    from diffusion_core.train import config_from_args, parse_args

    root = Path(__file__).resolve().parent.parent
    chain = training_lineage(load_checkpoint(root / "checkpoints" / name).config["training"])
    assert chain and all(tr["command"].startswith("python -m diffusion_core.train ") for tr in chain)
    folders = []  # (out, init_from) of each command
    for tr in chain:
        args = parse_args(shlex.split(tr["command"])[3:])
        folders.append((args.out, args.init_from))
        # read by today's code: fields added since the run take their defaults, every recorded value stays
        recorded = json.loads(json.dumps(TrainConfig.from_dict(tr["config"]).to_dict()))
        assert _as_recorded(recorded, tr["config"]) == tr["config"], tr["command"]
        assert json.loads(json.dumps(config_from_args(args).to_dict())) == recorded, tr["command"]
    assert folders[-1][0] == Path("checkpoints") / name and folders[0][1] is None
    assert all(Path(init) == out for (out, _), (_, init) in zip(folders, folders[1:]))  # each from the one before


def test_a_config_file_extends_another_and_overrides_it(tmp_path):
    """{"extends": FILE}: that file's fields (its model block whole), then the extending file's over them; a loop
    fails."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.json").write_text(json.dumps({"model": {"type": "mlp", "hidden": 32, "num_layers": 2},
                                                    "steps": 10, "seed": 1}))
    (tmp_path / "sub" / "next.json").write_text(json.dumps({"extends": "../base.json", "seed": 2}))
    config = load_train_config("spiral", tmp_path / "sub" / "next.json")
    assert (config.steps, config.seed) == (10, 2) and config.model.hidden == 32 and config.model.num_layers == 2
    (tmp_path / "a.json").write_text(json.dumps({"extends": "b.json"}))
    (tmp_path / "b.json").write_text(json.dumps({"extends": "a.json"}))
    with pytest.raises(ValueError, match="loop"):
        load_train_config("spiral", tmp_path / "a.json")
