"""What goes to and from disk and the Hub: checkpoint folders (config.json + safetensors), model cards, the Hub
resolver, and arrays written as PNG grids, scatters and GIFs.
"""
