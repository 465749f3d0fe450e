#include "kube/json_codec.h"

#include <spdlog/spdlog.h>

#include <optional>

namespace capwatch::kube {
namespace {

using nlohmann::json;

// Every Kubernetes object's envelope and metadata, as the codecs read them.
const std::initializer_list<JsonField> kObjectMetaFields = {
    {"apiVersion", JsonType::kString},
    {"kind", JsonType::kString},
    {"metadata", JsonType::kObject},
    {"metadata.name", JsonType::kString},
    {"metadata.namespace", JsonType::kString},
    {"metadata.uid", JsonType::kString},
    {"metadata.resourceVersion", JsonType::kString},
    {"metadata.generation", JsonType::kNumber},
    {"metadata.labels", JsonType::kObject},
    {"metadata.labels.*", JsonType::kString},
    {"metadata.annotations", JsonType::kObject},
    {"metadata.annotations.*", JsonType::kString},
    {"metadata.ownerReferences", JsonType::kArray},
    {"metadata.ownerReferences[]", JsonType::kObject},
    {"metadata.ownerReferences[].apiVersion", JsonType::kString},
    {"metadata.ownerReferences[].kind", JsonType::kString},
    {"metadata.ownerReferences[].name", JsonType::kString},
    {"metadata.ownerReferences[].uid", JsonType::kString},
    {"metadata.ownerReferences[].controller", JsonType::kBool},
};

// A list response's own fields.
const std::initializer_list<JsonField> kListFields = {
    {"metadata", JsonType::kObject},
    {"metadata.resourceVersion", JsonType::kString},
    {"metadata.continue", JsonType::kString},
    {"items", JsonType::kArray},
};

std::string_view TypeName(JsonType type) {
  switch (type) {
    case JsonType::kString:
      return "a string";
    case JsonType::kNumber:
      return "a number";
    case JsonType::kBool:
      return "a bool";
    case JsonType::kObject:
      return "an object";
    case JsonType::kArray:
      return "a list";
  }
  return "?";
}

std::string_view TypeNameOf(const json& value) {
  if (value.is_null()) return "null";
  if (value.is_string()) return "a string";
  if (value.is_number()) return "a number";
  if (value.is_boolean()) return "a bool";
  if (value.is_object()) return "an object";
  if (value.is_array()) return "a list";
  return "something else";
}

bool Fits(const json& value, JsonType type) {
  switch (type) {
    case JsonType::kString:
      return value.is_string();
    case JsonType::kNumber:
      return value.is_number();
    case JsonType::kBool:
      return value.is_boolean();
    case JsonType::kObject:
      return value.is_object() || value.is_null();
    case JsonType::kArray:
      return value.is_array() || value.is_null();
  }
  return false;
}

// Walks what is left of a path from `node`; `where` is the path walked so far, as written in a
// message. Returns the first mismatch, or nothing.
std::optional<FieldError> Check(const json& node, std::string_view rest, JsonType type,
                                std::string& where) {
  if (rest.empty()) {
    if (Fits(node, type)) return std::nullopt;
    return FieldError{
        where, "must be " + std::string(TypeName(type)) + ", not " + std::string(TypeNameOf(node))};
  }
  const std::size_t mark = where.size();
  auto descend = [&](const json& child, std::string_view next) {
    std::optional<FieldError> mismatch = Check(child, next, type, where);
    where.resize(mark);
    return mismatch;
  };
  if (rest.substr(0, 2) == "[]") {
    rest.remove_prefix(2);
    if (!rest.empty() && rest.front() == '.') rest.remove_prefix(1);
    if (!node.is_array()) return std::nullopt;
    for (std::size_t i = 0; i < node.size(); ++i) {
      where += "[" + std::to_string(i) + "]";
      if (auto m = descend(node[i], rest)) return m;
    }
    return std::nullopt;
  }
  const std::size_t end = rest.find_first_of(".[");
  const std::string_view key = rest.substr(0, end);
  std::string_view next = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (!next.empty() && next.front() == '.') next.remove_prefix(1);
  if (!node.is_object()) return std::nullopt;
  if (key == "*") {
    for (const auto& [k, v] : node.items()) {
      where += "." + k;
      if (auto m = descend(v, next)) return m;
    }
    return std::nullopt;
  }
  auto it = node.find(std::string(key));
  if (it == node.end()) return std::nullopt;
  where += ".";
  where += key;
  return descend(*it, next);
}

// How a warning names an item of a list: "prod/web (.items[3])" or ".items[3]".
std::string ItemLabel(const json& item, std::size_t index) {
  std::string label = ObjectNameOf(item);
  const std::string at = ".items[" + std::to_string(index) + "]";
  return label.empty() ? at : label + " (" + at + ")";
}

// Runs `from` on one object that is to be checked first; never throws.
Status DecodeChecked(const json& object, std::initializer_list<JsonField> fields,
                     const JsonObjectDecoder& from) {
  if (!object.is_object()) return Error("not an object but " + std::string(TypeNameOf(object)));
  if (Status fits = MistypedField(object, kObjectMetaFields); !fits.ok()) return fits;
  if (Status fits = MistypedField(object, fields); !fits.ok()) return fits;
  try {
    return from(object);
  } catch (const std::exception& e) {
    return Error(std::string("cannot be read: ") + e.what());
  } catch (...) {
    return Error("cannot be read: unknown exception");
  }
}

}  // namespace

Status MistypedField(const json& object, std::initializer_list<JsonField> fields) {
  std::string where;
  for (const auto& f : fields) {
    where.clear();
    if (auto m = Check(object, f.path, f.type, where)) return Error(std::move(*m));
  }
  return {};
}

const json& JsonAt(const json& object, std::initializer_list<const char*> path) {
  static const json kNull;
  const json* at = &object;
  for (const char* step : path) {
    if (!at->is_object()) return kNull;
    auto it = at->find(step);
    if (it == at->end()) return kNull;
    at = &*it;
  }
  return *at;
}

std::string JsonStringAt(const json& object, std::initializer_list<const char*> path) {
  const json& v = JsonAt(object, path);
  return v.is_string() ? v.get<std::string>() : std::string();
}

std::string ObjectNameOf(const json& object) {
  if (!object.is_object()) return {};
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) return {};
  auto name = md->find("name");
  if (name == md->end() || !name->is_string()) return {};
  auto ns = md->find("namespace");
  if (ns == md->end() || !ns->is_string() || ns->get_ref<const std::string&>().empty()) {
    return name->get<std::string>();
  }
  return ns->get<std::string>() + "/" + name->get<std::string>();
}

