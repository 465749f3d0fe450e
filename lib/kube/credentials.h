#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "kube/api_status.h"
#include "kube/clock.h"
#include "kube/kubeconfig.h"

namespace capwatch::kube {

// What a request authenticates with right now.
struct Credentials {
  std::string token;            // bearer token, empty for none
  std::string client_cert_pem;  // from an exec plugin; static certificates live in RestConfig
  std::string client_key_pem;
};

// Supplies credentials, refreshing them as they rotate. Thread-safe.
class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  virtual Result<Credentials> Get() = 0;
  // The API server answered 401: the next Get() must not reuse what it has cached.
  virtual void Invalidate() {}
};

// A token that never changes (kubeconfig users[].user.token).
class StaticToken final : public CredentialSource {
 public:
  explicit StaticToken(std::string token) : token_(std::move(token)) {}
  Result<Credentials> Get() override { return Credentials{token_, {}, {}}; }

 private:
  std::string token_;
};

// A token file (tokenFile, the in-cluster service-account token) re-read when its modification
// time or size changes, and after a 401. Projected tokens rotate hourly; the kubelet replaces
// the file, so a stat per request notices the new token on the next request.
class TokenFile final : public CredentialSource {
 public:
  explicit TokenFile(std::string path) : path_(std::move(path)) {}
  Result<Credentials> Get() override;
  void Invalidate() override;

 private:
  std::string path_;
  std::mutex mu_;
  std::string token_;
  std::optional<std::filesystem::file_time_type> mtime_;
  std::uintmax_t size_ = 0;
};

// An exec credential plugin (client.authentication.k8s.io/v1 ExecCredential), run when no
// credential is cached or the cached one has passed its expirationTimestamp (with a margin).
class ExecCredentialPlugin final : public CredentialSource {
 public:
  ExecCredentialPlugin(ExecConfig config, std::string server, Clock& clock);
  Result<Credentials> Get() override;
  void Invalidate() override;
  int runs() const { return runs_; }

 private:
  Result<Credentials> Run();

  ExecConfig config_;
  std::string server_;
  Clock& clock_;
  std::mutex mu_;
  std::optional<Credentials> cached_;
  std::optional<std::chrono::system_clock::time_point> expires_;
  int runs_ = 0;
};

// The source a RestConfig asks for: exec plugin, token file, static token, or none.
std::unique_ptr<CredentialSource> MakeCredentialSource(const RestConfig& config, Clock& clock);

}  // namespace capwatch::kube
