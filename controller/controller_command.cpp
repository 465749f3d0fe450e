#include "controller_command.h"

#include <signal.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include "base/json_log_line.h"
#include "cli/commands.h"
#include "controller/controller.h"
#include "controller/http_endpoints.h"
#include "kube/lease_lock.h"
#include "kube/rest_client.h"
#include "metrics/metrics.h"

namespace capwatch {
namespace {

constexpr const char* kUsage =
    "usage: capwatch controller [flags]\n"
    "\n"
    "  --kubeconfig PATH                 kubeconfig (default: $KUBECONFIG, ~/.kube/config, or\n"
    "                                    the in-cluster service account)\n"
    "  --context NAME                    kubeconfig context (default: current-context)\n"
    "  --allow-insecure-api-server       allow an http:// API server (its token would travel\n"
    "                                    in clear text; refused otherwise)\n"
    "  --metrics-bind-address ADDR       Prometheus metrics (default :8443; [::]:8443 for IPv6;\n"
    "                                    0 turns it off)\n"
    "  --metrics-secure true|false       HTTPS, and each scrape's bearer token checked with a\n"
    "                                    TokenReview and a SubjectAccessReview for get on\n"
    "                                    /metrics (default true; false serves plain HTTP to\n"
    "                                    anyone who can reach the port)\n"
    "  --metrics-cert-dir DIR            tls.crt and tls.key to serve (default: a self-signed\n"
    "                                    certificate made at start)\n"
    "  --health-probe-bind-address ADDR  /healthz and /readyz (default :8081; 0 turns it off)\n"
    "  --leader-elect                    only the holder of the Lease writes\n"
    "  --leader-election-namespace NS    namespace of the Lease (default: $POD_NAMESPACE or\n"
    "                                    capwatch-system)\n"
    "  --leader-election-id NAME         name of the Lease (default capwatch-leader)\n"
    "  --kube-api-qps N                  client-side rate limit (default 20)\n"
    "  --kube-api-burst N                burst of the rate limit (default 30)\n"
    "  --workers N                       concurrent reconciles (default 2)\n"
    "  --initial-grants announce|record  at the very first start in a cluster, announce the\n"
    "                                    dangerous grants already running (count + Event) or\n"
    "                                    record them silently (default announce)\n"
    "  --readiness-unsynced-after SECS   /readyz fails while an informer has not been watching\n"
    "                                    for this long (default 60)\n"
    "  --liveness-stalled-after SECS     /healthz fails when workloads wait and no reconcile\n"
    "                                    finished for this long (default 120)\n"
    "  --pod-encoding protobuf|json      how Pods are listed and watched (default protobuf)\n"
    "  --enforcement true|false          keep a ValidatingAdmissionPolicy and Binding for each\n"
    "                                    policy with spec.enforcement (default true)\n"
    "  --policy-reports MODE             also write each report as an OpenReports Report or a\n"
    "                                    wgpolicyk8s.io PolicyReport: off (default), auto (the\n"
    "                                    one whose CRD is installed), openreports, wgpolicyk8s\n"
    "  --log-format text|json            (default text)\n"
    "  --log-level debug|info|warn|error (default info)\n";

struct Flags {
  std::string kubeconfig, context;
  bool allow_insecure_api_server = false;
  std::string metrics_address = ":8443";
  bool metrics_secure = true;
  std::string metrics_cert_dir;
  std::string health_address = ":8081";
  bool leader_elect = false;
  std::string lease_namespace, lease_name = "capwatch-leader";
  double qps = 20;
  int burst = 30;
  int workers = 2;
  std::string initial_grants = "announce";
  int unsynced_after = 60;
  int stalled_after = 120;
  std::string pod_encoding = "protobuf";
  bool enforcement = true;
  std::string policy_reports = "off";
  std::string log_format = "text", log_level = "info";
};

bool ParseFlags(const std::vector<std::string>& args, Flags& f) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i], value;
    const bool has_eq = name.find('=') != std::string::npos;
    if (has_eq) {
      value = name.substr(name.find('=') + 1);
      name = name.substr(0, name.find('='));
    }
    auto next = [&](std::string& out) {
      if (has_eq) {
        out = value;
        return true;
      }
      if (i + 1 >= args.size()) {
        std::cerr << "capwatch controller: " << name << " needs a value\n";
        return false;
      }
      out = args[++i];
      return true;
    };
    auto number = [&](auto& out) {
      std::string v;
      if (!next(v)) return false;
      try {
        if constexpr (std::is_same_v<std::decay_t<decltype(out)>, double>) {
          out = std::stod(v);
        } else {
          out = std::stoi(v);
        }
      } catch (const std::exception&) {
        std::cerr << "capwatch controller: " << name << " takes a number, got \"" << v << "\"\n";
        return false;
      }
      return out > 0 ||
             (std::cerr << "capwatch controller: " << name << " must be positive\n", false);
    };
    bool ok = true;
    if (name == "--kubeconfig") {
      ok = next(f.kubeconfig);
    } else if (name == "--context") {
      ok = next(f.context);
    } else if (name == "--metrics-bind-address") {
      ok = next(f.metrics_address);
    } else if (name == "--allow-insecure-api-server") {
      f.allow_insecure_api_server = !has_eq || value == "true";
    } else if (name == "--metrics-secure") {
      ok = !has_eq || value == "true" || value == "false";
      f.metrics_secure = !has_eq || value == "true";
      if (!ok) std::cerr << "capwatch controller: --metrics-secure must be true or false\n";
    } else if (name == "--enforcement") {
      ok = !has_eq || value == "true" || value == "false";
      f.enforcement = !has_eq || value == "true";
      if (!ok) std::cerr << "capwatch controller: --enforcement must be true or false\n";
    } else if (name == "--policy-reports") {
      ok = next(f.policy_reports);
      if (ok && !controller::ParsePolicyReportMode(f.policy_reports)) {
        std::cerr << "capwatch controller: --policy-reports must be off, auto, openreports or "
                     "wgpolicyk8s\n";
        ok = false;
      }
    } else if (name == "--metrics-cert-dir") {
      ok = next(f.metrics_cert_dir);
    } else if (name == "--health-probe-bind-address") {
      ok = next(f.health_address);
    } else if (name == "--leader-elect") {
      f.leader_elect = !has_eq || value == "true";
    } else if (name == "--leader-election-namespace") {
      ok = next(f.lease_namespace);
    } else if (name == "--leader-election-id") {
      ok = next(f.lease_name);
    } else if (name == "--kube-api-qps") {
      ok = number(f.qps);
    } else if (name == "--kube-api-burst") {
      ok = number(f.burst);
    } else if (name == "--workers") {
      ok = number(f.workers);
    } else if (name == "--initial-grants") {
      ok = next(f.initial_grants);
      if (ok && f.initial_grants != "announce" && f.initial_grants != "record") {
        std::cerr << "capwatch controller: --initial-grants must be announce or record\n";
        ok = false;
      }
    } else if (name == "--readiness-unsynced-after") {
      ok = number(f.unsynced_after);
    } else if (name == "--liveness-stalled-after") {
      ok = number(f.stalled_after);
    } else if (name == "--pod-encoding") {
      ok = next(f.pod_encoding);
      if (ok && f.pod_encoding != "protobuf" && f.pod_encoding != "json") {
        std::cerr << "capwatch controller: --pod-encoding must be protobuf or json\n";
        ok = false;
      }
    } else if (name == "--log-format") {
      ok = next(f.log_format);
      if (ok && f.log_format != "text" && f.log_format != "json") {
        std::cerr << "capwatch controller: --log-format must be text or json\n";
        ok = false;
      }
    } else if (name == "--log-level") {
      ok = next(f.log_level);
      if (ok && spdlog::level::from_str(f.log_level) == spdlog::level::off) {
        std::cerr << "capwatch controller: --log-level must be debug, info, warn or error\n";
        ok = false;
      }
    } else if (name == "-h" || name == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      std::cerr << "capwatch controller: unknown flag \"" << name << "\"\n" << kUsage;
      ok = false;
    }
    if (!ok) return false;
  }
  return true;
}

