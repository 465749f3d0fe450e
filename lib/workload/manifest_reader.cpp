#include "workload/manifest_reader.h"

#include <yaml-cpp/yaml.h>
#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "base/utf8.h"
#include "workload/pod_decoder.h"
#include "workload/yaml_stream.h"

namespace capwatch {
namespace {

using nlohmann::json;

constexpr int kMaxDepth = 256;

// Where the pod template sits in each kind that has one (JSON pointer).
struct TemplatePath {
  std::string_view kind;
  std::string_view pointer;
};
constexpr std::array<TemplatePath, 9> kTemplatePaths = {{
    {"Pod", ""},
    {"Deployment", "/spec/template"},
    {"StatefulSet", "/spec/template"},
    {"DaemonSet", "/spec/template"},
    {"ReplicaSet", "/spec/template"},
    {"ReplicationController", "/spec/template"},
    {"Job", "/spec/template"},
    {"CronJob", "/spec/jobTemplate/spec/template"},
    {"PodTemplate", "/template"},
}};

// Built-in kinds that never hold a pod spec: skipped quietly, so a directory of manifests can
// be audited as it is.
const std::set<std::string, std::less<>>& NonWorkloadKinds() {
  static const std::set<std::string, std::less<>> kinds = {"APIService",
                                                           "Binding",
                                                           "CapabilityPolicy",
                                                           "CapabilityReport",
                                                           "CertificateSigningRequest",
                                                           "ClusterRole",
                                                           "ClusterRoleBinding",
                                                           "ComponentStatus",
                                                           "ConfigMap",
                                                           "ControllerRevision",
                                                           "CSIDriver",
                                                           "CSINode",
                                                           "CSIStorageCapacity",
                                                           "CustomResourceDefinition",
                                                           "Endpoints",
                                                           "EndpointSlice",
                                                           "Event",
                                                           "FlowSchema",
                                                           "HorizontalPodAutoscaler",
                                                           "Ingress",
                                                           "IngressClass",
                                                           "Lease",
                                                           "LimitRange",
                                                           "MutatingWebhookConfiguration",
                                                           "Namespace",
                                                           "NetworkPolicy",
                                                           "Node",
                                                           "PersistentVolume",
                                                           "PersistentVolumeClaim",
                                                           "PodDisruptionBudget",
                                                           "PriorityClass",
                                                           "PriorityLevelConfiguration",
                                                           "ResourceQuota",
                                                           "Role",
                                                           "RoleBinding",
                                                           "RuntimeClass",
                                                           "Secret",
                                                           "Service",
                                                           "ServiceAccount",
                                                           "StorageClass",
                                                           "ValidatingAdmissionPolicy",
                                                           "ValidatingAdmissionPolicyBinding",
                                                           "ValidatingWebhookConfiguration",
                                                           "VolumeAttachment"};
  return kinds;
}

std::string PointerToPath(std::string_view pointer) {
  // "/spec/containers/0/name" → ".spec.containers[0].name"
  std::string out;
  std::size_t pos = 0;
  while (pos < pointer.size()) {
    std::size_t next = pointer.find('/', pos + 1);
    std::string_view token = pointer.substr(
        pos + 1, next == std::string_view::npos ? std::string_view::npos : next - pos - 1);
    const bool index = !token.empty() && std::all_of(token.begin(), token.end(),
                                                     [](char c) { return c >= '0' && c <= '9'; });
    if (index) {
      out.append("[").append(token).append("]");
    } else {
      out.append(".").append(token);
    }
    if (next == std::string_view::npos) break;
    pos = next;
  }
  return out;
}

// ".spec.containers[0].securityContext" → "/spec/containers/0/securityContext", for finding the
// line of a field. A key with a dot in it (a label) comes out split; the line lookup then finds
// an enclosing mapping, which is near enough.
std::string PathToPointer(std::string_view path) {
  std::string out;
  for (char c : path) {
    if (c == '.' || c == '[') {
      out += '/';
    } else if (c != ']') {
      out += c;
    }
  }
  return out;
}

// An unreadable field that leaves the object without a name to file it under.
const UnreadableField* UnreadableIdentity(const PodView& pod) {
  for (const auto& u : pod.unreadable) {
    if (u.path == ".metadata" || u.path == ".metadata.name" || u.path == ".metadata.namespace") {
      return &u;
    }
  }
  return nullptr;
}

// PodDecoder's failure is one FieldError, its path in the JSON it was given.
FieldError DecodeFailure(const capwatch::Error& error) {
  if (error.fields().empty()) return {"", error.message()};
  return error.fields().front();
}

class DepthError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A YAML string that is not UTF-8: raw bytes of another encoding, or yaml-cpp 0.7's reading of
// the escapes \N and \_ (it writes U+0085 and U+00A0 as single bytes). JSON cannot hold it.
class NotTextError : public std::runtime_error {
 public:
  NotTextError(int at_line, const std::string& what) : std::runtime_error(what), line(at_line) {}
  int line;
};

// YAML plain scalars resolved the way Kubernetes' YAML reader (YAML 1.1 rules) does.
json ResolvePlainScalar(const std::string& s) {
  static const std::set<std::string, std::less<>> kTrue = {
      "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"};
  static const std::set<std::string, std::less<>> kFalse = {
      "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"};
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (kTrue.count(s) != 0) return true;
  if (kFalse.count(s) != 0) return false;
  std::int64_t i = 0;
  const char* begin = s.data() + ((s[0] == '+') ? 1 : 0);
  auto [p, ec] = std::from_chars(begin, s.data() + s.size(), i);
  if (ec == std::errc() && p == s.data() + s.size()) return i;
  double d = 0;
  auto [pd, ecd] = std::from_chars(begin, s.data() + s.size(), d);
  if (ecd == std::errc() && pd == s.data() + s.size() &&
      s.find_first_of("0123456789") != std::string::npos) {
    return d;
  }
  return s;
}

json YamlToJson(const YAML::Node& node, const std::string& pointer, int depth,
                std::map<std::string, int>& lines) {
  if (depth > kMaxDepth) throw DepthError("nested deeper than " + std::to_string(kMaxDepth));
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar:
      if (!IsUtf8(node.Scalar())) {
        throw NotTextError(node.Mark().line + 1, "the value of " + (pointer.empty() ? "/" : pointer) +
                                                     " is not UTF-8 text");
      }
      return node.Tag() == "?" ? ResolvePlainScalar(node.Scalar()) : json(node.Scalar());
    case YAML::NodeType::Sequence: {
      json arr = json::array();
      std::size_t i = 0;
      for (const auto& child : node) {
        arr.push_back(YamlToJson(child, pointer + "/" + std::to_string(i++), depth + 1, lines));
      }
      return arr;
    }
    case YAML::NodeType::Map: {
      lines[pointer] = node.Mark().line + 1;
      json obj = json::object();
      for (const auto& kv : node) {
        const std::string key = kv.first.Scalar();
        if (!IsUtf8(key)) {
          throw NotTextError(kv.first.Mark().line + 1,
                             "a key of " + (pointer.empty() ? "/" : pointer) + " is not UTF-8 text");
        }
        obj[key] = YamlToJson(kv.second, pointer + "/" + key, depth + 1, lines);
      }
      return obj;
    }
  }
  return nullptr;
}

int LineOfOffset(const std::string& content, std::size_t offset) {
  offset = std::min(offset, content.size());
  return 1 + static_cast<int>(std::count(content.begin(), content.begin() + offset, '\n'));
}

struct Document {
  json object;
  int index = 0;
  int line = 0;
  std::map<std::string, int> lines;  // JSON pointer → line (YAML input only)
};

class Reader {
 public:
  Reader(const std::string& file, const ManifestOptions& options, ManifestResult& result)
      : file_(file), options_(options), result_(result) {}

