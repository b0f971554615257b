"""Where things are: the project, its virtualenv, the bench scripts, the API prefix."""

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
UVICORN = ROOT / ".venv" / "bin" / "uvicorn"
GRANIAN = ROOT / ".venv" / "bin" / "granian"
API = "/api/v1/modelhub"
