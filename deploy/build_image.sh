#!/usr/bin/env bash
# Build the worker image from deploy/Dockerfile (and push it, for Dataflow or a remote cluster).
#
#   deploy/build_image.sh [--dry-run] [--gpu] [--push] IMAGE
#
#   --dry-run   print the commands instead of running them
#   --gpu       CUDA torch (TORCH_VARIANT, default cu128) instead of CPU torch
#   --push      docker push IMAGE after the build
#
# Environment: BEAM_VERSION (default 2.77.0, must match the launcher's apache-beam),
# TORCH_VARIANT (with --gpu; default cu128).
#
# Example:
#   deploy/build_image.sh --gpu --push us-central1-docker.pkg.dev/PROJECT/normxlogit/worker:gpu
set -euo pipefail
DEPLOY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$DEPLOY/common.sh"

gpu=0
push=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --gpu) gpu=1 ;;
    --push) push=1 ;;
    -h | --help) usage "$0"; exit 0 ;;
    *) break ;;
  esac
  shift
done
if [[ $# -ne 1 ]]; then
  usage "$0" >&2
  exit 2
fi
image="$1"
variant=cpu
if [[ "$gpu" == 1 ]]; then
  variant="${TORCH_VARIANT:-cu128}"
fi

# BuildKit: the legacy builder ignores deploy/Dockerfile.dockerignore, and the image copies the
# whole build context, which that file narrows to the package.
export DOCKER_BUILDKIT=1
run_or_print docker build -f "$DEPLOY/Dockerfile" \
  --build-arg "BEAM_VERSION=$BEAM_VERSION" --build-arg "TORCH_VARIANT=$variant" \
  -t "$image" "$(dirname "$DEPLOY")"
if [[ "$push" == 1 ]]; then
  run_or_print docker push "$image"
fi
