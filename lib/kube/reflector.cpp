#include "kube/reflector.h"

#include "base/protobuf_wire.h"

#include <algorithm>
#include <optional>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "kube/list_splitter.h"

namespace capwatch::kube {

std::string_view ReflectorStateName(ReflectorState state) {
  switch (state) {
    case ReflectorState::kListing:
      return "Listing";
    case ReflectorState::kWatching:
      return "Watching";
    case ReflectorState::kBackoff:
      return "Backoff";
  }
  return "Unknown";
}

Reflector::Reflector(KubeClient& client, ReflectorStore& store, Clock& clock,
                     ReflectorOptions options, std::uint64_t seed)
    : client_(client),
      store_(store),
      clock_(clock),
      options_(std::move(options)),
      backoff_(clock, options_.backoff, seed) {}

std::string Reflector::resource_version() const {
  std::lock_guard lock(mu_);
  return rv_;
}

ReflectorStats Reflector::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Reflector::SetResourceVersion(std::string rv) {
  std::lock_guard lock(mu_);
  rv_ = std::move(rv);
}

ReflectorState Reflector::Step(const std::stop_token& stop) {
  ReflectorState next = state_.load();
  switch (next) {
    case ReflectorState::kListing:
      next = DoList(stop);
      break;
    case ReflectorState::kWatching:
      next = DoWatch(stop);
      break;
    case ReflectorState::kBackoff:
      next = DoBackoff(stop);
      break;
  }
  state_.store(next);
  return next;
}

void Reflector::Run(const std::stop_token& stop) {
  while (!stop.stop_requested()) Step(stop);
}

ListOptions Reflector::SelectedOptions() const {
  ListOptions opts;
  opts.label_selector = options_.label_selector;
  opts.field_selector = options_.field_selector;
  opts.metadata_only = options_.metadata_only;
  opts.protobuf = options_.protobuf;
  return opts;
}

ReflectorState Reflector::FinishList(std::string resource_version, const std::string& what,
                                     std::uint64_t items, std::uint64_t pages, std::uint64_t bytes,
                                     Clock::TimePoint started, bool protobuf) {
  spdlog::debug(
      "{}: {} items in {} pages ({} bytes of {}) in {} ms", what, items, pages, bytes,
      protobuf ? "protobuf" : "JSON",
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Now() - started).count());
  {
    // Before the commit, which marks the store synced: whoever waits for that sees the
    // list counted.
    std::lock_guard lock(mu_);
    rv_ = std::move(resource_version);
    ++stats_.lists;
  }
  store_.CommitList();
  need_relist_ = false;
  backoff_.MarkHealthy();
  return ReflectorState::kWatching;
}

ReflectorState Reflector::DoStreamedList(const std::stop_token& stop) {
  const std::string what = "list " + options_.resource.Describe();
  ListOptions opts = SelectedOptions();
  const Clock::TimePoint started = clock_.Now();
  store_.BeginList();
  AnyListSplitter splitter(options_.page_bytes);
  std::string rv;
  std::uint64_t items = 0, pages = 0, bytes = 0;
  std::optional<Error> page_error;
  bool paginated = false;
  auto add_page = [&](std::string_view page) {
    ListPageMeta meta;
    if (Status added = store_.AddListPage(page, meta); !added.ok()) {
      page_error = added.error();
      return false;
    }
    if (!meta.continue_token.empty()) {
      paginated = true;  // not asked for: something in between pages on its own
      return false;
    }
    if (!meta.resource_version.empty()) rv = meta.resource_version;
    items += meta.items;
    ++pages;
    std::lock_guard lock(mu_);
    ++stats_.list_pages;
    stats_.skipped_items += meta.skipped_items;
    return true;
  };
  ApiStatus sent = client_.ListInto(
      options_.resource, opts,
      [&](std::string_view b) {
        bytes += b.size();
        return splitter.Feed(b, add_page);
      },
      stop);
  const bool whole = sent.ok() && splitter.Finish(add_page);
  if (whole && !rv.empty()) {
    return FinishList(std::move(rv), what, items, pages, bytes, started, splitter.is_proto());
  }
  need_relist_ = true;
  if (paginated) {
    spdlog::warn("{}: the server paged a list capwatch asked for whole; paging from now on", what);
    options_.stream_lists = false;
    return ReflectorState::kListing;
  }
  if (page_error || !splitter.error().empty() || (sent.ok() && rv.empty())) {
    const std::string why = page_error                  ? page_error->ToString()
                            : !splitter.error().empty() ? splitter.error()
                                                        : "the list has no resourceVersion";
    spdlog::error("{}: cannot decode the response: {}", what, why);
    std::lock_guard lock(mu_);
    ++stats_.decode_errors;
    return ReflectorState::kBackoff;
  }
  NoteRetryAfter(sent);
  if (sent.reason() != StatusReason::kCancelled) spdlog::warn("{}", sent.ToString());
  return ReflectorState::kBackoff;
}

