"""The notify tests drive a real `backup-glance serve` process too (tests/integration/serve_process.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
