// Throughput of the Pod engine on one core (DESIGN §7): decode, evaluate, report.
//
// A program that prints figures, never a test. It generates a seeded corpus of Pod JSON shaped
// like what a kube-apiserver returns (metadata with managedFields and a last-applied
// annotation, three containers with env, mounts, probes and resources, a status block), then
// times each stage on it and prints a summary against the DESIGN §7 target. The pods average
// 8.1 KB, a little above DESIGN §7's 6.7 KB: that is what three containers, a status with their
// statuses and two managedFields entries weigh; the per-pod figures are pessimistic for it.
//
//   capwatch_engine_bench [--benchmark_min_time=0.5] [--benchmark_filter=Decode]
//   capwatch_engine_bench --print_pod     # the first generated pod
//   capwatch_engine_bench --write_pods FILE [--pods N]   # the corpus as `kubectl get pods -o json`
//   capwatch_engine_bench --pods_json FILE               # measure on that file's Pods instead
//   capwatch_engine_bench ... --decisions FILE           # the guide policy's verdict per Pod
//   capwatch_engine_bench --pods_json FILE --pods_proto FILE.pb  # and the protobuf decoder on
//                         the same Pods (cd test/e2e && go run ./cmd/pod2proto -in FILE -out
//                         FILE.pb)
//
// With --pods_json the same file can be given to the OPA benchmark (test/bench/opa), which
// evaluates the capabilities guide's admission policy; BM_DecodeAndEvaluateGuide evaluates the
// same two rules as a CapabilityPolicy, and the summary prints how many Pods each denies.

#include <benchmark/benchmark.h>

#include <unistd.h>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base/protobuf_wire.h"
#include "policy/evaluate.h"
#include "policy/policy.h"
#include "policy/policy_parser.h"
#include "report/report_builder.h"
#include "workload/owner_resolution.h"
#include "workload/pod_decoder.h"
#include "workload/pod_proto_decoder.h"

namespace capwatch {
namespace {

// ---- The corpus ------------------------------------------------------------------------------

constexpr std::uint64_t kSeed = 20240514;
int g_corpus_pods = 20000;  // as in DESIGN §7's measurement (a 134 MB list); --pods N
std::string g_pods_json;    // --pods_json FILE: the corpus read from a kubectl dump instead
// --pods_proto FILE: the same Pods as a protobuf PodList (test/e2e/cmd/pod2proto writes it from
// the --pods_json file), for the decode benchmarks of the protobuf path.
std::string g_pods_proto;

// Insertion-ordered, so keys come out in the API server's (Go struct) order.
using Json = nlohmann::ordered_json;

// How a container's securityContext is written; the mix exercises every rule of the default
// policy, the profile's case-sensitivity traps included.
enum class Hardening {
  kDropAllAddNetBindService,  // the recommended shape
  kNothingDropped,            // no capabilities block: the runtime defaults stay
  kPrivileged,
  kAddsSysAdmin,
  kLowerCaseNames,  // drop: [all], add: [net_bind_service]: accepted by the runtime
  kNetAdminNetRaw,  // a mesh init container's shape
};

class PodGenerator {
 public:
  explicit PodGenerator(std::uint64_t seed) : rng_(seed) {}

  std::string Next(int index) { return Pod(index).dump(); }

 private:
  // Plain modulo, not std::uniform_int_distribution, whose output differs between standard
  // libraries: the corpus must be the same everywhere.
  std::size_t Below(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
  bool Chance(int percent) { return Below(100) < static_cast<std::size_t>(percent); }
  template <typename T, std::size_t N>
  const T& Pick(const T (&items)[N]) {
    return items[Below(N)];
  }

  std::string Hex(int digits) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < digits; ++i) out += kDigits[Below(16)];
    return out;
  }
  std::string Uid() { return Hex(8) + "-" + Hex(4) + "-4" + Hex(3) + "-" + Hex(4) + "-" + Hex(12); }
  std::string Alnum(int n) {
    static constexpr char kChars[] = "bcdfghjklmnpqrstvwxz2456789";  // Kubernetes' alphabet
    std::string out;
    for (int i = 0; i < n; ++i) out += kChars[Below(sizeof(kChars) - 1)];
    return out;
  }
  std::string Timestamp(int base_minute) {
    char buf[32];
    const int minute = base_minute + static_cast<int>(Below(59));
    std::snprintf(buf, sizeof(buf), "2024-05-%02dT%02d:%02d:%02dZ", 1 + minute / 1440 % 28,
                  minute / 60 % 24, minute % 60, static_cast<int>(Below(60)));
    return buf;
  }

  Hardening PickHardening(bool init) {
    if (init && Chance(40)) return Hardening::kNetAdminNetRaw;
    const int roll = static_cast<int>(Below(100));
    if (roll < 40) return Hardening::kDropAllAddNetBindService;
    if (roll < 65) return Hardening::kNothingDropped;
    if (roll < 75) return Hardening::kPrivileged;
    if (roll < 85) return Hardening::kAddsSysAdmin;
    if (roll < 95) return Hardening::kLowerCaseNames;
    return Hardening::kNetAdminNetRaw;
  }

