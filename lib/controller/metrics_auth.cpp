#include "controller/metrics_auth.h"

#include <openssl/evp.h>

#include <spdlog/spdlog.h>

#include <cctype>

#include <nlohmann/json.hpp>

#include "base/utf8.h"

namespace capwatch::controller {
namespace {

const kube::ResourceRef kTokenReviews{"authentication.k8s.io", "v1", "tokenreviews", ""};
const kube::ResourceRef kAccessReviews{"authorization.k8s.io", "v1", "subjectaccessreviews", ""};

// The token from "Bearer <token>" (the scheme is case-insensitive, RFC 7235), or "".
std::string BearerToken(std::string_view header) {
  constexpr std::string_view kScheme = "bearer ";
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  if (header.size() <= kScheme.size()) return {};
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return {};
  }
  header.remove_prefix(kScheme.size());
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  return std::string(header);
}

std::string Sha256Hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

// True only for a boolean true at `key`: an answer of the wrong shape allows nothing.
bool IsTrue(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return false;
  const auto it = object.find(key);
  return it != object.end() && it->is_boolean() && it->get<bool>();
}

// The API server could not answer now, as opposed to answering "no" or refusing capwatch.
bool IsTransient(const kube::ApiStatus& status) {
  return status.IsTooManyRequests() || status.IsServerError() ||
         status.reason() == kube::StatusReason::kTransport ||
         status.reason() == kube::StatusReason::kTimeout ||
         status.reason() == kube::StatusReason::kServerTimeout;
}

AuthDecision Unreachable(std::string_view what, const kube::ApiStatus& status) {
  std::string message = "cannot check the scrape's credentials: " + std::string(what) + ": " +
                        status.ToString();
  if (status.http_status() == 403) {
    message += " (capwatch's ClusterRole needs create on " + std::string(what) + ")";
  }
  return {503, std::move(message), {}, false};
}

}  // namespace

MetricsAuthorizer::MetricsAuthorizer(kube::KubeClient& client, kube::Clock& clock,
                                     MetricsAuthOptions options)
    : client_(client),
      clock_(clock),
      options_(options),
      budget_(clock, options.reviews_per_second, options.review_burst) {}

std::uint64_t MetricsAuthorizer::reviews_sent() const {
  std::lock_guard lock(mu_);
  return reviews_;
}

std::size_t MetricsAuthorizer::cached_entries() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

AuthDecision MetricsAuthorizer::Authorize(std::string_view authorization, std::string_view path,
                                          const std::stop_token& stop) {
  const std::string token = BearerToken(authorization);
  if (token.empty()) {
    return {401,
            authorization.empty() ? "no bearer token: scrape with a ServiceAccount token"
                                  : "the Authorization header is not a bearer token",
            {},
            false};
  }
  const std::string key = Sha256Hex(token) + " " + std::string(path);
  const auto now = clock_.Now();
  // An allowance past its TTL but within the grace: served only if the API server cannot
  // answer. While it could not a moment ago, it is served without asking again.
  bool have_kept = false;
  {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      if (it->second.expires > now) {
        AuthDecision decision = it->second.decision;
        decision.cached = true;
        return decision;
      }
      if (now < KeptUntil(it->second)) {
        have_kept = true;
        if (now < it->second.ask_again) {
          AuthDecision decision = it->second.decision;
          decision.cached = decision.stale = true;
          return decision;
        }
      } else {
        cache_.erase(it);
      }
    }
  }
  {
    std::lock_guard lock(mu_);
    if (in_flight_ >= options_.max_concurrent_reviews || !budget_.TryTake()) {
      if (have_kept) {
        AuthDecision decision = cache_.at(key).decision;
        decision.cached = decision.stale = true;
        return decision;
      }
      return {429, "too many scrapes with new tokens; try again shortly", {}, false};
    }
    ++in_flight_;
  }
  bool transient = false;
  AuthDecision decision = Review(token, path, stop, transient);
  {
    std::lock_guard lock(mu_);
    --in_flight_;
  }
  if (decision.code == 503 && transient && have_kept) {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end() && now < KeptUntil(it->second)) {
      Entry& kept = it->second;
      kept.ask_again = clock_.Now() + options_.stale_recheck;
      const auto past = std::chrono::duration_cast<std::chrono::seconds>(now - kept.expires);
      if (!kept.stale_logged) {
        kept.stale_logged = true;
        spdlog::warn(
            "{}; serving the allowance of {} kept {} s past its TTL (for up to {} s) until the "
            "API server answers",
            decision.message, kept.decision.user, past.count(),
            options_.allowed_stale_grace.count());
      } else {
        spdlog::debug("{}; still serving the kept allowance of {}", decision.message,
                      kept.decision.user);
      }
      AuthDecision served = kept.decision;
      served.cached = served.stale = true;
      return served;
    }
  }
  // A failure to ask is not an answer: the next scrape asks again.
  if (decision.code != 503) Remember(key, decision);
  return decision;
}

