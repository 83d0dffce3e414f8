import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Torch threads of every test, its subprocesses and the notebook's tour: 1 (TEST_THREADS to change). More threads
# than free cores slow torch 3-10x when another process is busy; the suite must pass beside one.
THREADS = os.environ.setdefault("TEST_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", THREADS)
os.environ.setdefault("TOUR_THREADS", THREADS)

import torch  # noqa: E402 - after OMP_NUM_THREADS

torch.set_num_threads(int(THREADS))
