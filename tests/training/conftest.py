# Make `import training` work however pytest is invoked
# (plain `pytest` does not put the repo root on sys.path).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
