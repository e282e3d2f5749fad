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

parse_flags "$@"
set -- "${ARGS[@]}"
require FLINK_MASTER "the Flink REST address, e.g. flink-jobmanager:8081"

run_job_server "apache/beam_flink${FLINK_VERSION:-1.20}_job_server:${BEAM_VERSION}" "--flink-master=${FLINK_MASTER}"
