// The controller's promises (docs/alerts.md, "Exactly once"), each proven on the in-memory
// FakeKubeClient with a FakeClock: no threads, no sleeps. The fixture drives the informers one
// reflector step at a time and processes the keys that are due.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <spdlog/spdlog.h>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/rfc3339.h"
#include "capabilities/catalog.h"
#include "controller/controller.h"
#include "enforce/admission_policy.h"
#include "fake_clock.h"
#include "fake_kube_client.h"
#include "kube/json_codec.h"
#include "policy/policy_parser.h"
#include "report/dangerous_grants.h"
#include "report/report_builder.h"

namespace capwatch::controller {
namespace {

using capwatch::testing::FakeKubeClient;
using kube::ApiStatus;
using kube::ResourceRef;
using kube::StatusReason;
using kube::Verb;
using nlohmann::json;
using ::testing::HasSubstr;

const ResourceRef kPods = ResourceRef::Pods();
const ResourceRef kReplicaSets = ResourceRef::ReplicaSets();
const ResourceRef kJobs = ResourceRef::Jobs();
const ResourceRef kEvents{"", "v1", "events", ""};

json Container(const std::string& name, std::vector<std::string> add) {
  return {{"name", name},
          {"image", "registry.example.com/app:1"},
          {"securityContext",
           {{"runAsNonRoot", true},
            {"allowPrivilegeEscalation", false},
            {"capabilities", {{"drop", {"ALL"}}, {"add", add}}}}}};
}

json Owner(const std::string& kind, const std::string& name, const std::string& uid) {
  const std::string api = kind == "ReplicaSet" || kind == "Deployment" ? "apps/v1" : "batch/v1";
  return {{"apiVersion", api}, {"kind", kind}, {"name", name}, {"uid", uid}, {"controller", true}};
}

json Pod(const std::string& ns, const std::string& name, json containers, json owner = nullptr) {
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}, {"namespace", ns}, {"labels", {{"app", "x"}}}}},
              {"spec", {{"containers", std::move(containers)}}}};
  if (!owner.is_null()) pod["metadata"]["ownerReferences"] = json::array({owner});
  return pod;
}

json Meta(const std::string& ns, const std::string& name, const std::string& uid,
          json owner = nullptr) {
  json o = {{"metadata", {{"name", name}, {"namespace", ns}, {"uid", uid}}}};
  if (!owner.is_null()) o["metadata"]["ownerReferences"] = json::array({owner});
  return o;
}

json Policy(const std::string& name, json spec = json::object()) {
  return {{"apiVersion", "capwatch.io/v1alpha1"},
          {"kind", "CapabilityPolicy"},
          {"metadata", {{"name", name}}},
          {"spec", spec}};
}

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The controller logs every report and grant (thousands here): errors only.
    spdlog::set_level(spdlog::level::err);
    api.Put(Namespaces(), {{"metadata", {{"name", "prod"}, {"labels", {{"audit", "on"}}}}}});
    api.Put(CapabilityPolicies(),
            Policy("default",
                   {{"match", {{"namespaceSelector", {{"matchLabels", {{"audit", "on"}}}}}}}}));
    Start();
  }

  void Start(ControllerOptions options = {}) {
    ctl.reset();
    metrics = std::make_unique<Metrics>();
    ctl = std::make_unique<Controller>(api, clock, *metrics, options);
    ctl->StepInformers(stop.get_token());  // lists
    ASSERT_TRUE(ctl->Synced());
    ctl->BeginWork();
  }

  // Informers catch up, the coalescing delay passes, due keys are processed; until quiet.
  void Settle() {
    for (int round = 0; round < 20; ++round) {
      ctl->StepInformers(stop.get_token());
      clock.Advance(std::chrono::seconds(2));
      const int n = ctl->ProcessReady(stop.get_token());
      ctl->StepInformers(stop.get_token());
      ctl->LeaderTick(stop.get_token());
      if (n == 0 && round > 0) return;
    }
  }

  // A Deployment's Pod: ReplicaSet `<deploy>-rs` owned by Deployment `<deploy>`.
  void DeploymentPod(const std::string& deploy, const std::string& pod,
                     std::vector<std::string> add, const std::string& ns = "prod") {
    if (!api.Object(ResourceRef::ReplicaSets(ns), deploy + "-rs")) {
      api.Put(ResourceRef::ReplicaSets(ns), Meta(ns, deploy + "-rs", deploy + "-rs-uid",
                                                 Owner("Deployment", deploy, deploy + "-uid")));
    }
    api.Put(ResourceRef::Pods(ns), Pod(ns, pod, {Container("app", std::move(add))},
                                       Owner("ReplicaSet", deploy + "-rs", deploy + "-rs-uid")));
  }

  // A few rounds of informers and due keys, 2 s apart, without waiting for quiet.
  void Rounds(int n) {
    for (int i = 0; i < n; ++i) {
      ctl->StepInformers(stop.get_token());
      clock.Advance(std::chrono::seconds(2));
      ctl->ProcessReady(stop.get_token());
    }
  }

  std::optional<json> Report(const std::string& name, const std::string& ns = "prod") {
    return api.Object(CapabilityReports(ns), name);
  }

  double Counted(const std::string& capability, const std::string& ns = "prod") {
    const std::string text = metrics->Render();
    const std::string series = "capwatch_dangerous_grants_total{capability=\"" + capability +
                               "\",namespace=\"" + ns + "\"} ";
    const auto at = text.find(series);
    return at == std::string::npos ? 0 : std::stod(text.substr(at + series.size()));
  }

  int GrantEvents() {
    int n = 0;
    for (const auto& e : api.Objects(kEvents)) {
      if (e.value("reason", "") == "DangerousCapabilityGranted") ++n;
    }
    return n;
  }

  std::string MetricLine(const std::string& prefix) {
    const std::string text = metrics->Render();
    const auto at = text.find(prefix);
    return at == std::string::npos ? "" : text.substr(at, text.find('\n', at) - at);
  }

  FakeKubeClient api;
  kube::testing::FakeClock clock;
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<Controller> ctl;
  std::stop_source stop;
};

