#include "kube/credentials.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
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

std::string FormatDuration(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

// What a plugin process did. `error` is set when it could not start, ran too long or wrote too
// much; then it was killed and exit_code means nothing.
struct ProcessResult {
  std::string out;
  std::string err_tail;  // the last bytes of its standard error
  std::size_t err_bytes = 0;
  int exit_code = -1;
  std::string error;
};

struct ProcessLimits {
  std::chrono::milliseconds timeout;
  std::size_t max_out;
  std::size_t max_err;
};

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Runs argv with `extra_env` added to this process's environment, stdin from /dev/null, in a
// process group of its own so that a timeout kills what it started too. Returns when it has
// exited, or after killing it on a timeout, too much output, or `stop`.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extra_env, const ProcessLimits& limits,
                         const std::stop_token& stop) {
  using Steady = std::chrono::steady_clock;
  const Steady::time_point deadline = Steady::now() + limits.timeout;
  ProcessResult result;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.error = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.error = std::string("pipe: ") + std::strerror(errno);
    close(out_pipe[0]);
    close(out_pipe[1]);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // Its own process group; the signals the controller blocks (SIGTERM, SIGINT) unblocked and
  // SIGPIPE back to its default, so the plugin behaves as it would from a shell.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

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
  const int rc = posix_spawnp(&pid, argp[0], &actions, &attr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    result.error = std::string("cannot start: ") + std::strerror(rc);
    return result;
  }
  SetNonBlocking(out_pipe[0]);
  SetNonBlocking(err_pipe[0]);

  int fds[2] = {out_pipe[0], err_pipe[0]};
  bool exited = false;
  int status = 0;
  char buf[16384];
  while (result.error.empty()) {
    if (!exited) {
      const pid_t w = waitpid(pid, &status, WNOHANG);
      // ECHILD: someone reaps children for us (SIGCHLD ignored); its output decides.
      exited = w == pid || (w < 0 && errno == ECHILD);
    }
    // Done when it has exited and both pipes are drained and closed.
    if (exited && fds[0] < 0 && fds[1] < 0) break;
    const auto now = Steady::now();
    if (now >= deadline) {
      result.error = "did not finish within " + FormatDuration(limits.timeout) + "; killed it";
      break;
    }
    if (stop.stop_requested()) {
      result.error = "stopped";
      break;
    }
    // Short polls: a child that closed its pipes but has not exited, and `stop`, are noticed.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    const int wait_ms = static_cast<int>(std::clamp<long long>(left.count(), 1, 20));
    pollfd p[2];
    nfds_t n = 0;
    for (int fd : fds) {
      if (fd >= 0) p[n++] = pollfd{fd, POLLIN, 0};
    }
    if (n == 0) {
      poll(nullptr, 0, wait_ms);
      continue;
    }
    if (poll(p, n, wait_ms) < 0 && errno != EINTR) {
      result.error = std::string("poll: ") + std::strerror(errno);
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i] < 0) continue;
      const ssize_t got = read(fds[i], buf, sizeof buf);
      if (got > 0) {
        const auto size = static_cast<std::size_t>(got);
        if (i == 0) {
          result.out.append(buf, size);
          if (result.out.size() > limits.max_out) {
            result.error = "wrote more than " + std::to_string(limits.max_out) +
                           " bytes to standard output; killed it";
          }
        } else {
          result.err_bytes += size;
          result.err_tail.append(buf, size);
          if (result.err_tail.size() > 2 * limits.max_err) {
            result.err_tail.erase(0, result.err_tail.size() - limits.max_err);
          }
        }
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(fds[i]);
        fds[i] = -1;
      }
    }
  }
  if (!result.error.empty() && !exited) {
    kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  } else if (!result.error.empty()) {
    kill(-pid, SIGKILL);  // whatever it left running in its group
  }
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
  if (result.err_tail.size() > limits.max_err) {
    result.err_tail.erase(0, result.err_tail.size() - limits.max_err);
  }
  if (result.error.empty()) {
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return result;
}

