"""Test against the source tree (not an installed copy), like rover_quantize's tests."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault('SVT_LOG', '1')
