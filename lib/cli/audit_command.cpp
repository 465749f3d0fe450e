#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "base/read_file.h"
#include "base/result.h"
#include "cli/audit_result.h"
#include "cli/commands.h"
#include "policy/policy_parser.h"
#include "report/report_builder.h"

namespace capwatch {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kAuditUsage =
    "usage: capwatch audit -f FILE|DIR|- [-f ...] [--policy FILE]... "
    "[--profile restricted|baseline]\n"
    "                      [-o table|json|sarif] [--fail-on low|medium|high|critical]\n"
    "                      [-R] [--ignore-unknown-kinds] [--max-yaml-bytes N]\n"
    "\n"
    "Evaluates the pods and pod templates in Kubernetes manifests (Pod, Deployment, StatefulSet,\n"
    "DaemonSet, ReplicaSet, ReplicationController, Job, CronJob, PodTemplate, List; YAML or\n"
    "JSON, several documents per file, or `kubectl get -o json` output) against capability\n"
    "policies. Without --policy or --profile the built-in default policy applies; with\n"
    "--profile alone exactly that Pod Security profile is evaluated.\n"
    "\n"
    "A field of the wrong type (add: [SYS_ADMIN, 7], privileged: \"yes\") does not take its\n"
    "object out of the audit: it is a critical unreadable-field finding of the object.\n"
    "\n"
    "Exit status: 0 compliant, 1 findings at or above --fail-on (default low), 2 bad input\n"
    "(not YAML or JSON, an unknown kind, no pod template or containers, no name) or usage.\n";

struct AuditOptions {
  std::vector<std::string> files;
  std::vector<std::string> policy_files;
  std::optional<Profile> profile;
  std::string output = "table";
  Severity fail_on = Severity::kLow;
  bool recursive = false;
  bool help = false;
  ManifestOptions manifest;
};

bool ParseArgs(const std::vector<std::string>& args, AuditOptions& o, std::ostream& err) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string& out) {
      if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
        out = a.substr(eq + 1);
        return true;
      }
      if (i + 1 >= args.size()) {
        err << "capwatch audit: " << a << " needs a value\n";
        return false;
      }
      out = args[++i];
      return true;
    };
    auto is = [&](std::string_view flag) {
      return a == flag || (flag.size() > 2 && a.rfind(std::string(flag) + "=", 0) == 0);
    };
    std::string v;
    if (is("-f") || is("--filename")) {
      if (!value(v)) return false;
      o.files.push_back(v);
    } else if (is("--policy")) {
      if (!value(v)) return false;
      o.policy_files.push_back(v);
    } else if (is("--profile")) {
      if (!value(v)) return false;
      auto p = ParseProfile(v);
      if (!p || *p == Profile::kNone) {
        err << "capwatch audit: --profile must be restricted or baseline, got \"" << v << "\"\n";
        return false;
      }
      o.profile = p;
    } else if (is("-o") || is("--output")) {
      if (!value(v)) return false;
      if (v != "table" && v != "json" && v != "sarif") {
        err << "capwatch audit: -o must be table, json or sarif, got \"" << v << "\"\n";
        return false;
      }
      o.output = v;
    } else if (is("--fail-on")) {
      if (!value(v)) return false;
      auto s = ParseSeverity(v);
      if (!s || *s == Severity::kNone) {
        err << "capwatch audit: --fail-on must be low, medium, high or critical, got \"" << v
            << "\"\n";
        return false;
      }
      o.fail_on = *s;
    } else if (a == "-R" || a == "--recursive") {
      o.recursive = true;
    } else if (a == "--ignore-unknown-kinds") {
      o.manifest.ignore_unknown_kinds = true;
    } else if (is("--max-yaml-bytes")) {
      if (!value(v)) return false;
      try {
        o.manifest.max_yaml_bytes = std::stoull(v);
      } catch (const std::exception&) {
        err << "capwatch audit: --max-yaml-bytes takes a number of bytes, got \"" << v << "\"\n";
        return false;
      }
    } else if (a == "-h" || a == "--help") {
      o.help = true;
      return true;
    } else {
      err << "capwatch audit: unknown argument \"" << a << "\"\n" << kAuditUsage;
      return false;
    }
  }
  if (o.files.empty()) {
    err << "capwatch audit: no input; give -f FILE, -f DIR or -f - for standard input\n"
        << kAuditUsage;
    return false;
  }
  return true;
}

