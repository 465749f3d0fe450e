#include "kube/credentials.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "base/rfc3339.h"

extern char** environ;

namespace capwatch::kube {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

ApiStatus ConfigError(std::string message) {
  return ApiStatus(0, StatusReason::kConfig, std::move(message));
}

// Runs argv with `env` added to this process's environment; returns stdout and exit status.
struct ProcessResult {
  std::string out;
  int exit_code = -1;
  std::string error;
};

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extra_env) {
  ProcessResult result;
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    result.error = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);

  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const auto& e : extra_env) env_strings.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argp[0], &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    result.error = std::string("cannot start: ") + std::strerror(rc);
    return result;
  }
  char buf[4096];
  for (;;) {
    const ssize_t n = read(pipefd[0], buf, sizeof buf);
    if (n > 0) {
      result.out.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  close(pipefd[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace

Result<Credentials> TokenFile::Get() {
  std::lock_guard lock(mu_);
  std::error_code ec;
  const auto mtime = std::filesystem::last_write_time(path_, ec);
  const auto size = ec ? 0 : std::filesystem::file_size(path_, ec);
  if (ec) {
    if (!token_.empty()) {
      spdlog::warn("token file {}: {}; using the token read before", path_, ec.message());
      return Credentials{token_, {}, {}};
    }
    return ConfigError("token file " + path_ + ": " + ec.message());
  }
  if (!mtime_ || *mtime_ != mtime || size_ != size) {
    std::ifstream in(path_, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    std::string token = Trim(s.str());
    if (token.empty()) return ConfigError("token file " + path_ + " is empty");
    if (mtime_) spdlog::info("token file {} changed; using the new token", path_);
    token_ = std::move(token);
    mtime_ = mtime;
    size_ = size;
  }
  return Credentials{token_, {}, {}};
}

void TokenFile::Invalidate() {
  std::lock_guard lock(mu_);
  mtime_.reset();
}

ExecCredentialPlugin::ExecCredentialPlugin(ExecConfig config, std::string server, Clock& clock)
    : config_(std::move(config)), server_(std::move(server)), clock_(clock) {}

Result<Credentials> ExecCredentialPlugin::Get() {
  std::lock_guard lock(mu_);
  // Refresh a little before the expiry so a request does not race it.
  if (cached_ && (!expires_ || clock_.WallNow() + std::chrono::seconds(10) < *expires_)) {
    return *cached_;
  }
  return Run();
}

void ExecCredentialPlugin::Invalidate() {
  std::lock_guard lock(mu_);
  cached_.reset();
}

Result<Credentials> ExecCredentialPlugin::Run() {
  ++runs_;
  nlohmann::json input = {{"apiVersion", config_.api_version},
                          {"kind", "ExecCredential"},
                          {"spec", {{"interactive", false}}}};
  if (config_.provide_cluster_info) input["spec"]["cluster"] = {{"server", server_}};
  std::vector<std::string> env;
  for (const auto& [k, v] : config_.env) env.push_back(k + "=" + v);
  env.push_back("KUBERNETES_EXEC_INFO=" + input.dump());
  std::vector<std::string> argv{config_.command};
  argv.insert(argv.end(), config_.args.begin(), config_.args.end());

  const std::string what = "exec credential plugin " + config_.command;
  ProcessResult p = RunProcess(argv, env);
  if (!p.error.empty()) {
    return ConfigError(what + ": " + p.error +
                       (config_.install_hint.empty() ? "" : " (" + config_.install_hint + ")"));
  }
  if (p.exit_code != 0) {
    return ConfigError(what + " exited with status " + std::to_string(p.exit_code));
  }
  auto doc = nlohmann::json::parse(p.out, nullptr, false);
  if (!doc.is_object() || doc.value("kind", "") != "ExecCredential") {
    return ConfigError(what + ": output is not an ExecCredential");
  }
  if (doc.value("apiVersion", "") != config_.api_version) {
    return ConfigError(what + ": output apiVersion " + doc.value("apiVersion", "") +
                       " does not match " + config_.api_version);
  }
  const auto status = doc.find("status");
  if (status == doc.end() || !status->is_object()) {
    return ConfigError(what + ": output has no status");
  }
  Credentials c;
  c.token = status->value("token", "");
  c.client_cert_pem = status->value("clientCertificateData", "");
  c.client_key_pem = status->value("clientKeyData", "");
  if (c.token.empty() && c.client_cert_pem.empty()) {
    return ConfigError(what + ": status has neither token nor clientCertificateData");
  }
  if (c.client_cert_pem.empty() != c.client_key_pem.empty()) {
    return ConfigError(what + ": status has a client certificate without a key or vice versa");
  }
  expires_.reset();
  if (const std::string exp = status->value("expirationTimestamp", ""); !exp.empty()) {
    expires_ = ParseRfc3339(exp);
    if (!expires_) return ConfigError(what + ": bad status.expirationTimestamp \"" + exp + "\"");
  }
  cached_ = c;
  return c;
}

std::unique_ptr<CredentialSource> MakeCredentialSource(const RestConfig& config, Clock& clock) {
  if (config.exec)
    return std::make_unique<ExecCredentialPlugin>(*config.exec, config.server, clock);
  if (!config.token_file.empty()) return std::make_unique<TokenFile>(config.token_file);
  if (!config.token.empty()) return std::make_unique<StaticToken>(config.token);
  return nullptr;
}

}  // namespace capwatch::kube
