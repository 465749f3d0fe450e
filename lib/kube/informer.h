#pragma once

#include <condition_variable>
#include <exception>
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
// out const views. `Codec` turns API JSON into T and says how T is stored:
//   Status DecodeList(std::string_view body, const std::function<void(T&&)>&, ListPageMeta&);
//   capwatch::Result<T> Decode(std::string_view object);
//   using Stored = ...;                      // what the cache keeps per object
//   Stored Pack(const T&) and/or Pack(T&&);  // called under the cache's lock
//   std::shared_ptr<const T> Unpack(const Stored&) const;
//   std::string_view ResourceVersion(const Stored&) const;
//   void Release(Stored&);                   // called under the cache's lock
// T has namespace_name, name and resource_version. Only the informer's thread writes the
// cache (and the codec's shared state); readers on other threads take the lock.
template <typename T, typename Codec>
class Informer final : public ReflectorStore {
 public:
  using Ptr = std::shared_ptr<const T>;
  using Stored = typename Codec::Stored;

  Informer(KubeClient& client, Clock& clock, ReflectorOptions options)
      : reflector_(client, *this, clock, std::move(options)) {}
  ~Informer() override {
    std::lock_guard lock(mu_);
    for (auto& [k, v] : items_) codec_.Release(v);
    for (auto& [k, v] : pending_) codec_.Release(v);
  }

  // Before Run.
  void AddHandlers(InformerHandlers<T> handlers) { handlers_.push_back(std::move(handlers)); }
  void Run(const std::stop_token& stop) { reflector_.Run(stop); }

