#include "kube/tls_settings.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace capwatch::kube {

namespace {

// OpenSSL's own verdict for each certificate, whatever verify callback the context carries.
int KeepVerdict(int preverified, X509_STORE_CTX*) { return preverified; }

// Replaces OpenSSL's chain check so that the host is checked against `verify_host` (which
// may be the kubeconfig's tls-server-name rather than the URL's host).
int VerifyChainAndHost(X509_STORE_CTX* ctx, void* arg) {
  const auto* host = static_cast<const std::string*>(arg);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  if (X509_VERIFY_PARAM_set1_ip_asc(param, host->c_str()) != 1) {
    X509_VERIFY_PARAM_set1_host(param, host->c_str(), host->size());
  }
  X509_STORE_CTX_set_verify_cb(ctx, KeepVerdict);
  return X509_verify_cert(ctx);
}

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// A store that trusts exactly the PEM certificates given.
Status TrustOnly(SSL_CTX* ctx, const std::string& pem) {
  X509_STORE* store = X509_STORE_new();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, cert);
    X509_free(cert);
    ++added;
  }
  ERR_clear_error();  // the loop ends on a "no start line" error
  BIO_free(bio);
  if (added == 0) {
    X509_STORE_free(store);
    return Error("certificate-authority holds no PEM certificate");
  }
  SSL_CTX_set_cert_store(ctx, store);
  return {};
}

// The first PEM certificate as the leaf, the rest as its chain, and the PEM private key.
Status UseClientCert(SSL_CTX* ctx, const std::string& cert_pem, const std::string& key_pem) {
  BIO* bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* leaf = PEM_read_bio_X509_AUX(bio, nullptr, nullptr, nullptr);
  if (leaf == nullptr) {
    BIO_free(bio);
    return Error("client certificate: " + OpenSslError());
  }
  const int used = SSL_CTX_use_certificate(ctx, leaf);
  X509_free(leaf);
  if (used != 1) {
    BIO_free(bio);
    return Error("client certificate: " + OpenSslError());
  }
  SSL_CTX_clear_chain_certs(ctx);
  while (X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      BIO_free(bio);
      return Error("client certificate chain: " + OpenSslError());
    }
  }
  ERR_clear_error();  // the end of the PEM certificates
  BIO_free(bio);

  bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) return Error("client key: " + OpenSslError());
  const int key_used = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (key_used != 1) return Error("client key: " + OpenSslError());
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return Error("client key does not match the client certificate: " + OpenSslError());
  }
  return {};
}

}  // namespace

void TlsSettings::SetExecCert(std::string cert_pem, std::string key_pem) {
  std::lock_guard lock(mu_);
  exec_cert_pem_ = std::move(cert_pem);
  exec_key_pem_ = std::move(key_pem);
}

void TlsSettings::ClientCert(std::string& cert_pem, std::string& key_pem) const {
  std::lock_guard lock(mu_);
  if (!exec_cert_pem_.empty()) {
    cert_pem = exec_cert_pem_;
    key_pem = exec_key_pem_;
  } else {
    cert_pem = static_cert_pem;
    key_pem = static_key_pem;
  }
}

Status ConfigureTls(SSL_CTX* ctx, const TlsSettings& tls) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (tls.verify) {
    if (!tls.ca_pem.empty()) {
      if (Status trusted = TrustOnly(ctx, tls.ca_pem); !trusted.ok()) return trusted;
    } else {
      SSL_CTX_set_default_verify_paths(ctx);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_cert_verify_callback(ctx, VerifyChainAndHost,
                                     const_cast<std::string*>(&tls.verify_host));
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  std::string cert, key;
  tls.ClientCert(cert, key);
  if (!cert.empty()) return UseClientCert(ctx, cert, key);
  return {};
}

}  // namespace capwatch::kube