  Json SecurityContext(Hardening h) {
    switch (h) {
      case Hardening::kDropAllAddNetBindService:
        return {{"capabilities", {{"add", {"NET_BIND_SERVICE"}}, {"drop", {"ALL"}}}},
                {"runAsUser", 10001},
                {"runAsNonRoot", true},
                {"readOnlyRootFilesystem", true},
                {"allowPrivilegeEscalation", false},
                {"seccompProfile", {{"type", "RuntimeDefault"}}}};
      case Hardening::kNothingDropped:
        if (Chance(50)) return Json::object();
        return {{"runAsUser", 1000}, {"readOnlyRootFilesystem", false}};
      case Hardening::kPrivileged:
        return {{"privileged", true}, {"runAsUser", 0}};
      case Hardening::kAddsSysAdmin:
        return {{"capabilities", {{"add", {"SYS_ADMIN"}}, {"drop", {"NET_RAW"}}}},
                {"allowPrivilegeEscalation", true}};
      case Hardening::kLowerCaseNames:
        return {{"capabilities", {{"add", {"net_bind_service"}}, {"drop", {"all"}}}},
                {"runAsNonRoot", true},
                {"allowPrivilegeEscalation", false}};
      case Hardening::kNetAdminNetRaw:
        return {{"capabilities", {{"add", {"NET_ADMIN", "NET_RAW"}}, {"drop", {"ALL"}}}},
                {"runAsUser", 0},
                {"runAsNonRoot", false},
                {"privileged", false},
                {"allowPrivilegeEscalation", false}};
    }
    return Json::object();
  }

  // The main container reads its pod's identity and a secret; sidecars and init containers
  // carry a setting or two.
  Json Env(const std::string& app, bool main) {
    Json env = Json::array();
    if (main) {
      env.push_back(
          {{"name", "POD_NAME"},
           {"valueFrom", {{"fieldRef", {{"apiVersion", "v1"}, {"fieldPath", "metadata.name"}}}}}});
    }
    static constexpr const char* kNames[] = {"LOG_LEVEL",
                                             "HTTP_PORT",
                                             "OTEL_EXPORTER_OTLP_ENDPOINT",
                                             "CACHE_TTL_SECONDS",
                                             "DATABASE_URL",
                                             "GOMAXPROCS",
                                             "REGION"};
    static constexpr const char* kValues[] = {
        "info", "8080",     "http://otel-collector.observability:4317", "300", "postgres://",
        "2",    "eu-west-1"};
    const std::size_t count = main ? 1 + Below(2) : 1;
    const std::size_t first = Below(std::size(kNames));
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t k = (first + i) % std::size(kNames);
      std::string value = kValues[k];
      if (k == 4) value += app + "-db.data:5432/" + app;
      env.push_back({{"name", kNames[k]}, {"value", value}});
    }
    if (main && Chance(30)) {
      env.push_back(
          {{"name", "API_TOKEN"},
           {"valueFrom", {{"secretKeyRef", {{"name", app + "-secrets"}, {"key", "api-token"}}}}}});
    }
    return env;
  }

  Json Probe(int port, const char* path) {
    return {{"httpGet", {{"path", path}, {"port", port}, {"scheme", "HTTP"}}},
            {"initialDelaySeconds", 5 + Below(10)},
            {"timeoutSeconds", 1},
            {"periodSeconds", 10},
            {"successThreshold", 1},
            {"failureThreshold", 3}};
  }

  Json Resources(const char* cpu, const char* memory) {
    return {{"limits", {{"cpu", cpu}, {"memory", memory}}},
            {"requests", {{"cpu", "100m"}, {"memory", "128Mi"}}}};
  }

  enum class Role { kMain, kSidecar, kInit };

  Json Container(const std::string& name, const std::string& image, Role role,
                 const std::string& app, const std::string& token_volume) {
    const bool main = role == Role::kMain;
    Json c = {{"name", name}, {"image", image}};
    if (role == Role::kInit) {
      c["command"] = {"sh", "-c", "until nslookup " + app + "-db.data; do sleep 2; done"};
    } else {
      c["ports"] = {{{"name", main ? "http" : "metrics"},
                     {"containerPort", main ? 8080 : 15090},
                     {"protocol", "TCP"}}};
    }
    c["env"] = Env(app, main);
    c["resources"] = main ? Resources("1", "1Gi") : Resources("500m", "256Mi");
    Json mounts = Json::array();
    if (main) mounts.push_back({{"name", "config"}, {"readOnly", true}, {"mountPath", "/etc/app"}});
    mounts.push_back({{"name", token_volume},
                      {"readOnly", true},
                      {"mountPath", "/var/run/secrets/kubernetes.io/serviceaccount"}});
    c["volumeMounts"] = mounts;
    if (main) {
      c["readinessProbe"] = Probe(8080, "/readyz");
    }
    c["terminationMessagePath"] = "/dev/termination-log";
    c["terminationMessagePolicy"] = "File";
    c["imagePullPolicy"] = "IfNotPresent";
    c["securityContext"] = SecurityContext(PickHardening(role == Role::kInit));
    return c;
  }

  // An owned object's fields, led by ".".
  static Json Owned(const Json& fields) {
    Json out = {{".", Json::object()}};
    out.update(fields);
    return out;
  }

