#include "core/stream.h"

#include <algorithm>
#include <cinttypes>
#include <cstdlib>
#include <cstring>

#include "core/log.h"
#include "core/session.h"

namespace tlsframe {
namespace {

constexpr auto kComp = log::Component::kServer;

uint64_t realtime_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// The value of `field=` in a caps string's first structure, without its
// "(type)" prefix; "" when absent.
std::string caps_field(const std::string &caps, const std::string &field) {
  const std::string end_of_structure = ";";
  const size_t limit = std::min(caps.find(end_of_structure), caps.size());
  size_t pos = 0;
  while ((pos = caps.find(field + "=", pos)) != std::string::npos && pos < limit) {
    const bool whole = pos == 0 || caps[pos - 1] == ' ' || caps[pos - 1] == ',';
    pos += field.size() + 1;
    if (!whole) continue;
    if (pos < caps.size() && caps[pos] == '(') {
      const size_t close = caps.find(')', pos);
      if (close == std::string::npos) return "";
      pos = close + 1;
    }
    size_t end = pos;
    while (end < limit && caps[end] != ',' && caps[end] != ';' && caps[end] != ' ') end++;
    return caps.substr(pos, end - pos);
  }
  return "";
}

std::vector<authz::Rule> parsed_rules(const std::vector<std::string> &texts) {
  auto rules = authz::parse_rules(texts);
  return rules ? rules.value() : std::vector<authz::Rule>{};
}

}  // namespace

std::string caps_summary(const std::string &caps) {
  size_t end = caps.find_first_of(",; ");
  std::string out = caps.substr(0, end == std::string::npos ? caps.size() : end);
  const std::string width = caps_field(caps, "width");
  const std::string height = caps_field(caps, "height");
  const std::string rate = caps_field(caps, "framerate");
  if (!width.empty() && !height.empty()) out += " " + width + "x" + height;
  if (!rate.empty()) out += " " + rate;
  return out;
}

Stream::Stream(asio::io_context &io, const ServerConfig &config, ServerCallbacks callbacks)
    : name_(config.stream_name),
      rendition_(config.rendition),
      keyframe_interval_(config.keyframe_request_interval),
      sync_method_(config.sync_method),
      authorized_clients_(config.authorized_clients),
      rules_(parsed_rules(config.authorized_clients)),
      deny_all_(!authz::parse_rules(config.authorized_clients).ok()),
      callbacks_(std::move(callbacks)),
      keyframe_strand_(asio::make_strand(io)),
      keyframe_timer_(keyframe_strand_) {
  state_.lock()->gop = GopCache(config.gop_cache_bytes_max);
}

void Stream::publish_caps(const std::string &caps) {
  auto v1 = std::make_shared<Message>();
  v1->type = wire::MessageType::kCaps;
  v1->bytes = wire::encode_caps(caps);
  auto v2 = std::make_shared<Message>();
  v2->type = wire::MessageType::kCaps;
  v2->bytes = wire::encode_caps(caps, wire::Version::kV2);
  TF_DEBUG(kComp, "stream \"%s\": caps: %s", name_.c_str(), caps.c_str());
  uint64_t width = 0, height = 0;
  const std::string w = caps_field(caps, "width"), h = caps_field(caps, "height");
  if (!w.empty() && !h.empty()) {
    width = std::strtoull(w.c_str(), nullptr, 10);
    height = std::strtoull(h.c_str(), nullptr, 10);
  }
  picture_area_.store(width * height, std::memory_order_relaxed);
  post_to_all(v1, v2, [&](State &st) {
    st.caps_text = caps;
    st.caps = v1;
    st.caps_v2 = v2;
    st.eos = false;
    st.gop.reset();  // its buffers need the old caps
  });
}

void Stream::publish_buffer(const wire::BufferMeta &meta_in, const uint8_t *data, size_t size,
                            std::shared_ptr<const void> owner) {
  counters_.buffers_published++;
  const bool delta = (meta_in.flags & wire::kFlagDeltaUnit) != 0;
  wire::BufferMeta meta = meta_in;
  meta.sequence = sequence_++;
  meta.send_time_ns = realtime_ns();
  const auto published = std::chrono::steady_clock::now();
  constexpr size_t kPrefix = wire::kHeaderSize + wire::kBufferMetaSize;
  if (!owner && size) {
    // Copied once, then shared by both versions' messages as their payload.
    auto copy = std::make_shared<std::vector<uint8_t>>(data, data + size);
    data = copy->data();
    owner = std::move(copy);
  }
  auto make = [&](wire::Version version) {
    auto msg = std::make_shared<Message>();
    msg->type = wire::MessageType::kBuffer;
    msg->delta = delta;
    msg->published = published;
    msg->bytes.resize(kPrefix);
    if (size) {
      msg->payload = data;
      msg->payload_size = size;
      msg->payload_owner = owner;
    }
    wire::write_buffer_prefix(msg->bytes.data(), meta, static_cast<uint32_t>(size), version);
    return msg;
  };
  auto v1 = make(wire::Version::kV1);
  auto v2 = make(wire::Version::kV2);
  count_published(kPrefix + size, std::chrono::steady_clock::now());
  TF_LOGV(kComp, "stream \"%s\": publish buffer #%" PRIu64 " (%zu bytes%s)", name_.c_str(),
          meta.sequence, size, delta ? ", delta" : "");
  std::string cache_note;
  post_to_all(v1, v2, [&](State &st) {
    v1->caps = st.caps;  // before any session can see the message
    v2->caps = st.caps_v2;
    if (delta) has_delta_.store(true, std::memory_order_relaxed);
    st.eos = false;
    cache_note = cache_buffer(st, v1, v2);
  });
  if (!cache_note.empty()) {
    TF_DEBUG(kComp, "stream \"%s\": %s", name_.c_str(), cache_note.c_str());
  }
}

std::string Stream::cache_buffer(State &st, const MessagePtr &v1, const MessagePtr &v2) {
  if (sync_method_ != SyncMethod::kLatestKeyframe) return "";
  const bool had = !st.gop.empty();
  const GopCache::Added a = st.gop.add(v1, v2);
  if (a != GopCache::Added::kOverBound) return "";
  // Said once per GOP: the following delta units are kIgnored.
  return std::string(had ? "GOP cache" : "keyframe") + " over gop-cache-bytes-max (" +
         std::to_string(st.gop.max_bytes()) +
         " bytes): no GOP cached until the next keyframe; joiners wait for it meanwhile";
}

void Stream::count_published(size_t wire_bytes, std::chrono::steady_clock::time_point now) {
  // A window of about 1 s, then a running average of the windows (weight
  // 1/4 for the newest): follows an encoder's rate within a few seconds
  // without jumping at each keyframe.
  constexpr auto kWindow = std::chrono::seconds(1);
  if (rate_window_start_ == std::chrono::steady_clock::time_point{}) rate_window_start_ = now;
  rate_window_bytes_ += wire_bytes;
  const auto span = now - rate_window_start_;
  if (span < kWindow) return;
  const double seconds = std::chrono::duration<double>(span).count();
  const auto rate = static_cast<uint64_t>(static_cast<double>(rate_window_bytes_) * 8 / seconds);
  const uint64_t old = published_rate_.load(std::memory_order_relaxed);
  published_rate_.store(old == 0 ? rate : (3 * old + rate) / 4, std::memory_order_relaxed);
  rate_window_bytes_ = 0;
  rate_window_start_ = now;
}

void Stream::publish_eos() {
  auto v1 = std::make_shared<Message>();
  v1->type = wire::MessageType::kEos;
  v1->bytes = wire::encode_eos();
  auto v2 = std::make_shared<Message>();
  v2->type = wire::MessageType::kEos;
  v2->bytes = wire::encode_eos(wire::Version::kV2);
  post_to_all(v1, v2, [](State &st) {
    st.eos = true;
    st.gop.reset();
  });
}

template <typename Update>
void Stream::post_to_all(const MessagePtr &v1, const MessagePtr &v2, Update &&update) {
  snapshot_.clear();
  {
    auto st = state_.lock();
    update(*st);
    for (auto &kv : st->subscribers) snapshot_.push_back(kv.second);
  }
  for (auto &sub : snapshot_) {
    const std::shared_ptr<Session> &s = sub.session;
    if (s->enqueue(sub.version == wire::Version::kV2 ? v2 : v1, this)) {
      asio::post(s->executor(), [s] { s->drain(); });
    }
  }
  snapshot_.clear();
}

Stream::Joined Stream::subscribe(const std::shared_ptr<Session> &s, wire::Version version) {
  auto st = state_.lock();
  Joined j;
  if (st->stopped) return j;
  st->subscribers.emplace(s->info().id, Subscriber{s, version});
  j.ok = true;
  j.caps = version == wire::Version::kV2 ? st->caps_v2 : st->caps;
  j.at_eos = st->eos;
  j.has_delta = has_delta_.load(std::memory_order_relaxed);  // set under this lock
  // Copies of the shared pointers, under the lock that orders this join
  // against publish: the cache ends just before the first buffer the
  // subscriber gets live.
  if (!j.at_eos) j.gop = st->gop.messages(version);
  return j;
}

void Stream::unsubscribe(uint64_t session_id) {
  state_.lock()->subscribers.erase(session_id);
}

std::vector<std::shared_ptr<Session>> Stream::subscribers() const {
  std::vector<std::shared_ptr<Session>> all;
  auto st = state_.lock();
  for (auto &kv : st->subscribers) all.push_back(kv.second.session);
  return all;
}

void Stream::unsubscribe_all() {
  std::map<uint64_t, Subscriber> gone;
  gone.swap(state_.lock()->subscribers);  // released outside the lock
}

void Stream::request_keyframe(uint64_t session_id) {
  // A stream without delta units (JPEG) has no keyframe to ask for: decided
  // without the stream's lock, which every client that skipped would
  // otherwise take against the publishing thread.
  if (!has_delta_.load(std::memory_order_relaxed)) return;
  const auto now = std::chrono::steady_clock::now();
  const auto interval = keyframe_interval_;
  bool now_due = false;
  std::optional<std::chrono::steady_clock::time_point> arm_at;
  {
    auto st = state_.lock();
    if (st->stopped) return;
    if (!st->keyframe_timer_armed && (!st->last_keyframe_request || interval.count() <= 0 ||
                                      now - *st->last_keyframe_request >= interval)) {
      st->last_keyframe_request = now;
      now_due = true;
    } else {
      // Within the interval: merged into one request at its end, sent only
      // if a subscriber that asked is still subscribed then.
      st->keyframe_waiters.push_back(session_id);
      if (!st->keyframe_timer_armed) {
        st->keyframe_timer_armed = true;
        arm_at = *st->last_keyframe_request + interval;
      }
    }
  }
  if (now_due) {
    TF_DEBUG(kComp, "stream \"%s\", client %" PRIu64 ": asking upstream for a keyframe",
             name_.c_str(), session_id);
    std::lock_guard<std::mutex> lock(callbacks_lock_);
    if (!detached_ && callbacks_.keyframe_wanted) callbacks_.keyframe_wanted();
  } else if (arm_at) {
    // Handlers hold the stream: it may stop while the hub's threads run on.
    asio::post(keyframe_strand_, [self = shared_from_this(), at = *arm_at] {
      self->keyframe_timer_.expires_at(at);
      self->keyframe_timer_.async_wait([self](std::error_code ec) {
        if (!ec) self->on_keyframe_timer();
      });
    });
  }
}

void Stream::on_keyframe_timer() {
  bool wanted = false;
  size_t asked = 0;
  {
    auto st = state_.lock();
    st->keyframe_timer_armed = false;
    asked = st->keyframe_waiters.size();
    for (uint64_t id : st->keyframe_waiters) {
      wanted = wanted || st->subscribers.count(id) > 0;
    }
    st->keyframe_waiters.clear();
    if (st->stopped) wanted = false;
    if (wanted) st->last_keyframe_request = std::chrono::steady_clock::now();
  }
  TF_DEBUG(kComp, "stream \"%s\": %zu deferred keyframe requests: %s", name_.c_str(), asked,
           wanted ? "asking upstream" : "none of those clients is still connected");
  if (!wanted) return;
  std::lock_guard<std::mutex> lock(callbacks_lock_);
  if (!detached_ && callbacks_.keyframe_wanted) callbacks_.keyframe_wanted();
}

wire::StreamSummary Stream::summary() const {
  wire::StreamSummary s;
  s.name = name_;
  s.caps = caps_summary(state_.lock()->caps_text);
  s.viewers = static_cast<uint32_t>(std::min<uint64_t>(counters_.clients.load(), UINT32_MAX));
  return s;
}

void Stream::stop() {
  state_.lock()->stopped = true;
  asio::post(keyframe_strand_, [self = shared_from_this()] { self->keyframe_timer_.cancel(); });
}

void Stream::detach_callbacks() {
  std::lock_guard<std::mutex> lock(callbacks_lock_);
  detached_ = true;
}

void Stream::client_added(const ClientInfo &c) {
  std::lock_guard<std::mutex> lock(callbacks_lock_);
  if (!detached_ && callbacks_.client_added) callbacks_.client_added(c);
}

void Stream::client_removed(const ClientInfo &c, RemoveReason r, const std::string &error) {
  std::lock_guard<std::mutex> lock(callbacks_lock_);
  if (!detached_ && callbacks_.client_removed) callbacks_.client_removed(c, r, error);
}

bool Stream::ask_accept(const AcceptRequest &request, AcceptDecision decide) {
  std::lock_guard<std::mutex> lock(callbacks_lock_);
  if (detached_ || !callbacks_.accept_client) return false;
  return callbacks_.accept_client(request, std::move(decide));
}

void Stream::rendition_changed(const ClientInfo &c, const RenditionChange &change) {
  std::lock_guard<std::mutex> lock(callbacks_lock_);
  if (!detached_ && callbacks_.rendition_changed) callbacks_.rendition_changed(c, change);
}

void Stream::handshake_failed(const std::string &address, const Error &e) {
  std::lock_guard<std::mutex> lock(callbacks_lock_);
  if (!detached_ && callbacks_.handshake_failed) callbacks_.handshake_failed(address, e);
}

}  // namespace tlsframe