// `; stderr: "..."` with the plugin's standard error on one line, or "" when it wrote none.
std::string StderrNote(const ProcessResult& p) {
  std::string_view tail = p.err_tail;
  const bool cut = p.err_bytes > tail.size();
  // A cut may land inside a UTF-8 sequence: start at the next character.
  while (cut && !tail.empty() && (static_cast<unsigned char>(tail.front()) & 0xC0) == 0x80) {
    tail.remove_prefix(1);
  }
  std::string text;
  for (char c : tail) {
    const auto u = static_cast<unsigned char>(c);
    text.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
  }
  const auto first = text.find_first_not_of(' ');
  if (first == std::string::npos) return {};
  text = text.substr(first, text.find_last_not_of(' ') - first + 1);
  if (cut) {
    return "; stderr (last " + std::to_string(tail.size()) + " of " + std::to_string(p.err_bytes) +
           " bytes): \"..." + text + "\"";
  }
  return "; stderr: \"" + text + "\"";
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

ExecCredentialPlugin::ExecCredentialPlugin(ExecConfig config, std::string server, Clock& clock,
                                           ExecPluginOptions options)
    : config_(std::move(config)),
      server_(std::move(server)),
      what_("exec credential plugin " + config_.command),
      clock_(clock),
      options_(options) {}

ExecCredentialPlugin::~ExecCredentialPlugin() {
  background_.request_stop();
  if (background_.joinable()) background_.join();
}

Result<Credentials> ExecCredentialPlugin::Get() {
  std::unique_lock lock(mu_);
  const auto now = clock_.WallNow();
  const bool usable = cached_ && (!expires_ || now < *expires_);
  if (usable && (!expires_ || now + options_.refresh_before_expiry < *expires_)) return *cached_;
  if (usable) {
    // Close to its expiry: renew it in the background and keep serving this one meanwhile.
    if (!running_ && clock_.Now() >= no_background_run_before_) {
      running_ = true;
      ++runs_;
      if (background_.joinable()) background_.join();  // finished: it published under mu_
      const Clock::TimePoint started = clock_.Now();
      background_ = std::jthread([this, started](const std::stop_token& stop) {
        Fetched fetched = Run(stop);
        std::lock_guard inner(mu_);
        if (!fetched.credentials.ok() && !stop.stop_requested()) {
          spdlog::warn("{}; the current credential stays in use until it expires",
                       fetched.credentials.error().message());
          no_background_run_before_ = started + options_.retry_after_failure;
        }
        Publish(std::move(fetched));
      });
    }
    return *cached_;
  }
  if (running_) {
    // Someone else's run will produce the credential: wait for it, not for ever.
    const std::uint64_t generation = generation_;
    const auto patience = options_.timeout + std::chrono::seconds(1);
    if (!ran_.wait_for(lock, patience, [&] { return generation_ != generation; })) {
      return ConfigError(
          what_ + ": still running after " +
          FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(patience)) +
          " (started by another request)");
    }
    return *last_result_;
  }
  running_ = true;
  ++runs_;
  lock.unlock();
  Fetched fetched = Run(std::stop_token{});
  lock.lock();
  Result<Credentials> result = fetched.credentials;
  Publish(std::move(fetched));
  return result;
}

void ExecCredentialPlugin::Publish(Fetched fetched) {
  running_ = false;
  ++generation_;
  if (fetched.credentials.ok()) {
    cached_ = fetched.credentials.value();
    expires_ = fetched.expires;
  }
  last_result_ = std::move(fetched.credentials);
  ran_.notify_all();
}

void ExecCredentialPlugin::Invalidate() {
  std::lock_guard lock(mu_);
  cached_.reset();
}

ExecCredentialPlugin::Fetched ExecCredentialPlugin::Run(const std::stop_token& stop) {
  nlohmann::json input = {{"apiVersion", config_.api_version},
                          {"kind", "ExecCredential"},
                          {"spec", {{"interactive", false}}}};
  if (config_.provide_cluster_info) input["spec"]["cluster"] = {{"server", server_}};
  std::vector<std::string> env;
  for (const auto& [k, v] : config_.env) env.push_back(k + "=" + v);
  env.push_back("KUBERNETES_EXEC_INFO=" + input.dump());
  std::vector<std::string> argv{config_.command};
  argv.insert(argv.end(), config_.args.begin(), config_.args.end());

  const ProcessLimits limits{options_.timeout, options_.max_output_bytes,
                             options_.max_stderr_bytes};
  const ProcessResult p = RunProcess(argv, env, limits, stop);
  auto fail = [&](const std::string& m) -> Fetched {
    return {ConfigError(what_ + m + StderrNote(p)), std::nullopt};
  };
  if (!p.error.empty()) {
    return fail(": " + p.error +
                (config_.install_hint.empty() ? "" : " (" + config_.install_hint + ")"));
  }
  if (p.exit_code != 0) return fail(" exited with status " + std::to_string(p.exit_code));
  auto doc = nlohmann::json::parse(p.out, nullptr, false);
  if (!doc.is_object() || doc.value("kind", "") != "ExecCredential") {
    return fail(": output is not an ExecCredential");
  }
  if (doc.value("apiVersion", "") != config_.api_version) {
    return fail(": output apiVersion " + doc.value("apiVersion", "") + " does not match " +
                config_.api_version);
  }
  const auto status = doc.find("status");
  if (status == doc.end() || !status->is_object()) return fail(": output has no status");
  auto text = [&](const char* key) {
    const auto it = status->find(key);
    return it != status->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  Credentials c;
  c.token = text("token");
  c.client_cert_pem = text("clientCertificateData");
  c.client_key_pem = text("clientKeyData");
  if (c.token.empty() && c.client_cert_pem.empty()) {
    return fail(": status has neither token nor clientCertificateData");
  }
  if (c.client_cert_pem.empty() != c.client_key_pem.empty()) {
    return fail(": status has a client certificate without a key or vice versa");
  }
  std::optional<std::chrono::system_clock::time_point> expires;
  if (const std::string exp = text("expirationTimestamp"); !exp.empty()) {
    std::string why;
    expires = ParseRfc3339(exp, &why);
    if (!expires) return fail(": bad status.expirationTimestamp \"" + exp + "\": " + why);
  }
  return {std::move(c), expires};
}

std::unique_ptr<CredentialSource> MakeCredentialSource(const RestConfig& config, Clock& clock,
                                                       const ExecPluginOptions& exec) {
  if (config.exec) {
    return std::make_unique<ExecCredentialPlugin>(*config.exec, config.server, clock, exec);
  }
  if (!config.token_file.empty()) return std::make_unique<TokenFile>(config.token_file);
  if (!config.token.empty()) return std::make_unique<StaticToken>(config.token);
  return nullptr;
}

}  // namespace capwatch::kube