  // True once the first complete list is in the cache and the handlers have been told of it.
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
    return it == items_.end() ? nullptr : codec_.Unpack(it->second);
  }
  // A snapshot of every cached object. For Pods each one is unpacked (about 1 us and 2.4 KB
  // apiece, under the cache's lock): prefer Get, or ForEach with a namespace prefix.
  std::vector<Ptr> List() const {
    std::lock_guard lock(mu_);
    std::vector<Ptr> out;
    out.reserve(items_.size());
    for (const auto& [k, v] : items_) out.push_back(codec_.Unpack(v));
    return out;
  }
  // Calls `fn` with each object whose key starts with `prefix` ("prod/" for one namespace).
  template <typename Fn>
  void ForEach(Fn&& fn, std::string_view prefix = {}) const {
    std::lock_guard lock(mu_);
    for (const auto& [k, v] : items_) {
      if (std::string_view(k).substr(0, prefix.size()) == prefix) fn(*codec_.Unpack(v));
    }
  }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }
  Reflector& reflector() { return reflector_; }
  const Codec& codec() const { return codec_; }

  // ReflectorStore
  void BeginList() override {
    std::lock_guard lock(mu_);
    for (auto& [k, v] : pending_) codec_.Release(v);
    pending_.clear();
  }

  // The codecs do not throw; should one anyway (or a handler), the exception stops here, on the
  // informer's thread, and the page or event counts as undecodable: the reflector backs off or
  // relists instead of the process ending.
  Status AddListPage(std::string_view body, ListPageMeta& meta) override {
    try {
      return codec_.DecodeList(
          body,
          [this, &meta](T&& obj) {
            ++meta.items;
            std::string key = ObjectKey(obj.namespace_name, obj.name);
            std::lock_guard lock(mu_);
            Stored stored = codec_.Pack(std::move(obj));
            auto [it, inserted] = pending_.try_emplace(std::move(key));
            if (!inserted) codec_.Release(it->second);
            it->second = std::move(stored);
          },
          meta);
    } catch (const std::exception& e) {
      return Error(std::string("decoding the page threw: ") + e.what());
    } catch (...) {
      return Error("decoding the page threw an unknown exception");
    }
  }

  void CommitList() override {
    // Swap in the new state under the lock, then tell handlers what differs. This thread is
    // the only writer, so it reads items_ without the lock.
    std::unordered_map<std::string, Stored> old;
    {
      std::lock_guard lock(mu_);
      old.swap(items_);
      items_.swap(pending_);
    }
    const bool notify = !handlers_.empty();
    for (const auto& [key, stored] : items_) {
      auto it = old.find(key);
      if (it == old.end()) {
        if (notify) {
          Ptr obj = codec_.Unpack(stored);
          Notify([&](auto& h) {
            if (h.on_add) h.on_add(*obj);
          });
        }
        continue;
      }
      if (notify && codec_.ResourceVersion(it->second) != codec_.ResourceVersion(stored)) {
        Ptr before = codec_.Unpack(it->second);
        Ptr now = codec_.Unpack(stored);
        Notify([&](auto& h) {
          if (h.on_update) h.on_update(*before, *now);
        });
      }
      std::lock_guard lock(mu_);
      codec_.Release(it->second);
      old.erase(it);
    }
    for (auto& [key, stored] : old) {
      if (notify) {
        Ptr obj = codec_.Unpack(stored);
        Notify([&](auto& h) {
          if (h.on_delete) h.on_delete(*obj);
        });
      }
      std::lock_guard lock(mu_);
      codec_.Release(stored);
    }
    // Synced once the handlers have heard of every object of the first list.
    {
      std::lock_guard lock(mu_);
      synced_ = true;
    }
    synced_cv_.notify_all();
  }

  capwatch::Result<std::string> ApplyEvent(WatchEventType type,
                                           std::string_view object) override {
    try {
      return ApplyDecoded(type, object);
    } catch (const std::exception& e) {
      return Error(std::string("applying the event threw: ") + e.what());
    } catch (...) {
      return Error("applying the event threw an unknown exception");
    }
  }

 private:
  capwatch::Result<std::string> ApplyDecoded(WatchEventType type, std::string_view object) {
    auto decoded = codec_.Decode(object);
    if (!decoded.ok()) return decoded.error();
    T& obj = decoded.value();
    std::string resource_version = obj.resource_version;
    std::string key = ObjectKey(obj.namespace_name, obj.name);
    const bool notify = !handlers_.empty();
    Ptr previous;
    auto it = items_.find(key);  // only this thread writes items_
    if (notify && it != items_.end()) previous = codec_.Unpack(it->second);
    if (type == WatchEventType::kDeleted) {
      if (it != items_.end()) {
        std::lock_guard lock(mu_);
        codec_.Release(it->second);
        items_.erase(it);
      }
      if (notify)
        Notify([&](auto& h) {
          if (h.on_delete) h.on_delete(obj);
        });
      return resource_version;
    }
    {
      std::lock_guard lock(mu_);
      // Handlers still need obj; without them it can be moved into the cache.
      Stored stored = notify ? codec_.Pack(std::as_const(obj)) : codec_.Pack(std::move(obj));
      if (it != items_.end()) {
        codec_.Release(it->second);
        it->second = std::move(stored);
      } else {
        items_.emplace(std::move(key), std::move(stored));
      }
    }
    if (!notify) return resource_version;
    if (previous) {
      Notify([&](auto& h) {
        if (h.on_update) h.on_update(*previous, obj);
      });
    } else {
      Notify([&](auto& h) {
        if (h.on_add) h.on_add(obj);
      });
    }
    return resource_version;
  }

  template <typename Fn>
  void Notify(Fn&& fn) {
    for (auto& h : handlers_) fn(h);
  }

  Reflector reflector_;
  mutable Codec codec_;
  std::vector<InformerHandlers<T>> handlers_;
  mutable std::mutex mu_;
  mutable std::condition_variable_any synced_cv_;
  std::unordered_map<std::string, Stored> items_;
  std::unordered_map<std::string, Stored> pending_;  // the list being read
  bool synced_ = false;
};

// For codecs that keep T as it is, shared.
template <typename T>
struct SharedStorage {
  using Stored = std::shared_ptr<const T>;
  Stored Pack(T&& obj) { return std::make_shared<const T>(std::move(obj)); }
  Stored Pack(const T& obj) { return std::make_shared<const T>(obj); }
  std::shared_ptr<const T> Unpack(const Stored& s) const { return s; }
  std::string_view ResourceVersion(const Stored& s) const { return s->resource_version; }
  void Release(Stored& s) { s.reset(); }
};

}  // namespace capwatch::kube
