"""The Docker image, without a Docker engine: hadolint passes, the Dockerfile's pins match
requirements.txt and the torch build the tests run on, and the entry point runs src/ scripts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), flags=re.M))


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_hadolint_passes():
    proc = subprocess.run([HADOLINT, DOCKERFILE], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_fails_a_bad_dockerfile():
    """The lint is live: a Dockerfile with typical mistakes does not pass."""
    bad = "FROM ubuntu\nRUN apt-get install curl\n"
    proc = subprocess.run([HADOLINT, "-"], input=bad, capture_output=True, text=True)
    assert proc.returncode != 0 and "DL3006" in proc.stdout, proc.stdout


def test_torch_and_torchvision_pins_match_requirements():
    args, pins = dockerfile_args(), requirement_pins()
    assert args["TORCH_VERSION"] == pins["torch"]
    assert args["TORCHVISION_VERSION"] == pins["torchvision"]


def test_cuda_base_and_wheel_index_match_the_pinned_torch_build():
    """The tests run on the pinned torch; its CUDA (13.0 for +cu130) is the image's CUDA."""
    args = dockerfile_args()
    assert torch.__version__.split("+")[0] == requirement_pins()["torch"], "the venv's torch is not the pinned one"
    cuda = torch.version.cuda
    assert cuda, f"torch {torch.__version__} is a CPU build; requirements.txt pins the CUDA build"
    assert args["TORCH_CUDA"] == "cu" + cuda.replace(".", "")
    assert args["CUDA_VERSION"].startswith(cuda + "."), (args["CUDA_VERSION"], cuda)
    assert re.search(r"^FROM nvidia/cuda:\$\{CUDA_VERSION\}-runtime-ubuntu", DOCKERFILE.read_text(), flags=re.M)


def test_python_version_matches_the_tested_one():
    assert dockerfile_args()["PYTHON_VERSION"] == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_image_installs_requirements_and_runs_as_non_root():
    text = DOCKERFILE.read_text()
    assert re.search(r"uv pip install -r /tmp/requirements\.txt", text)
    assert "COPY requirements.txt" in text
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and users[-1] not in ("root", "0"), users
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/cifarae"\]', text, flags=re.M)


def test_dockerignore_keeps_out_everything_but_what_the_image_copies():
    """The context leaves out .venv, data and runs (GBs), but not what a COPY needs (the build would fail)."""
    patterns = [p for p in (REPO / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    assert patterns[0] == "*", patterns
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = re.findall(r"^COPY (?!--from)(?:--chown=\S+ )?(\S+) ", DOCKERFILE.read_text(), flags=re.M)
    assert copied, "no COPY from the build context"
    for source in copied:
        assert source.rstrip("/") in allowed, f"COPY {source} is excluded by .dockerignore"
    assert not allowed & {".venv", "data", "runs", "outs"}


def test_entrypoint_lists_and_runs_src_scripts(tmp_path):
    """docker/entrypoint.sh, run outside a container on this checkout (CIFARAE_HOME stands in for /app)."""
    env = dict(os.environ, CIFARAE_HOME=str(REPO), PYTHON=sys.executable, GPUS="0")
    listing = subprocess.run(["bash", "docker/entrypoint.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert "train_ae.py" in listing.stdout and "evaluate.py" in listing.stdout
    missing = tmp_path / "nowhere"
    proc = subprocess.run(
        ["bash", "docker/entrypoint.sh", "prepare_data", "--data", str(missing)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(missing) in errors[0], proc.stderr
    passthrough = subprocess.run(["bash", "docker/entrypoint.sh", "echo", "hi"], cwd=REPO, env=env, capture_output=True)
    assert passthrough.stdout == b"hi\n"
