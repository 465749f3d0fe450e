#!/usr/bin/env bash
# Starts the development control plane (etcd, kube-apiserver, kube-controller-manager; no
# scheduler or kubelet) and keeps it up until Ctrl-C / SIGTERM.
#
#   bash test/e2e/devcluster.sh [--kubeconfig-out PATH] [--crds DIR] [--log-dir DIR]
#
# The kubeconfig appears (atomically) once the API server is ready and kube-controller-manager
# is healthy; its path is printed, by default ${CAPWATCH_CACHE:-~/.cache/capwatch}/devcluster/kubeconfig.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lock="/tmp/capwatch-build.lock"
export GOTOOLCHAIN=local

CAPWATCH_E2E_ASSETS="$(bash "${here}/build-control-plane.sh" | tail -n 1)"
export CAPWATCH_E2E_ASSETS

cache="${CAPWATCH_CACHE:-${HOME}/.cache/capwatch}"
mkdir -p "${cache}/devcluster"
(cd "${here}" && flock "${lock}" go build -o "${cache}/devcluster/devcluster" ./cmd/devcluster)
# exec: signals sent to this script reach devcluster, which stops the components and cleans up.
exec "${cache}/devcluster/devcluster" "$@"