  // managedFields' fieldsV1 for a value: every field as "f:<name>", list items as "k:<merge
  // key>", "." for an object that is itself owned. Real entries go down to every leaf; `depth`
  // stops earlier (an item at the last level is just {".":{}}) to keep pods near DESIGN §7's
  // size.
  static Json FieldsV1(const Json& value, int depth) {
    Json out = Json::object();
    if (!value.is_object()) return out;
    for (const auto& [key, v] : value.items()) {
      Json merge_key = Json::object();
      if (v.is_array() && !v.empty() && v.front().is_object()) {
        for (const char* k : {"containerPort", "mountPath", "name", "type", "ip"}) {
          if (v.front().contains(k)) {
            merge_key[k] = nullptr;
            break;
          }
        }
      }
      if (depth > 0 && v.is_object() && !v.empty()) {
        out["f:" + key] = Owned(FieldsV1(v, depth - 1));
      } else if (depth > 0 && !merge_key.empty()) {
        const std::string k = merge_key.begin().key();
        Json list = {{".", Json::object()}};
        for (const auto& item : v) {
          list["k:" + Json{{k, item[k]}}.dump()] =
              Owned(depth > 1 ? FieldsV1(item, depth - 1) : Json::object());
        }
        out["f:" + key] = list;
      } else {
        out["f:" + key] = Json::object();  // a leaf, an atomic list, or the depth reached
      }
    }
    return out;
  }

