// Session: which rendition a client gets, and switching between renditions
// (docs/PROTOCOL.md 8.12). The rest of the session is in session.cpp.
//
// A switch: the session subscribes to the target too and asks it for a
// keyframe (merged like any keyframe request), keeps sending the current
// rendition, and at the target's first keyframe leaves the current one and
// sends RENDITION, the target's CAPS (the queue adds them: the keyframe
// carries caps the client does not have) and the keyframe. Nothing of the
// target before its keyframe, nothing of the old one after it. A browser
// gets the same RENDITION (with the list of renditions: it has no WELCOME)
// as a binary WebSocket message, also before its first caps.
//
// Threads: the session's strand, except fill_rendition_stats() (any thread).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "core/log.h"
#include "core/session.h"
#include "core/stream.h"

namespace tlsframe {
namespace {

constexpr auto kComp = log::Component::kServer;
constexpr const char *kServerText = "tlsframe " TLSFRAME_VERSION;

// Index of s in ladder (ladder.size() when absent).
size_t index_of(const std::vector<std::shared_ptr<Stream>> &ladder, const Stream *s) {
  for (size_t i = 0; i < ladder.size(); ++i) {
    if (ladder[i].get() == s) return i;
  }
  return ladder.size();
}

// A buffer message's send-time (the stream's CLOCK_REALTIME at publish, ns;
// 0 for other messages), read from its wire bytes.
uint64_t send_time_of(const Message &m) {
  constexpr size_t kAt = wire::kHeaderSize + wire::kBufferMetaSize - 8;
  if (m.type != wire::MessageType::kBuffer || m.bytes.size() < kAt + 8) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | m.bytes[kAt + i];
  return v;
}

// A browser's RENDITION notice (docs/PROTOCOL.md 8.13): the v2 message, with
// the stream's renditions too (`renditions`, highest first), as a browser
// gets no WELCOME. nullptr when it cannot be encoded.
MessagePtr browser_rendition_notice(const Stream &on, std::string_view reason) {
  std::vector<std::string> names;
  if (auto group = on.group()) {
    for (const auto &r : group->renditions()) names.push_back(r->rendition());
  }
  const std::string list = wire::join_rendition_list(names);
  std::vector<wire::Field> fields = {{"rendition", on.rendition()}};
  if (!reason.empty()) fields.push_back({"reason", reason.substr(0, wire::kMaxRenditionReason)});
  if (!list.empty()) fields.push_back({"renditions", list});
  auto msg = std::make_shared<Message>();
  msg->type = wire::MessageType::kRendition;
  msg->bytes = wire::encode_rendition(fields);
  return msg->bytes.empty() ? nullptr : msg;
}

uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

std::shared_ptr<Stream> Session::first_rendition(const std::shared_ptr<Stream> &entry) {
  const std::shared_ptr<StreamGroup> group = entry->group();
  if (!group || !group->has_renditions()) return entry;
  const std::string &asked = renditions_.asked;
  if (!asked.empty() && asked != wire::kRenditionAuto) {
    if (auto named = group->find(asked)) {
      renditions_.automatic = false;
      return named;
    }
    TF_WARNING(kComp, "client %" PRIu64 " %s: stream \"%s\" has no rendition \"%s\"; choosing one",
               info_.id, info_.address.c_str(), group->name().c_str(), asked.c_str());
  }
  renditions_.automatic = true;
  // Automatic: the highest rate first (a viewer on a good link never sees
  // the low one); a slow link steps down within a second or two.
  const auto ladder = group->renditions();
  return ladder.empty() ? entry : ladder.front();
}

std::vector<uint8_t> Session::welcome_bytes(uint32_t keyframe_interval_ms) const {
  const std::string interval = std::to_string(keyframe_interval_ms);
  std::vector<wire::Field> fields = {{"stream", stream_->name()}, {"server", kServerText}};
  if (keyframe_interval_ms != 0) fields.push_back({"keyframe-interval-ms", interval});
  std::string list;
  if (!stream_->rendition().empty()) {
    std::vector<std::string> names;
    if (auto group = stream_->group()) {
      for (const auto &r : group->renditions()) names.push_back(r->rendition());
    }
    list = wire::join_rendition_list(names);
    fields.push_back({"rendition", stream_->rendition()});
    if (!list.empty()) fields.push_back({"renditions", list});
  }
  return wire::encode_welcome(fields);
}

void Session::start_renditions() {
  {
    auto st = rendition_stats_.lock();
    st->rendition = stream_ ? stream_->rendition() : "";
    st->automatic = renditions_.automatic;
  }
  if (!stream_ || stream_->rendition().empty() || phase_ != Phase::kStreaming) return;
  if (client_messages_ == ClientMessages::kBrowser) {
    // Before the first caps: a browser's only word of its rendition and the list.
    if (auto notice =
            browser_rendition_notice(*stream_, renditions_.automatic ? "auto" : "requested")) {
      send_control(notice);
    }
  }
  bound_kernel_backlog();
  renditions_.origin = std::chrono::steady_clock::now();
  renditions_.policy.switched(std::chrono::microseconds(0), 0, 0);
  if (renditions_.automatic) arm_rendition_timer();
}

void Session::bound_kernel_backlog() {
  const int lowat = static_cast<int>(kRenditionNotsentLowat);
  const int fd = socket_.native_handle();
  if (setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat) != 0) {
    TF_DEBUG(kComp, "client %" PRIu64 ": TCP_NOTSENT_LOWAT not set: %s", info_.id,
             std::strerror(errno));
  }
}

void Session::on_rendition_request(std::string_view asked) {
  const std::shared_ptr<StreamGroup> group = stream_ ? stream_->group() : nullptr;
  if (!group || !group->has_renditions()) {
    TF_DEBUG(kComp, "client %" PRIu64 ": RENDITION_REQUEST on a stream without renditions",
             info_.id);
    return;
  }
  if (asked == wire::kRenditionAuto) {
    TF_DEBUG(kComp, "client %" PRIu64 ": RENDITION_REQUEST auto", info_.id);
    renditions_.automatic = true;
    rendition_stats_.lock()->automatic = true;
    arm_rendition_timer();
    return;
  }
  std::shared_ptr<Stream> target = group->find(asked);
  if (!target) {
    TF_WARNING(kComp, "client %" PRIu64 " %s: RENDITION_REQUEST for \"%.*s\", which stream \"%s\" "
               "does not have; ignored",
               info_.id, info_.address.c_str(), static_cast<int>(asked.size()), asked.data(),
               group->name().c_str());
    return;
  }
  renditions_.automatic = false;
  rendition_stats_.lock()->automatic = false;
  if (renditions_.timer) renditions_.timer->cancel();
  const auto ladder = group->renditions();
  const bool up = index_of(ladder, target.get()) < index_of(ladder, stream_.get());
  switch_rendition(target, up, "requested");
}

void Session::switch_rendition(const std::shared_ptr<Stream> &target, bool up, std::string reason) {
  if (renditions_.target && renditions_.target != target) {
    renditions_.target->unsubscribe(info_.id);
    renditions_.target.reset();
  }
  if (target == stream_) {
    TF_DEBUG(kComp, "client %" PRIu64 ": stays on rendition \"%s\"", info_.id,
             stream_->rendition().c_str());
    return;
  }
  if (renditions_.target == target) {
    renditions_.target_reason = std::move(reason);  // still waiting for its keyframe
    return;
  }
  const Stream::Joined joined = target->subscribe(shared_from_this(), version_);
  if (!joined.ok) return;  // stopping
  renditions_.target = target;
  renditions_.target_up = up;
  renditions_.target_reason = std::move(reason);
  TF_DEBUG(kComp, "client %" PRIu64 " %s: switching to rendition \"%s\" (%s) at its next keyframe",
           info_.id, info_.address.c_str(), target->rendition().c_str(),
           renditions_.target_reason.c_str());
  target->request_keyframe(info_.id);  // nothing on a stream without delta units
}

void Session::deliver_from_other(const MessagePtr &msg, const Stream *from) {
  if (phase_ != Phase::kStreaming) return;
  if (!renditions_.target || renditions_.target.get() != from) return;  // a rendition left
  if (msg->type != wire::MessageType::kBuffer || msg->delta) return;  // until its keyframe
  finish_switch(msg);
}

void Session::finish_switch(const MessagePtr &keyframe) {
  const std::shared_ptr<Stream> from = stream_;
  const std::shared_ptr<Stream> to = std::move(renditions_.target);
  renditions_.target.reset();
  // What is still unsent of the rendition left is older than the target's
  // keyframe, and after a step down late by definition: dropped, so the
  // client's latency recovers at the switch instead of draining it.
  const size_t stale = queue_.drop_unsent_stream();
  for (size_t i = 0; i < stale; ++i) count_drop();
  from->unsubscribe(info_.id);
  stream_ = to;
  stream_counters_ = &to->counters();
  RenditionChange change;
  change.from = from->rendition();
  change.to = to->rendition();
  change.up = renditions_.target_up;
  change.reason = renditions_.target_reason;
  if (client_messages_ == ClientMessages::kV2) {
    auto msg = std::make_shared<Message>();
    msg->type = wire::MessageType::kRendition;
    msg->bytes = wire::encode_rendition(change.to, change.reason.substr(0, wire::kMaxRenditionReason));
    if (!msg->bytes.empty()) send_control(msg);
  } else if (client_messages_ == ClientMessages::kBrowser) {
    if (auto notice = browser_rendition_notice(*to, change.reason)) send_control(notice);
  }
  deliver(keyframe);  // the queue sends the target's caps first
  {
    auto st = rendition_stats_.lock();
    st->rendition = change.to;
    st->reason = change.reason;
    (change.up ? st->up : st->down)++;
  }
  if (auto group = to->group()) {
    const auto ladder = group->renditions();
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - renditions_.origin);
    renditions_.policy.switched(now, index_of(ladder, from.get()), index_of(ladder, to.get()));
  }
  host_->on_rendition_switched(shared_from_this(), *from, *to, change);
}

