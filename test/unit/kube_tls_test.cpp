#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "kube/rest_client.h"
#include "kube_fake_server.h"

namespace capwatch::kube {
namespace {

using namespace std::chrono_literals;
using testing::Connection;
using testing::FakeApiServer;
using testing::HttpRequest;
using testing::TempDir;
using testing::TlsFiles;

std::string Read(const std::string& path) { return testing::ReadFile(path); }

// Certificates made at test time with the openssl CLI: a CA, a server certificate for
// 127.0.0.1, one for ::1, one only for the name kubernetes.default, a client certificate, and
// another CA that signed nothing of this.
class KubeTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string d = dir_->path();
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string q = " >/dev/null 2>&1";
    auto sign = [&](const std::string& name, const std::string& subject, const std::string& ext) {
      dir_->Write(name + ".ext", ext + "\n");
      return testing::Shell("cd " + d + " && openssl req " + key + " -keyout " + name +
                            ".key -out " + name + ".csr -subj " + subject + q +
                            " && openssl x509 -req -in " + name +
                            ".csr -CA ca.crt -CAkey ca.key "
                            "-CAcreateserial -days 2 -out " +
                            name + ".crt -extfile " + name + ".ext" + q);
    };
    ok_ =
        testing::Shell("cd " + d + " && openssl req -x509 " + key +
                       " -keyout ca.key -out ca.crt -days 2 -subj /CN=capwatch-test-ca" + q) == 0 &&
        testing::Shell("cd " + d + " && openssl req -x509 " + key +
                       " -keyout other-ca.key -out other-ca.crt -days 2 -subj /CN=other-ca" + q) ==
            0 &&
        sign("server", "/CN=kube-apiserver", "subjectAltName=IP:127.0.0.1,DNS:localhost") == 0 &&
        sign("server6", "/CN=kube-apiserver", "subjectAltName=IP:::1,DNS:localhost") == 0 &&
        sign("named", "/CN=kube-apiserver", "subjectAltName=DNS:kubernetes.default") == 0 &&
        sign("client", "/CN=capwatch-test", "extendedKeyUsage=clientAuth") == 0;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!ok_) GTEST_SKIP() << "the openssl CLI could not make test certificates";
  }

  static std::string File(const std::string& name) { return dir_->File(name); }
  static TlsFiles Server(const std::string& name, bool require_client_cert = false) {
    return {File(name + ".crt"), File(name + ".key"),
            require_client_cert ? File("ca.crt") : std::string()};
  }

  static Result<std::unique_ptr<RestClient>> Client(RestConfig cfg) {
    TransportOptions o;
    o.request_timeout = 2s;
    o.max_retries = 0;
    o.qps = 0;
    return RestClient::Make(std::move(cfg), o);
  }

  static inline TempDir* dir_ = nullptr;
  static inline bool ok_ = false;
};

void Ok(const HttpRequest&, Connection& c) { c.Respond(200, "{}"); }

TEST_F(KubeTls, VerifiesTheServerAgainstTheConfiguredCa) {
  FakeApiServer server(Ok, Server("server"));
  RestConfig cfg;
  cfg.server = server.url();
  cfg.ca_pem = Read(File("ca.crt"));
  auto client = Client(cfg);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  auto r = client.value()->Get(ResourceRef::Pods("a"), "b");
  EXPECT_TRUE(r.ok()) << r.error().ToString();
}

TEST_F(KubeTls, AnUpperCaseSchemeStillMeansTls) {
  FakeApiServer server(Ok, Server("server"));
  RestConfig cfg;
  cfg.server = "HTTPS" + server.url().substr(5);
  cfg.ca_pem = Read(File("ca.crt"));
  auto client = Client(cfg);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  auto r = client.value()->Get(ResourceRef::Pods("a"), "b");
  EXPECT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(server.handshake_failures(), 0);
}

