# Shared by the launch scripts under deploy/; sourced, never run.

# The Beam version of the worker image, the job servers and the launcher: all three must match.
BEAM_VERSION="${BEAM_VERSION:-2.77.0}"
DRY_RUN=0

# Print the leading comment block of a script (its usage).
usage() {
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$1"
}

# Fail with a message that names the missing variable and what it is for.
require() {
  if [[ -z "${!1:-}" ]]; then
    echo "$(basename "$0"): set $1 ($2)" >&2
    exit 2
  fi
}

# Handle the flags every launch script takes (--dry-run, --help); the other arguments are left,
# in order, in the array ARGS (use: parse_flags "$@"; set -- "${ARGS[@]}").
parse_flags() {
  ARGS=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dry-run) DRY_RUN=1 ;;
      -h | --help) usage "$0"; exit 0 ;;
      *) ARGS=("$@"); return ;;
    esac
    shift
  done
}

# Run Beam's job server container IMAGE with its cluster flag(s), staging artifacts in
# ARTIFACTS_DIR when it is set.
run_job_server() {
  local cmd=(docker run --rm --network host "$@")
  if [[ -n "${ARTIFACTS_DIR:-}" ]]; then
    cmd+=("--artifacts-dir=${ARTIFACTS_DIR}")
  fi
  run_or_print "${cmd[@]}"
}

# Run a command, or with --dry-run print it shell-quoted on one line.
run_or_print() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# Set the array `cmd` to `normxlogit annotate ARGS...` on a portable job server (Flink, Spark).
# Environment: JOB_ENDPOINT, ARTIFACT_ENDPOINT, ENVIRONMENT (docker or external), IMAGE (docker),
# WORKER_POOL (external), SDK_WORKERS.
portable_annotate() {
  cmd=(
    normxlogit annotate "$@"
    --runner PortableRunner
    --job_endpoint "${JOB_ENDPOINT:-localhost:8099}"
    --artifact_endpoint "${ARTIFACT_ENDPOINT:-localhost:8098}"
    --sdk_worker_parallelism "${SDK_WORKERS:-1}"
  )
  case "${ENVIRONMENT:-docker}" in
    docker)
      require IMAGE "the worker image from deploy/build_image.sh"
      cmd+=(--environment_type DOCKER --environment_config "$IMAGE")
      ;;
    external)
      cmd+=(--environment_type EXTERNAL --environment_config "${WORKER_POOL:-localhost:50000}")
      ;;
    *)
      echo "$(basename "$0"): ENVIRONMENT must be docker or external, not ${ENVIRONMENT}" >&2
      exit 2
      ;;
  esac
}
