#include <gtest/gtest.h>

#include <gmock/gmock.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "fake_clock.h"
#include "kube/credentials.h"
#include "kube/time_format.h"
#include "kube_fake_server.h"

namespace capwatch::kube {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TempDir;

// Exec credential plugins as small shell scripts in a temporary directory.
class ExecPlugin : public ::testing::Test {
 protected:
  // Writes an executable script and returns its path.
  std::string Plugin(const std::string& name, const std::string& body) {
    dir_.Write(name, "#!/bin/sh\n" + body);
    std::filesystem::permissions(dir_.File(name), std::filesystem::perms::owner_all);
    return dir_.File(name);
  }
  // A plugin printing a token valid until `expires` (RFC 3339).
  std::string TokenPlugin(const std::string& name, const std::string& token,
                          const std::string& expires) {
    return Plugin(name,
                  "cat <<'JSON'\n"
                  "{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                  "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"" +
                      token + "\",\"expirationTimestamp\":\"" + expires + "\"}}\nJSON\n");
  }
  std::unique_ptr<ExecCredentialPlugin> Source(const std::string& command,
                                               ExecPluginOptions options) {
    ExecConfig exec;
    exec.command = command;
    return std::make_unique<ExecCredentialPlugin>(exec, "https://127.0.0.1:6443", clock_, options);
  }
  static ExecPluginOptions Quick() {
    ExecPluginOptions o;
    o.timeout = 200ms;
    return o;
  }
  static std::chrono::milliseconds Since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  }

  TempDir dir_;
  FakeClock clock_;
};

TEST_F(ExecPlugin, AHungPluginIsKilledAtTheTimeout) {
  // The shell waits on a child; both are in the plugin's process group, and both must go.
  const std::string pid_file = dir_.File("sleep.pid");
  const std::string cmd = Plugin("hang.sh", "sleep 1000 &\necho $! > '" + pid_file + "'\nwait\n");
  auto source = Source(cmd, Quick());
  const auto start = std::chrono::steady_clock::now();
  auto r = source->Get();
  const auto took = Since(start);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason(), StatusReason::kConfig);
  EXPECT_THAT(r.error().message(), HasSubstr(cmd));
  EXPECT_THAT(r.error().message(), HasSubstr("did not finish within 200 ms"));
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 2s);

  const pid_t child = std::stoi(testing::ReadFile(pid_file));
  // Killed: gone, or a zombie waiting for whoever reaps orphans here.
  for (int i = 0; i < 100 && kill(child, 0) == 0; ++i) {
    const std::string stat = testing::ReadFile("/proc/" + std::to_string(child) + "/stat");
    if (stat.find(") Z") != std::string::npos) break;
    std::this_thread::sleep_for(10ms);
  }
  const std::string stat = testing::ReadFile("/proc/" + std::to_string(child) + "/stat");
  EXPECT_TRUE(stat.empty() || stat.find(") Z") != std::string::npos)
      << "the plugin's child still runs: " << stat;
}

TEST_F(ExecPlugin, JunkOutputIsAnErrorNamingThePlugin) {
  const std::string cmd = Plugin("junk.sh", "echo 'Token: abc (not JSON)'\n");
  auto r = Source(cmd, Quick())->Get();
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr(cmd));
  EXPECT_THAT(r.error().message(), HasSubstr("not an ExecCredential"));
}

TEST_F(ExecPlugin, EndlessOutputIsCutOff) {
  ExecPluginOptions o;
  o.timeout = 10s;  // the size limit, not the timeout, must end it
  o.max_output_bytes = 64 * 1024;
  const std::string cmd = Plugin("yes.sh", "exec yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
  const auto start = std::chrono::steady_clock::now();
  auto r = Source(cmd, o)->Get();
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr(cmd));
  EXPECT_THAT(r.error().message(), HasSubstr("more than 65536 bytes"));
  EXPECT_LT(Since(start), 5s);
}

TEST_F(ExecPlugin, ExitStatusAndStandardErrorAreInTheError) {
  const std::string cmd =
      Plugin("fail.sh", "echo 'error: SSO session for profile prod has expired' >&2\nexit 1\n");
  auto r = Source(cmd, Quick())->Get();
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr(cmd + " exited with status 1"));
  EXPECT_THAT(r.error().message(),
              HasSubstr("stderr: \"error: SSO session for profile prod has expired\""));
}

TEST_F(ExecPlugin, LongStandardErrorIsTruncatedToItsEnd) {
  ExecPluginOptions o = Quick();
  o.timeout = 5s;
  o.max_stderr_bytes = 100;
  const std::string cmd =
      Plugin("noisy.sh",
             "i=0\nwhile [ $i -lt 2000 ]; do echo \"progress $i\" >&2; i=$((i+1)); done\n"
             "echo 'the real error' >&2\nexit 2\n");
  auto r = Source(cmd, o)->Get();
  ASSERT_FALSE(r.ok());
  const std::string& m = r.error().message();
  EXPECT_THAT(m, HasSubstr("exited with status 2"));
  EXPECT_THAT(m, HasSubstr("the real error\""));
  EXPECT_THAT(m, HasSubstr("last 100 of"));
  EXPECT_THAT(m, Not(HasSubstr("progress 0 ")));
  EXPECT_LT(m.size(), 400u) << m;
}