TEST_F(KubeTls, AWrongCaFails) {
  FakeApiServer server(Ok, Server("server"));
  RestConfig cfg;
  cfg.server = server.url();
  cfg.ca_pem = Read(File("other-ca.crt"));
  auto client = Client(cfg);
  ASSERT_TRUE(client.ok());
  auto r = client.value()->Get(ResourceRef::Pods("a"), "b");
  EXPECT_EQ(r.error().reason(), StatusReason::kTransport) << r.error().ToString();
  EXPECT_EQ(server.requests(), 0) << "no request may reach an unverified server";

  // Without a configured CA the system trust store decides, and it does not know the test CA.
  RestConfig none;
  none.server = server.url();
  auto system = Client(none);
  ASSERT_TRUE(system.ok());
  EXPECT_FALSE(system.value()->Get(ResourceRef::Pods("a"), "b").ok());
}

TEST_F(KubeTls, ClientCertificateAuthentication) {
  std::string seen_cn;
  FakeApiServer server(
      [&](const HttpRequest& r, Connection& c) {
        seen_cn = r.client_cert_cn;
        c.Respond(200, "{}");
      },
      Server("server", /*require_client_cert=*/true));
  RestConfig cfg;
  cfg.server = server.url();
  cfg.ca_pem = Read(File("ca.crt"));
  auto anonymous = Client(cfg);
  ASSERT_TRUE(anonymous.ok());
  EXPECT_FALSE(anonymous.value()->Get(ResourceRef::Pods("a"), "b").ok())
      << "the server demands a client certificate";

  cfg.client_cert_pem = Read(File("client.crt"));
  cfg.client_key_pem = Read(File("client.key"));
  auto client = Client(cfg);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  auto r = client.value()->Get(ResourceRef::Pods("a"), "b");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(seen_cn, "capwatch-test");
}

TEST_F(KubeTls, ExecPluginClientCertificate) {
  // An exec plugin may answer with a client certificate instead of a token (as some
  // on-premises and AKS setups do); the TLS connection presents it.
  std::string seen_cn, seen_auth;
  FakeApiServer server(
      [&](const HttpRequest& r, Connection& c) {
        seen_cn = r.client_cert_cn;
        seen_auth = r.Header("authorization");
        c.Respond(200, "{}");
      },
      Server("server", /*require_client_cert=*/true));
  const nlohmann::json credential = {{"apiVersion", "client.authentication.k8s.io/v1"},
                                     {"kind", "ExecCredential"},
                                     {"status",
                                      {{"clientCertificateData", Read(File("client.crt"))},
                                       {"clientKeyData", Read(File("client.key"))}}}};
  dir_->Write("credential.json", credential.dump());
  dir_->Write("cert-plugin.sh", "#!/bin/sh\ncat '" + File("credential.json") + "'\n");
  ASSERT_EQ(testing::Shell("chmod +x '" + File("cert-plugin.sh") + "'"), 0);
  RestConfig cfg;
  cfg.server = server.url();
  cfg.ca_pem = Read(File("ca.crt"));
  cfg.exec = ExecConfig{};
  cfg.exec->command = File("cert-plugin.sh");
  auto client = Client(cfg);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  auto r = client.value()->Get(ResourceRef::Pods("a"), "b");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(seen_cn, "capwatch-test");
  EXPECT_EQ(seen_auth, "");
}

TEST_F(KubeTls, TlsServerNameIsWhatTheCertificateIsCheckedAgainst) {
  std::string sni;
  FakeApiServer server(
      [&](const HttpRequest& r, Connection& c) {
        sni = r.sni;
        c.Respond(200, "{}");
      },
      Server("named"));
  RestConfig cfg;
  cfg.server = server.url();
  cfg.ca_pem = Read(File("ca.crt"));
  auto by_ip = Client(cfg);
  ASSERT_TRUE(by_ip.ok());
  EXPECT_FALSE(by_ip.value()->Get(ResourceRef::Pods("a"), "b").ok())
      << "the certificate is not for 127.0.0.1";

  cfg.tls_server_name = "kubernetes.default";
  auto named = Client(cfg);
  ASSERT_TRUE(named.ok());
  auto r = named.value()->Get(ResourceRef::Pods("a"), "b");
  EXPECT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(sni, "kubernetes.default") << "the server is asked for the name we verify";
}

