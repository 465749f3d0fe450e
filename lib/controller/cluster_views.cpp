#include "controller/cluster_views.h"

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "base/utf8.h"
#include "kube/json_codec.h"
#include "policy/policy_parser.h"
#include "report/report_builder.h"

namespace capwatch::controller {
namespace {

using nlohmann::json;

std::string Str(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Status Meta(const json& object, std::string& ns, std::string& name, std::string& rv) {
  auto md = object.find("metadata");
  if (!object.is_object() || md == object.end() || !md->is_object()) {
    return Error("object without metadata");
  }
  ns = Str(*md, "namespace");
  name = Str(*md, "name");
  rv = Str(*md, "resourceVersion");
  if (name.empty()) return Error("object without metadata.name");
  return {};
}

Status FromNamespace(const json& o, NamespaceView& out) {
  if (Status meta = Meta(o, out.namespace_name, out.name, out.resource_version); !meta.ok()) {
    return meta;
  }
  if (auto labels = o["metadata"].find("labels");
      labels != o["metadata"].end() && labels->is_object()) {
    for (const auto& [k, v] : labels->items()) {
      if (v.is_string()) out.labels.emplace_back(k, v.get<std::string>());
    }
  }
  return {};
}

Status FromPolicy(const json& o, PolicyView& out) {
  if (Status meta = Meta(o, out.namespace_name, out.name, out.resource_version); !meta.ok()) {
    return meta;
  }
  out.uid = Str(o["metadata"], "uid");
  // An integer or absent: value() would convert a float such as 4.4e91 to int64 (undefined).
  if (auto g = o["metadata"].find("generation"); g != o["metadata"].end() && !g->is_null()) {
    if (!g->is_number_integer()) {
      return Error("policy " + out.name + ": metadata.generation must be an integer, not " +
                   Excerpt(g->dump(), 40));
    }
    out.generation = g->get<std::int64_t>();
  }
  // The parser reads YAML, and JSON is YAML: one parser, one set of validation messages.
  json spec_only = {{"apiVersion", Str(o, "apiVersion")},
                    {"kind", Str(o, "kind")},
                    {"metadata", {{"name", out.name}}}};
  if (auto spec = o.find("spec"); spec != o.end()) spec_only["spec"] = *spec;
  try {
    auto parsed = ParsePolicy(YAML::Load(spec_only.dump()));
    if (parsed.ok()) {
      out.policy = std::make_shared<const Policy>(std::move(parsed).value());
    } else {
      out.errors = parsed.error().fields();
    }
  } catch (const YAML::Exception& e) {
    out.errors = {{".spec", std::string("cannot be read: ") + e.what()}};
  }
  if (auto status = o.find("status"); status != o.end()) out.status_fingerprint = status->dump();
  return {};
}

Status FromReport(const json& o, ReportView& out) {
  if (Status meta = Meta(o, out.namespace_name, out.name, out.resource_version); !meta.ok()) {
    return meta;
  }
  const json& md = o["metadata"];
  out.uid = Str(md, "uid");
  bool has_grants = false;
  if (auto a = md.find("annotations"); a != md.end() && a->is_object()) {
    out.content_hash = Str(*a, std::string(kContentHashAnnotation).c_str());
    if (auto g = a->find(std::string(kGrantsAnnotation)); g != a->end() && g->is_string()) {
      has_grants = true;
      // Read and written again: only what decodes is kept, in the canonical order.
      out.dangerous_grants = EncodeGrants(DecodeGrants(g->get<std::string>()));
    }
  }
  if (auto refs = md.find("ownerReferences"); refs != md.end() && refs->is_array()) {
    out.has_owner = !refs->empty();
  }
  if (auto l = md.find("labels"); l != md.end() && l->is_object()) {
    out.managed = Str(*l, "app.kubernetes.io/managed-by") == "capwatch";
  }
  if (auto w = o.find("workload"); w != o.end() && w->is_object()) {
    if (auto p = w->find("pods"); p != w->end() && p->is_number_integer()) out.pods = p->get<int>();
    out.workload_uid = Str(*w, "uid");
  }
  if (!has_grants) out.dangerous_grants = EncodeGrants(DangerousGrantsOf(o));
  return {};
}

// The policy parser (lib/policy) throwing on a spec it did not expect makes the policy
// invalid, with the reason in its status, not unreadable.
Status FromPolicyOrInvalid(const json& o, PolicyView& out) {
  try {
    return FromPolicy(o, out);
  } catch (const std::exception& e) {
    out.policy.reset();
    out.errors = {{".spec", std::string("cannot be read: ") + e.what()}};
    if (out.name.empty()) return Error("object without metadata.name");
    return {};
  }
}

// What FromReport and DangerousGrantsOf read besides the metadata (which the list and object
// decoders check anyway): a report with another type there is refused by name.
Status FromCheckedReport(const json& o, ReportView& out) {
  Status fits = kube::MistypedField(o, {{"workload", kube::JsonType::kObject},
                                        {"workload.pods", kube::JsonType::kNumber},
                                        {"workload.uid", kube::JsonType::kString},
                                        {"containers[].name", kube::JsonType::kString},
                                        {"findings[].result", kube::JsonType::kString},
                                        {"findings[].rule", kube::JsonType::kString},
                                        {"findings[].container", kube::JsonType::kString},
                                        {"findings[].capability", kube::JsonType::kString}});
  if (!fits.ok()) return fits;  // the decoders put the report's name in front
  return FromReport(o, out);
}

}  // namespace

Status NamespaceCodec::DecodeList(std::string_view body,
                                  const std::function<void(NamespaceView&&)>& on_item,
                                  kube::ListPageMeta& meta) {
  return kube::DecodeJsonList(body, on_item, meta, FromNamespace);
}
Result<NamespaceView> NamespaceCodec::Decode(std::string_view object) {
  return kube::DecodeJsonObject<NamespaceView>(object, FromNamespace);
}
Status PolicyCodec::DecodeList(std::string_view body,
                               const std::function<void(PolicyView&&)>& on_item,
                               kube::ListPageMeta& meta) {
  return kube::DecodeJsonList(body, on_item, meta, FromPolicyOrInvalid);
}
Result<PolicyView> PolicyCodec::Decode(std::string_view object) {
  return kube::DecodeJsonObject<PolicyView>(object, FromPolicyOrInvalid);
}
Status ReportCodec::DecodeList(std::string_view body,
                               const std::function<void(ReportView&&)>& on_item,
                               kube::ListPageMeta& meta) {
  return kube::DecodeJsonList(body, on_item, meta, FromCheckedReport);
}
Result<ReportView> ReportCodec::Decode(std::string_view object) {
  return kube::DecodeJsonObject<ReportView>(object, FromCheckedReport);
}

}  // namespace capwatch::controller
