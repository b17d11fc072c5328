"""The pipeline: jobs/pipeline.yaml's stages, turned into the commands one pipeline run executes.

All three launchers go through here: `make pipeline` and `jobs/pipeline.py --local` run the
stages on this machine (``run_local``), `slurm/pipeline.sh` submits them with sbatch and
`jobs/pipeline.py` with submitit (cifarae.slurm). They share the command line (``parser``), the
plan (``plan``) and the report.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import tracking
from .errors import UserError
from .grid import cells, load_grid

REPO = Path(__file__).resolve().parents[2]
DEFINITION = REPO / "jobs" / "pipeline.yaml"
MODES = ("finetune", "linear", "scratch")
RESOURCES = ("train", "single")
PLACEHOLDER = re.compile(r"\{([a-z_]+(?:\.[a-z_]+)?)\}")


@dataclass
class Stage:
    name: str
    after: list[str]
    resources: str  # "train": the launcher's GPUs, processes and nodes; "single": one process
    time_min: int
    commands: list[list[str]] = field(default_factory=list)  # independent: one array task each


def parser(default_profile: str, description: str) -> argparse.ArgumentParser:
    """The command line every launcher takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", required=True, help="CIFAR-10: cifar-10-batches-py root, image folder, .tar.gz or cache")
    p.add_argument("--run", "--out", dest="run", type=Path, help="pipeline directory (default runs/<profile>)")
    p.add_argument(
        "--profile",
        default=default_profile,
        help="smoke (minutes on a CPU), report (REPORT.md's CPU run: 1.5 h on 2 cores) or full (the real recipe)",
    )
    p.add_argument("--config", help="YAML config for the AE and classifier stages instead of the profile's")
    p.add_argument("--modes", "--mode", default="finetune,linear,scratch", help="classifier modes, comma-separated")
    p.add_argument("--grid", type=Path, help="run every cell of this classifier grid file instead of --modes")
    p.add_argument("--codec-recipe", help="codec recipe (default jobs/configs/codec/<profile>.yaml)")
    p.add_argument("--no-codec", action="store_true", help="leave the codec stage out")
    p.add_argument("--gpus", type=int, help="GPUs per node (Slurm; default 1, 0 for CPU nodes)")
    p.add_argument("--procs", type=int, help="training processes per node (default: --gpus, or GPUS)")
    p.add_argument("--nodes", type=int, default=1, help="nodes for the training stages")
    p.add_argument("--cpus", type=int, help="CPUs per task (Slurm; default 8)")
    p.add_argument("--time", help="time limit of each training stage: minutes or [D-]HH:MM:SS (default: the stage's)")
    p.add_argument("--partition", help="Slurm partition")
    p.add_argument("--image", help="run every stage inside this Apptainer/Docker image (docker/README.md)")
    p.add_argument("--eval-args", default="", help='extra src/evaluate.py flags, e.g. "--splits test --no-wandb"')
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for the AE and classifiers")
    return p


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Check the inputs (one UserError line each) and make every path absolute."""
    if not Path(args.data).exists():
        raise UserError(f"data path {args.data} does not exist")
    args.data = str(Path(args.data).resolve())
    # a profile is a config with a codec recipe of the same name: smoke, report, full
    configs = REPO / "jobs" / "configs"
    profiles = sorted(p.stem for p in (configs / "codec").glob("*.yaml") if (configs / p.name).is_file())
    if args.config:
        if not Path(args.config).is_file():
            raise UserError(f"config file {args.config} does not exist")
        args.config = str(Path(args.config).resolve())
    else:
        args.config = str(REPO / f"jobs/configs/{args.profile}.yaml")
        if not Path(args.config).is_file():
            raise UserError(
                f"no profile {args.profile!r} (jobs/configs/{args.profile}.yaml); use {' or '.join(profiles)}"
            )
    if args.no_codec:
        args.codec_recipe = ""
    else:
        args.codec_recipe = args.codec_recipe or str(REPO / f"jobs/configs/codec/{args.profile}.yaml")
        if not Path(args.codec_recipe).is_file():
            raise UserError(f"codec recipe {args.codec_recipe} does not exist; pass --codec-recipe FILE or --no-codec")
        args.codec_recipe = str(Path(args.codec_recipe).resolve())
    args.modes = [m for m in str(args.modes).split(",") if m]
    bad = [m for m in args.modes if m not in MODES]
    if bad or not args.modes:
        raise UserError(f"--modes {','.join(bad) or '(none)'}: use {', '.join(MODES)}")
    if args.grid is not None:
        args.grid = Path(args.grid).resolve()
        load_grid(args.grid)  # a missing file is one line now, not a failed job later
    for item in args.overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key=value")
    args.run = Path(args.run or REPO / "runs" / args.profile).resolve()
    args.time = time_minutes(args.time) if args.time else None
    return args


def time_minutes(text: str) -> int:
    """A Slurm time limit ("90", "04:00:00", "1-12:00:00") in whole minutes."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d\d):(\d\d)|(\d+)", str(text))
    if not match:
        raise UserError(f"--time {text}: give minutes (240) or [D-]HH:MM:SS (04:00:00)")
    days, hours, minutes, seconds, plain = match.groups()
    if plain:
        return int(plain)
    return int(days or 0) * 1440 + int(hours) * 60 + int(minutes) + (int(seconds) > 0)