kube::Clock::TimePoint MetricsAuthorizer::KeptUntil(const Entry& entry) const {
  if (entry.decision.code != 200) return entry.expires;
  return entry.expires + options_.allowed_stale_grace;
}

AuthDecision MetricsAuthorizer::Review(const std::string& token, std::string_view path,
                                       const std::stop_token& stop, bool& transient) {
  nlohmann::json review = {{"apiVersion", "authentication.k8s.io/v1"},
                           {"kind", "TokenReview"},
                           {"spec", {{"token", token}}}};
  {
    std::lock_guard lock(mu_);
    ++reviews_;
  }
  auto answer = client_.Create(kTokenReviews, review.dump(), {}, stop);
  if (!answer.ok()) {
    transient = IsTransient(answer.error());
    return Unreachable("tokenreviews.authentication.k8s.io", answer.error());
  }
  const auto reviewed = nlohmann::json::parse(answer.value(), nullptr, false);
  const auto* status = reviewed.is_object() && reviewed.contains("status") ? &reviewed["status"]
                                                                            : nullptr;
  if (status == nullptr || !status->is_object()) {
    return Unreachable("tokenreviews.authentication.k8s.io",
                       kube::ApiStatus(500, kube::StatusReason::kDecode,
                                       "the answer has no status"));
  }
  if (!IsTrue(*status, "authenticated")) {
    std::string why = "the bearer token is not valid";
    if (auto e = status->find("error"); e != status->end() && e->is_string() && !e->empty()) {
      why += ": " + Excerpt(e->get<std::string>(), 200);
    }
    return {401, std::move(why), {}, false};
  }
  const nlohmann::json user =
      status->contains("user") && (*status)["user"].is_object() ? (*status)["user"]
                                                                 : nlohmann::json::object();
  const std::string username =
      user.contains("username") && user["username"].is_string() ? user["username"].get<std::string>()
                                                                 : std::string();
  nlohmann::json spec = {{"user", username},
                         {"nonResourceAttributes", {{"path", std::string(path)}, {"verb", "get"}}}};
  if (user.contains("uid") && user["uid"].is_string()) spec["uid"] = user["uid"];
  if (user.contains("groups") && user["groups"].is_array()) spec["groups"] = user["groups"];
  if (user.contains("extra") && user["extra"].is_object()) spec["extra"] = user["extra"];
  nlohmann::json access = {{"apiVersion", "authorization.k8s.io/v1"},
                           {"kind", "SubjectAccessReview"},
                           {"spec", std::move(spec)}};
  {
    std::lock_guard lock(mu_);
    ++reviews_;
  }
  auto decided = client_.Create(kAccessReviews, access.dump(), {}, stop);
  if (!decided.ok()) {
    transient = IsTransient(decided.error());
    return Unreachable("subjectaccessreviews.authorization.k8s.io", decided.error());
  }
  const auto sar = nlohmann::json::parse(decided.value(), nullptr, false);
  const bool allowed = sar.is_object() && sar.contains("status") && IsTrue(sar["status"], "allowed");
  if (!allowed) {
    return {403,
            "user \"" + Excerpt(username, 200) + "\" may not get " + std::string(path) +
                ": bind it to the ClusterRole capwatch-metrics-reader (or any role that grants "
                "get on the non-resource URL " +
                std::string(path) + ")",
            username, false};
  }
  return {200, "ok", username, false};
}

void MetricsAuthorizer::Remember(const std::string& key, const AuthDecision& decision) {
  const auto now = clock_.Now();
  const auto ttl = decision.code == 200 ? options_.allowed_ttl : options_.denied_ttl;
  std::lock_guard lock(mu_);
  if (cache_.size() >= options_.max_cached) {
    for (auto it = cache_.begin(); it != cache_.end();) {
      it = KeptUntil(it->second) <= now ? cache_.erase(it) : std::next(it);
    }
    // Still full of live entries (someone is cycling tokens): forget the lot rather than grow.
    if (cache_.size() >= options_.max_cached) cache_.clear();
  }
  cache_[key] = {decision, now + ttl};
}

}  // namespace capwatch::controller
