#include <gtest/gtest.h>

#include <cstdlib>

#include "base/rfc3339.h"
#include "kube/kubeconfig.h"
#include "kube/time_format.h"
#include "kube_fake_server.h"

namespace capwatch::kube {
namespace {

using testing::TempDir;

// aGVsbG8= is "hello" in base64, for the *-data fields.
TEST(Kubeconfig, MergesFilesLikeKubectl) {
  TempDir dir;
  dir.Write("ca.crt", "CA-PEM");
  dir.Write("a.yaml", R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev
  cluster: {server: "https://dev.example:6443/", certificate-authority: ca.crt}
- name: shared
  cluster: {server: "https://first.example"}
users:
- name: dev-user
  user: {token: from-a}
contexts:
- name: dev
  context: {cluster: dev, user: dev-user}
)");
  dir.Write("b.yaml", R"(apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: shared
  cluster: {server: "https://second.example"}
- name: prod
  cluster: {server: "https://prod.example", certificate-authority-data: aGVsbG8=,
            tls-server-name: kubernetes.default}
users:
- name: dev-user
  user: {token: from-b}
- name: prod-user
  user: {client-certificate-data: aGVsbG8=, client-key-data: aGVsbG8=}
contexts:
- name: prod
  context: {cluster: prod, user: prod-user}
- name: both
  context: {cluster: shared, user: dev-user}
)");
  // current-context from the first file that sets it; relative paths against that file.
  auto dev = LoadKubeconfig({dir.File("a.yaml"), dir.File("b.yaml")});
  ASSERT_TRUE(dev.ok()) << dev.error().ToString();
  EXPECT_EQ(dev->server, "https://dev.example:6443");
  EXPECT_EQ(dev->ca_pem, "CA-PEM");
  EXPECT_EQ(dev->token, "from-a");
  EXPECT_NE(dev->source.find("context dev"), std::string::npos);

  // An explicit context; names defined in both files come from the first.
  auto both = LoadKubeconfig({dir.File("a.yaml"), dir.File("b.yaml")}, "both");
  ASSERT_TRUE(both.ok()) << both.error().ToString();
  EXPECT_EQ(both->server, "https://first.example");
  EXPECT_EQ(both->token, "from-a");

  auto prod = LoadKubeconfig({dir.File("a.yaml"), dir.File("b.yaml")}, "prod");
  ASSERT_TRUE(prod.ok()) << prod.error().ToString();
  EXPECT_EQ(prod->ca_pem, "hello");
  EXPECT_EQ(prod->tls_server_name, "kubernetes.default");
  EXPECT_EQ(prod->client_cert_pem, "hello");
  EXPECT_EQ(prod->client_key_pem, "hello");
  EXPECT_TRUE(prod->token.empty());

  // The other order: b's current-context wins.
  auto reversed = LoadKubeconfig({dir.File("b.yaml"), dir.File("a.yaml")});
  ASSERT_TRUE(reversed.ok()) << reversed.error().ToString();
  EXPECT_EQ(reversed->server, "https://prod.example");
}

TEST(Kubeconfig, ErrorsNameTheFileAndTheField) {
  TempDir dir;
  dir.Write("c.yaml", R"(current-context: x
clusters:
- name: c
  cluster: {certificate-authority: missing.crt}
users:
- name: u
  user: {client-certificate-data: aGVsbG8=}
contexts:
- name: x
  context: {cluster: c, user: u}
- name: y
  context: {cluster: nowhere}
- name: z
  context: {cluster: c2, user: u}
)");
  auto x = LoadKubeconfig({dir.File("c.yaml")});
  ASSERT_FALSE(x.ok());
  EXPECT_NE(x.error().ToString().find(dir.File("c.yaml")), std::string::npos) << x.error().ToString();
  EXPECT_NE(x.error().ToString().find("clusters[c].cluster.server is missing"), std::string::npos) << x.error().ToString();

  auto y = LoadKubeconfig({dir.File("c.yaml")}, "y");
  ASSERT_FALSE(y.ok());
  EXPECT_NE(y.error().ToString().find("cluster \"nowhere\" is not defined"), std::string::npos) << y.error().ToString();

  auto missing = LoadKubeconfig({dir.File("c.yaml")}, "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().ToString().find("context \"nope\""), std::string::npos) << missing.error().ToString();

  dir.Write("d.yaml", R"(current-context: x
clusters:
- name: c
  cluster: {server: "https://x", certificate-authority: missing.crt}
contexts:
- name: x
  context: {cluster: c}
)");
  auto ca = LoadKubeconfig({dir.File("d.yaml")});
  ASSERT_FALSE(ca.ok());
  EXPECT_NE(ca.error().ToString().find("certificate-authority: cannot read " + dir.File("missing.crt")),
            std::string::npos)
      << ca.error().ToString();

  dir.Write("e.yaml", R"(current-context: x
clusters:
- name: c
  cluster: {server: "https://x"}
users:
- name: u
  user: {client-certificate-data: aGVsbG8=}
contexts:
- name: x
  context: {cluster: c, user: u}
)");
  auto half = LoadKubeconfig({dir.File("e.yaml")});
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.error().ToString().find("without a key"), std::string::npos) << half.error().ToString();

  auto absent = LoadKubeconfig({dir.File("nope.yaml")});
  ASSERT_FALSE(absent.ok());
  EXPECT_NE(absent.error().ToString().find("nope.yaml"), std::string::npos);
}

