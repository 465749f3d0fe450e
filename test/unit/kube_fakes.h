#pragma once

// Test doubles for lib/kube: a clock that sleeps by moving time, and a Pods API server model
// with switches for the faults the watch loop must survive.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "fake_clock.h"
#include "kube/clock.h"
#include "kube_fake_server.h"

namespace capwatch::kube::testing {

// Pod JSON shaped like the API server's: metadata with labels, owner and managedFields, a
// spec with containers and a securityContext, and a status.
std::string MakePodJson(const std::string& ns, const std::string& name, long long rv,
                        const std::string& image_tag, bool compact = true);

// The Pods API of one API server: list with pagination, watch from a resourceVersion, and
// an event history that Compact() cuts (older resourceVersions then get 410 Gone).
class FakePodsApi {
 public:
  struct Event {
    long long rv;
    std::string type;
    std::string object;
  };

  // Creates or changes a pod (ADDED / MODIFIED), returns its new resourceVersion.
  long long Upsert(const std::string& ns, const std::string& name, const std::string& tag = "v1");
  long long Remove(const std::string& ns, const std::string& name);
  // Forget the history: a watch from an older resourceVersion is answered 410.
  void Compact();
  // Applies `changes` (calls to UpsertLocked/RemoveLocked) that no watcher sees, compacts, and
  // ends open watches with ERROR 410, as etcd compaction during a disconnect looks to a client.
  void ChangeUnseenAndExpire(const std::function<void(FakePodsApi&)>& changes);
  long long UpsertLocked(const std::string& ns, const std::string& name, const std::string& tag);
  long long RemoveLocked(const std::string& ns, const std::string& name);
  // namespace/name -> image tag, the server's state.
  std::map<std::string, std::string> State() const;
  long long rv() const;
  // Other objects changed: the resourceVersion moves on without a Pod event.
  long long BumpRv();

  void Handle(const HttpRequest& req, Connection& conn);

  // Faults, each consumed when it fires.
  std::atomic<int> list_500{0};              // next N lists answer 500
  std::atomic<int> expire_continue{0};       // next N continue tokens are Expired
  std::atomic<int> watch_gone_http{0};       // next N watches answer HTTP 410
  std::atomic<int> watch_error_500{0};       // next N watches send an ERROR event with code 500
  std::atomic<int> drop_mid_event{0};        // next N watches drop the connection mid-event
  std::atomic<int> hang_watch{0};            // next N watches send headers and then nothing
  std::atomic<bool> byte_chunks{false};      // send each byte of a watch as its own chunk
  std::atomic<bool> bookmark_at_end{false};  // a BOOKMARK with the current rv before closing

  // Observations.
  std::atomic<int> lists{0};
  std::atomic<int> watches{0};
  std::vector<std::string> watch_rvs() const;  // resourceVersion of each watch request
  std::string last_accept() const;

 private:
  void List(const HttpRequest& req, Connection& conn);
  void Watch(const HttpRequest& req, Connection& conn);
  std::string Item(const std::string& key) const;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  long long rv_ = 100;
  long long compacted_ = 0;
  bool expire_open_watches_ = false;
  std::map<std::string, std::pair<std::string, long long>> pods_;  // key -> (tag, rv)
  std::vector<Event> history_;
  std::vector<std::string> watch_rvs_;
  std::string last_accept_;
};

std::string StatusJson(int code, const std::string& reason, const std::string& message);

}  // namespace capwatch::kube::testing