  Json Pod(int index) {
    static constexpr const char* kApps[] = {
        "checkout",  "cart",     "payments",      "search",       "recommendations",
        "inventory", "shipping", "notifications", "auth-gateway", "catalog"};
    static constexpr const char* kTeams[] = {"commerce", "platform", "data", "identity"};
    static constexpr const char* kSidecars[][2] = {
        {"istio-proxy", "docker.io/istio/proxyv2:1.21.2"},
        {"log-shipper", "cr.fluentbit.io/fluent/fluent-bit:3.0.4"},
        {"otel-agent", "otel/opentelemetry-collector-contrib:0.101.0"}};
    const std::string app = Pick(kApps);
    const std::string ns = std::string(Pick(kTeams)) + "-" + (Chance(70) ? "prod" : "staging");
    const std::string hash = Alnum(10);
    const std::string rs = app + "-" + hash;
    const std::string name = rs + "-" + Alnum(5);
    const std::string version = "v1." + std::to_string(Below(40)) + "." + std::to_string(Below(10));
    const std::string token_volume = "kube-api-access-" + Alnum(5);
    const auto& sidecar = Pick(kSidecars);
    const std::string image = "registry.example.com/" + ns + "/" + app + ":" + version;

    Json spec = Json::object();
    spec["volumes"] = {
        {{"name", "config"}, {"configMap", {{"name", app + "-config"}, {"defaultMode", 420}}}},
        {{"name", token_volume},
         {"projected",
          {{"sources",
            {{{"serviceAccountToken", {{"expirationSeconds", 3607}, {"path", "token"}}}},
             {{"configMap",
               {{"name", "kube-root-ca.crt"},
                {"items", {{{"key", "ca.crt"}, {"path", "ca.crt"}}}}}}},
             {{"downwardAPI",
               {{"items",
                 {{{"path", "namespace"},
                   {"fieldRef",
                    {{"apiVersion", "v1"}, {"fieldPath", "metadata.namespace"}}}}}}}}}}},
           {"defaultMode", 420}}}}};
    spec["initContainers"] = {
        Container("wait-for-db", "busybox:1.36", Role::kInit, app, token_volume)};
    spec["containers"] = {Container(app, image, Role::kMain, app, token_volume),
                          Container(sidecar[0], sidecar[1], Role::kSidecar, app, token_volume)};
    spec["restartPolicy"] = "Always";
    spec["terminationGracePeriodSeconds"] = 30;
    spec["dnsPolicy"] = "ClusterFirst";
    spec["serviceAccountName"] = app;
    spec["serviceAccount"] = app;
    spec["nodeName"] = "ip-10-0-" + std::to_string(Below(256)) + "-" + std::to_string(Below(256)) +
                       ".eu-west-1.compute.internal";
    spec["securityContext"] =
        Chance(50) ? Json{{"runAsNonRoot", true}, {"fsGroup", 2000}} : Json::object();
    spec["schedulerName"] = "default-scheduler";
    spec["tolerations"] = {{{"key", "node.kubernetes.io/not-ready"},
                            {"operator", "Exists"},
                            {"effect", "NoExecute"},
                            {"tolerationSeconds", 300}},
                           {{"key", "node.kubernetes.io/unreachable"},
                            {"operator", "Exists"},
                            {"effect", "NoExecute"},
                            {"tolerationSeconds", 300}}};
    spec["priority"] = 0;
    spec["enableServiceLinks"] = true;
    spec["preemptionPolicy"] = "PreemptLowerPriority";

    const Json labels = {{"app", app},
                         {"app.kubernetes.io/name", app},
                         {"app.kubernetes.io/instance", app + "-" + ns},
                         {"pod-template-hash", hash},
                         {"team", ns.substr(0, ns.find('-'))}};
    // The last-applied configuration is the template as kubectl apply sent it: JSON in a
    // string, with every quote escaped.
    Json applied_spec = {{"containers", Json::array()}};
    for (const auto& c : spec["containers"]) {
      applied_spec["containers"].push_back({{"image", c["image"]}, {"name", c["name"]}});
    }
    const Json applied = {{"apiVersion", "v1"},
                          {"kind", "Pod"},
                          {"metadata",
                           {{"annotations", {{"prometheus.io/scrape", "true"}}},
                            {"labels", {{"app", app}}},
                            {"name", name},
                            {"namespace", ns}}},
                          {"spec", applied_spec}};
    Json annotations = Json::object();
    if (Chance(60)) {
      annotations["kubectl.kubernetes.io/last-applied-configuration"] = applied.dump() + "\n";
    }
    annotations["kubectl.kubernetes.io/restartedAt"] = Timestamp(0);
    annotations["prometheus.io/scrape"] = "true";
    annotations["prometheus.io/port"] = "8080";
    for (const auto& c : spec["containers"]) {
      const Json& caps = c["securityContext"].value("capabilities", Json::object());
      for (const auto& cap : caps.value("add", Json::array())) {
        if (cap == "SYS_ADMIN" && Chance(50)) {
          annotations["capwatch.io/justification.SYS_ADMIN"] =
              "mounts a FUSE filesystem for the artifact cache (SEC-" +
              std::to_string(Below(9000) + 1000) + ")";
        }
      }
    }

    const std::string owner_uid = Uid();
    const Json owner = {
        {"apiVersion", "apps/v1"}, {"kind", "ReplicaSet"}, {"name", rs},
        {"uid", owner_uid},        {"controller", true},   {"blockOwnerDeletion", true}};
    const std::string created = Timestamp(index % 20000);

    Json status = Json::object();
    status["phase"] = "Running";
    status["conditions"] = Json::array();
    for (const char* type : {"Initialized", "Ready", "ContainersReady", "PodScheduled"}) {
      status["conditions"].push_back({{"type", type},
                                      {"status", "True"},
                                      {"lastProbeTime", nullptr},
                                      {"lastTransitionTime", created}});
    }
    const std::string pod_ip =
        "10.0." + std::to_string(Below(256)) + "." + std::to_string(Below(256));
    status["hostIP"] = "10.0." + std::to_string(Below(256)) + "." + std::to_string(Below(256));
    status["podIP"] = pod_ip;
    status["podIPs"] = {{{"ip", pod_ip}}};
    status["startTime"] = created;
    const auto container_status = [&](const Json& c, bool init) {
      Json state = init ? Json{{"terminated",
                                {{"exitCode", 0},
                                 {"reason", "Completed"},
                                 {"startedAt", created},
                                 {"finishedAt", created}}}}
                        : Json{{"running", {{"startedAt", created}}}};
      return Json{{"name", c["name"]},
                  {"state", state},
                  {"lastState", Json::object()},
                  {"ready", !init},
                  {"restartCount", Below(3)},
                  {"image", c["image"]},
                  {"imageID", std::string(c["image"]) + "@sha256:" + Hex(64)},
                  {"containerID", "containerd://" + Hex(64)},
                  {"started", !init}};
    };
    status["initContainerStatuses"] = {container_status(spec["initContainers"][0], true)};
    status["containerStatuses"] = Json::array();
    for (const auto& c : spec["containers"]) {
      status["containerStatuses"].push_back(container_status(c, false));
    }
    status["qosClass"] = "Burstable";

    // The controller wrote metadata and spec; the kubelet owns status.
    Json spec_fields = spec;
    spec_fields.erase("nodeName");
    Json controller_fields = {
        {"f:metadata",
         {{"f:annotations", Owned(FieldsV1(annotations, 0))},
          {"f:generateName", Json::object()},
          {"f:labels", Owned(FieldsV1(labels, 0))},
          {"f:ownerReferences",
           {{".", Json::object()}, {"k:{\"uid\":\"" + owner_uid + "\"}", Json::object()}}}}},
        {"f:spec", FieldsV1(spec_fields, 1)}};
    Json status_fields = FieldsV1(status, 1);
    status_fields["f:containerStatuses"] = Json::object();  // an atomic list
    status_fields["f:initContainerStatuses"] = Json::object();
    const Json managed_fields = {{{"manager", "kube-controller-manager"},
                                  {"operation", "Update"},
                                  {"apiVersion", "v1"},
                                  {"time", created},
                                  {"fieldsType", "FieldsV1"},
                                  {"fieldsV1", controller_fields}},
                                 {{"manager", "kubelet"},
                                  {"operation", "Update"},
                                  {"apiVersion", "v1"},
                                  {"time", created},
                                  {"fieldsType", "FieldsV1"},
                                  {"fieldsV1", {{"f:status", status_fields}}},
                                  {"subresource", "status"}}};

    Json metadata = {{"name", name},
                     {"generateName", rs + "-"},
                     {"namespace", ns},
                     {"uid", Uid()},
                     {"resourceVersion", std::to_string(100000 + index * 7 + Below(7))},
                     {"creationTimestamp", created},
                     {"labels", labels},
                     {"annotations", annotations},
                     {"ownerReferences", {owner}},
                     {"managedFields", managed_fields}};
    return {{"kind", "Pod"},
            {"apiVersion", "v1"},
            {"metadata", metadata},
            {"spec", spec},
            {"status", status}};
  }

