import os
import tempfile
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)
# Offline datasets made by tests go to a fresh private Minari root, never the user's ~/.minari (subprocesses
# inherit it)
os.environ["MINARI_DATASETS_PATH"] = tempfile.mkdtemp(prefix="classic-rl-test-minari-")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests use one torch thread (small ops are fastest so, and much faster on a shared CPU); a test whose
    code under test changes the process-wide thread count (e.g. --torch-threads) gets it restored."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture
def run_root(tmp_path):
    return tmp_path / "runs"
