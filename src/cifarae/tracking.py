"""Weights & Biases through Accelerate's tracker, offline when there are no credentials.

Tracking never fails a job: if W&B cannot start, the run goes on with a warning.
"""

from __future__ import annotations

import netrc
import os
import secrets
import string
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


def run_id(run_dir: Path) -> str:
    """This directory's W&B run id: made once and kept in ``run_dir/wandb_id``.

    A resumed or requeued job reads the same id back and continues its own W&B run; a random id
    means two runs never share one, whatever their directories are called.
    """
    path = Path(run_dir) / "wandb_id"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        new_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(new_id + "\n")
        try:  # a hard link appears whole, and only if no other process made the file first
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def default_group(run_dir: Path) -> str:
    """The pipeline a run belongs to: WANDB_RUN_GROUP (the pipeline launchers set it), else its parent folder."""
    return os.environ.get("WANDB_RUN_GROUP") or Path(run_dir).resolve().parent.name


def wandb_settings(run_dir: Path, job_type: str, name: str | None = None, group: str | None = None) -> dict:
    """wandb.init's keyword arguments for the run kept in ``run_dir`` (files go to run_dir/wandb/)."""
    run_dir = Path(run_dir).resolve()
    return {
        "dir": str(run_dir),
        "mode": wandb_mode(),
        "name": name or run_dir.name,
        "group": group or default_group(run_dir),
        "job_type": job_type,
        "id": run_id(run_dir),
        "resume": "allow",
    }


def start_run(project: str, run_dir: Path, job_type: str, config: dict, **names):
    """A wandb.Run for a job with no Accelerator (tables and plots), or None when W&B is off or fails."""
    if wandb_mode() == "disabled":
        return None
    try:
        import wandb

        return wandb.init(
            project=project,
            config=config,
            settings=wandb.Settings(silent=True),
            **wandb_settings(run_dir, job_type, **names),
        )
    except Exception as err:  # tracking never fails a job
        warnings.warn(f"W&B tracking disabled: {err}", stacklevel=2)
        return None


def init_tracking(accelerator, cfg, run_dir: Path, job_type: str, **names) -> bool:
    """Start the W&B tracker on the main process. Returns True when it is running."""
    if not cfg.wandb or wandb_mode() == "disabled":
        return False
    try:
        import wandb  # noqa: F401
    except Exception as err:  # not installed (e.g. a bare GPU image) or broken: train without it
        warnings.warn(f"W&B tracking disabled: wandb cannot be imported ({err})", stacklevel=2)
        return False
    try:
        kwargs = {**wandb_settings(run_dir, job_type, **names), "settings": {"silent": True}}
        accelerator.init_trackers(cfg.wandb_project, config=cfg.to_dict(), init_kwargs={"wandb": kwargs})
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
