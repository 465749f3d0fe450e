#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace capwatch::kube {

// users[].user.exec: a client.authentication.k8s.io/v1 credential plugin (EKS, GKE, AKS).
struct ExecConfig {
  std::string command;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string api_version = "client.authentication.k8s.io/v1";
  std::string install_hint;
  bool provide_cluster_info = false;
};

// Where and how to reach one API server: the resolved cluster, user and context. Certificate
// and key files are read when the configuration is loaded, so the transport holds PEM text.
struct RestConfig {
  std::string server;  // https://host:port or https://[v6addr]:port, no trailing slash
  std::string ca_pem;
  std::string tls_server_name;
  bool insecure_skip_tls_verify = false;
  std::string token;
  std::string token_file;  // re-read when it changes (projected service-account tokens rotate)
  std::string client_cert_pem;
  std::string client_key_pem;
  std::optional<ExecConfig> exec;
  std::string source;  // "kubeconfig /home/me/.kube/config, context kind-dev" for messages
  // An http:// server gets the bearer token and every object in clear text, so RestClient::Make
  // refuses one unless this is set (capwatch controller --allow-insecure-api-server). Not read
  // from any kubeconfig: only the person starting the process can allow it.
  bool allow_insecure_http = false;
};

// Each loader returns the configuration, or an error naming the file and the missing or bad
// field (capwatch::Result with lib/base's Error: no API server is involved yet).

// Loads kubeconfig files merged the way kubectl merges KUBECONFIG: for clusters, users and
// contexts the first file that defines a name wins; current-context comes from the first file
// that sets it. `context` overrides current-context. Relative paths are resolved against the
// file that holds them.
capwatch::Result<RestConfig> LoadKubeconfig(const std::vector<std::string>& files, const std::string& context = {});

// kubectl's order: an explicit --kubeconfig path, else $KUBECONFIG (':'-separated, missing
// files skipped), else ~/.kube/config.
std::vector<std::string> KubeconfigFiles(const std::string& explicit_path);

// In-cluster: KUBERNETES_SERVICE_HOST/PORT, the service account's CA and token file (re-read
// when it changes). `sa_dir` is /var/run/secrets/kubernetes.io/serviceaccount outside tests.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
capwatch::Result<RestConfig> InClusterConfig(
    const EnvLookup& env = {},
    const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// What `capwatch controller --kubeconfig` does (controller-runtime's order): the explicit
// path, else $KUBECONFIG, else in-cluster when KUBERNETES_SERVICE_HOST is set, else
// ~/.kube/config.
capwatch::Result<RestConfig> LoadRestConfig(const std::string& explicit_path,
                                            const std::string& context = {});

}  // namespace capwatch::kube
