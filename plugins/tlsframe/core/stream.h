// What one stream publishes and who gets it: its name, the caps in force,
// whether it has delta units, EOS, buffer sequence numbers, the sessions
// subscribed to it, keyframe requests (merged and rate-limited before they
// reach the upstream encoder), its counters and its sink's callbacks. Each
// message is serialized once per connection version (v1 and v2 differ in
// the header's version byte only; a buffer's data is shared by both).
// At SyncMethod::kLatestKeyframe it keeps a GOP cache (core/gop_cache.h) that
// joiners get first. Several streams share one Hub (core/hub.h), found there
// by name.
//
// Threads: publish_*() on the publishing thread only (never concurrently);
// subscribe(), unsubscribe() and request_keyframe() on session strands; the
// keyframe timer on its own strand; the rest on any thread.
#pragma once

// <cstddef> before <asio.hpp>: asio chooses aligned_alloc/free or operator
// new/delete from libstdc++'s macros, so every file must have them first,
// else two files inline different versions and one frees what the other
// allocated (ASan: alloc-dealloc-mismatch).
#include <cstddef>

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/gop_cache.h"
#include "core/guarded.h"
#include "core/message.h"
#include "core/server.h"
#include "core/wire_format.h"
#include "core/wire_v2.h"

namespace tlsframe {

class Session;
class StreamGroup;

// "video/x-h264 1280x720 30/1" from a caps string: the media type, then
// width x height and the framerate when the caps have them (STREAM_LIST's
// caps summary; for people, not for parsing).
std::string caps_summary(const std::string &caps);

// A stream's figures, read by Server::stats() from any thread.
struct StreamCounters {
  std::atomic<uint64_t> clients{0};  // subscribed and reported added now
  std::atomic<uint64_t> clients_total{0}, buffers_published{0}, bytes_sent{0}, frames_dropped{0};
};

class Stream : public std::enable_shared_from_this<Stream> {
 public:
  // callbacks.keyframe_wanted (may be empty) is called on a session strand or
  // the keyframe timer's strand, with no lock of the stream held.
  // From config: stream_name, keyframe_request_interval, sync_method, gop_cache_bytes_max.
  Stream(asio::io_context &io, const ServerConfig &config, ServerCallbacks callbacks);

  const std::string &name() const { return name_; }
  // This stream's rendition name ("" = the stream has one encoding).
  const std::string &rendition() const { return rendition_; }
  // The group of renditions it belongs to (set by the Hub before any
  // session can find it; nullptr once the hub dropped the group).
  std::shared_ptr<StreamGroup> group() const { return group_.lock(); }
  void set_group(const std::shared_ptr<StreamGroup> &group) { group_ = group; }
  // Wire bits per second published lately (a running average over about
  // 1 s windows; 0 before the first window ends). Any thread.
  uint64_t published_rate() const { return published_rate_.load(std::memory_order_relaxed); }
  // The rate its encoder was set to, in bits/s (0 = not declared): the sink
  // passes the nominal-bitrate tag on. Any thread.
  void declare_rate(uint64_t bps) { declared_rate_.store(bps, std::memory_order_relaxed); }
  uint64_t declared_rate() const { return declared_rate_.load(std::memory_order_relaxed); }
  // Where it stands in the ladder: the declared rate, else the published one.
  // An encoder's output can be far below its setting (a still picture, a
  // test pattern), so two renditions' published rates need not keep the
  // order of their settings; the declared ones do. Any thread.
  uint64_t ladder_rate() const {
    const uint64_t declared = declared_rate();
    return declared != 0 ? declared : published_rate();
  }
  // Width x height of the caps in force (0: none yet, or caps without a size). Any thread.
  uint64_t picture_area() const { return picture_area_.load(std::memory_order_relaxed); }
  std::chrono::nanoseconds keyframe_interval() const { return keyframe_interval_; }
  StreamCounters &counters() { return counters_; }

  // Publishing thread. Each message is serialized once per version and
  // shared by every subscriber's queue.
  void publish_caps(const std::string &caps);
  // With an owner, data is not copied (see Server::publish_buffer).
  void publish_buffer(const wire::BufferMeta &meta, const uint8_t *data, size_t size,
                      std::shared_ptr<const void> owner);
  void publish_eos();

  // What a session joining now must get first.
  struct Joined {
    bool ok = false;         // false: the stream stopped, nothing subscribed
    MessagePtr caps;         // the caps in force, in the joiner's version (nullptr: none yet)
    bool at_eos = false;     // EOS published and no buffer since
    bool has_delta = false;  // the stream has delta units: the joiner needs a keyframe
    // kLatestKeyframe: the cached buffers from the latest keyframe on, in the
    // joiner's version, to send first (empty: none cached, wait as at kNextKeyframe).
    std::vector<MessagePtr> gop;
  };
  // A session starts getting what is published from now on (in `version`);
  // what it must get first is returned under the same lock, so nothing
  // falls between.
  Joined subscribe(const std::shared_ptr<Session> &s, wire::Version version);
  void unsubscribe(uint64_t session_id);
  // The subscribers now (for their stats, or to close them).
  std::vector<std::shared_ptr<Session>> subscribers() const;
  void unsubscribe_all();

  // A subscriber wants a keyframe (it joined a delta-unit stream, skipped
  // one, or sent KEYFRAME_REQUEST). Calls keyframe_wanted now if the last
  // call is an interval old, else once at the interval's end if a subscriber
  // that asked is still subscribed then. Nothing on a stream without delta units.
  void request_keyframe(uint64_t session_id);

  // STREAM_LIST's view of it.
  wire::StreamSummary summary() const;