// One JSON object a line, for log pipelines. FormatJsonLogLine takes any bytes, so no record
// is lost to a message that quotes something that is not UTF-8.
class JsonSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const auto level = spdlog::level::to_string_view(msg.level);
    const std::string line =
        FormatJsonLogLine(msg.time, std::string_view(level.data(), level.size()),
                          std::string_view(msg.payload.data(), msg.payload.size()));
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

void SetUpLogging(const Flags& f) {
  std::shared_ptr<spdlog::logger> logger;
  if (f.log_format == "json") {
    logger = std::make_shared<spdlog::logger>("capwatch", std::make_shared<JsonSink>());
  } else {
    logger = std::make_shared<spdlog::logger>("capwatch",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(spdlog::level::from_str(f.log_level));
  spdlog::set_default_logger(logger);
}

// The names a self-signed serving certificate is made for: the Pod's hostname, its IP when the
// chart passes it (POD_IP), and loopback.
std::vector<std::string> ServingHosts() {
  std::vector<std::string> hosts;
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != 0) hosts.emplace_back(host);
  if (const char* ip = std::getenv("POD_IP"); ip != nullptr && *ip != 0) hosts.emplace_back(ip);
  for (const char* loopback : {"localhost", "127.0.0.1", "::1"}) hosts.emplace_back(loopback);
  return hosts;
}

std::string Identity() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  std::random_device rd;
  return std::string(host) + "_" + std::to_string(rd() % 1000000);
}

}  // namespace

