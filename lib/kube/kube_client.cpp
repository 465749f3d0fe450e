#include "kube/kube_client.h"

namespace capwatch::kube {

std::string ResourceRef::Path(std::string_view name, std::string_view subresource) const {
  std::string path = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (!namespace_name.empty()) path += "/namespaces/" + namespace_name;
  path += "/" + resource;
  if (!name.empty()) path.append("/").append(name);
  if (!subresource.empty()) path.append("/").append(subresource);
  return path;
}

std::string ResourceRef::Describe(std::string_view name) const {
  std::string out = resource;
  if (!group.empty()) out += "." + group;
  if (!namespace_name.empty() || !name.empty()) out += " ";
  if (!namespace_name.empty()) out += namespace_name + (name.empty() ? "" : "/");
  out.append(name);
  return out;
}

std::string_view VerbName(Verb verb) {
  switch (verb) {
    case Verb::kGet:
      return "GET";
    case Verb::kPost:
      return "POST";
    case Verb::kPut:
      return "PUT";
    case Verb::kPatch:
      return "PATCH";
    case Verb::kDelete:
      return "DELETE";
  }
  return "GET";
}

std::string_view PatchContentType(PatchType type) {
  switch (type) {
    case PatchType::kMerge:
      return "application/merge-patch+json";
    case PatchType::kJsonPatch:
      return "application/json-patch+json";
    case PatchType::kStrategicMerge:
      return "application/strategic-merge-patch+json";
    case PatchType::kApply:
      return "application/apply-patch+yaml";
  }
  return "application/merge-patch+json";
}

std::vector<std::pair<std::string, std::string>> KubeClient::ListQuery(const ListOptions& o,
                                                                       bool watch) {
  std::vector<std::pair<std::string, std::string>> q;
  if (!o.label_selector.empty()) q.emplace_back("labelSelector", o.label_selector);
  if (!o.field_selector.empty()) q.emplace_back("fieldSelector", o.field_selector);
  if (!watch && o.limit > 0) q.emplace_back("limit", std::to_string(o.limit));
  if (!watch && !o.continue_token.empty()) q.emplace_back("continue", o.continue_token);
  if (!o.resource_version.empty()) q.emplace_back("resourceVersion", o.resource_version);
  if (!o.resource_version_match.empty()) {
    q.emplace_back("resourceVersionMatch", o.resource_version_match);
  }
  if (watch) {
    q.emplace_back("watch", "true");
    if (o.allow_watch_bookmarks) q.emplace_back("allowWatchBookmarks", "true");
    if (o.timeout_seconds > 0) q.emplace_back("timeoutSeconds", std::to_string(o.timeout_seconds));
  }
  return q;
}

namespace {

Request Make(Verb verb, std::string path, std::string what) {
  Request r;
  r.verb = verb;
  r.path = std::move(path);
  r.what = std::move(what);
  return r;
}

void AddWriteQuery(Request& r, const WriteOptions& o) {
  if (o.dry_run) r.query.emplace_back("dryRun", "All");
}

}  // namespace

Result<std::string> KubeClient::Get(const ResourceRef& r, std::string_view name,
                                    std::string_view subresource, const std::stop_token& stop) {
  return Send(Make(Verb::kGet, r.Path(name, subresource), "get " + r.Describe(name)), stop);
}

Result<std::string> KubeClient::List(const ResourceRef& r, const ListOptions& options,
                                     const std::stop_token& stop) {
  Request req = Make(Verb::kGet, r.Path(), "list " + r.Describe());
  req.query = ListQuery(options, /*watch=*/false);
  if (options.metadata_only) {
    req.accept = std::string(kAcceptMetadataList);
  } else if (options.protobuf) {
    req.accept = std::string(kAcceptProtobuf);
  }
  return Send(req, stop);
}

ApiStatus KubeClient::ListInto(const ResourceRef& r, const ListOptions& options,
                               const std::function<bool(std::string_view)>& on_body,
                               const std::stop_token& stop) {
  Request req = Make(Verb::kGet, r.Path(), "list " + r.Describe());
  req.query = ListQuery(options, /*watch=*/false);
  if (options.metadata_only) {
    req.accept = std::string(kAcceptMetadataList);
  } else if (options.protobuf) {
    req.accept = std::string(kAcceptProtobuf);
  }
  req.on_body = on_body;
  auto body = Send(req, stop);
  if (!body.ok()) return body.error();
  if (!body.value().empty() && !on_body(body.value())) {
    return ApiStatus(0, StatusReason::kCancelled, req.what + ": abandoned by the reader");
  }
  return ApiStatus::Ok();
}

Result<std::string> KubeClient::Create(const ResourceRef& r, std::string body,
                                       const WriteOptions& options, const std::stop_token& stop) {
  Request req = Make(Verb::kPost, r.Path({}, options.subresource), "create " + r.Describe());
  req.body = std::move(body);
  req.content_type = "application/json";
  req.query.emplace_back("fieldManager", std::string(kFieldManager));
  AddWriteQuery(req, options);
  return Send(req, stop);
}

Result<std::string> KubeClient::Update(const ResourceRef& r, std::string_view name,
                                       std::string body, const WriteOptions& options,
                                       const std::stop_token& stop) {
  Request req = Make(Verb::kPut, r.Path(name, options.subresource), "update " + r.Describe(name));
  req.body = std::move(body);
  req.content_type = "application/json";
  req.query.emplace_back("fieldManager", std::string(kFieldManager));
  AddWriteQuery(req, options);
  return Send(req, stop);
}

Result<std::string> KubeClient::Patch(const ResourceRef& r, std::string_view name, PatchType type,
                                      std::string body, const WriteOptions& options,
                                      const std::stop_token& stop) {
  Request req = Make(Verb::kPatch, r.Path(name, options.subresource), "patch " + r.Describe(name));
  req.body = std::move(body);
  req.content_type = std::string(PatchContentType(type));
  req.query.emplace_back("fieldManager", std::string(kFieldManager));
  if (type == PatchType::kApply && options.force) req.query.emplace_back("force", "true");
  AddWriteQuery(req, options);
  return Send(req, stop);
}

Result<std::string> KubeClient::Delete(const ResourceRef& r, std::string_view name,
                                       const WriteOptions& options, const std::stop_token& stop) {
  Request req =
      Make(Verb::kDelete, r.Path(name, options.subresource), "delete " + r.Describe(name));
  AddWriteQuery(req, options);
  if (!options.precondition_uid.empty() || !options.precondition_resource_version.empty()) {
    // metav1.DeleteOptions with preconditions; both values are API-server-made (no escaping).
    std::string pre;
    if (!options.precondition_uid.empty()) pre += "\"uid\":\"" + options.precondition_uid + "\"";
    if (!options.precondition_resource_version.empty()) {
      if (!pre.empty()) pre += ",";
      pre += "\"resourceVersion\":\"" + options.precondition_resource_version + "\"";
    }
    req.body = R"({"apiVersion":"v1","kind":"DeleteOptions","preconditions":{)" + pre + "}}";
    req.content_type = "application/json";
  }
  return Send(req, stop);
}

}  // namespace capwatch::kube
