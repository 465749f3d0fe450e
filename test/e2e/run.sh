#!/usr/bin/env bash
# Runs capwatch's end-to-end suite against a real control plane.
#
#   bash test/e2e/run.sh [path/to/capwatch]      (default: $CAPWATCH_BIN)
#
# Builds kube-apiserver, kube-controller-manager, kubectl, etcd and helm into the cache when the
# versions pinned in versions.env changed (build-control-plane.sh), compiles the suite under the
# machine's build lock, then runs it with `go test`; the output ends with go test's ok/FAIL line.
#
# Environment: CAPWATCH_CACHE (binary cache, default ~/.cache/capwatch), CAPWATCH_E2E_LOG_DIR
# (keep the components' logs there), CAPWATCH_E2E_PSA_SEED / CAPWATCH_E2E_PSA_PODS (replay or
# resize the Pod Security oracle), E2E_RUN (a go test -run pattern), E2E_TIMEOUT (default 30m).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lock="/tmp/capwatch-build.lock"
export GOTOOLCHAIN=local

bin="${1:-${CAPWATCH_BIN:-}}"
if [[ -z "${bin}" ]]; then
  echo "usage: $0 path/to/capwatch   (or set CAPWATCH_BIN)" >&2
  exit 2
fi
if [[ ! -x "${bin}" || -d "${bin}" ]]; then
  echo "run.sh: capwatch binary ${bin} does not exist or is not executable" >&2
  exit 2
fi
CAPWATCH_BIN="$(cd "$(dirname "${bin}")" && pwd)/$(basename "${bin}")"
export CAPWATCH_BIN


CAPWATCH_E2E_ASSETS="$(bash "${here}/build-control-plane.sh" | tail -n 1)"
export CAPWATCH_E2E_ASSETS
echo "run.sh: control-plane binaries in ${CAPWATCH_E2E_ASSETS}"

cd "${here}"
# Compile everything under the lock (download, vet, and the test binary's packages), so that
# the run below only links and runs, and never competes with another build on this machine.
echo "run.sh: compiling the suite (waiting for ${lock})"
compile_start=${SECONDS}
flock "${lock}" sh -c 'go vet ./... && go test -c -o /dev/null .'
echo "run.sh: compiled in $((SECONDS - compile_start)) s (including the wait for the lock)"

run_args=(-count=1 -v -timeout "${E2E_TIMEOUT:-30m}")
if [[ -n "${E2E_RUN:-}" ]]; then run_args+=(-run "${E2E_RUN}"); fi
echo "run.sh: capwatch ${CAPWATCH_BIN}; go test ${run_args[*]} ."
status=0
go test "${run_args[@]}" . || status=$?
exit "${status}"
