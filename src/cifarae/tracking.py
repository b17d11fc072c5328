"""Weights & Biases through Accelerate's tracker, offline when there are no credentials.

Tracking never fails a job: if W&B cannot start, the run goes on with a warning.
"""

from __future__ import annotations

import netrc
import os
import warnings
from pathlib import Path


def wandb_mode() -> str:
    """'online' with credentials, else 'offline'; WANDB_MODE (e.g. disabled) always wins."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError):
        pass
    return "offline"


def init_tracking(accelerator, cfg, run_dir: Path, job_type: str) -> bool:
    """Start the W&B tracker on the main process. Returns True when it is running."""
    if not cfg.wandb or wandb_mode() == "disabled":
        return False
    try:
        import wandb  # noqa: F401
    except Exception as err:  # not installed (e.g. a bare GPU image) or broken: train without it
        warnings.warn(f"W&B tracking disabled: wandb cannot be imported ({err})", stacklevel=2)
        return False
    run_dir = Path(run_dir).resolve()
    # One W&B run id per run directory and stage, so a resumed job continues the same W&B run.
    run_id = f"{run_dir.name}-{job_type}"[-60:].replace("/", "-")
    try:
        accelerator.init_trackers(
            cfg.wandb_project,
            config=cfg.to_dict(),
            init_kwargs={
                "wandb": {
                    "dir": str(run_dir),
                    "mode": wandb_mode(),
                    "name": run_dir.name,
                    "group": run_dir.parent.name,
                    "job_type": job_type,
                    "id": run_id,
                    "resume": "allow",
                    "settings": {"silent": True},
                }
            },
        )
        return True
    except Exception as err:  # tracking must never take a training job down
        warnings.warn(f"W&B tracking disabled: {err}", stacklevel=2)
        accelerator.trackers = []  # a half-started tracker would fail again in end_training()
        return False


def wandb_run(accelerator):
    """The underlying wandb.Run on the main process, or None."""
    try:
        return accelerator.get_tracker("wandb", unwrap=True)
    except Exception:
        return None


def log_images(accelerator, key: str, figure_or_array, step: int) -> None:
    run = wandb_run(accelerator)
    if run is None or not accelerator.is_main_process:
        return
    import wandb

    run.log({key: wandb.Image(figure_or_array)}, step=step)


def log_table(accelerator, key: str, rows: list[dict], step: int | None = None) -> None:
    run = wandb_run(accelerator)
    if run is None or not accelerator.is_main_process or not rows:
        return
    import wandb

    columns = list(rows[0])
    run.log({key: wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])}, step=step)
