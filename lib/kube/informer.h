#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kube/reflector.h"

namespace capwatch::kube {

// Event handlers. They run on the informer's thread, after the cache has changed, and should
// only enqueue a key (STYLE 3).
template <typename T>
struct InformerHandlers {
  std::function<void(const T& obj)> on_add;
  std::function<void(const T& old_obj, const T& new_obj)> on_update;
  // With the object's last state as the DELETED event (or our cache, after a relist) had it.
  std::function<void(const T& obj)> on_delete;
};

// "namespace/name", or "name" for cluster-scoped objects: the key the cache and the work
// queue use.
std::string ObjectKey(std::string_view namespace_name, std::string_view name);

// A cache of compact projections of one kind of object, kept current by a Reflector, handing
// out const views. `Codec` turns API JSON into T:
//   bool DecodeList(std::string_view body, const std::function<void(T&&)>&, ListPageMeta&,
//                   std::string& error);
//   bool Decode(std::string_view object, T& out, std::string& error);
// T has namespace_name, name and resource_version.
template <typename T, typename Codec>
class Informer final : public ReflectorStore {
 public:
  using Ptr = std::shared_ptr<const T>;

  Informer(KubeClient& client, Clock& clock, ReflectorOptions options)
      : reflector_(client, *this, clock, std::move(options)) {}

  // Before Run.
  void AddHandlers(InformerHandlers<T> handlers) { handlers_.push_back(std::move(handlers)); }
  void Run(const std::stop_token& stop) { reflector_.Run(stop); }

  // True once the first complete list is in the cache.
  bool HasSynced() const {
    std::lock_guard lock(mu_);
    return synced_;
  }
  // Waits for HasSynced; false on timeout or stop.
  bool WaitForSync(const std::stop_token& stop, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    return synced_cv_.wait_for(lock, stop, timeout, [this] { return synced_; });
  }

  Ptr Get(std::string_view namespace_name, std::string_view name) const {
    const std::string key = ObjectKey(namespace_name, name);
    std::lock_guard lock(mu_);
    auto it = items_.find(key);
    return it == items_.end() ? nullptr : it->second;
  }
  // A snapshot of every cached object.
  std::vector<Ptr> List() const {
    std::lock_guard lock(mu_);
    std::vector<Ptr> out;
    out.reserve(items_.size());
    for (const auto& [k, v] : items_) out.push_back(v);
    return out;
  }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }
  Reflector& reflector() { return reflector_; }
  Codec& codec() { return codec_; }

  // ReflectorStore
  void BeginList() override { pending_.clear(); }

  bool AddListPage(std::string_view body, ListPageMeta& meta, std::string& error) override {
    return codec_.DecodeList(
        body,
        [this](T&& obj) {
          std::string key = ObjectKey(obj.namespace_name, obj.name);
          pending_.insert_or_assign(std::move(key), std::make_shared<const T>(std::move(obj)));
        },
        meta, error);
  }

  void CommitList() override {
    // Swap in the new state under the lock, then tell handlers what differs.
    std::unordered_map<std::string, Ptr> old;
    {
      std::lock_guard lock(mu_);
      old.swap(items_);
      items_ = std::move(pending_);
      pending_ = {};
      synced_ = true;
    }
    synced_cv_.notify_all();
    for (const auto& [key, obj] : ItemsSnapshotUnlocked()) {
      auto it = old.find(key);
      if (it == old.end()) {
        Notify([&](auto& h) { if (h.on_add) h.on_add(*obj); });
      } else {
        if (it->second->resource_version != obj->resource_version) {
          Notify([&](auto& h) { if (h.on_update) h.on_update(*it->second, *obj); });
        }
        old.erase(it);
      }
    }
    for (const auto& [key, obj] : old) {
      Notify([&](auto& h) { if (h.on_delete) h.on_delete(*obj); });
    }
  }

  bool ApplyEvent(WatchEventType type, std::string_view object, std::string& resource_version,
                  std::string& error) override {
    T obj;
    if (!codec_.Decode(object, obj, error)) return false;
    resource_version = obj.resource_version;
    std::string key = ObjectKey(obj.namespace_name, obj.name);
    auto now = std::make_shared<const T>(std::move(obj));
    Ptr previous;
    {
      std::lock_guard lock(mu_);
      auto it = items_.find(key);
      if (it != items_.end()) previous = it->second;
      if (type == WatchEventType::kDeleted) {
        if (it != items_.end()) items_.erase(it);
      } else if (it != items_.end()) {
        it->second = now;
      } else {
        items_.emplace(std::move(key), now);
      }
    }
    if (type == WatchEventType::kDeleted) {
      Notify([&](auto& h) { if (h.on_delete) h.on_delete(*now); });
    } else if (previous) {
      Notify([&](auto& h) { if (h.on_update) h.on_update(*previous, *now); });
    } else {
      Notify([&](auto& h) { if (h.on_add) h.on_add(*now); });
    }
    return true;
  }

 private:
  template <typename Fn>
  void Notify(Fn&& fn) {
    for (auto& h : handlers_) fn(h);
  }
  // Only the reflector thread writes items_, so it may read it without copying the map under
  // the lock; readers on other threads take the lock.
  const std::unordered_map<std::string, Ptr>& ItemsSnapshotUnlocked() const { return items_; }

  Reflector reflector_;
  Codec codec_;
  std::vector<InformerHandlers<T>> handlers_;
  mutable std::mutex mu_;
  mutable std::condition_variable_any synced_cv_;
  std::unordered_map<std::string, Ptr> items_;
  std::unordered_map<std::string, Ptr> pending_;  // the list being read
  bool synced_ = false;
};

}  // namespace capwatch::kube
