"""The sprite autoencoder (first stage of latent diffusion): shapes, the KL and edge terms against their definitions,
the latents' scale, the held-out split, and a tiny training run through the train command's loop."""
import json
import math

import pytest
import torch

from diffusion_core.data.datasets import Dataset, load_dataset
from diffusion_core.files.checkpoint import load_checkpoint
from diffusion_core.models import build_model, model_config_from_dict
from diffusion_core.pipeline import Pipeline
from diffusion_core.training.autoencoder_stage import finish_autoencoder, is_heldout, load_autoencoder, psnr, split_heldout
from diffusion_core.models.autoencoder import (Autoencoder, AutoencoderConfig, edge_weights, kl_divergence,
                                               fit_preview, reconstruction_loss, unit_variance_scale)
from diffusion_core.data.sprites import family
from diffusion_core.training.config import load_train_config
from diffusion_core.training.loop import train

torch.set_num_threads(1)
SMALL = AutoencoderConfig(latent_channels=2, channels=(8, 16, 16), image_size=16)


def test_shapes_follow_the_downsampling_factor():
    config = AutoencoderConfig(latent_channels=8, channels=(8, 16, 32))
    assert config.factor == 4 and config.latent_shape == (8, 12, 12)
    model = Autoencoder(config)
    x = torch.rand(2, 3, 48, 48) * 2 - 1
    z = model.encode(x)
    assert z.shape == (2, 8, 12, 12)
    recon = model.decode(z * 100)  # far outside the training range: decode still returns images in [-1, 1]
    assert recon.shape == x.shape and recon.abs().max() <= 1
    with pytest.raises(ValueError, match="divisible"):
        AutoencoderConfig(channels=(8, 16, 32), image_size=30)


def test_config_round_trips_through_the_model_registry():
    from diffusion_core.models import model_config_to_dict

    d = model_config_to_dict(SMALL)
    assert d["type"] == "autoencoder" and model_config_from_dict(d) == SMALL
    assert isinstance(build_model(SMALL), Autoencoder)


def test_kl_matches_torch_distributions():
    mean, logvar = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    torch.testing.assert_close(kl_divergence(mean, logvar), expected)
    assert kl_divergence(torch.zeros(1, 4), torch.zeros(1, 4)).item() == 0.0


def test_edge_weights_mark_a_pixel_and_its_four_neighbours():
    x = torch.ones(1, 3, 5, 5)
    assert torch.equal(edge_weights(x, 2.0), torch.ones(1, 1, 5, 5))  # a flat image has no edge
    x[0, :, 2, 2] = -1.0  # one black pixel on white
    expected = torch.ones(1, 1, 5, 5)
    for i, j in ((2, 2), (1, 2), (3, 2), (2, 1), (2, 3)):
        expected[0, 0, i, j] = 3.0
    assert torch.equal(edge_weights(x, 2.0), expected)


def test_reconstruction_loss_is_the_weighted_l1_plus_the_kl_per_pixel_value():
    x = torch.ones(2, 3, 4, 4)
    x[:, :, 0, 0] = -1.0
    recon, mean, logvar = x + 0.5, torch.randn(2, 2, 2, 2), torch.randn(2, 2, 2, 2)
    w = edge_weights(x, 1.0)
    expected = (w * 0.5).expand_as(x).mean() + 1e-3 * kl_divergence(mean, logvar).mean() / 48
    torch.testing.assert_close(reconstruction_loss(x, recon, mean, logvar, 1.0, 1e-3), expected)


def test_psnr_of_a_known_error():
    x = torch.zeros(1, 3, 8, 8)
    assert psnr(x, x + 0.1) == pytest.approx(10 * math.log10(4 / 0.01), abs=1e-4)


def test_scale_factor_gives_unit_variance_latents():
    z = 7.0 * torch.randn(10_000)
    assert unit_variance_scale(z) == pytest.approx(1 / 7.0, rel=0.03)
    torch.manual_seed(0)
    model = Autoencoder(SMALL).eval()
    data = Dataset("pokemon", torch.rand(64, 3, 16, 16) * 2 - 1, None, ())
    config, fitted = finish_autoencoder(model, data)
    assert config.scale_factor != 1.0 and model.config == config
    assert model.encode(data.x).std().item() == pytest.approx(1.0, rel=1e-4)
    assert fitted["preview_rms"] > 0


