#include "kube/lease_lock.h"

#include <condition_variable>
#include <thread>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "kube/time_format.h"

namespace capwatch::kube {
namespace {

using nlohmann::json;

json LeaseJson(const std::string& ns, const std::string& name, const LeaseRecord& r,
               const std::string& resource_version) {
  json spec = {{"holderIdentity", r.holder_identity},
               {"leaseDurationSeconds", r.lease_duration_seconds},
               {"leaseTransitions", r.lease_transitions}};
  if (!r.acquire_time.empty()) spec["acquireTime"] = r.acquire_time;
  if (!r.renew_time.empty()) spec["renewTime"] = r.renew_time;
  json metadata = {{"name", name}, {"namespace", ns}};
  if (!resource_version.empty()) metadata["resourceVersion"] = resource_version;
  return {{"apiVersion", "coordination.k8s.io/v1"},
          {"kind", "Lease"},
          {"metadata", metadata},
          {"spec", spec}};
}

bool ParseLease(const std::string& body, LeaseRecord& out, std::string& rv) {
  auto doc = json::parse(body, nullptr, false);
  if (!doc.is_object()) return false;
  if (auto md = doc.find("metadata"); md != doc.end() && md->is_object()) {
    rv = md->value("resourceVersion", "");
  }
  auto spec = doc.find("spec");
  if (spec == doc.end() || !spec->is_object()) {
    out = {};
    return true;
  }
  auto str = [&](const char* k) {
    auto it = spec->find(k);
    return it != spec->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto num = [&](const char* k) {
    auto it = spec->find(k);
    return it != spec->end() && it->is_number_integer() ? it->get<int>() : 0;
  };
  out.holder_identity = str("holderIdentity");
  out.lease_duration_seconds = num("leaseDurationSeconds");
  out.acquire_time = str("acquireTime");
  out.renew_time = str("renewTime");
  out.lease_transitions = num("leaseTransitions");
  return true;
}

}  // namespace

LeaseLock::LeaseLock(KubeClient& client, std::string namespace_name, std::string name)
    : client_(client),
      resource_(ResourceRef::Leases(std::move(namespace_name))),
      name_(std::move(name)) {}

std::string LeaseLock::Describe() const { return resource_.Describe(name_); }

ApiStatus LeaseLock::Remember(const Result<std::string>& response) {
  if (!response.ok()) return response.error();
  LeaseRecord ignored;
  if (!ParseLease(response.value(), ignored, resource_version_)) {
    return ApiStatus(0, StatusReason::kDecode, Describe() + ": response is not a Lease");
  }
  return ApiStatus::Ok();
}

Result<LeaseRecord> LeaseLock::Get(const std::stop_token& stop) {
  auto r = client_.Get(resource_, name_, {}, stop);
  if (!r.ok()) return r.error();
  LeaseRecord record;
  if (!ParseLease(r.value(), record, resource_version_)) {
    return ApiStatus(0, StatusReason::kDecode, Describe() + ": response is not a Lease");
  }
  return record;
}

ApiStatus LeaseLock::Create(const LeaseRecord& record, const std::stop_token& stop) {
  return Remember(client_.Create(
      resource_, LeaseJson(resource_.namespace_name, name_, record, {}).dump(), {}, stop));
}

ApiStatus LeaseLock::Update(const LeaseRecord& record, const std::stop_token& stop) {
  return Remember(client_.Update(
      resource_, name_,
      LeaseJson(resource_.namespace_name, name_, record, resource_version_).dump(), {}, stop));
}

LeaderElector::LeaderElector(LeaseLock& lock, Clock& clock, LeaderElectionOptions options)
    : lock_(lock), clock_(clock), options_(std::move(options)), jitter_(clock, {}) {}

bool LeaderElector::IsLeader() const {
  if (!leading_.load()) return false;
  std::lock_guard lock(mu_);
  return clock_.Now() - last_renew_ < options_.renew_deadline;
}

std::string LeaderElector::observed_leader() const {
  std::lock_guard lock(mu_);
  return observed_ ? observed_->holder_identity : std::string();
}

bool LeaderElector::TryAcquireOrRenew(const std::stop_token& outer) {
  // One attempt has its own deadline (real time): a Get sitting in 5xx retries must not hold
  // the elector past the point where another replica may take the Lease over.
  std::stop_source attempt;
  std::stop_callback forward(outer, [&] { attempt.request_stop(); });
  std::mutex done_mu;
  std::condition_variable_any done_cv;
  bool done = false;
  std::jthread deadline([&](std::stop_token) {
    std::unique_lock lock(done_mu);
    if (!done_cv.wait_for(lock, options_.renew_deadline / 2, [&] { return done; })) {
      attempt.request_stop();
    }
  });
  const bool held = AttemptAcquireOrRenew(attempt.get_token());
  {
    std::lock_guard lock(done_mu);
    done = true;
  }
  done_cv.notify_all();
  return held;
}

bool LeaderElector::AttemptAcquireOrRenew(const std::stop_token& stop) {
  const auto now = clock_.Now();
  const std::string now_text = FormatMicroTime(clock_.WallNow());
  const int duration_s = static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(options_.lease_duration).count());
  LeaseRecord mine{options_.identity, duration_s, now_text, now_text, 0};