TEST_F(ControllerTest, NewDangerousGrantIsReportedCountedAndEventedOnce) {
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  DeploymentPod("web", "web-2", {"SYS_ADMIN"});
  Settle();
  auto report = Report("deployment-web");
  ASSERT_TRUE(report);
  EXPECT_EQ((*report)["workload"]["kind"], "Deployment");
  EXPECT_EQ((*report)["workload"]["pods"], 2);
  EXPECT_EQ((*report)["metadata"]["annotations"][std::string(kGrantsAnnotation)],
            EncodeGrants({{"app", "SYS_ADMIN"}}));
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
  EXPECT_EQ(GrantEvents(), 1);
  EXPECT_EQ(api.Count(Verb::kPost, "capabilityreports"), 1);
  ctl->Housekeeping();
  EXPECT_THAT(MetricLine("capwatch_watch_events_total{resource=\"pods\",type=\"applied\"}"),
              HasSubstr("} 2"));
}

TEST_F(ControllerTest, RestartOverUnchangedClusterWritesAndCountsNothing) {
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  ASSERT_EQ(GrantEvents(), 1);
  api.ClearActions();
  Start();
  Settle();
  for (const auto& a : api.actions()) {
    EXPECT_EQ(a.verb, Verb::kGet) << "a restart wrote " << a.resource << " " << a.name;
  }
  EXPECT_EQ(Counted("SYS_ADMIN"), 0);
  EXPECT_EQ(GrantEvents(), 1);
}

TEST_F(ControllerTest, ScaleToZeroAndBackCountsNothingAgain) {
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  ASSERT_EQ(Counted("SYS_ADMIN"), 1);
  api.Remove(ResourceRef::Pods("prod"), "web-1");
  Settle();
  auto report = Report("deployment-web");
  ASSERT_TRUE(report) << "the report must outlive the workload's last Pod";
  EXPECT_EQ((*report)["workload"]["pods"], 0);
  EXPECT_FALSE(ctl->index().Contains({"prod", "deployment-web"}));
  DeploymentPod("web", "web-2", {"SYS_ADMIN"});
  Settle();
  EXPECT_EQ((*Report("deployment-web"))["workload"]["pods"], 1);
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
  EXPECT_EQ(GrantEvents(), 1);
}

TEST_F(ControllerTest, EveryRunOfACronJobIsOneWorkload) {
  api.Put(ResourceRef::Jobs("prod"),
          Meta("prod", "backup-1", "job-1", Owner("CronJob", "backup", "cron-uid")));
  api.Put(ResourceRef::Pods("prod"), Pod("prod", "backup-1-x", {Container("app", {"SYS_PTRACE"})},
                                         Owner("Job", "backup-1", "job-1")));
  Settle();
  ASSERT_TRUE(Report("cronjob-backup"));
  ASSERT_EQ(Counted("SYS_PTRACE"), 1);
  // The run's Job and Pod are cleaned up; the next run comes.
  api.Remove(ResourceRef::Pods("prod"), "backup-1-x");
  api.Remove(ResourceRef::Jobs("prod"), "backup-1");
  Settle();
  api.Put(ResourceRef::Jobs("prod"),
          Meta("prod", "backup-2", "job-2", Owner("CronJob", "backup", "cron-uid")));
  api.Put(ResourceRef::Pods("prod"), Pod("prod", "backup-2-x", {Container("app", {"SYS_PTRACE"})},
                                         Owner("Job", "backup-2", "job-2")));
  Settle();
  EXPECT_EQ(Counted("SYS_PTRACE"), 1);
  EXPECT_EQ(GrantEvents(), 1);
}

TEST_F(ControllerTest, PodSeenBeforeItsJobIsFiledUnderTheCronJobOnce) {
  // The Pod's watch delivers it before the Job's watch delivers the Job.
  api.Put(ResourceRef::Pods("prod"), Pod("prod", "nightly-1-x", {Container("app", {"SYS_ADMIN"})},
                                         Owner("Job", "nightly-1", "job-n1")));
  Rounds(3);
  EXPECT_FALSE(Report("job-nightly-1")) << "a Pod whose Job is not cached yet must wait for it";
  EXPECT_EQ(Counted("SYS_ADMIN"), 0);
  api.Put(ResourceRef::Jobs("prod"),
          Meta("prod", "nightly-1", "job-n1", Owner("CronJob", "nightly", "cron-n")));
  Settle();
  EXPECT_TRUE(Report("cronjob-nightly"));
  EXPECT_FALSE(Report("job-nightly-1"));
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
  EXPECT_EQ(GrantEvents(), 1);
}

TEST_F(ControllerTest, NamespaceThatUnmatchesAndRematchesCountsNothingAgain) {
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  ASSERT_EQ(Counted("SYS_ADMIN"), 1);
  api.Put(Namespaces(), {{"metadata", {{"name", "prod"}, {"labels", {{"audit", "off"}}}}}});
  Settle();
  auto report = Report("deployment-web");
  ASSERT_TRUE(report) << "the report keeps the grant memory while no policy matches";
  EXPECT_THAT((*report).value("note", ""), HasSubstr("no CapabilityPolicy matches"));
  EXPECT_TRUE((*report)["findings"].empty());
  EXPECT_EQ(MetricLine("capwatch_violations{"), "");
  api.Put(Namespaces(), {{"metadata", {{"name", "prod"}, {"labels", {{"audit", "on"}}}}}});
  Settle();
  EXPECT_FALSE((*Report("deployment-web"))["findings"].empty());
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
  EXPECT_EQ(GrantEvents(), 1);
}

TEST_F(ControllerTest, PodDeletedWithinTheCoalescingWindowIsStillCountedOnce) {
  api.Put(ResourceRef::Pods("prod"), Pod("prod", "blink", {Container("app", {"SYS_MODULE"})}));
  ctl->StepInformers(stop.get_token());  // ADDED
  api.Remove(ResourceRef::Pods("prod"), "blink");
  ctl->StepInformers(stop.get_token());  // DELETED, before the coalescing delay is over
  Settle();
  auto report = Report("pod-blink");
  ASSERT_TRUE(report) << "a Pod that lived 200 ms must still be audited";
  EXPECT_EQ((*report)["workload"]["pods"], 0);
  EXPECT_EQ(Counted("SYS_MODULE"), 1);
  EXPECT_EQ(GrantEvents(), 1);
  EXPECT_EQ(ctl->index().workloads(), 0u);
}

TEST_F(ControllerTest, WriteThatCommitsThenTimesOutIsAnnouncedOnceAfterTheRetry) {
  api.CommitThenFail(Verb::kPost, "capabilityreports",
                     ApiStatus::Transport("read timeout after the request was sent"));
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  ctl->StepInformers(stop.get_token());
  clock.Advance(std::chrono::seconds(2));
  ctl->ProcessReady(stop.get_token());
  EXPECT_TRUE(Report("deployment-web")) << "the fake committed the write";
  EXPECT_EQ(Counted("SYS_ADMIN"), 0) << "nothing is announced before the write is confirmed";
  Settle();  // the retry finds the committed report
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
  EXPECT_EQ(GrantEvents(), 1);
  EXPECT_EQ(api.Count(Verb::kPost, "capabilityreports", false), 1) << "no second create";
}

