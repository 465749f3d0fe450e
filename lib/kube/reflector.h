#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "base/result.h"
#include "kube/backoff.h"
#include "kube/clock.h"
#include "kube/kube_client.h"
#include "kube/watch_decoder.h"

namespace capwatch::kube {

struct ListPageMeta {
  std::string resource_version;
  std::string continue_token;
  // Items the codec could not read and left out (each logged): the rest of the page counts.
  std::uint64_t skipped_items = 0;
  // Items the codec kept: with skipped_items, what the page held (its size in bytes over this
  // sizes the next page).
  std::uint64_t items = 0;
};

// What a reflector fills: a cache that decodes the objects of one kind. Called from the
// reflector's thread only.
class ReflectorStore {
 public:
  virtual ~ReflectorStore() = default;
  // A list starts (again); pages follow, then CommitList, or BeginList once more if the list
  // had to restart.
  virtual void BeginList() = 0;
  // Decodes one page of a list response into the pending set and reads its metadata into
  // `meta` (skipped items are counted there as the page is read).
  virtual Status AddListPage(std::string_view body, ListPageMeta& meta) = 0;
  // The list is complete: the pending set replaces the cache in one step, and handlers hear of
  // the difference (adds, updates, and deletes of what vanished while we were not watching).
  virtual void CommitList() = 0;
  // An ADDED, MODIFIED or DELETED event; returns the object's resourceVersion.
  virtual capwatch::Result<std::string> ApplyEvent(WatchEventType type,
                                                   std::string_view object) = 0;
};

enum class ReflectorState { kListing, kWatching, kBackoff };
std::string_view ReflectorStateName(ReflectorState state);

struct ReflectorOptions {
  ResourceRef resource;
  bool metadata_only = false;  // PartialObjectMetadata lists and watches
  // Ask for lists and watches as protobuf (JSON is accepted too): for the kinds the API
  // server encodes in protobuf, it serves a list 2.3 times as fast and in 27 % fewer bytes.
  // The store's AddListPage and ApplyEvent then get protobuf (see ProtoListSplitter).
  bool protobuf = false;
  std::string label_selector;
  std::string field_selector;
  // A list page's `limit` counts items, but what a page costs is its bytes: the body, then
  // the decoder's working copy and index, several times over. So the first page asks for
  // `first_page_size` items, and each next one for as many items of the last page's average
  // size as fit in `page_bytes`, never more than `page_size`. Pods of 8 KB get 500 a page; of
  // 60 KiB (100 containers), 68; CapabilityReports of 900 KiB, 4.
  int page_size = 500;
  int first_page_size = 10;
  std::size_t page_bytes = 4u << 20;
  // Ask for the whole list in one response and cut it into pages of page_bytes as it streams
  // in (ListSplitter). The API server answers an unpaginated list from its watch cache: at
  // 20,000 Pods in 3.2-4.2 s, against 6.3-6.7 s for the same list in pages of 460, whose
  // continuations it reads from etcd. Off: paginated lists (page_size, first_page_size).
  bool stream_lists = true;
  // Each watch asks the server to end it after a random time in [min, 2*min), so that many
  // controllers do not reconnect together.
  std::chrono::seconds min_watch_timeout{300};
  BackoffOptions backoff;  // 0.8 s -> 30 s with jitter, reset after 2 healthy minutes
  // How often an expired continue token may restart one list before the list counts as failed.
  int max_list_restarts = 3;
  // A watch the server ends sooner than this without an event (a proxy or an API server that
  // answers 200 and closes at once) backs off instead of reconnecting in a hot loop.
  std::chrono::milliseconds min_healthy_watch{1000};
};

struct ReflectorStats {
  std::uint64_t lists = 0;  // complete lists committed
  std::uint64_t list_pages = 0;
  std::uint64_t list_restarts = 0;  // an expired continue token restarted a list
  std::uint64_t relists_gone = 0;   // 410 Gone on a watch sent us back to listing
  std::uint64_t watches = 0;        // watch requests that were answered 200
  std::uint64_t events = 0;         // ADDED/MODIFIED/DELETED applied
  std::uint64_t bookmarks = 0;
  std::uint64_t error_events = 0;  // ERROR events
  // Watch events we could not decode or apply, and list pages we could not decode (logged).
  std::uint64_t decode_errors = 0;
  std::uint64_t relists_decode = 0;  // such an event sent us back to listing
  std::uint64_t skipped_items = 0;   // list items the codec could not read, left out (logged)
  std::uint64_t short_watches = 0;   // watches that ended at once without an event: backed off
  std::uint64_t backoffs = 0;
};

// List-then-watch for one resource, as an explicit state machine (kube-rs watcher,
// client-go reflector):
//
//   Listing  --list ok-->  Watching  --clean end (timeoutSeconds)-->  Watching
//   Listing  --error-->    Backoff   --delay-->  Listing (or Watching when the rv is still good)
//   Watching --410 Gone / ERROR 410-->  Listing  (relist, consistent replace of the cache)
//   Watching --an event we cannot decode or apply-->  Listing (the first time in a row), else
//              Backoff --delay--> Listing: the lost event may hide a change, a relist heals it
//   Watching --other error, dropped connection, timeout-->  Backoff
//   Watching --clean end within min_healthy_watch and no event-->  Backoff
//
// Step() does the work of the current state and returns the next one: a whole paginated
// list, a whole watch session, or one backoff sleep.
class Reflector {
 public:
  Reflector(KubeClient& client, ReflectorStore& store, Clock& clock, ReflectorOptions options,
            std::uint64_t seed = std::random_device{}());

  ReflectorState Step(const std::stop_token& stop);
  // Steps until `stop` is requested.
  void Run(const std::stop_token& stop);

  ReflectorState state() const { return state_.load(); }
  std::string resource_version() const;
  ReflectorStats stats() const;
  // The delay the last Backoff step slept.
  Clock::Duration last_backoff() const { return last_backoff_; }

 private:
  int NextPageLimit(std::size_t page_bytes, std::uint64_t page_items, int last_limit) const;
  // The selectors and projection every list and watch of this reflector asks for.
  ListOptions SelectedOptions() const;
  ReflectorState DoList(const std::stop_token& stop);
  ReflectorState DoStreamedList(const std::stop_token& stop);
  // The list is complete: its resourceVersion, the commit, and the watch next.
  ReflectorState FinishList(std::string resource_version, const std::string& what,
                            std::uint64_t items, std::uint64_t pages, std::uint64_t bytes,
                            Clock::TimePoint started, bool protobuf);
  ReflectorState DoWatch(const std::stop_token& stop);
  ReflectorState DoBackoff(const std::stop_token& stop);
  ReflectorState RelistAfterBadEvent(const std::string& what, std::string_view failed,
                                     const Error& error);
  void NoteRetryAfter(const ApiStatus& status);
  void SetResourceVersion(std::string rv);

  KubeClient& client_;
  ReflectorStore& store_;
  Clock& clock_;
  ReflectorOptions options_;
  Backoff backoff_;
  std::atomic<ReflectorState> state_{ReflectorState::kListing};
  bool need_relist_ = true;
  // Relists for a bad event since the last healthy watch: after the first, they back off.
  int bad_event_relists_in_a_row_ = 0;
  // A 429's Retry-After: the next backoff waits at least this long.
  std::optional<Clock::Duration> retry_after_;
  Clock::Duration last_backoff_{};
  mutable std::mutex mu_;  // guards rv_ and stats_ for readers on other threads
  std::string rv_;
  ReflectorStats stats_;
};

}  // namespace capwatch::kube
