#include "workload/pod_decoder.h"

#include <simdjson.h>
#include <algorithm>
#include <exception>

#include "base/rfc3339.h"

namespace capwatch {
namespace {

namespace od = simdjson::ondemand;

// Thrown inside the decoder only, for a wrong type outside a Pod (the list's own fields, an item
// that is no object); DecodePod and DecodePodList turn it into a FieldError.
struct TypeMismatch {
  std::string message;
  std::string path_below;  // appended to the decoder's current path
};

const char* TypeName(od::json_type type) {
  switch (type) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::number:
      return "a number";
    case od::json_type::string:
      return "a string";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "something else";
}

// metadata.creationTimestamp to Unix seconds; 0 when it is no RFC 3339 time.
std::int64_t UnixSeconds(std::string_view t) {
  const auto parsed = ParseRfc3339(t);
  if (!parsed) return 0;
  return std::chrono::floor<std::chrono::seconds>(parsed->time_since_epoch()).count();
}

}  // namespace

struct PodDecoder::Impl {
  od::parser parser;
  std::string buffer;  // input copied here with simdjson's padding

  // The path of the value being decoded, for error messages.
  struct Frame {
    std::string_view key;
    int index = -1;
  };
  std::vector<Frame> path;

  // Where a wrong type inside a Pod is recorded (the Pod's PodView::unreadable), and how many
  // path frames lie above the Pod (".items[3]"), which its paths leave out. Null outside a Pod,
  // where a wrong type throws.
  std::vector<UnreadableField>* unreadable = nullptr;
  std::size_t pod_depth = 0;

  // Pushes a path element for the scope's lifetime. While an error unwinds the stack the
  // path is left in place, so the handler can name the field that failed.
  struct Scope {
    Impl& impl;
    int uncaught;
    Scope(Impl& i, std::string_view key, int index = -1)
        : impl(i), uncaught(std::uncaught_exceptions()) {
      impl.path.push_back({key, index});
    }
    ~Scope() {
      if (std::uncaught_exceptions() == uncaught) impl.path.pop_back();
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
  };

  std::string PathString(std::size_t from = 0) const {
    std::string out;
    for (std::size_t i = from; i < path.size(); ++i) {
      const Frame& f = path[i];
      if (!f.key.empty()) out.append(".").append(f.key);
      if (f.index >= 0) out.append("[").append(std::to_string(f.index)).append("]");
    }
    return out;
  }

  // A value that is there but cannot be read: recorded in the Pod, so the caller goes on with
  // the next field. Rare, so the common path pays nothing for it.
  void Unreadable(std::string reason) {
    if (unreadable == nullptr) throw TypeMismatch{std::move(reason), {}};
    unreadable->push_back({PathString(pod_depth), std::move(reason), {}});
  }

  void Mismatch(const char* expected, od::json_type got) {
    Unreadable(std::string("expected ") + expected + ", got " + TypeName(got));
  }

  od::json_type TypeOf(od::value& v) { return v.type().value(); }

  std::string_view String(od::value v) {
    const auto t = TypeOf(v);
    if (t == od::json_type::null) return {};
    if (t != od::json_type::string) {
      Mismatch("a string", t);
      return {};
    }
    return v.get_string().value();
  }

  std::optional<bool> OptionalBool(od::value v) {
    const auto t = TypeOf(v);
    if (t == od::json_type::null) return std::nullopt;
    if (t != od::json_type::boolean) {
      Mismatch("a boolean", t);
      return std::nullopt;
    }
    return v.get_bool().value();
  }

  std::optional<std::int64_t> OptionalInt(od::value v) {
    const auto t = TypeOf(v);
    if (t == od::json_type::null) return std::nullopt;
    if (t != od::json_type::number) {
      Mismatch("an integer", t);
      return std::nullopt;
    }
    auto n = v.get_int64();
    if (n.error()) {
      Unreadable("expected an integer, got a number that is not one");
      return std::nullopt;
    }
    return n.value();
  }

  // Returns false for null (an absent object), and for any other non-object, which it records.
  bool Object(od::value& v, od::object& out) {
    const auto t = TypeOf(v);
    if (t == od::json_type::null) return false;
    if (t != od::json_type::object) {
      Mismatch("an object", t);
      return false;
    }
    out = v.get_object().value();
    return true;
  }

