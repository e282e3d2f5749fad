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

parse_flags "$@"
set -- "${ARGS[@]}"
require SPARK_MASTER "the Spark master URL, e.g. spark://spark-master:7077"

run_job_server "apache/beam_spark3_job_server:${BEAM_VERSION}" "--spark-master-url=${SPARK_MASTER}"
