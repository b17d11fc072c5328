"""The pipeline's one definition (jobs/pipeline.yaml -> cifarae.pipeline.plan) and W&B run identity."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, TINY, assert_one_line_error, run_script, script_env, wandb_runs

from cifarae import grid as grid_lib
from cifarae import pipeline
from cifarae.config import Config, config_from_dict
from cifarae.errors import UserError
from train_codec import load_recipe, newer, parse_args


def plan_for(*argv: str, definition: Path = pipeline.DEFINITION):
    args = pipeline.resolve_args(pipeline.parser("smoke", "test").parse_args(list(argv)))
    return args, {s.name: s for s in pipeline.plan(args, definition)}


def test_plan_expands_the_definition(synth_folder, tmp_path):
    args, stages = plan_for(
        "--data", str(synth_folder), "--run", str(tmp_path), "epochs=2", "--eval-args=--splits test"
    )
    assert list(stages) == ["ae", "clf", "codec", "eval"]
    assert stages["ae"].commands == [
        ["src/train_ae.py", "--data", str(synth_folder.resolve()), "--out", f"{tmp_path}/ae"]
        + ["--config", str(REPO / "jobs/configs/smoke.yaml"), "epochs=2"]
    ]
    # One classifier command per mode (array tasks), each on the AE's encoder.
    modes = [c[c.index("--mode") + 1] for c in stages["clf"].commands]
    assert modes == ["finetune", "linear", "scratch"]
    assert all(c[c.index("--encoder") + 1] == f"{tmp_path}/ae" for c in stages["clf"].commands)
    assert [c[c.index("--out") + 1] for c in stages["clf"].commands] == [f"{tmp_path}/clf-{m}" for m in modes]
    # The codec runs its profile's recipe after the AE, beside the classifiers.
    assert stages["codec"].after == ["ae"] and stages["clf"].after == ["ae"]
    codec = stages["codec"].commands[0]
    assert codec[0] == "src/train_codec.py" and codec[codec.index("--recipe") + 1].endswith("codec/smoke.yaml")
    assert codec[codec.index("--out") + 1] == f"{tmp_path}/codec"
    # Evaluation: the AE, then every classifier, with the eval flags spliced in.
    runs = [c[c.index("--run") + 1] for c in stages["eval"].commands]
    assert runs == [f"{tmp_path}/ae"] + [f"{tmp_path}/clf-{m}" for m in modes]
    assert all(c[-2:] == ["--splits", "test"] for c in stages["eval"].commands)
    assert stages["ae"].resources == "train" and stages["eval"].resources == "single"


def test_no_codec_and_a_grid_change_the_plan(synth_folder, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("modes: [linear, scratch]\nfractions:\n  0.5: {seeds: [0, 1]}\n")
    _, stages = plan_for("--data", str(synth_folder), "--run", str(tmp_path), "--no-codec", "--grid", str(grid))
    assert list(stages) == ["ae", "clf", "eval", "grid"]
    outs = [c[c.index("--out") + 1] for c in stages["clf"].commands]
    assert outs == [f"{tmp_path}/grid/{m}-f0.5-s{s}" for m in ("linear", "scratch") for s in (0, 1)]
    assert len(stages["eval"].commands) == 5
    assert stages["grid"].after == ["eval"] and "--tabulate" in stages["grid"].commands[0]


def test_a_new_stage_is_one_entry_in_the_definition(synth_folder, tmp_path):
    definition = tmp_path / "pipeline.yaml"
    text = (REPO / "jobs" / "pipeline.yaml").read_text()
    definition.write_text(
        text + "\n  shift:\n    after: [clf]\n    resources: single\n    time: 10\n"
        '    commands:\n      - [experiments/shift.py, --run, "{clf.dir}", --data, "{data}"]\n'
    )
    _, stages = plan_for(
        "--data", str(synth_folder), "--run", str(tmp_path), "--modes", "scratch", definition=definition
    )
    assert stages["shift"].after == ["clf"]
    assert stages["shift"].commands == [
        ["experiments/shift.py", "--run", f"{tmp_path}/clf-scratch", "--data", str(synth_folder.resolve())]
    ]


def test_report_profile_plans_the_shipped_recipes(synth_folder, tmp_path):
    # experiments/report/run.sh: PROFILE=report with the report's grid, the run behind REPORT.md's figures
    args, stages = plan_for(
        "--data",
        str(synth_folder),
        "--run",
        str(tmp_path),
        "--profile",
        "report",
        "--grid",
        "jobs/configs/grid_report.yaml",
    )
    assert list(stages) == ["ae", "clf", "codec", "eval", "grid"]
    assert args.config.endswith("jobs/configs/report.yaml")
    assert stages["codec"].commands[0][-2:] == ["--recipe", str(pipeline.REPO / "jobs/configs/codec/report.yaml")]
    cells = sorted(Path(c[c.index("--out") + 1]).name for c in stages["clf"].commands)
    fractions = ("f0.1", "f1")
    assert cells == sorted(f"{m}-{f}-s0" for m in ("finetune", "linear", "scratch") for f in fractions)
    # every cell trains clf.yaml's recipe under report.yaml (the half-width backbone, 4 epochs)
    assert all(c[c.index("--config", c.index("--encoder")) + 1].endswith("report.yaml") for c in stages["clf"].commands)


def test_the_objectives_grid_extends_the_report_runs_grid(synth_folder, tmp_path):
    # experiments/report/objectives.sh reruns the report run's grid under grid_objectives.yaml: every cell the
    # pipeline trained must come back with the same directory and arguments, so it is reused, not retrained.
    _, stages = plan_for("--data", str(synth_folder), "--run", str(tmp_path), "--profile", "report",
                         "--grid", "jobs/configs/grid_report.yaml")  # fmt: skip
    report = {
        Path(c[c.index("--out") + 1]).name: c[c.index("--config", c.index("--encoder")) :]
        for c in stages["clf"].commands
    }
    objectives = {
        d.name: a
        for *_, d, a in grid_lib.cells(grid_lib.load_grid(REPO / "jobs/configs/grid_objectives.yaml"), tmp_path)
    }
    assert {name: objectives.get(name) for name in report} == report
    fractions = {name.split("-")[1] for name in objectives}
    assert fractions == {"f0.01", "f0.1", "f1"} and {name[-2:] for name in objectives} == {"s0", "s1"}


def test_the_objectives_study_needs_the_report_run_first(tmp_path):
    proc = subprocess.run(["bash", "experiments/report/objectives.sh", "DATA", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    assert_one_line_error(proc, "no report run under")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--profile", "nope"], "no profile 'nope' (jobs/configs/nope.yaml); use full or report or smoke"),
        (["--modes", "probe"], "--modes probe"),
        (["--codec-recipe", "missing.yaml"], "codec recipe missing.yaml does not exist"),
        (["epochs"], "override 'epochs' must look like key=value"),
        (["--time", "4h"], "--time 4h: give minutes"),
    ],
)
def test_bad_pipeline_arguments_are_one_line(synth_folder, argv, fragment):
    with pytest.raises(UserError) as err:
        plan_for("--data", str(synth_folder), *argv)
    assert fragment in str(err.value)


def test_time_limits_read_as_slurm_writes_them():
    assert [pipeline.time_minutes(t) for t in ("90", "04:00:00", "1-00:30:00", "00:00:30")] == [90, 240, 1470, 1]


def test_a_definition_that_names_a_later_stage_is_refused(synth_folder, tmp_path):
    definition = tmp_path / "pipeline.yaml"
    definition.write_text("stages:\n  a:\n    after: [b]\n    resources: single\n    time: 1\n    commands: [[x]]\n")
    with pytest.raises(UserError, match="runs after \\['b'\\], defined after it"):
        plan_for("--data", str(synth_folder), definition=definition)
    definition.write_text("stages:\n  a:\n    resources: single\n    time: 1\n    commands: [[x, '{dta}']]\n")
    with pytest.raises(UserError, match="unknown placeholder\\(s\\) \\['dta'\\]"):
        plan_for("--data", str(synth_folder), definition=definition)


def test_pipeline_sh_outside_a_checkout_fails_in_one_line(tmp_path):
    """Under sbatch the script runs as a copy in Slurm's spool directory: without CIFARAE_ROOT or a
    submit directory that holds the project, it says so in one line."""
    copy = tmp_path / "spool" / "slurm_script"
    copy.parent.mkdir()
    shutil.copy(REPO / "slurm" / "pipeline.sh", copy)
    env = {k: v for k, v in script_env().items() if k != "CIFARAE_ROOT"}
    env.update(SLURM_JOB_ID="7", SLURM_SUBMIT_DIR=str(tmp_path))
    proc = subprocess.run(["bash", str(copy), "--data", "x"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert_one_line_error(proc, "no cifarae checkout", "CIFARAE_ROOT", str(tmp_path))
    # From the repository root (the submit directory), the same copy finds the project.
    env["SLURM_SUBMIT_DIR"] = str(REPO)
    proc = subprocess.run(
        ["bash", str(copy), "--data", "/no/such/data"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert_one_line_error(proc, "data path /no/such/data does not exist")


# --------------------------------------------------------------------------- W&B identity
def train_tiny(out: Path, data: Path, *extra: str, env_extra: dict | None = None):
    env = {**script_env(), **(env_extra or {})}
    cmd = [str(REPO / "src" / "train_ae.py"), "--data", str(data), "--out", str(out), *TINY, "wandb=true", *extra]
    proc = subprocess.run([sys.executable, *cmd], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_wandb_ids_are_per_run_directory_and_survive_a_requeue(synth_cache, tmp_path):
    first, second = tmp_path / "a" / "ae", tmp_path / "b" / "ae"  # the same leaf name
    train_tiny(first, synth_cache, "epochs=1")
    train_tiny(second, synth_cache, "epochs=1")
    (a,), (b,) = wandb_runs(first / "wandb"), wandb_runs(second / "wandb")
    assert a.run_id != b.run_id
    assert a.run_id == (first / "wandb_id").read_text().strip()
    assert (a.run_group, b.run_group) == ("a", "b")  # no pipeline: grouped by the parent folder

    train_tiny(first, synth_cache, "epochs=1")  # the same job again, as a requeue runs it: it resumes
    runs = wandb_runs(first / "wandb")
    assert len(runs) == 2 and {r.run_id for r in runs} == {a.run_id}


def test_evaluation_is_its_own_wandb_run_in_the_pipeline_group(synth_cache, tmp_path):
    run = tmp_path / "pipe" / "ae"
    group = {"WANDB_RUN_GROUP": "pipe-1234"}
    train_tiny(run, synth_cache, "epochs=1", env_extra=group)
    env = {**script_env(), **group}
    proc = subprocess.run(
        [sys.executable, "src/evaluate.py", "--run", str(run), "--data", str(synth_cache), "--splits", "test"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (train,), (evaluation,) = wandb_runs(run / "wandb"), wandb_runs(run / "eval" / "wandb")
    assert (train.run_group, evaluation.run_group) == ("pipe-1234", "pipe-1234")
    assert (train.job_type, evaluation.job_type) == ("ae", "eval")
    assert evaluation.run_id != train.run_id and evaluation.display_name == "ae-eval"


def test_train_codec_rejects_a_bad_recipe(synth_cache, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("train: {rd_lambda: 0.01}\nfitt: {}\n")
    proc = run_script(
        "train_codec.py",
        "--data",
        synth_cache,
        "--ae",
        tmp_path,
        "--out",
        tmp_path / "c",
        "--recipe",
        recipe,
        check=False,
    )
    assert_one_line_error(proc, f"codec recipe {recipe} needs a train section")
    assert not os.path.exists(tmp_path / "c")
    # a recipe that trains no entropy model would leave a plain autoencoder, not a codec
    recipe.write_text("train: {rd_lambda: 0.01}\n")
    cmd = ["--data", synth_cache, "--out", tmp_path / "c", "--recipe", recipe]
    proc = run_script("train_codec.py", *cmd, check=False)
    assert_one_line_error(proc, f"codec recipe {recipe} must train entropy_model: hyperprior")
    assert not os.path.exists(tmp_path / "c")
    # a recipe that continues another names one beside it, and starts from it alone
    recipe.write_text("from: missing.yaml\ntrain: {entropy_model: hyperprior}\n")
    proc = run_script("train_codec.py", *cmd, check=False)
    assert_one_line_error(proc, f"codec recipe {recipe}: from: missing.yaml is not a recipe beside it")
    recipe.write_text("from: recipe.yaml\ntrain: {entropy_model: hyperprior}\n")
    proc = run_script("train_codec.py", *cmd, check=False)
    assert_one_line_error(proc, f"codec recipe {recipe}: from: recipe.yaml leads back to a recipe of its own chain")
    recipe.write_text("from: recipe.yaml\ntrain: {entropy_model: hyperprior, init_from: runs/x}\n")
    proc = run_script("train_codec.py", *cmd, check=False)
    assert_one_line_error(proc, f"codec recipe {recipe} sets both from: and train.init_from; keep one")
    assert not os.path.exists(tmp_path / "c")
    proc = run_script("train_codec.py", *cmd, "--steps", "train", "exprot", check=False)
    assert_one_line_error(proc, "--steps exprot: not a step; the steps are train, export, rd")


def test_train_codec_overrides_may_follow_the_steps():
    """--steps takes every word after it; a key=value among them is an override, as it is anywhere else."""
    required = ["--data", "d", "--out", "o", "--recipe", "r"]
    args = parse_args([*required, "lr=0.1", "--steps", "train", "export", "epochs=2"])
    assert args.steps == ["train", "export"] and args.overrides == ["lr=0.1", "epochs=2"]
    assert parse_args(required).steps == ["train", "export", "rd"]


def test_train_codec_redoes_a_step_only_when_its_input_is_newer(tmp_path):
    made, source = tmp_path / "model.json", tmp_path / "best.pt"
    assert not newer(made, source)  # neither: make it
    source.write_bytes(b"")
    assert not newer(made, source)
    made.write_bytes(b"")
    os.utime(source, (1, 1))
    assert newer(made, source)
    os.utime(source, (made.stat().st_mtime + 10,) * 2)
    assert not newer(made, source)  # trained again since: redo it
    source.unlink()
    assert newer(made, source)  # a checkpoint gone (e.g. cleaned up): nothing to redo it from


def test_a_recipe_with_from_trains_and_exports_its_base_first_then_starts_from_that_model(synth_cache, tmp_path):
    smoke = yaml.safe_load((REPO / "jobs/configs/codec/smoke.yaml").read_text())
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(smoke))
    (tmp_path / "top.yaml").write_text(
        yaml.safe_dump({**smoke, "from": "base.yaml", "train": {**smoke["train"], "lr": 5e-4}})
    )
    out = tmp_path / "codec"
    cmd = ["--data", synth_cache, "--out", out, "--recipe", tmp_path / "top.yaml", "--steps", "train", "export"]
    run_script("train_codec.py", *cmd, "--no-wandb", *TINY)
    base = out / "base"
    assert (base / "model" / "model.json").is_file() and not (base / "rd").exists()
    assert json.loads((base / "model" / "model.json").read_text())["recipe"] == str(tmp_path / "base.yaml")
    top = yaml.safe_load((out / "config.yaml").read_text())
    assert top["init_from"] == str(base / "model") and top["lr"] == 5e-4 and top["widths"] == [8, 8, 16, 16]
    assert (out / "model" / "model.json").is_file() and not (out / "rd").exists()  # --steps: no rd
    # run again: runs with their models but no checkpoints were trained elsewhere (a GPU machine): skipped
    for f in [*base.glob("*.pt"), *out.glob("*.pt")]:
        f.unlink()
    again = run_script("train_codec.py", *cmd, "--no-wandb", *TINY)
    assert f"codec: base: {base / 'model'} trained elsewhere, skipped" in again.stdout, again.stdout
    assert "codec: train: trained elsewhere, skipped" in again.stdout
    assert "codec: export: done already, skipped" in again.stdout
    assert not (base / "best.pt").exists() and not (out / "best.pt").exists()


def test_every_codec_recipe_is_a_valid_codec_config_and_each_chain_keeps_its_model():
    """Each jobs/configs/codec recipe trains a codec with known, well-typed keys. The CPU chain (cpu.yaml ->
    cpu_context.yaml -> cpu_long.yaml, experiments/codec/v2.sh) and the GPU chain of the model shipped before
    (gpu.yaml -> gpu_long.yaml -> gpu_top.yaml) start each step from the one before and keep its transforms, and
    each continuation keeps every level, so no gain is re-initialised. full_base.yaml is one step from scratch with
    the GPU chain's design and all of its levels; full_context.yaml continues it with the sub-position context and
    nothing else changed; full_levels.yaml continues that with the same transforms and its levels moved toward the
    floors, the top one kept (the span's 3 bpp end); full.yaml, the shipped model's, trains that one's decoder alone,
    with the same design and levels."""
    whole = {p.stem: load_recipe(p) for p in sorted((REPO / "jobs/configs/codec").glob("*.yaml"))}
    recipes = {name: recipe["train"] for name, recipe in whole.items()}
    chains = {"cpu", "cpu_context", "cpu_long", "gpu", "gpu_long", "gpu_top", "full_base", "full_context"}
    chains |= {"full_levels", "full"}
    assert chains | {"report", "smoke"} <= set(recipes)
    for name, train in recipes.items():
        base = {"init_from": "RUN/base/model"} if "from" in whole[name] else {}  # as train_codec.py sets it
        cfg = config_from_dict({**Config().to_dict(), "task": "ae", **base, **train})
        assert cfg.entropy_model == "hyperprior", name
    base, context, longer = (recipes[k] for k in ("cpu", "cpu_context", "cpu_long"))
    assert (context["init_from"], longer["init_from"]) == ("runs/codec_v2_base", "runs/codec_v2_context")
    transforms = ("widths", "latent_size", "latent_channels", "skip_channels", "hyper_channels")
    assert all(base[k] == context[k] == longer[k] for k in transforms)
    assert longer["rd_lambdas"] == context["rd_lambdas"] and longer["context"] == context["context"]
    assert set(base["rd_lambdas"]) < set(context["rd_lambdas"])
    # the GPU chain of the model shipped before: gpu.yaml -> gpu_long.yaml -> gpu_top.yaml
    chain = {k: load_recipe(REPO / f"jobs/configs/codec/{k}.yaml") for k in ("gpu", "gpu_long", "gpu_top")}
    assert (chain["gpu_long"]["from"], chain["gpu_top"]["from"]) == ("gpu.yaml", "gpu_long.yaml")
    assert "from" not in chain["gpu"]
    keep = (*transforms[1:], "decoder_widths", "context")  # widths: the default, full width
    assert all(r["train"][k] == chain["gpu_top"]["train"][k] for r in chain.values() for k in keep)
    first, then, top = (chain[k]["train"]["rd_lambdas"] for k in ("gpu", "gpu_long", "gpu_top"))
    assert first == then and set(then) < set(top) and max(top) == 0.256  # a level more, to reach 3 bpp
    scratch = load_recipe(REPO / "jobs/configs/codec/full_base.yaml")
    assert "from" not in scratch and "init_from" not in scratch["train"]
    assert all(scratch["train"][k] == chain["gpu_top"]["train"][k] for k in (*keep, "rd_lambdas"))
    # full_context.yaml fine-tunes full_base.yaml's with the sub-position context alone
    subpositions = load_recipe(REPO / "jobs/configs/codec/full_context.yaml")
    assert subpositions["from"] == "full_base.yaml" and subpositions["train"]["context"] == "subpositions"
    design = (*transforms[1:], "analysis_blocks", "decoder_widths", "clip_quantiles", "batch_size")
    assert all(subpositions["train"][k] == scratch["train"][k] for k in (*design, "rd_lambdas"))
    # full_levels.yaml continues it: the same design and context, other levels
    fine = load_recipe(REPO / "jobs/configs/codec/full_levels.yaml")
    assert fine["from"] == "full_context.yaml" and "train_only" not in fine["train"]
    assert all(fine["train"][k] == subpositions["train"][k] for k in (*design, "context"))
    levels, weights = fine["train"]["rd_lambdas"], fine["train"]["rd_level_weights"]
    assert len(weights) == len(levels) == 11 and levels == sorted(levels) and max(levels) == 0.256
    assert levels != subpositions["train"]["rd_lambdas"]
    # full.yaml (PROFILE=full's, the shipped model's) trains that model's decoder alone: the same design and levels
    decoder = load_recipe(REPO / "jobs/configs/codec/full.yaml")
    assert decoder["from"] == "full_levels.yaml" and decoder["train"]["train_only"] == "decoder"
    assert all(decoder["train"][k] == fine["train"][k] for k in (*design, "context", "rd_lambdas", "rd_level_weights"))
    script = (REPO / "experiments/codec/v2.sh").read_text()
    assert script.index("codec/cpu.yaml") < script.index("codec/cpu_context.yaml") < script.index("codec/cpu_long.yaml")