  bool Array(od::value& v, od::array& out) {
    const auto t = TypeOf(v);
    if (t == od::json_type::null) return false;
    if (t != od::json_type::array) {
      Mismatch("an array", t);
      return false;
    }
    out = v.get_array().value();
    return true;
  }

  // capabilities.add or .drop. An entry of the wrong type is no entry (recorded); null is the
  // empty name, as the API server reads it. Beyond kMaxCapabilityListEntries entries are
  // counted, not read, and the list is recorded as unreadable.
  void CapabilityList(od::value v, std::vector<std::string>& out) {
    od::array arr;
    if (!Array(v, arr)) return;
    std::size_t i = 0;
    for (auto element : arr) {
      if (i >= kMaxCapabilityListEntries) {
        ++i;  // not read: the array iterator skips the value
        continue;
      }
      Scope s(*this, {}, static_cast<int>(i++));
      od::value ev = element.value();
      const auto t = TypeOf(ev);
      if (t == od::json_type::string) {
        out.emplace_back(ev.get_string().value());
      } else if (t == od::json_type::null) {
        out.emplace_back();
      } else {
        Mismatch("a string", t);
      }
    }
    if (i > kMaxCapabilityListEntries) {
      Unreadable("has " + std::to_string(i) + " entries; capwatch reads the first " +
                 std::to_string(kMaxCapabilityListEntries) +
                 " (there are 41 capabilities), so what the others add or drop is unknown");
    }
  }

  void StringMap(od::value v, std::vector<std::pair<std::string, std::string>>& out,
                 std::string_view only_prefix = {}) {
    od::object obj;
    if (!Object(v, obj)) return;
    for (auto field : obj) {
      std::string_view key = field.unescaped_key().value();
      if (!only_prefix.empty()) {
        if (key.substr(0, only_prefix.size()) != only_prefix) continue;
        key.remove_prefix(only_prefix.size());
      }
      Scope s(*this, key);
      od::value value = field.value();
      const auto t = TypeOf(value);
      if (t != od::json_type::string && t != od::json_type::null) {
        Mismatch("a string", t);
        continue;
      }
      out.emplace_back(std::string(key), std::string(String(value)));
    }
  }

  void Owners(od::value v, std::vector<OwnerReference>& out) {
    od::array arr;
    if (!Array(v, arr)) return;
    int i = 0;
    for (auto element : arr) {
      Scope s(*this, {}, i++);
      od::value ev = element.value();
      od::object obj;
      if (!Object(ev, obj)) continue;
      OwnerReference& ref = out.emplace_back();
      for (auto field : obj) {
        auto key = field.key().value();
        if (key == "apiVersion") {
          Scope f(*this, "apiVersion");
          ref.api_version = String(field.value());
        } else if (key == "kind") {
          Scope f(*this, "kind");
          ref.kind = String(field.value());
        } else if (key == "name") {
          Scope f(*this, "name");
          ref.name = String(field.value());
        } else if (key == "uid") {
          Scope f(*this, "uid");
          ref.uid = String(field.value());
        } else if (key == "controller") {
          Scope f(*this, "controller");
          ref.controller = OptionalBool(field.value()).value_or(false);
        }
      }
    }
  }

  void Metadata(od::value v, PodView& pod) {
    od::object obj;
    if (!Object(v, obj)) return;
    for (auto field : obj) {
      auto key = field.key().value();
      if (key == "name") {
        Scope s(*this, "name");
        pod.name = String(field.value());
      } else if (key == "namespace") {
        Scope s(*this, "namespace");
        pod.namespace_name = String(field.value());
      } else if (key == "uid") {
        Scope s(*this, "uid");
        pod.uid = String(field.value());
      } else if (key == "resourceVersion") {
        Scope s(*this, "resourceVersion");
        pod.resource_version = String(field.value());
      } else if (key == "creationTimestamp") {
        Scope s(*this, "creationTimestamp");
        pod.created = UnixSeconds(String(field.value()));
      } else if (key == "labels") {
        Scope s(*this, "labels");
        StringMap(field.value(), pod.labels);
      } else if (key == "annotations") {
        Scope s(*this, "annotations");
        StringMap(field.value(), pod.justifications, kJustificationPrefix);
      } else if (key == "ownerReferences") {
        Scope s(*this, "ownerReferences");
        Owners(field.value(), pod.owners);
      }
    }
  }

