"""Few-step sampling and progressive distillation (training/distill.py): the step function against DDIM, the student's target
against the teacher's two steps, a student of an analytic teacher, guidance as the student's input."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from diffusion_core.files.checkpoint import load_checkpoint, save_checkpoint
from diffusion_core.diffusion import DiffusionConfig
from diffusion_core.training.distill import DistillConfig, ddim_to, distill_loss, student_target, teacher_output
from diffusion_core.guidance import guided_eps_fn
from diffusion_core.models import UNet, UNetConfig
from diffusion_core.pipeline import ModelInfo, Pipeline, SamplingDefaults, checkpoint_config
from diffusion_core.samplers import sample_final, timestep_plan
from diffusion_core.schedules import make_schedule
from tests.analytic import gaussian_v_fn

S = make_schedule("cosine", 1000)
TINY = UNetConfig(in_channels=1, image_size=8, base_channels=8, channel_mults=(1, 2), groups=4, num_classes=3)


def test_the_distilled_plan_is_ddims_trailing_plan_of_one_to_four_steps():
    assert timestep_plan("distilled", 1000, 4) == [(999, 749), (749, 499), (499, 249), (249, -1)]
    assert timestep_plan("distilled", 1000, 1) == [(999, -1)]
    assert timestep_plan("distilled", 1000) == timestep_plan("ddim", 1000, 4)
    for bad in (0, 5, 20):
        with pytest.raises(ValueError):
            timestep_plan("distilled", 1000, bad)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_the_few_step_step_equals_ddim_at_the_same_plan_for_a_v_model(steps):
    v_fn = gaussian_v_fn(S, 0.3, 0.5)
    kw = dict(steps=steps, prediction="v", clip_x0=True)
    ours = sample_final(v_fn, S, (64, 3), generator=torch.Generator().manual_seed(0), sampler="distilled", **kw)
    ddim = sample_final(v_fn, S, (64, 3), generator=torch.Generator().manual_seed(0), sampler="ddim", **kw)
    torch.testing.assert_close(ours, ddim, rtol=1e-5, atol=1e-6)


def test_eta_one_renoises_x0_pred_with_fresh_noise_as_consistency_sampling_does():
    v_fn = gaussian_v_fn(S, 0.0, 0.5)
    a = sample_final(v_fn, S, (4000, 1), generator=torch.Generator().manual_seed(1), sampler="distilled", steps=2,
                     prediction="v", eta=1.0)
    b = sample_final(v_fn, S, (4000, 1), generator=torch.Generator().manual_seed(1), sampler="distilled", steps=2,
                     prediction="v")
    assert not torch.allclose(a, b)  # stochastic, drawn from the generator
    # x0_pred at t = 999 is ~0, so x_499 = sigma_499 z afresh, and the output E[x0 | x_499] = a s^2 x / (a^2 s^2 + b^2)
    a2 = S.alpha_bar[499]
    expected = a2.sqrt() * 0.25 * (1 - a2).sqrt() / (a2 * 0.25 + 1 - a2)
    assert abs(float(a.std()) - float(expected)) < 0.02


def test_one_ddim_step_with_the_students_target_lands_where_the_teachers_two_steps_land():
    g = torch.Generator().manual_seed(0)
    x_t, x_next = torch.randn(6, 1, 4, 4, generator=g), torch.randn(6, 1, 4, 4, generator=g)
    t, t_next = torch.tensor([999, 874, 624, 499, 249, 249]), torch.tensor([749, 624, 374, 249, -1, 124])
    x_tilde = student_target(S, x_t, t, t_next, x_next)
    torch.testing.assert_close(ddim_to(S, x_t, t, t_next, x_tilde), x_next, rtol=1e-4, atol=1e-4)


class Analytic(nn.Module):
    """The exact v-predictor of N(mu, std^2) data as a 'model' that takes (x_t, t, labels, g)."""

    config = SimpleNamespace(guidance_embedding=True)

    def __init__(self, mu: float, std: float):
        super().__init__()
        self.v_fn = gaussian_v_fn(S, mu, std)

    def forward(self, x_t, t, labels=None, g=None):
        return self.v_fn(x_t, t)


class LinearStudent(nn.Module):
    """v = w x_t + c, enough for a Gaussian teacher's one-step map x_T -> x_0."""

    config = SimpleNamespace(guidance_embedding=True)

    def __init__(self):
        super().__init__()
        self.w, self.c = nn.Parameter(torch.zeros(())), nn.Parameter(torch.zeros(()))

    def forward(self, x_t, t, labels=None, g=None):
        return self.w * x_t + self.c


