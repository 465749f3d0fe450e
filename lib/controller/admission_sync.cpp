#include "controller/admission_sync.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "base/rfc3339.h"
#include "base/text_hash.h"
#include "enforce/admission_policy.h"
#include "kube/json_codec.h"
#include "report/report_builder.h"

namespace capwatch::controller {
namespace {

using nlohmann::json;

std::string Annotation(const json& object, std::string_view key) {
  const json* a = &object;
  for (const char* step : {"metadata", "annotations"}) {
    auto it = a->find(step);
    if (it == a->end() || !it->is_object()) return "";
    a = &*it;
  }
  auto v = a->find(std::string(key));
  return v != a->end() && v->is_string() ? v->get<std::string>() : "";
}

std::string MetaString(const json& object, const char* key) {
  auto m = object.find("metadata");
  if (m == object.end() || !m->is_object()) return "";
  auto v = m->find(key);
  return v != m->end() && v->is_string() ? v->get<std::string>() : "";
}

std::int64_t MetaInt(const json& object, const json::json_pointer& at) {
  if (!object.contains(at)) return -1;
  const json& v = object[at];
  return v.is_number_integer() ? v.get<std::int64_t>() : -1;
}

constexpr std::string_view kGenerationAnnotation = "capwatch.io/policy-generation";

// Owned by the policy (both are cluster-scoped), and stamped with the hash of all of it. The
// policy's generation is noted beside the hash, not in it: an edit that changes nothing
// generated (a severity, say) rewrites nothing.
void Stamp(json& object, const PolicyView& view) {
  object["metadata"]["ownerReferences"] = json::array({{{"apiVersion", "capwatch.io/v1alpha1"},
                                                        {"kind", "CapabilityPolicy"},
                                                        {"name", view.name},
                                                        {"uid", view.uid},
                                                        {"controller", true}}});
  const std::string hash = HashText(object.dump());
  object["metadata"]["annotations"] = {
      {std::string(kContentHashAnnotation), hash},
      {std::string(kGenerationAnnotation), std::to_string(view.generation)}};
}

// Someone other than capwatch wrote the object's spec or metadata (kubectl edit, an apply):
// a manager in managedFields that is not capwatch's, on the object itself (the API server's
// status controller writes the status subresource).
std::string ForeignManager(const json& object) {
  auto m = object.find("metadata");
  if (m == object.end() || !m->is_object()) return "";
  auto fields = m->find("managedFields");
  if (fields == m->end() || !fields->is_array()) return "";
  for (const auto& f : *fields) {
    if (!f.is_object() || !f.value("subresource", "").empty()) continue;
    const std::string manager = f.value("manager", "");
    if (manager != kube::kFieldManager) return manager.empty() ? "(unnamed)" : manager;
  }
  return "";
}

std::string Kind(const kube::ResourceRef& r) {
  return r.resource == "validatingadmissionpolicies" ? "ValidatingAdmissionPolicy"
                                                     : "ValidatingAdmissionPolicyBinding";
}

}  // namespace

AdmissionSync::AdmissionSync(kube::KubeClient& client, kube::Clock& clock,
                             const PolicyInformer& policies, AdmissionSyncOptions options)
    : client_(client), clock_(clock), policies_(policies), options_(options) {}

bool AdmissionSync::synced_once() const {
  std::lock_guard lock(mu_);
  return synced_once_;
}

bool AdmissionSync::Due(kube::Clock::TimePoint now, std::chrono::system_clock::time_point wall,
                        const std::string& fingerprint) const {
  std::lock_guard lock(mu_);
  return fingerprint != fingerprint_ || now >= next_sync_ ||
         (next_change_ && wall >= *next_change_);
}

int AdmissionSync::Tick(const std::stop_token& stop, const std::function<bool()>& may_write) {
  // What the policies are: a new policy, a deleted one, a spec edit (a status write bumps the
  // resourceVersion only, not the generation).
  std::string fingerprint;
  for (const auto& view : policies_.List()) {
    fingerprint += view->name + '/' + view->uid + '/' + std::to_string(view->generation) + ';';
  }
  if (!Due(clock_.Now(), clock_.WallNow(), fingerprint)) return 0;
  {
    std::lock_guard lock(mu_);
    fingerprint_ = fingerprint;
  }
  int writes = 0;
  Sync(stop, may_write, writes);
  return writes;
}

bool AdmissionSync::ListOurs(const kube::ResourceRef& resource, std::map<std::string, json>& out,
                             std::string& error, bool& absent, const std::stop_token& stop) {
  kube::ListOptions options;
  options.label_selector = "app.kubernetes.io/managed-by=capwatch";
  auto listed = client_.List(resource, options, stop);
  if (!listed.ok()) {
    error = "listing " + resource.resource + ": " + listed.error().ToString();
    if (listed.error().IsNotFound()) {
      absent = true;
      error = "this API server does not serve admissionregistration.k8s.io/v1 " + Kind(resource) +
              " (Kubernetes 1.30 and later do): " + error;
    }
    return false;
  }
  json list = json::parse(listed.value(), nullptr, /*allow_exceptions=*/false);
  if (!list.is_object() || !list.contains("items") || !list["items"].is_array()) {
    error = "listing " + resource.resource + ": the API server's answer is not a list";
    return false;
  }
  for (auto& item : list["items"]) {
    if (!item.is_object()) continue;
    // The selector again: a list from a server (or proxy) that ignored it removes nothing of
    // anyone else's.
    if (kube::JsonStringAt(item, {"metadata", "labels", "app.kubernetes.io/managed-by"}) !=
        "capwatch") {
      continue;
    }
    const std::string name = MetaString(item, "name");
    if (!name.empty()) out.emplace(name, std::move(item));
  }
  return true;
}

std::string AdmissionSync::Ensure(const kube::ResourceRef& resource, const json& desired,
                                  const json* existing, const std::stop_token& stop,
                                  const std::function<bool()>& may_write, int& writes, bool& wrote,
                                  std::int64_t& known_generation) {
  const std::string name = kube::JsonStringAt(desired, {"metadata", "name"});
  const std::string hash = Annotation(desired, kContentHashAnnotation);
  if (existing != nullptr && Annotation(*existing, kContentHashAnnotation) == hash) {
    // As generated, unless edited since: its generation moved from the one capwatch saw, or
    // (first look after a start) another manager wrote it.
    const std::int64_t generation = MetaInt(*existing, "/metadata/generation"_json_pointer);
    const std::string foreign = known_generation == 0 ? ForeignManager(*existing) : "";
    if ((known_generation == 0 || generation == known_generation) && foreign.empty()) {
      known_generation = generation;
      return "";
    }
    spdlog::warn("{} {} was changed by {}; restoring it", Kind(resource), name,
                 foreign.empty() ? "someone else" : foreign);
  }
  if (may_write && !may_write()) return "not the leader any more";
  auto r = [&] {
    if (existing == nullptr) return client_.Create(resource, desired.dump(), {}, stop);
    json replacement = desired;
    replacement["metadata"]["resourceVersion"] = MetaString(*existing, "resourceVersion");
    return client_.Update(resource, name, replacement.dump(), {}, stop);
  }();
  if (!r.ok()) {
    std::string why = r.error().ToString();
    if (existing == nullptr && r.error().IsAlreadyExists()) {
      why = "a " + Kind(resource) + " named " + name +
            " exists and is not capwatch's (no label app.kubernetes.io/managed-by=capwatch); "
            "capwatch does not overwrite it";
    }
    return (existing == nullptr ? "creating " : "replacing ") + Kind(resource) + " " + name + ": " +
           why;
  }
  ++writes;
  wrote = true;
  const json written = json::parse(r.value(), nullptr, /*allow_exceptions=*/false);
  known_generation =
      written.is_object() ? MetaInt(written, "/metadata/generation"_json_pointer) : -1;
  spdlog::info("{} {} {}", existing == nullptr ? "created" : "replaced", Kind(resource), name);
  return "";
}

void AdmissionSync::Sync(const std::stop_token& stop, const std::function<bool()>& may_write,
                         int& writes) {
  if (!options_.enabled) {  // nothing to read or write (the chart grants nothing for it)
    std::lock_guard lock(mu_);
    synced_once_ = true;
    next_sync_ = clock_.Now() + options_.resync;
    return;
  }
  const auto wall = clock_.WallNow();
  std::map<std::string, json> vaps, bindings;
  std::string list_error;
  bool absent = false;  // an API server older than 1.30: nothing to retry soon
  const bool listed =
      ListOurs(ValidatingAdmissionPolicies(), vaps, list_error, absent, stop) &&
      ListOurs(ValidatingAdmissionPolicyBindings(), bindings, list_error, absent, stop);

  auto existing = [](const std::map<std::string, json>& m, const std::string& n) {
    auto it = m.find(n);
    return it == m.end() ? nullptr : &it->second;
  };
  std::map<std::string, State> states;
  std::set<std::string> keep;  // object names that stay
  std::optional<std::chrono::system_clock::time_point> next_change;
  bool failed = !listed, recheck = false;
  for (const auto& view : policies_.List()) {
    if (stop.stop_requested()) return;
    const std::string name = AdmissionObjectName(view->name);
    State state;
    {
      std::lock_guard lock(mu_);
      if (auto it = states_.find(view->name); it != states_.end()) state = it->second;
    }
    if (!view->policy) {
      // Invalid now: what was generated from its last valid generation stays in force.
      const json* vap = existing(vaps, name);
      if (vap != nullptr || bindings.count(name) || !listed) keep.insert(name);
      if (state.hash.empty() && vap != nullptr) {  // generated before a restart
        state.hash = Annotation(*vap, kContentHashAnnotation);
        state.generation = std::atoll(Annotation(*vap, kGenerationAnnotation).c_str());
        if (const json* b = existing(bindings, name)) {
          const json& actions = kube::JsonAt(*b, {"spec", "validationActions"});
          if (actions.is_array() && !actions.empty() && actions[0].is_string()) {
            state.action = actions[0];
          }
        }
      }
      if (!state.hash.empty()) states[view->name] = state;
      continue;
    }
    if (!view->policy->enforcement) continue;
    keep.insert(name);
    if (!listed) {
      state.error = list_error;
      states[view->name] = state;
      continue;
    }
    const EnforcementAction action = *view->policy->enforcement;
    GeneratedAdmission generated = GenerateAdmission(*view->policy, action, wall);
    Stamp(generated.policy, *view);
    Stamp(generated.binding, *view);
    bool wrote = false;
    std::string error =
        Ensure(ValidatingAdmissionPolicies(), generated.policy, existing(vaps, name), stop,
               may_write, writes, wrote, state.policy_generation);
    if (error.empty()) {
      bool binding_wrote = false;
      error =
          Ensure(ValidatingAdmissionPolicyBindings(), generated.binding, existing(bindings, name),
                 stop, may_write, writes, binding_wrote, state.binding_generation);
    }
    state.error = error;
    if (!error.empty()) {
      failed = true;
      spdlog::warn("enforcing policy {}: {}", view->name, error);
    } else {
      const std::string hash = Annotation(generated.policy, kContentHashAnnotation);
      if (state.hash != hash) {
        state.type_checked = false;
        state.warnings.clear();
      }
      state.hash = hash;
      state.generation = view->generation;
      state.action = std::string(EnforcementActionName(action));
      state.next_change = generated.next_change;
      // The API server's type checking of the object as it stands (written by its
      // validatingadmissionpolicy-status controller once it has looked at this generation).
      const json* vap = existing(vaps, name);
      if (!wrote && vap != nullptr &&
          MetaInt(*vap, "/status/observedGeneration"_json_pointer) ==
              MetaInt(*vap, "/metadata/generation"_json_pointer)) {
        state.type_checked = true;
        state.warnings.clear();
        const json empty = json::array();
        const json& found = vap->contains("/status/typeChecking/expressionWarnings"_json_pointer)
                                ? (*vap)["/status/typeChecking/expressionWarnings"_json_pointer]
                                : empty;
        for (const auto& w : found.is_array() ? found : empty) {
          state.warnings.push_back(kube::JsonStringAt(w, {"fieldRef"}) + ": " +
                                   kube::JsonStringAt(w, {"warning"}));
        }
      }
      recheck = recheck || !state.type_checked;
    }
    if (generated.next_change && (!next_change || *generated.next_change < *next_change)) {
      next_change = generated.next_change;
    }
    states[view->name] = std::move(state);
  }

  // What is ours and no policy wants any more: the binding first, so that no binding is left
  // naming a policy that is gone.
  if (listed) {
    for (auto* objects : {&bindings, &vaps}) {
      const auto resource = objects == &bindings ? ValidatingAdmissionPolicyBindings()
                                                 : ValidatingAdmissionPolicies();
      for (const auto& [name, object] : *objects) {
        if (keep.count(name) || stop.stop_requested()) continue;
        if (may_write && !may_write()) break;
        kube::WriteOptions options;
        options.precondition_uid = MetaString(object, "uid");
        options.precondition_resource_version = MetaString(object, "resourceVersion");
        auto r = client_.Delete(resource, name, options, stop);
        if (!r.ok() && !r.error().IsNotFound()) {
          failed = true;
          spdlog::warn("deleting {} {}: {}", Kind(resource), name, r.error().ToString());
          continue;
        }
        ++writes;
        spdlog::info("deleted {} {}: no policy enforces it any more", Kind(resource), name);
      }
    }
  }

  std::lock_guard lock(mu_);
  states_ = std::move(states);
  next_change_ = next_change;
  const auto now = clock_.Now();
  next_sync_ = now + (absent    ? options_.resync
                      : failed  ? options_.retry
                      : recheck ? options_.recheck
                                : options_.resync);
  synced_once_ = true;  // a failure shows in the statuses too
}

json AdmissionSync::StatusOf(const PolicyView& view) const {
  const bool asked = view.policy && view.policy->enforcement;
  std::lock_guard lock(mu_);
  auto it = states_.find(view.name);
  if (!asked && it == states_.end()) return nullptr;
  const std::string name = AdmissionObjectName(view.name);
  json condition = {{"type", "Enforced"}, {"observedGeneration", view.generation}};
  json enforcement = json::object();
  auto fail = [&](const char* reason, std::string message) {
    condition["status"] = "False";
    condition["reason"] = reason;
    condition["message"] = std::move(message);
  };
  if (asked && !options_.enabled) {
    fail("EnforcementDisabled",
         "this capwatch runs with --enforcement=false (chart value enforcement.enabled): no "
         "ValidatingAdmissionPolicy is generated");
    return {{"enforcement", enforcement}, {"condition", condition}};
  }
  if (it == states_.end()) {
    condition["status"] = "Unknown";
    condition["reason"] = "Pending";
    condition["message"] = "the ValidatingAdmissionPolicy is not written yet";
    return {{"enforcement", enforcement}, {"condition", condition}};
  }
  const State& s = it->second;
  if (!s.hash.empty()) {
    enforcement = {{"action", s.action},
                   {"validatingAdmissionPolicy", name},
                   {"binding", name},
                   {"generation", s.generation}};
    if (s.next_change) enforcement["nextChange"] = FormatRfc3339(*s.next_change);
  }
  const std::string in_force = "ValidatingAdmissionPolicy " + name + " and its binding " +
                               (s.hash.empty() ? "" : "(" + s.action + ") ") +
                               "enforce generation " + std::to_string(s.generation);
  if (!view.policy) {
    fail("InvalidPolicy", s.hash.empty() ? "the policy is invalid: nothing is enforced"
                                         : "the policy is invalid: " + in_force +
                                               ", its last valid one, until it is fixed");
  } else if (!s.error.empty()) {
    fail("WriteFailed", s.error);
  } else if (!s.warnings.empty()) {
    std::string message = "the API server's type checking warns of: ";
    for (std::size_t i = 0; i < s.warnings.size(); ++i) {
      message += (i ? "; " : "") + s.warnings[i];
    }
    fail("TypeCheckWarnings", message);
  } else {
    condition["status"] = "True";
    condition["reason"] = s.type_checked ? "InForce" : "Written";
    condition["message"] =
        in_force + (s.type_checked ? ", type-checked by the API server without warnings"
                                   : ", awaiting the API server's type checking");
  }
  return {{"enforcement", enforcement}, {"condition", condition}};
}

}  // namespace capwatch::controller
