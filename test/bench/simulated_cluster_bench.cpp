// capwatch's controller against a simulated API server of up to millions of Pods, beyond what
// one machine's real kube-apiserver and etcd can hold (test/bench/README.md).
//
// A program that prints figures, never a test. The double is in-process: a KubeClient that
// generates, as it is asked, the list of N Pods owned by ReplicaSets (each of them owned by a
// Deployment, so a Deployment is a workload), the ReplicaSets' metadata list, the namespaces and
// one CapabilityPolicy; it serves a list whole (streamed in 64 KiB pieces, as capwatch asks) or
// in pages with continue tokens (as the API server pages), watches that stay open without
// events, and takes every write. The Pods come from test/bench/testdata/simulated-pod.json (the
// shape the real scale harness creates, as the API server returns it: managedFields, status,
// three containers) with names, uids and one of six securityContexts filled in.
//
// Printed: the cost of generating the Pod list alone (measured first, then subtracted), time
// and CPU to ready, VmRSS and VmHWM at ready, time and CPU until every workload's report was
// written, VmRSS and VmHWM then; and the same for a restart over those reports (the double
// lists them as it stored them), which must write no report. Exits 1 if a workload has no
// report or the restart wrote one.
//
//   capwatch_simulated_cluster_bench [--pods 1000000] [--pods-per-replicaset 10]
//                                    [--replicasets-per-namespace 1000]

#include <sys/resource.h>

#include <spdlog/spdlog.h>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "controller/controller.h"
#include "kube/clock.h"
#include "kube/kube_client.h"
#include "metrics/metrics.h"

namespace capwatch {
namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "capwatch_simulated_cluster_bench: %s\n", what.c_str());
  std::exit(1);
}

// ---- The simulated cluster -------------------------------------------------------------------

struct Layout {
  long pods = 1'000'000;
  int pods_per_replicaset = 10;
  int replicasets_per_namespace = 1000;

  long replicasets() const { return (pods + pods_per_replicaset - 1) / pods_per_replicaset; }
  long namespaces() const {
    return (replicasets() + replicasets_per_namespace - 1) / replicasets_per_namespace;
  }
};

// The six app-container securityContexts of the scale harness, one per ReplicaSet in turn.
constexpr const char* kSecurityMixes[] = {
    R"({"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"readOnlyRootFilesystem":true,"runAsNonRoot":true,"runAsUser":10001,"seccompProfile":{"type":"RuntimeDefault"}})",
    R"({"allowPrivilegeEscalation":false,"capabilities":{"add":["NET_BIND_SERVICE"],"drop":["ALL"]},"runAsNonRoot":true})",
    R"({})",
    R"({"capabilities":{"add":["NET_ADMIN","NET_RAW","SYS_TIME"]}})",
    R"({"privileged":true})",
    R"({"capabilities":{"add":["cap_sys_admin","CHOWN"],"drop":["NET_RAW"]}})",
};

// The Pod template cut at its placeholders ({{NAME}}), so a Pod is a run of appends.
class PodTemplate {
 public:
  enum Field {
    kNs,
    kRs,
    kApp,
    kTeam,
    kChecksum,
    kDigest,
    kSecurity,
    kNode,
    kCid,
    kRsUid,
    kPod,
    kRv,
    kUid,
    kFieldCount
  };

