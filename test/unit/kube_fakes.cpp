#include "kube_fakes.h"

#include <nlohmann/json.hpp>

namespace capwatch::kube::testing {

std::string StatusJson(int code, const std::string& reason, const std::string& message) {
  return nlohmann::json{{"kind", "Status"},   {"apiVersion", "v1"}, {"status", "Failure"},
                        {"message", message}, {"reason", reason},   {"code", code}}
      .dump();
}

std::string MakePodJson(const std::string& ns, const std::string& name, long long rv,
                        const std::string& image_tag, bool compact) {
  nlohmann::json pod = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", name},
        {"namespace", ns},
        {"uid", "uid-" + ns + "-" + name},
        {"resourceVersion", std::to_string(rv)},
        {"labels", {{"app", name.substr(0, name.find('-'))}, {"tier", "web"}}},
        {"ownerReferences",
         {{{"apiVersion", "apps/v1"},
           {"kind", "ReplicaSet"},
           {"name", name.substr(0, name.find('-')) + "-rs"},
           {"uid", "rs-uid"},
           {"controller", true}}}}}},
      {"spec",
       {{"containers",
         {{{"name", "app"},
           {"image", "registry.example.com/team/app:" + image_tag},
           {"securityContext",
            {{"allowPrivilegeEscalation", false},
             {"capabilities", {{"drop", {"ALL"}}, {"add", {"NET_BIND_SERVICE"}}}}}}}}},
        {"securityContext", {{"runAsNonRoot", true}}}}},
      {"status", {{"phase", "Pending"}}}};
  if (!compact) {
    pod["metadata"]["managedFields"] = {
        {{"manager", "kube-controller-manager"},
         {"operation", "Update"},
         {"fieldsV1", {{"f:spec", {{"f:containers", {{"k:{\"name\":\"app\"}", {{".", {}}}}}}}}}}}};
  }
  return pod.dump();
}

long long FakePodsApi::Upsert(const std::string& ns, const std::string& name,
                              const std::string& tag) {
  std::lock_guard lock(mu_);
  return UpsertLocked(ns, name, tag);
}

long long FakePodsApi::UpsertLocked(const std::string& ns, const std::string& name,
                                    const std::string& tag) {
  const std::string key = ns + "/" + name;
  const bool exists = pods_.count(key) != 0;
  const long long rv = ++rv_;
  pods_[key] = {tag, rv};
  history_.push_back({rv, exists ? "MODIFIED" : "ADDED", MakePodJson(ns, name, rv, tag)});
  cv_.notify_all();
  return rv;
}

long long FakePodsApi::Remove(const std::string& ns, const std::string& name) {
  std::lock_guard lock(mu_);
  return RemoveLocked(ns, name);
}

long long FakePodsApi::RemoveLocked(const std::string& ns, const std::string& name) {
  const std::string key = ns + "/" + name;
  auto it = pods_.find(key);
  if (it == pods_.end()) return rv_;
  const long long rv = ++rv_;
  history_.push_back({rv, "DELETED", MakePodJson(ns, name, rv, it->second.first)});
  pods_.erase(it);
  cv_.notify_all();
  return rv;
}

void FakePodsApi::ChangeUnseenAndExpire(const std::function<void(FakePodsApi&)>& changes) {
  std::lock_guard lock(mu_);
  changes(*this);
  compacted_ = rv_;
  history_.clear();
  expire_open_watches_ = true;
  cv_.notify_all();
}

void FakePodsApi::Compact() {
  std::lock_guard lock(mu_);
  compacted_ = rv_;
  history_.clear();
  cv_.notify_all();
}

std::map<std::string, std::string> FakePodsApi::State() const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : pods_) out[k] = v.first;
  return out;
}

long long FakePodsApi::rv() const {
  std::lock_guard lock(mu_);
  return rv_;
}

long long FakePodsApi::BumpRv() {
  std::lock_guard lock(mu_);
  return ++rv_;
}

std::vector<std::string> FakePodsApi::watch_rvs() const {
  std::lock_guard lock(mu_);
  return watch_rvs_;
}

std::string FakePodsApi::last_accept() const {
  std::lock_guard lock(mu_);
  return last_accept_;
}

std::string FakePodsApi::Item(const std::string& key) const {
  const auto& [tag, rv] = pods_.at(key);
  const auto slash = key.find('/');
  return MakePodJson(key.substr(0, slash), key.substr(slash + 1), rv, tag);
}

void FakePodsApi::Handle(const HttpRequest& req, Connection& conn) {
  {
    std::lock_guard lock(mu_);
    last_accept_ = req.Header("accept");
  }
  if (req.Query("watch") == "true") {
    Watch(req, conn);
  } else {
    List(req, conn);
  }
}