  void Read(const std::string& content) {
    const auto first = content.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) {
      Error(0, 0, "", "the file is empty: it holds no Kubernetes object");
      return;
    }
    std::vector<Document> docs;
    const bool is_json = content[first] == '{' || content[first] == '[';
    if (is_json ? !ParseJson(content, docs) : !ParseYaml(content, docs)) return;
    bool any = false;
    for (auto& doc : docs) {
      if (doc.object.is_null()) continue;  // an empty document between two `---`
      any = true;
      Object(doc, doc.object, "");
    }
    if (!any) Error(0, 0, "", "the file holds only empty documents: no Kubernetes object");
  }

 private:
  void Error(int document, int line, std::string path, std::string message) {
    result_.errors.push_back({{file_, document, line}, {std::move(path), std::move(message)}});
  }

  bool ParseJson(const std::string& content, std::vector<Document>& docs) {
    if (content.size() > options_.max_json_bytes) {
      Error(0, 0, "",
            "the file is " + std::to_string(content.size() >> 20) +
                " MiB, more than the limit of " + std::to_string(options_.max_json_bytes >> 20) +
                " MiB");
      return false;
    }
    try {
      auto guard = [](int depth, json::parse_event_t, json&) {
        if (depth > kMaxDepth) throw DepthError("nested deeper than " + std::to_string(kMaxDepth));
        return true;
      };
      json parsed = json::parse(content, guard);
      if (parsed.is_array()) {
        int i = 0;
        for (auto& item : parsed) docs.push_back({std::move(item), ++i, 0, {}});
      } else {
        docs.push_back({std::move(parsed), 1, 1, {}});
      }
      return true;
    } catch (const json::parse_error& e) {
      Error(1, LineOfOffset(content, e.byte), "",
            "not valid JSON (line " + std::to_string(LineOfOffset(content, e.byte)) +
                "): " + e.what());
    } catch (const json::out_of_range& e) {
      // A number too large for a double (out_of_range.406); nlohmann gives no offset for it.
      Error(1, 0, "", "not valid JSON: a number out of range: " + Excerpt(e.what(), 160));
    } catch (const DepthError& e) {
      Error(1, 0, "", std::string("not a Kubernetes object: ") + e.what());
    }
    return false;
  }

