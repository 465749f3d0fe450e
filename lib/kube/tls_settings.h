#pragma once

#include <mutex>
#include <string>

#include <openssl/ssl.h>

#include "base/result.h"

namespace capwatch::kube {

// What every TLS connection to the API server is set up with, by either HTTP client.
struct TlsSettings {
  std::string ca_pem;       // empty: the system's roots
  std::string verify_host;  // tls-server-name, or the server's host (an IPv6 one unbracketed)
  // The Host header when the URL's would be wrong: tls-server-name, or "[v6addr]:port".
  std::string host_header;
  bool send_sni = true;  // not for an IP address (RFC 6066 section 3)
  bool verify = true;
  std::string static_cert_pem, static_key_pem;

  // The client certificate to present now: the exec plugin's (which may rotate) or the
  // kubeconfig's.
  void SetExecCert(std::string cert_pem, std::string key_pem);
  void ClientCert(std::string& cert_pem, std::string& key_pem) const;

 private:
  mutable std::mutex mu_;
  std::string exec_cert_pem_, exec_key_pem_;
};

// Sets up `ctx` for the API server: TLS 1.2 or later, the peer verified against the configured
// CA only (the system's roots when none is configured), the host checked against verify_host,
// and the current client certificate.
Status ConfigureTls(SSL_CTX* ctx, const TlsSettings& tls);

}  // namespace capwatch::kube
