// Watch and list decode throughput, and resident bytes per cached Pod (DESIGN §7, issue 3).
//
// A program that prints figures, never a test. It generates Pod JSON shaped like a
// kube-apiserver's (≈ 6.7 KB: three containers with env, mounts, probes and resources,
// managedFields, a last-applied annotation, a status with container statuses), then measures
// on one core:
//   1. watch: a stream of watch events cut into 16 KiB reads -> LineSplitter ->
//      WatchEventDecoder -> PodDecoder -> the informer's cache (what the reflector does);
//      beside it the alternative of parsing each event fully (nlohmann) before decoding,
//   2. list: PodList pages of 500 through the informer's list path,
//   3. memory: RSS before and after filling the informer's cache with 100,000 PodViews.
//
//   capwatch_watch_bench [--pods N] [--events N]
//
// Measured on one of the 2-core build machines (taskset -c 1, 7.0 KB Pods):
//   watch, split + decode + cache update   1,191 MB/s  179,000 events/s  (5.6 us/event)
//   watch, nlohmann event parse instead       74 MB/s   10,600 events/s
//   list, pages of 500 + cache replace     1,053 MB/s  179,000 Pods/s
//   memory: 310 bytes per cached Pod (packed); 2,453 bytes as plain PodViews

#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "kube/kube_client.h"
#include "controller/pod_informer.h"
#include "kube/watch_decoder.h"

namespace capwatch::kube {
namespace {

// The Pod and owner-metadata informers live in lib/controller (capwatch_cluster_views).
using controller::PodInformer;
using controller::PodReflectorOptions;

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// ---- Realistic Pods ----------------------------------------------------------------------------

class PodGenerator {
 public:
  explicit PodGenerator(std::uint64_t seed) : rng_(seed) {}

