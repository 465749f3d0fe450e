#include "kube/kubeconfig.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <spdlog/spdlog.h>

namespace capwatch::kube {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Base64 as kubeconfig's *-data fields use it (standard alphabet, padding optional).
std::optional<std::string> DecodeBase64(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r' || c == ' ') continue;
    const int v = value(c);
    if (v < 0) return std::nullopt;
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xFF));
    }
  }
  return out;
}

// One named entry (a cluster, user or context) and the file it came from.
struct Entry {
  YAML::Node node;
  std::string file;
};

struct Merged {
  std::map<std::string, Entry> clusters, users, contexts;
  std::string current_context;
  std::string current_context_file;
};

std::string Resolve(const std::string& path, const std::string& file) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(file).parent_path() / path).lexically_normal().string();
}

// A field of `n`, or nothing when `n` is no mapping (yaml-cpp throws reading a field of a
// string or a list).
YAML::Node Field(const YAML::Node& n, const char* key) {
  return n.IsMap() ? n[key] : YAML::Node(YAML::NodeType::Undefined);
}

std::string Str(const YAML::Node& n, const char* key) {
  const YAML::Node v = Field(n, key);
  return v && v.IsScalar() ? v.as<std::string>() : std::string();
}

// A PEM from `<key>-data` (base64) or `<key>` (a file path); empty when neither is set.
capwatch::Result<std::string> LoadPem(const YAML::Node& n, const std::string& key,
                                      const std::string& file, const std::string& where) {
  const std::string data = Str(n, (key + "-data").c_str());
  if (!data.empty()) {
    auto decoded = DecodeBase64(data);
    if (!decoded) return Error(file + ": " + where + "." + key + "-data is not valid base64");
    return std::move(*decoded);
  }
  const std::string path = Resolve(Str(n, key.c_str()), file);
  if (path.empty()) return std::string();
  auto content = ReadFile(path);
  if (!content) return Error(file + ": " + where + "." + key + ": cannot read " + path);
  return std::move(*content);
}

}  // namespace

std::vector<std::string> KubeconfigFiles(const std::string& explicit_path) {
  if (!explicit_path.empty()) return {explicit_path};
  std::vector<std::string> files;
  if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
    std::string all(env);
    std::size_t start = 0;
    while (start <= all.size()) {
      const std::size_t end = std::min(all.find(':', start), all.size());
      std::string f = all.substr(start, end - start);
      if (!f.empty() && fs::exists(f)) files.push_back(f);
      start = end + 1;
    }
    return files;
  }
  if (const char* home = std::getenv("HOME"); home != nullptr) {
    files.push_back(std::string(home) + "/.kube/config");
  }
  return files;
}

