#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

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

// Limits on an exec credential plugin, which is someone else's program: it may hang on a
// network call, print a novel, or wait for input that never comes.
struct ExecPluginOptions {
  // The plugin (its whole process group) is killed when it runs longer than this.
  std::chrono::milliseconds timeout{30'000};
  // Standard output beyond this is an error (an ExecCredential with a certificate is ~5 KiB).
  std::size_t max_output_bytes = 1 << 20;
  // The last this-many bytes of standard error go into the error message.
  std::size_t max_stderr_bytes = 1024;
  // A credential this close to its expirationTimestamp is renewed in the background while
  // requests, Lease renewals among them, keep using it.
  std::chrono::seconds refresh_before_expiry{60};
  // After a background renewal failed, the next one starts no sooner than this after the
  // failed one started (the current credential stays in use until it expires).
  std::chrono::seconds retry_after_failure{10};
};

// An exec credential plugin (client.authentication.k8s.io/v1 ExecCredential).
//  - A cached credential is served at once, without waiting on anything, until it expires.
//  - Within refresh_before_expiry of its expiry one background run renews it.
//  - With no usable credential (none yet, expired, or dropped after a 401) the caller runs the
//    plugin itself, or, if a run is already under way, waits for that run (never longer than the
//    timeout) instead of starting another.
// No lock is held while the plugin runs.
class ExecCredentialPlugin final : public CredentialSource {
 public:
  ExecCredentialPlugin(ExecConfig config, std::string server, Clock& clock,
                       ExecPluginOptions options = {});
  // Stops (kills) a background run and waits for it.
  ~ExecCredentialPlugin() override;
  Result<Credentials> Get() override;
  void Invalidate() override;
  // Plugin runs started.
  int runs() const { return runs_.load(); }

 private:
  struct Fetched {
    Result<Credentials> credentials;
    std::optional<std::chrono::system_clock::time_point> expires;
  };
  // Runs the plugin; touches no member but the immutable configuration.
  Fetched Run(const std::stop_token& stop);
  // Stores what a run produced and wakes whoever waits for it. mu_ held.
  void Publish(Fetched fetched);

  const ExecConfig config_;
  const std::string server_;
  const std::string what_;  // "exec credential plugin /path/to/cmd", for messages
  Clock& clock_;
  const ExecPluginOptions options_;
  std::atomic<int> runs_{0};

  std::mutex mu_;
  std::condition_variable ran_;  // a run finished (generation_ moved)
  std::optional<Credentials> cached_;
  std::optional<std::chrono::system_clock::time_point> expires_;
  bool running_ = false;
  std::uint64_t generation_ = 0;
  std::optional<Result<Credentials>> last_result_;  // of the last run, for those who waited
  Clock::TimePoint no_background_run_before_{};
  // Last member: destroyed (stopped and joined) first, while the rest still exists.
  std::jthread background_;
};

// The source a RestConfig asks for: exec plugin, token file, static token, or none.
std::unique_ptr<CredentialSource> MakeCredentialSource(const RestConfig& config, Clock& clock,
                                                       const ExecPluginOptions& exec = {});

}  // namespace capwatch::kube