  std::mt19937_64 rng_;
};

struct Corpus {
  std::vector<std::string> pods;
  std::size_t pod_bytes = 0;  // sum of the pods' sizes
  std::string list_body;      // the same pods as one PodList
};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "capwatch_engine_bench: %s\n", what.c_str());
  std::exit(1);
}

// The items of a `kubectl get pods -o json` file (a List or a PodList), each as compact JSON in
// the order its keys were written.
std::vector<std::string> ReadPodsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(path + ": cannot be read");
  Json doc;
  try {
    doc = Json::parse(in);
  } catch (const Json::exception& e) {
    Fail(path + ": not JSON: " + e.what());
  }
  const auto items = doc.find("items");
  if (!doc.is_object() || items == doc.end() || !items->is_array()) {
    Fail(path + ": not a List of Pods (no items array; write it with kubectl get pods -o json)");
  }
  std::vector<std::string> pods;
  for (std::size_t i = 0; i < items->size(); ++i) {
    const Json& item = (*items)[i];
    const auto kind = item.is_object() ? item.find("kind") : item.end();
    if (!item.is_object() || (kind != item.end() && *kind != "Pod")) {
      Fail(path + ": items[" + std::to_string(i) + "] is not a Pod");
    }
    pods.push_back(item.dump());
  }
  if (pods.empty()) Fail(path + ": the list has no items");
  return pods;
}

const Corpus& TheCorpus() {
  static const Corpus corpus = [] {
    Corpus c;
    if (!g_pods_json.empty()) {
      c.pods = ReadPodsFile(g_pods_json);
    } else {
      PodGenerator generator(kSeed);
      c.pods.reserve(static_cast<std::size_t>(g_corpus_pods));
      for (int i = 0; i < g_corpus_pods; ++i) c.pods.push_back(generator.Next(i));
    }
    for (const auto& pod : c.pods) c.pod_bytes += pod.size();
    c.list_body.reserve(c.pod_bytes + c.pods.size() + 128);
    c.list_body = R"({"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"123"},)"
                  R"("items":[)";
    for (std::size_t i = 0; i < c.pods.size(); ++i) {
      if (i > 0) c.list_body += ',';
      c.list_body += c.pods[i];
    }
    c.list_body += "]}";
    return c;
  }();
  return corpus;
}

// Decoded once, for the benchmarks that start from a PodView.
const std::vector<PodView>& DecodedCorpus() {
  static const std::vector<PodView> views = [] {
    std::vector<PodView> out;
    PodDecoder decoder;
    for (const auto& json : TheCorpus().pods) {
      PodView pod;
      if (Status decoded = decoder.DecodePod(json, pod); !decoded.ok()) {
        Fail("corpus pod does not decode: " + decoded.error().ToString());
      }
      out.push_back(std::move(pod));
    }
    return out;
  }();
  return views;
}

const Policy& TheDefaultPolicy() {
  static const Policy policy = DefaultPolicy();
  return policy;
}

// The guide's OPA admission policy (test/bench/opa/guide.rego) as a CapabilityPolicy: every
// container drops ALL, none holds SYS_ADMIN, SYS_PTRACE, SYS_MODULE or DAC_OVERRIDE. capwatch
// applies both to init and ephemeral containers too, normalises spellings, and counts a
// forbidden capability kept from the runtime's defaults, where the Rego checks only what
// `containers` add, as written.
constexpr const char* kGuidePolicy = R"(apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata:
  name: guide-admission
spec:
  requireDropAll: true
  forbiddenCapabilities: [SYS_ADMIN, SYS_PTRACE, SYS_MODULE, DAC_OVERRIDE]
)";

const Policy& TheGuidePolicy() {
  static const Policy policy = [] {
    PolicyParseResult parsed = ParsePolicies(kGuidePolicy);
    if (parsed.policies.size() != 1) Fail("the guide's policy does not parse");
    return parsed.policies.front();
  }();
  return policy;
}

// What a policy denies on the corpus: Pods with a finding, and (as the guide's Rego looks only
// at them) Pods with a finding on one of spec.containers.
struct Denials {
  std::size_t pods = 0;
  std::size_t pods_by_app_containers = 0;
  std::size_t findings = 0;
};

std::string g_decisions;  // --decisions FILE: what the guide's policy says about each Pod

// With `decisions`, a line per Pod: namespace/name, 1 or 0 for a finding anywhere, 1 or 0 for
// one on spec.containers, and the first finding's message (tab-separated).
Denials CountDenials(const Policy& policy, std::FILE* decisions) {
  const Policy* const policies[] = {&policy};
  Denials d;
  for (const PodView& pod : DecodedCorpus()) {
    const PodEvaluation evaluation = Evaluate(pod, policies, Clock::time_point());
    bool any = false, app = false;
    const Finding* first = nullptr;
    for (const Finding& f : evaluation.findings) {
      if (f.exempt) continue;
      any = true;
      ++d.findings;
      if (f.container_index >= 0 &&
          pod.containers[static_cast<std::size_t>(f.container_index)].type ==
              ContainerType::kContainer) {
        if (!app) first = &f;
        app = true;
      }
      if (first == nullptr) first = &f;
    }
    d.pods += any ? 1 : 0;
    d.pods_by_app_containers += app ? 1 : 0;
    if (decisions != nullptr) {
      std::fprintf(decisions, "%s/%s\t%d\t%d\t%s\n", pod.namespace_name.c_str(), pod.name.c_str(),
                   any ? 1 : 0, app ? 1 : 0, first != nullptr ? first->message.c_str() : "");
    }
  }
  return d;
}