void FakePodsApi::List(const HttpRequest& req, Connection& conn) {
  ++lists;
  if (list_500 > 0) {
    --list_500;
    conn.Respond(500, StatusJson(500, "InternalError", "etcd is sad"));
    return;
  }
  const int limit = req.Query("limit").empty() ? 0 : std::stoi(req.Query("limit"));
  std::size_t offset = 0;
  long long list_rv;
  std::string cont = req.Query("continue");
  std::unique_lock lock(mu_);
  if (!cont.empty()) {
    if (expire_continue > 0) {
      --expire_continue;
      lock.unlock();
      conn.Respond(410, StatusJson(410, "Expired", "The provided continue parameter is too old"));
      return;
    }
    const auto colon = cont.find(':');
    offset = std::stoul(cont.substr(0, colon));
    list_rv = std::stoll(cont.substr(colon + 1));
  } else {
    list_rv = rv_;
  }
  std::string body = R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":")" +
                     std::to_string(list_rv) + "\"";
  std::vector<std::string> keys;
  for (const auto& [k, v] : pods_) keys.push_back(k);
  const std::size_t end =
      limit > 0 ? std::min(keys.size(), offset + static_cast<std::size_t>(limit)) : keys.size();
  if (end < keys.size()) {
    body += R"(,"continue":")" + std::to_string(end) + ":" + std::to_string(list_rv) + "\"";
  }
  body += R"(},"items":[)";
  for (std::size_t i = offset; i < end; ++i) {
    if (i != offset) body += ",";
    body += Item(keys[i]);
  }
  body += "]}";
  lock.unlock();
  conn.Respond(200, body);
}

void FakePodsApi::Watch(const HttpRequest& req, Connection& conn) {
  ++watches;
  const std::string rv_text = req.Query("resourceVersion");
  const long long from = rv_text.empty() ? 0 : std::stoll(rv_text);
  const int timeout_s =
      req.Query("timeoutSeconds").empty() ? 5 : std::stoi(req.Query("timeoutSeconds"));
  {
    std::lock_guard lock(mu_);
    watch_rvs_.push_back(rv_text);
  }
  if (watch_gone_http > 0) {
    --watch_gone_http;
    conn.Respond(410, StatusJson(410, "Gone", "too old resource version"));
    return;
  }
  if (!conn.StartChunked(200)) return;
  if (hang_watch > 0) {
    --hang_watch;
    conn.Sleep(std::chrono::seconds(30));
    conn.Drop();
    return;
  }
  auto send = [&](const std::string& line) {
    if (!byte_chunks) return conn.Chunk(line);
    for (char c : line) {
      if (!conn.Chunk(std::string_view(&c, 1))) return false;
    }
    return true;
  };
  if (watch_error_500 > 0) {
    --watch_error_500;
    send(R"({"type":"ERROR","object":)" + StatusJson(500, "InternalError", "boom") + "}\n");
    conn.EndChunked();
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  long long sent = from;
  std::unique_lock lock(mu_);
  if (from != 0 && from < compacted_) {
    expire_open_watches_ = false;
    lock.unlock();
    // What the API server does for a too old resourceVersion on an open watch.
    send(R"({"type":"ERROR","object":)" +
         StatusJson(410, "Expired", "too old resource version: " + rv_text) + "}\n");
    conn.EndChunked();
    return;
  }
  while (!conn.stopped()) {
    if (expire_open_watches_) {
      expire_open_watches_ = false;
      lock.unlock();
      send(R"({"type":"ERROR","object":)" + StatusJson(410, "Expired", "too old resource version") +
           "}\n");
      conn.EndChunked();
      return;
    }
    std::vector<std::string> lines;
    for (const auto& e : history_) {
      if (e.rv > sent) {
        lines.push_back(R"({"type":")" + e.type + R"(","object":)" + e.object + "}\n");
        sent = e.rv;
      }
    }
    if (!lines.empty()) {
      lock.unlock();
      for (const auto& l : lines) {
        if (drop_mid_event > 0) {
          --drop_mid_event;
          conn.Chunk(l.substr(0, l.size() / 2));
          conn.Drop();
          return;
        }
        if (!send(l)) return;
      }
      lock.lock();
      continue;
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) break;
  }
  const long long now = rv_;
  lock.unlock();
  if (bookmark_at_end && req.Query("allowWatchBookmarks") == "true") {
    send(
        R"({"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":")" +
        std::to_string(now) + "\"}}}\n");
  }
  conn.EndChunked();
}

}  // namespace capwatch::kube::testing
