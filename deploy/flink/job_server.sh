#!/usr/bin/env bash
# Start Beam's Flink job server (a container) for an existing Flink cluster; run.sh submits to it.
#
#   deploy/flink/job_server.sh [--dry-run]
#
# Environment:
#   FLINK_MASTER    the cluster's REST address, e.g. flink-jobmanager:8081 (required)
#   FLINK_VERSION   the cluster's Flink minor version, default 1.20 (Beam publishes job servers
#                   for 1.19, 1.20, 2.0, 2.1 and 2.2)
#   ARTIFACTS_DIR   where staged artifacts go; a folder every task manager reads (gs://, s3://)
#                   for a remote cluster (default: inside the container)
#
# It listens on localhost:8099 (jobs) and localhost:8098 (artifacts).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/common.sh"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage "$0"; exit 0 ;;
    *) break ;;
  esac
  shift
done
require FLINK_MASTER "the Flink REST address, e.g. flink-jobmanager:8081"

cmd=(
  docker run --rm --network host
  "apache/beam_flink${FLINK_VERSION:-1.20}_job_server:${BEAM_VERSION}"
  "--flink-master=${FLINK_MASTER}"
)
if [[ -n "${ARTIFACTS_DIR:-}" ]]; then
  cmd+=("--artifacts-dir=${ARTIFACTS_DIR}")
fi
run_or_print "${cmd[@]}"
