"""Measuring samples: the Fréchet LeNet Distance and its LeNets, the spiral's and 2D sets' distances, the
sprites' colour coherence, near copies and outlines. The command is `diffusion_core.evaluate`.
"""
