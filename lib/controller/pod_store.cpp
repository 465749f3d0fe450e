#include "controller/pod_store.h"

#include <cstring>

namespace capwatch::controller {

std::uint32_t StringPool::Intern(std::string_view s) {
  if (auto it = index_.find(s); it != index_.end()) {
    ++entries_[it->second].refs;
    return it->second;
  }
  std::uint32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<std::uint32_t>(entries_.size());
    entries_.emplace_back();
  }
  Entry& e = entries_[id];
  e.value.assign(s);
  e.value.shrink_to_fit();
  e.refs = 1;
  index_.emplace(std::string_view(e.value), id);
  return id;
}

void StringPool::Release(std::uint32_t id) {
  Entry& e = entries_[id];
  if (--e.refs != 0) return;
  index_.erase(std::string_view(e.value));
  std::string().swap(e.value);
  free_.push_back(id);
}

namespace {

// The layout, in order (v = varint, s = varint length + bytes, id = pool id as a varint,
// b = one byte, ob = optional bool 0/1/2, oi = optional int: b flag + zigzag varint):
//   s name, s uid, s resourceVersion, oi created, id namespace, id os, ob runAsNonRoot,
//   oi runAsUser, ob hostUsers,
//   v #labels {id key, id value}, v #justifications {id key, id value},
//   v #owners {id apiVersion, id kind, id name, id uid, b controller},
//   v #containers {id name, b type, id image, ob privileged, ob allowPrivilegeEscalation,
//                  ob runAsNonRoot, oi runAsUser, v #add {id}, v #drop {id}},
//   v #unreadable {s path, s reason, id container}
class Writer {
 public:
  void Var(std::uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<std::uint8_t>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<std::uint8_t>(v));
  }
  void Str(std::string_view s) {
    Var(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void Byte(std::uint8_t b) { out_.push_back(b); }
  void OptBool(const std::optional<bool>& b) { Byte(!b ? 0 : (*b ? 2 : 1)); }
  void OptInt(const std::optional<std::int64_t>& i) {
    Byte(i ? 1 : 0);
    if (i) Var((static_cast<std::uint64_t>(*i) << 1) ^ static_cast<std::uint64_t>(*i >> 63));
  }
  std::vector<std::uint8_t>& out() { return out_; }

 private:
  std::vector<std::uint8_t> out_;
};

class Reader {
 public:
  explicit Reader(const std::uint8_t* p) : p_(p) {}
  std::uint64_t Var() {
    std::uint64_t v = 0;
    int shift = 0;
    while (*p_ & 0x80) {
      v |= static_cast<std::uint64_t>(*p_++ & 0x7F) << shift;
      shift += 7;
    }
    v |= static_cast<std::uint64_t>(*p_++) << shift;
    return v;
  }
  std::uint32_t Id() { return static_cast<std::uint32_t>(Var()); }
  std::string_view Str() {
    const std::size_t n = Var();
    std::string_view s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  std::uint8_t Byte() { return *p_++; }
  std::optional<bool> OptBool() {
    const std::uint8_t b = Byte();
    if (b == 0) return std::nullopt;
    return b == 2;
  }
  std::optional<std::int64_t> OptInt() {
    if (Byte() == 0) return std::nullopt;
    const std::uint64_t z = Var();
    return static_cast<std::int64_t>((z >> 1) ^ (~(z & 1) + 1));
  }

 private:
  const std::uint8_t* p_;
};

// Walks the layout once, for Unpack and Release alike: `on_id(id, slot)` gets each pool id
// with the string it belongs in (nullptr when the caller only counts references).
template <typename OnId>
void Walk(const std::uint8_t* data, PodView* out, OnId&& on_id) {
  Reader r(data);
  auto str = [&](std::string* into) {
    std::string_view s = r.Str();
    if (into) into->assign(s);
  };
  str(out ? &out->name : nullptr);
  str(out ? &out->uid : nullptr);
  str(out ? &out->resource_version : nullptr);
  const auto created = r.OptInt();
  on_id(r.Id(), out ? &out->namespace_name : nullptr);
  on_id(r.Id(), out ? &out->os : nullptr);
  auto non_root = r.OptBool();
  auto user = r.OptInt();
  auto host_users = r.OptBool();
  if (out) {
    out->created = created.value_or(0);
    out->run_as_non_root = non_root;
    out->run_as_user = user;
    out->host_users = host_users;
  }
  for (auto* pairs : {out ? &out->labels : nullptr, out ? &out->justifications : nullptr}) {
    const std::size_t n = r.Var();
    if (pairs) pairs->resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      on_id(r.Id(), pairs ? &(*pairs)[i].first : nullptr);
      on_id(r.Id(), pairs ? &(*pairs)[i].second : nullptr);
    }
  }
  const std::size_t owners = r.Var();
  if (out) out->owners.resize(owners);
  for (std::size_t i = 0; i < owners; ++i) {
    OwnerReference* o = out ? &out->owners[i] : nullptr;
    on_id(r.Id(), o ? &o->api_version : nullptr);
    on_id(r.Id(), o ? &o->kind : nullptr);
    on_id(r.Id(), o ? &o->name : nullptr);
    on_id(r.Id(), o ? &o->uid : nullptr);
    const bool controller = r.Byte() != 0;
    if (o) o->controller = controller;
  }
  const std::size_t containers = r.Var();
  if (out) out->containers.resize(containers);
  for (std::size_t i = 0; i < containers; ++i) {
    ContainerView* c = out ? &out->containers[i] : nullptr;
    on_id(r.Id(), c ? &c->name : nullptr);
    const auto type = static_cast<ContainerType>(r.Byte());
    on_id(r.Id(), c ? &c->image : nullptr);
    auto privileged = r.OptBool();
    auto escalation = r.OptBool();
    auto container_non_root = r.OptBool();
    auto container_user = r.OptInt();
    if (c) {
      c->type = type;
      c->privileged = privileged;
      c->allow_privilege_escalation = escalation;
      c->run_as_non_root = container_non_root;
      c->run_as_user = container_user;
    }
    for (auto* list : {c ? &c->add : nullptr, c ? &c->drop : nullptr}) {
      const std::size_t n = r.Var();
      if (list) list->resize(n);
      for (std::size_t k = 0; k < n; ++k) on_id(r.Id(), list ? &(*list)[k] : nullptr);
    }
  }
  const std::size_t unreadable = r.Var();
  if (out) out->unreadable.resize(unreadable);
  for (std::size_t i = 0; i < unreadable; ++i) {
    UnreadableField* u = out ? &out->unreadable[i] : nullptr;
    str(u ? &u->path : nullptr);
    str(u ? &u->reason : nullptr);
    on_id(r.Id(), u ? &u->container : nullptr);
  }
}

}  // namespace

PackedPod PackedPod::Pack(const PodView& pod, StringPool& pool) {
  Writer w;
  w.out().reserve(256);
  auto id = [&](std::string_view s) { w.Var(pool.Intern(s)); };
  w.Str(pod.name);
  w.Str(pod.uid);
  w.Str(pod.resource_version);
  w.OptInt(pod.created == 0 ? std::nullopt : std::optional<std::int64_t>(pod.created));
  id(pod.namespace_name);
  id(pod.os);
  w.OptBool(pod.run_as_non_root);
  w.OptInt(pod.run_as_user);
  w.OptBool(pod.host_users);
  for (const auto* pairs : {&pod.labels, &pod.justifications}) {
    w.Var(pairs->size());
    for (const auto& [k, v] : *pairs) {
      id(k);
      id(v);
    }
  }
  w.Var(pod.owners.size());
  for (const auto& o : pod.owners) {
    id(o.api_version);
    id(o.kind);
    id(o.name);
    id(o.uid);
    w.Byte(o.controller ? 1 : 0);
  }
  w.Var(pod.containers.size());
  for (const auto& c : pod.containers) {
    id(c.name);
    w.Byte(static_cast<std::uint8_t>(c.type));
    id(c.image);
    w.OptBool(c.privileged);
    w.OptBool(c.allow_privilege_escalation);
    w.OptBool(c.run_as_non_root);
    w.OptInt(c.run_as_user);
    for (const auto* list : {&c.add, &c.drop}) {
      w.Var(list->size());
      for (const auto& s : *list) id(s);
    }
  }
  w.Var(pod.unreadable.size());
  for (const auto& u : pod.unreadable) {
    w.Str(u.path);
    w.Str(u.reason);
    id(u.container);
  }
  PackedPod packed;
  packed.size_ = static_cast<std::uint32_t>(w.out().size());
  packed.data_.reset(new std::uint8_t[packed.size_]);
  std::memcpy(packed.data_.get(), w.out().data(), packed.size_);
  return packed;
}

PodView PackedPod::Unpack(const StringPool& pool) const {
  PodView pod;
  if (empty()) return pod;
  Walk(data_.get(), &pod, [&](std::uint32_t id, std::string* into) { *into = pool.Get(id); });
  return pod;
}

void PackedPod::Release(StringPool& pool) {
  if (empty()) return;
  Walk(data_.get(), nullptr, [&](std::uint32_t id, std::string*) { pool.Release(id); });
  data_.reset();
  size_ = 0;
}

std::string_view PackedPod::resource_version() const {
  if (empty()) return {};
  Reader r(data_.get());
  r.Str();
  r.Str();
  return r.Str();
}

}  // namespace capwatch::controller