namespace tlsframe {

std::shared_ptr<Stream> StreamGroup::entry() const {
  std::lock_guard<std::mutex> lock(lock_);
  return streams_.empty() ? nullptr : streams_.front();
}

std::vector<std::shared_ptr<Stream>> StreamGroup::renditions() const {
  std::vector<std::shared_ptr<Stream>> out;
  {
    std::lock_guard<std::mutex> lock(lock_);
    out = streams_;
  }
  // Each key read once (a rate may change while sorting): the rate, then
  // the picture (equal rates: encoders left at one default setting).
  struct Keyed {
    std::pair<uint64_t, uint64_t> key;
    std::shared_ptr<Stream> stream;
  };
  std::vector<Keyed> keyed;
  bool rates_known = true;
  for (auto &s : out) {
    const uint64_t rate = s->ladder_rate();
    rates_known = rates_known && rate != 0;
    keyed.push_back({{rate, s->picture_area()}, std::move(s)});
  }
  if (!rates_known) {
    for (auto &k : keyed) k.key.first = 0;
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const Keyed &a, const Keyed &b) { return a.key > b.key; });
  out.clear();
  for (auto &k : keyed) out.push_back(std::move(k.stream));
  return out;
}

std::shared_ptr<Stream> StreamGroup::find(std::string_view rendition) const {
  std::lock_guard<std::mutex> lock(lock_);
  for (const auto &s : streams_) {
    if (s->rendition() == rendition) return s;
  }
  return nullptr;
}