// A fixed time: evaluation reads the clock only for exemption expiry.
const Clock::time_point kNow = Clock::time_point(std::chrono::seconds(1715677200));

// Every benchmark walks the corpus in order, one pod an iteration, so each pod arrives cold
// from memory as it would from the network. Bytes are the pods' JSON sizes throughout (also for
// evaluate, which starts from decoded pods) so the MB/s columns compare.
void Account(benchmark::State& state, std::size_t bytes) {
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

// ---- The benchmarks --------------------------------------------------------------------------

// (a) The baseline DESIGN §7 quotes: a full nlohmann::json DOM of each pod.
void BM_NlohmannDomParse(benchmark::State& state) {
  const Corpus& corpus = TheCorpus();
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const std::string& json = corpus.pods[i];
    nlohmann::json doc = nlohmann::json::parse(json);
    benchmark::DoNotOptimize(doc);
    bytes += json.size();
    if (++i == corpus.pods.size()) i = 0;
  }
  Account(state, bytes);
}
BENCHMARK(BM_NlohmannDomParse);

// (b) One pod at a time, as a watch event's object arrives.
void BM_DecodePod(benchmark::State& state) {
  const Corpus& corpus = TheCorpus();
  PodDecoder decoder;
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const std::string& json = corpus.pods[i];
    PodView pod;
    if (!decoder.DecodePod(json, pod).ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(pod);
    bytes += json.size();
    if (++i == corpus.pods.size()) i = 0;
  }
  Account(state, bytes);
}
BENCHMARK(BM_DecodePod);

// (c) The whole list body of an initial sync; an iteration is every pod of the list.
void BM_DecodePodList(benchmark::State& state) {
  const Corpus& corpus = TheCorpus();
  PodDecoder decoder;
  std::int64_t pods = 0;
  for (auto _ : state) {
    PodDecoder::ListMeta meta;
    std::size_t seen = 0;
    const Status decoded = decoder.DecodePodList(
        corpus.list_body,
        [&](PodView&& pod) {
          benchmark::DoNotOptimize(pod);
          ++seen;
        },
        meta);
    if (!decoded.ok() || seen != corpus.pods.size()) state.SkipWithError("list decode failed");
    pods += static_cast<std::int64_t>(seen);
  }
  state.SetItemsProcessed(pods);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(corpus.list_body.size()));
}
BENCHMARK(BM_DecodePodList)->Unit(benchmark::kMillisecond);

// (d) Evaluation alone, on pods decoded beforehand.
void BM_Evaluate(benchmark::State& state) {
  const Corpus& corpus = TheCorpus();
  const std::vector<PodView>& views = DecodedCorpus();
  const Policy* const policies[] = {&TheDefaultPolicy()};
  std::size_t i = 0, bytes = 0, findings = 0;
  for (auto _ : state) {
    PodEvaluation evaluation = Evaluate(views[i], policies, kNow);
    findings += evaluation.findings.size();
    benchmark::DoNotOptimize(evaluation);
    bytes += corpus.pods[i].size();
    if (++i == views.size()) i = 0;
  }
  Account(state, bytes);
  state.counters["findings_per_pod"] =
      benchmark::Counter(static_cast<double>(findings), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_Evaluate);

// Decode + evaluate under one policy, one pod an iteration.
void DecodeAndEvaluate(benchmark::State& state, const Policy& policy) {
  const Corpus& corpus = TheCorpus();
  const Policy* const policies[] = {&policy};
  PodDecoder decoder;
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const std::string& json = corpus.pods[i];
    PodView pod;
    if (!decoder.DecodePod(json, pod).ok()) state.SkipWithError("decode failed");
    PodEvaluation evaluation = Evaluate(pod, policies, kNow);
    benchmark::DoNotOptimize(evaluation);
    bytes += json.size();
    if (++i == corpus.pods.size()) i = 0;
  }
  Account(state, bytes);
}

// (e) The DESIGN §7 target: decode + evaluate ≤ 10 µs per pod on one core.
void BM_DecodeAndEvaluate(benchmark::State& state) { DecodeAndEvaluate(state, TheDefaultPolicy()); }
BENCHMARK(BM_DecodeAndEvaluate);

// (e') The same with the guide's two-rule admission policy, beside OPA evaluating its Rego.
void BM_DecodeAndEvaluateGuide(benchmark::State& state) {
  DecodeAndEvaluate(state, TheGuidePolicy());
}
BENCHMARK(BM_DecodeAndEvaluateGuide);