  explicit PodTemplate(const std::string& path) {
    std::ifstream in(path);
    if (!in) Fail(path + ": cannot be read");
    std::string text;
    try {
      text = nlohmann::ordered_json::parse(in).dump();
    } catch (const std::exception& e) {
      Fail(path + ": " + e.what());
    }
    // The securityContext is an object, written as the string "{{SECURITY}}" in the file.
    ReplaceAll(text, "\"{{SECURITY}}\"", "{{SECURITY}}");
    static constexpr std::pair<std::string_view, Field> kNames[] = {{"NS", kNs},
                                                                    {"RS", kRs},
                                                                    {"APP", kApp},
                                                                    {"TEAM", kTeam},
                                                                    {"CHECKSUM", kChecksum},
                                                                    {"DIGEST", kDigest},
                                                                    {"SECURITY", kSecurity},
                                                                    {"NODE", kNode},
                                                                    {"CID", kCid},
                                                                    {"RSUID", kRsUid},
                                                                    {"POD", kPod},
                                                                    {"RV", kRv},
                                                                    {"UID", kUid}};
    std::size_t at = 0;
    for (;;) {
      const std::size_t open = text.find("{{", at);
      if (open == std::string::npos) break;
      const std::size_t close = text.find("}}", open + 2);
      if (close == std::string::npos) Fail(path + ": an unclosed {{ placeholder");
      const std::string_view name(text.data() + open + 2, close - open - 2);
      Field field = kFieldCount;
      for (const auto& [n, f] : kNames) {
        if (n == name) field = f;
      }
      if (field == kFieldCount) Fail(path + ": unknown placeholder {{" + std::string(name) + "}}");
      parts_.push_back({text.substr(at, open - at), field});
      at = close + 2;
    }
    tail_ = text.substr(at);
  }

  // Appends the Pod with these field values.
  void Append(std::string& out, const std::string_view (&values)[kFieldCount]) const {
    for (const auto& [literal, field] : parts_) {
      out += literal;
      out += values[field];
    }
    out += tail_;
  }

 private:
  static void ReplaceAll(std::string& s, std::string_view from, std::string_view to) {
    for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at)) {
      s.replace(at, from.size(), to);
      at += to.size();
    }
  }

  std::vector<std::pair<std::string, Field>> parts_;
  std::string tail_;
};

void Hex(std::string& out, std::uint64_t seed, int digits) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E5ull;
  for (int i = 0; i < digits; ++i) {
    if (i % 16 == 0) x = x * 6364136223846793005ull + 1442695040888963407ull;
    out += kDigits[(x >> ((i % 16) * 4)) & 15];
  }
}

std::string Uid(char kind, std::uint64_t n) {
  std::string hex;
  Hex(hex, n * 31 + static_cast<std::uint64_t>(kind), 32);
  hex[0] = kind;
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-4" + hex.substr(13, 3) + "-8" +
         hex.substr(17, 3) + "-" + hex.substr(20, 12);
}

std::string Padded(long n, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*ld", width, n);
  return buf;
}

class SimulatedCluster {
 public:
  SimulatedCluster(Layout layout, const std::string& template_path)
      : layout_(layout), template_(template_path) {}

  const Layout& layout() const { return layout_; }

  std::string NamespaceName(long ns) const { return "ns-" + Padded(ns, 4); }
  std::string ReplicaSetName(long rs) const { return "svc-" + Padded(rs, 6) + "-7d9f8c6b5"; }

  // Pod i (0-based) appended to `out`.
  void AppendPod(std::string& out, long i) const {
    const long rs = i / layout_.pods_per_replicaset;
    const long ns = rs / layout_.replicasets_per_namespace;
    const std::string ns_name = NamespaceName(ns), rs_name = ReplicaSetName(rs);
    const std::string app = "svc-" + Padded(rs, 6), team = "team-" + std::to_string(rs % 7);
    std::string checksum, digest, cid;
    Hex(checksum, static_cast<std::uint64_t>(rs) * 7919 + 13, 64);
    Hex(digest, static_cast<std::uint64_t>(rs) + 1, 64);
    Hex(cid, static_cast<std::uint64_t>(i) + 1'000'003, 64);
    const std::string node = std::to_string(rs % 250), rs_uid = Uid('a', rs), uid = Uid('b', i);
    std::string pod = rs_name + "-";
    Hex(pod, static_cast<std::uint64_t>(i), 5);
    const std::string rv = std::to_string(1000 + i);
    const std::string_view values[PodTemplate::kFieldCount] = {
        ns_name, rs_name, app,    team, checksum, digest, kSecurityMixes[rs % 6],
        node,    cid,     rs_uid, pod,  rv,       uid};
    template_.Append(out, values);
  }