def test_the_linear_preview_is_the_least_squares_fit():
    torch.manual_seed(0)
    model = Autoencoder(SMALL)
    x = torch.rand(64, 3, 16, 16) * 2 - 1

    def rms() -> float:
        with torch.no_grad():
            return float((model.preview(model.encoder(x)[0]) - x).pow(2).mean().sqrt())
    before = rms()
    error = fit_preview(model, x)
    assert error == pytest.approx(rms(), rel=1e-5) and error < before
    for p in model.preview.parameters():  # any step away from the least-squares weights does worse
        with torch.no_grad():
            p.add_(1e-2 * torch.randn_like(p))
        assert rms() > error
        fit_preview(model, x)


def test_held_out_sprites_are_whole_families_chosen_the_same_way_every_time():
    names = ("pikachu", "pikachu-shiny", "bulbasaur", "charmander", "charmander-mega-x", "eevee", "mew")
    data = Dataset("pokemon", torch.zeros(len(names), 3, 4, 4), torch.arange(len(names)), ("a",), names)
    train_part, held = split_heldout(data, 3)
    assert set(train_part.item_names) | set(held.item_names) == set(names)
    assert not {family(n) for n in train_part.item_names} & {family(n) for n in held.item_names}
    assert held.item_names == tuple(n for n in names if is_heldout(n, 3))
    assert held.labels.tolist() == [names.index(n) for n in held.item_names]