// (e'') The same Pods as the API server sends them in protobuf (how the controller lists
// Pods): each item of the PodList, decoded from the wire. Registered with --pods_proto.
const std::vector<std::string_view>& ProtoItems() {
  static const std::string body = [] {
    std::ifstream in(g_pods_proto, std::ios::binary);
    if (!in) Fail(g_pods_proto + ": cannot be read");
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }();
  static const std::vector<std::string_view> items = [] {
    auto unwrapped = proto::UnwrapKubernetes(body);
    if (!unwrapped.ok()) Fail(g_pods_proto + ": " + unwrapped.error().ToString());
    std::vector<std::string_view> out;
    proto::Reader reader(unwrapped.value().raw);
    proto::Field f;
    while (reader.Next(f)) {
      if (f.number == 2 && f.type == proto::WireType::kLen) out.push_back(f.bytes);
    }
    if (!reader.error().empty()) Fail(g_pods_proto + ": " + reader.error());
    if (out.size() != TheCorpus().pods.size()) {
      Fail(g_pods_proto + ": " + std::to_string(out.size()) + " Pods, the JSON corpus has " +
           std::to_string(TheCorpus().pods.size()) + " (write it from the same --pods_json file)");
    }
    return out;
  }();
  return items;
}

void DecodeProtoAndEvaluate(benchmark::State& state, const Policy* policy) {
  const std::vector<std::string_view>& items = ProtoItems();
  const Policy* const policies[] = {policy};
  PodProtoDecoder decoder;
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    PodView pod;
    if (!decoder.DecodePodMessage(items[i], pod).ok()) state.SkipWithError("decode failed");
    if (policy != nullptr) {
      PodEvaluation evaluation = Evaluate(pod, policies, kNow);
      benchmark::DoNotOptimize(evaluation);
    }
    benchmark::DoNotOptimize(pod);
    bytes += items[i].size();
    if (++i == items.size()) i = 0;
  }
  Account(state, bytes);
}
void BM_DecodePodProto(benchmark::State& state) { DecodeProtoAndEvaluate(state, nullptr); }
void BM_DecodeProtoAndEvaluate(benchmark::State& state) {
  DecodeProtoAndEvaluate(state, &TheDefaultPolicy());
}
void BM_DecodeProtoAndEvaluateGuide(benchmark::State& state) {
  DecodeProtoAndEvaluate(state, &TheGuidePolicy());
}

// (f) What the reconciler does per pod before comparing with the stored report.
void BM_DecodeEvaluateReport(benchmark::State& state) {
  const Corpus& corpus = TheCorpus();
  const Policy* const policies[] = {&TheDefaultPolicy()};
  PodDecoder decoder;
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const std::string& json = corpus.pods[i];
    PodView pod;
    if (!decoder.DecodePod(json, pod).ok()) state.SkipWithError("decode failed");
    PodEvaluation evaluation = Evaluate(pod, policies, kNow);
    ReportInput input;
    input.workload = ResolveWorkload(pod, nullptr);
    input.namespace_name = pod.namespace_name;
    input.pods = 1;
    input.pod = &pod;
    input.evaluation = &evaluation;
    nlohmann::json report = BuildReport(input);
    benchmark::DoNotOptimize(report);
    bytes += json.size();
    if (++i == corpus.pods.size()) i = 0;
  }
  Account(state, bytes);
}
BENCHMARK(BM_DecodeEvaluateReport);

// ---- The summary -----------------------------------------------------------------------------

// Google Benchmark's table, plus the rates kept for a plain summary after it.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  struct Rates {
    double bytes_per_second = 0;
    double items_per_second = 0;
  };

  explicit SummaryReporter(bool color) : ConsoleReporter(color ? OO_ColorTabular : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      // With --benchmark_repetitions, the median stands for the benchmark.
      const bool aggregate = run.run_type == Run::RT_Aggregate;
      if (aggregate && run.aggregate_name != "median") continue;
      const std::string name = run.run_name.function_name;
      if (!aggregate && medians_.count(name) > 0) continue;
      if (aggregate) medians_[name] = true;
      Rates& rates = rates_[name];
      if (auto it = run.counters.find("bytes_per_second"); it != run.counters.end()) {
        rates.bytes_per_second = it->second.value;
      }
      if (auto it = run.counters.find("items_per_second"); it != run.counters.end()) {
        rates.items_per_second = it->second.value;
      }
    }
  }

  void PrintSummary(const Corpus& corpus) const {
    std::printf("\nSummary (one core; MB = 10^6 bytes; the table above shows binary units)\n");
    std::printf("  corpus: %zu pods, average Pod JSON %.0f bytes, list body %.1f MB\n",
                corpus.pods.size(),
                static_cast<double>(corpus.pod_bytes) / static_cast<double>(corpus.pods.size()),
                static_cast<double>(corpus.list_body.size()) / 1e6);
    static constexpr std::pair<const char*, const char*> kRows[] = {
        {"BM_NlohmannDomParse", "nlohmann DOM parse (baseline)"},
        {"BM_DecodePod", "decode (PodDecoder::DecodePod)"},
        {"BM_DecodePodList", "decode list (DecodePodList)"},
        {"BM_Evaluate", "evaluate (DefaultPolicy)"},
        {"BM_DecodeAndEvaluate", "decode + evaluate"},
        {"BM_DecodeAndEvaluateGuide", "decode + evaluate, guide policy"},
        {"BM_DecodePodProto", "decode protobuf (PodProtoDecoder)"},
        {"BM_DecodeProtoAndEvaluate", "protobuf decode + evaluate"},
        {"BM_DecodeProtoAndEvaluateGuide", "protobuf decode + evaluate, guide"},
        {"BM_DecodeEvaluateReport", "decode + evaluate + report"},
    };
    for (const auto& [name, title] : kRows) {
      auto it = rates_.find(name);
      if (it == rates_.end() || it->second.items_per_second <= 0) continue;
      const Rates& r = it->second;
      std::printf("  %-32s %8.0f MB/s %8.2f us/pod %10.0f pods/s\n", title,
                  r.bytes_per_second / 1e6, 1e6 / r.items_per_second, r.items_per_second);
    }
    auto it = rates_.find("BM_DecodeAndEvaluate");
    if (it != rates_.end() && it->second.items_per_second > 0) {
      const double us = 1e6 / it->second.items_per_second;
      std::printf(
          "  DESIGN §7 target, decode + evaluate <= 10 us per pod (>= 100,000 pods/s): "
          "%s (%.2f us)\n",
          us <= 10.0 ? "met" : "NOT met", us);
    }
    std::FILE* decisions = nullptr;
    if (!g_decisions.empty() && (decisions = std::fopen(g_decisions.c_str(), "w")) == nullptr) {
      Fail(g_decisions + ": cannot be written");
    }
    const Denials guide = CountDenials(TheGuidePolicy(), decisions);
    if (decisions != nullptr) std::fclose(decisions);
    std::printf(
        "  guide policy denies %zu of %zu pods (%zu findings); %zu by a finding on "
        "spec.containers, the part the guide's Rego checks\n",
        guide.pods, corpus.pods.size(), guide.findings, guide.pods_by_app_containers);
  }

 private:
  std::map<std::string, Rates> rates_;
  std::map<std::string, bool> medians_;
};

}  // namespace
}  // namespace capwatch

