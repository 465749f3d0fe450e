#include "fake_kube_client.h"

#include <algorithm>

namespace capwatch::testing {
namespace {

using kube::ApiStatus;
using kube::StatusReason;
using kube::Verb;
using nlohmann::json;

class LinesStream final : public kube::WatchStream {
 public:
  explicit LinesStream(std::vector<std::string> lines) : lines_(std::move(lines)) {}
  bool NextLine(std::string& line) override {
    if (next_ >= lines_.size()) return false;
    line = std::move(lines_[next_++]);
    return true;
  }
  const ApiStatus& status() const override { return status_; }

 private:
  std::vector<std::string> lines_;
  std::size_t next_ = 0;
  ApiStatus status_;
};

std::string Key(const std::string& ns, const std::string& name) {
  return ns.empty() ? name : ns + "/" + name;
}

std::string MetaString(const json& o, const char* field) {
  auto md = o.find("metadata");
  if (md == o.end() || !md->is_object()) return {};
  auto it = md->find(field);
  return it != md->end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

FakeKubeClient::Parsed FakeKubeClient::ParsePath(const std::string& path) {
  std::vector<std::string> seg;
  std::size_t pos = 1;
  while (pos <= path.size()) {
    const auto next = std::min(path.find('/', pos), path.size());
    seg.push_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  Parsed p;
  std::size_t i = 0;
  std::string group;
  if (!seg.empty() && seg[0] == "api") {
    i = 2;  // api, v1
  } else if (seg.size() >= 3) {
    group = seg[1];
    i = 3;  // apis, group, version
  }
  std::vector<std::string> rest(seg.begin() + static_cast<std::ptrdiff_t>(std::min(i, seg.size())),
                                seg.end());
  if (rest.size() >= 3 && rest[0] == "namespaces") {
    p.namespace_name = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  if (!rest.empty()) p.resource = rest[0];
  if (rest.size() > 1) p.name = rest[1];
  if (rest.size() > 2) p.subresource = rest[2];
  p.group_resource = group + "/" + p.resource;
  return p;
}

std::string FakeKubeClient::GroupResource(const kube::ResourceRef& r) {
  return r.group + "/" + r.resource;
}

json FakeKubeClient::StoreLocked(const std::string& group_resource, json object, const char* type) {
  const std::string ns = MetaString(object, "namespace");
  const std::string name = MetaString(object, "name");
  object["metadata"]["resourceVersion"] = std::to_string(++rv_);
  objects_[group_resource][Key(ns, name)] = object;
  history_.push_back({rv_, group_resource, ns, type, object.dump()});
  return object;
}

json FakeKubeClient::Put(const kube::ResourceRef& resource, json object) {
  std::lock_guard lock(mu_);
  const std::string gr = GroupResource(resource);
  if (!resource.namespace_name.empty()) object["metadata"]["namespace"] = resource.namespace_name;
  const std::string key = Key(MetaString(object, "namespace"), MetaString(object, "name"));
  auto& bucket = objects_[gr];
  auto it = bucket.find(key);
  if (it == bucket.end()) {
    if (MetaString(object, "uid").empty()) {
      object["metadata"]["uid"] = "uid-" + std::to_string(++uid_);
    }
    if (!object["metadata"].contains("generation")) object["metadata"]["generation"] = 1;
    if (!object["metadata"].contains("creationTimestamp")) {
      object["metadata"]["creationTimestamp"] = "2026-11-29T10:00:00Z";
    }
    return StoreLocked(gr, std::move(object), "ADDED");
  }
  const json& old = it->second;
  object["metadata"]["uid"] = old["metadata"]["uid"];
  if (!object["metadata"].contains("creationTimestamp")) {
    object["metadata"]["creationTimestamp"] = old["metadata"].value("creationTimestamp", "");
  }
  std::int64_t generation = old["metadata"].value("generation", std::int64_t{1});
  if (object.value("spec", json()) != old.value("spec", json())) ++generation;
  object["metadata"]["generation"] = generation;
  return StoreLocked(gr, std::move(object), "MODIFIED");
}

bool FakeKubeClient::Remove(const kube::ResourceRef& resource, const std::string& name) {
  std::lock_guard lock(mu_);
  auto& bucket = objects_[GroupResource(resource)];
  auto it = bucket.find(Key(resource.namespace_name, name));
  if (it == bucket.end()) return false;
  json last = it->second;
  bucket.erase(it);
  last["metadata"]["resourceVersion"] = std::to_string(++rv_);
  history_.push_back(
      {rv_, GroupResource(resource), resource.namespace_name, "DELETED", last.dump()});
  return true;
}

std::optional<json> FakeKubeClient::Object(const kube::ResourceRef& resource,
                                           const std::string& name) const {
  std::lock_guard lock(mu_);
  auto b = objects_.find(GroupResource(resource));
  if (b == objects_.end()) return std::nullopt;
  auto it = b->second.find(Key(resource.namespace_name, name));
  if (it == b->second.end()) return std::nullopt;
  return it->second;
}

std::vector<json> FakeKubeClient::Objects(const kube::ResourceRef& resource) const {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  auto b = objects_.find(GroupResource(resource));
  if (b == objects_.end()) return out;
  for (const auto& [key, o] : b->second) {
    if (resource.namespace_name.empty() || MetaString(o, "namespace") == resource.namespace_name) {
      out.push_back(o);
    }
  }
  return out;
}

void FakeKubeClient::Compact() {
  std::lock_guard lock(mu_);
  compacted_ = rv_;
  history_.clear();
}

void FakeKubeClient::FailNext(Verb verb, const std::string& resource, ApiStatus status, int times) {
  std::lock_guard lock(mu_);
  faults_.push_back({verb, resource, std::move(status), times, false});
}

void FakeKubeClient::CommitThenFail(Verb verb, const std::string& resource, ApiStatus status,
                                    int times) {
  std::lock_guard lock(mu_);
  faults_.push_back({verb, resource, std::move(status), times, true});
}

void FakeKubeClient::SetReactor(Reactor reactor) {
  std::lock_guard lock(mu_);
  reactor_ = std::move(reactor);
}

std::vector<FakeKubeClient::Action> FakeKubeClient::actions() const {
  std::lock_guard lock(mu_);
  return actions_;
}

int FakeKubeClient::Count(Verb verb, const std::string& resource, bool only_ok) const {
  std::lock_guard lock(mu_);
  return static_cast<int>(std::count_if(actions_.begin(), actions_.end(), [&](const Action& a) {
    return a.verb == verb && a.resource == resource && (a.ok || !only_ok);
  }));
}

void FakeKubeClient::ClearActions() {
  std::lock_guard lock(mu_);
  actions_.clear();
}

std::optional<ApiStatus> FakeKubeClient::TakeFault(Verb verb, const std::string& resource,
                                                   bool& commit) {
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->verb != verb || (!it->resource.empty() && it->resource != resource)) continue;
    ApiStatus s = it->status;
    commit = it->commit;
    if (--it->times <= 0) faults_.erase(it);
    return s;
  }
  return std::nullopt;
}

kube::Result<std::string> FakeKubeClient::Send(const kube::Request& request,
                                               const std::stop_token& stop) {
  if (stop.stop_requested()) return ApiStatus(0, StatusReason::kCancelled, "cancelled");
  const Parsed p = ParsePath(request.path);
  Reactor reactor;
  {
    std::lock_guard lock(mu_);
    reactor = reactor_;
  }
  std::optional<ApiStatus> injected;
  if (reactor) injected = reactor(request);
  bool commit = false;
  if (!injected) {
    std::lock_guard lock(mu_);
    injected = TakeFault(request.verb, p.resource, commit);
  }
  kube::Result<std::string> result = ApiStatus(500, StatusReason::kInternalError, "unset");
  if (!injected || commit) result = Handle(request, p);
  if (injected) result = *injected;
  std::lock_guard lock(mu_);
  actions_.push_back({request.verb, p.resource, p.namespace_name, p.name, p.subresource,
                      request.body, result.ok()});
  return result;
}

void FakeKubeClient::SetAnswer(const std::string& resource, Answer answer) {
  std::lock_guard lock(mu_);
  answers_[resource] = std::move(answer);
}

kube::Result<std::string> FakeKubeClient::Handle(const kube::Request& request, const Parsed& p) {
  Answer answer;
  {
    std::lock_guard lock(mu_);
    if (auto it = answers_.find(p.resource); it != answers_.end()) answer = it->second;
  }
  if (answer && request.verb == Verb::kPost) {
    const json body = json::parse(request.body, nullptr, false);
    if (!body.is_object()) return ApiStatus(400, StatusReason::kBadRequest, "not a JSON object");
    return answer(body).dump();
  }
  std::lock_guard lock(mu_);
  auto& bucket = objects_[p.group_resource];
  const std::string key = Key(p.namespace_name, p.name);
  auto not_found = [&] {
    return ApiStatus(404, StatusReason::kNotFound, p.resource + " \"" + p.name + "\" not found");
  };
  switch (request.verb) {
    case Verb::kGet: {
      if (!p.name.empty()) {
        auto it = bucket.find(key);
        if (it == bucket.end()) return not_found();
        return it->second.dump();
      }
      json list = {{"apiVersion", "v1"},
                   {"kind", "List"},
                   {"metadata", {{"resourceVersion", std::to_string(rv_)}}},
                   {"items", json::array()}};
      for (const auto& [k, o] : bucket) {
        if (p.namespace_name.empty() || MetaString(o, "namespace") == p.namespace_name) {
          list["items"].push_back(o);
        }
      }
      return list.dump();
    }
    case Verb::kPost: {
      json o = json::parse(request.body, nullptr, false);
      if (!o.is_object()) return ApiStatus(400, StatusReason::kBadRequest, "body is not JSON");
      if (!p.namespace_name.empty()) o["metadata"]["namespace"] = p.namespace_name;
      std::string name = MetaString(o, "name");
      if (name.empty()) {
        name = MetaString(o, "generateName") + "x" + std::to_string(++suffix_);
        o["metadata"]["name"] = name;
      }
      if (bucket.count(Key(p.namespace_name, name)) != 0) {
        return ApiStatus(409, StatusReason::kAlreadyExists,
                         p.resource + " \"" + name + "\" already exists");
      }
      o["metadata"]["uid"] = "uid-" + std::to_string(++uid_);
      o["metadata"]["generation"] = 1;
      o["metadata"]["creationTimestamp"] = "2026-11-29T10:00:00Z";
      return StoreLocked(p.group_resource, std::move(o), "ADDED").dump();
    }
    case Verb::kPut:
    case Verb::kPatch: {
      auto it = bucket.find(key);
      // Server-side apply creates what is not there (and here replaces the fields it names,
      // a merge patch being close enough for one field manager).
      const bool apply = request.content_type == "application/apply-patch+yaml";
      if (it == bucket.end() && apply) {
        json o = json::parse(request.body, nullptr, false);
        if (!o.is_object()) return ApiStatus(400, StatusReason::kBadRequest, "body is not JSON");
        if (!p.namespace_name.empty()) o["metadata"]["namespace"] = p.namespace_name;
        o["metadata"]["uid"] = "uid-" + std::to_string(++uid_);
        o["metadata"]["generation"] = 1;
        o["metadata"]["creationTimestamp"] = "2026-11-29T10:00:00Z";
        return StoreLocked(p.group_resource, std::move(o), "ADDED").dump();
      }
      if (it == bucket.end()) return not_found();
      const json& old = it->second;
      json body = json::parse(request.body, nullptr, false);
      if (!body.is_object()) return ApiStatus(400, StatusReason::kBadRequest, "body is not JSON");
      json next = old;
      if (request.verb == Verb::kPut) {
        const std::string rv = MetaString(body, "resourceVersion");
        if (!rv.empty() && rv != MetaString(old, "resourceVersion")) {
          return ApiStatus(409, StatusReason::kConflict,
                           "Operation cannot be fulfilled on " + p.resource + " \"" + p.name +
                               "\": the object has been modified");
        }
        if (p.subresource == "status") {
          next["status"] = body.value("status", json());
        } else {
          next = body;
          next["metadata"]["uid"] = old["metadata"]["uid"];
          next["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"];
          if (old.contains("status")) next["status"] = old["status"];
        }
      } else if (p.subresource == "status") {
        json status = old.value("status", json::object());
        status.merge_patch(body.value("status", json::object()));
        next["status"] = status;
      } else {
        next.merge_patch(body);
      }
      std::int64_t generation = old["metadata"].value("generation", std::int64_t{1});
      if (next.value("spec", json()) != old.value("spec", json())) ++generation;
      next["metadata"]["generation"] = generation;
      return StoreLocked(p.group_resource, std::move(next), "MODIFIED").dump();
    }
    case Verb::kDelete: {
      auto it = bucket.find(key);
      if (it == bucket.end()) return not_found();
      json options = json::parse(request.body.empty() ? "{}" : request.body, nullptr, false);
      if (options.is_object() && options.contains("preconditions")) {
        const json& pre = options["preconditions"];
        if ((pre.contains("uid") && pre["uid"] != it->second["metadata"]["uid"]) ||
            (pre.contains("resourceVersion") &&
             pre["resourceVersion"] != it->second["metadata"]["resourceVersion"])) {
          return ApiStatus(409, StatusReason::kConflict,
                           "Precondition failed: uid or resourceVersion of " + p.resource + " \"" +
                               p.name + "\" changed");
        }
      }
      json last = it->second;
      bucket.erase(it);
      last["metadata"]["resourceVersion"] = std::to_string(++rv_);
      history_.push_back({rv_, p.group_resource, p.namespace_name, "DELETED", last.dump()});
      return json({{"kind", "Status"}, {"status", "Success"}}).dump();
    }
  }
  return ApiStatus(405, StatusReason::kMethodNotAllowed, "method not allowed");
}

kube::Result<std::unique_ptr<kube::WatchStream>> FakeKubeClient::Watch(
    const kube::ResourceRef& resource, const kube::ListOptions& options,
    const std::stop_token& stop) {
  if (stop.stop_requested()) return ApiStatus(0, StatusReason::kCancelled, "cancelled");
  {
    kube::Request probe;
    probe.verb = Verb::kGet;
    probe.path = resource.Path();
    probe.query = KubeClient::ListQuery(options, true);
    Reactor reactor;
    {
      std::lock_guard lock(mu_);
      reactor = reactor_;
    }
    if (reactor) {
      if (auto s = reactor(probe)) return *s;
    }
  }
  std::lock_guard lock(mu_);
  const long long since =
      options.resource_version.empty() ? rv_ : std::stoll(options.resource_version);
  if (since < compacted_) {
    return ApiStatus(410, StatusReason::kGone,
                     "too old resource version: " + options.resource_version);
  }
  const std::string gr = GroupResource(resource);
  std::vector<std::string> lines;
  for (const auto& h : history_) {
    if (h.rv <= since || h.group_resource != gr) continue;
    if (!resource.namespace_name.empty() && h.namespace_name != resource.namespace_name) continue;
    lines.push_back(R"({"type":")" + h.type + R"(","object":)" + h.object + "}");
  }
  // A bookmark at the end, as the API server sends them: the session delivered something, so
  // the reflector reconnects at once from the current resourceVersion.
  lines.push_back(
      R"({"type":"BOOKMARK","object":{"kind":"Bookmark","metadata":{"resourceVersion":")" +
      std::to_string(rv_) + R"("}}})");
  return std::unique_ptr<kube::WatchStream>(std::make_unique<LinesStream>(std::move(lines)));
}

}  // namespace capwatch::testing
