#!/usr/bin/env bash
# Entry point of the cifarae image: run any src/ script through jobs/launch.sh, which starts one
# process per visible GPU (or GPUS=N; CPU processes without a GPU). Anything else runs as given.
#
#   docker run --gpus all IMAGE train_ae.py --data /app/data/x.tar.gz --out /app/runs/ae [key=value ...]
#   docker run IMAGE evaluate --run /app/runs/ae --data /app/data/x.tar.gz
#   docker run -it IMAGE bash
set -euo pipefail
cd "${CIFARAE_HOME:-/app}"  # the image's WORKDIR

case "${1:---help}" in
-h | --help | help)
  echo "usage: docker run [--gpus all] [-e GPUS=N] IMAGE SCRIPT [args...]   (or any command, e.g. bash)"
  echo "scripts:"
  for f in src/*.py; do
    printf '  %-18s %s\n' "$(basename "$f")" "$(sed -n 's/^"""\(.*\)/\1/p' "$f" | head -n1)"
  done
  exit 0
  ;;
esac

name=${1#src/}
name=${name%.py}
if [ -f "src/$name.py" ]; then
  shift
  exec bash jobs/launch.sh "src/$name.py" "$@"
fi
exec "$@"