def plan(args: argparse.Namespace, definition: Path = DEFINITION) -> list[Stage]:
    """The stages of jobs/pipeline.yaml for these arguments, in order, with their commands filled in."""
    run = args.run
    if args.grid is None:
        clf = [{"dir": str(run / f"clf-{m}"), "args": ["--mode", m]} for m in args.modes]
    else:
        clf = [{"dir": str(d), "args": a} for *_, d, a in cells(load_grid(args.grid), run / "grid")]
    eval_args = shlex.split(args.eval_args)
    wandb_off = "--no-wandb" in eval_args or "wandb=false" in args.overrides
    values = {
        "data": args.data,
        "run": str(run),
        "config": args.config,
        "grid": str(args.grid or ""),
        "codec_recipe": args.codec_recipe,
        "overrides": list(args.overrides),
        "eval_args": eval_args,
        "wandb_off": ["--no-wandb"] if wandb_off else [],
    }
    stages = []
    for name, spec in load_definition(definition).items():
        if spec.get("needs") and not values.get(spec["needs"]):
            continue
        included = {s.name for s in stages}
        stage = Stage(name, [a for a in spec.get("after", []) if a in included], spec["resources"], spec["time"])
        for template in spec["commands"]:
            stage.commands += expand(template, values, clf)
        stages.append(stage)
    return stages


def load_definition(path: Path) -> dict:
    try:
        stages = yaml.safe_load(Path(path).read_text())["stages"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise UserError(f"{path} is not a pipeline definition ({err})") from None
    seen = set()
    for name, spec in stages.items():
        unknown = set(spec) - {"after", "needs", "resources", "time", "commands"}
        if unknown or spec.get("resources") not in RESOURCES or not spec.get("commands"):
            raise UserError(f"{path}: stage {name} needs resources ({'/'.join(RESOURCES)}), time and commands only")
        if set(spec.get("after", [])) - seen:
            raise UserError(f"{path}: stage {name} runs after {sorted(set(spec['after']) - seen)}, defined after it")
        seen.add(name)
    return stages


def expand(template: list[str], values: dict, clf: list[dict]) -> list[list[str]]:
    """One command per classifier run when the template names {clf.*}, else one command."""
    names = {name for token in template for name in PLACEHOLDER.findall(token)}
    unknown = names - set(values) - {"clf.dir", "clf.args"}
    if unknown:
        raise UserError(f"pipeline definition: unknown placeholder(s) {sorted(unknown)} in {template}")
    per_run = any(name.startswith("clf.") for name in names)
    commands = []
    for record in clf if per_run else [{}]:
        scope = {**values, **{f"clf.{k}": v for k, v in record.items()}}
        command = []
        for token in template:
            if token.startswith("*{") and token.endswith("}"):
                command += scope[token[2:-1]]  # a list, spliced in
            else:
                command.append(PLACEHOLDER.sub(lambda m, scope=scope: scope[m.group(1)], token))
        commands.append(command)
    return commands


def job_env(args: argparse.Namespace) -> dict[str, str]:
    """What every stage's job needs in its environment: the checkout, the image and one W&B group."""
    args.run.mkdir(parents=True, exist_ok=True)
    env = {"CIFARAE_ROOT": str(REPO), "WANDB_RUN_GROUP": f"{args.run.name}-{tracking.run_id(args.run)}"}
    if args.image:
        env["IMAGE"] = args.image
    return env


def stage_gpus(stage: Stage, args: argparse.Namespace) -> str:
    """GPUS for jobs/launch.sh: processes per machine for training stages, one process for the rest."""
    if stage.resources == "single":
        return "0" if args.gpus == 0 else "1"
    procs = args.procs if args.procs is not None else args.gpus
    return "" if procs is None else str(procs)


def run_local(stages: list[Stage], args: argparse.Namespace) -> int:
    """Every stage on this machine, in order, each command through jobs/launch.sh; stop at the first failure."""
    env = {**os.environ, **job_env(args), "PYTHON": os.environ.get("PYTHON", sys.executable)}
    print(f"pipeline: {args.run} ({len(stages)} stages: {', '.join(s.name for s in stages)}; data {args.data})")
    for stage in stages:
        gpus = stage_gpus(stage, args)
        for i, command in enumerate(stage.commands):
            print(f"pipeline: {stage.name} [{i + 1}/{len(stage.commands)}] {shlex.join(command)}", flush=True)
            rc = subprocess.call(["bash", "jobs/launch.sh", *command], cwd=REPO, env={**env, "GPUS": gpus})
            if rc != 0:
                later = [s.name for s in stages[stages.index(stage) + 1 :]]
                skipped = f"; not run: {', '.join(later)}" if later else ""
                print(f"pipeline: {stage.name} FAILED: {command[0]} exited with code {rc}{skipped}")
                print(f"pipeline: FAILED at the {stage.name} stage", flush=True)
                return 1
        print(f"pipeline: {stage.name} succeeded", flush=True)
    print(f"pipeline: all stages succeeded; results under {args.run}", flush=True)
    return 0