def tiny_run(folder, preset: str, init_from: str | None = None, **fields):
    """Train a tiny model of the pokemon_* preset `preset` into `folder` (the real sprites: make test fetches them),
    from scratch or from checkpoint `init_from`'s weights."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder.parent / f"{folder.name}.json"
    path.write_text(json.dumps({"batch_size": 16, "warmup_steps": 5, "older_drawings": False, "mixed_precision": "no",
                                **fields}))
    return train(load_train_config(preset, path), folder, "test", init_from=init_from)


@pytest.fixture(scope="module")
def tiny_autoencoder(tmp_path_factory):
    load_dataset("pokemon")  # a clear error if the sprites are missing
    return tiny_run(tmp_path_factory.mktemp("ae") / "ae", "pokemon_autoencoder", steps=60, lr=2e-3, holdout_every=10,
                    model={"type": "autoencoder", "latent_channels": 4, "channels": [8, 16, 16]},
                    sample_every=60, save_every=60)


def test_a_tiny_autoencoder_run_lowers_its_loss_and_writes_a_measured_checkpoint(tiny_autoencoder):
    out = tiny_autoencoder
    ckpt = load_checkpoint(out)
    tr = ckpt.config["training"]
    assert tr["final_loss"] < 0.8 * 1.26  # an untrained decoder's edge-weighted L1 on sprites is about 1.26
    assert ckpt.config["model"]["scale_factor"] != 1.0
    assert set(tr["heldout"]) == {"psnr", "coherence", "coherence_real", "images"} and tr["heldout"]["images"] > 0
    assert 0 < tr["preview_rms"] < 1
    card = (out / "README.md").read_text()
    assert "# pokemon autoencoder" in card and f"PSNR {tr['heldout']['psnr']:.2f} dB" in card
    assert (out / "samples" / "step_000060.png").exists()
    model = build_model(model_config_from_dict(ckpt.config["model"]))
    model.load_state_dict(ckpt.state_dict)  # the folder loads strictly into the model its config names


@pytest.fixture(scope="module")
def tiny_latent(tiny_autoencoder, tmp_path_factory):
    unet = {"type": "unet", "in_channels": 4, "image_size": 12, "base_channels": 8, "channel_mults": [1, 2],
            "num_classes": 10}
    return tiny_run(tmp_path_factory.mktemp("latent") / "latent", "pokemon_latent", model=unet,
                    autoencoder=str(tiny_autoencoder), steps=80, lr=2e-3, batch_size=64, sample_every=80,
                    save_every=80)


def test_a_tiny_latent_denoiser_lowers_its_loss_and_its_folder_samples_pixels(tiny_autoencoder, tiny_latent):
    out = tiny_latent
    ckpt = load_checkpoint(out)
    assert ckpt.config["training"]["final_loss"] < 0.8  # v-prediction with Min-SNR-5 starts near 1
    assert ckpt.config["data_shape"] == [4, 12, 12]  # the denoiser's: the latent
    assert ckpt.config["autoencoder"] == load_checkpoint(tiny_autoencoder).config["model"]
    assert ckpt.config["autoencoder_training"]["heldout"] == load_checkpoint(tiny_autoencoder).config["training"]["heldout"]
    card = (out / "README.md").read_text()
    assert "## The autoencoder (first stage)" in card and "PSNR" in card
    pipe = Pipeline.load(str(out))
    assert pipe.image_shape == (3, 48, 48) and pipe.info.data_shape == (4, 12, 12)
    x, labels = pipe.generate(2, seed=0, label=3, steps=3)
    assert x.shape == (2, 3, 48, 48) and x.abs().max() <= 1 and labels.tolist() == [3, 3]
    ae, _ = load_autoencoder(out)
    steps = list(pipe.run(2, seed=0, label=3, steps=3))
    torch.testing.assert_close(x, ae.decode(steps[-1].x_t))  # the final samples are the decoded last latents
    shown, exact = pipe.to_pixels(steps[0]), pipe.to_pixels(steps[0], exact=True)
    assert shown.x_t.shape == shown.x0_pred.shape == (2, 3, 48, 48) and shown.t == steps[0].t
    torch.testing.assert_close(exact.x0_pred, ae.decode(steps[0].x0_pred))
    torch.testing.assert_close(shown.x0_pred, ae.decode_preview(steps[0].x0_pred))


def test_the_page_shows_a_latent_model_in_pixels(tiny_latent):
    from diffusion_core.playground import lesson, lesson_viz, runs as playground

    pipe = Pipeline.load(str(tiny_latent))
    s = playground.RunSettings(sampler="ddim", steps=4, eta=0.0, guidance=2.0, label=1, seed=3, num=2, per_row=2,
                               refresh_s=0.02)
    shown = [out for out, _ in playground.live_run(pipe, s)]
    assert all(out.x_t.shape == (2, 3, 48, 48) for out in shown)  # pixels: the preview, then the decoder
    torch.testing.assert_close(shown[-1].x_t, pipe.generate(2, seed=3, label=1, steps=4, eta=0.0, guidance=2.0)[0])
    x0 = shown[-1].x_t[:1].cpu()
    step = lesson.one_step(pipe, x0, 500, label="red", guidance=2.0)
    assert step.x_t.shape == step.x0_pred.shape == (1, 3, 48, 48) and step.eps.shape == (1, 4, 12, 12)
    assert step.x0_error == lesson.one_step(pipe, x0, 500, label="red", guidance=2.0, pictures=False).x0_error
    picture = lesson_viz.noise_picture(step.eps)  # the latent's four channels as grey tiles, four to a row
    assert picture.ndim == 2 and picture.shape[1] > 4 * picture.shape[0] // 2


def test_a_latent_run_starts_from_a_latent_checkpoint_on_the_same_latents_only(tiny_autoencoder, tiny_latent, tmp_path):
    """--init-from a latent folder (denoiser and autoencoder in one file) gives the run its denoiser's weights; a
    denoiser that learned on another autoencoder's latents (here: a re-fitted scale factor) is refused."""
    unet = {"type": "unet", "in_channels": 4, "image_size": 12, "base_channels": 8, "channel_mults": [1, 2],
            "num_classes": 10}
    fields = dict(model=unet, autoencoder=str(tiny_autoencoder), steps=2, lr=1e-4, batch_size=8, warmup_steps=1,
                  sample_every=100, save_every=100)
    path = tmp_path / "ft.json"
    path.write_text(json.dumps({"older_drawings": False, "mixed_precision": "no", **fields}))
    out = train(load_train_config("pokemon_latent", path), tmp_path / "ft", "test", init_from=str(tiny_latent))
    assert load_checkpoint(out).config["training"]["init_from"]["checkpoint"] == str(tiny_latent)
    other = tmp_path / "other"
    other.mkdir()
    config = json.loads((tiny_latent / "config.json").read_text())
    config["autoencoder"]["scale_factor"] *= 2
    (other / "config.json").write_text(json.dumps(config))
    (other / "model.safetensors").symlink_to(tiny_latent / "model.safetensors")
    with pytest.raises(ValueError, match="learned on the latents of"):
        train(load_train_config("pokemon_latent", path), tmp_path / "ft2", "test", init_from=str(other))


