#!/usr/bin/env bash
# The scale harness (test/bench/README.md, issue 11) against its own etcd and kube-apiserver:
#   bash test/e2e/scale.sh path/to/capwatch [flags of cmd/scale]
# e.g. -sizes 10000 (the test command's smoke) or -sizes 10000,50000,100000 (the full run).
# It builds the control plane (cached) and the harness, then runs it; the harness prints one
# table and exits 1 when a size fails or a restart writes a report.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lock="/tmp/capwatch-build.lock"
export GOTOOLCHAIN=local

if [[ $# -lt 1 || ! -x "$1" || -d "$1" ]]; then
  echo "usage: $0 path/to/capwatch [-sizes N,... -peers full,strip -log-dir DIR ...]" >&2
  exit 2
fi
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
shift

CAPWATCH_E2E_ASSETS="$(bash "${here}/build-control-plane.sh" | tail -n 1)"
export CAPWATCH_E2E_ASSETS

work="$(mktemp -d /tmp/capwatch-scale.XXXXXX)"
trap 'rm -rf "${work}"' EXIT
cd "${here}"
echo "scale.sh: building the harness (waiting for ${lock})"
flock "${lock}" go build -o "${work}/scale" ./cmd/scale
echo "scale.sh: ${work}/scale -capwatch ${bin} -crds ${here}/../../crds $*"
"${work}/scale" -capwatch "${bin}" -crds "${here}/../../crds" "$@"
