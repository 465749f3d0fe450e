#include <gtest/gtest.h>

#include "controller/pod_store.h"

namespace capwatch::kube {
namespace {

// The Pod and owner-metadata informers live in lib/controller (capwatch_cluster_views).
using controller::PackedPod;
using controller::StringPool;

// Every field, as text, so two PodViews can be compared.
std::string Dump(const PodView& p) {
  auto ob = [](const std::optional<bool>& b) { return b ? (*b ? "true" : "false") : "unset"; };
  auto oi = [](const std::optional<std::int64_t>& i) { return i ? std::to_string(*i) : "unset"; };
  std::string s = p.namespace_name + "|" + p.name + "|" + p.uid + "|" + p.resource_version + "|" +
                  std::to_string(p.created) + "|" + p.os + "|" + ob(p.run_as_non_root) + "|" +
                  oi(p.run_as_user) + "|" + ob(p.host_users) + "\n";
  for (const auto& [k, v] : p.labels) s += "label " + k + "=" + v + "\n";
  for (const auto& [k, v] : p.justifications) s += "why " + k + "=" + v + "\n";
  for (const auto& o : p.owners) {
    s += "owner " + o.api_version + " " + o.kind + " " + o.name + " " + o.uid + " " +
         (o.controller ? "controller" : "") + "\n";
  }
  for (const auto& c : p.containers) {
    s += "container " + c.name + " " + std::string(ContainerTypeName(c.type)) + " " + c.image +
         " " + ob(c.privileged) + " " + ob(c.allow_privilege_escalation) + " " +
         ob(c.run_as_non_root) + " " + oi(c.run_as_user) + " add";
    for (const auto& a : c.add) s += " " + a;
    s += " drop";
    for (const auto& d : c.drop) s += " " + d;
    s += "\n";
  }
  for (const auto& u : p.unreadable)
    s += "unreadable " + u.path + " " + u.reason + " " + u.container + "\n";
  return s;
}

PodView Sample(const std::string& name) {
  PodView p;
  p.namespace_name = "prod";
  p.name = name;
  p.uid = "0b5c7c4e-1f0e-4b9a-9a53-" + name;
  p.resource_version = "123456789";
  p.created = 1795996800;
  p.host_users = false;
  p.labels = {{"app", "web"}, {"pod-template-hash", "5d4f8c6b7"}};
  p.justifications = {{"NET_BIND_SERVICE", "binds :80 for legacy clients"}};
  p.owners = {{"apps/v1", "ReplicaSet", "web-5d4f8c6b7", "rs-uid-1", true}};
  p.run_as_non_root = true;
  p.run_as_user = -5;  // negative numbers survive the zigzag encoding
  ContainerView app;
  app.name = "app";
  app.image = "registry.example.com/team/web:1.2.3";
  app.add = {"NET_BIND_SERVICE"};
  app.drop = {"ALL"};
  app.allow_privilege_escalation = false;
  app.run_as_user = 1LL << 40;
  ContainerView init;
  init.name = "init";
  init.type = ContainerType::kInitContainer;
  init.image = "busybox";
  init.privileged = true;
  ContainerView debug;
  debug.name = "debugger";
  debug.type = ContainerType::kEphemeralContainer;
  debug.image = "";
  p.containers = {app, init, debug};
  p.unreadable = {{".spec.containers[0].securityContext.capabilities.add[3]",
                   "expected a string, got a number", "app"},
                  {".spec.os.name", "expected a string, got an object", ""}};
  return p;
}

TEST(PackedPod, RoundTripsEveryField) {
  // A tripwire: PodView grew or shrank. Pack and Walk (pod_store.cpp) and Dump above must
  // carry the new field before this size is updated.
  EXPECT_EQ(sizeof(PodView), 320u) << "PodView changed: update PackedPod and this test";
  EXPECT_EQ(sizeof(ContainerView), 144u) << "ContainerView changed: update PackedPod";
  EXPECT_EQ(sizeof(OwnerReference), 136u) << "OwnerReference changed: update PackedPod";
  StringPool pool;
  const PodView pod = Sample("web-5d4f8c6b7-abcde");
  PackedPod packed = PackedPod::Pack(pod, pool);
  EXPECT_EQ(Dump(packed.Unpack(pool)), Dump(pod));
  EXPECT_EQ(packed.resource_version(), "123456789");
  PodView readable = pod;  // the common case: every field could be read
  readable.unreadable.clear();
  EXPECT_LT(PackedPod::Pack(readable, pool).size(), 200u);
  EXPECT_EQ(Dump(PackedPod::Pack(PodView{}, pool).Unpack(pool)), Dump(PodView{}));
}

TEST(PackedPod, SharesRepeatedStringsAndFreesThemWithTheLastPod) {
  StringPool pool;
  PackedPod a = PackedPod::Pack(Sample("web-1"), pool);
  const std::size_t after_one = pool.size();
  PackedPod b = PackedPod::Pack(Sample("web-2"), pool);
  EXPECT_EQ(pool.size(), after_one) << "a second Pod of the same workload adds no strings";
  a.Release(pool);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(pool.size(), after_one) << "still referenced by b";
  EXPECT_EQ(Dump(b.Unpack(pool)), Dump(Sample("web-2")));
  b.Release(pool);
  EXPECT_EQ(pool.size(), 0u);
  // Freed ids are reused.
  PackedPod c = PackedPod::Pack(Sample("web-3"), pool);
  EXPECT_EQ(pool.size(), after_one);
  EXPECT_EQ(Dump(c.Unpack(pool)), Dump(Sample("web-3")));
  c.Release(pool);
}

}  // namespace
}  // namespace capwatch::kube
