#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kube/api_status.h"

namespace capwatch::kube {

// A collection of API objects: group/version/resource, and a namespace (empty for
// cluster-scoped resources or for all namespaces).
struct ResourceRef {
  std::string group;  // "" for the core group
  std::string version;
  std::string resource;
  std::string namespace_name;

  static ResourceRef Pods(std::string ns = {}) { return {"", "v1", "pods", std::move(ns)}; }
  static ResourceRef ReplicaSets(std::string ns = {}) {
    return {"apps", "v1", "replicasets", std::move(ns)};
  }
  static ResourceRef Jobs(std::string ns = {}) { return {"batch", "v1", "jobs", std::move(ns)}; }
  static ResourceRef Leases(std::string ns) {
    return {"coordination.k8s.io", "v1", "leases", std::move(ns)};
  }

  // /api/v1/namespaces/prod/pods/web/status
  std::string Path(std::string_view name = {}, std::string_view subresource = {}) const;
  // "pods prod/web", for messages.
  std::string Describe(std::string_view name = {}) const;
};

inline constexpr std::string_view kFieldManager = "capwatch";
// Accept header for metadata-only lists and watches (PartialObjectMetadata).
inline constexpr std::string_view kAcceptMetadataList =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
inline constexpr std::string_view kAcceptMetadata =
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

// Accept header for lists that may come as protobuf: the API server answers protobuf for its
// built-in kinds (Pods) and JSON for custom resources, which have no protobuf encoding.
inline constexpr std::string_view kAcceptProtobuf =
    "application/vnd.kubernetes.protobuf, application/json";
inline constexpr std::string_view kProtobufMediaType = "application/vnd.kubernetes.protobuf";

enum class Verb { kGet, kPost, kPut, kPatch, kDelete };
std::string_view VerbName(Verb verb);

// One HTTP request to the API server, as the transport sees it.
struct Request {
  Verb verb = Verb::kGet;
  std::string path;  // already escaped
  std::vector<std::pair<std::string, std::string>> query;
  std::string body;
  std::string content_type;
  std::string accept = "application/json";
  // For messages: "list pods", "patch capabilityreports prod/deployment-web".
  std::string what;
  // A GET may hand the body of a 2xx answer here as it arrives instead of returning it (Send
  // then returns an empty body); false from it abandons the response. Once a byte went here,
  // a failure is returned rather than retried.
  std::function<bool(std::string_view)> on_body;

  // Reads (GET) are retried on 429 and 5xx; writes only on 429, which the API server sends
  // before it did anything.
  bool IsRead() const { return verb == Verb::kGet; }
};

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int limit = 0;  // 0: no pagination
  std::string continue_token;
  std::string resource_version;
  std::string resource_version_match;
  bool metadata_only = false;  // PartialObjectMetadataList
  // Accept protobuf (kAcceptProtobuf): a list's body is then protobuf or JSON, as its first
  // bytes say ("k8s\0"); a watch's events are length-prefixed frames when the response's
  // Content-Type is protobuf, JSON lines otherwise.
  bool protobuf = false;
  // Watch only.
  int timeout_seconds = 0;
  bool allow_watch_bookmarks = true;
};

enum class PatchType { kMerge, kJsonPatch, kStrategicMerge, kApply };
std::string_view PatchContentType(PatchType type);

struct WriteOptions {
  std::string subresource;  // "status" for the status subresource
  bool dry_run = false;
  // Server-side apply only: take ownership of fields other managers own.
  bool force = false;
  // Delete only: the API server refuses (409) unless the object still has this uid and
  // resourceVersion, so a delete never removes an object someone wrote since we read it.
  std::string precondition_uid;
  std::string precondition_resource_version;
};

// The lines of a streaming watch response, handed out as they arrive.
class WatchStream {
 public:
  virtual ~WatchStream() = default;
  // Blocks until the next complete line (of a protobuf watch: the next frame, one event).
  // Returns false at the end of the stream: a clean end
  // (the server's timeoutSeconds) leaves status() ok, anything else (a dropped connection, a
  // read timeout, a cancel) sets it.
  [[nodiscard]] virtual bool NextLine(std::string& line) = 0;
  virtual const ApiStatus& status() const = 0;
};

// The API server, behind the narrow interface tests wrap to fail chosen calls. Two virtual
// operations (a request, a watch); the verbs are helpers over them.
class KubeClient {
 public:
  virtual ~KubeClient() = default;

  // Sends a request and returns the response body of a 2xx answer, or the status.
  virtual Result<std::string> Send(const Request& request, const std::stop_token& stop) = 0;
  // Opens a watch; the stream ends when the server closes it or `stop` is requested.
  virtual Result<std::unique_ptr<WatchStream>> Watch(const ResourceRef& resource,
                                                     const ListOptions& options,
                                                     const std::stop_token& stop) = 0;

  Result<std::string> Get(const ResourceRef& r, std::string_view name,
                          std::string_view subresource = {}, const std::stop_token& stop = {});
  Result<std::string> List(const ResourceRef& r, const ListOptions& options,
                           const std::stop_token& stop = {});
  // The same list, its body handed to `on_body` as it arrives (in one piece from a client
  // that does not stream).
  ApiStatus ListInto(const ResourceRef& r, const ListOptions& options,
                     const std::function<bool(std::string_view)>& on_body,
                     const std::stop_token& stop = {});
  Result<std::string> Create(const ResourceRef& r, std::string body,
                             const WriteOptions& options = {}, const std::stop_token& stop = {});
  // PUT; the body carries metadata.resourceVersion for optimistic concurrency (409 on a race).
  Result<std::string> Update(const ResourceRef& r, std::string_view name, std::string body,
                             const WriteOptions& options = {}, const std::stop_token& stop = {});
  // Merge, JSON patch, strategic merge, or server-side apply with field manager "capwatch".
  Result<std::string> Patch(const ResourceRef& r, std::string_view name, PatchType type,
                            std::string body, const WriteOptions& options = {},
                            const std::stop_token& stop = {});
  Result<std::string> Delete(const ResourceRef& r, std::string_view name,
                             const WriteOptions& options = {}, const std::stop_token& stop = {});

  // The query parameters of a list or watch.
  static std::vector<std::pair<std::string, std::string>> ListQuery(const ListOptions& options,
                                                                    bool watch);
};

}  // namespace capwatch::kube
