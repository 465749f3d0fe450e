#!/usr/bin/env bash
# The demo (README): builds capwatch and a real local control plane (etcd, kube-apiserver,
# kube-controller-manager), creates the example workloads of docs/examples (the capabilities
# guide's web server, network tools, database, init container, plus one adding SYS_ADMIN and
# one privileged), audits what the API server holds with `capwatch audit`, shows the reports,
# and tears everything down.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
lock="/tmp/capwatch-build.lock"

bash test/install-deps.sh
echo "demo: building capwatch"
flock "${lock}" cmake -S . -B build -G Ninja >/dev/null
flock "${lock}" cmake --build build --target capwatch
capwatch="${root}/build/controller/capwatch"

assets="$(bash test/e2e/build-control-plane.sh | tail -n 1)"
kubectl="${assets}/kubectl"

work="$(mktemp -d)"
kubeconfig="${work}/kubeconfig"
devcluster_pid=""
cleanup() {
  if [[ -n "${devcluster_pid}" ]]; then
    kill -TERM "${devcluster_pid}" 2>/dev/null || true
    wait "${devcluster_pid}" 2>/dev/null || true
  fi
  rm -rf "${work}"
}
trap cleanup EXIT INT TERM

echo "demo: starting the control plane (logs in ${work}/devcluster.log)"
bash test/e2e/devcluster.sh --kubeconfig-out "${kubeconfig}" >"${work}/devcluster.log" 2>&1 &
devcluster_pid=$!
for _ in $(seq 1 300); do
  [[ -f "${kubeconfig}" ]] && break
  if ! kill -0 "${devcluster_pid}" 2>/dev/null; then
    echo "demo: the control plane failed to start:" >&2
    tail -n 30 "${work}/devcluster.log" >&2
    exit 1
  fi
  sleep 1
done
[[ -f "${kubeconfig}" ]] || { echo "demo: control plane not ready after 300 s" >&2; exit 1; }
export KUBECONFIG="${kubeconfig}"
echo "demo: kube-apiserver $("${kubectl}" version -o json | jq -r .serverVersion.gitVersion) is up"

for ns in $(grep -h '^  namespace:' docs/examples/*.yaml | awk '{print $2}' | sort -u); do
  "${kubectl}" create namespace "${ns}" >/dev/null
done
"${kubectl}" apply -f docs/examples/ >/dev/null
echo "demo: created the example workloads; waiting for kube-controller-manager to create Pods"
for _ in $(seq 1 60); do
  owned=$("${kubectl}" get pods -A -o json | jq '[.items[] | select(.metadata.ownerReferences)] | length')
  [[ "${owned}" -ge 1 ]] && break
  sleep 1
done

echo
echo "\$ kubectl get pods -A"
"${kubectl}" get pods -A
echo
echo "\$ kubectl get pods -A -o json | capwatch audit -f -"
"${kubectl}" get pods -A -o json | "${capwatch}" audit -f - || true
echo
echo "\$ kubectl get pods -A -o json | capwatch audit -f - --profile restricted"
"${kubectl}" get pods -A -o json | "${capwatch}" audit -f - --profile restricted || true
echo
echo "\$ kubectl get pods -n default -o json | capwatch audit -f - -o json   (the report for pod-webserver)"
"${kubectl}" get pods -n default -o json | "${capwatch}" audit -f - -o json |
  jq '.items[] | select(.metadata.name == "pod-webserver")' || true
echo
echo "\$ capwatch audit -f docs/examples/   (the manifests themselves: the privileged DaemonSet has no"
echo "  Pods here, as the local control plane has no nodes, but its template is audited)"
"${capwatch}" audit -f docs/examples/ || true
echo
echo "demo: done; stopping the control plane"
