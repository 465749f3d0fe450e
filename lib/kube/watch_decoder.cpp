#include "kube/watch_decoder.h"

#include <array>
#include <optional>

#include <nlohmann/json.hpp>

#include "base/protobuf_wire.h"
#include "base/utf8.h"

namespace capwatch::kube {
namespace {

struct TypeName {
  WatchEventType type;
  std::string_view name;
};
constexpr std::array<TypeName, 5> kTypes{{{WatchEventType::kAdded, "ADDED"},
                                          {WatchEventType::kModified, "MODIFIED"},
                                          {WatchEventType::kDeleted, "DELETED"},
                                          {WatchEventType::kBookmark, "BOOKMARK"},
                                          {WatchEventType::kError, "ERROR"}}};

std::optional<WatchEventType> TypeFromName(std::string_view name) {
  for (const auto& t : kTypes) {
    if (t.name == name) return t.type;
  }
  return std::nullopt;
}

}  // namespace

std::string_view WatchEventTypeName(WatchEventType type) {
  for (const auto& t : kTypes) {
    if (t.type == type) return t.name;
  }
  return "UNKNOWN";
}

namespace {
// metav1.WatchEvent {type = 1, object = 2 (runtime.RawExtension {raw = 1})}.
capwatch::Result<WatchEvent> DecodeProtoEvent(std::string_view frame) {
  proto::Reader reader(frame);
  proto::Field f;
  std::string_view type_name, object;
  bool has_object = false;
  while (reader.Next(f)) {
    if (f.type != proto::WireType::kLen) continue;
    if (f.number == 1) type_name = f.bytes;
    if (f.number != 2) continue;
    proto::Reader raw(f.bytes);
    proto::Field r;
    while (raw.Next(r)) {
      if (r.number == 1 && r.type == proto::WireType::kLen) {
        object = r.bytes;
        has_object = true;
      }
    }
    if (!raw.error().empty()) return Error("protobuf watch event's object: " + raw.error());
  }
  if (!reader.error().empty()) return Error("protobuf watch event: " + reader.error());
  const std::optional<WatchEventType> type = TypeFromName(type_name);
  if (!type) return Error("protobuf watch event has no known type: " + Excerpt(type_name, 40));
  if (!has_object || object.empty()) {
    return Error("protobuf watch event " + std::string(type_name) + " has no object");
  }
  return WatchEvent{*type, object};
}
}  // namespace

capwatch::Result<WatchEvent> WatchEventDecoder::Decode(std::string_view line) {
  // A protobuf frame: its first field's tag (type = 1 or object = 2, length-delimited).
  if (!line.empty() && (line[0] == '\x0a' || line[0] == '\x12')) return DecodeProtoEvent(line);
  // Fast path: {"type":"<T>","object":<object>}
  constexpr std::string_view kPrefix = R"({"type":")";
  constexpr std::string_view kObject = R"(","object":)";
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
  if (line.substr(0, kPrefix.size()) == kPrefix && line.size() > kPrefix.size() + 2 &&
      line.back() == '}') {
    const std::size_t type_end = line.find('"', kPrefix.size());
    std::optional<WatchEventType> type;
    if (type_end != std::string_view::npos && line.substr(type_end, kObject.size()) == kObject) {
      type = TypeFromName(line.substr(kPrefix.size(), type_end - kPrefix.size()));
    }
    if (type) {
      std::string_view object = line.substr(type_end + kObject.size());
      object.remove_suffix(1);  // the event's closing brace
      if (!object.empty() && object.front() == '{' && object.back() == '}') {
        return WatchEvent{*type, object};
      }
    }
  }
  // Slow path: a full parse.
  ++slow_path_;
  auto doc = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) {
    return Error("watch event is not a JSON object: " + Excerpt(line, 120));
  }
  auto type = doc.find("type");
  auto object = doc.find("object");
  std::optional<WatchEventType> known;
  if (type != doc.end() && type->is_string()) known = TypeFromName(type->get<std::string>());
  if (!known) return Error("watch event has no known type: " + Excerpt(line, 120));
  if (object == doc.end() || !object->is_object()) {
    return Error("watch event " + type->get<std::string>() + " has no object");
  }
  object_ = object->dump();
  return WatchEvent{*known, object_};
}

std::string ResourceVersionOf(std::string_view object_json) {
  if (proto::HasKubernetesMagic(object_json)) {
    // Any object: metadata = 1 (ObjectMeta), resourceVersion = 6.
    auto unwrapped = proto::UnwrapKubernetes(object_json);
    if (!unwrapped.ok()) return {};
    proto::Reader reader(unwrapped.value().raw);
    proto::Field f;
    std::string rv;
    while (reader.Next(f)) {
      if (f.number != 1 || f.type != proto::WireType::kLen) continue;
      proto::Reader meta(f.bytes);
      proto::Field m;
      while (meta.Next(m)) {
        if (m.number == 6 && m.type == proto::WireType::kLen) rv = ValidUtf8(m.bytes);
      }
    }
    return rv;
  }
  auto doc = nlohmann::json::parse(object_json, nullptr, false);
  if (!doc.is_object()) return {};
  auto md = doc.find("metadata");
  if (md == doc.end() || !md->is_object()) return {};
  auto rv = md->find("resourceVersion");
  return rv != md->end() && rv->is_string() ? rv->get<std::string>() : std::string();
}

}  // namespace capwatch::kube
