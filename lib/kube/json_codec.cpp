#include "kube/json_codec.h"

#include <spdlog/spdlog.h>

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
// message. Returns the first mismatch, or empty.
std::string Check(const json& node, std::string_view rest, JsonType type, std::string& where) {
  if (rest.empty()) {
    if (Fits(node, type)) return {};
    return where + ": must be " + std::string(TypeName(type)) + ", not " +
           std::string(TypeNameOf(node));
  }
  const std::size_t mark = where.size();
  auto descend = [&](const json& child, std::string_view next) {
    std::string mismatch = Check(child, next, type, where);
    where.resize(mark);
    return mismatch;
  };
  if (rest.substr(0, 2) == "[]") {
    rest.remove_prefix(2);
    if (!rest.empty() && rest.front() == '.') rest.remove_prefix(1);
    if (!node.is_array()) return {};
    for (std::size_t i = 0; i < node.size(); ++i) {
      where += "[" + std::to_string(i) + "]";
      if (std::string m = descend(node[i], rest); !m.empty()) return m;
    }
    return {};
  }
  const std::size_t end = rest.find_first_of(".[");
  const std::string_view key = rest.substr(0, end);
  std::string_view next = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (!next.empty() && next.front() == '.') next.remove_prefix(1);
  if (!node.is_object()) return {};
  if (key == "*") {
    for (const auto& [k, v] : node.items()) {
      where += "." + k;
      if (std::string m = descend(v, next); !m.empty()) return m;
    }
    return {};
  }
  auto it = node.find(std::string(key));
  if (it == node.end()) return {};
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
bool DecodeChecked(const json& object, std::initializer_list<JsonField> fields,
                   const JsonObjectDecoder& from, std::string& error) {
  if (!object.is_object()) {
    error = "not an object but " + std::string(TypeNameOf(object));
    return false;
  }
  std::string mismatch = MistypedField(object, kObjectMetaFields);
  if (mismatch.empty()) mismatch = MistypedField(object, fields);
  if (!mismatch.empty()) {
    error = std::move(mismatch);
    return false;
  }
  try {
    return from(object, error);
  } catch (const std::exception& e) {
    error = std::string("cannot be read: ") + e.what();
  } catch (...) {
    error = "cannot be read: unknown exception";
  }
  return false;
}

}  // namespace

std::string MistypedField(const json& object, std::initializer_list<JsonField> fields) {
  std::string where;
  for (const auto& f : fields) {
    where.clear();
    if (std::string m = Check(object, f.path, f.type, where); !m.empty()) return m;
  }
  return {};
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

bool DecodeJsonItems(std::string_view body, ListPageMeta& meta, std::string& error,
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
    std::string item_error;
    if (!DecodeChecked(parsed, fields, item, item_error)) {
      spdlog::warn("{}: skipping {}: {}", list_kind, ItemLabel(parsed, index), item_error);
      ++meta.skipped_items;
    }
    ++index;
    return false;  // decoded: not kept in the tree
  };
  const json doc = json::parse(body, on_event, /*allow_exceptions=*/false);
  if (!doc.is_object()) {
    error = "list response is not a JSON object";
    return false;
  }
  if (std::string mismatch = MistypedField(doc, kListFields); !mismatch.empty()) {
    error = "list response: " + mismatch;
    return false;
  }
  if (auto md = doc.find("metadata"); md != doc.end() && md->is_object()) {
    meta.resource_version = md->value("resourceVersion", "");
    meta.continue_token = md->value("continue", "");
  }
  return true;
}

bool DecodeJsonValue(std::string_view object, std::string& error,
                     std::initializer_list<JsonField> fields, const JsonObjectDecoder& from) {
  const json doc = json::parse(object, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) {
    error = "object is not JSON";
    return false;
  }
  if (DecodeChecked(doc, fields, from, error)) return true;
  if (std::string name = ObjectNameOf(doc); !name.empty()) error = name + ": " + error;
  return false;
}

}  // namespace capwatch::kube