  bool ParseYaml(const std::string& content, std::vector<Document>& docs) {
    if (content.size() > options_.max_yaml_bytes) {
      Error(0, 0, "",
            "the file is " + std::to_string(content.size() >> 20) +
                " MiB of YAML, more than the limit of " +
                std::to_string(options_.max_yaml_bytes >> 20) +
                " MiB; give large inputs as JSON (kubectl get -o json) or raise --max-yaml-bytes");
      return false;
    }
    try {
      std::vector<YAML::Node> nodes = LoadYamlDocuments(content);
      int index = 0;
      for (const auto& node : nodes) {
        Document doc;
        doc.index = ++index;
        doc.line = node.Mark().line + 1;
        try {
          doc.object = YamlToJson(node, "", 0, doc.lines);
        } catch (const DepthError& e) {
          Error(doc.index, doc.line, "", std::string("not a Kubernetes object: ") + e.what());
          continue;
        } catch (const NotTextError& e) {
          Error(doc.index, e.line, "",
                "not UTF-8 (line " + std::to_string(e.line) + "): " + e.what() +
                    "; YAML and JSON are Unicode text");
          continue;
        }
        docs.push_back(std::move(doc));
      }
      return true;
    } catch (const YAML::Exception& e) {
      Error(0, e.mark.line + 1, "",
            "not valid YAML (line " + std::to_string(e.mark.line + 1) + ", column " +
                std::to_string(e.mark.column + 1) + "): " + e.msg);
    }
    return false;
  }

  int LineOf(const Document& doc, const std::string& pointer) const {
    auto it = doc.lines.find(pointer);
    return it == doc.lines.end() ? doc.line : it->second;
  }

  // The line of the innermost mapping that holds the field (YAML input), else the document's.
  int LineOfField(const Document& doc, std::string pointer) const {
    while (true) {
      if (auto it = doc.lines.find(pointer); it != doc.lines.end()) return it->second;
      const auto slash = pointer.rfind('/');
      if (slash == std::string::npos) return doc.line;
      pointer.resize(slash);
    }
  }