ReflectorState Reflector::DoList(const std::stop_token& stop) {
  if (options_.stream_lists) return DoStreamedList(stop);
  const std::string what = "list " + options_.resource.Describe();
  ListOptions opts = SelectedOptions();
  opts.limit = std::max(1, std::min(options_.page_size, options_.first_page_size));
  int restarts = 0;
  std::uint64_t items = 0, pages = 0, bytes = 0;
  const Clock::TimePoint started = clock_.Now();
  store_.BeginList();
  for (;;) {
    auto page = client_.List(options_.resource, opts, stop);
    if (!page.ok()) {
      if (page.error().IsGone() && !opts.continue_token.empty() &&
          restarts < options_.max_list_restarts) {
        // The continue token outlived etcd's compaction window: start the list over.
        spdlog::warn("{}: continue token expired, restarting the list", what);
        ++restarts;
        {
          std::lock_guard lock(mu_);
          ++stats_.list_restarts;
        }
        opts.continue_token.clear();
        items = pages = bytes = 0;
        store_.BeginList();
        continue;
      }
      NoteRetryAfter(page.error());
      if (page.error().reason() != StatusReason::kCancelled) {
        spdlog::warn("{}", page.error().ToString());
      }
      need_relist_ = true;
      return ReflectorState::kBackoff;
    }
    ListPageMeta meta;
    if (Status added = store_.AddListPage(page.value(), meta); !added.ok()) {
      spdlog::error("{}: cannot decode the response: {}", what, added.error().ToString());
      std::lock_guard lock(mu_);
      ++stats_.decode_errors;
      need_relist_ = true;
      return ReflectorState::kBackoff;
    }
    {
      std::lock_guard lock(mu_);
      ++stats_.list_pages;
      stats_.skipped_items += meta.skipped_items;
    }
    items += meta.items;
    ++pages;
    bytes += page.value().size();
    if (meta.continue_token.empty()) {
      return FinishList(std::move(meta.resource_version), what, items, pages, bytes, started,
                        proto::HasKubernetesMagic(page.value()));
    }
    opts.continue_token = std::move(meta.continue_token);
    opts.limit = NextPageLimit(page.value().size(), meta.items + meta.skipped_items, opts.limit);
  }
}

int Reflector::NextPageLimit(std::size_t page_bytes, std::uint64_t page_items,
                             int last_limit) const {
  if (page_items == 0) return last_limit;  // nothing to measure by
  const std::size_t per_item = std::max<std::size_t>(1, page_bytes / page_items);
  const std::size_t fit = options_.page_bytes / per_item;
  return static_cast<int>(std::clamp<std::size_t>(fit, 1, std::max(1, options_.page_size)));
}