bool IsManifestFile(const fs::path& p) {
  const auto ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

// Expands -f arguments into files; directories give their .yaml/.yml/.json files, sorted.
bool CollectInputs(const AuditOptions& o, std::vector<std::string>& files, std::ostream& err) {
  bool ok = true;
  for (const auto& f : o.files) {
    if (f == "-") {
      files.push_back(f);
      continue;
    }
    std::error_code ec;
    if (fs::is_directory(f, ec)) {
      std::vector<std::string> found;
      auto add = [&](const fs::directory_entry& e) {
        if (e.is_regular_file() && IsManifestFile(e.path())) found.push_back(e.path().string());
      };
      if (o.recursive) {
        for (const auto& e : fs::recursive_directory_iterator(f, ec)) add(e);
      } else {
        for (const auto& e : fs::directory_iterator(f, ec)) add(e);
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) {
        err << "capwatch audit: " << f << ": the directory holds no .yaml, .yml or .json file\n";
        ok = false;
      }
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(f, ec)) {
      files.push_back(f);
    } else {
      err << "capwatch audit: " << f << ": no such file or directory\n";
      ok = false;
    }
  }
  return ok;
}

bool LoadPolicies(const AuditOptions& o, std::vector<Policy>& policies, std::ostream& err) {
  bool ok = true;
  for (const auto& file : o.policy_files) {
    auto content = ReadWholeFile(file);
    if (!content.ok()) {
      err << "capwatch audit: policy " << content.error().ToString() << "\n";
      ok = false;
      continue;
    }
    PolicyParseResult parsed = ParsePolicies(content.value());
    for (const auto& e : parsed.errors) {
      err << "capwatch audit: policy file " << file << ": " << e << "\n";
      ok = false;
    }
    for (const auto& [name, errors] : parsed.invalid) {
      for (const auto& e : errors) {
        err << "capwatch audit: policy file " << file << ", policy " << name << ", field "
            << e.field << ": " << e.message << "\n";
      }
      ok = false;
    }
    for (auto& p : parsed.policies) policies.push_back(std::move(p));
  }
  if (o.profile) policies.push_back(ProfileOnlyPolicy(*o.profile));
  if (policies.empty() && ok) policies.push_back(DefaultPolicy());
  return ok;
}

}  // namespace

int RunAudit(const std::vector<std::string>& args, CommandIo& io) {
  AuditOptions options;
  if (!ParseArgs(args, options, io.err)) return kExitBadInput;
  if (options.help) {
    io.out << kAuditUsage;
    return kExitCompliant;
  }

  std::vector<Policy> policies;
  const bool policies_ok = LoadPolicies(options, policies, io.err);
  std::vector<std::string> files;
  const bool inputs_ok = CollectInputs(options, files, io.err);
  if (!policies_ok || !inputs_ok) return kExitBadInput;

  ManifestResult manifests;
  for (const auto& file : files) {
    std::string content;
    if (file == "-") {
      std::ostringstream ss;
      ss << io.in.rdbuf();
      content = ss.str();
    } else if (auto read = ReadWholeFile(file); read.ok()) {
      content = std::move(read).value();
    } else {
      io.err << "capwatch audit: " << read.error().ToString() << "\n";
      return kExitBadInput;
    }
    ReadManifest(file == "-" ? "<stdin>" : file, content, options.manifest, manifests);
  }
  AttributePods(manifests);
  for (const auto& note : manifests.notes) io.err << "capwatch audit: note: " << note << "\n";
  for (const auto& w : manifests.warnings) {
    io.err << "capwatch audit: warning: " << w.ToString()
           << "; the object is evaluated with what could be read (a critical unreadable-field "
              "finding)\n";
  }
  for (const auto& e : manifests.errors) io.err << "capwatch audit: " << e.ToString() << "\n";

  AuditOutput audit;
  for (const auto& p : policies) audit.policies.push_back(&p);
  const auto now = Clock::now();
  bool failing = false;
  audit.workloads.reserve(manifests.workloads.size());
  for (const auto& w : manifests.workloads) {
    std::vector<const Policy*> matching;
    for (const Policy* p : audit.policies) {
      if (PolicyMatches(*p, w.pod, nullptr)) matching.push_back(p);
    }
    AuditedWorkload& aw = audit.workloads.emplace_back();
    aw.workload = &w;
    aw.evaluation = Evaluate(w.pod, matching, now);
    if (aw.evaluation.skipped) {
      io.err << "capwatch audit: note: " << w.source.file << ": " << w.ref.kind << " "
             << w.namespace_name << "/" << w.ref.name << " skipped: " << aw.evaluation.note << "\n";
    }
    aw.report = BuildReport({w.ref, w.namespace_name, w.pods, &w.pod, &aw.evaluation});
    for (const auto& f : aw.evaluation.findings) {
      if (!f.exempt && f.severity >= options.fail_on) failing = true;
    }
  }

  if (options.output == "json") {
    WriteJson(audit, io.out);
  } else if (options.output == "sarif") {
    WriteSarif(audit, io.out);
  } else {
    WriteTable(audit, io.out, io.out_is_terminal);
  }
  if (!manifests.errors.empty()) {
    io.err << "capwatch audit: " << manifests.errors.size()
           << " input error(s); the objects that could be read were evaluated\n";
    return kExitBadInput;
  }
  return failing ? kExitFindings : kExitCompliant;
}

}  // namespace capwatch
