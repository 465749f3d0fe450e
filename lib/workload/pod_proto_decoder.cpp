#include "workload/pod_proto_decoder.h"

#include <algorithm>
#include <vector>

#include "base/protobuf_wire.h"
#include "base/utf8.h"

namespace capwatch {
namespace {

using proto::Field;
using proto::Reader;
using proto::WireType;

// Field numbers, from k8s.io/apimachinery (runtime, meta/v1) and k8s.io/api core/v1
// generated.proto.
namespace list {
constexpr std::uint32_t kMetadata = 1, kItems = 2;
}
namespace list_meta {
constexpr std::uint32_t kResourceVersion = 2, kContinue = 3;
}
namespace pod {
constexpr std::uint32_t kMetadata = 1, kSpec = 2;
}
namespace object_meta {
constexpr std::uint32_t kName = 1, kNamespace = 3, kUid = 5, kResourceVersion = 6,
                        kCreationTimestamp = 8, kLabels = 11, kAnnotations = 12,
                        kOwnerReferences = 13;
}
namespace owner {
constexpr std::uint32_t kKind = 1, kName = 3, kUid = 4, kApiVersion = 5, kController = 6;
}
namespace spec {
constexpr std::uint32_t kContainers = 2, kSecurityContext = 14, kInitContainers = 20,
                        kEphemeralContainers = 34, kOs = 36, kHostUsers = 37;
}
namespace pod_security_context {
constexpr std::uint32_t kRunAsUser = 2, kRunAsNonRoot = 3;
}
namespace container {
constexpr std::uint32_t kName = 1, kImage = 2, kSecurityContext = 15;
constexpr std::uint32_t kEphemeralCommon = 1;  // EphemeralContainer.ephemeralContainerCommon
}  // namespace container
namespace security_context {
constexpr std::uint32_t kCapabilities = 1, kPrivileged = 2, kRunAsUser = 4, kRunAsNonRoot = 5,
                        kAllowPrivilegeEscalation = 7;
}
namespace capabilities {
constexpr std::uint32_t kAdd = 1, kDrop = 2;
}

// Malformed bytes inside a Pod: the Pod cannot be read.
struct Malformed {
  std::string path;
  std::string message;
};

class Decoder {
 public:
  explicit Decoder(std::vector<UnreadableField>* unreadable) : unreadable_(unreadable) {}

  void Pod(std::string_view message, PodView& out) {
    ForEach(message, [&](const Field& f) {
      if (f.number == pod::kMetadata) {
        Scope s(*this, "metadata");
        if (Want(f, WireType::kLen, "an object")) Metadata(f.bytes, out);
      } else if (f.number == pod::kSpec) {
        Scope s(*this, "spec");
        if (Want(f, WireType::kLen, "an object")) Spec(f.bytes, out);
      }
    });
  }

