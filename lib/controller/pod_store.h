#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "workload/pod_view.h"

namespace capwatch::controller {

// Strings that repeat across Pods (namespaces, label keys and values, images, owner names and
// uids, container names, capability names), stored once with a reference count. Ids are
// reused after their last reference goes. Not thread-safe: the informer serialises access.
class StringPool {
 public:
  std::uint32_t Intern(std::string_view s);  // takes a reference
  void Release(std::uint32_t id);
  const std::string& Get(std::uint32_t id) const { return entries_[id].value; }
  std::size_t size() const { return index_.size(); }

 private:
  struct Entry {
    std::string value;
    std::uint32_t refs = 0;
  };
  std::deque<Entry> entries_;  // a deque: entries never move, index_ points into them
  std::vector<std::uint32_t> free_;
  std::unordered_map<std::string_view, std::uint32_t> index_;
};

// A PodView packed into one allocation (every field of PodView: a field added there must be
// added to Pack and Walk in pod_store.cpp, which kube_pod_store_test checks): the Pod's own strings
// (name, uid, resourceVersion) inline, everything that repeats as a StringPool id, all lengths and
// ids as varints. About 150 bytes for a Pod whose PodView takes 2.4 KB of heap (see
// test/bench/watch_bench.cpp).
class PackedPod {
 public:
  PackedPod() = default;
  const std::uint8_t* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  static PackedPod Pack(const PodView& pod, StringPool& pool);
  PodView Unpack(const StringPool& pool) const;
  // Drops the pool references this Pod holds; the PackedPod is empty afterwards.
  void Release(StringPool& pool);
  std::string_view resource_version() const;

 private:
  std::unique_ptr<std::uint8_t[]> data_;
  std::uint32_t size_ = 0;
};

}  // namespace capwatch::controller