  // Pod `index` of deployment `index / 100`: pods of one workload share labels and images,
  // as they do in a cluster.
  Json Pod(int index, long long rv) {
    const int deployment = index / 100;
    const std::string app = "svc-" + std::to_string(deployment);
    const std::string ns = "team-" + std::to_string(deployment % 40);
    const std::string hash = Hex(deployment * 7919 + 17, 10);
    const std::string name = app + "-" + hash + "-" + Hex(static_cast<std::uint64_t>(rng_()), 5);
    Json containers = Json::array();
    Json statuses = Json::array();
    const char* roles[] = {"app", "sidecar-proxy", "log-shipper"};
    for (int c = 0; c < 3; ++c) {
      const std::string image = "registry.example.com/platform/" + app + "/" + roles[c] + ":1." +
                                std::to_string(deployment % 13) + "." + std::to_string(c);
      Json security = {{"allowPrivilegeEscalation", false},
                       {"capabilities", {{"drop", {"ALL"}}, {"add", {"NET_BIND_SERVICE"}}}},
                       {"readOnlyRootFilesystem", true},
                       {"runAsNonRoot", true}};
      containers.push_back(
          {{"name", roles[c]},
           {"image", image},
           {"ports", {{{"name", "http"}, {"containerPort", 8080 + c}, {"protocol", "TCP"}}}},
           {"env",
            {{{"name", "LOG_LEVEL"}, {"value", "info"}},
             {{"name", "POD_NAME"},
              {"valueFrom",
               {{"fieldRef", {{"apiVersion", "v1"}, {"fieldPath", "metadata.name"}}}}}},
             {{"name", "UPSTREAM"}, {"value", "http://" + app + "." + ns + ".svc:8080"}}}},
           {"resources",
            {{"limits", {{"cpu", "500m"}, {"memory", "256Mi"}}},
             {"requests", {{"cpu", "100m"}, {"memory", "128Mi"}}}}},
           {"volumeMounts",
            {{{"name", "kube-api-access-" + Hex(index, 5)},
              {"mountPath", "/var/run/secrets/kubernetes.io/serviceaccount"},
              {"readOnly", true}}}},
           {"readinessProbe",
            {{"httpGet", {{"path", "/healthz"}, {"port", 8080 + c}, {"scheme", "HTTP"}}},
             {"periodSeconds", 10},
             {"timeoutSeconds", 1}}},
           {"terminationMessagePath", "/dev/termination-log"},
           {"terminationMessagePolicy", "File"},
           {"imagePullPolicy", "IfNotPresent"},
           {"securityContext", security}});
      statuses.push_back(
          {{"name", roles[c]},
           {"state", {{"running", {{"startedAt", "2026-11-29T10:00:00Z"}}}}},
           {"ready", true},
           {"restartCount", 0},
           {"image", image},
           {"imageID", "registry.example.com/platform/" + app +
                           "@sha256:" + Hex(static_cast<std::uint64_t>(deployment) * 31 + c, 64)},
           {"containerID", "containerd://" + Hex(static_cast<std::uint64_t>(rng_()), 64)},
           {"started", true}});
    }
    Json managed = Json::array();
    managed.push_back({{"manager", "kube-controller-manager"},
                       {"operation", "Update"},
                       {"apiVersion", "v1"},
                       {"time", "2026-11-29T10:00:00Z"},
                       {"fieldsType", "FieldsV1"},
                       {"fieldsV1",
                        {{"f:metadata",
                          {{"f:generateName", Json::object()},
                           {"f:labels",
                            {{".", Json::object()},
                             {"f:app", Json::object()},
                             {"f:pod-template-hash", Json::object()}}},
                           {"f:ownerReferences",
                            {{".", Json::object()},
                             {"k:{\"uid\":\"" + Uid(deployment) + "\"}", Json::object()}}}}},
                         {"f:spec",
                          {{"f:containers",
                            {{"k:{\"name\":\"app\"}",
                              {{".", Json::object()},
                               {"f:env", Json::object()},
                               {"f:image", Json::object()},
                               {"f:name", Json::object()},
                               {"f:ports", Json::object()},
                               {"f:resources", Json::object()},
                               {"f:securityContext", Json::object()}}},
                             {"k:{\"name\":\"sidecar-proxy\"}",
                              {{".", Json::object()}, {"f:image", Json::object()}}},
                             {"k:{\"name\":\"log-shipper\"}",
                              {{".", Json::object()}, {"f:image", Json::object()}}}}},
                           {"f:dnsPolicy", Json::object()},
                           {"f:restartPolicy", Json::object()},
                           {"f:securityContext", Json::object()}}}}}});
    managed.push_back({{"manager", "kubelet"},
                       {"operation", "Update"},
                       {"apiVersion", "v1"},
                       {"time", "2026-11-29T10:00:05Z"},
                       {"fieldsType", "FieldsV1"},
                       {"subresource", "status"},
                       {"fieldsV1",
                        {{"f:status",
                          {{"f:conditions", Json::object()},
                           {"f:containerStatuses", Json::object()},
                           {"f:hostIP", Json::object()},
                           {"f:phase", Json::object()},
                           {"f:podIP", Json::object()},
                           {"f:startTime", Json::object()}}}}}});
    return {
        {"kind", "Pod"},
        {"apiVersion", "v1"},
        {"metadata",
         {{"name", name},
          {"generateName", app + "-" + hash + "-"},
          {"namespace", ns},
          {"uid", Uid(static_cast<std::uint64_t>(index) * 2654435761ULL + 1)},
          {"resourceVersion", std::to_string(rv)},
          {"creationTimestamp", "2026-11-29T10:00:00Z"},
          {"labels",
           {{"app", app}, {"pod-template-hash", hash}, {"team", ns}, {"tier", "backend"}}},
          {"annotations",
           {{"kubectl.kubernetes.io/restartedAt", "2026-11-28T09:00:00Z"},
            {"prometheus.io/scrape", "true"},
            {"capwatch.io/justification.NET_BIND_SERVICE", "serves :80 for the legacy clients"}}},
          {"ownerReferences",
           {{{"apiVersion", "apps/v1"},
             {"kind", "ReplicaSet"},
             {"name", app + "-" + hash},
             {"uid", Uid(deployment)},
             {"controller", true},
             {"blockOwnerDeletion", true}}}},
          {"managedFields", managed}}},
        {"spec",
         {{"volumes",
           {{{"name", "kube-api-access-" + Hex(index, 5)},
             {"projected",
              {{"sources",
                {{{"serviceAccountToken", {{"expirationSeconds", 3607}, {"path", "token"}}}},
                 {{"configMap",
                   {{"name", "kube-root-ca.crt"},
                    {"items", {{{"key", "ca.crt"}, {"path", "ca.crt"}}}}}}}}},
               {"defaultMode", 420}}}}}},
          {"containers", containers},
          {"restartPolicy", "Always"},
          {"terminationGracePeriodSeconds", 30},
          {"dnsPolicy", "ClusterFirst"},
          {"serviceAccountName", "default"},
          {"nodeName", "node-" + std::to_string(index % 50)},
          {"securityContext", {{"runAsNonRoot", true}, {"runAsUser", 10001}}},
          {"schedulerName", "default-scheduler"},
          {"tolerations",
           {{{"key", "node.kubernetes.io/not-ready"},
             {"operator", "Exists"},
             {"effect", "NoExecute"},
             {"tolerationSeconds", 300}},
            {{"key", "node.kubernetes.io/unreachable"},
             {"operator", "Exists"},
             {"effect", "NoExecute"},
             {"tolerationSeconds", 300}}}},
          {"priority", 0},
          {"enableServiceLinks", true},
          {"preemptionPolicy", "PreemptLowerPriority"}}},
        {"status",
         {{"phase", "Running"},
          {"conditions",
           {{{"type", "Initialized"},
             {"status", "True"},
             {"lastTransitionTime", "2026-11-29T10:00:00Z"}},
            {{"type", "Ready"}, {"status", "True"}, {"lastTransitionTime", "2026-11-29T10:00:05Z"}},
            {{"type", "ContainersReady"},
             {"status", "True"},
             {"lastTransitionTime", "2026-11-29T10:00:05Z"}},
            {{"type", "PodScheduled"},
             {"status", "True"},
             {"lastTransitionTime", "2026-11-29T10:00:00Z"}}}},
          {"hostIP", "10.0.0." + std::to_string(index % 250)},
          {"podIP", "10.244." + std::to_string(index % 250) + "." + std::to_string(index % 200)},
          {"startTime", "2026-11-29T10:00:00Z"},
          {"containerStatuses", statuses},
          {"qosClass", "Burstable"}}}};
  }