bool StreamGroup::has_renditions() const {
  std::lock_guard<std::mutex> lock(lock_);
  return streams_.size() > 1 || (streams_.size() == 1 && !streams_.front()->rendition().empty());
}

bool StreamGroup::add(const std::shared_ptr<Stream> &s) {
  std::lock_guard<std::mutex> lock(lock_);
  for (const auto &other : streams_) {
    if (other->rendition().empty() || s->rendition().empty() ||
        other->rendition() == s->rendition()) {
      return false;
    }
  }
  streams_.push_back(s);
  return true;
}

void StreamGroup::remove(const std::shared_ptr<Stream> &s) {
  std::lock_guard<std::mutex> lock(lock_);
  streams_.erase(std::remove(streams_.begin(), streams_.end(), s), streams_.end());
}

bool StreamGroup::empty() const {
  std::lock_guard<std::mutex> lock(lock_);
  return streams_.empty();
}

wire::StreamSummary StreamGroup::summary() const {
  const auto all = renditions();
  wire::StreamSummary out;
  out.name = name_;
  if (!all.empty()) out = all.front()->summary();
  auto clamp = [](uint64_t n) { return static_cast<uint32_t>(std::min<uint64_t>(n, UINT32_MAX)); };
  // Each rendition's count read once, so the viewers are their sum.
  uint64_t viewers = 0;
  for (const auto &s : all) {
    const uint64_t clients = s->counters().clients.load();
    viewers += clients;
    if (!s->rendition().empty()) out.renditions.push_back({s->rendition(), clamp(clients)});
  }
  out.viewers = clamp(viewers);
  return out;
}

}  // namespace tlsframe
