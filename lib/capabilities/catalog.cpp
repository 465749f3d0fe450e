#include "capabilities/catalog.h"

#include <bit>

namespace capwatch {
namespace {

using S = Severity;

// Severity is capwatch's judgement of granting the capability to an application container;
// `dangerous` marks the default policy's forbidden set (DESIGN §1).
constexpr std::array<CapabilityInfo, kCapabilityCount> kCatalog = {{
    {0, "CHOWN", S::kLow, false, "change the owner of any file"},
    {1, "DAC_OVERRIDE", S::kHigh, true, "bypass file read, write and execute permission checks"},
    {2, "DAC_READ_SEARCH", S::kHigh, true,
     "read any file and open files by handle, which has been used to escape containers"},
    {3, "FOWNER", S::kLow, false, "bypass permission checks that require owning the file"},
    {4, "FSETID", S::kLow, false, "keep set-user-ID and set-group-ID bits when files change"},
    {5, "KILL", S::kLow, false, "send signals to processes of other users"},
    {6, "SETGID", S::kMedium, false, "switch to any group ID"},
    {7, "SETUID", S::kMedium, false, "switch to any user ID, including root"},
    {8, "SETPCAP", S::kMedium, false, "change the capability sets of its own threads"},
    {9, "LINUX_IMMUTABLE", S::kMedium, false, "set or clear the immutable and append-only flags"},
    {10, "NET_BIND_SERVICE", S::kLow, false, "bind to ports below 1024"},
    {11, "NET_BROADCAST", S::kLow, false, "send broadcast and listen to multicast"},
    {12, "NET_ADMIN", S::kHigh, true,
     "reconfigure interfaces, routes and firewall rules of the network namespace"},
    {13, "NET_RAW", S::kMedium, false,
     "open raw and packet sockets, which allows spoofing and ARP or DNS poisoning"},
    {14, "IPC_LOCK", S::kLow, false, "lock memory and so take it from the node"},
    {15, "IPC_OWNER", S::kMedium, false, "bypass permission checks on System V IPC objects"},
    {16, "SYS_MODULE", S::kCritical, true, "load kernel modules: full control of the node"},
    {17, "SYS_RAWIO", S::kCritical, true, "raw I/O on devices and memory: access to hardware"},
    {18, "SYS_CHROOT", S::kLow, false, "call chroot and change mount namespaces"},
    {19, "SYS_PTRACE", S::kCritical, true,
     "trace and modify other processes, reading their memory and secrets"},
    {20, "SYS_PACCT", S::kLow, false, "turn process accounting on or off"},
    {21, "SYS_ADMIN", S::kCritical, true,
     "mount filesystems and much more: close to full root, the usual container escape"},
    {22, "SYS_BOOT", S::kHigh, true, "reboot the node and load a new kernel"},
    {23, "SYS_NICE", S::kLow, false, "raise process priority and change scheduling of others"},
    {24, "SYS_RESOURCE", S::kMedium, false, "override resource limits and quotas"},
    {25, "SYS_TIME", S::kMedium, false, "set the system clock of the whole node"},
    {26, "SYS_TTY_CONFIG", S::kLow, false, "configure and hang up terminals"},
    {27, "MKNOD", S::kMedium, false, "create device files"},
    {28, "LEASE", S::kLow, false, "take leases on files owned by others"},
    {29, "AUDIT_WRITE", S::kLow, false, "write records to the kernel audit log"},
    {30, "AUDIT_CONTROL", S::kHigh, false, "change or disable kernel auditing"},
    {31, "SETFCAP", S::kMedium, false, "set file capabilities, granting them to programs"},
    {32, "MAC_OVERRIDE", S::kHigh, true, "bypass mandatory access control (SELinux, AppArmor)"},
    {33, "MAC_ADMIN", S::kHigh, true, "change mandatory access control policy"},
    {34, "SYSLOG", S::kMedium, false,
     "read and clear the kernel log, which leaks kernel addresses"},
    {35, "WAKE_ALARM", S::kLow, false, "set alarms that wake the node"},
    {36, "BLOCK_SUSPEND", S::kLow, false, "prevent the node from suspending"},
    {37, "AUDIT_READ", S::kMedium, false, "read the kernel audit log over netlink"},
    {38, "PERFMON", S::kHigh, true, "use performance monitoring, which observes other processes"},
    {39, "BPF", S::kCritical, true, "load eBPF programs into the kernel"},
    {40, "CHECKPOINT_RESTORE", S::kMedium, false,
     "checkpoint and restore processes, controlling their PIDs"},
}};

constexpr CapabilitySet SetOf(std::initializer_list<int> numbers) {
  CapabilitySet set = 0;
  for (int n : numbers) set |= Bit(n);
  return set;
}

// containerd and Docker (moby's oci/caps/defaults.go): 14 capabilities.
constexpr CapabilitySet kContainerdDefault =
    SetOf({0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31});
// CRI-O's default_capabilities since 1.18: 9 capabilities.
constexpr CapabilitySet kCrioDefault = SetOf({0, 1, 3, 4, 5, 6, 7, 8, 10});
// Pod Security Standards baseline: the containerd set without NET_RAW.
constexpr CapabilitySet kBaselineAllowed = kContainerdDefault & ~Bit(13);

}  // namespace

int CountOf(CapabilitySet set) { return std::popcount(set); }

const std::array<CapabilityInfo, kCapabilityCount>& Catalog() { return kCatalog; }

const CapabilityInfo& CapabilityByNumber(int number) { return kCatalog.at(number); }

std::optional<int> CapabilityNumber(std::string_view canonical_name) {
  for (const auto& info : kCatalog) {
    if (info.name == canonical_name) return info.number;
  }
  return std::nullopt;
}

std::string_view RuntimeName(Runtime runtime) {
  switch (runtime) {
    case Runtime::kContainerd:
      return "containerd";
    case Runtime::kDocker:
      return "docker";
    case Runtime::kCrio:
      return "cri-o";
  }
  return "containerd";
}

std::optional<Runtime> ParseRuntime(std::string_view name) {
  for (Runtime r : {Runtime::kContainerd, Runtime::kDocker, Runtime::kCrio}) {
    if (RuntimeName(r) == name) return r;
  }
  if (name == "crio") return Runtime::kCrio;
  return std::nullopt;
}

CapabilitySet RuntimeDefaultSet(Runtime runtime) {
  return runtime == Runtime::kCrio ? kCrioDefault : kContainerdDefault;
}

CapabilitySet DangerousSet() {
  CapabilitySet set = 0;
  for (const auto& info : kCatalog) {
    if (info.dangerous) set |= Bit(info.number);
  }
  return set;
}

CapabilitySet BaselineAllowedAdds() { return kBaselineAllowed; }

}  // namespace capwatch