 private:
  static std::string Hex(std::uint64_t v, int digits) {
    static const char* kDigits = "0123456789abcdef";
    std::string s(static_cast<std::size_t>(digits), '0');
    std::uint64_t x = v * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    for (int i = 0; i < digits; ++i) {
      if (i % 16 == 0) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      s[static_cast<std::size_t>(i)] = kDigits[(x >> ((i % 16) * 4)) & 0xF];
    }
    return s;
  }
  static std::string Uid(std::uint64_t v) {
    const std::string h = Hex(v, 32);
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
           "-" + h.substr(20, 12);
  }
  std::mt19937_64 rng_;
};

// ---- Measuring -----------------------------------------------------------------------------

long ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A KubeClient that is never called: the benchmark drives the informer's store directly.
class NoClient final : public KubeClient {
 public:
  Result<std::string> Send(const Request&, const std::stop_token&) override {
    return ApiStatus(0, StatusReason::kTransport, "benchmark");
  }
  Result<std::unique_ptr<WatchStream>> Watch(const ResourceRef&, const ListOptions&,
                                             const std::stop_token&) override {
    return ApiStatus(0, StatusReason::kTransport, "benchmark");
  }
};

struct Args {
  int pods = 100'000;
  int events = 20'000;
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--pods") a.pods = std::atoi(argv[i + 1]);
    if (flag == "--events") a.events = std::atoi(argv[i + 1]);
  }
  return a;
}

int Main(int argc, char** argv) {
  const Args args = Parse(argc, argv);
  PodGenerator gen(20261129);

  // The watch stream: ADDED for the first half, MODIFIED for the rest (same pods again).
  std::string stream;
  const int distinct = args.events / 2;
  std::vector<std::string> pods;
  pods.reserve(static_cast<std::size_t>(distinct));
  for (int i = 0; i < distinct; ++i) pods.push_back(gen.Pod(i, 1000 + i).dump());
  std::size_t pod_bytes = 0;
  for (int i = 0; i < args.events; ++i) {
    const std::string& pod = pods[static_cast<std::size_t>(i % distinct)];
    pod_bytes += pod.size();
    stream += R"({"type":")";
    stream += i < distinct ? "ADDED" : "MODIFIED";
    stream += R"(","object":)";
    stream += pod;
    stream += "}\n";
  }
  std::printf(
      "corpus: %d watch events, %.1f MB, average Pod %.0f bytes (3 containers, "
      "managedFields)\n",
      args.events, static_cast<double>(stream.size()) / 1e6,
      static_cast<double>(pod_bytes) / args.events);

  NoClient client;
  // 1. Watch decode, as the reflector runs it.
  double best_watch = 0;
  for (int round = 0; round < 3; ++round) {
    PodInformer informer(client, SystemClock(), PodReflectorOptions());
    LineSplitter splitter;
    WatchEventDecoder decoder;
    std::size_t applied = 0, failed = 0;
    const auto start = Clock::now();
    for (std::size_t off = 0; off < stream.size(); off += 16384) {
      splitter.Feed(std::string_view(stream).substr(off, 16384), [&](std::string_view line) {
        auto event = decoder.Decode(line);
        if (event.ok() && informer.ApplyEvent(event->type, event->object).ok()) {
          ++applied;
        } else {
          ++failed;
        }
      });
    }
    const double s = Seconds(Clock::now() - start);
    best_watch = std::max(best_watch, static_cast<double>(applied) / s);
    if (round == 2) {
      std::printf(
          "watch, split + decode + cache update:  %8.0f MB/s  %9.0f events/s  "
          "(%.2f us/event; %zu applied, %zu failed, cache %zu)\n",
          static_cast<double>(stream.size()) / 1e6 / s, best_watch, 1e6 / best_watch, applied,
          failed, informer.size());
    }
  }

  // The alternative: a full JSON parse of each event to find "type" and "object".
  {
    PodDecoder pod_decoder;
    LineSplitter splitter;
    std::size_t n = 0;
    const auto start = Clock::now();
    const std::size_t limit = std::min<std::size_t>(stream.size(), 40'000'000);
    for (std::size_t off = 0; off < limit; off += 16384) {
      splitter.Feed(std::string_view(stream).substr(off, 16384), [&](std::string_view line) {
        auto doc = nlohmann::json::parse(line, nullptr, false);
        const std::string object = doc["object"].dump();
        PodView view;
        if (pod_decoder.DecodePod(object, view).ok()) ++n;
      });
    }
    const double s = Seconds(Clock::now() - start);
    std::printf(
        "watch, nlohmann event parse instead:    %8.0f MB/s  %9.0f events/s  (the path "
        "not taken)\n",
        static_cast<double>(limit) / 1e6 / s, static_cast<double>(n) / s);
  }

  // 2. List decode: pages of 500, as the reflector lists.
  {
    const int page = 500;
    std::vector<std::string> pages;
    std::size_t bytes = 0;
    for (int p = 0; p * page < distinct; ++p) {
      std::string body =
          R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"99","continue":"x"},"items":[)";
      for (int i = p * page; i < std::min(distinct, (p + 1) * page); ++i) {
        if (i != p * page) body += ",";
        body += pods[static_cast<std::size_t>(i)];
      }
      body += "]}";
      bytes += body.size();
      pages.push_back(std::move(body));
    }
    double best = 0;
    for (int round = 0; round < 3; ++round) {
      PodInformer informer(client, SystemClock(), PodReflectorOptions());
      informer.BeginList();
      const auto start = Clock::now();
      for (const auto& body : pages) {
        ListPageMeta meta;
        if (Status added = informer.AddListPage(body, meta); !added.ok())
          std::printf("list error: %s\n", added.error().ToString().c_str());
      }
      informer.CommitList();
      const double s = Seconds(Clock::now() - start);
      best = std::max(best, static_cast<double>(distinct) / s);
      if (round == 2) {
        std::printf(
            "list, pages of %d + cache replace:     %8.0f MB/s  %9.0f pods/s    "
            "(%.2f us/pod, cache %zu)\n",
            page, static_cast<double>(bytes) / 1e6 / s, best, 1e6 / best, informer.size());
      }
    }
  }
  pods.clear();
  pods.shrink_to_fit();
  stream.clear();
  stream.shrink_to_fit();

  // 3. Resident bytes per cached Pod: the informer's packed cache, and for comparison the
  // same Pods kept as PodViews (what the cache held before it packed them).
  {
    PodInformer informer(client, SystemClock(), PodReflectorOptions());
    malloc_trim(0);
    const long before = ResidentBytes();
    for (int i = 0; i < args.pods; ++i) {
      const std::string json = gen.Pod(i, 5000 + i).dump();
      if (auto applied = informer.ApplyEvent(WatchEventType::kAdded, json); !applied.ok()) {
        std::printf("decode error: %s\n", applied.error().ToString().c_str());
        return 1;
      }
    }
    malloc_trim(0);
    const long after = ResidentBytes();
    std::printf(
        "memory: %d Pods in the informer cache, RSS +%.1f MiB, %.0f bytes per cached Pod "
        "(target <= 1536; %zu distinct pooled strings)\n",
        args.pods, static_cast<double>(after - before) / (1024.0 * 1024.0),
        static_cast<double>(after - before) / args.pods, informer.codec().pooled_strings());
  }
  malloc_trim(0);
  {
    PodDecoder decoder;
    std::unordered_map<std::string, std::shared_ptr<const PodView>> plain;
    malloc_trim(0);
    const long before = ResidentBytes();
    for (int i = 0; i < args.pods; ++i) {
      const std::string json = gen.Pod(i, 5000 + i).dump();
      PodView view;
      if (!decoder.DecodePod(json, view).ok()) return 1;
      std::string key = ObjectKey(view.namespace_name, view.name);
      plain.emplace(std::move(key), std::make_shared<const PodView>(std::move(view)));
    }
    malloc_trim(0);
    const long after = ResidentBytes();
    std::printf(
        "        the same Pods as PodViews (shared_ptr in a map): %.0f bytes per Pod; "
        "sizeof(PodView) %zu, sizeof(ContainerView) %zu\n",
        static_cast<double>(after - before) / args.pods, sizeof(PodView), sizeof(ContainerView));
  }
  std::printf(
      "targets (DESIGN §7): >= 50,000 Pod events/s on one core, <= 1.5 KB per cached Pod\n");
  return 0;
}

}  // namespace
}  // namespace capwatch::kube

int main(int argc, char** argv) { return capwatch::kube::Main(argc, argv); }