  void AppendReplicaSet(std::string& out, long rs) const {
    const long ns = rs / layout_.replicasets_per_namespace;
    const std::string app = "svc-" + Padded(rs, 6);
    out += R"({"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":")";
    out += ReplicaSetName(rs);
    out += R"(","namespace":")";
    out += NamespaceName(ns);
    out += R"(","uid":")";
    out += Uid('a', rs);
    out += R"(","resourceVersion":")";
    out += std::to_string(500 + rs);
    out +=
        R"(","generation":1,"creationTimestamp":"2026-11-30T09:12:40Z","labels":{"app.kubernetes.io/name":")";
    out += app;
    out +=
        R"(","pod-template-hash":"7d9f8c6b5"},"annotations":{"deployment.kubernetes.io/desired-replicas":"10","deployment.kubernetes.io/max-replicas":"13","deployment.kubernetes.io/revision":"1"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":")";
    out += app;
    out += R"(","uid":")";
    out += Uid('d', rs);
    out += R"(","controller":true,"blockOwnerDeletion":true}]}})";
  }

  void AppendNamespace(std::string& out, long ns) const {
    out += R"({"metadata":{"name":")";
    out += NamespaceName(ns);
    out += R"(","uid":")";
    out += Uid('c', ns);
    out += R"(","resourceVersion":"10","labels":{"kubernetes.io/metadata.name":")";
    out += NamespaceName(ns);
    out += R"("}},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}})";
  }

 private:
  Layout layout_;
  PodTemplate template_;
};

// ---- The API server double -------------------------------------------------------------------

class SimulatedApiServer final : public kube::KubeClient {
 public:
  explicit SimulatedApiServer(const SimulatedCluster& cluster) : cluster_(cluster) {}

  std::atomic<long> report_writes{0}, other_writes{0};

  // The reports created, by namespace/name: a workload counts once however often it is
  // written. Kept as written (with the metadata the API server adds) and listed to the next
  // controller, as the API server would after a restart.
  std::size_t distinct_reports() const {
    std::lock_guard lock(mu_);
    return reports_.size();
  }
  std::size_t stored_report_bytes() const {
    std::lock_guard lock(mu_);
    std::size_t bytes = 0;
    for (const auto& [key, body] : reports_) bytes += key.size() + body.size();
    return bytes;
  }