int RunController(const std::vector<std::string>& args) {
  Flags flags;
  if (!ParseFlags(args, flags)) return 2;
  SetUpLogging(flags);

  // SIGTERM and SIGINT stop the controller gracefully; block them before any thread starts
  // so that only the waiting thread receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto config = kube::LoadRestConfig(flags.kubeconfig, flags.context);
  if (!config.ok()) {
    spdlog::error("cannot configure the Kubernetes client: {}", config.error().ToString());
    return 1;
  }
  spdlog::info("capwatch {} controller, API server {} ({})", CapwatchVersion(), config->server,
               config->source);

  Metrics metrics;
  kube::TransportOptions transport;
  transport.qps = flags.qps;
  transport.burst = flags.burst;
  transport.on_response = [&metrics](kube::Verb verb, int code) {
    metrics.ApiRequest(std::string(kube::VerbName(verb)), code);
  };
  config->allow_insecure_http = flags.allow_insecure_api_server;
  auto client = kube::RestClient::Make(config.value(), transport);
  if (!client.ok()) {
    spdlog::error("cannot create the Kubernetes client: {}", client.error().ToString());
    return 1;
  }

  std::stop_source stop;
  std::jthread signal_waiter([&](std::stop_token own) {
    while (!own.stop_requested()) {
      timespec tick{0, 200'000'000};
      const int sig = sigtimedwait(&signals, nullptr, &tick);
      if (sig == SIGTERM || sig == SIGINT) {
        spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        stop.request_stop();
        return;
      }
    }
  });

  const std::string identity = Identity();
  controller::ControllerOptions options;
  options.workers = flags.workers;
  options.identity = identity;
  options.initial_grants = flags.initial_grants == "record" ? controller::InitialGrants::kRecord
                                                            : controller::InitialGrants::kAnnounce;
  options.unsynced_after = std::chrono::seconds(flags.unsynced_after);
  options.stalled_after = std::chrono::seconds(flags.stalled_after);
  options.pods_protobuf = flags.pod_encoding == "protobuf";
  options.admission.enabled = flags.enforcement;
  options.policy_reports = *controller::ParsePolicyReportMode(flags.policy_reports);
  controller::Controller ctl(*client.value(), kube::SystemClock(), metrics, options);

  controller::HttpEndpoints metrics_server, health_server;
  controller::MetricsAuthorizer authorizer(*client.value(), kube::SystemClock());
  controller::ServeOptions metrics_serve;
  metrics_serve.address = flags.metrics_address;
  if (flags.metrics_secure && flags.metrics_address != "0") {
    auto cert = flags.metrics_cert_dir.empty()
                    ? controller::MakeSelfSignedCert(ServingHosts())
                    : controller::LoadServingCert(flags.metrics_cert_dir);
    if (!cert.ok()) {
      spdlog::error("cannot serve metrics over HTTPS: {}", cert.error().ToString());
      return 1;
    }
    spdlog::info("metrics over HTTPS ({} certificate), scrapes authorized by the API server",
                 cert->source);
    metrics_serve.tls = std::move(cert).value();
    metrics_serve.authorize = [&authorizer](std::string_view authorization, std::string_view path) {
      auto decision = authorizer.Authorize(authorization, path);
      if (decision.code == 503) spdlog::warn("metrics scrape refused: {}", decision.message);
      return decision;
    };
  } else if (flags.metrics_address != "0") {
    spdlog::warn(
        "--metrics-secure=false: metrics are served over plain HTTP to anyone who can reach "
        "{}, and they map which namespaces run privileged workloads",
        flags.metrics_address);
  }
  Status served = metrics_server.Start(std::move(metrics_serve),
                                       {{"/metrics",
                                         [&](std::string& body, std::string& type) {
                                           body = metrics.Render();
                                           type = "text/plain; version=0.0.4; charset=utf-8";
                                           return 200;
                                         },
                                         /*needs_authorization=*/flags.metrics_secure}});
  if (served.ok()) {
    served = health_server.Start({flags.health_address, std::nullopt, nullptr},
                                 {{"/healthz",
                                   [&](std::string& body, std::string&) {
                                     std::string why;
                                     const bool healthy = ctl.Healthy(&why);
                                     body = healthy ? "ok\n" : why + "\n";
                                     return healthy ? 200 : 503;
                                   }},
                                  {"/readyz", [&](std::string& body, std::string&) {
                                     std::string why;
                                     const bool ready = ctl.Ready(&why);
                                     body = ready ? "ok\n" : why + "\n";
                                     return ready ? 200 : 503;
                                   }}});
  }
  if (!served.ok()) {
    spdlog::error("{}", served.error().ToString());
    return 1;
  }
  if (!metrics_server.url().empty())
    spdlog::info("serving metrics on {}/metrics", metrics_server.url());

  ctl.StartInformers(stop.get_token());
  while (!ctl.WaitForSync(stop.get_token(), std::chrono::seconds(30))) {
    if (stop.stop_requested()) return 0;
    spdlog::warn(
        "informers not synced after 30 s; still waiting (is the API server reachable, "
        "are the CRDs installed?)");
  }
  metrics.SetLastFullSync(std::chrono::system_clock::now());
  spdlog::info("caches synced");

  if (!flags.leader_elect) {
    metrics.SetLeader(true);
    ctl.RunWorkers(stop.get_token());
  } else {
    std::string ns = flags.lease_namespace;
    if (ns.empty()) {
      const char* pod_ns = std::getenv("POD_NAMESPACE");
      ns = pod_ns != nullptr ? pod_ns : "capwatch-system";
    }
    kube::LeaseLock lock(*client.value(), ns, flags.lease_name);
    kube::LeaderElectionOptions election;
    election.identity = identity;
    kube::LeaderElector elector(lock, kube::SystemClock(), election);
    // The fence: no write once the Lease may have passed to another replica, even while a
    // renewal still hangs (IsLeader turns false at the renew deadline).
    ctl.SetWriteFence([&elector] { return elector.IsLeader(); });
    spdlog::info("waiting to lead through Lease {}/{} as {}", ns, flags.lease_name, identity);
    kube::LeaderCallbacks callbacks;
    callbacks.on_started_leading = [&](std::stop_token leading) {
      spdlog::info("became the leader; writing reports");
      metrics.SetLeader(true);
      ctl.RunWorkers(leading);
    };
    callbacks.on_stopped_leading = [&] {
      metrics.SetLeader(false);
      spdlog::info("stopped leading; no more writes");
    };
    callbacks.on_new_leader = [](const std::string& leader) {
      spdlog::info("the leader is {}", leader);
    };
    elector.Run(stop.get_token(), callbacks);
    if (!stop.stop_requested()) {
      spdlog::error("lost the leader Lease; exiting so that a restart starts clean");
      return 1;
    }
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace capwatch
