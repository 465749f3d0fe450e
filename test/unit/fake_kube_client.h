#pragma once

// An in-memory API server behind the KubeClient interface, shared by every controller test
// (client-go's fake clientset and object tracker, STYLE 10): objects with resourceVersions,
// uids and generations; list and watch from a resourceVersion; create (generateName), update
// with optimistic concurrency, merge patch (and the status subresource), server-side apply
// (create, or merge), delete with uid and
// resourceVersion preconditions; every request recorded; faults injected per verb and resource,
// including a write that commits and then fails as a timeout would.

#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "kube/kube_client.h"

namespace capwatch::testing {

class FakeKubeClient final : public kube::KubeClient {
 public:
  struct Action {
    kube::Verb verb;
    std::string resource;  // "capabilityreports", "events", "pods" ...
    std::string namespace_name;
    std::string name;  // empty for create and list
    std::string subresource;
    std::string body;
    bool ok = false;
  };
  // Called before each request; a status it returns answers the request instead.
  using Reactor = std::function<std::optional<kube::ApiStatus>(const kube::Request&)>;

  // KubeClient
  kube::Result<std::string> Send(const kube::Request& request,
                                 const std::stop_token& stop) override;
  kube::Result<std::unique_ptr<kube::WatchStream>> Watch(const kube::ResourceRef& resource,
                                                         const kube::ListOptions& options,
                                                         const std::stop_token& stop) override;

  // The server side, as other clients (kubectl, the kube-controller-manager) change it. Each
  // returns the object as stored.
  nlohmann::json Put(const kube::ResourceRef& resource, nlohmann::json object);  // create/replace
  bool Remove(const kube::ResourceRef& resource, const std::string& name);
  std::optional<nlohmann::json> Object(const kube::ResourceRef& resource,
                                       const std::string& name) const;
  std::vector<nlohmann::json> Objects(const kube::ResourceRef& resource) const;
  // Forgets the watch history: watches from older resourceVersions get 410 Gone.
  void Compact();

  // Faults, each consumed when it fires. `resource` "" matches every resource.
  void FailNext(kube::Verb verb, const std::string& resource, kube::ApiStatus status,
                int times = 1);
  // The write is applied, and the caller is told it failed (a timeout after the commit).
  void CommitThenFail(kube::Verb verb, const std::string& resource, kube::ApiStatus status,
                      int times = 1);
  void SetReactor(Reactor reactor);
  // A resource the server answers instead of storing (tokenreviews, subjectaccessreviews): a
  // create of it returns what `answer` makes of the request body.
  using Answer = std::function<nlohmann::json(const nlohmann::json& request)>;
  void SetAnswer(const std::string& resource, Answer answer);

  std::vector<Action> actions() const;
  int Count(kube::Verb verb, const std::string& resource, bool only_ok = true) const;
  void ClearActions();

 private:
  struct Parsed {
    std::string group_resource;  // "capwatch.io/capabilityreports", "/pods"
    std::string resource;
    std::string namespace_name;
    std::string name;
    std::string subresource;
  };
  struct HistoryEntry {
    long long rv;
    std::string group_resource;
    std::string namespace_name;
    std::string type;
    std::string object;
  };
  struct Fault {
    kube::Verb verb;
    std::string resource;
    kube::ApiStatus status;
    int times;
    bool commit;
  };

  static Parsed ParsePath(const std::string& path);
  static std::string GroupResource(const kube::ResourceRef& r);
  kube::Result<std::string> Handle(const kube::Request& request, const Parsed& p);
  nlohmann::json StoreLocked(const std::string& group_resource, nlohmann::json object,
                             const char* type);
  std::optional<kube::ApiStatus> TakeFault(kube::Verb verb, const std::string& resource,
                                           bool& commit);

  mutable std::mutex mu_;
  long long rv_ = 1000;
  long long compacted_ = 0;
  long long uid_ = 0;
  long long suffix_ = 0;
  // group/resource → "namespace/name" → object
  std::map<std::string, std::map<std::string, nlohmann::json>> objects_;
  std::vector<HistoryEntry> history_;
  std::vector<Fault> faults_;
  Reactor reactor_;
  std::map<std::string, Answer> answers_;
  std::vector<Action> actions_;
};

}  // namespace capwatch::testing