  auto current = lock_.Get(stop);
  if (!current.ok()) {
    if (!current.error().IsNotFound()) {
      spdlog::warn("leader election: {}: {}", lock_.Describe(), current.error().ToString());
      return false;
    }
    if (ApiStatus s = lock_.Create(mine, stop); !s.ok()) {
      spdlog::info("leader election: create {}: {}", lock_.Describe(), s.ToString());
      return false;
    }
    Hold(mine, now);
    return true;
  }

  const LeaseRecord& record = current.value();
  {
    std::lock_guard lock(mu_);
    if (!observed_ || !(*observed_ == record)) {
      observed_ = record;
      observed_at_ = now;
    }
    const auto held_for = std::chrono::seconds(record.lease_duration_seconds);
    if (!record.holder_identity.empty() && record.holder_identity != options_.identity &&
        observed_at_ + held_for > now) {
      // Someone else holds it and renews it. If we thought we led, we do not: the fence closes
      // now rather than at the renew deadline.
      holding_ = false;
      last_renew_ = Clock::TimePoint{};
      return false;
    }
  }
  if (record.holder_identity == options_.identity) {
    mine.acquire_time = record.acquire_time;
    mine.lease_transitions = record.lease_transitions;
  } else {
    mine.lease_transitions = record.lease_transitions + 1;
  }
  if (ApiStatus s = lock_.Update(mine, stop); !s.ok()) {
    spdlog::info("leader election: update {}: {}", lock_.Describe(), s.ToString());
    return false;
  }
  Hold(mine, now);
  return true;
}

void LeaderElector::Hold(const LeaseRecord& record, Clock::TimePoint now) {
  std::lock_guard lock(mu_);
  observed_ = record;
  observed_at_ = now;
  last_renew_ = now;
  holding_ = true;
}

bool LeaderElector::Release() {
  {
    std::lock_guard lock(mu_);
    if (!holding_ || !observed_) return true;
  }
  leading_.store(false);
  LeaseRecord released;
  {
    std::lock_guard lock(mu_);
    released = *observed_;
  }
  released.holder_identity.clear();
  released.lease_duration_seconds = 1;
  released.renew_time = FormatMicroTime(clock_.WallNow());
  if (ApiStatus s = lock_.Update(released); !s.ok()) {
    spdlog::warn("leader election: release {}: {}", lock_.Describe(), s.ToString());
    return false;
  }
  std::lock_guard lock(mu_);
  holding_ = false;
  observed_ = released;
  return true;
}

void LeaderElector::Run(const std::stop_token& stop, const LeaderCallbacks& callbacks) {
  std::string last_leader;
  // Acquire.
  while (!stop.stop_requested()) {
    if (TryAcquireOrRenew(stop)) break;
    if (auto leader = observed_leader(); leader != last_leader) {
      last_leader = leader;
      if (callbacks.on_new_leader && !leader.empty()) callbacks.on_new_leader(leader);
    }
    // A little jitter spreads the replicas' polls; a large one (client-go's 1.2 stretches a 2 s
    // period to 4.4 s) would delay the takeover after the leader dies by several seconds.
    clock_.SleepFor(jitter_.Jitter(options_.retry_period, 0.2), stop);
  }
  if (stop.stop_requested()) return;
  spdlog::info("leader election: {} acquired {}", options_.identity, lock_.Describe());
  leading_.store(true);
  if (callbacks.on_new_leader) callbacks.on_new_leader(options_.identity);
  std::jthread leader;
  if (callbacks.on_started_leading) {
    leader = std::jthread(
        [&callbacks](std::stop_token s) { callbacks.on_started_leading(std::move(s)); });
  }
  // Renew.
  while (!stop.stop_requested()) {
    if (!clock_.SleepFor(options_.retry_period, stop)) break;
    if (TryAcquireOrRenew(stop)) continue;
    Clock::TimePoint last;
    {
      std::lock_guard lock(mu_);
      last = last_renew_;
    }
    if (clock_.Now() - last >= options_.renew_deadline || !IsLeader()) {
      spdlog::error(
          "leader election: could not renew {} for {} ms; stepping down", lock_.Describe(),
          std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Now() - last).count());
      break;
    }
  }
  leading_.store(false);
  if (leader.joinable()) {
    leader.request_stop();
    leader.join();
  }
  if (stop.stop_requested() && options_.release_on_cancel) Release();
  {
    std::lock_guard lock(mu_);
    if (!stop.stop_requested()) holding_ = false;
  }
  if (callbacks.on_stopped_leading) callbacks.on_stopped_leading();
}

}  // namespace capwatch::kube