ReflectorState Reflector::DoWatch(const std::stop_token& stop) {
  const std::string what = "watch " + options_.resource.Describe();
  ListOptions opts = SelectedOptions();
  opts.allow_watch_bookmarks = true;
  opts.resource_version = resource_version();
  const auto min = options_.min_watch_timeout;
  opts.timeout_seconds = static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(backoff_.Jitter(min, 1.0)).count());
  if (opts.timeout_seconds <= 0) opts.timeout_seconds = 1;

  const Clock::TimePoint started = clock_.Now();
  auto opened = client_.Watch(options_.resource, opts, stop);
  if (!opened.ok()) {
    const ApiStatus& s = opened.error();
    if (s.reason() == StatusReason::kCancelled) return ReflectorState::kWatching;
    if (s.IsGone()) {
      spdlog::info("{}: resourceVersion {} is too old, relisting", what, opts.resource_version);
      std::lock_guard lock(mu_);
      ++stats_.relists_gone;
      return ReflectorState::kListing;
    }
    spdlog::warn("{} failed: {}", what, s.ToString());
    NoteRetryAfter(s);
    return ReflectorState::kBackoff;
  }
  {
    std::lock_guard lock(mu_);
    ++stats_.watches;
  }
  backoff_.MarkHealthy();
  WatchStream& stream = *opened.value();
  WatchEventDecoder decoder;
  std::string line;
  bool delivered = false;  // an ADDED, MODIFIED, DELETED or BOOKMARK event
  while (stream.NextLine(line)) {
    auto decoded = decoder.Decode(line);
    if (!decoded.ok()) return RelistAfterBadEvent(what, "decode an event", decoded.error());
    const WatchEvent& event = decoded.value();
    switch (event.type) {
      case WatchEventType::kAdded:
      case WatchEventType::kModified:
      case WatchEventType::kDeleted: {
        auto applied = store_.ApplyEvent(event.type, event.object);
        if (!applied.ok()) {
          return RelistAfterBadEvent(
              what, "apply a " + std::string(WatchEventTypeName(event.type)) + " event",
              applied.error());
        }
        delivered = true;
        std::string rv = std::move(applied).value();
        std::lock_guard lock(mu_);
        if (!rv.empty()) rv_ = std::move(rv);
        ++stats_.events;
        break;
      }
      case WatchEventType::kBookmark: {
        delivered = true;
        std::string rv = ResourceVersionOf(event.object);
        std::lock_guard lock(mu_);
        if (!rv.empty()) rv_ = std::move(rv);
        ++stats_.bookmarks;
        break;
      }
      case WatchEventType::kError: {
        const ApiStatus s = ApiStatus::FromResponse(0, event.object);
        const int code = ApiStatus::CodeOf(event.object);
        {
          std::lock_guard lock(mu_);
          ++stats_.error_events;
        }
        if (code == 410 || s.IsGone()) {
          spdlog::info("{}: {} (resourceVersion {}), relisting", what, s.message(),
                       resource_version());
          std::lock_guard lock(mu_);
          ++stats_.relists_gone;
          return ReflectorState::kListing;
        }
        spdlog::warn("{}: ERROR event: {}", what, s.ToString());
        return ReflectorState::kBackoff;
      }
    }
  }
  const ApiStatus& end = stream.status();
  if (end.ok()) {
    const auto lasted = clock_.Now() - started;
    if (!delivered && lasted < options_.min_healthy_watch) {
      // Answered 200 and closed at once: reconnecting now would be a hot loop.
      spdlog::warn("{}: the server ended the watch after {} ms without an event; backing off", what,
                   std::chrono::duration_cast<std::chrono::milliseconds>(lasted).count());
      std::lock_guard lock(mu_);
      ++stats_.short_watches;
      return ReflectorState::kBackoff;
    }
    bad_event_relists_in_a_row_ = 0;
    return ReflectorState::kWatching;  // the server's timeoutSeconds: reconnect
  }
  if (end.reason() == StatusReason::kCancelled) return ReflectorState::kWatching;
  spdlog::warn("{}: {}", what, end.ToString());
  return ReflectorState::kBackoff;
}

// An event we cannot read or apply may hide a change (a lost DELETED leaves a ghost in the
// cache), and later events would move the resourceVersion past it: only a relist, replacing
// the cache, heals that. At once the first time; again before a healthy watch, after a backoff,
// so one object that stays bad cannot drive a hot relist loop.
ReflectorState Reflector::RelistAfterBadEvent(const std::string& what, std::string_view failed,
                                              const Error& error) {
  const bool at_once = bad_event_relists_in_a_row_++ == 0;
  spdlog::warn("{}: cannot {}, relisting{}: {}", what, failed, at_once ? "" : " after a backoff",
               error.ToString());
  {
    std::lock_guard lock(mu_);
    ++stats_.decode_errors;
    ++stats_.relists_decode;
  }
  need_relist_ = true;
  return at_once ? ReflectorState::kListing : ReflectorState::kBackoff;
}

void Reflector::NoteRetryAfter(const ApiStatus& status) {
  if (status.retry_after()) retry_after_ = status.retry_after().value();
}

ReflectorState Reflector::DoBackoff(const std::stop_token& stop) {
  last_backoff_ = backoff_.Next();
  if (retry_after_) {
    last_backoff_ = std::max(last_backoff_, *retry_after_);
    retry_after_.reset();
  }
  {
    std::lock_guard lock(mu_);
    ++stats_.backoffs;
  }
  clock_.SleepFor(last_backoff_, stop);
  return need_relist_ ? ReflectorState::kListing : ReflectorState::kWatching;
}

}  // namespace capwatch::kube