def test_a_one_step_student_of_an_analytic_teacher_matches_its_two_step_ddim():
    torch.manual_seed(0)
    teacher, student = Analytic(0.4, 0.3), LinearStudent()
    opt = torch.optim.Adam(student.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(0)
    plan_s, plan_t = timestep_plan("ddim", 1000, 1), timestep_plan("ddim", 1000, 2)
    labels = torch.zeros(256, dtype=torch.long)
    for _ in range(300):
        x0 = 0.4 + 0.3 * torch.randn(256, 1, generator=gen)
        loss = distill_loss(student, teacher, S, x0, labels, gen, plan_s, plan_t, DistillConfig(stage_steps=(1,), teacher_steps=2),
                            3, None, "v", clip_x0=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
    kw = dict(prediction="v", shape=(512, 1))
    ours = sample_final(lambda x, t: student(x, t), S, generator=torch.Generator().manual_seed(5), sampler="distilled",
                        steps=1, **kw)
    theirs = sample_final(teacher.v_fn, S, generator=torch.Generator().manual_seed(5), sampler="ddim", steps=2, **kw)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=5e-3)
    once = sample_final(teacher.v_fn, S, generator=torch.Generator().manual_seed(5), sampler="ddim", steps=1, **kw)
    assert (once - theirs).abs().max() > 0.05  # the teacher's own single step is far off: the student learnt something


def _unet(guidance_embedding: bool = False, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    model = UNet(UNetConfig(**{**TINY.__dict__, "guidance_embedding": guidance_embedding})).eval()
    with torch.no_grad():  # make the zero-initialised output layer non-trivial
        for p in model.out[-1].parameters():
            p.normal_(0, 0.1)
    return model


def test_teacher_output_per_example_g_matches_guided_eps_fn_with_its_interval():
    model = _unet()
    x, labels = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 1])
    interval = (-1, 600)
    for t_value in (999, 300):
        t = torch.full((4,), t_value)
        for g_value in (0.0, 0.5, 1.0, 2.5):
            g = torch.full((4,), g_value)
            with torch.no_grad():
                ours = teacher_output(model, x, t, labels, g, 3, interval)
                ref = guided_eps_fn(model, labels, g_value, 3, interval)(x, t)
            torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_a_fresh_guidance_embedding_leaves_the_teachers_conditional_output_and_is_one_pass():
    teacher, student = _unet(), _unet(guidance_embedding=True)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("guidance_mlp.") for k in missing)
    x, t, labels = torch.randn(2, 1, 8, 8), torch.tensor([500, 100]), torch.tensor([0, 2])
    with torch.no_grad():
        torch.testing.assert_close(student(x, t, labels, torch.tensor([3.0, 0.0])), teacher(x, t, labels))
    calls = []
    student.register_forward_hook(lambda *a: calls.append(1))
    guided_eps_fn(student, labels, 2.0, 3, (-1, 600))(x, t)
    assert len(calls) == 1


def test_a_student_checkpoint_loads_through_the_pipeline_and_samples_in_its_steps(tmp_path):
    student = _unet(guidance_embedding=True)
    with torch.no_grad():
        student.guidance_mlp[-1].weight.normal_(0, 0.1)
    info = ModelInfo("digits", (1, 8, 8), ("a", "b", "c"), DiffusionConfig(prediction="v"),
                     SamplingDefaults(sampler="distilled", steps=2, guidance=2.0))
    save_checkpoint(tmp_path, student.state_dict(), checkpoint_config(student.config, info))
    pipe = Pipeline.from_checkpoint(load_checkpoint(tmp_path), torch.device("cpu"))
    outs = list(pipe.run(4, seed=0, label="all"))
    assert [o.t for o in outs] == [499, -1]
    x_g2 = outs[-1].x_t
    x_g0, _ = pipe.generate(4, seed=0, label="all", guidance=0.0)
    assert not torch.allclose(x_g2, x_g0)  # g reaches the network


def test_train_stage_distill_writes_a_loadable_student_per_halving_and_resumes(tmp_path, capsys):
    import json

    from diffusion_core.train import main as train_main

    teacher = UNet(UNetConfig(**{**TINY.__dict__, "image_size": 28, "num_classes": 10}))
    info = ModelInfo("digits", (1, 28, 28), tuple("0123456789"), DiffusionConfig(prediction="v"),
                     SamplingDefaults(guidance_interval=(-1, 600)))
    save_checkpoint(tmp_path / "teacher", teacher.state_dict(), checkpoint_config(teacher.config, info))
    (tmp_path / "cfg.json").write_text(json.dumps({"teacher_steps": 4, "stage_steps": [3, 2], "batch_size": 4,
                                                   "save_every": 1}))
    argv = ["--dataset", "digits", "--stage", "distill", "--init-from", str(tmp_path / "teacher"), "--out",
            str(tmp_path / "out"), "--config", str(tmp_path / "cfg.json"), "--threads", "1"]
    assert train_main(argv) == 0
    for n in (2, 1):
        pipe = Pipeline.load(str(tmp_path / "out" / f"steps_{n}"))
        assert (pipe.info.sampling.sampler, pipe.info.sampling.steps) == ("distilled", n)
        assert pipe.model.config.guidance_embedding and pipe.info.sampling.guidance_interval is None
        assert len(list(pipe.run(2, seed=0, label="all"))) == n
    card = (tmp_path / "out" / "steps_1" / "README.md").read_text()
    assert "progressive distillation" in card and "2-step teacher into 1 step," in card
    capsys.readouterr()
    assert train_main(argv) == 0  # everything done: nothing retrained
    assert capsys.readouterr().out.count(": done") == 2