void Session::leave_renditions() {
  if (renditions_.target) {
    renditions_.target->unsubscribe(info_.id);
    renditions_.target.reset();
  }
  if (renditions_.timer) renditions_.timer->cancel();
}

void Session::arm_rendition_timer() {
  if (closed()) return;
  if (!renditions_.timer) renditions_.timer.emplace(socket_.get_executor());
  renditions_.timer->expires_after(kRenditionSampleInterval);
  auto self = shared_from_this();
  renditions_.timer->async_wait([self](std::error_code ec) {
    if (!ec) self->on_rendition_timer();
  });
}

void Session::on_rendition_timer() {
  if (closed() || phase_ != Phase::kStreaming || !renditions_.automatic) return;
  const std::shared_ptr<StreamGroup> group = stream_->group();
  if (!group) return;
  const auto ladder = group->renditions();
  std::vector<uint64_t> rates;
  for (const auto &r : ladder) rates.push_back(r->published_rate());
  const Stream *now_on = renditions_.target ? renditions_.target.get() : stream_.get();
  const size_t current = index_of(ladder, now_on);

  // How late data queued now arrives: the oldest unsent buffer's age, plus
  // what the kernel holds ahead of it at the rate it delivers.
  const auto now = std::chrono::steady_clock::now();
  std::chrono::microseconds delay{0};
  if (!queue_.empty()) {
    const uint64_t sent_at = send_time_of(*queue_.front());
    const uint64_t wall = realtime_ns();
    if (sent_at != 0 && wall > sent_at) delay = std::chrono::microseconds((wall - sent_at) / 1000);
  }
  const TcpSample tcp = read_tcp_sample(socket_.native_handle());
  uint64_t rate = tcp.delivery_rate_bps;
  if (rate == 0) rate = renditions_.policy.estimated_rate();
  if (tcp.ok && rate > 0) {
    const uint64_t held = uint64_t{tcp.notsent_bytes} + tcp.unacked_bytes;
    delay += std::chrono::microseconds(held * 8 * 1'000'000 / rate);
  }
  RenditionPolicy::Sample sample;
  sample.at = std::chrono::duration_cast<std::chrono::microseconds>(now - renditions_.origin);
  sample.queue_delay = delay;
  sample.delivery_rate_bps = tcp.delivery_rate_bps;
  sample.app_limited = tcp.app_limited;
  const RenditionPolicy::Decision d = renditions_.policy.sample(sample, rates, current);
  rendition_stats_.lock()->estimate = renditions_.policy.estimated_rate();
  TF_LOGV(kComp, "client %" PRIu64 ": delay %" PRId64 " ms, delivery %" PRIu64
          " bit/s%s, notsent %u, unacked %u, rtt %u us, on %zu of %zu",
          info_.id, static_cast<int64_t>(delay.count() / 1000), tcp.delivery_rate_bps,
          tcp.app_limited ? " (app-limited)" : "", tcp.notsent_bytes, tcp.unacked_bytes,
          tcp.rtt_us, current, ladder.size());
  if (d.change && d.target < ladder.size()) switch_rendition(ladder[d.target], d.up, d.reason);
  arm_rendition_timer();
}

void Session::fill_rendition_stats(ClientStats &s) const {
  auto st = rendition_stats_.lock();
  s.rendition = st->rendition;
  s.rendition_auto = st->automatic;
  s.switches_up = st->up;
  s.switches_down = st->down;
  s.rendition_reason = st->reason;
  s.estimated_rate = st->estimate;
}

}  // namespace tlsframe