  void Capabilities(od::value v, ContainerView& c) {
    od::object obj;
    if (!Object(v, obj)) return;
    for (auto field : obj) {
      auto key = field.key().value();
      if (key == "add") {
        Scope s(*this, "add");
        CapabilityList(field.value(), c.add);
      } else if (key == "drop") {
        Scope s(*this, "drop");
        CapabilityList(field.value(), c.drop);
      }
    }
  }

  void ContainerSecurityContext(od::value v, ContainerView& c) {
    od::object obj;
    if (!Object(v, obj)) return;
    for (auto field : obj) {
      auto key = field.key().value();
      if (key == "capabilities") {
        Scope s(*this, "capabilities");
        Capabilities(field.value(), c);
      } else if (key == "privileged") {
        Scope s(*this, "privileged");
        c.privileged = OptionalBool(field.value());
      } else if (key == "allowPrivilegeEscalation") {
        Scope s(*this, "allowPrivilegeEscalation");
        c.allow_privilege_escalation = OptionalBool(field.value());
      } else if (key == "runAsNonRoot") {
        Scope s(*this, "runAsNonRoot");
        c.run_as_non_root = OptionalBool(field.value());
      } else if (key == "runAsUser") {
        Scope s(*this, "runAsUser");
        c.run_as_user = OptionalInt(field.value());
      }
    }
  }

  void Containers(od::value v, ContainerType type, std::vector<ContainerView>& out) {
    od::array arr;
    if (!Array(v, arr)) return;
    int i = 0;
    for (auto element : arr) {
      Scope s(*this, {}, i++);
      od::value ev = element.value();
      od::object obj;
      if (!Object(ev, obj)) continue;
      ContainerView& c = out.emplace_back();
      c.type = type;
      const std::size_t first_unreadable = unreadable != nullptr ? unreadable->size() : 0;
      for (auto field : obj) {
        auto key = field.key().value();
        if (key == "name") {
          Scope f(*this, "name");
          c.name = String(field.value());
        } else if (key == "image") {
          Scope f(*this, "image");
          c.image = String(field.value());
        } else if (key == "securityContext") {
          Scope f(*this, "securityContext");
          ContainerSecurityContext(field.value(), c);
        }
      }
      // Fields recorded while reading the container belong to it (its name may come last).
      if (unreadable != nullptr) {
        for (std::size_t k = first_unreadable; k < unreadable->size(); ++k) {
          (*unreadable)[k].container = c.name;
        }
      }
    }
  }

  void PodSecurityContext(od::value v, PodView& pod) {
    od::object obj;
    if (!Object(v, obj)) return;
    for (auto field : obj) {
      auto key = field.key().value();
      if (key == "runAsNonRoot") {
        Scope s(*this, "runAsNonRoot");
        pod.run_as_non_root = OptionalBool(field.value());
      } else if (key == "runAsUser") {
        Scope s(*this, "runAsUser");
        pod.run_as_user = OptionalInt(field.value());
      }
    }
  }

  void Spec(od::value v, PodView& pod) {
    od::object obj;
    if (!Object(v, obj)) return;
    for (auto field : obj) {
      auto key = field.key().value();
      if (key == "containers") {
        Scope s(*this, "containers");
        Containers(field.value(), ContainerType::kContainer, pod.containers);
      } else if (key == "initContainers") {
        Scope s(*this, "initContainers");
        Containers(field.value(), ContainerType::kInitContainer, pod.containers);
      } else if (key == "ephemeralContainers") {
        Scope s(*this, "ephemeralContainers");
        Containers(field.value(), ContainerType::kEphemeralContainer, pod.containers);
      } else if (key == "securityContext") {
        Scope s(*this, "securityContext");
        PodSecurityContext(field.value(), pod);
      } else if (key == "hostUsers") {
        Scope s(*this, "hostUsers");
        pod.host_users = OptionalBool(field.value());
      } else if (key == "os") {
        Scope s(*this, "os");
        od::value ov = field.value();
        od::object os;
        if (!Object(ov, os)) continue;
        for (auto f : os) {
          if (f.key().value() == "name") {
            Scope n(*this, "name");
            pod.os = String(f.value());
          }
        }
      }
    }
    // Containers first, then init, then ephemeral, whatever order the JSON had.
    std::stable_sort(
        pod.containers.begin(), pod.containers.end(),
        [](const ContainerView& a, const ContainerView& b) { return a.type < b.type; });
  }

