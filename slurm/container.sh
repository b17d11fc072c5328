#!/usr/bin/env bash
# slurm/container.sh CMD...: run CMD inside the project image $IMAGE (see docker/README.md),
# with the checkout (and each path in BIND_PATHS) mounted at the same path and used as the
# working directory, so relative paths and run directories mean the same inside and out.
# The image's python runs the checkout's code; GPUs are passed in unless GPUS=0.
#
#   IMAGE=cifarae.sif ...            Apptainer/Singularity (a .sif, docker://..., or a sandbox)
#   IMAGE=cifarae:latest ...         Docker (where no apptainer exists, or CONTAINER=docker)
#
# The runtime is exec'd, so signals sent to this script reach it, and it passes them on.
set -euo pipefail

[ -n "${IMAGE:-}" ] || exec "$@"
root=${CIFARAE_ROOT:-$PWD}
binds=("$root")
for p in ${BIND_PATHS:-}; do binds+=("$p"); done
# Variables the launcher and the engine read: Slurm's layout, rendezvous, threads, W&B, cache.
pass='^(SLURM_[A-Z_]+|GPUS|NUM_MACHINES|MACHINE_RANK|MAIN_ADDR|MAIN_PORT|OMP_NUM_THREADS|WANDB_[A-Z_]+|CIFARAE_CACHE|NCCL_[A-Z_]+)='
names=$(env | grep -oE "$pass" | tr -d '=' || true)

runtime=${CONTAINER:-}
if [ -z "$runtime" ]; then
  if command -v apptainer >/dev/null || command -v singularity >/dev/null; then runtime=apptainer; else runtime=docker; fi
fi

case "$runtime" in
apptainer | singularity)
  exe=$(command -v apptainer || command -v singularity) || { echo "error: apptainer not found" >&2; exit 2; }
  args=(exec --cleanenv --pwd "$root" --env PYTHON=python)
  for p in "${binds[@]}"; do args+=(--bind "$p"); done
  [ "${GPUS:-}" = 0 ] || args+=(--nv)
  for n in $names; do args+=(--env "$n=${!n}"); done
  [ -z "${CUDA_VISIBLE_DEVICES+x}" ] || args+=(--env "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES")
  exec "$exe" "${args[@]}" "$IMAGE" "$@"
  ;;
docker)
  command -v docker >/dev/null || { echo "error: IMAGE=$IMAGE but neither apptainer nor docker is installed" >&2; exit 2; }
  args=(run --rm --init --network host --ipc host --user "$(id -u):$(id -g)" -w "$root" -e PYTHON=python -e HOME=/tmp)
  for p in "${binds[@]}"; do args+=(-v "$p:$p"); done
  if [ "${GPUS:-}" != 0 ]; then
    if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then args+=(--gpus "\"device=$CUDA_VISIBLE_DEVICES\""); else args+=(--gpus all); fi
  fi
  for n in $names; do args+=(-e "$n"); done
  exec docker "${args[@]}" --entrypoint "" "$IMAGE" "$@"
  ;;
*)
  echo "error: CONTAINER=$runtime; use apptainer or docker" >&2
  exit 2
  ;;
esac