TEST_F(ControllerTest, CountFollowsAConfirmedWriteOnly) {
  api.FailNext(Verb::kPost, "capabilityreports",
               ApiStatus(500, StatusReason::kInternalError, "etcd"), 3);
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  ctl->StepInformers(stop.get_token());
  clock.Advance(std::chrono::seconds(2));
  ctl->ProcessReady(stop.get_token());
  EXPECT_EQ(Counted("SYS_ADMIN"), 0);
  EXPECT_EQ(GrantEvents(), 0);
  for (int i = 0; i < 5; ++i) Settle();
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
  EXPECT_EQ(GrantEvents(), 1);
}

TEST_F(ControllerTest, FailedEventIsRetriedWithBackoffAndPostedOnce) {
  api.FailNext(Verb::kPost, "events", ApiStatus(503, StatusReason::kServiceUnavailable, "down"), 2);
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
  for (int i = 0; i < 5 && GrantEvents() == 0; ++i) {
    clock.Advance(std::chrono::seconds(5));
    ctl->LeaderTick(stop.get_token());
  }
  EXPECT_EQ(GrantEvents(), 1);
  EXPECT_EQ(ctl->events().pending(), 0u);
  EXPECT_THAT(metrics->Render(), HasSubstr("capwatch_events_total{result=\"retried\"} 2"));
}

TEST_F(ControllerTest, TruncatedReportKeepsTheGrantsOfContainersItLeftOut) {
  json containers = json::array();
  for (int i = 0; i < 1500; ++i) {
    containers.push_back(
        Container("c" + std::to_string(i), {"SYS_ADMIN", "NET_ADMIN", "BPF", "PERFMON"}));
  }
  api.Put(ResourceRef::Pods("prod"), Pod("prod", "huge", containers));
  Settle();
  auto report = Report("pod-huge");
  ASSERT_TRUE(report);
  ASSERT_TRUE((*report)["summary"].contains("truncated")) << "the test needs a truncated report";
  const double counted = Counted("SYS_ADMIN");
  EXPECT_EQ(counted, 1500);
  Start();  // a restart reads the memory back from the annotation, not the cut containers
  Settle();
  EXPECT_EQ(Counted("SYS_ADMIN"), 0);
}

