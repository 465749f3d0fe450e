#!/usr/bin/env bash
# The demo (README): builds capwatch and a real local control plane (etcd, kube-apiserver,
# kube-controller-manager), installs the CRDs and the default policy, creates the example
# workloads of docs/examples (the capabilities guide's web server, network tools, database,
# init container, plus one adding SYS_ADMIN and one privileged), runs `capwatch controller`,
# shows `kubectl get capabilityreports -A` and one report in full, turns the policy's
# enforcement on (Warn) and shows the API server warning about a SYS_ADMIN Pod, shows the
# violation metrics, then audits the same with `capwatch audit`, and tears everything down.
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
controller_pid=""
cleanup() {
  if [[ -n "${controller_pid}" ]]; then
    kill -TERM "${controller_pid}" 2>/dev/null || true
    wait "${controller_pid}" 2>/dev/null || true
  fi
  if [[ -n "${devcluster_pid}" ]]; then
    kill -TERM "${devcluster_pid}" 2>/dev/null || true
    wait "${devcluster_pid}" 2>/dev/null || true
  fi
  rm -rf "${work}"
}
trap cleanup EXIT INT TERM

echo "demo: starting the control plane (logs in ${work}/devcluster.log)"
bash test/e2e/devcluster.sh --kubeconfig-out "${kubeconfig}" --crds crds \
  >"${work}/devcluster.log" 2>&1 &
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
echo "\$ kubectl apply -f docs/examples/policies/default.yaml   (the built-in default policy)"
"${kubectl}" apply -f docs/examples/policies/default.yaml
"${kubectl}" apply -f docs/examples/ >/dev/null
echo "demo: created the example workloads; waiting for kube-controller-manager to create Pods"
for _ in $(seq 1 60); do
  owned=$("${kubectl}" get pods -A -o json | jq '[.items[] | select(.metadata.ownerReferences)] | length')
  [[ "${owned}" -ge 1 ]] && break
  sleep 1
done

metrics_port=18443
health_port=18081
echo "demo: starting capwatch controller (log in ${work}/controller.log)"
"${capwatch}" controller --metrics-bind-address "127.0.0.1:${metrics_port}" \
  --health-probe-bind-address "127.0.0.1:${health_port}" >"${work}/controller.log" 2>&1 &
controller_pid=$!
for _ in $(seq 1 60); do
  curl -fs "127.0.0.1:${health_port}/readyz" >/dev/null 2>&1 && break
  sleep 1
done
# Reports appear a moment after the caches sync (bursts of Pod events are coalesced).
for _ in $(seq 1 30); do
  [[ "$("${kubectl}" get capabilityreports -A --no-headers 2>/dev/null | wc -l)" -ge 6 ]] && break
  sleep 1
done

echo
echo "\$ kubectl get capabilityreports -A"
"${kubectl}" get capabilityreports -A
echo
echo "\$ kubectl get capabilitypolicies"
"${kubectl}" get capabilitypolicies
echo
echo "\$ kubectl get capabilityreport -n storage deployment-fuse-mounter -o yaml"
"${kubectl}" get capabilityreport -n storage deployment-fuse-mounter -o yaml
echo
echo "\$ kubectl get events -A --field-selector reason=DangerousCapabilityGranted"
"${kubectl}" get events -A --field-selector reason=DangerousCapabilityGranted
echo
# Enforcement: the same policy, warned about by the API server itself (docs/enforcement.md).
echo "\$ kubectl patch capabilitypolicy default --type merge -p '{\"spec\":{\"enforcement\":{\"action\":\"Warn\"}}}'"
"${kubectl}" patch capabilitypolicy default --type merge -p '{"spec":{"enforcement":{"action":"Warn"}}}'
for _ in $(seq 1 60); do
  reason=$("${kubectl}" get capabilitypolicy default \
    -o jsonpath='{.status.conditions[?(@.type=="Enforced")].reason}')
  [[ "${reason}" == InForce ]] && break
  sleep 1
done
echo "\$ kubectl get capabilitypolicy default -o jsonpath='{.status.enforcement}'"
"${kubectl}" get capabilitypolicy default -o jsonpath='{.status.enforcement}'
echo
echo "\$ kubectl get validatingadmissionpolicies,validatingadmissionpolicybindings"
"${kubectl}" get validatingadmissionpolicies,validatingadmissionpolicybindings
debug_pod='{"apiVersion":"v1","kind":"Pod","metadata":{"name":"debug","namespace":"default"},
  "spec":{"containers":[{"name":"debug","image":"busybox:1.36","securityContext":{
  "capabilities":{"drop":["ALL"],"add":["SYS_ADMIN"]}}}]}}'
echo "\$ kubectl apply --dry-run=server -f debug-pod.json   (a Pod adding SYS_ADMIN)"
# The API server's policy informer picks the binding up within a few seconds.
for _ in $(seq 1 30); do
  out=$(echo "${debug_pod}" | "${kubectl}" apply --dry-run=server -f - 2>&1 || true)
  [[ "${out}" == *Warning* ]] && break
  sleep 1
done
echo "${out}"
echo
# /metrics is HTTPS, and each scrape's token is checked by the API server: a Prometheus
# ServiceAccount bound to a metrics-reader role, as the chart's capwatch-metrics-reader.
# docs/examples already made the monitoring namespace (the privileged DaemonSet runs there).
"${kubectl}" get namespace monitoring >/dev/null 2>&1 || "${kubectl}" create namespace monitoring >/dev/null
"${kubectl}" create serviceaccount prometheus -n monitoring >/dev/null
"${kubectl}" create clusterrole capwatch-metrics-reader --non-resource-url=/metrics --verb=get >/dev/null
"${kubectl}" create clusterrolebinding prometheus-capwatch-metrics \
  --clusterrole=capwatch-metrics-reader --serviceaccount=monitoring:prometheus >/dev/null
echo "\$ curl -sk https://127.0.0.1:${metrics_port}/metrics   (no token)"
curl -sk -w '(HTTP %{http_code})\n' "https://127.0.0.1:${metrics_port}/metrics"
echo "\$ token=\$(kubectl create token prometheus -n monitoring)"
token=$("${kubectl}" create token prometheus -n monitoring)
echo "\$ curl -sk -H \"Authorization: Bearer \$token\" https://127.0.0.1:${metrics_port}/metrics | grep -E '^capwatch_(violations|dangerous_grants_total|workloads)'"
curl -sk -H "Authorization: Bearer ${token}" "https://127.0.0.1:${metrics_port}/metrics" |
  grep -E '^capwatch_(violations|dangerous_grants_total|workloads)' || true
echo
echo "demo: the controller's log"
cat "${work}/controller.log"

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
