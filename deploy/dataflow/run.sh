#!/usr/bin/env bash
# Run `normxlogit annotate` on Google Cloud Dataflow with the worker image (deploy/Dockerfile).
#
#   deploy/dataflow/run.sh [--dry-run] [--gpu] INPUT... --output gs://BUCKET/out [more flags]
#
#   --dry-run   print the command instead of running it
#   --gpu       one NVIDIA L4 per worker: --device cuda --dtype bfloat16 --model-copies 1
#
# Environment:
#   PROJECT        Google Cloud project (required)
#   TEMP_LOCATION  gs://BUCKET/tmp for Beam's temporary and staging files (required)
#   IMAGE          the worker image, built with deploy/build_image.sh --push (required;
#                  with --gpu, one built with --gpu)
#   REGION         default us-central1 (L4 GPUs must be offered in its zones)
#   MACHINE_TYPE   default n2-standard-4, with --gpu g2-standard-8 (1 L4, 8 vCPUs, 32 GB)
#   MAX_WORKERS    autoscaling limit, default 10
#
# Further flags go to normxlogit or Beam unchanged (e.g. --model, --max-length, --job_name).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/common.sh"

gpu=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --gpu) gpu=1 ;;
    -h | --help) usage "$0"; exit 0 ;;
    *) break ;;
  esac
  shift
done
if [[ $# -eq 0 ]]; then
  usage "$0" >&2
  exit 2
fi
require PROJECT "the Google Cloud project to run in"
require TEMP_LOCATION "a gs:// folder for temporary files, e.g. gs://BUCKET/tmp"
require IMAGE "the worker image from deploy/build_image.sh --push"

cmd=(
  normxlogit annotate "$@"
  --runner DataflowRunner
  --project "$PROJECT"
  --region "${REGION:-us-central1}"
  --temp_location "$TEMP_LOCATION"
  --sdk_container_image "$IMAGE"
  --experiments use_runner_v2
  --max_num_workers "${MAX_WORKERS:-10}"
)
if [[ "$gpu" == 1 ]]; then
  # One model per GPU: every SDK process on the worker sends its batches to one shared copy.
  cmd+=(
    --device cuda --dtype bfloat16 --model-copies 1
    --machine_type "${MACHINE_TYPE:-g2-standard-8}"
    --dataflow_service_options "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"
    --disk_size_gb 50
  )
else
  cmd+=(--machine_type "${MACHINE_TYPE:-n2-standard-4}")
fi
run_or_print "${cmd[@]}"
