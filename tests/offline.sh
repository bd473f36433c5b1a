#!/usr/bin/env bash
# Run a command with no network but loopback, so that a test that would reach the
# internet fails instead of passing by luck. Uses a fresh network namespace (`unshare -n`,
# root or user namespaces needed); where that is not allowed it says so and runs the command
# with HF_HUB_OFFLINE=1 only -- except under CI (CI=true), where that fallback would let a test
# pass by reaching the network: there it fails and says what is missing.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [ -z "${COURSE_NO_UNSHARE:-}" ] && unshare -n true 2>/dev/null; then
  export COURSE_NETWORK=blocked
  exec unshare -n bash -c 'ip link set lo up 2>/dev/null || true; exec "$@"' offline "$@"
elif [ -z "${COURSE_NO_UNSHARE:-}" ] && unshare -rn true 2>/dev/null; then
  export COURSE_NETWORK=blocked
  exec unshare -rn bash -c 'ip link set lo up 2>/dev/null || true; exec "$@"' offline "$@"
fi

# No network namespace: say why.
if [ -n "${COURSE_NO_UNSHARE:-}" ]; then
  why="COURSE_NO_UNSHARE is set"
  fix="unset COURSE_NO_UNSHARE"
elif ! command -v unshare >/dev/null 2>&1; then
  why="unshare is not installed"
  fix="install util-linux (apt-get install -y util-linux)"
else
  refusal="$(unshare -rn true 2>&1)"
  why="unshare -n and unshare -rn are both refused: ${refusal%%$'\n'*}"
  fix="run as root, or allow unprivileged user namespaces (sysctl -w kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 also kernel.apparmor_restrict_unprivileged_userns=0; in Docker --security-opt seccomp=unconfined --security-opt apparmor=unconfined, or --privileged)"
fi
ci="${CI:-}"
case "${ci,,}" in
  1|true|yes|on)
    echo "tests/offline.sh: CI is set and no network namespace can be made here ($why)." >&2
    echo "tests/offline.sh: under CI the tests must run with the network cut off; to fix it, $fix." >&2
    exit 1
    ;;
esac
echo "tests/offline.sh: cannot make a network namespace here ($why); running with HF_HUB_OFFLINE=1 only (to fix it, $fix)" >&2
exec "$@"
