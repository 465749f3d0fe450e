#include "kube/watch_decoder.h"

#include <array>

#include <nlohmann/json.hpp>

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

bool TypeFromName(std::string_view name, WatchEventType& out) {
  for (const auto& t : kTypes) {
    if (t.name == name) {
      out = t.type;
      return true;
    }
  }
  return false;
}

}  // namespace

std::string_view WatchEventTypeName(WatchEventType type) {
  for (const auto& t : kTypes) {
    if (t.type == type) return t.name;
  }
  return "UNKNOWN";
}

bool WatchEventDecoder::Decode(std::string_view line, WatchEvent& event, std::string& error) {
  // Fast path: {"type":"<T>","object":<object>}
  constexpr std::string_view kPrefix = R"({"type":")";
  constexpr std::string_view kObject = R"(","object":)";
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
  if (line.substr(0, kPrefix.size()) == kPrefix && line.size() > kPrefix.size() + 2 &&
      line.back() == '}') {
    const std::size_t type_end = line.find('"', kPrefix.size());
    if (type_end != std::string_view::npos && line.substr(type_end, kObject.size()) == kObject &&
        TypeFromName(line.substr(kPrefix.size(), type_end - kPrefix.size()), event.type)) {
      std::string_view object = line.substr(type_end + kObject.size());
      object.remove_suffix(1);  // the event's closing brace
      if (!object.empty() && object.front() == '{' && object.back() == '}') {
        event.object = object;
        return true;
      }
    }
  }
  // Slow path: a full parse.
  ++slow_path_;
  auto doc = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) {
    error = "watch event is not a JSON object: " + Excerpt(line, 120);
    return false;
  }
  auto type = doc.find("type");
  auto object = doc.find("object");
  if (type == doc.end() || !type->is_string() ||
      !TypeFromName(type->get<std::string>(), event.type)) {
    error = "watch event has no known type: " + Excerpt(line, 120);
    return false;
  }
  if (object == doc.end() || !object->is_object()) {
    error = "watch event " + type->get<std::string>() + " has no object";
    return false;
  }
  object_ = object->dump();
  event.object = object_;
  return true;
}

std::string ResourceVersionOf(std::string_view object_json) {
  auto doc = nlohmann::json::parse(object_json, nullptr, false);
  if (!doc.is_object()) return {};
  auto md = doc.find("metadata");
  if (md == doc.end() || !md->is_object()) return {};
  auto rv = md->find("resourceVersion");
  return rv != md->end() && rv->is_string() ? rv->get<std::string>() : std::string();
}

}  // namespace capwatch::kube
