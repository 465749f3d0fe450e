#include "controller/serving_cert.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>
#include <sstream>

namespace capwatch::controller {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

}  // namespace

std::string OpenSslError(std::string_view what) {
  std::string message(what);
  const unsigned long code = ERR_get_error();
  if (code != 0) {
    char text[256];
    ERR_error_string_n(code, text, sizeof(text));
    message += ": ";
    message += text;
  }
  ERR_clear_error();
  return message;
}

namespace {

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(length));
}

// One subjectAltName: an IP address when `host` is an IPv4 or IPv6 literal, else a DNS name.
bool AddName(GENERAL_NAMES* names, const std::string& host) {
  unsigned char ip[16];
  int ip_length = 0;
  if (inet_pton(AF_INET, host.c_str(), ip) == 1) {
    ip_length = 4;
  } else if (inet_pton(AF_INET6, host.c_str(), ip) == 1) {
    ip_length = 16;
  }
  GENERAL_NAME* name = GENERAL_NAME_new();
  if (name == nullptr) return false;
  if (ip_length > 0) {
    ASN1_OCTET_STRING* octets = ASN1_OCTET_STRING_new();
    if (octets == nullptr || ASN1_OCTET_STRING_set(octets, ip, ip_length) != 1) {
      ASN1_OCTET_STRING_free(octets);
      GENERAL_NAME_free(name);
      return false;
    }
    GENERAL_NAME_set0_value(name, GEN_IPADD, octets);
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (dns == nullptr || ASN1_STRING_set(dns, host.data(), static_cast<int>(host.size())) != 1) {
      ASN1_IA5STRING_free(dns);
      GENERAL_NAME_free(name);
      return false;
    }
    GENERAL_NAME_set0_value(name, GEN_DNS, dns);
  }
  if (sk_GENERAL_NAME_push(names, name) == 0) {
    GENERAL_NAME_free(name);
    return false;
  }
  return true;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

Result<ServingCert> MakeSelfSignedCert(const std::vector<std::string>& hosts) {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return Error(OpenSslError("cannot generate the serving key"));
  CertPtr cert(X509_new());
  if (!cert) return Error(OpenSslError("cannot allocate the serving certificate"));
  unsigned char serial[16];
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  urandom.read(reinterpret_cast<char*>(serial), sizeof(serial));
  serial[0] &= 0x7F;  // positive
  BIGNUM* serial_bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  const bool ok_serial =
      serial_bn != nullptr && BN_to_ASN1_INTEGER(serial_bn, X509_get_serialNumber(cert.get()));
  BN_free(serial_bn);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  const std::string common_name = hosts.empty() ? "capwatch" : hosts.front();
  NamesPtr names(sk_GENERAL_NAME_new_null());
  bool ok = ok_serial && X509_set_version(cert.get(), 2) == 1 &&
            X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300) != nullptr &&
            X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600) != nullptr &&
            X509_NAME_add_entry_by_txt(
                subject, "CN", MBSTRING_UTF8,
                reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0) == 1 &&
            X509_set_issuer_name(cert.get(), subject) == 1 &&
            X509_set_pubkey(cert.get(), key.get()) == 1 && names != nullptr;
  for (const auto& host : hosts) ok = ok && AddName(names.get(), host);
  ok = ok && X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, names.get(), 0, 0) == 1;
  // A server certificate, not a CA: scrapers that pin it cannot use it to sign others.
  BASIC_CONSTRAINTS* constraints = BASIC_CONSTRAINTS_new();
  ok = ok && constraints != nullptr &&
       X509_add1_ext_i2d(cert.get(), NID_basic_constraints, constraints, 1, 0) == 1;
  BASIC_CONSTRAINTS_free(constraints);
  ok = ok && X509_sign(cert.get(), key.get(), EVP_sha256()) > 0;
  if (!ok) return Error(OpenSslError("cannot build the self-signed serving certificate"));
  BioPtr cert_bio(BIO_new(BIO_s_mem())), key_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || !key_bio || PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1) {
    return Error(OpenSslError("cannot encode the serving certificate"));
  }
  ServingCert made;
  made.cert_pem = BioText(cert_bio.get());
  made.key_pem = BioText(key_bio.get());
  made.source = "self-signed";
  return made;
}

Result<ServingCert> LoadServingCert(const std::string& dir) {
  auto cert_pem = ReadFile(dir + "/tls.crt");
  if (!cert_pem.ok()) return cert_pem.error();
  auto key_pem = ReadFile(dir + "/tls.key");
  if (!key_pem.ok()) return key_pem.error();
  ServingCert loaded;
  loaded.cert_pem = std::move(cert_pem).value();
  loaded.key_pem = std::move(key_pem).value();
  BioPtr cert_bio(BIO_new_mem_buf(loaded.cert_pem.data(), static_cast<int>(loaded.cert_pem.size())));
  BioPtr key_bio(BIO_new_mem_buf(loaded.key_pem.data(), static_cast<int>(loaded.key_pem.size())));
  CertPtr cert(cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return Error(OpenSslError(dir + "/tls.crt holds no PEM certificate"));
  KeyPtr key(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr)
                     : nullptr);
  if (!key) return Error(OpenSslError(dir + "/tls.key holds no PEM private key"));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return Error(OpenSslError(dir + "/tls.key is not the key of " + dir + "/tls.crt"));
  }
  loaded.source = dir;
  return loaded;
}

}  // namespace capwatch::controller