def test_a_latent_denoiser_learns_to_draw_into_silhouettes_from_an_unconditioned_one(tiny_latent, tmp_path):
    """condition "silhouette": each latent comes with its sprite's silhouette (mirror images with theirs); the run
    starts from an unconditioned checkpoint (the condition's convolution starts at zero), and the folder's pipeline
    asks for the condition, and an unconditioned one refuses it."""
    from diffusion_core.data.datasets import silhouette_condition

    config = json.loads((tiny_latent / "config.json").read_text())
    unet = config["model"] | {"cond_channels": 16}
    out = tiny_run(tmp_path / "fill", "pokemon_latent", init_from=str(tiny_latent), model=unet, condition="silhouette",
                   autoencoder=config["training"]["config"]["autoencoder"], steps=30, lr=1e-3, batch_size=32,
                   sample_every=30, save_every=30)
    trained = load_checkpoint(out).config["training"]
    assert trained["final_loss"] < 0.8 and trained["init_from"]["checkpoint"] == str(tiny_latent)
    assert (out / "samples" / "step_000030.png").exists()  # the preview drew into training sprites' silhouettes
    pipe = Pipeline.load(str(out))
    sprites = load_dataset("pokemon").x[:2]
    cond = silhouette_condition(sprites, 12)
    x, _ = pipe.generate(2, seed=0, label=1, steps=3, cond=cond)
    assert x.shape == (2, 3, 48, 48)
    one, _ = pipe.generate(2, seed=0, label=1, steps=3, cond=cond[0])  # one condition for the whole batch
    torch.testing.assert_close(one[0], x[0])
    with pytest.raises(ValueError, match="pass cond"):
        pipe.generate(2, seed=0, label=1, steps=3)
    with pytest.raises(ValueError, match="takes no image condition"):
        Pipeline.load(str(tiny_latent)).generate(2, seed=0, label=1, steps=3, cond=cond)
    with pytest.raises(ValueError, match="set the model's cond_channels to 16"):  # a model that would ignore them
        tiny_run(tmp_path / "blind", "pokemon_latent", model=config["model"], condition="silhouette",
                 autoencoder=config["training"]["config"]["autoencoder"], steps=1)


@pytest.mark.parametrize("model, lr", [
    ({"type": "local", "in_channels": 4, "image_size": 12, "patch": 3, "channels": 32, "depth": 2, "num_classes": 10},
     3e-3),
    ({"type": "patch_mixture", "in_channels": 4, "image_size": 12, "patch": 3, "atoms": 8, "num_classes": 10},
     6e-2)])  # the mixture's weights are atoms in latent units: a larger step moves them in 60 steps
def test_a_local_denoiser_learns_the_machines_targets_and_samples_through_the_pipeline(model, lr, tiny_autoencoder,
                                                                                        tmp_path):
    """model types 'local' (LocalDenoiser) and 'patch_mixture' (started at the latents' patches) train on the latents
    from scratch like the UNet: on the LS machine's targets the loss ends a tenth and more below that of the same
    batches with nothing learnt (LR 0: 0.65 and 0.79 of it here), and the checkpoint loads and samples pixels."""
    fields = dict(model=model, autoencoder=str(tiny_autoencoder), local_target="3@500:1", batch_size=32, steps=60,
                  sample_every=60, save_every=60)
    still = tiny_run(tmp_path / "still", "pokemon_latent", lr=0.0, **fields)  # the same batches, nothing learnt
    out = tiny_run(tmp_path / "local", "pokemon_latent", lr=lr, **fields)
    loss = [load_checkpoint(f).config["training"]["final_loss"] for f in (still, out)]
    assert loss[1] < 0.9 * loss[0]
    x, labels = Pipeline.load(str(out)).generate(2, seed=0, label=3, steps=3)
    assert x.shape == (2, 3, 48, 48) and x.abs().max() <= 1 and labels.tolist() == [3, 3]


def test_a_latent_denoiser_learns_the_local_score_machines_targets(tiny_latent, tmp_path):
    """local_target: the run regresses the LS machine's x0 over the training latents (local_score.local_targets)
    instead of each example's own: its loss ends far below the parent's, a posterior mean being a target of lower
    variance than one example (Xu et al. 2023); the option is a latent diffusion model's only."""
    config = json.loads((tiny_latent / "config.json").read_text())
    autoencoder = config["training"]["config"]["autoencoder"]
    out = tiny_run(tmp_path / "local", "pokemon_latent", init_from=str(tiny_latent), model=config["model"],
                   autoencoder=autoencoder, local_target="3@500:1", steps=30, lr=1e-3, batch_size=32,
                   sample_every=30, save_every=30)
    trained = load_checkpoint(out).config["training"]
    assert trained["config"]["local_target"] == "3@500:1"
    assert trained["final_loss"] < 0.7 * load_checkpoint(tiny_latent).config["training"]["final_loss"]
    with pytest.raises(ValueError, match="latent diffusion model's"):
        tiny_run(tmp_path / "pixels", "pokemon", local_target="3", steps=1)
    with pytest.raises(ValueError, match="odd and positive"):
        tiny_run(tmp_path / "even", "pokemon_latent", model=config["model"], autoencoder=autoencoder,
                 local_target="4", steps=1)
