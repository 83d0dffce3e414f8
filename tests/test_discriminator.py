"""The autoencoder's adversarial part: the hinge losses, VQGAN's adaptive weight, the warm-up, the discriminator's
training state, and the L1 on image gradients."""
import json
from types import SimpleNamespace

import pytest
import torch

from diffusion_core.training.adversarial import STATE_FILE, Adversary
from diffusion_core.models.autoencoder import gradient_l1
from diffusion_core.models.discriminator import PatchDiscriminator, adaptive_weight, generator_loss, hinge_d_loss


def test_hinge_losses_on_known_logits():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    # real: relu(1 - 2) = 0, relu(1 - 0.5) = 0.5 -> 0.25; fake: relu(1 - 3) = 0, relu(1 + 0) = 1 -> 0.5
    assert float(hinge_d_loss(real, fake)) == pytest.approx(0.5 * (0.25 + 0.5))
    assert float(hinge_d_loss(torch.full((4,), 1.0), torch.full((4,), -1.0))) == 0.0  # both past the margin
    assert float(generator_loss(torch.tensor([1.0, -3.0]))) == pytest.approx(1.0)


def test_the_adaptive_weight_is_the_ratio_of_the_gradient_norms_at_the_last_layer():
    w = torch.randn(3, 4, requires_grad=True)
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    rec, g = (w * a).sum(), (w * b).sum()  # gradients a and b
    assert float(adaptive_weight(rec, g, w)) == pytest.approx(float(a.norm() / (b.norm() + 1e-4)), rel=1e-6)
    assert float(adaptive_weight((w * a).sum(), (w * 0).sum(), w)) == pytest.approx(1e4)  # clamped
    assert not adaptive_weight((w * a).sum(), (w * b).sum(), w).requires_grad


def test_a_logit_per_patch_of_a_sprite():
    assert PatchDiscriminator(width=8, layers=2)(torch.zeros(2, 3, 48, 48)).shape == (2, 1, 10, 10)
    assert PatchDiscriminator(width=8, layers=3)(torch.zeros(2, 3, 48, 48)).shape == (2, 1, 4, 4)


def config(**kw):
    return SimpleNamespace(**{"disc_start": 3, "disc_weight": 0.5, "disc_width": 8, "disc_layers": 2, "lr": 1e-2} | kw)


def pass_at(adv: Adversary, step: int, last: torch.Tensor) -> torch.Tensor:
    x = torch.rand(2, 3, 48, 48) * 2 - 1
    recon = torch.tanh(last.sum() + torch.zeros(2, 3, 48, 48) + x)
    rec = (recon - x).abs().mean()
    term = adv.generator_term(x, recon, rec, last, step)
    (rec + term).backward()
    adv.discriminator_step(step)
    return term


def test_the_decoder_feels_the_discriminator_only_from_its_start_step_while_it_learns_from_the_first():
    torch.manual_seed(0)
    adv, last = Adversary(config()), torch.zeros(1, requires_grad=True)
    before = [p.detach().clone() for p in adv.disc.parameters()]
    warm = pass_at(adv, 2, last)
    assert float(warm) == 0.0 and not warm.requires_grad and set(adv.last) == {"d_loss"}  # no pull on the decoder
    assert not all(torch.equal(p, q) for p, q in zip(adv.disc.parameters(), before))  # it learns in the warm-up
    term = pass_at(adv, 3, last)
    assert term.item() != 0.0 and set(adv.last) == {"g_loss", "lambda", "d_loss"}
    assert term.item() == pytest.approx(0.5 * adv.last["lambda"] * adv.last["g_loss"], rel=1e-5)
    off = Adversary(config(disc_weight=0.0))
    frozen = [p.detach().clone() for p in off.disc.parameters()]
    assert float(pass_at(off, 10, last)) == 0.0  # weight 0: never on, never trained
    assert all(torch.equal(p, q) for p, q in zip(off.disc.parameters(), frozen))


def test_the_decoders_pass_gives_the_discriminator_no_gradient():
    adv, last = Adversary(config(disc_start=0)), torch.zeros(1, requires_grad=True)
    x = torch.zeros(1, 3, 48, 48)
    recon = x + last
    adv.generator_term(x, recon, (recon - x).abs().mean() + last.sum(), last, 0).backward()
    assert all(p.grad is None for p in adv.disc.parameters()) and last.grad is not None


def test_the_discriminator_state_round_trips(tmp_path):
    torch.manual_seed(0)
    adv, last = Adversary(config(disc_start=0)), torch.zeros(1, requires_grad=True)
    pass_at(adv, 0, last)
    adv.save(tmp_path)
    other = Adversary(config(disc_start=0))
    assert other.load(tmp_path) and not Adversary(config()).load(tmp_path / "none")
    assert all(torch.equal(p, q) for p, q in zip(adv.disc.parameters(), other.disc.parameters()))
    torch.manual_seed(1)
    pass_at(adv, 1, last)
    torch.manual_seed(1)
    pass_at(other, 1, last)  # the same Adam moments: the same next step
    assert all(torch.allclose(p, q) for p, q in zip(adv.disc.parameters(), other.disc.parameters()))


def test_gradient_l1_of_a_known_error():
    x = torch.zeros(1, 1, 3, 3)
    recon = x.clone()
    recon[0, 0, 1, 1] = 1.0  # one bright pixel: 2 of 6 vertical and 2 of 6 horizontal differences are 1
    assert float(gradient_l1(x, recon)) == pytest.approx(2 / 6)
    assert float(gradient_l1(x, x + 0.3)) == 0.0  # a uniform shift costs nothing here


def test_a_tiny_adversarial_autoencoder_run_ships_no_discriminator(tmp_path):
    from diffusion_core.files.checkpoint import load_checkpoint
    from diffusion_core.training.loop import train
    from diffusion_core.training.config import load_train_config

    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"batch_size": 8, "warmup_steps": 2, "older_drawings": False, "mixed_precision": "no",
                                "steps": 6, "holdout_every": 10, "disc_weight": 0.5, "disc_start": 3, "disc_width": 8,
                                "gradient_weight": 1.0, "sample_every": 6, "save_every": 3,
                                "model": {"type": "autoencoder", "latent_channels": 4, "channels": [8, 16]}}))
    out = train(load_train_config("pokemon_autoencoder", path), tmp_path / "ae", "test")
    assert (out / "train_state" / STATE_FILE).exists()
    ckpt = load_checkpoint(out)
    assert not any("disc" in k for k in ckpt.state_dict) and ckpt.config["training"]["config"]["disc_weight"] == 0.5
    card = (out / "README.md").read_text()  # the card names the run's losses
    assert "loss: L1 weighted 3x at colour edges + 1 x L1 on image gradients + a 2-layer patch discriminator" in card
