#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace capwatch::controller {

// The certificate and key (PEM) that the metrics listener serves.
struct ServingCert {
  std::string cert_pem;  // the leaf first, then any chain
  std::string key_pem;
  std::string source;    // "self-signed" or the directory it came from, for the log
};

// A self-signed certificate (ECDSA P-256, valid a year) for `hosts`: DNS names and IP
// literals (IPv4 or IPv6) become subjectAltNames of their kind. What the listener serves when
// no certificate is mounted; scrapers then skip verification or pin this certificate.
Result<ServingCert> MakeSelfSignedCert(const std::vector<std::string>& hosts);

// tls.crt and tls.key from `dir` (a mounted kubernetes.io/tls Secret, e.g. from cert-manager),
// checked to be a certificate and its matching key.
Result<ServingCert> LoadServingCert(const std::string& dir);

// `what`, then OpenSSL's first queued error, if any (the queue is cleared).
std::string OpenSslError(std::string_view what);

}  // namespace capwatch::controller