TEST_F(ExecPlugin, TruncatedStandardErrorStartsOnACharacter) {
  ExecPluginOptions o = Quick();
  o.timeout = 5s;
  o.max_stderr_bytes = 101;  // an odd cut through two-byte characters
  const std::string cmd = Plugin(
      "accents.sh", "i=0\nwhile [ $i -lt 200 ]; do printf '\\303\\251' >&2; i=$((i+1)); done\n"
                    "exit 1\n");
  auto r = Source(cmd, o)->Get();
  ASSERT_FALSE(r.ok());
  const std::string& m = r.error().message();
  const auto quote = m.find("\"...");
  ASSERT_NE(quote, std::string::npos) << m;
  const auto first = static_cast<unsigned char>(m[quote + 4]);
  EXPECT_NE(first & 0xC0, 0x80) << "the excerpt starts inside a UTF-8 sequence: " << m;
  EXPECT_EQ(m.substr(quote + 4, 2), "\xC3\xA9");
}

TEST_F(ExecPlugin, AMissingPluginSaysSoWithTheInstallHint) {
  ExecConfig exec;
  exec.command = dir_.File("no-such-plugin");
  exec.install_hint = "install it with: brew install no-such-plugin";
  ExecCredentialPlugin source(exec, "", clock_, Quick());
  auto r = source.Get();
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("cannot start"));
  EXPECT_THAT(r.error().message(), HasSubstr("brew install no-such-plugin"));
}

// While a renewal hangs, a still-valid credential is served at once (a Lease renewal must
// not wait behind the plugin); a request with no valid credential waits for that one run, but
// no longer than the timeout.
TEST_F(ExecPlugin, AHungRenewalBlocksNoRequestThatHasAValidToken) {
  const std::string expires = FormatMicroTime(clock_.WallNow() + 120s);
  const std::string cmd = TokenPlugin("token.sh", "one", expires);
  ExecPluginOptions o;
  o.timeout = 1s;
  o.refresh_before_expiry = 60s;
  auto source = Source(cmd, o);
  auto first = source->Get();
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_EQ(first->token, "one");
  EXPECT_EQ(source->runs(), 1);

  // From now on the plugin hangs.
  Plugin("token.sh", "exec sleep 1000\n");
  clock_.Advance(70s);  // 50 s left: time to renew, in the background
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto r = source->Get();
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->token, "one");
    EXPECT_LT(Since(start), 100ms) << "served without waiting on the renewal";
  }
  EXPECT_EQ(source->runs(), 2) << "one renewal, however many requests";

  // A 401: the token is dropped, and the next request waits for the renewal under way.
  source->Invalidate();
  const auto start = std::chrono::steady_clock::now();
  auto r = source->Get();
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr(cmd));
  EXPECT_THAT(r.error().message(), HasSubstr("did not finish within 1 s"));
  EXPECT_LT(Since(start), 2500ms);
  EXPECT_EQ(source->runs(), 2) << "it waited for the run under way instead of starting one";
}

TEST_F(ExecPlugin, ConcurrentRequestsShareOneRun) {
  const std::string cmd = Plugin("hang.sh", "exec sleep 1000\n");
  auto source = Source(cmd, Quick());
  auto a = std::async(std::launch::async, [&] { return source->Get(); });
  auto b = std::async(std::launch::async, [&] { return source->Get(); });
  const auto start = std::chrono::steady_clock::now();
  auto ra = a.get();
  auto rb = b.get();
  EXPECT_FALSE(ra.ok());
  EXPECT_FALSE(rb.ok());
  EXPECT_THAT(ra.error().message(), HasSubstr(cmd));
  EXPECT_THAT(rb.error().message(), HasSubstr(cmd));
  EXPECT_LT(Since(start), 2s);
  EXPECT_EQ(source->runs(), 1);

  // A timeout is not for ever: the next request runs the (now fixed) plugin again.
  TokenPlugin("hang.sh", "two", FormatMicroTime(clock_.WallNow() + 1h));
  auto r = source->Get();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->token, "two");
}

TEST_F(ExecPlugin, AFailedRenewalKeepsTheValidTokenAndBacksOff) {
  const std::string cmd = TokenPlugin("token.sh", "one", FormatMicroTime(clock_.WallNow() + 90s));
  ExecPluginOptions o = Quick();
  o.refresh_before_expiry = 60s;
  o.retry_after_failure = 10s;
  auto source = Source(cmd, o);
  ASSERT_TRUE(source->Get().ok());
  const std::string failed = dir_.File("failed");
  Plugin("token.sh", "echo > '" + failed + "'\nexit 1\n");
  clock_.Advance(40s);  // 50 s left
  auto r = source->Get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->token, "one");
  // Whether that renewal is still running or has failed, asking again starts no other.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(source->Get().ok());
  EXPECT_EQ(source->runs(), 2);
  for (int i = 0; i < 400 && !std::filesystem::exists(failed); ++i) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(std::filesystem::exists(failed));
  // It has failed (or is about to): still no new run within retry_after_failure of its start.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(source->Get().ok());
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(source->runs(), 2);
  // After it, the next request starts a renewal again.
  clock_.Advance(11s);
  for (int i = 0; i < 400 && source->runs() < 3; ++i) {
    ASSERT_TRUE(source->Get().ok());
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(source->runs(), 3);
}

}  // namespace
}  // namespace capwatch::kube
