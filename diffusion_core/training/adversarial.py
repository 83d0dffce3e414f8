"""The autoencoder stage's adversarial part (Esser et al. 2021 eq. 7; Rombach et al. 2022 appendix G): a patch
discriminator that learns from a run's first step and counts in the decoder's loss from config.disc_start (a fresh
discriminator's gradients are noise: measured, they cost a trained decoder 0.3 dB in 150 steps), its own optimiser, and its training state beside the train command's
(OUT/train_state/discriminator.safetensors). Only training uses it: the checkpoint ships the autoencoder alone."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..models.discriminator import PatchDiscriminator, adaptive_weight, generator_loss, hinge_d_loss

STATE_FILE = "discriminator.safetensors"
BETAS = (0.5, 0.9)  # the LDM's Adam betas for both networks of its autoencoders


class Adversary:
    """The discriminator of one run and what the decoder's loss gets from it."""

    def __init__(self, config, device: torch.device | str = "cpu"):
        self.start, self.weight = config.disc_start, config.disc_weight
        self.disc = PatchDiscriminator(width=config.disc_width, layers=config.disc_layers).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=config.lr, betas=BETAS)
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None  # (x, x_rec) of the last generator pass
        self.last: dict[str, float] = {}  # the last step's d_loss, g_loss and lambda (for the log)

    def on(self, step: int) -> bool:
        """Whether the decoder's adversarial term counts at optimiser step `step` (taming's adopt_weight: 0 before
        disc_start; unlike taming, the discriminator itself trains before, so it is no longer guessing then)."""
        return self.weight > 0 and step >= self.start

    def generator_term(self, x: torch.Tensor, recon: torch.Tensor, rec_loss: torch.Tensor,
                       last_layer: torch.Tensor, step: int) -> torch.Tensor:
        """disc_weight * lambda * g_loss for the decoder's loss (0 before disc_start); keeps (x, x_rec) for
        discriminator_step. The discriminator's own weights get no gradient from it."""
        self.pending = (x.detach(), recon.detach())
        if not self.on(step) or not torch.is_grad_enabled():
            return rec_loss.new_zeros(())
        self.disc.requires_grad_(False)
        g_loss = generator_loss(self.disc(recon))
        self.disc.requires_grad_(True)
        lam = adaptive_weight(rec_loss, g_loss, last_layer)
        self.last |= {"g_loss": float(g_loss.detach()), "lambda": float(lam)}
        return self.weight * lam * g_loss

    def discriminator_step(self, step: int) -> None:
        """One hinge-loss step of the discriminator on the last generator pass's real and reconstructed batch (from
        the run's first step, before its term counts)."""
        if self.pending is None or self.weight <= 0:
            return
        x, recon = self.pending
        self.pending = None
        d_loss = hinge_d_loss(self.disc(x), self.disc(recon))
        self.opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt.step()
        self.last["d_loss"] = float(d_loss.detach())

    def save(self, state_dir: Path) -> None:
        """Write the discriminator and its optimiser's moments next to the train state (atomically)."""
        tensors = {f"disc.{k}": v.detach().cpu().contiguous() for k, v in self.disc.state_dict().items()}
        for i, p in enumerate(self.disc.parameters()):
            for k, v in self.opt.state.get(p, {}).items():
                tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(Path(state_dir) / (STATE_FILE + ".tmp")))
        (Path(state_dir) / (STATE_FILE + ".tmp")).replace(Path(state_dir) / STATE_FILE)

    def load(self, state_dir: Path) -> bool:
        """Restore what save wrote, if it is there; whether it was."""
        path = Path(state_dir) / STATE_FILE
        if not path.exists():
            return False
        tensors = load_file(str(path))
        self.disc.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("disc.")})
        for i, p in enumerate(self.disc.parameters()):
            moments = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"opt.{i}.")}
            if moments:
                self.opt.state[p] = {k: v if k == "step" else v.to(p.device) for k, v in moments.items()}
        return True
