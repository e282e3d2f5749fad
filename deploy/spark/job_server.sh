#!/usr/bin/env bash
# Start Beam's Spark 3 job server (a container) for an existing Spark cluster; run.sh submits to it.
#
#   deploy/spark/job_server.sh [--dry-run]
#
# Environment:
#   SPARK_MASTER    the cluster's master URL, e.g. spark://spark-master:7077 (required)
#   ARTIFACTS_DIR   where staged artifacts go; a folder every executor reads (gs://, s3://)
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
require SPARK_MASTER "the Spark master URL, e.g. spark://spark-master:7077"

cmd=(
  docker run --rm --network host
  "apache/beam_spark3_job_server:${BEAM_VERSION}"
  "--spark-master-url=${SPARK_MASTER}"
)
if [[ -n "${ARTIFACTS_DIR:-}" ]]; then
  cmd+=("--artifacts-dir=${ARTIFACTS_DIR}")
fi
run_or_print "${cmd[@]}"
