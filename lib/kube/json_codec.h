#pragma once

#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/result.h"
#include "kube/reflector.h"

namespace capwatch::kube {

// List and object decoding with nlohmann/json for the informers of small kinds (ReplicaSet and
// Job metadata, Namespaces, policies, reports); Pods have their own simdjson decoder.
//
// nlohmann throws when a field has another type than its reader expects (`get<std::string>()`
// on a number, `value()` on a string), and an exception on an informer thread ends the process.
// So before a codec's `from` sees an object, the object's envelope and metadata (every kind's)
// and the codec's own `fields` are checked against the types they must have; an object that
// does not fit is refused with a message naming it and the field. `from` throwing anyway is
// caught too. A list page skips the objects it refuses, logged and counted in
// ListPageMeta::skipped_items: one bad object never hides the others.

enum class JsonType { kString, kNumber, kBool, kObject, kArray };

// A field and the type it must have where present. `path` is dotted from the object's root;
// "[]" stands for every element of a list, "*" for every member of an object:
// "metadata.ownerReferences[].controller", "metadata.labels.*".
struct JsonField {
  std::string_view path;
  JsonType type;
};

// The first of `fields` that `object` holds with another type, as a FieldError
// {".workload.pods", "must be a number, not a string"}; ok when all fit. An absent field fits,
// and so does null for an object or a list (Go writes an empty map or slice as null). A field
// under a parent of another type is left to the parent's own entry.
Status MistypedField(const nlohmann::json& object, std::initializer_list<JsonField> fields);

// "namespace/name" of an object whose metadata says so, else empty.
std::string ObjectNameOf(const nlohmann::json& object);

// What the API server (or anything claiming to be it) answered, read without trusting its
// shape: the value at `path` ("metadata", "uid") through objects only, or null when a step is
// missing or not an object; the string there, or "" for anything else.
const nlohmann::json& JsonAt(const nlohmann::json& object, std::initializer_list<const char*> path);
std::string JsonStringAt(const nlohmann::json& object, std::initializer_list<const char*> path);

// Decodes one object already parsed.
using JsonObjectDecoder = std::function<Status(const nlohmann::json& object)>;

// The untyped core of DecodeJsonList: `item` for each item of the page that fits.
Status DecodeJsonItems(std::string_view body, ListPageMeta& meta,
                       std::initializer_list<JsonField> fields, const JsonObjectDecoder& item);
// The untyped core of DecodeJsonObject.
Status DecodeJsonValue(std::string_view object, std::initializer_list<JsonField> fields,
                       const JsonObjectDecoder& from);

// `Status from(const json& object, T& out)` projects one object into a fresh T; `fields` are
// the kind's own fields `from` reads, with their types (the metadata's are checked anyway).
template <typename T, typename From>
Status DecodeJsonList(std::string_view body, const std::function<void(T&&)>& on_item,
                      ListPageMeta& meta, From from, std::initializer_list<JsonField> fields = {}) {
  return DecodeJsonItems(body, meta, fields, [&](const nlohmann::json& object) -> Status {
    T view;
    if (Status projected = from(object, view); !projected.ok()) return projected;
    on_item(std::move(view));
    return {};
  });
}

template <typename T, typename From>
capwatch::Result<T> DecodeJsonObject(std::string_view object, From from,
                                     std::initializer_list<JsonField> fields = {}) {
  T out;
  Status decoded =
      DecodeJsonValue(object, fields, [&](const nlohmann::json& doc) { return from(doc, out); });
  if (!decoded.ok()) return decoded.error();
  return out;
}

}  // namespace capwatch::kube
