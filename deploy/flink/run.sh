#!/usr/bin/env bash
# Run `normxlogit annotate` on a Flink cluster through Beam's Flink job server (job_server.sh).
#
#   deploy/flink/run.sh [--dry-run] INPUT... --output OUT [more flags]
#
#   --dry-run   print the command instead of running it
#
# Environment:
#   ENVIRONMENT        docker (default): each task manager starts IMAGE with Docker;
#                      external: SDK workers from a worker pool beside each task manager
#                      (docker run IMAGE --worker_pool), at WORKER_POOL
#   IMAGE              the worker image from deploy/build_image.sh (docker)
#   WORKER_POOL        default localhost:50000 (external)
#   JOB_ENDPOINT       default localhost:8099;  ARTIFACT_ENDPOINT  default localhost:8098
#   SDK_WORKERS        SDK processes per task manager, each with its own model copy (default 1)
#   PARALLELISM        Flink parallelism (default: the cluster's)
#
# INPUT and OUT must be storage every task manager reaches: gs://, s3:// or a shared mount.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/common.sh"

parse_flags "$@"
set -- "${ARGS[@]}"
if [[ $# -eq 0 ]]; then
  usage "$0" >&2
  exit 2
fi
portable_annotate "$@"
if [[ -n "${PARALLELISM:-}" ]]; then
  cmd+=(--parallelism "$PARALLELISM")
fi
run_or_print "${cmd[@]}"
