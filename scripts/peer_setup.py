"""Virtual environments for the peer tools under the cache folder (idempotent; package registry only).

NetsPresso Trainer 1.4.1 is installed without its dependency pins (gradio, datasets ... are not
needed to train), with only what its train path imports; Ultralytics as it comes. torch and
torchvision are the versions trainer's own environment uses.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
NETSPRESSO_DEPS = [
    "omegaconf", "loguru", "safetensors", "opencv-python-headless", "tensorboard", "scipy", "pandas", "tqdm",
    "fvcore", "onnx", "requests", "pycocotools",
]
TOOLS = {
    "netspresso": [TORCH, ["--no-deps", "netspresso-trainer==1.4.1"], NETSPRESSO_DEPS],
    "ultralytics": [TORCH, ["ultralytics"]],
}
CHECKS = {"netspresso": "import netspresso_trainer", "ultralytics": "import ultralytics"}


def venv_python(cache: Path, tool: str) -> Path:
    return cache / tool / "bin" / "python"


def ensure_venv(cache: Path, tool: str) -> Path:
    """The tool's interpreter, installing the venv first when it does not import the tool yet."""
    python = venv_python(cache, tool)
    if python.exists() and subprocess.run([str(python), "-c", CHECKS[tool]], capture_output=True).returncode == 0:
        return python
    print(f"setting up {tool} in {cache / tool} (a few minutes, once)", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(cache / tool)], check=True)
    for packages in TOOLS[tool]:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python
