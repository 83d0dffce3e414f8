"""The How it works tab's pictures: the forward process, the noise, the schedules, and how far one call of the
network is off at each t. Plotly figures and uint8 arrays; it never imports gradio."""
from __future__ import annotations

import numpy as np

from ..data.datasets import to_uint8
from .viz import display_grid, scatter_image, spiral_points


def schedule_figure(schedules: dict, t: int | None = None):
    """Plotly figure of beta_t, alpha_bar_t and SNR(t) (log scale) for each named Schedule, side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = ("β_t: noise added at step t", "ᾱ_t: signal kept in x_t", "SNR(t) = ᾱ_t / (1 − ᾱ_t)")
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.07)
    colours = ("#1f77b4", "#d62728", "#2ca02c")
    for (name, s), colour in zip(schedules.items(), colours):
        steps = np.arange(s.T)
        for col, y in enumerate((s.beta, s.alpha_bar, s.snr()), start=1):
            fig.add_trace(go.Scatter(x=steps, y=y.cpu().numpy(), name=name, legendgroup=name, showlegend=col == 1,
                                     line=dict(color=colour, width=2)), row=1, col=col)
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(type="linear", row=1, col=2)
    fig.update_xaxes(title_text="t")
    if t is not None:
        for col in (1, 2, 3):
            fig.add_vline(x=t, line=dict(color="grey", dash="dot"), row=1, col=col)
    fig.update_layout(height=330, margin=dict(l=40, r=10, t=40, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=-0.25, x=0.5, xanchor="center"))
    return fig


def schedule_table(numbers: dict) -> str:
    """Markdown table of alpha_bar_t, its square roots and the SNR per schedule ({kind: (x_t, numbers)})."""
    rows = [f"| {kind} | {n['alpha_bar']:.4f} | {n['signal']:.3f} | {n['noise']:.3f} | {n['snr']:.3g} |"
            for kind, (_, n) in numbers.items()]
    head = "| schedule | ᾱ_t | √ᾱ_t (signal kept) | √(1−ᾱ_t) (noise) | SNR = ᾱ_t / (1−ᾱ_t) |"
    return "\n".join([head, "|---|---|---|---|---|", *rows])


def forward_picture(x) -> np.ndarray:
    """A forward-process picture: one image [1, C, H, W] in [-1, 1] enlarged, or points [N, 2] on the spiral."""
    if x.ndim == 4:
        return display_grid(to_uint8(x), 1, 280)
    return scatter_image(np.asarray(x), 280, 3.0, spiral_points())


def x0_pred_picture(x0_pred, x_t, pulls: int = 250) -> np.ndarray:
    """x0_pred like forward_picture; for points, in red over thin lines from `pulls` of the points x_t to their
    x0_pred: where the network pulls each noisy point."""
    if x0_pred.ndim == 4:
        return forward_picture(x0_pred)
    x0_pred, x_t = np.asarray(x0_pred), np.asarray(x_t)
    every = max(1, len(x_t) // pulls)
    return scatter_image(x0_pred[::every], 280, 3.0, spiral_points(), color=(214, 39, 40), segments=x_t[::every])


def noise_picture(eps) -> np.ndarray:
    """Noise eps ~ N(0, I) as a picture like forward_picture's: an image mapped from [-3, 3] to grey levels (a
    latent's channels side by side), or 2-D vectors [N, 2] as points in [-3.5, 3.5]^2."""
    if eps.ndim == 4 and eps.shape[1] not in (1, 3):
        return display_grid(to_uint8((eps[0, :, None] / 3).clamp(-1, 1)), 4, 280)
    if eps.ndim == 4:
        return display_grid(to_uint8((eps / 3).clamp(-1, 1)), 1, 280)
    return scatter_image(np.asarray(eps), 280, 3.5)


def error_figure(curve: dict[str, np.ndarray], t: int | None = None, title: str = ""):
    """Plotly figure of lesson.error_curve: RMS(x_t - x0) and RMS(x0_pred - x0) against t, a marker at t."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for key, name, colour in (("x_t_error", "x_t: the input, before the network", "#7f7f7f"),
                              ("x0_error", "x0_pred: the network's guess", "#d62728")):
        fig.add_trace(go.Scatter(x=curve["t"], y=curve[key], name=name, mode="lines+markers",
                                 line=dict(color=colour, width=2), marker=dict(size=4)))
    if t is not None:
        fig.add_vline(x=t, line=dict(color="grey", dash="dot"))
    fig.update_layout(height=300, margin=dict(l=50, r=10, t=40, b=40), template="plotly_white", title=title,
                      xaxis_title="t", yaxis_title="RMS distance from x0",
                      legend=dict(orientation="h", y=-0.3, x=0.5, xanchor="center"))
    return fig