  // Names the unreadable fields of `pod` by their path in the document (they come with paths
  // in the object at `pointer`) and reports each as a warning: the object is still evaluated.
  void PlaceUnreadable(const Document& doc, const std::string& pointer,
                       std::vector<UnreadableField>& unreadable, std::size_t first = 0) {
    const std::string prefix = PointerToPath(pointer);
    std::vector<std::pair<int, UnreadableField>> placed;
    for (std::size_t i = first; i < unreadable.size(); ++i) {
      UnreadableField& u = unreadable[i];
      const int line = LineOfField(doc, pointer + PathToPointer(u.path));
      u.path = prefix + u.path;
      placed.emplace_back(line, std::move(u));
    }
    // In the order of the file (the decoder sees the object's keys sorted).
    std::stable_sort(placed.begin(), placed.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    unreadable.resize(first);
    for (auto& [line, u] : placed) {
      result_.warnings.push_back({{file_, doc.index, line}, {u.path, u.reason}});
      unreadable.push_back(std::move(u));
    }
  }

  static const json* At(const json& object, std::string_view pointer) {
    const json* cur = &object;
    std::size_t pos = 0;
    while (pos < pointer.size()) {
      std::size_t next = pointer.find('/', pos + 1);
      std::string key(pointer.substr(
          pos + 1, next == std::string_view::npos ? std::string_view::npos : next - pos - 1));
      if (cur->is_array()) {
        std::size_t index = 0;
        auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), index);
        if (ec != std::errc() || end != key.data() + key.size() || index >= cur->size()) {
          return nullptr;
        }
        cur = &(*cur)[index];
      } else if (cur->is_object()) {
        auto it = cur->find(key);
        if (it == cur->end()) return nullptr;
        cur = &*it;
      } else {
        return nullptr;
      }
      if (next == std::string_view::npos) break;
      pos = next;
    }
    return cur;
  }

  static std::string StringAt(const json& object, std::string_view pointer) {
    const json* v = At(object, pointer);
    return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
  }

  void Object(const Document& doc, const json& object, const std::string& pointer) {
    const int line = LineOf(doc, pointer);
    const std::string path = PointerToPath(pointer);
    if (!object.is_object()) {
      Error(doc.index, line, path,
            std::string("expected a Kubernetes object (a mapping with apiVersion and kind), got ") +
                object.type_name());
      return;
    }
    auto kind_it = object.find("kind");
    if (kind_it == object.end() || !kind_it->is_string() || kind_it->get<std::string>().empty()) {
      Error(doc.index, line, path + ".kind",
            kind_it == object.end() ? "missing: every Kubernetes object names its kind"
                                    : "must be a non-empty string");
      return;
    }
    const std::string kind = kind_it->get<std::string>();
    if (kind == "List" || (kind.size() > 4 && kind.ends_with("List") && object.contains("items"))) {
      const json* items = At(object, "/items");
      if (items == nullptr || !items->is_array()) {
        if (items != nullptr && !items->is_null()) {
          Error(doc.index, line, path + ".items", "must be an array of objects");
        }
        return;
      }
      for (std::size_t i = 0; i < items->size(); ++i) {
        Object(doc, (*items)[i], pointer + "/items/" + std::to_string(i));
      }
      return;
    }

    std::optional<std::string> template_pointer;
    for (const auto& t : kTemplatePaths) {
      if (t.kind == kind) template_pointer = std::string(t.pointer);
    }
    if (!template_pointer) {
      if (NonWorkloadKinds().count(kind) != 0) return;
      if (At(object, "/spec/template/spec/containers") != nullptr) {
        template_pointer = "/spec/template";  // a custom workload (Argo Rollout, CloneSet, ...)
        result_.notes.push_back(file_ + ": evaluating the pod template of custom kind " + kind);
      } else if (options_.ignore_unknown_kinds) {
        result_.notes.push_back(file_ + ": skipped " + kind + " " +
                                StringAt(object, "/metadata/name") + ": holds no pod spec");
        return;
      } else {
        Error(doc.index, line, path + ".kind",
              "unknown kind \"" + kind +
                  "\": not a workload capwatch knows and no pod template at "
                  ".spec.template (pass --ignore-unknown-kinds to skip such objects)");
        return;
      }
    }
    Workload(doc, object, pointer, kind, *template_pointer);
  }

  void Workload(const Document& doc, const json& object, const std::string& pointer,
                const std::string& kind, const std::string& template_pointer) {
    const std::string full_template = pointer + template_pointer;
    const std::string template_path = PointerToPath(full_template);
    const json* pod_template = template_pointer.empty() ? &object : At(object, template_pointer);
    if (pod_template == nullptr || !pod_template->is_object()) {
      Error(doc.index, LineOf(doc, pointer), PointerToPath(pointer + template_pointer),
            pod_template == nullptr ? "missing: a " + kind + " needs a pod template"
                                    : "must be an object (a pod template)");
      return;
    }
    // No containers is no pod; containers of the wrong type are an unreadable field (below).
    const json* containers = At(*pod_template, "/spec/containers");
    if (containers == nullptr || containers->is_null() ||
        (containers->is_array() && containers->empty())) {
      Error(doc.index, LineOf(doc, full_template), template_path + ".spec.containers",
            containers != nullptr && containers->is_array()
                ? "empty: a pod needs at least one container"
                : "missing: a pod needs at least one container");
      return;
    }

    // A field of the wrong type does not lose the object: the decoder records it, and the
    // object is evaluated with what could be read (fail closed, an unreadable-field finding).
    ManifestWorkload w;
    PodDecoder decoder;  // cheap to construct; audit is not the hot path
    if (Status decoded = decoder.DecodePod(pod_template->dump(), w.pod); !decoded.ok()) {
      const FieldError failed = DecodeFailure(decoded.error());
      Error(doc.index, LineOf(doc, full_template), template_path + failed.field, failed.message);
      return;
    }
    PodView meta;  // the object's own metadata, for Pods the same as the template's
    if (!template_pointer.empty()) {
      json just_meta = json::object();
      if (auto it = object.find("metadata"); it != object.end()) just_meta["metadata"] = *it;
      if (Status decoded = decoder.DecodePod(just_meta.dump(), meta); !decoded.ok()) {
        const FieldError failed = DecodeFailure(decoded.error());
        Error(doc.index, LineOf(doc, pointer), PointerToPath(pointer) + failed.field,
              failed.message);
        return;
      }
    } else {
      meta = w.pod;
    }
    // What the object is filed under must be readable: without it there is nothing to report on.
    if (const UnreadableField* u = UnreadableIdentity(meta)) {
      Error(doc.index, LineOfField(doc, pointer + PathToPointer(u->path)),
            PointerToPath(pointer) + u->path, u->reason + ": the " + kind + " cannot be named");
      return;
    }
    PlaceUnreadable(doc, full_template, w.pod.unreadable);
    if (!template_pointer.empty()) {
      for (auto& u : meta.unreadable) w.pod.unreadable.push_back(std::move(u));
      PlaceUnreadable(doc, pointer, w.pod.unreadable,
                      w.pod.unreadable.size() - meta.unreadable.size());
    }
    std::string name = meta.name.empty() ? StringAt(object, "/metadata/generateName") : meta.name;
    if (name.empty()) {
      Error(doc.index, LineOf(doc, pointer), PointerToPath(pointer) + ".metadata.name",
            "missing: the " + kind + " has no name");
      return;
    }
    w.namespace_name = meta.namespace_name.empty() ? "default" : meta.namespace_name;
    w.pod.name = name;
    w.pod.namespace_name = w.namespace_name;
    if (w.pod.uid.empty()) w.pod.uid = meta.uid;
    w.ref = {StringAt(object, "/apiVersion"), kind, name, meta.uid};
    w.owners = meta.owners;
    w.pods = kind == "Pod" ? 1 : 0;
    w.source = {file_, doc.index, LineOf(doc, pointer)};
    for (std::size_t i = 0; containers->is_array() && i < containers->size(); ++i) {
      const std::string cp = full_template + "/spec/containers/" + std::to_string(i);
      const json& c = (*containers)[i];
      if (c.is_object() && c.contains("name") && c["name"].is_string()) {
        w.container_lines[c["name"].get<std::string>()] = LineOf(doc, cp);
      }
    }
    for (const char* list : {"initContainers", "ephemeralContainers"}) {
      const json* more = At(*pod_template, std::string("/spec/") + list);
      if (more == nullptr || !more->is_array()) continue;
      for (std::size_t i = 0; i < more->size(); ++i) {
        const json& c = (*more)[i];
        if (c.is_object() && c.contains("name") && c["name"].is_string()) {
          w.container_lines[c["name"].get<std::string>()] =
              LineOf(doc, full_template + "/spec/" + list + "/" + std::to_string(i));
        }
      }
    }
    result_.workloads.push_back(std::move(w));
  }

  const std::string& file_;
  const ManifestOptions& options_;
  ManifestResult& result_;
};

