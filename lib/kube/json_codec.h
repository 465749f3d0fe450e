#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "kube/reflector.h"

namespace capwatch::kube {

// List and object decoding with nlohmann/json for the informers of small kinds (ReplicaSet and
// Job metadata, Namespaces, policies, reports); Pods have their own simdjson decoder.
// `from(const json& object, T& out, std::string& error)` projects one object.
template <typename T, typename From>
bool DecodeJsonList(std::string_view body, const std::function<void(T&&)>& on_item,
                    ListPageMeta& meta, std::string& error, From from) {
  const nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
  if (!doc.is_object()) {
    error = "list response is not a JSON object";
    return false;
  }
  if (auto md = doc.find("metadata"); md != doc.end() && md->is_object()) {
    meta.resource_version = md->value("resourceVersion", "");
    meta.continue_token = md->value("continue", "");
  }
  auto items = doc.find("items");
  if (items == doc.end() || items->is_null()) return true;
  if (!items->is_array()) {
    error = ".items is not a list";
    return false;
  }
  for (std::size_t i = 0; i < items->size(); ++i) {
    T view;
    if (!from((*items)[i], view, error)) {
      error = ".items[" + std::to_string(i) + "]: " + error;
      return false;
    }
    on_item(std::move(view));
  }
  return true;
}

template <typename T, typename From>
bool DecodeJsonObject(std::string_view object, T& out, std::string& error, From from) {
  const nlohmann::json doc = nlohmann::json::parse(object, nullptr, false);
  if (!doc.is_object()) {
    error = "object is not JSON";
    return false;
  }
  return from(doc, out, error);
}

}  // namespace capwatch::kube
