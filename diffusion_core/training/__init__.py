"""Training: the loop (Accelerate), its presets, its resumable state, the autoencoder stage of latent
diffusion and the 2D lab's live training. The command is `diffusion_core.train`.
"""