  // No subscriber and no keyframe request from now on; cancels the timer.
  void stop();
  // No callback from now on (waits for one running now to return).
  void detach_callbacks();

  // The sink's callbacks, called with no stream lock held (each a no-op once detached).
  void client_added(const ClientInfo &c);
  void client_removed(const ClientInfo &c, RemoveReason r, const std::string &error);
  void handshake_failed(const std::string &address, const Error &e);
  void rendition_changed(const ClientInfo &c, const RenditionChange &change);

  // Authorization (constant after construction; any thread):
  // authorized-clients holds for id (no rules: everyone).
  const std::vector<std::string> &authorized_clients() const { return authorized_clients_; }
  bool authorizes(const authz::Identity &id) const {
    return !deny_all_ && authz::authorized(rules_, id);
  }
  // Asks the sink's accept_client (ServerCallbacks::accept_client) about a
  // client, with no stream lock held. False: nobody to ask (accepted);
  // true: decide will be called once.
  bool ask_accept(const AcceptRequest &request, AcceptDecision decide);

 private:
  // Runs update() on the state and snapshots the subscribers under one lock,
  // then hands each the message of its version.
  template <typename Update>
  void post_to_all(const MessagePtr &v1, const MessagePtr &v2, Update &&update);
  void on_keyframe_timer();

  const std::string name_;
  const std::string rendition_;
  std::weak_ptr<StreamGroup> group_;  // set once, before the stream is found
  std::atomic<uint64_t> published_rate_{0};
  std::atomic<uint64_t> declared_rate_{0};
  std::atomic<uint64_t> picture_area_{0};
  // A delta unit was published (joiners ask for a keyframe). Set under the
  // state lock (ordered against subscribe()), read without it where a stale
  // false only skips a keyframe request on a stream that has none yet.
  std::atomic<bool> has_delta_{false};
  const std::chrono::nanoseconds keyframe_interval_;
  const SyncMethod sync_method_;
  const std::vector<std::string> authorized_clients_;  // as configured (renditions must agree)
  const std::vector<authz::Rule> rules_;  // authorized-clients, parsed (checked by Server::start)
  const bool deny_all_;  // rules that do not parse (refused at start): fail closed should any get here
  StreamCounters counters_;

  std::mutex callbacks_lock_;  // protects callbacks_ and detached_
  ServerCallbacks callbacks_;
  bool detached_ = false;

  struct Subscriber {
    std::shared_ptr<Session> session;
    wire::Version version;
  };
  struct State {
    std::string caps_text;   // the caps in force, as published ("" = none)
    MessagePtr caps;         // ... as a v1 message
    MessagePtr caps_v2;      // ... as a v2 message
    bool eos = false;        // EOS published and no buffer since
    std::map<uint64_t, Subscriber> subscribers;  // by session id
    std::optional<std::chrono::steady_clock::time_point> last_keyframe_request;
    std::vector<uint64_t>
        keyframe_waiters;  // subscribers whose request waits for the interval's end
    bool keyframe_timer_armed = false;
    bool stopped = false;
    GopCache gop;  // kLatestKeyframe only (else always empty)
  };
  Guarded<State> state_;
  // Publishing thread, under the state lock: the GOP cache takes a buffer.
  // Returns what to log once the lock is released ("" = nothing).
  std::string cache_buffer(State &st, const MessagePtr &v1, const MessagePtr &v2);

  asio::strand<asio::io_context::executor_type> keyframe_strand_;
  asio::steady_timer keyframe_timer_;  // only used on keyframe_strand_

  // Publishing thread only:
  void count_published(size_t wire_bytes, std::chrono::steady_clock::time_point now);
  uint64_t rate_window_bytes_ = 0;                          // published in the current window
  std::chrono::steady_clock::time_point rate_window_start_;  // {} = no window yet
  uint64_t sequence_ = 0;              // of the next buffer
  std::vector<Subscriber> snapshot_;  // post_to_all's, kept for its capacity
};

// The renditions of one stream name on a hub: each its own Stream (caps,
// keyframe state, GOP cache, subscribers, sink), found together by name.
// A stream without renditions is a group of one. Any thread.
class StreamGroup {
 public:
  explicit StreamGroup(std::string name) : name_(std::move(name)) {}
  const std::string &name() const { return name_; }

  // The stream a joiner is authorized against and reported to: the first
  // rendition that arrived (nullptr when empty).
  std::shared_ptr<Stream> entry() const;
  // Every rendition, highest ladder_rate() first (declared, else published),
  // the larger picture first among equal rates. Until every rendition has a
  // rate (declared, or about a second after its first buffer), largest
  // picture first, so a viewer joining as the server starts gets the best
  // one, as later ones do; renditions without caps yet keep their order of
  // arrival.
  std::vector<std::shared_ptr<Stream>> renditions() const;
  // The rendition named `rendition` (nullptr when there is none).
  std::shared_ptr<Stream> find(std::string_view rendition) const;
  bool has_renditions() const;  // more than one, or one with a name

  // Hub, under its registry lock: false when `rendition` is taken (or the
  // group has an unnamed stream, or s is unnamed and the group is not empty).
  bool add(const std::shared_ptr<Stream> &s);
  void remove(const std::shared_ptr<Stream> &s);
  bool empty() const;

  // STREAM_LIST's view: the entry's caps, viewers summed over renditions.
  wire::StreamSummary summary() const;

 private:
  const std::string name_;
  mutable std::mutex lock_;                       // protects streams_
  std::vector<std::shared_ptr<Stream>> streams_;  // in order of arrival
};

}  // namespace tlsframe