// A hundred containers that each add every capability are 1,200 new dangerous grants (12
// dangerous capabilities each): every one is counted, and the workload gets one Event that
// names them, not 1,200 posts that would spend the API budget the reports need (the
// hostile-load run: 20 such Pods kept the worker posting Events for minutes).
TEST_F(ControllerTest, ManyNewGrantsOfOneWorkloadAreOneEvent) {
  std::vector<std::string> every;
  for (int n = 0; n < kCapabilityCount; ++n) {
    every.emplace_back(CapabilityByNumber(n).name);
  }
  json containers = json::array();
  for (int i = 0; i < 100; ++i) containers.push_back(Container("c" + std::to_string(i), every));
  api.Put(ResourceRef::Pods("prod"), Pod("prod", "everything", containers));
  Settle();
  ASSERT_TRUE(Report("pod-everything"));
  EXPECT_EQ(Counted("SYS_ADMIN"), 100);
  EXPECT_EQ(Counted("BPF"), 100);
  ASSERT_EQ(GrantEvents(), 1);
  EXPECT_EQ(api.Count(Verb::kPost, "events"), 1);
  const json event = api.Objects(kEvents).front();
  const std::string message = event["message"];
  for (const char* cap :
       {"BPF", "DAC_OVERRIDE", "DAC_READ_SEARCH", "MAC_ADMIN", "MAC_OVERRIDE", "NET_ADMIN",
        "PERFMON", "SYS_ADMIN", "SYS_BOOT", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO"}) {
    EXPECT_THAT(message, HasSubstr(cap));
  }
  EXPECT_THAT(message, HasSubstr("100 containers"));
  EXPECT_THAT(message, HasSubstr("pod-everything"));
  EXPECT_LE(message.size(), 1024u) << message;
  // A later grant of the same workload is news again, in an Event of its own.
  containers.push_back(Container("late", {"SYS_ADMIN"}));
  api.Put(ResourceRef::Pods("prod"), Pod("prod", "everything", containers));
  Settle();
  EXPECT_EQ(Counted("SYS_ADMIN"), 101);
  EXPECT_EQ(GrantEvents(), 2);
}

TEST_F(ControllerTest, InvalidReportIsGivenUpNotRetriedForeverAndStatusesStillFlow) {
  api.FailNext(Verb::kPost, "capabilityreports",
               ApiStatus(422, StatusReason::kInvalid, "metadata.name: Invalid value"), 1000);
  api.Put(CapabilityPolicies(), Policy("typo", {{"allowedCapabilities", {"NET_BIND"}}}));
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  EXPECT_EQ(api.Count(Verb::kPost, "capabilityreports", false), 1) << "a 422 is not retried";
  EXPECT_THAT(metrics->Render(), HasSubstr("capwatch_reconciles_total{outcome=\"gave_up\"} 1"));
  EXPECT_THAT(metrics->Render(), HasSubstr("capwatch_report_writes_total{result=\"invalid\"} 1"));
  auto typo = api.Object(CapabilityPolicies(), "typo");
  ASSERT_TRUE(typo && typo->contains("status")) << "a failing key must not starve policy status";
  EXPECT_EQ((*typo)["status"]["conditions"][0]["status"], "False");
  EXPECT_THAT((*typo)["status"]["conditions"][0]["message"].get<std::string>(),
              HasSubstr("NET_BIND"));
  EXPECT_EQ((*api.Object(CapabilityPolicies(), "default"))["status"]["conditions"][0]["status"],
            "True");
}

TEST_F(ControllerTest, PolicyEditShowsInItsStatusUnderConstantPodChurn) {
  DeploymentPod("web", "web-0", {"NET_BIND_SERVICE"});
  Settle();
  auto policy = *api.Object(CapabilityPolicies(), "default");
  policy["spec"]["allowedCapabilities"] = {"NET_BIDN_SERVICE"};
  api.Put(CapabilityPolicies(), policy);
  // A new Pod every 500 ms: the queue is never idle.
  bool seen = false;
  for (int i = 1; i <= 10 && !seen; ++i) {
    DeploymentPod("web", "web-" + std::to_string(i), {"NET_BIND_SERVICE"});
    ctl->StepInformers(stop.get_token());
    clock.Advance(std::chrono::milliseconds(500));
    ctl->ProcessReady(stop.get_token());
    ctl->LeaderTick(stop.get_token());
    auto p = api.Object(CapabilityPolicies(), "default");
    seen = (*p)["status"]["conditions"][0]["status"] == "False";
    if (seen) {
      EXPECT_LE(i * 500, 5000) << "within 5 s";
    }
  }
  EXPECT_TRUE(seen);
}

TEST_F(ControllerTest, NoWriteWhileTheFenceIsClosed) {
  bool leader = false;
  ctl->SetWriteFence([&] { return leader; });
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  for (const auto& a : api.actions()) EXPECT_EQ(a.verb, Verb::kGet) << a.resource;
  EXPECT_EQ(Counted("SYS_ADMIN"), 0);
  leader = true;
  for (int i = 0; i < 3; ++i) Settle();
  EXPECT_TRUE(Report("deployment-web"));
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
}

TEST_F(ControllerTest, OrphanedReportIsDeletedWithPreconditions) {
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  // kubectl delete deployment web --cascade=orphan: the GC strips the report's owner and the
  // ReplicaSet's; the Pods now belong to the ReplicaSet.
  auto report = *Report("deployment-web");
  report["metadata"].erase("ownerReferences");
  api.Put(CapabilityReports("prod"), report);
  api.Put(ResourceRef::ReplicaSets("prod"), Meta("prod", "web-rs", "web-rs-uid"));
  api.Put(ResourceRef::Pods("prod"), Pod("prod", "web-1", {Container("app", {"SYS_ADMIN"})},
                                         Owner("ReplicaSet", "web-rs", "web-rs-uid")));
  Settle();
  EXPECT_FALSE(Report("deployment-web"));
  EXPECT_TRUE(Report("replicaset-web-rs"));
  bool with_preconditions = false;
  for (const auto& a : api.actions()) {
    if (a.verb == Verb::kDelete && a.resource == "capabilityreports") {
      with_preconditions = a.body.find("preconditions") != std::string::npos &&
                           a.body.find("resourceVersion") != std::string::npos &&
                           a.body.find("uid") != std::string::npos;
    }
  }
  EXPECT_TRUE(with_preconditions);
}

TEST_F(ControllerTest, DeleteNeverRemovesAReportWrittenSinceItWasRead) {
  api.Put(CapabilityReports("prod"),
          {{"apiVersion", "capwatch.io/v1alpha1"},
           {"kind", "CapabilityReport"},
           {"metadata",
            {{"name", "deployment-ghost"},
             {"namespace", "prod"},
             {"labels", {{"app.kubernetes.io/managed-by", "capwatch"}}}}},
           {"workload", {{"kind", "Deployment"}, {"name", "ghost"}, {"pods", 1}}}});
  ctl->StepInformers(stop.get_token());
  // Another writer replaces it between our read and our delete.
  api.SetReactor([&](const kube::Request& r) -> std::optional<ApiStatus> {
    if (r.verb == Verb::kDelete) {
      api.SetReactor(nullptr);
      auto again = *api.Object(CapabilityReports("prod"), "deployment-ghost");
      again["metadata"]["ownerReferences"] = json::array({Owner("Deployment", "ghost", "new-uid")});
      api.Put(CapabilityReports("prod"), again);
    }
    return std::nullopt;
  });
  ctl->BeginWork();
  clock.Advance(std::chrono::seconds(2));
  ctl->ProcessReady(stop.get_token());
  EXPECT_TRUE(Report("deployment-ghost")) << "the precondition must refuse the delete";
}

TEST_F(ControllerTest, UserSpellingSurvivesIntoTheReport) {
  DeploymentPod("web", "web-1", {"cap_sys_ptrace"});
  Settle();
  auto report = Report("deployment-web");
  ASSERT_TRUE(report);
  EXPECT_EQ(Counted("SYS_PTRACE"), 1);
}

TEST_F(ControllerTest, FirstStartCanRecordExistingGrantsSilently) {
  DeploymentPod("old", "old-1", {"SYS_ADMIN"});
  ControllerOptions options;
  options.initial_grants = InitialGrants::kRecord;
  Start(options);
  Settle();
  EXPECT_TRUE(Report("deployment-old"));
  EXPECT_EQ(Counted("SYS_ADMIN"), 0);
  EXPECT_EQ(GrantEvents(), 0);
  EXPECT_TRUE(ctl->initial_pass_done());
  DeploymentPod("new", "new-1", {"SYS_ADMIN"});  // after the first pass: news
  Settle();
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
  EXPECT_EQ(GrantEvents(), 1);
  // A later start is not a first start: a grant made while capwatch was down is announced.
  DeploymentPod("late", "late-1", {"SYS_ADMIN"});
  Start(options);
  Settle();
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
}

TEST_F(ControllerTest, MemoryReturnsToEmptyAfterChurningManyWorkloads) {
  api.Put(Namespaces(), {{"metadata", {{"name", "scratch"}}}});  // no policy matches it
  const auto scratch = ResourceRef::Pods("scratch");
  constexpr int kKeys = 100'000;
  constexpr int kBatch = 10'000;
  for (int start = 0; start < kKeys; start += kBatch) {
    for (int i = start; i < start + kBatch; ++i) {
      api.Put(scratch, Pod("scratch", "p" + std::to_string(i), {Container("app", {})}));
    }
    ctl->StepInformers(stop.get_token());
    for (int i = start; i < start + kBatch; ++i) api.Remove(scratch, "p" + std::to_string(i));
    ctl->StepInformers(stop.get_token());
    clock.Advance(std::chrono::seconds(2));
    ctl->ProcessReady(stop.get_token());
  }
  // And some that did get reports, removed by the garbage collector with their Pods.
  for (int i = 0; i < 200; ++i) {
    api.Put(ResourceRef::Pods("prod"),
            Pod("prod", "q" + std::to_string(i), {Container("app", {"SYS_ADMIN"})}));
  }
  Settle();
  for (int i = 0; i < 200; ++i) {
    api.Remove(ResourceRef::Pods("prod"), "q" + std::to_string(i));
    api.Remove(CapabilityReports("prod"), "pod-q" + std::to_string(i));
  }
  Settle();
  ctl->Housekeeping();
  EXPECT_EQ(ctl->index().records(), 0u);
  EXPECT_EQ(ctl->reconciler().tracked(), 0u);
  EXPECT_EQ(ctl->ledger().pending(), 0u);
  EXPECT_EQ(ctl->statuses().tracked_workloads(), 0u);
  EXPECT_EQ(ctl->tracked_keys(), 0u);
  EXPECT_EQ(ctl->queue().Len() + ctl->queue().Waiting(), 0u);
  EXPECT_EQ(MetricLine("capwatch_workloads{"), "");
}

TEST_F(ControllerTest, FollowerForgetsDepartedPodsItNeverEvaluates) {
  ctl.reset();
  Controller follower(api, clock, *metrics, {});
  follower.StepInformers(stop.get_token());
  for (int i = 0; i < 100; ++i) {
    api.Put(ResourceRef::Pods("prod"),
            Pod("prod", "f" + std::to_string(i), {Container("app", {})}));
  }
  follower.StepInformers(stop.get_token());
  for (int i = 0; i < 100; ++i) api.Remove(ResourceRef::Pods("prod"), "f" + std::to_string(i));
  follower.StepInformers(stop.get_token());
  EXPECT_GT(follower.index().records(), 0u);
  clock.Advance(std::chrono::minutes(11));
  follower.Housekeeping();
  EXPECT_EQ(follower.index().records(), 0u);
}

TEST_F(ControllerTest, NamespaceDeletedTakesItsCounterSeriesAlong) {
  api.Put(Namespaces(), {{"metadata", {{"name", "tmp"}, {"labels", {{"audit", "on"}}}}}});
  DeploymentPod("web", "web-1", {"SYS_ADMIN"}, "tmp");
  Settle();
  ASSERT_EQ(Counted("SYS_ADMIN", "tmp"), 1);
  // The namespace controller removes what was in it, then the namespace.
  api.Remove(ResourceRef::Pods("tmp"), "web-1");
  api.Remove(ResourceRef::ReplicaSets("tmp"), "web-rs");
  api.Remove(CapabilityReports("tmp"), "deployment-web");
  Settle();
  api.Remove(Namespaces(), "tmp");
  Settle();
  EXPECT_THAT(metrics->Render(), ::testing::Not(HasSubstr("namespace=\"tmp\"")));
}

TEST_F(ControllerTest, ReadyzFailsWhenAnInformerStopsWatchingAndHealthzWhenWorkersStall) {
  ControllerOptions options;
  options.unsynced_after = std::chrono::seconds(30);
  options.stalled_after = std::chrono::seconds(60);
  Start(options);
  ctl->Housekeeping();
  std::string why;
  EXPECT_TRUE(ctl->Ready(&why)) << why;
  // Every watch and list of Pods now fails: the informer backs off and never watches.
  api.SetReactor([](const kube::Request& r) -> std::optional<ApiStatus> {
    if (r.path.find("/pods") != std::string::npos) {
      return ApiStatus(403, StatusReason::kForbidden, "pods is forbidden");
    }
    return std::nullopt;
  });
  for (int i = 0; i < 4; ++i) {
    ctl->StepInformers(stop.get_token());
    clock.Advance(std::chrono::seconds(10));
    ctl->Housekeeping();
  }
  EXPECT_FALSE(ctl->Ready(&why));
  EXPECT_THAT(why, HasSubstr("pods"));
  api.SetReactor(nullptr);

  EXPECT_TRUE(ctl->Healthy(&why)) << why;
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  ctl->StepInformers(stop.get_token());
  ctl->StepInformers(stop.get_token());
  clock.Advance(std::chrono::seconds(61));  // keys are ready and no worker takes them
  EXPECT_FALSE(ctl->Healthy(&why));
  EXPECT_THAT(why, HasSubstr("no reconcile finished"));
  ctl->ProcessReady(stop.get_token());
  EXPECT_TRUE(ctl->Healthy(&why)) << why;
}

TEST_F(ControllerTest, StopWithALargeBacklogReturnsWithoutDrainingIt) {
  for (int i = 0; i < 10'000; ++i) {
    api.Put(ResourceRef::Pods("prod"),
            Pod("prod", "b" + std::to_string(i), {Container("app", {})}));
  }
  ctl.reset();
  ControllerOptions options;
  options.coalesce = std::chrono::milliseconds(0);
  Controller c(api, clock, *metrics, options);
  c.StepInformers(stop.get_token());
  std::stop_source leading;
  std::jthread workers([&] { c.RunWorkers(leading.get_token()); });
  while (api.Count(Verb::kPost, "capabilityreports") < 10) std::this_thread::yield();
  leading.request_stop();
  workers.join();
  EXPECT_LT(api.Count(Verb::kPost, "capabilityreports", false), 10'000)
      << "the workers drained the whole backlog instead of stopping";
}

TEST_F(ControllerTest, ExpiredExemptionTurnsTheFindingBackOnWithoutAnyEvent) {
  // The exemption expires an hour after the fake clock's wall time now.
  const auto expires = clock.WallNow() + std::chrono::hours(1);
  const std::time_t t = std::chrono::system_clock::to_time_t(expires);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  auto policy = *api.Object(CapabilityPolicies(), "default");
  policy["spec"]["exemptions"] = {{{"name", "debug"},
                                   {"capabilities", {"SYS_PTRACE"}},
                                   {"reason", "profiling"},
                                   {"expires", text}}};
  api.Put(CapabilityPolicies(), policy);
  DeploymentPod("web", "web-1", {"SYS_PTRACE"});
  Settle();
  auto report = Report("deployment-web");
  ASSERT_TRUE(report);
  EXPECT_EQ((*report)["summary"]["violations"], 0) << report->dump();
  EXPECT_EQ(Counted("SYS_PTRACE"), 0);
  clock.Advance(std::chrono::minutes(61));  // nothing changes in the cluster
  ctl->ProcessReady(stop.get_token());
  ctl->StepInformers(stop.get_token());
  report = Report("deployment-web");
  EXPECT_GT((*report)["summary"]["violations"].get<int>(), 0) << "the expired exemption";
  EXPECT_EQ(Counted("SYS_PTRACE"), 1) << "an expired exemption is a grant again";
}

TEST_F(ControllerTest, DeletingAWorkloadWhosePodsTerminateSlowlyAnnouncesNothing) {
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  ASSERT_EQ(Counted("SYS_ADMIN"), 1);
  // kubectl delete deployment web: the garbage collector removes the ReplicaSet and the
  // report; the Pod lingers while it terminates (deletionTimestamp set), then goes.
  api.Remove(ResourceRef::ReplicaSets("prod"), "web-rs");
  api.Remove(CapabilityReports("prod"), "deployment-web");
  auto pod = *api.Object(ResourceRef::Pods("prod"), "web-1");
  pod["metadata"]["deletionTimestamp"] = "2026-11-29T10:05:00Z";
  api.Put(ResourceRef::Pods("prod"), pod);
  Rounds(3);
  clock.Advance(std::chrono::seconds(40));  // past the owner wait
  Rounds(3);
  api.Remove(ResourceRef::Pods("prod"), "web-1");
  Settle();
  EXPECT_FALSE(Report("replicaset-web-rs"))
      << "the terminating Pod was filed under its vanished ReplicaSet";
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
  EXPECT_EQ(GrantEvents(), 1);
}

TEST_F(ControllerTest, AReportDeletedByHandComesBackWithoutAnnouncingAgain) {
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  ASSERT_EQ(Counted("SYS_ADMIN"), 1);
  api.Remove(CapabilityReports("prod"), "deployment-web");  // kubectl delete caprep
  Settle();
  auto report = Report("deployment-web");
  ASSERT_TRUE(report) << "the workload still runs: its report comes back";
  EXPECT_EQ((*report)["metadata"]["annotations"][std::string(kGrantsAnnotation)],
            EncodeGrants({{"app", "SYS_ADMIN"}}));
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
  EXPECT_EQ(GrantEvents(), 1);
}

TEST_F(ControllerTest, APodWithAnUnreadableFieldIsStillAuditedWithACriticalFinding) {
  json container = Container("app", {"SYS_ADMIN"});
  container["securityContext"]["capabilities"]["add"].push_back(7);  // not a string
  api.Put(ResourceRef::Pods("prod"), Pod("prod", "odd", {container}));
  Settle();
  auto report = Report("pod-odd");
  ASSERT_TRUE(report) << "a Pod capwatch cannot read fully must still be audited";
  std::string rules;
  for (const auto& f : (*report)["findings"]) {
    rules += f.value("rule", "") + "/" + f.value("severity", "") + " ";
  }
  EXPECT_THAT(rules, HasSubstr("unreadable-field/critical"));
  EXPECT_THAT(rules, HasSubstr("dangerous-capability/critical")) << "what could be read counts";
  EXPECT_EQ(Counted("SYS_ADMIN"), 1);
}

// spec.enforcement: the ValidatingAdmissionPolicy and Binding the controller keeps per policy.
class EnforcementTest : public ControllerTest {
 protected:
  const ResourceRef kVaps = ValidatingAdmissionPolicies();
  const ResourceRef kBindings = ValidatingAdmissionPolicyBindings();

  // The default policy, enforced with `action`, plus `spec` merged in.
  json Enforce(const std::string& action, const json& spec = json::object()) {
    json policy = *api.Object(CapabilityPolicies(), "default");
    policy["spec"]["enforcement"] = {{"action", action}};
    policy["spec"]["forbiddenCapabilities"] = {"SYS_ADMIN"};
    policy["spec"].update(spec);
    return api.Put(CapabilityPolicies(), policy);
  }

  // As the API server's validatingadmissionpolicy-status controller writes it.
  void TypeCheck(json warnings = json::array()) {
    json vap = *api.Object(kVaps, "capwatch-default");
    vap["status"] = {{"observedGeneration", vap["metadata"]["generation"]},
                     {"typeChecking", {{"expressionWarnings", std::move(warnings)}}}};
    api.Put(kVaps, vap);
  }

  json Enforced() {
    const json policy = *api.Object(CapabilityPolicies(), "default");
    const json& conditions = kube::JsonAt(policy, {"status", "conditions"});
    for (const auto& c : conditions.is_array() ? conditions : json::array()) {
      if (kube::JsonStringAt(c, {"type"}) == "Enforced") return c;
    }
    return nullptr;
  }

  int AdmissionWrites() {
    int n = 0;
    for (const auto& a : api.actions()) {
      if ((a.resource == kVaps.resource || a.resource == kBindings.resource) &&
          a.verb != Verb::kGet) {
        ++n;
      }
    }
    return n;
  }

  // Past the resync, then one leader tick.
  void Resync() {
    clock.Advance(std::chrono::seconds(61));
    ctl->StepInformers(stop.get_token());
    ctl->LeaderTick(stop.get_token());
  }
};

TEST_F(EnforcementTest, APolicyWithEnforcementGetsTheGeneratedObjectsOwnedByIt) {
  const json policy = Enforce("Warn");
  Settle();
  auto vap = api.Object(kVaps, "capwatch-default");
  auto binding = api.Object(kBindings, "capwatch-default");
  ASSERT_TRUE(vap && binding);
  for (const json* o : {&*vap, &*binding}) {
    const json& owner = (*o)["metadata"]["ownerReferences"][0];
    EXPECT_EQ(owner["kind"], "CapabilityPolicy");
    EXPECT_EQ(owner["uid"], policy["metadata"]["uid"]) << "deleted with the policy";
    EXPECT_EQ((*o)["metadata"]["labels"]["app.kubernetes.io/managed-by"], "capwatch");
  }
  // What capwatch enforce prints for the same policy.
  auto parsed = ParsePolicy(YAML::Load(policy.dump()));
  ASSERT_TRUE(parsed.ok());
  const auto offline = GenerateAdmission(parsed.value(), EnforcementAction::kWarn, clock.WallNow());
  EXPECT_EQ((*vap)["spec"], offline.policy["spec"]);
  EXPECT_EQ((*binding)["spec"]["validationActions"], json::array({"Warn"}));
  const json status = (*api.Object(CapabilityPolicies(), "default"))["status"];
  EXPECT_EQ(status["enforcement"]["validatingAdmissionPolicy"], "capwatch-default");
  EXPECT_EQ(status["enforcement"]["action"], "Warn");
  EXPECT_EQ(Enforced()["status"], "True");
  EXPECT_EQ(Enforced()["reason"], "Written") << "not yet type-checked";
  // The API server's type checking warns: the status says of what.
  TypeCheck({{{"fieldRef", "spec.validations[0].expression"}, {"warning", "no such key"}}});
  clock.Advance(std::chrono::seconds(3));
  ctl->StepInformers(stop.get_token());
  ctl->LeaderTick(stop.get_token());
  EXPECT_EQ(Enforced()["status"], "False");
  EXPECT_EQ(Enforced()["reason"], "TypeCheckWarnings");
  EXPECT_THAT(Enforced()["message"].get<std::string>(),
              HasSubstr("spec.validations[0].expression: no such key"));
}

TEST_F(EnforcementTest, ARestartOverEnforcedPoliciesWritesNothing) {
  Enforce("Deny");
  Settle();
  TypeCheck();
  clock.Advance(std::chrono::seconds(3));
  Settle();
  ASSERT_EQ(Enforced()["reason"], "InForce");
  api.ClearActions();
  Start();
  Settle();
  Resync();
  EXPECT_EQ(AdmissionWrites(), 0);
  EXPECT_EQ(api.Count(Verb::kPatch, "capabilitypolicies"), 0) << "the statuses are unchanged";
}

TEST_F(EnforcementTest, AnObjectEditedOrDeletedByHandIsRestoredOnTheResync) {
  Enforce("Deny");
  Settle();
  json vap = *api.Object(kVaps, "capwatch-default");
  vap["spec"]["failurePolicy"] = "Ignore";  // the hash annotation kept
  api.Put(kVaps, vap);
  api.Remove(kBindings, "capwatch-default");
  Resync();
  EXPECT_EQ((*api.Object(kVaps, "capwatch-default"))["spec"]["failurePolicy"], "Fail");
  EXPECT_TRUE(api.Object(kBindings, "capwatch-default"));
}

TEST_F(EnforcementTest, AnEditMadeWhileCapwatchWasDownIsRestoredAtStart) {
  Enforce("Deny");
  Settle();
  ctl.reset();
  json vap = *api.Object(kVaps, "capwatch-default");
  vap["spec"]["failurePolicy"] = "Ignore";
  vap["metadata"]["managedFields"] = {{{"manager", "capwatch"}, {"operation", "Update"}},
                                      {{"manager", "kubectl-edit"}, {"operation", "Update"}}};
  api.Put(kVaps, vap);
  Start();
  Settle();
  EXPECT_EQ((*api.Object(kVaps, "capwatch-default"))["spec"]["failurePolicy"], "Fail");
}

TEST_F(EnforcementTest, AnInvalidEditKeepsTheLastObjectsAndRemovingEnforcementDeletesThem) {
  Enforce("Deny");
  Settle();
  const json before = *api.Object(kVaps, "capwatch-default");
  json policy = *api.Object(CapabilityPolicies(), "default");
  policy["spec"]["allowedCapabilities"] = {"NET_BIND"};  // a typo: the policy is invalid
  api.Put(CapabilityPolicies(), policy);
  Settle();
  EXPECT_EQ((*api.Object(kVaps, "capwatch-default"))["spec"], before["spec"]) << "still enforced";
  EXPECT_EQ(Enforced()["reason"], "InvalidPolicy");
  EXPECT_THAT(Enforced()["message"].get<std::string>(), HasSubstr("enforce generation 2"));
  policy = *api.Object(CapabilityPolicies(), "default");
  policy["spec"].erase("allowedCapabilities");
  policy["spec"].erase("enforcement");
  api.Put(CapabilityPolicies(), policy);
  Settle();
  EXPECT_FALSE(api.Object(kVaps, "capwatch-default"));
  EXPECT_FALSE(api.Object(kBindings, "capwatch-default"));
  const json status = (*api.Object(CapabilityPolicies(), "default"))["status"];
  EXPECT_FALSE(status.contains("enforcement")) << status.dump();
  EXPECT_TRUE(Enforced().is_null());
}

TEST_F(EnforcementTest, AnExemptionIsLeftOutOfTheObjectsAtItsExpiry) {
  const auto expires =
      std::chrono::floor<std::chrono::seconds>(clock.WallNow()) + std::chrono::hours(1);
  const std::string text = FormatRfc3339(expires);
  Enforce("Deny", {{"exemptions",
                    {{{"name", "debug"},
                      {"capabilities", {"SYS_ADMIN"}},
                      {"reason", "profiling"},
                      {"expires", text}}}}});
  Settle();
  auto has_exemption = [&] {
    return api.Object(kVaps, "capwatch-default")->dump().find("variables.exemption0") !=
           std::string::npos;
  };
  EXPECT_TRUE(has_exemption());
  EXPECT_EQ((*api.Object(CapabilityPolicies(), "default"))["status"]["enforcement"]["nextChange"],
            text);
  clock.Advance(std::chrono::minutes(59));
  ctl->LeaderTick(stop.get_token());
  EXPECT_TRUE(has_exemption());
  clock.Advance(std::chrono::minutes(1));  // nothing changes in the cluster
  ctl->LeaderTick(stop.get_token());
  EXPECT_FALSE(has_exemption()) << "expired: the API server denies again";
}

TEST_F(EnforcementTest, AnObjectOfSomeoneElsesIsNotOverwritten) {
  const json theirs = api.Put(kVaps, {{"metadata", {{"name", "capwatch-default"}}},
                                      {"spec", {{"failurePolicy", "Ignore"}}}});
  Enforce("Deny");
  Settle();
  EXPECT_EQ((*api.Object(kVaps, "capwatch-default"))["spec"], theirs["spec"]);
  EXPECT_FALSE(api.Object(kBindings, "capwatch-default"));
  EXPECT_EQ(Enforced()["reason"], "WriteFailed");
  EXPECT_THAT(Enforced()["message"].get<std::string>(), HasSubstr("is not capwatch's"));
  Resync();
  EXPECT_TRUE(api.Object(kVaps, "capwatch-default")) << "nor deleted";
}

TEST_F(EnforcementTest, AFailedWriteIsRetriedAndShownMeanwhile) {
  api.FailNext(Verb::kPost, "validatingadmissionpolicies",
               ApiStatus(503, StatusReason::kServiceUnavailable, "etcd is down"));
  Enforce("Deny");
  Settle();
  EXPECT_EQ(Enforced()["reason"], "WriteFailed");
  EXPECT_THAT(Enforced()["message"].get<std::string>(), HasSubstr("etcd is down"));
  clock.Advance(std::chrono::seconds(6));
  Settle();
  EXPECT_TRUE(api.Object(kVaps, "capwatch-default"));
  EXPECT_EQ(Enforced()["reason"], "Written");
}

TEST_F(EnforcementTest, AnAPIServerWithoutAdmissionPoliciesIsNamedAndNotPolledEverySeconds) {
  api.FailNext(Verb::kGet, "validatingadmissionpolicies",
               ApiStatus(404, StatusReason::kNotFound, "the server could not find the resource"),
               1000);
  Enforce("Deny");
  Settle();
  EXPECT_EQ(Enforced()["reason"], "WriteFailed");
  EXPECT_THAT(Enforced()["message"].get<std::string>(), HasSubstr("Kubernetes 1.30"));
  const int before = api.Count(Verb::kGet, "validatingadmissionpolicies", false);
  for (int i = 0; i < 25; ++i) {  // 50 s of leader ticks
    clock.Advance(std::chrono::seconds(2));
    ctl->LeaderTick(stop.get_token());
  }
  EXPECT_LE(api.Count(Verb::kGet, "validatingadmissionpolicies", false) - before, 1)
      << "once a resync, not every retry";
}

TEST_F(EnforcementTest, TurnedOffItReadsAndWritesNothingAndSaysSo) {
  ControllerOptions options;
  options.admission.enabled = false;
  Start(options);
  api.ClearActions();
  Enforce("Deny");
  Settle();
  Resync();
  EXPECT_EQ(api.Count(Verb::kGet, "validatingadmissionpolicies", false), 0);
  EXPECT_FALSE(api.Object(kVaps, "capwatch-default"));
  EXPECT_EQ(Enforced()["reason"], "EnforcementDisabled");
}

// --policy-reports: each CapabilityReport projected into a shared format.
class PolicyReportsTest : public ControllerTest {
 protected:
  const ResourceRef kReports{"openreports.io", "v1alpha1", "reports", "prod"};
  const ResourceRef kPolicyReports{"wgpolicyk8s.io", "v1alpha2", "policyreports", "prod"};

  void SetUp() override {
    ControllerTest::SetUp();
    StartProjecting();
  }
  void StartProjecting() {
    ControllerOptions options;
    options.policy_reports = PolicyReportMode::kAuto;
    Start(options);
  }
  // Creates and server-side applies.
  int Writes(const std::string& resource = "reports") {
    return api.Count(Verb::kPost, resource) + api.Count(Verb::kPatch, resource);
  }
};

TEST_F(PolicyReportsTest, TheReportAppearsInTheSharedFormatOwnedByTheCapabilityReport) {
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  auto capability_report = Report("deployment-web");
  auto shared = api.Object(kReports, "capwatch-deployment-web");
  ASSERT_TRUE(capability_report && shared);
  EXPECT_EQ((*shared)["source"], "capwatch");
  EXPECT_EQ((*shared)["scope"]["kind"], "Deployment");
  EXPECT_EQ((*shared)["scope"]["name"], "web");
  EXPECT_EQ((*shared)["metadata"]["ownerReferences"][0]["uid"],
            (*capability_report)["metadata"]["uid"]);
  bool found = false;
  for (const auto& r : (*shared)["results"]) {
    found = found || (r["result"] == "fail" && r["properties"]["capability"] == "SYS_ADMIN" &&
                      r["properties"]["container"] == "app" && r["policy"] == "default");
  }
  EXPECT_TRUE(found) << shared->dump(2);
  EXPECT_EQ((*shared)["summary"]["fail"], (*capability_report)["summary"]["violations"]);
}

TEST_F(PolicyReportsTest, WrittenOnlyOnChangeAndNotAtAllOnARestart) {
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  ASSERT_EQ(Writes(), 1);
  DeploymentPod("web", "web-2", {"SYS_ADMIN"});  // the same content
  Settle();
  EXPECT_EQ(Writes(), 1);
  api.ClearActions();
  StartProjecting();
  Settle();
  EXPECT_EQ(Writes(), 0) << "a restart finds them as they should be";
  // The report follows the newest Pod (here, with equal times, the first by name).
  DeploymentPod("web", "web-0", {"SYS_ADMIN", "NET_ADMIN"});
  Settle();
  EXPECT_EQ(Writes(), 1) << "a new finding";
}

TEST_F(PolicyReportsTest, WithoutTheOpenReportsCrdTheOlderPolicyReportIsWritten) {
  api.FailNext(Verb::kGet, "reports", ApiStatus(404, StatusReason::kNotFound, "not found"), 100);
  StartProjecting();
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  EXPECT_FALSE(api.Object(kReports, "capwatch-deployment-web"));
  auto shared = api.Object(kPolicyReports, "capwatch-deployment-web");
  ASSERT_TRUE(shared);
  EXPECT_EQ((*shared)["kind"], "PolicyReport");
  EXPECT_FALSE(shared->contains("source"));
  EXPECT_EQ((*shared)["results"][0]["source"], "capwatch");
}

TEST_F(PolicyReportsTest, WithNeitherCrdTheReportIsStillWrittenAndTheProjectionRetried) {
  api.FailNext(Verb::kGet, "reports", ApiStatus(404, StatusReason::kNotFound, "not found"), 1);
  api.FailNext(Verb::kGet, "policyreports", ApiStatus(404, StatusReason::kNotFound, "nf"), 1);
  StartProjecting();
  for (int i = 0; i < 20; ++i) {
    DeploymentPod("app" + std::to_string(i), "app" + std::to_string(i) + "-1", {"SYS_ADMIN"});
  }
  Settle();
  EXPECT_TRUE(Report("deployment-app0")) << "the CapabilityReport does not wait for it";
  EXPECT_THAT(metrics->Render(), HasSubstr("capwatch_reconciles_total{outcome=\"retry\"}"));
  EXPECT_EQ(api.Count(Verb::kGet, "reports", false), 1)
      << "20 workloads retrying cost one look for the CRD, not one each";
  clock.Advance(std::chrono::seconds(61));  // the CRD installed meanwhile
  Settle();
  EXPECT_TRUE(api.Object(kReports, "capwatch-deployment-app0"));
  EXPECT_TRUE(api.Object(kReports, "capwatch-deployment-app19"));
}

TEST_F(PolicyReportsTest, AReportDeletedWithItsProjectionBringsBothBack) {
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  // kubectl delete caprep: the garbage collector deletes the projection it owns.
  api.Remove(CapabilityReports("prod"), "deployment-web");
  api.Remove(kReports, "capwatch-deployment-web");
  Settle();
  auto capability_report = Report("deployment-web");
  auto shared = api.Object(kReports, "capwatch-deployment-web");
  ASSERT_TRUE(capability_report && shared);
  EXPECT_EQ((*shared)["metadata"]["ownerReferences"][0]["uid"],
            (*capability_report)["metadata"]["uid"])
      << "owned by the new report";
}

TEST_F(PolicyReportsTest, OffWritesNoneAndListsNone) {
  Start();
  api.ClearActions();
  DeploymentPod("web", "web-1", {"SYS_ADMIN"});
  Settle();
  EXPECT_EQ(api.Count(Verb::kGet, "reports", false) + api.Count(Verb::kGet, "policyreports", false),
            0);
  EXPECT_FALSE(api.Object(kReports, "capwatch-deployment-web"));
}

}  // namespace
}  // namespace capwatch::controller