 private:
  struct Frame {
    std::string_view key;
    int index = -1;
  };
  struct Scope {
    Decoder& d;
    Scope(Decoder& decoder, std::string_view key, int index = -1) : d(decoder) {
      d.path_.push_back({key, index});
    }
    ~Scope() { d.path_.pop_back(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
  };

  std::string Path() const {
    std::string out;
    for (const Frame& f : path_) {
      if (!f.key.empty()) out.append(".").append(f.key);
      if (f.index >= 0) out.append("[").append(std::to_string(f.index)).append("]");
    }
    return out;
  }

  template <typename Fn>
  void ForEach(std::string_view message, Fn&& fn) {
    Reader reader(message);
    Field f;
    while (reader.Next(f)) fn(f);
    if (!reader.error().empty()) throw Malformed{Path(), reader.error()};
  }

  void Unreadable(std::string reason) { unreadable_->push_back({Path(), std::move(reason), {}}); }

  // True when `f` has the wire type the field is declared with; otherwise records it.
  bool Want(const Field& f, WireType type, const char* expected) {
    if (f.type == type) return true;
    Unreadable(std::string("expected ") + expected + ", got " +
               std::string(proto::WireTypeName(f.type)));
    return false;
  }

  std::string String(const Field& f) {
    if (!Want(f, WireType::kLen, "a string")) return {};
    return ValidUtf8(f.bytes);
  }
  std::optional<bool> Bool(const Field& f) {
    if (!Want(f, WireType::kVarint, "a boolean")) return std::nullopt;
    return f.integer != 0;
  }
  std::optional<std::int64_t> Int64(const Field& f) {
    if (!Want(f, WireType::kVarint, "an integer")) return std::nullopt;
    return proto::AsInt64(f.integer);
  }

  // One entry of a map<string, string>: key and value.
  std::pair<std::string, std::string> MapEntry(std::string_view entry) {
    std::pair<std::string, std::string> kv;
    ForEach(entry, [&](const Field& f) {
      if (f.number == 1) {
        kv.first = String(f);
      } else if (f.number == 2) {
        kv.second = String(f);
      }
    });
    return kv;
  }

  void Owner(std::string_view message, OwnerReference& ref) {
    ForEach(message, [&](const Field& f) {
      switch (f.number) {
        case owner::kApiVersion: {
          Scope s(*this, "apiVersion");
          ref.api_version = String(f);
          break;
        }
        case owner::kKind: {
          Scope s(*this, "kind");
          ref.kind = String(f);
          break;
        }
        case owner::kName: {
          Scope s(*this, "name");
          ref.name = String(f);
          break;
        }
        case owner::kUid: {
          Scope s(*this, "uid");
          ref.uid = String(f);
          break;
        }
        case owner::kController: {
          Scope s(*this, "controller");
          ref.controller = Bool(f).value_or(false);
          break;
        }
        default:
          break;
      }
    });
  }

  void Metadata(std::string_view message, PodView& out) {
    int owners = 0;
    ForEach(message, [&](const Field& f) {
      switch (f.number) {
        case object_meta::kName: {
          Scope s(*this, "name");
          out.name = String(f);
          break;
        }
        case object_meta::kNamespace: {
          Scope s(*this, "namespace");
          out.namespace_name = String(f);
          break;
        }
        case object_meta::kUid: {
          Scope s(*this, "uid");
          out.uid = String(f);
          break;
        }
        case object_meta::kResourceVersion: {
          Scope s(*this, "resourceVersion");
          out.resource_version = String(f);
          break;
        }
        case object_meta::kCreationTimestamp: {
          Scope s(*this, "creationTimestamp");
          if (!Want(f, WireType::kLen, "a time")) break;
          out.created = 0;
          ForEach(f.bytes, [&](const Field& t) {
            if (t.number == 1 && t.type == WireType::kVarint)
              out.created = proto::AsInt64(t.integer);
          });
          break;
        }
        case object_meta::kLabels: {
          Scope s(*this, "labels");
          if (Want(f, WireType::kLen, "an object")) out.labels.push_back(MapEntry(f.bytes));
          break;
        }
        case object_meta::kAnnotations: {
          Scope s(*this, "annotations");
          if (!Want(f, WireType::kLen, "an object")) break;
          // Only the justifications are kept: the others (a last-applied configuration of
          // kilobytes) are not copied, only their keys looked at.
          std::string_view key, value;
          ForEach(f.bytes, [&](const Field& e) {
            if (e.type != WireType::kLen) return;
            if (e.number == 1) key = e.bytes;
            if (e.number == 2) value = e.bytes;
          });
          if (key.starts_with(kJustificationPrefix)) {
            key.remove_prefix(kJustificationPrefix.size());
            out.justifications.emplace_back(ValidUtf8(key), ValidUtf8(value));
          }
          break;
        }
        case object_meta::kOwnerReferences: {
          Scope s(*this, "ownerReferences", owners++);
          if (Want(f, WireType::kLen, "an object")) Owner(f.bytes, out.owners.emplace_back());
          break;
        }
        default:
          break;
      }
    });
  }

  void CapabilityList(const Field& f, std::vector<std::string>& out, std::size_t& count) {
    Scope s(*this, {}, static_cast<int>(count));
    ++count;
    if (count > kMaxCapabilityListEntries) return;
    if (Want(f, WireType::kLen, "a string")) out.push_back(ValidUtf8(f.bytes));
  }

  void Capabilities(std::string_view message, ContainerView& c) {
    std::size_t adds = 0, drops = 0;
    ForEach(message, [&](const Field& f) {
      if (f.number == capabilities::kAdd) {
        Scope s(*this, "add");
        CapabilityList(f, c.add, adds);
      } else if (f.number == capabilities::kDrop) {
        Scope s(*this, "drop");
        CapabilityList(f, c.drop, drops);
      }
    });
    for (auto [key, n] : {std::pair<std::string_view, std::size_t>{"add", adds}, {"drop", drops}}) {
      if (n <= kMaxCapabilityListEntries) continue;
      Scope s(*this, key);
      Unreadable("has " + std::to_string(n) + " entries; capwatch reads the first " +
                 std::to_string(kMaxCapabilityListEntries) +
                 " (there are 41 capabilities), so what the others add or drop is unknown");
    }
  }

  void SecurityContext(std::string_view message, ContainerView& c) {
    ForEach(message, [&](const Field& f) {
      switch (f.number) {
        case security_context::kCapabilities: {
          Scope s(*this, "capabilities");
          if (Want(f, WireType::kLen, "an object")) Capabilities(f.bytes, c);
          break;
        }
        case security_context::kPrivileged: {
          Scope s(*this, "privileged");
          c.privileged = Bool(f);
          break;
        }
        case security_context::kAllowPrivilegeEscalation: {
          Scope s(*this, "allowPrivilegeEscalation");
          c.allow_privilege_escalation = Bool(f);
          break;
        }
        case security_context::kRunAsNonRoot: {
          Scope s(*this, "runAsNonRoot");
          c.run_as_non_root = Bool(f);
          break;
        }
        case security_context::kRunAsUser: {
          Scope s(*this, "runAsUser");
          c.run_as_user = Int64(f);
          break;
        }
        default:
          break;
      }
    });
  }

  void Container(std::string_view message, ContainerType type, PodView& out) {
    ContainerView& c = out.containers.emplace_back();
    c.type = type;
    const std::size_t first_unreadable = unreadable_->size();
    ForEach(message, [&](const Field& f) {
      switch (f.number) {
        case container::kName: {
          Scope s(*this, "name");
          c.name = String(f);
          break;
        }
        case container::kImage: {
          Scope s(*this, "image");
          c.image = String(f);
          break;
        }
        case container::kSecurityContext: {
          Scope s(*this, "securityContext");
          if (Want(f, WireType::kLen, "an object")) SecurityContext(f.bytes, c);
          break;
        }
        default:
          break;
      }
    });
    for (std::size_t k = first_unreadable; k < unreadable_->size(); ++k) {
      (*unreadable_)[k].container = c.name;
    }
  }

  void Spec(std::string_view message, PodView& out) {
    int containers = 0, inits = 0, ephemerals = 0;
    ForEach(message, [&](const Field& f) {
      switch (f.number) {
        case spec::kContainers: {
          Scope s(*this, "containers", containers++);
          if (Want(f, WireType::kLen, "an object")) {
            Container(f.bytes, ContainerType::kContainer, out);
          }
          break;
        }
        case spec::kInitContainers: {
          Scope s(*this, "initContainers", inits++);
          if (Want(f, WireType::kLen, "an object")) {
            Container(f.bytes, ContainerType::kInitContainer, out);
          }
          break;
        }
        case spec::kEphemeralContainers: {
          Scope s(*this, "ephemeralContainers", ephemerals++);
          if (!Want(f, WireType::kLen, "an object")) break;
          // The container's fields are in its ephemeralContainerCommon; JSON inlines them,
          // and so do the paths here.
          bool common = false;
          ForEach(f.bytes, [&](const Field& e) {
            if (e.number != container::kEphemeralCommon) return;
            if (!Want(e, WireType::kLen, "an object")) return;
            Container(e.bytes, ContainerType::kEphemeralContainer, out);
            common = true;
          });
          if (!common) out.containers.emplace_back().type = ContainerType::kEphemeralContainer;
          break;
        }
        case spec::kSecurityContext: {
          Scope s(*this, "securityContext");
          if (!Want(f, WireType::kLen, "an object")) break;
          ForEach(f.bytes, [&](const Field& p) {
            if (p.number == pod_security_context::kRunAsNonRoot) {
              Scope r(*this, "runAsNonRoot");
              out.run_as_non_root = Bool(p);
            } else if (p.number == pod_security_context::kRunAsUser) {
              Scope r(*this, "runAsUser");
              out.run_as_user = Int64(p);
            }
          });
          break;
        }
        case spec::kHostUsers: {
          Scope s(*this, "hostUsers");
          out.host_users = Bool(f);
          break;
        }
        case spec::kOs: {
          Scope s(*this, "os");
          if (!Want(f, WireType::kLen, "an object")) break;
          ForEach(f.bytes, [&](const Field& o) {
            if (o.number != 1) return;
            Scope n(*this, "name");
            out.os = String(o);
          });
          break;
        }
        default:
          break;
      }
    });
    // Containers first, then init, then ephemeral, as the JSON decoder orders them.
    if (!std::is_sorted(
            out.containers.begin(), out.containers.end(),
            [](const ContainerView& a, const ContainerView& b) { return a.type < b.type; })) {
      std::stable_sort(
          out.containers.begin(), out.containers.end(),
          [](const ContainerView& a, const ContainerView& b) { return a.type < b.type; });
    }
  }

  std::vector<UnreadableField>* unreadable_;
  std::vector<Frame> path_;
};

Status DecodeInto(std::string_view message, PodView& out) {
  try {
    Decoder(&out.unreadable).Pod(message, out);
    return {};
  } catch (const Malformed& m) {
    return Error(FieldError{m.path, "malformed protobuf: " + m.message});
  }
}

}  // namespace

Status PodProtoDecoder::DecodePodMessage(std::string_view message, PodView& out) const {
  return DecodeInto(message, out);
}

Status PodProtoDecoder::DecodePod(std::string_view bytes, PodView& out) const {
  auto unwrapped = proto::UnwrapKubernetes(bytes);
  if (!unwrapped.ok()) return unwrapped.error();
  const proto::KubernetesObject& body = unwrapped.value();
  if (!body.kind.empty() && body.kind != "Pod") {
    return Error("expected a Pod, got a " + Excerpt(body.kind, 40));
  }
  return DecodeInto(body.raw, out);
}

Status PodProtoDecoder::DecodePodList(
    std::string_view bytes, const std::function<void(PodView&&)>& on_pod,
    PodDecoder::ListMeta& meta, const std::function<void(const FieldError&)>& on_item_error) const {
  auto unwrapped = proto::UnwrapKubernetes(bytes);
  if (!unwrapped.ok()) return unwrapped.error();
  const proto::KubernetesObject& body = unwrapped.value();
  if (!body.kind.empty() && body.kind != "PodList") {
    return Error("expected a PodList, got a " + Excerpt(body.kind, 40));
  }
  Reader reader(body.raw);
  Field f;
  int index = 0;
  while (reader.Next(f)) {
    if (f.number == list::kMetadata && f.type == WireType::kLen) {
      Reader m(f.bytes);
      Field mf;
      while (m.Next(mf)) {
        if (mf.type != WireType::kLen) continue;
        if (mf.number == list_meta::kResourceVersion) meta.resource_version = ValidUtf8(mf.bytes);
        if (mf.number == list_meta::kContinue) meta.continue_token = ValidUtf8(mf.bytes);
      }
      if (!m.error().empty()) {
        return Error(FieldError{".metadata", "malformed protobuf: " + m.error()});
      }
    } else if (f.number == list::kItems) {
      const std::string at = ".items[" + std::to_string(index++) + "]";
      FieldError failed;
      PodView pod;
      if (f.type != WireType::kLen) {
        failed = {at, "expected an object, got " + std::string(proto::WireTypeName(f.type))};
      } else if (Status s = DecodeInto(f.bytes, pod); !s.ok()) {
        const Error& e = s.error();
        failed = e.fields().empty() ? FieldError{at, e.ToString()}
                                    : FieldError{at + e.fields()[0].field, e.fields()[0].message};
      } else if (const UnreadableField* why = pod.unfiled_because()) {
        failed = {at + why->path, why->reason};
      } else {
        on_pod(std::move(pod));
        continue;
      }
      if (!on_item_error) return Error(std::move(failed));
      on_item_error(failed);
    }
  }
  if (!reader.error().empty()) return Error("malformed protobuf list: " + reader.error());
  return {};
}

}  // namespace capwatch
