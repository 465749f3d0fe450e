#include <gtest/gtest.h>

#include <set>

#include "capabilities/capability_names.h"
#include "capabilities/catalog.h"

namespace capwatch {
namespace {

TEST(Catalog, HasAll41CapabilitiesNumberedInOrder) {
  const auto& catalog = Catalog();
  ASSERT_EQ(catalog.size(), 41u);
  std::set<std::string_view> names;
  for (int i = 0; i < kCapabilityCount; ++i) {
    EXPECT_EQ(catalog[i].number, i);
    EXPECT_FALSE(catalog[i].reason.empty()) << catalog[i].name;
    EXPECT_NE(catalog[i].severity, Severity::kNone) << catalog[i].name;
    names.insert(catalog[i].name);
  }
  EXPECT_EQ(names.size(), 41u);
  EXPECT_EQ(catalog[0].name, "CHOWN");
  EXPECT_EQ(catalog[21].name, "SYS_ADMIN");
  EXPECT_EQ(catalog[40].name, "CHECKPOINT_RESTORE");
}

TEST(Catalog, ContainerdDefaultSetIsTheFourteen) {
  const CapabilitySet set = RuntimeDefaultSet(Runtime::kContainerd);
  EXPECT_EQ(CountOf(set), 14);
  for (auto name :
       {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}) {
    EXPECT_TRUE(Contains(set, *CapabilityNumber(name))) << name;
  }
  EXPECT_EQ(RuntimeDefaultSet(Runtime::kDocker), set);
}

TEST(Catalog, CrioDefaultIsSmallerAndLacksNetRaw) {
  const CapabilitySet crio = RuntimeDefaultSet(Runtime::kCrio);
  EXPECT_EQ(CountOf(crio), 9);
  EXPECT_EQ(crio & ~RuntimeDefaultSet(Runtime::kContainerd), 0u);
  EXPECT_FALSE(Contains(crio, *CapabilityNumber("NET_RAW")));
}

TEST(Catalog, BaselineAllowsContainerdDefaultsWithoutNetRaw) {
  const CapabilitySet baseline = BaselineAllowedAdds();
  EXPECT_EQ(CountOf(baseline), 13);
  EXPECT_FALSE(Contains(baseline, *CapabilityNumber("NET_RAW")));
  EXPECT_TRUE(Contains(baseline, *CapabilityNumber("NET_BIND_SERVICE")));
}

TEST(Catalog, DangerousSetHoldsTheGuidesFiveAndCapwatchsAdditions) {
  const CapabilitySet dangerous = DangerousSet();
  for (auto name :
       {"SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE", "DAC_OVERRIDE", "SYS_RAWIO", "BPF", "PERFMON",
        "DAC_READ_SEARCH", "NET_ADMIN", "SYS_BOOT", "MAC_ADMIN", "MAC_OVERRIDE"}) {
    EXPECT_TRUE(Contains(dangerous, *CapabilityNumber(name))) << name;
  }
  EXPECT_EQ(CountOf(dangerous), 12);
  EXPECT_FALSE(Contains(dangerous, *CapabilityNumber("NET_BIND_SERVICE")));
}

struct NameCase {
  std::string written;
  CapabilityName::Kind kind;
  std::string canonical;  // for capabilities
  bool canonical_spelling;
};

// Test names and failure messages show the case, not its bytes.
void PrintTo(const NameCase& c, std::ostream* os) { *os << c.written; }

class CapabilityNameTest : public ::testing::TestWithParam<NameCase> {};

TEST_P(CapabilityNameTest, Normalises) {
  const NameCase& c = GetParam();
  const CapabilityName name = ParseCapabilityName(c.written);
  EXPECT_EQ(name.kind, c.kind) << c.written;
  EXPECT_EQ(name.written, c.written) << "the user's spelling is kept";
  if (c.kind == CapabilityName::Kind::kCapability) {
    EXPECT_EQ(CapabilityByNumber(name.number).name, c.canonical);
  }
  EXPECT_EQ(name.is_canonical_spelling(), c.canonical_spelling) << c.written;
}

using K = CapabilityName::Kind;
INSTANTIATE_TEST_SUITE_P(
    Spellings, CapabilityNameTest,
    ::testing::Values(NameCase{"NET_BIND_SERVICE", K::kCapability, "NET_BIND_SERVICE", true},
                      NameCase{"net_bind_service", K::kCapability, "NET_BIND_SERVICE", false},
                      NameCase{"CAP_NET_RAW", K::kCapability, "NET_RAW", false},
                      NameCase{"cap_net_raw", K::kCapability, "NET_RAW", false},
                      NameCase{" SYS_ADMIN ", K::kCapability, "SYS_ADMIN", false},
                      NameCase{"Chown", K::kCapability, "CHOWN", false},
                      NameCase{"ALL", K::kAll, "", true}, NameCase{"all", K::kAll, "", false},
                      NameCase{"CAP_ALL", K::kAll, "", false},
                      NameCase{"NET_BIND", K::kUnknown, "", false},
                      NameCase{"", K::kUnknown, "", false},
                      NameCase{"CAP_", K::kUnknown, "", false},
                      NameCase{std::string(500, 'A'), K::kUnknown, "", false}));

TEST(CapabilityNames, SuggestsTheIntendedCapabilityForTypos) {
  EXPECT_EQ(SuggestCapability("NET_BIND"), "NET_BIND_SERVICE");
  EXPECT_EQ(SuggestCapability("SYS_ADMN"), "SYS_ADMIN");
  EXPECT_EQ(SuggestCapability("cap_sys_ptrace_x"), "SYS_PTRACE");
  EXPECT_EQ(SuggestCapability("KUBERNETES"), "");
}

}  // namespace
}  // namespace capwatch
