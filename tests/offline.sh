#!/usr/bin/env bash
# Run a command with no network but loopback, so that a test that would reach the
# internet fails instead of passing by luck. Uses a fresh network namespace (`unshare -n`,
# root or user namespaces needed); where that is not allowed it says so and runs the command
# with HF_HUB_OFFLINE=1 only.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [ -z "${COURSE_NO_UNSHARE:-}" ] && unshare -n true 2>/dev/null; then
  export COURSE_NETWORK=blocked
  exec unshare -n bash -c 'ip link set lo up 2>/dev/null || true; exec "$@"' offline "$@"
elif [ -z "${COURSE_NO_UNSHARE:-}" ] && unshare -rn true 2>/dev/null; then
  export COURSE_NETWORK=blocked
  exec unshare -rn bash -c 'ip link set lo up 2>/dev/null || true; exec "$@"' offline "$@"
else
  echo "tests/offline.sh: cannot make a network namespace here; running with HF_HUB_OFFLINE=1 only" >&2
  exec "$@"
fi