std::string WorkloadKey(std::string_view kind, std::string_view ns, std::string_view name) {
  return std::string(kind) + "/" + std::string(ns) + "/" + std::string(name);
}

}  // namespace

std::string ManifestError::ToString() const {
  std::string out = source.file;
  if (source.document > 0) out += ", document " + std::to_string(source.document);
  if (source.line > 0) out += ", line " + std::to_string(source.line);
  if (!error.field.empty()) out += ", field " + error.field;
  return out + ": " + error.message;
}

void ReadManifest(const std::string& file, const std::string& content,
                  const ManifestOptions& options, ManifestResult& result) {
  Reader(file, options, result).Read(content);
}

void AttributePods(ManifestResult& result) {
  std::map<std::string, std::size_t> index;  // kind/ns/name → position in workloads
  for (std::size_t i = 0; i < result.workloads.size(); ++i) {
    const auto& w = result.workloads[i];
    index.emplace(WorkloadKey(w.ref.kind, w.namespace_name, w.ref.name), i);
  }
  OwnerLookup lookup = [&](std::string_view kind, std::string_view ns,
                           std::string_view name) -> OwnerInfo {
    auto it = index.find(WorkloadKey(kind, ns, name));
    if (it == index.end()) return {};
    OwnerInfo info{true, std::nullopt};
    for (const auto& o : result.workloads[it->second].owners) {
      if (o.controller) info.controller = o;
    }
    return info;
  };

  // Which entry stands for a workload: its own template first, then a template of an
  // intermediate owner (a ReplicaSet of a Deployment), then one of its Pods.
  std::vector<int> priority(result.workloads.size(), 0);
  for (std::size_t i = 0; i < result.workloads.size(); ++i) {
    auto& w = result.workloads[i];
    const std::string original_kind = w.ref.kind;
    PodView probe;
    probe.name = w.ref.name;
    probe.uid = w.ref.uid;
    probe.namespace_name = w.namespace_name;
    probe.owners = w.owners;
    probe.labels = w.pod.labels;
    if (original_kind == "Pod" || original_kind == "ReplicaSet" || original_kind == "Job") {
      // A ReplicaSet or Job resolves like a Pod it would own: through its own controller.
      WorkloadRef top = original_kind == "Pod" ? ResolveWorkload(probe, lookup) : w.ref;
      if (original_kind != "Pod") {
        if (const OwnerReference* owner = probe.controller_owner()) {
          top = {owner->api_version, owner->kind, owner->name, owner->uid};
        }
      }
      w.ref = top;
      w.pod.name = top.name;
    }
    priority[i] = original_kind == w.ref.kind ? 2 : (original_kind == "Pod" ? 0 : 1);
  }

  std::vector<ManifestWorkload> merged;
  std::vector<int> merged_priority;
  std::map<std::string, std::size_t> merged_index;
  for (std::size_t i = 0; i < result.workloads.size(); ++i) {
    auto& w = result.workloads[i];
    const std::string key = WorkloadKey(w.ref.kind, w.namespace_name, w.ref.name);
    auto it = merged_index.find(key);
    if (it == merged_index.end()) {
      merged_index.emplace(key, merged.size());
      merged.push_back(std::move(w));
      merged_priority.push_back(priority[i]);
      continue;
    }
    ManifestWorkload& existing = merged[it->second];
    if (priority[i] == 2 && merged_priority[it->second] == 2) {
      // The same workload defined twice (a base and an overlay, say): evaluate both.
      result.notes.push_back(w.ref.kind + " " + w.namespace_name + "/" + w.ref.name +
                             " is defined in " + existing.source.file + " and again in " +
                             w.source.file + "; both are evaluated");
      merged.push_back(std::move(w));
      merged_priority.push_back(priority[i]);
      continue;
    }
    const int pods = existing.pods + w.pods;
    if (priority[i] > merged_priority[it->second]) std::swap(existing, w);
    if (merged_priority[it->second] < priority[i]) merged_priority[it->second] = priority[i];
    existing.pods = pods;
    // Containers only some Pods have (an ephemeral debug container) are evaluated too.
    existing.pod.AddContainersOnlyIn(w.pod);
  }
  result.workloads = std::move(merged);
}

}  // namespace capwatch