// An IPv6 API server (https://[fd00::1]:6443 in a kubeconfig, or an IPv6 in-cluster service
// address): the URL holds brackets, the certificate's IP SAN does not.
class KubeTlsIpv6 : public KubeTls {
 protected:
  void SetUp() override {
    KubeTls::SetUp();
    if (IsSkipped()) return;
    std::string why;
    if (!FakeApiServer::Ipv6LoopbackAvailable(&why)) {
      GTEST_SKIP() << "this machine cannot listen on [::1] (" << why << ")";
    }
  }
};

TEST_F(KubeTlsIpv6, VerifiesTheServerAgainstItsIpSan) {
  std::string host;
  FakeApiServer server(
      [&](const HttpRequest& r, Connection& c) {
        host = r.Header("host");
        c.Respond(200, "{}");
      },
      Server("server6"), testing::Loopback::kIpv6);
  ASSERT_EQ(server.url(), "https://[::1]:" + std::to_string(server.port()));
  RestConfig cfg;
  cfg.server = server.url();
  cfg.ca_pem = Read(File("ca.crt"));
  auto client = Client(cfg);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  auto r = client.value()->Get(ResourceRef::Pods("a"), "b");
  EXPECT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(host, "[::1]:" + std::to_string(server.port())) << "RFC 7230: brackets in Host";
}

TEST_F(KubeTlsIpv6, ACertificateWithoutThatIpSanFails) {
  // Signed by the trusted CA, but for 127.0.0.1 and localhost only.
  FakeApiServer server(Ok, Server("server"), testing::Loopback::kIpv6);
  RestConfig cfg;
  cfg.server = server.url();
  cfg.ca_pem = Read(File("ca.crt"));
  auto client = Client(cfg);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  auto r = client.value()->Get(ResourceRef::Pods("a"), "b");
  EXPECT_EQ(r.error().reason(), StatusReason::kTransport) << r.error().ToString();
  // The server notices the aborted handshake a moment after the client gives up.
  for (int i = 0; i < 200 && server.handshake_failures() == 0; ++i) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_GE(server.handshake_failures(), 1) << "it connected, and refused the certificate";
  EXPECT_EQ(server.requests(), 0) << "no request may reach an unverified server";
}

TEST_F(KubeTls, InsecureSkipVerifyConnectsAnyway) {
  FakeApiServer server(Ok, Server("server"));
  RestConfig cfg;
  cfg.server = server.url();
  cfg.ca_pem = Read(File("other-ca.crt"));
  cfg.insecure_skip_tls_verify = true;
  auto client = Client(cfg);
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE(client.value()->Get(ResourceRef::Pods("a"), "b").ok());
}

TEST_F(KubeTls, BadTlsMaterialIsAConfigurationError) {
  RestConfig cfg;
  cfg.server = "https://127.0.0.1:1";
  cfg.ca_pem = "not a certificate";
  cfg.source = "kubeconfig test";
  auto bad_ca = Client(cfg);
  ASSERT_FALSE(bad_ca.ok());
  EXPECT_EQ(bad_ca.error().reason(), StatusReason::kConfig);
  EXPECT_NE(bad_ca.error().message().find("kubeconfig test"), std::string::npos);

  cfg.ca_pem = Read(File("ca.crt"));
  cfg.client_cert_pem = Read(File("client.crt"));
  cfg.client_key_pem = "garbage";
  auto bad_key = Client(cfg);
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.error().message().find("client key"), std::string::npos)
      << bad_key.error().message();

  cfg.server = "ftp://example";
  EXPECT_FALSE(Client(cfg).ok());
}

}  // namespace
}  // namespace capwatch::kube