Status DecodeJsonItems(std::string_view body, ListPageMeta& meta,
                       std::initializer_list<JsonField> fields, const JsonObjectDecoder& item) {
  // Each item is decoded as soon as it is parsed and then dropped from the tree: a page costs
  // its body plus one item's tree, not the tree of the whole page (a page of CapabilityReports
  // of 900 KiB each would be ten times its size as nlohmann values). The parser reports the
  // root's keys at depth 1 and the items of its "items" array at depth 2.
  std::string root_key;
  std::string list_kind = "list";
  bool in_items = false;
  std::size_t index = 0;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1) {
      if (event == json::parse_event_t::key) {
        root_key = parsed.is_string() ? parsed.get<std::string>() : std::string();
      } else if (event == json::parse_event_t::array_start) {
        in_items = root_key == "items";
      } else if (event == json::parse_event_t::array_end) {
        in_items = false;
      } else if (event == json::parse_event_t::value && root_key == "kind" && parsed.is_string()) {
        list_kind = parsed.get<std::string>();
      }
      return true;
    }
    const bool an_item =
        depth == 2 && in_items &&
        (event == json::parse_event_t::object_end || event == json::parse_event_t::array_end ||
         event == json::parse_event_t::value);
    if (!an_item) return true;
    if (Status decoded = DecodeChecked(parsed, fields, item); !decoded.ok()) {
      spdlog::warn("{}: skipping {}: {}", list_kind, ItemLabel(parsed, index),
                   decoded.error().ToString());
      ++meta.skipped_items;
    }
    ++index;
    return false;  // decoded: not kept in the tree
  };
  const json doc = json::parse(body, on_event, /*allow_exceptions=*/false);
  if (!doc.is_object()) return Error("list response is not a JSON object");
  if (Status fits = MistypedField(doc, kListFields); !fits.ok()) {
    Error error = fits.error();
    return error.WithContext("list response");
  }
  if (auto md = doc.find("metadata"); md != doc.end() && md->is_object()) {
    meta.resource_version = md->value("resourceVersion", "");
    meta.continue_token = md->value("continue", "");
  }
  return {};
}

Status DecodeJsonValue(std::string_view object, std::initializer_list<JsonField> fields,
                       const JsonObjectDecoder& from) {
  const json doc = json::parse(object, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return Error("object is not JSON");
  Status decoded = DecodeChecked(doc, fields, from);
  if (decoded.ok()) return decoded;
  Error error = decoded.error();
  if (std::string name = ObjectNameOf(doc); !name.empty()) error.WithContext(name);
  return error;
}

}  // namespace capwatch::kube
