"""`python -m diffusion_core.data fetch NAME|all [--missing]`: fill the data cache (data/cache.py)."""
import sys

from .cache import main

sys.exit(main())