  void Pod(od::object obj, PodView& pod) {
    for (auto field : obj) {
      auto key = field.key().value();
      if (key == "metadata") {
        Scope s(*this, "metadata");
        Metadata(field.value(), pod);
      } else if (key == "spec") {
        Scope s(*this, "spec");
        Spec(field.value(), pod);
      }
    }
  }

  od::document Iterate(std::string_view json) {
    buffer.reserve(json.size() + simdjson::SIMDJSON_PADDING);
    buffer.assign(json.data(), json.size());
    return parser.iterate(buffer.data(), buffer.size(), buffer.capacity()).value();
  }

  // Decodes one Pod object into `pod`, recording its unreadable fields there.
  void PodInto(od::object obj, PodView& pod) {
    unreadable = &pod.unreadable;
    pod_depth = path.size();
    Pod(obj, pod);
    unreadable = nullptr;
  }

  // The copy and simdjson's index grow to the largest input seen and would hold it for the
  // process's life (the index alone is 4 bytes an input byte): past this, both are let go.
  static constexpr std::size_t kKeepBytes = 8u << 20;
  void Trim() {
    if (buffer.capacity() > kKeepBytes) std::string().swap(buffer);
    if (parser.capacity() > kKeepBytes) parser = od::parser{};
  }

  template <typename Fn>
  Status Guard(Fn&& fn) {
    path.clear();
    unreadable = nullptr;
    struct TrimAtEnd {
      Impl& impl;
      ~TrimAtEnd() { impl.Trim(); }
    } trim{*this};
    FieldError error;
    try {
      fn();
      return {};
    } catch (const TypeMismatch& e) {
      error = {PathString() + e.path_below, e.message};
    } catch (const simdjson::simdjson_error& e) {
      error = {PathString(), std::string("invalid JSON: ") + e.what()};
    }
    unreadable = nullptr;  // the Pod it pointed into may be gone
    return Error(std::move(error));
  }
};

std::size_t PodDecoder::retained_bytes() const {
  return impl_->buffer.capacity() + impl_->parser.capacity();
}

PodDecoder::PodDecoder() : impl_(std::make_unique<Impl>()) {}
PodDecoder::~PodDecoder() = default;

Status PodDecoder::DecodePod(std::string_view json, PodView& out) {
  return impl_->Guard([&] {
    od::document doc = impl_->Iterate(json);
    od::object obj;
    od::value root = doc.get_value().value();
    if (!impl_->Object(root, obj)) throw TypeMismatch{"expected a Pod object, got null", {}};
    impl_->PodInto(obj, out);
  });
}

Status PodDecoder::DecodePodList(std::string_view json,
                                 const std::function<void(PodView&&)>& on_pod, ListMeta& meta,
                                 const std::function<void(const FieldError&)>& on_item_error) {
  return impl_->Guard([&] {
    od::document doc = impl_->Iterate(json);
    od::object obj;
    od::value root = doc.get_value().value();
    if (!impl_->Object(root, obj)) throw TypeMismatch{"expected a list object, got null", {}};
    for (auto field : obj) {
      auto key = field.key().value();
      if (key == "metadata") {
        Impl::Scope s(*impl_, "metadata");
        od::value mv = field.value();
        od::object m;
        if (!impl_->Object(mv, m)) continue;
        for (auto f : m) {
          auto k = f.key().value();
          if (k == "resourceVersion") meta.resource_version = impl_->String(f.value());
          if (k == "continue") meta.continue_token = impl_->String(f.value());
        }
      } else if (key == "items") {
        Impl::Scope s(*impl_, "items");
        od::value iv = field.value();
        od::array items;
        if (!impl_->Array(iv, items)) continue;
        int i = 0;
        for (auto item : items) {
          Impl::Scope is(*impl_, {}, i++);
          od::value pv = item.value();
          od::object pod_obj;
          bool is_object = false;
          try {
            is_object = impl_->Object(pv, pod_obj);  // false for null; throws for a non-object
          } catch (const TypeMismatch& e) {
            if (!on_item_error) throw;
            on_item_error({impl_->PathString(), e.message});
            continue;
          }
          if (!is_object) continue;
          PodView pod;
          impl_->PodInto(pod_obj, pod);
          if (const UnreadableField* why = pod.unfiled_because()) {
            if (!on_item_error) throw TypeMismatch{why->reason, why->path};
            on_item_error({impl_->PathString() + why->path, why->reason});
            continue;
          }
          on_pod(std::move(pod));
        }
      }
    }
  });
}

}  // namespace capwatch