capwatch::Result<RestConfig> LoadKubeconfig(const std::vector<std::string>& files, const std::string& context) {
  if (files.empty()) return Error("no kubeconfig file (set --kubeconfig or KUBECONFIG)");
  Merged m;
  for (const auto& file : files) {
    YAML::Node doc;
    try {
      doc = YAML::LoadFile(file);
    } catch (const YAML::BadFile&) {
      return Error(file + ": cannot read kubeconfig");
    } catch (const YAML::Exception& e) {
      return Error(file + ": invalid YAML: " + e.what());
    }
    if (!doc || doc.IsNull()) continue;
    if (!doc.IsMap()) return Error(file + ": a kubeconfig must be a mapping");
    auto merge = [&](const char* list, const char* inner,
                     std::map<std::string, Entry>& into) -> Status {
      const YAML::Node items = doc[list];
      if (!items) return {};
      if (!items.IsSequence()) return Error(file + ": " + list + " must be a list");
      for (std::size_t i = 0; i < items.size(); ++i) {
        const std::string name = Str(items[i], "name");
        if (name.empty()) {
          return Error(file + ": " + list + "[" + std::to_string(i) + "].name is missing");
        }
        if (!Field(items[i], inner)) {
          return Error(file + ": " + list + "[" + std::to_string(i) + "] (" + name + ")." +
                       inner + " is missing");
        }
        into.emplace(name, Entry{items[i][inner], file});  // the first file wins
      }
      return {};
    };
    for (auto [list, inner, into] :
         {std::tuple{"clusters", "cluster", &m.clusters}, std::tuple{"users", "user", &m.users},
          std::tuple{"contexts", "context", &m.contexts}}) {
      if (Status merged = merge(list, inner, *into); !merged.ok()) return merged.error();
    }
    if (m.current_context.empty()) {
      m.current_context = Str(doc, "current-context");
      m.current_context_file = file;
    }
  }

  const std::string ctx_name = context.empty() ? m.current_context : context;
  if (ctx_name.empty()) {
    return Error(files.front() + ": current-context is not set and no context was given");
  }
  auto ctx = m.contexts.find(ctx_name);
  if (ctx == m.contexts.end()) {
    return Error("context \"" + ctx_name + "\" is not in " + files.front() +
                              (files.size() > 1 ? " or the other KUBECONFIG files" : ""));
  }
  const std::string cluster_name = Str(ctx->second.node, "cluster");
  const std::string user_name = Str(ctx->second.node, "user");
  const std::string ctx_where = ctx->second.file + ": contexts[" + ctx_name + "]";
  if (cluster_name.empty()) return Error(ctx_where + ".context.cluster is missing");
  auto cluster = m.clusters.find(cluster_name);
  if (cluster == m.clusters.end()) {
    return Error(ctx_where + ": cluster \"" + cluster_name + "\" is not defined");
  }

  RestConfig cfg;
  cfg.source = "kubeconfig " + ctx->second.file + ", context " + ctx_name;
  {
    const YAML::Node c = cluster->second.node;
    const std::string& file = cluster->second.file;
    const std::string where = "clusters[" + cluster_name + "].cluster";
    cfg.server = Str(c, "server");
    if (cfg.server.empty()) return Error(file + ": " + where + ".server is missing");
    while (!cfg.server.empty() && cfg.server.back() == '/') cfg.server.pop_back();
    cfg.tls_server_name = Str(c, "tls-server-name");
    cfg.insecure_skip_tls_verify = Str(c, "insecure-skip-tls-verify") == "true";
    auto ca = LoadPem(c, "certificate-authority", file, where);
    if (!ca.ok()) return ca.error();
    cfg.ca_pem = std::move(ca).value();
  }
  if (!user_name.empty()) {
    auto user = m.users.find(user_name);
    if (user == m.users.end()) {
      return Error(ctx_where + ": user \"" + user_name + "\" is not defined");
    }
    const YAML::Node u = user->second.node;
    const std::string& file = user->second.file;
    const std::string where = "users[" + user_name + "].user";
    if (!u.IsMap()) return Error(file + ": " + where + " must be a mapping");
    cfg.token = Str(u, "token");
    cfg.token_file = Resolve(Str(u, "tokenFile"), file);
    auto cert = LoadPem(u, "client-certificate", file, where);
    if (!cert.ok()) return cert.error();
    auto key = LoadPem(u, "client-key", file, where);
    if (!key.ok()) return key.error();
    cfg.client_cert_pem = std::move(cert).value();
    cfg.client_key_pem = std::move(key).value();
    if (cfg.client_cert_pem.empty() != cfg.client_key_pem.empty()) {
      return Error(file + ": " + where + " has a client certificate without a key or " +
                                "a key without a certificate");
    }
    if (const YAML::Node e = u["exec"]; e) {
      ExecConfig exec;
      exec.command = Str(e, "command");
      if (exec.command.empty())
        return Error(file + ": " + where + ".exec.command is missing");
      if (exec.command.find('/') != std::string::npos) exec.command = Resolve(exec.command, file);
      exec.api_version = Str(e, "apiVersion");
      if (exec.api_version != "client.authentication.k8s.io/v1" &&
          exec.api_version != "client.authentication.k8s.io/v1beta1") {
        return Error(file + ": " + where + ".exec.apiVersion \"" + exec.api_version +
                                  "\" is not client.authentication.k8s.io/v1");
      }
      if (const YAML::Node args = e["args"]; args && args.IsSequence()) {
        for (std::size_t i = 0; i < args.size(); ++i) {
          if (!args[i].IsScalar()) {
            return Error(file + ": " + where + ".exec.args[" + std::to_string(i) +
                                      "] must be a string");
          }
          exec.args.push_back(args[i].Scalar());
        }
      }
      if (const YAML::Node env = e["env"]; env && env.IsSequence()) {
        for (const auto& v : env) exec.env.emplace_back(Str(v, "name"), Str(v, "value"));
      }
      exec.install_hint = Str(e, "installHint");
      exec.provide_cluster_info = Str(e, "provideClusterInfo") == "true";
      cfg.exec = std::move(exec);
    }
    if (u["auth-provider"]) {
      return Error(file + ": " + where + ".auth-provider is not supported; use an exec " +
                                "credential plugin");
    }
  }
  if (cfg.insecure_skip_tls_verify) {
    spdlog::warn(
        "TLS verification of {} is OFF (insecure-skip-tls-verify in {}): anyone on the "
        "network path can read and forge API traffic",
        cfg.server, cfg.source);
  }
  return cfg;
}

capwatch::Result<RestConfig> InClusterConfig(const EnvLookup& env, const std::string& sa_dir) {
  EnvLookup lookup = env ? env : [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  const auto host = lookup("KUBERNETES_SERVICE_HOST");
  const auto port = lookup("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty() || !port || port->empty()) {
    return Error("not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
            "must be set");
  }
  RestConfig cfg;
  // An IPv6 service address needs brackets in a URL (once: a person may have written them).
  const bool v6 = host->find(':') != std::string::npos && host->front() != '[';
  cfg.server = "https://" + (v6 ? "[" + *host + "]" : *host) + ":" + *port;
  cfg.token_file = sa_dir + "/token";
  if (!fs::exists(cfg.token_file)) {
    return Error(cfg.token_file + ": service account token file is missing");
  }
  auto ca = ReadFile(sa_dir + "/ca.crt");
  if (!ca) return Error(sa_dir + "/ca.crt: service account CA is missing");
  cfg.ca_pem = *ca;
  cfg.source = "in-cluster service account (" + sa_dir + ")";
  return cfg;
}

capwatch::Result<RestConfig> LoadRestConfig(const std::string& explicit_path, const std::string& context) {
  // controller-runtime's order: --kubeconfig, $KUBECONFIG, in-cluster, ~/.kube/config.
  const char* kubeconfig = std::getenv("KUBECONFIG");
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  if (explicit_path.empty() && (kubeconfig == nullptr || *kubeconfig == '\0') && host != nullptr &&
      *host != '\0') {
    return InClusterConfig();
  }
  return LoadKubeconfig(KubeconfigFiles(explicit_path), context);
}

}  // namespace capwatch::kube