namespace capwatch {
namespace {

// Writes the corpus as `kubectl get pods -o json` does (a List), for the OPA benchmark.
int WritePods(const std::string& path) {
  const Corpus& corpus = TheCorpus();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << R"({"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},"items":[)";
  for (std::size_t i = 0; i < corpus.pods.size(); ++i) {
    out << (i > 0 ? ",\n" : "\n") << corpus.pods[i];
  }
  out << "\n]}\n";
  out.close();
  if (!out) Fail(path + ": cannot be written");
  std::printf("wrote %zu pods (%zu bytes of Pod JSON) to %s\n", corpus.pods.size(),
              corpus.pod_bytes, path.c_str());
  return 0;
}

}  // namespace
}  // namespace capwatch

int main(int argc, char** argv) {
  // --print_pod: show the first generated pod, to see what the corpus looks like.
  if (argc == 2 && std::string_view(argv[1]) == "--print_pod") {
    std::printf("%s\n", capwatch::PodGenerator(capwatch::kSeed).Next(0).c_str());
    return 0;
  }
  // Our own flags, taken out before Google Benchmark sees the rest.
  std::string write_pods;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--write_pods" && has_value) {
      write_pods = argv[++i];
    } else if (arg == "--pods_json" && has_value) {
      capwatch::g_pods_json = argv[++i];
    } else if (arg == "--pods_proto" && has_value) {
      capwatch::g_pods_proto = argv[++i];
    } else if (arg == "--decisions" && has_value) {
      capwatch::g_decisions = argv[++i];
    } else if (arg == "--pods" && has_value) {
      capwatch::g_corpus_pods = std::atoi(argv[++i]);
      if (capwatch::g_corpus_pods <= 0) capwatch::Fail("--pods needs a positive number");
    } else if (arg == "--write_pods" || arg == "--pods_json" || arg == "--pods" ||
               arg == "--decisions" || arg == "--pods_proto") {
      capwatch::Fail(std::string(arg) + " needs a value");
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  if (!write_pods.empty()) return capwatch::WritePods(write_pods);
  if (!capwatch::g_pods_proto.empty()) {
    benchmark::RegisterBenchmark("BM_DecodePodProto", capwatch::BM_DecodePodProto);
    benchmark::RegisterBenchmark("BM_DecodeProtoAndEvaluate", capwatch::BM_DecodeProtoAndEvaluate);
    benchmark::RegisterBenchmark("BM_DecodeProtoAndEvaluateGuide",
                                 capwatch::BM_DecodeProtoAndEvaluateGuide);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const capwatch::Corpus& corpus = capwatch::TheCorpus();
  std::printf(
      "capwatch engine benchmark: %zu pods (%s), average Pod JSON "
      "%.0f bytes, PodList body %zu bytes\n",
      corpus.pods.size(),
      capwatch::g_pods_json.empty() ? "generated" : capwatch::g_pods_json.c_str(),
      static_cast<double>(corpus.pod_bytes) / static_cast<double>(corpus.pods.size()),
      corpus.list_body.size());
  std::fflush(stdout);
  // The custom reporter bypasses --benchmark_color: colour only on a terminal.
  capwatch::SummaryReporter reporter(isatty(fileno(stdout)) != 0);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintSummary(corpus);
  benchmark::Shutdown();
  return 0;
}