  kube::Result<std::string> Send(const kube::Request& r, const std::stop_token& stop) override {
    if (r.verb != kube::Verb::kGet) return Write(r);
    int limit = 0;
    long from = 0;
    for (const auto& [k, v] : r.query) {
      if (k == "limit") limit = std::atoi(v.c_str());
      if (k == "continue") from = std::atol(v.c_str());
    }
    Kind kind;
    if (r.path == "/api/v1/pods") {
      kind = Kind::kPods;
    } else if (r.path == "/apis/apps/v1/replicasets") {
      kind = Kind::kReplicaSets;
    } else if (r.path == "/api/v1/namespaces") {
      kind = Kind::kNamespaces;
    } else if (r.path == "/apis/batch/v1/jobs") {
      kind = Kind::kEmpty;
    } else if (r.path == "/apis/capwatch.io/v1alpha1/capabilityreports") {
      kind = Kind::kReports;
      std::lock_guard lock(mu_);
      listed_reports_.clear();
      for (const auto& [key, body] : reports_) listed_reports_.push_back(&body);
    } else if (r.path == "/apis/capwatch.io/v1alpha1/capabilitypolicies") {
      kind = Kind::kPolicies;
    } else {
      return kube::ApiStatus(404, kube::StatusReason::kNotFound, "not simulated: " + r.path);
    }
    const long total = Count(kind);
    const long to = limit > 0 ? std::min(total, from + limit) : total;
    std::string body;
    body.reserve(1 << 17);
    body += R"({"kind":")";
    body += kind == Kind::kReplicaSets ? "PartialObjectMetadataList" : "List";
    body += R"(","apiVersion":"v1","metadata":{"resourceVersion":"2000000000")";
    if (to < total) body += R"(,"continue":")" + std::to_string(to) + "\"";
    body += R"(},"items":[)";
    for (long i = from; i < to; ++i) {
      if (stop.stop_requested()) return kube::ApiStatus(0, kube::StatusReason::kCancelled, "");
      if (i > from) body += ',';
      AppendItem(body, kind, i);
      if (r.on_body && body.size() >= (64u << 10)) {
        if (!r.on_body(body)) return kube::ApiStatus(0, kube::StatusReason::kCancelled, "");
        body.clear();
      }
    }
    body += "]}";
    if (r.on_body) {
      if (!r.on_body(body)) return kube::ApiStatus(0, kube::StatusReason::kCancelled, "");
      return std::string();
    }
    return body;
  }

  kube::Result<std::unique_ptr<kube::WatchStream>> Watch(const kube::ResourceRef&,
                                                         const kube::ListOptions&,
                                                         const std::stop_token& stop) override {
    return std::unique_ptr<kube::WatchStream>(new QuietWatch(stop));
  }

  // Generates the whole Pod list into nothing: what serving it costs, to subtract.
  void ServePodsAlone() {
    std::string body;
    for (long i = 0; i < cluster_.layout().pods; ++i) {
      if (i > 0) body += ',';
      cluster_.AppendPod(body, i);
      if (body.size() >= (64u << 10)) {
        generated_bytes_ += body.size();
        body.clear();
      }
    }
    generated_bytes_ += body.size();
  }
  std::uint64_t generated_bytes() const { return generated_bytes_; }

 private:
  enum class Kind { kPods, kReplicaSets, kNamespaces, kPolicies, kReports, kEmpty };

  long Count(Kind kind) const {
    switch (kind) {
      case Kind::kPods:
        return cluster_.layout().pods;
      case Kind::kReplicaSets:
        return cluster_.layout().replicasets();
      case Kind::kNamespaces:
        return cluster_.layout().namespaces();
      case Kind::kPolicies:
        return 1;
      case Kind::kReports:
        return static_cast<long>(listed_reports_.size());  // only the list's thread reads it
      case Kind::kEmpty:
        return 0;
    }
    return 0;
  }

  void AppendItem(std::string& out, Kind kind, long i) const {
    switch (kind) {
      case Kind::kPods:
        return cluster_.AppendPod(out, i);
      case Kind::kReplicaSets:
        return cluster_.AppendReplicaSet(out, i);
      case Kind::kNamespaces:
        return cluster_.AppendNamespace(out, i);
      case Kind::kPolicies:
        out +=
            R"({"apiVersion":"capwatch.io/v1alpha1","kind":"CapabilityPolicy","metadata":{"name":"production","uid":"0f0e0d0c-0000-4000-8000-000000000001","resourceVersion":"20","generation":1},"spec":{"requireDropAll":true,"disallowPrivileged":true}})";
        return;
      case Kind::kReports:
        out += *listed_reports_[static_cast<std::size_t>(i)];
        return;
      case Kind::kEmpty:
        return;
    }
  }

  kube::Result<std::string> Write(const kube::Request& r) {
    if (r.path.find("/capabilityreports") == std::string::npos) {
      ++other_writes;
      return std::string("{}");
    }
    ++report_writes;
    if (r.verb != kube::Verb::kPost) return std::string("{}");
    // The name, without parsing the report: the first of metadata's keys called "name" (its
    // keys are in order: annotations, labels, name, namespace, ownerReferences).
    const std::size_t metadata = r.body.find(R"("metadata":{)");
    if (metadata == std::string::npos) Fail("a report without metadata: " + r.body);
    const std::size_t at = r.body.find(R"("name":")", metadata);
    const std::size_t end = at == std::string::npos ? at : r.body.find('"', at + 8);
    if (end == std::string::npos) Fail("a report without a name: " + r.body);
    // What the API server adds to what it stores.
    std::string stored = r.body;
    const std::size_t n = ++created_;
    stored.insert(metadata + 12, R"("creationTimestamp":"2026-11-30T09:13:00Z","resourceVersion":")" +
                                     std::to_string(3'000'000'000 + n) + R"(","uid":")" +
                                     Uid('e', n) + "\",");
    std::lock_guard lock(mu_);
    reports_[r.path + "/" + r.body.substr(at + 8, end - at - 8)] = std::move(stored);
    return std::string("{}");
  }

  // A watch that stays open, without events, until capwatch stops.
  class QuietWatch final : public kube::WatchStream {
   public:
    explicit QuietWatch(std::stop_token stop) : stop_(std::move(stop)) {}
    bool NextLine(std::string&) override {
      std::mutex mu;
      std::condition_variable_any cv;
      std::unique_lock lock(mu);
      cv.wait(lock, stop_, [] { return false; });
      status_ = kube::ApiStatus(0, kube::StatusReason::kCancelled, "stopped");
      return false;
    }
    const kube::ApiStatus& status() const override { return status_; }

   private:
    std::stop_token stop_;
    kube::ApiStatus status_ = kube::ApiStatus::Ok();
  };

  const SimulatedCluster& cluster_;
  mutable std::mutex mu_;
  std::map<std::string, std::string> reports_;      // path/name → the report as stored
  std::vector<const std::string*> listed_reports_;  // the reports the current list serves
  std::atomic<std::size_t> created_{0};
  std::uint64_t generated_bytes_ = 0;
};