TEST(Kubeconfig, ExecPluginAndTokenFileAndInsecure) {
  TempDir dir;
  dir.Write("k.yaml", R"(current-context: eks
clusters:
- name: eks
  cluster: {server: "https://eks.example", insecure-skip-tls-verify: true}
users:
- name: aws
  user:
    tokenFile: token
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./bin/get-token
      args: [eks, get-token, --cluster-name, demo]
      env: [{name: AWS_PROFILE, value: dev}]
      provideClusterInfo: true
      interactiveMode: Never
contexts:
- name: eks
  context: {cluster: eks, user: aws}
)");
  auto r = LoadKubeconfig({dir.File("k.yaml")});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->insecure_skip_tls_verify);
  EXPECT_EQ(r->token_file, dir.File("token"));
  ASSERT_TRUE(r->exec.has_value());
  EXPECT_EQ(r->exec->command, dir.File("bin/get-token"));
  EXPECT_EQ(r->exec->args.size(), 4u);
  ASSERT_EQ(r->exec->env.size(), 1u);
  EXPECT_EQ(r->exec->env[0].first, "AWS_PROFILE");
  EXPECT_TRUE(r->exec->provide_cluster_info);
}

// ctest runs each test in its own process, so changing the environment here is contained.
TEST(Kubeconfig, KubeconfigVariableListsFilesInOrderAndSkipsMissingOnes) {
  TempDir dir;
  const std::string one = R"(current-context: a
clusters: [{name: a, cluster: {server: "https://one"}}]
contexts: [{name: a, context: {cluster: a}}]
)";
  const std::string two = R"(current-context: b
clusters: [{name: b, cluster: {server: "https://two"}}]
contexts: [{name: b, context: {cluster: b}}]
)";
  dir.Write("one", one);
  dir.Write("two", two);
  const std::string saved = std::getenv("KUBECONFIG") ? std::getenv("KUBECONFIG") : "";
  const std::string list = dir.File("missing") + ":" + dir.File("two") + ":" + dir.File("one");
  setenv("KUBECONFIG", list.c_str(), 1);
  EXPECT_EQ(KubeconfigFiles(""), (std::vector<std::string>{dir.File("two"), dir.File("one")}));
  EXPECT_EQ(KubeconfigFiles("/explicit"), std::vector<std::string>{"/explicit"});
  // $KUBECONFIG wins over the in-cluster configuration, as in controller-runtime.
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  auto r = LoadRestConfig("");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->server, "https://two");
  auto a = LoadRestConfig("", "a");
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  EXPECT_EQ(a->server, "https://one");
  unsetenv("KUBERNETES_SERVICE_HOST");
  if (saved.empty()) {
    unsetenv("KUBECONFIG");
  } else {
    setenv("KUBECONFIG", saved.c_str(), 1);
  }
}

TEST(Kubeconfig, Ipv6Server) {
  TempDir dir;
  dir.Write("v6.yaml", R"(current-context: v6
clusters: [{name: v6, cluster: {server: "https://[fd00::1]:6443/"}}]
contexts: [{name: v6, context: {cluster: v6}}]
)");
  auto r = LoadKubeconfig({dir.File("v6.yaml")});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->server, "https://[fd00::1]:6443");
}

TEST(InClusterConfig, ServiceAccountFiles) {
  TempDir dir;
  auto env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "KUBERNETES_SERVICE_HOST") return "10.96.0.1";
    if (name == "KUBERNETES_SERVICE_PORT") return "443";
    return std::nullopt;
  };
  auto missing = InClusterConfig(env, dir.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().ToString().find(dir.File("token")), std::string::npos) << missing.error().ToString();

  dir.Write("token", "sa-token\n");
  dir.Write("ca.crt", "SA-CA");
  auto r = InClusterConfig(env, dir.path());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->server, "https://10.96.0.1:443");
  EXPECT_EQ(r->ca_pem, "SA-CA");
  EXPECT_EQ(r->token_file, dir.File("token"));

  auto v6 = InClusterConfig(
      [](const std::string& name) -> std::optional<std::string> {
        if (name == "KUBERNETES_SERVICE_HOST") return "fd00::1";
        if (name == "KUBERNETES_SERVICE_PORT") return "443";
        return std::nullopt;
      },
      dir.path());
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->server, "https://[fd00::1]:443");
  // Already in brackets (not what the kubelet writes, but what a person might): kept once.
  auto bracketed = InClusterConfig(
      [](const std::string& name) -> std::optional<std::string> {
        if (name == "KUBERNETES_SERVICE_HOST") return "[fd00::1]";
        if (name == "KUBERNETES_SERVICE_PORT") return "6443";
        return std::nullopt;
      },
      dir.path());
  ASSERT_TRUE(bracketed.ok());
  EXPECT_EQ(bracketed->server, "https://[fd00::1]:6443");

  auto outside =
      InClusterConfig([](const std::string&) { return std::optional<std::string>(); }, dir.path());
  EXPECT_FALSE(outside.ok());
}

TEST(TimeFormat, MicroTimeRoundTrips) {
  using namespace std::chrono;
  const auto t =
      sys_days{year{2026} / 11 / 29} + hours(13) + minutes(51) + seconds(30) + microseconds(123456);
  EXPECT_EQ(FormatMicroTime(t), "2026-11-29T13:51:30.123456Z");
  EXPECT_EQ(ParseRfc3339("2026-11-29T13:51:30.123456Z"), t);
  EXPECT_EQ(ParseRfc3339("2026-11-29T14:51:30.123456+01:00"), t);
  EXPECT_EQ(ParseRfc3339("2026-11-29T13:51:30Z"),
            sys_days{year{2026} / 11 / 29} + 13h + 51min + 30s);
  EXPECT_FALSE(ParseRfc3339("2026-11-29 nope").has_value());
  EXPECT_FALSE(ParseRfc3339("2026-13-29T13:51:30Z").has_value());
}

}  // namespace
}  // namespace capwatch::kube