// ---- Measuring -------------------------------------------------------------------------------

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// VmRSS or VmHWM from /proc/self/status, in MiB.
double StatusMiB(std::string_view field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size(), field) == 0 && line.size() > field.size() &&
        line[field.size()] == ':') {
      return std::atof(line.c_str() + field.size() + 1) / 1024.0;
    }
  }
  return 0;
}

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

struct StartFigures {
  double ready_wall = 0, ready_hwm = 0;
};

// One controller, from its start until `done` (or, without it, until its first pass over every
// workload is done), printing what it cost. `generation_cpu` is the double's cost of the Pod
// list, subtracted from the CPU figures.
StartFigures Start(SimulatedApiServer& api, double generation_cpu, const char* what,
                   const std::function<bool()>& done) {
  Metrics metrics;
  controller::ControllerOptions options;
  controller::Controller ctl(api, kube::SystemClock(), metrics, options);
  // On the heap: g++ 12 takes a std::stop_source on the stack here for uninitialised.
  const auto stop = std::make_unique<std::stop_source>();
  const double rss_before = StatusMiB("VmRSS");
  const double cpu = CpuSeconds();
  const auto started = std::chrono::steady_clock::now();
  ctl.StartInformers(stop->get_token());
  if (!ctl.WaitForSync(stop->get_token(), std::chrono::minutes(10))) Fail("not synced in 10 min");
  while (!ctl.Ready()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  StartFigures f;
  f.ready_wall = Since(started);
  const double ready_cpu = CpuSeconds() - cpu;
  f.ready_hwm = StatusMiB("VmHWM");
  std::printf(
      "  %s, ready: %.2f s, %.2f s CPU (%.2f s without generating the Pod list), VmRSS %.1f MiB "
      "(%.1f before), VmHWM %.1f MiB\n",
      what, f.ready_wall, ready_cpu, ready_cpu - generation_cpu, StatusMiB("VmRSS"), rss_before,
      f.ready_hwm);
  std::fflush(stdout);

  std::jthread workers([&ctl](std::stop_token s) { ctl.RunWorkers(s); });
  const auto finished = [&] { return done ? done() : ctl.initial_pass_done(); };
  while (!finished() && Since(started) < 1800) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double all_cpu = CpuSeconds() - cpu;
  std::printf(
      "  %s, every workload %s: %.2f s, %.2f s CPU (%.2f s without the Pod list); VmRSS %.1f "
      "MiB, VmHWM %.1f MiB\n",
      what, done ? "reported" : "compared with its report", Since(started), all_cpu,
      all_cpu - generation_cpu, StatusMiB("VmRSS"), StatusMiB("VmHWM"));
  stop->request_stop();
  workers.request_stop();
  workers.join();
  return f;
}

int Run(const Layout& layout) {
  const SimulatedCluster cluster(
      layout, std::string(CAPWATCH_SOURCE_DIR) + "/test/bench/testdata/simulated-pod.json");
  SimulatedApiServer api(cluster);
  std::printf("simulated cluster: %ld Pods, %ld ReplicaSets (%ld workloads), %ld namespaces\n",
              layout.pods, layout.replicasets(), layout.replicasets(), layout.namespaces());
  std::fflush(stdout);

  // What generating the Pod list costs the double, measured alone so it can be subtracted.
  double cpu = CpuSeconds();
  auto started = std::chrono::steady_clock::now();
  api.ServePodsAlone();
  const double gen_cpu = CpuSeconds() - cpu, gen_wall = Since(started);
  const double pod_bytes = static_cast<double>(api.generated_bytes());
  std::printf(
      "  the double alone: the Pod list (%.0f MB, %.0f bytes a Pod) in %.2f s, %.2f s CPU\n",
      pod_bytes / 1e6, pod_bytes / static_cast<double>(layout.pods), gen_wall, gen_cpu);
  std::fflush(stdout);

  const auto workloads = static_cast<std::size_t>(layout.replicasets());
  const StartFigures first =
      Start(api, gen_cpu, "first start", [&] { return api.distinct_reports() >= workloads; });
  const std::size_t written = api.distinct_reports();
  std::printf("    %zu of %zu workloads have their report; %ld report writes, %ld other writes\n",
              written, workloads, api.report_writes.load(), api.other_writes.load());
  std::fflush(stdout);

  // A restart over those reports: every workload is compared with its report, none written.
  api.report_writes = 0;
  api.other_writes = 0;
  const double stored_mib = static_cast<double>(api.stored_report_bytes()) / (1 << 20);
  const StartFigures again = Start(api, gen_cpu, "restart", {});
  std::printf(
      "    %ld report writes (must be 0), %ld other writes; the double holds %.1f MiB of the "
      "reports in that VmRSS\n",
      api.report_writes.load(), api.other_writes.load(), stored_mib);

  const bool at_million = layout.pods >= 1'000'000;
  std::printf("  targets%s: VmHWM <= 1024 MiB: %s; ready <= 60 s: %s; restart writes 0: %s\n",
              at_million ? " (1,000,000 Pods)" : " (scaled from 1,000,000 Pods, for reference)",
              first.ready_hwm <= 1024 ? "met" : "NOT met",
              first.ready_wall <= 60 ? "met" : "NOT met",
              api.report_writes == 0 ? "met" : "NOT met");
  static_cast<void>(again);
  return written == workloads && api.report_writes == 0 ? 0 : 1;
}

}  // namespace
}  // namespace capwatch

int main(int argc, char** argv) {
  // The controller logs each report and each new dangerous grant: they would drown the figures.
  spdlog::set_level(spdlog::level::err);
  capwatch::Layout layout;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--pods" && has_value) {
      layout.pods = std::atol(argv[++i]);
    } else if (arg == "--pods-per-replicaset" && has_value) {
      layout.pods_per_replicaset = std::atoi(argv[++i]);
    } else if (arg == "--replicasets-per-namespace" && has_value) {
      layout.replicasets_per_namespace = std::atoi(argv[++i]);
    } else {
      capwatch::Fail("unknown argument " + std::string(arg) +
                     " (--pods N, --pods-per-replicaset N, --replicasets-per-namespace N)");
    }
  }
  if (layout.pods <= 0 || layout.pods_per_replicaset <= 0 ||
      layout.replicasets_per_namespace <= 0) {
    capwatch::Fail("the sizes must be positive");
  }
  return capwatch::Run(layout);
}
