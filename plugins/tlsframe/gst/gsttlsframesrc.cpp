// tlsframesrc: GstPushSrc glue around tlsframe::Receiver.
//
// create() blocks in Receiver::next() on the streaming thread; unlock()
// cancels that wait from any thread, unlock_stop() clears the cancellation.
// Timestamps are re-based onto the pipeline's running time: the first buffer's
// decode time (else presentation time) after a (re)connect maps to "now",
// later ones keep the server's spacing and the PTS/DTS relation, and
// the offset only grows when a buffer arrives later than its slot (network
// jitter), so timestamps stay monotonic.
//
// Protocol version 2 (the receiver offers it on every connection): the
// stream-name property picks a named stream; an upstream force-key-unit event
// (a decoder's or a relay sink's request) becomes a KEYFRAME_REQUEST to the
// server, sent from the event's thread without blocking (the receiver posts
// it to its I/O thread). The src is also a GstURIHandler for
// tlsframe://HOST[:PORT][/NAME], so playbin plays such URIs.
#include "gst/gsttlsframesrc.h"

#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "core/receiver.h"
#include "core/wire_v2.h"
#include "gst/common.h"
#include "gst/element_docs.h"
#include "gst/running_time.h"

#define GST_CAT_DEFAULT tlsframe_src_debug

namespace {

constexpr const char *DEFAULT_HOST = "localhost";
constexpr int DEFAULT_PORT = tlsframe::kDefaultPort;
constexpr const char *DEFAULT_STREAM_NAME = "";
constexpr const char *DEFAULT_RENDITION = "auto";  // wire::kRenditionAuto: the server chooses
constexpr GstTlsFrameTlsVersion DEFAULT_MIN_TLS_VERSION = GST_TLS_FRAME_TLS_VERSION_1_3;
constexpr guint DEFAULT_TIMEOUT = static_cast<guint>(tlsframe::kDefaultReadTimeout.count());
constexpr guint DEFAULT_CONNECT_TIMEOUT = 10;
constexpr guint DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;
constexpr gboolean DEFAULT_RECONNECT = FALSE;
constexpr guint DEFAULT_MAX_RECONNECT_INTERVAL = 5000;
constexpr guint kFirstReconnectInterval = 100;  // ms; doubles up to max-reconnect-interval

enum {
  PROP_0,
  PROP_HOST,
  PROP_PORT,
  PROP_SERVER_NAME,
  PROP_CA_FILE,
  PROP_CERT_FILE,
  PROP_KEY_FILE,
  PROP_MIN_TLS_VERSION,
  PROP_TIMEOUT,
  PROP_CONNECT_TIMEOUT,
  PROP_MAX_MESSAGE_SIZE,
  PROP_RECONNECT,
  PROP_MAX_RECONNECT_INTERVAL,
  PROP_STREAM_NAME,
  PROP_URI,
  PROP_SERVER_FINGERPRINT,
  PROP_RENDITION,
  PROP_LAST
};
GParamSpec *properties[PROP_LAST];

// Copied once per connection attempt.
struct Settings {
  std::string host = DEFAULT_HOST;
  int port = DEFAULT_PORT;
  std::string server_name, ca_file, cert_file, key_file;
  GstTlsFrameTlsVersion min_tls_version = DEFAULT_MIN_TLS_VERSION;
  guint timeout = DEFAULT_TIMEOUT;
  guint connect_timeout = DEFAULT_CONNECT_TIMEOUT;
  guint max_message_size = DEFAULT_MAX_MESSAGE_SIZE;
  bool reconnect = DEFAULT_RECONNECT;
  guint max_reconnect_interval = DEFAULT_MAX_RECONNECT_INTERVAL;
  std::string stream_name = DEFAULT_STREAM_NAME;  // "" = the default stream
  std::string server_fingerprint;                 // as set ("" = no pin); the core checks it
  std::string rendition = DEFAULT_RENDITION;      // "auto" or a rendition name
};

struct Private {
  std::mutex settings_lock;  // protects settings
  Settings settings;
  std::mutex state_lock;  // protects receiver and flushing; cond wakes the reconnect wait
  std::condition_variable cond;
  std::shared_ptr<tlsframe::Receiver> receiver;
  bool flushing = false;
  // Streaming thread only:
  bool have_caps = false;
  std::string caps_text;  // the caps string last applied
  std::string rendition;  // the rendition the server says it sends ("" = none stated)
  bool discont = true;
  bool announced = false;  // posted "tlsframesrc-connected" for this connection
  bool have_offset = false;
  GstClockTimeDiff offset = 0;
  guint backoff_ms = kFirstReconnectInterval;
  guint64 reconnects = 0;
};

}  // namespace

struct _GstTlsFrameSrc {
  GstPushSrc parent;
  Private *priv;
};

static void gst_tls_frame_src_uri_handler_init(gpointer g_iface, gpointer iface_data);

G_DEFINE_TYPE_WITH_CODE(GstTlsFrameSrc, gst_tls_frame_src, GST_TYPE_PUSH_SRC,
                        G_IMPLEMENT_INTERFACE(GST_TYPE_URI_HANDLER,
                                              gst_tls_frame_src_uri_handler_init))

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

static tlsframe::ReceiverConfig make_config(GstTlsFrameSrc *self) {
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  const Settings &s = self->priv->settings;
  tlsframe::ReceiverConfig c;
  c.host = s.host;
  c.port = static_cast<uint16_t>(s.port);
  c.server_name = s.server_name;
  c.tls.ca_file = s.ca_file;
  c.tls.cert_file = s.cert_file;
  c.tls.key_file = s.key_file;
  c.tls.server_fingerprint = s.server_fingerprint;
  c.tls.min_version = tlsframe::gst::to_core_version(s.min_tls_version);
  c.max_payload = s.max_message_size;
  c.connect_timeout = std::chrono::seconds(s.connect_timeout ? s.connect_timeout : 3600u * 24u);
  c.read_timeout = std::chrono::seconds(s.timeout);
  c.stream_name = s.stream_name;
  c.rendition = s.rendition;
  return c;
}

static void post_connection_message(GstTlsFrameSrc *self, const char *name, const char *key,
                                    const std::string &value) {
  GstStructure *s = gst_structure_new(name, key, G_TYPE_STRING, value.c_str(), "reconnects",
                                      G_TYPE_UINT64, self->priv->reconnects, nullptr);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
}

// "tlsframesrc-connected": the peer, and what its WELCOME said (version 1:
// protocol-version 1, the default stream, no server text). renditions is a
// string in the WELCOME's own form (comma-separated, highest rate first) like
// the message's other fields, so gst-launch-1.0 -m prints it as it is.
static void post_connected_message(GstTlsFrameSrc *self, tlsframe::Receiver &receiver) {
  tlsframe::Welcome w = receiver.welcome().value_or(tlsframe::Welcome{});
  const std::string renditions = tlsframe::wire::join_rendition_list(w.renditions);
  GstStructure *s = gst_structure_new(
      "tlsframesrc-connected", "address", G_TYPE_STRING, receiver.peer_address().c_str(),
      "reconnects", G_TYPE_UINT64, self->priv->reconnects, "protocol-version", G_TYPE_INT,
      w.version, "stream-name", G_TYPE_STRING, w.stream.c_str(), "server", G_TYPE_STRING,
      w.server.c_str(), "keyframe-interval-ms", G_TYPE_UINT, w.keyframe_interval_ms, "rendition",
      G_TYPE_STRING, w.rendition.c_str(), "renditions", G_TYPE_STRING, renditions.c_str(), nullptr);
  self->priv->rendition = w.rendition;
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
}

static void connect_now(GstTlsFrameSrc *self) {
  auto receiver = std::shared_ptr<tlsframe::Receiver>(tlsframe::Receiver::start(make_config(self)));
  std::lock_guard<std::mutex> lock(self->priv->state_lock);
  if (self->priv->flushing) receiver->cancel();
  self->priv->receiver = std::move(receiver);
  self->priv->have_offset = false;
  self->priv->discont = true;
  self->priv->announced = false;
}

static gboolean gst_tls_frame_src_start(GstBaseSrc *bsrc) {
  auto *self = GST_TLS_FRAME_SRC(bsrc);
  // Check the TLS settings now, so a bad file fails the state change.
  tlsframe::ReceiverConfig config = make_config(self);
  auto ctx = tlsframe::tls::make_client_context(config.tls);
  if (!ctx) {
    TLSFRAME_ELEMENT_ERROR(self, ctx.error());
    return FALSE;
  }
  if (!config.stream_name.empty() && !tlsframe::wire::valid_stream_name(config.stream_name)) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
                      ("Invalid stream-name \"%s\": use 1 to 64 of A-Z a-z 0-9 . _ -, not "
                       "starting with '.' (empty = the default stream).",
                       config.stream_name.c_str()),
                      (nullptr));
    return FALSE;
  }
  self->priv->have_caps = false;
  self->priv->backoff_ms = kFirstReconnectInterval;
  self->priv->reconnects = 0;
  connect_now(self);
  return TRUE;
}

static gboolean gst_tls_frame_src_stop(GstBaseSrc *bsrc) {
  auto *self = GST_TLS_FRAME_SRC(bsrc);
  std::shared_ptr<tlsframe::Receiver> receiver;
  {
    std::lock_guard<std::mutex> lock(self->priv->state_lock);
    receiver.swap(self->priv->receiver);
  }
  if (receiver) receiver->stop();
  return TRUE;
}

static gboolean gst_tls_frame_src_unlock(GstBaseSrc *bsrc) {
  auto *self = GST_TLS_FRAME_SRC(bsrc);
  std::lock_guard<std::mutex> lock(self->priv->state_lock);
  self->priv->flushing = true;
  if (self->priv->receiver) self->priv->receiver->cancel();
  self->priv->cond.notify_all();
  GST_DEBUG_OBJECT(self, "unlock");
  return TRUE;
}

static gboolean gst_tls_frame_src_unlock_stop(GstBaseSrc *bsrc) {
  auto *self = GST_TLS_FRAME_SRC(bsrc);
  std::lock_guard<std::mutex> lock(self->priv->state_lock);
  self->priv->flushing = false;
  if (self->priv->receiver) self->priv->receiver->clear_cancel();
  GST_DEBUG_OBJECT(self, "unlock stop");
  return TRUE;
}

// Timestamp arithmetic in 128 bits, clamped back: a server may send any
// 64-bit value (up to 2^64 - 2), and a signed 64-bit sum or difference of
// such values overflows. Running times are kept within [0, G_MAXINT64], the
// range a GstClockTimeDiff can also hold.
static GstClockTimeDiff clamp_diff(__int128 v) {
  if (v > G_MAXINT64) return G_MAXINT64;
  if (v < G_MININT64) return G_MININT64;
  return static_cast<GstClockTimeDiff>(v);
}

static GstClockTime rebase(GstTlsFrameSrc *self, GstClockTime ts) {
  if (!GST_CLOCK_TIME_IS_VALID(ts) || !self->priv->have_offset) return GST_CLOCK_TIME_NONE;
  __int128 out = static_cast<__int128>(ts) + self->priv->offset;
  if (out < 0) return 0;
  return static_cast<GstClockTime>(clamp_diff(out));
}

// ts: the buffer's DTS when valid (monotonic, never after PTS), else its PTS.
static void update_offset(GstTlsFrameSrc *self, GstClockTime ts) {
  if (!GST_CLOCK_TIME_IS_VALID(ts)) return;
  GstClockTime now = tlsframe::gst::running_time_now(GST_ELEMENT(self));
  if (!GST_CLOCK_TIME_IS_VALID(now)) {
    if (!self->priv->have_offset) self->priv->offset = 0;
    self->priv->have_offset = true;
    return;
  }
  GstClockTimeDiff wanted = clamp_diff(static_cast<__int128>(now) - static_cast<__int128>(ts));
  if (!self->priv->have_offset || wanted > self->priv->offset) {
    self->priv->offset = wanted;
    self->priv->have_offset = true;
  }
}

static void free_storage(gpointer data) {
  delete static_cast<std::shared_ptr<std::vector<uint8_t>> *>(data);
}

static GstStaticCaps unix_time_caps = GST_STATIC_CAPS("timestamp/x-unix");

static GstBuffer *make_buffer(GstTlsFrameSrc *self, tlsframe::Received &m) {
  auto *holder = new std::shared_ptr<std::vector<uint8_t>>(std::move(m.storage));
  uint8_t *base = (*holder)->data();
  GstBuffer *buf = gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, base, (*holder)->size(),
                                               m.data_offset, m.data_size, holder, free_storage);
  update_offset(self, m.meta.dts != tlsframe::wire::kNoTime ? m.meta.dts : m.meta.pts);
  GST_BUFFER_PTS(buf) = rebase(self, m.meta.pts);
  GST_BUFFER_DTS(buf) = rebase(self, m.meta.dts);
  GST_BUFFER_DURATION(buf) = m.meta.duration;
  tlsframe::gst::buffer_set_wire_flags(buf, m.meta.flags & ~tlsframe::wire::kFlagDiscont);
  if (self->priv->discont) {
    GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
    self->priv->discont = false;
  }
  GST_BUFFER_OFFSET(buf) = m.meta.sequence;
  // The server's send time (its wall clock, Unix epoch) for end-to-end
  // latency: viewers on the same host, or on hosts with synchronised clocks.
  if (m.meta.send_time_ns) {
    GstCaps *unix_time = gst_static_caps_get(&unix_time_caps);
    gst_buffer_add_reference_timestamp_meta(buf, unix_time, m.meta.send_time_ns,
                                            GST_CLOCK_TIME_NONE);
    gst_caps_unref(unix_time);
  }
  return buf;
}

// RENDITION: the next CAPS and buffers are another encoding. Its first
// buffer is marked DISCONT; "tlsframesrc-rendition" tells the application.
static void on_rendition_message(GstTlsFrameSrc *self, const tlsframe::Received &m) {
  const std::string from = self->priv->rendition;
  self->priv->rendition = m.rendition;
  self->priv->discont = true;
  std::string asked;
  {
    std::lock_guard<std::mutex> lock(self->priv->settings_lock);
    asked = self->priv->settings.rendition;
  }
  GST_INFO_OBJECT(self, "rendition %s -> %s (%s)", from.c_str(), m.rendition.c_str(),
                  m.reason.c_str());
  GstStructure *s = gst_structure_new(
      "tlsframesrc-rendition", "rendition", G_TYPE_STRING, m.rendition.c_str(), "previous",
      G_TYPE_STRING, from.c_str(), "reason", G_TYPE_STRING, m.reason.c_str(), "automatic",
      G_TYPE_BOOLEAN, asked == tlsframe::wire::kRenditionAuto, nullptr);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
}

// Wait before reconnecting; false when flushing interrupted the wait.
static bool backoff_wait(GstTlsFrameSrc *self) {
  guint ms = self->priv->backoff_ms;
  guint max_ms;
  {
    std::lock_guard<std::mutex> lock(self->priv->settings_lock);
    max_ms = std::max(kFirstReconnectInterval, self->priv->settings.max_reconnect_interval);
  }
  self->priv->backoff_ms = std::min(max_ms, ms * 2);
  std::unique_lock<std::mutex> lock(self->priv->state_lock);
  self->priv->cond.wait_for(lock, std::chrono::milliseconds(ms),
                            [self] { return self->priv->flushing; });
  return !self->priv->flushing;
}

// The server's reason text, made safe to show: printable ASCII only.
static std::string printable(const std::string &text) {
  std::string out = text.substr(0, tlsframe::wire::kMaxErrorText);
  for (char &c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

// A server ERROR message as a core Error; SERVER_FULL, SHUTTING_DOWN and
// TIMEOUT are worth retrying, others are the server's refusal.
static tlsframe::Error server_error(const tlsframe::Received &m, bool *retry) {
  using Code = tlsframe::wire::ErrorCode;
  tlsframe::Error e;
  e.detail = "server error code " + std::to_string(m.error_code) + ": " + printable(m.error_text);
  switch (static_cast<Code>(m.error_code)) {
    case Code::kServerFull:
      e.kind = tlsframe::Error::Kind::kBusy;
      e.message = "The server is full (max-clients reached); try again later.";
      *retry = true;
      break;
    case Code::kShuttingDown:
      e.kind = tlsframe::Error::Kind::kClosed;
      e.message = "The server is shutting down.";
      *retry = true;
      break;
    case Code::kTimeout:
      e.kind = tlsframe::Error::Kind::kTimeout;
      e.message = "The server dropped this client for making no progress.";
      *retry = true;
      break;
    case Code::kNoSuchStream:  // the server's text lists the streams it has
      e.kind = tlsframe::Error::Kind::kNotFound;
      e.message = "The server has no such stream: " + printable(m.error_text);
      *retry = false;
      break;
    case Code::kForbidden:  // authorized-clients or accept-client: not retried
      e.kind = tlsframe::Error::Kind::kPeerRefused;
      e.message = "Forbidden: the server does not allow this client certificate to watch "
                  "the stream: " + printable(m.error_text);
      *retry = false;
      break;
    case Code::kRevoked:  // the server's CRL lists our certificate now
      e.kind = tlsframe::Error::Kind::kPeerRefused;
      e.message = "Revoked: the server's revocation list now holds this client "
                  "certificate: " + printable(m.error_text);
      *retry = false;
      break;
    default:
      e.kind = tlsframe::Error::Kind::kPeerRefused;
      e.message = "The server refused the connection: " + printable(m.error_text);
      *retry = false;
      break;
  }
  return e;
}

static bool is_fatal(const tlsframe::Error &e) {
  using K = tlsframe::Error::Kind;
  return e.kind == K::kSettings || e.kind == K::kVerify || e.kind == K::kPeerRefused ||
         e.kind == K::kNotFound;
}

// The connection is gone: with reconnect on and a retryable error, report it
// on the bus, back off and reconnect (GST_FLOW_OK: go on reading); else post
// the element error.
static GstFlowReturn on_connection_lost(GstTlsFrameSrc *self,
                                        const std::shared_ptr<tlsframe::Receiver> &receiver,
                                        const tlsframe::Error &error, bool retryable) {
  bool reconnect;
  {
    std::lock_guard<std::mutex> lock(self->priv->settings_lock);
    reconnect = self->priv->settings.reconnect;
  }
  if (!reconnect || !retryable) {
    TLSFRAME_ELEMENT_ERROR(self, error);
    return GST_FLOW_ERROR;
  }
  GST_WARNING_OBJECT(self, "connection lost: %s (%s); reconnecting", error.message.c_str(),
                     error.detail.c_str());
  post_connection_message(self, "tlsframesrc-disconnected", "reason", error.message);
  receiver->stop();
  if (!backoff_wait(self)) return GST_FLOW_FLUSHING;
  self->priv->reconnects++;
  connect_now(self);
  return GST_FLOW_OK;
}

static GstFlowReturn gst_tls_frame_src_create(GstPushSrc *psrc, GstBuffer **outbuf) {
  auto *self = GST_TLS_FRAME_SRC(psrc);
  // Each pass either returns or handles one message; every wait is cancellable.
  for (;;) {
    std::shared_ptr<tlsframe::Receiver> receiver;
    {
      std::lock_guard<std::mutex> lock(self->priv->state_lock);
      if (self->priv->flushing) return GST_FLOW_FLUSHING;
      receiver = self->priv->receiver;
    }
    if (!receiver) return GST_FLOW_FLUSHING;
    tlsframe::Received m;
    tlsframe::Error error;
    auto status =
        receiver->next(m, error, std::chrono::steady_clock::now() + std::chrono::seconds(1));
    switch (status) {
      case tlsframe::NextStatus::kTimeout:
        continue;
      case tlsframe::NextStatus::kCancelled:
        return GST_FLOW_FLUSHING;
      case tlsframe::NextStatus::kError: {
        GstFlowReturn ret = on_connection_lost(self, receiver, error, !is_fatal(error));
        if (ret != GST_FLOW_OK) return ret;
        continue;
      }
      case tlsframe::NextStatus::kMessage:
        break;
    }
    if (!self->priv->announced) {
      self->priv->announced = true;
      self->priv->backoff_ms = kFirstReconnectInterval;
      GST_INFO_OBJECT(self, "connected to %s (%s)", receiver->peer_address().c_str(),
                      receiver->peer_subject().c_str());
      post_connected_message(self, *receiver);
    }
    switch (m.type) {
      case tlsframe::wire::MessageType::kCaps: {
        if (self->priv->have_caps && m.caps == self->priv->caps_text) continue;
        GstCaps *caps = gst_caps_from_string(m.caps.c_str());
        if (!caps || !gst_caps_is_fixed(caps)) {
          if (caps) gst_caps_unref(caps);
          GST_ELEMENT_ERROR(self, STREAM, DECODE, ("The server sent invalid caps."),
                            ("caps: %s", m.caps.c_str()));
          return GST_FLOW_ERROR;
        }
        GST_DEBUG_OBJECT(self, "caps from server: %" GST_PTR_FORMAT, caps);
        gboolean ok = gst_base_src_set_caps(GST_BASE_SRC(self), caps);
        gst_caps_unref(caps);
        if (!ok) {
          GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("Downstream refused the stream's caps."),
                            ("caps: %s", m.caps.c_str()));
          return GST_FLOW_NOT_NEGOTIATED;
        }
        self->priv->have_caps = true;
        self->priv->caps_text = m.caps;
        continue;
      }
      case tlsframe::wire::MessageType::kBuffer:
        if (!self->priv->have_caps) {
          GST_ELEMENT_ERROR(self, STREAM, DECODE, ("The server sent a buffer before its caps."),
                            (nullptr));
          return GST_FLOW_ERROR;
        }
        *outbuf = make_buffer(self, m);
        GST_LOG_OBJECT(self, "buffer %" GST_PTR_FORMAT, *outbuf);
        return GST_FLOW_OK;
      case tlsframe::wire::MessageType::kEos:
        GST_INFO_OBJECT(self, "end of stream from the server");
        return GST_FLOW_EOS;
      case tlsframe::wire::MessageType::kError: {
        bool retry = false;
        tlsframe::Error e = server_error(m, &retry);
        GstFlowReturn ret = on_connection_lost(self, receiver, e, retry);
        if (ret != GST_FLOW_OK) return ret;
        continue;
      }
      case tlsframe::wire::MessageType::kRendition:
        on_rendition_message(self, m);
        continue;
      default:  // the receiver keeps WELCOME and STREAM_LIST to itself
        continue;
    }
  }
}

// Upstream force-key-unit (a decoder after an error, a relay's sink for a
// joining client): a KEYFRAME_REQUEST on a version 2 connection. The
// receiver rate-limits and never blocks.
static gboolean gst_tls_frame_src_event(GstBaseSrc *bsrc, GstEvent *event) {
  auto *self = GST_TLS_FRAME_SRC(bsrc);
  if (GST_EVENT_TYPE(event) == GST_EVENT_CUSTOM_UPSTREAM &&
      gst_video_event_is_force_key_unit(event)) {
    std::shared_ptr<tlsframe::Receiver> receiver;
    {
      std::lock_guard<std::mutex> lock(self->priv->state_lock);
      receiver = self->priv->receiver;
    }
    tlsframe::SendStatus st =
        receiver ? receiver->request_keyframe() : tlsframe::SendStatus::kNotReady;
    switch (st) {
      case tlsframe::SendStatus::kQueued:
        GST_DEBUG_OBJECT(self, "force-key-unit: KEYFRAME_REQUEST sent");
        break;
      case tlsframe::SendStatus::kRateLimited:
        GST_DEBUG_OBJECT(self, "force-key-unit: a keyframe request is already in flight");
        break;
      case tlsframe::SendStatus::kNotSupported:
        GST_DEBUG_OBJECT(self, "force-key-unit ignored: protocol version 1 server");
        break;
      case tlsframe::SendStatus::kNotReady:
        GST_DEBUG_OBJECT(self, "force-key-unit ignored: not streaming yet");
        break;
    }
    return TRUE;
  }
  return GST_BASE_SRC_CLASS(gst_tls_frame_src_parent_class)->event(bsrc, event);
}

// Only in NULL or READY (a change later would apply to the next connection
// only, silently).
static bool settable_now(GstTlsFrameSrc *self) {
  GST_OBJECT_LOCK(self);
  bool ok = GST_STATE(self) <= GST_STATE_READY && GST_STATE_NEXT(self) <= GST_STATE_READY;
  GST_OBJECT_UNLOCK(self);
  return ok;
}

static std::string current_uri(GstTlsFrameSrc *self) {
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  const Settings &s = self->priv->settings;
  return tlsframe::format_stream_uri(
      tlsframe::StreamAddress{s.host, static_cast<uint16_t>(s.port), s.stream_name});
}

static gboolean set_uri(GstTlsFrameSrc *self, const gchar *uri, GError **error) {
  if (!settable_now(self)) {
    g_set_error(error, GST_URI_ERROR, GST_URI_ERROR_BAD_STATE,
                "the URI can only be changed in the NULL or READY state");
    return FALSE;
  }
  auto address = tlsframe::parse_stream_uri(uri ? uri : "");
  if (!address) {
    g_set_error(error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "%s", address.error().message.c_str());
    return FALSE;
  }
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  Settings &s = self->priv->settings;
  s.host = address->host;
  s.port = address->port;
  s.stream_name = address->stream;
  return TRUE;
}

static GstURIType uri_get_type(GType) {
  return GST_URI_SRC;
}

static const gchar *const *uri_get_protocols(GType) {
  static const gchar *protocols[] = {"tlsframe", nullptr};
  return protocols;
}

static gchar *uri_get_uri(GstURIHandler *handler) {
  return g_strdup(current_uri(GST_TLS_FRAME_SRC(handler)).c_str());
}

static gboolean uri_set_uri(GstURIHandler *handler, const gchar *uri, GError **error) {
  return set_uri(GST_TLS_FRAME_SRC(handler), uri, error);
}

static void gst_tls_frame_src_uri_handler_init(gpointer g_iface, gpointer) {
  auto *iface = static_cast<GstURIHandlerInterface *>(g_iface);
  iface->get_type = uri_get_type;
  iface->get_protocols = uri_get_protocols;
  iface->get_uri = uri_get_uri;
  iface->set_uri = uri_set_uri;
}

// Live, no latency of our own, and buffers may be held downstream as long as
// wanted (the default answer's maximum of 0 makes syncing sinks complain).
static gboolean gst_tls_frame_src_query(GstBaseSrc *bsrc, GstQuery *query) {
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) {
    gst_query_set_latency(query, TRUE, 0, GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS(gst_tls_frame_src_parent_class)->query(bsrc, query);
}

// The rendition property: kept for the next connections, and asked for at
// once on a connection that is streaming (RENDITION_REQUEST; the switch
// shows as a tlsframesrc-rendition element message when it happens).
static void set_rendition(GstTlsFrameSrc *self, const std::string &rendition) {
  const std::string wanted = rendition.empty() ? DEFAULT_RENDITION : rendition;
  if (wanted != tlsframe::wire::kRenditionAuto && !tlsframe::wire::valid_rendition_name(wanted)) {
    GST_WARNING_OBJECT(self, "rendition \"%s\" ignored: \"auto\" or 1 to 64 of A-Z a-z 0-9 . _ -, "
                       "not starting with '.'", wanted.c_str());
    return;
  }
  {
    std::lock_guard<std::mutex> lock(self->priv->settings_lock);
    self->priv->settings.rendition = wanted;
  }
  std::shared_ptr<tlsframe::Receiver> receiver;
  {
    std::lock_guard<std::mutex> lock(self->priv->state_lock);
    receiver = self->priv->receiver;
  }
  if (!receiver) return;
  const tlsframe::SendStatus st = receiver->request_rendition(wanted);
  GST_DEBUG_OBJECT(self, "rendition \"%s\": %s", wanted.c_str(),
                   st == tlsframe::SendStatus::kQueued ? "asked for" : "applies from the next connection");
}

static void gst_tls_frame_src_set_property(GObject *object, guint prop_id, const GValue *value,
                                           GParamSpec *pspec) {
  auto *self = GST_TLS_FRAME_SRC(object);
  if (prop_id == PROP_URI) {
    GError *err = nullptr;
    if (!set_uri(self, g_value_get_string(value), &err)) {
      GST_WARNING_OBJECT(self, "uri not set: %s", err->message);
      g_clear_error(&err);
    }
    return;
  }
  if (prop_id == PROP_STREAM_NAME && !settable_now(self)) {
    GST_WARNING_OBJECT(self, "stream-name can only be changed in the NULL or READY state");
    return;
  }
  if (prop_id == PROP_RENDITION) {
    set_rendition(self, tlsframe::gst::string_from_value(value));
    return;
  }
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  Settings &s = self->priv->settings;
  auto str = [value]() { return tlsframe::gst::string_from_value(value); };
  switch (prop_id) {
    case PROP_STREAM_NAME:
      s.stream_name = str();
      break;
    case PROP_HOST:
      s.host = str();
      break;
    case PROP_PORT:
      s.port = g_value_get_int(value);
      break;
    case PROP_SERVER_NAME:
      s.server_name = str();
      break;
    case PROP_CA_FILE:
      s.ca_file = str();
      break;
    case PROP_CERT_FILE:
      s.cert_file = str();
      break;
    case PROP_KEY_FILE:
      s.key_file = str();
      break;
    case PROP_SERVER_FINGERPRINT:
      // Kept even when invalid: start() then fails with the reason, so a
      // mistyped pin never leaves the connection trusting something else.
      s.server_fingerprint = str();
      if (!s.server_fingerprint.empty()) {
        auto checked = tlsframe::tls::normalize_fingerprint(s.server_fingerprint);
        if (!checked) {
          GST_WARNING_OBJECT(self, "%s; the element will refuse to start",
                             checked.error().message.c_str());
        }
      }
      break;
    case PROP_MIN_TLS_VERSION:
      s.min_tls_version = static_cast<GstTlsFrameTlsVersion>(g_value_get_enum(value));
      break;
    case PROP_TIMEOUT:
      s.timeout = g_value_get_uint(value);
      break;
    case PROP_CONNECT_TIMEOUT:
      s.connect_timeout = g_value_get_uint(value);
      break;
    case PROP_MAX_MESSAGE_SIZE:
      s.max_message_size = g_value_get_uint(value);
      break;
    case PROP_RECONNECT:
      s.reconnect = g_value_get_boolean(value);
      break;
    case PROP_MAX_RECONNECT_INTERVAL:
      s.max_reconnect_interval = g_value_get_uint(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
}

static void gst_tls_frame_src_get_property(GObject *object, guint prop_id, GValue *value,
                                           GParamSpec *pspec) {
  auto *self = GST_TLS_FRAME_SRC(object);
  if (prop_id == PROP_URI) {
    g_value_set_string(value, current_uri(self).c_str());
    return;
  }
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  const Settings &s = self->priv->settings;
  auto set_str = [value](const std::string &v) {
    tlsframe::gst::value_set_string_or_null(value, v);
  };
  switch (prop_id) {
    case PROP_HOST:
      g_value_set_string(value, s.host.c_str());
      break;
    case PROP_PORT:
      g_value_set_int(value, s.port);
      break;
    case PROP_SERVER_NAME:
      set_str(s.server_name);
      break;
    case PROP_CA_FILE:
      set_str(s.ca_file);
      break;
    case PROP_CERT_FILE:
      set_str(s.cert_file);
      break;
    case PROP_KEY_FILE:
      set_str(s.key_file);
      break;
    case PROP_SERVER_FINGERPRINT:
      set_str(s.server_fingerprint);
      break;
    case PROP_MIN_TLS_VERSION:
      g_value_set_enum(value, s.min_tls_version);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint(value, s.timeout);
      break;
    case PROP_CONNECT_TIMEOUT:
      g_value_set_uint(value, s.connect_timeout);
      break;
    case PROP_MAX_MESSAGE_SIZE:
      g_value_set_uint(value, s.max_message_size);
      break;
    case PROP_RECONNECT:
      g_value_set_boolean(value, s.reconnect);
      break;
    case PROP_MAX_RECONNECT_INTERVAL:
      g_value_set_uint(value, s.max_reconnect_interval);
      break;
    case PROP_STREAM_NAME:
      g_value_set_string(value, s.stream_name.c_str());
      break;
    case PROP_RENDITION:
      g_value_set_string(value, s.rendition.c_str());
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
}

static void gst_tls_frame_src_finalize(GObject *object) {
  auto *self = GST_TLS_FRAME_SRC(object);
  delete self->priv;
  G_OBJECT_CLASS(gst_tls_frame_src_parent_class)->finalize(object);
}

static void gst_tls_frame_src_init(GstTlsFrameSrc *self) {
  self->priv = new Private();
  gst_base_src_set_live(GST_BASE_SRC(self), TRUE);
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
}

static void gst_tls_frame_src_class_init(GstTlsFrameSrcClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  auto *basesrc_class = GST_BASE_SRC_CLASS(klass);
  auto *pushsrc_class = GST_PUSH_SRC_CLASS(klass);

  gobject_class->set_property = gst_tls_frame_src_set_property;
  gobject_class->get_property = gst_tls_frame_src_get_property;
  gobject_class->finalize = gst_tls_frame_src_finalize;

  constexpr auto RW = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                               GST_PARAM_MUTABLE_READY);
  properties[PROP_HOST] =
      g_param_spec_string("host", "Host", "Server name or address to connect to", DEFAULT_HOST, RW);
  properties[PROP_PORT] =
      g_param_spec_int("port", "Port", "Server TCP port", 1, 65535, DEFAULT_PORT, RW);
  properties[PROP_SERVER_NAME] = g_param_spec_string(
      "server-name", "Server name",
      "Name (or address) the server certificate must match, also sent as SNI (unset = host)",
      nullptr, RW);
  properties[PROP_CA_FILE] = g_param_spec_string(
      "ca-file", "CA file",
      "PEM file with the CA certificates trusted for the server (unset = the system's trusted CAs)",
      nullptr, RW);
  properties[PROP_SERVER_FINGERPRINT] = g_param_spec_string(
      "server-fingerprint", "Server fingerprint",
      "SHA-256 fingerprint of the server's certificate (the leaf), 64 hex digits, colons "
      "optional, any case, as tlsframe serve prints it. When set, this pin is the trust: no "
      "ca-file is needed, and the chain and server name are not checked; with ca-file set too, "
      "both must hold. A mismatch is an element error naming both fingerprints, never retried "
      "(unset = no pin: ca-file or the system's trusted CAs, and the server name)",
      nullptr, RW);
  properties[PROP_CERT_FILE] = g_param_spec_string(
      "cert-file", "Certificate file",
      "PEM client certificate (chain) for servers that require mutual TLS (unset = none)", nullptr,
      RW);
  properties[PROP_KEY_FILE] =
      g_param_spec_string("key-file", "Key file", "PEM private key of cert-file", nullptr, RW);
  properties[PROP_MIN_TLS_VERSION] = g_param_spec_enum(
      "min-tls-version", "Minimum TLS version", "Oldest TLS protocol version accepted",
      GST_TYPE_TLS_FRAME_TLS_VERSION, DEFAULT_MIN_TLS_VERSION, RW);
  properties[PROP_TIMEOUT] = g_param_spec_uint(
      "timeout", "Timeout",
      "Seconds without any data from the server before the connection counts as lost (an "
      "element error, or a reconnect with reconnect=true; 0 = no timeout)",
      0, G_MAXUINT, DEFAULT_TIMEOUT, RW);
  properties[PROP_CONNECT_TIMEOUT] =
      g_param_spec_uint("connect-timeout", "Connect timeout",
                        "Seconds allowed to connect and complete the TLS handshake (0 = no limit)",
                        0, G_MAXUINT, DEFAULT_CONNECT_TIMEOUT, RW);
  properties[PROP_MAX_MESSAGE_SIZE] = g_param_spec_uint(
      "max-message-size", "Maximum message size",
      "Largest message accepted from the server, in bytes; larger is a protocol error", 64,
      1024u * 1024u * 1024u, DEFAULT_MAX_MESSAGE_SIZE, RW);
  properties[PROP_RECONNECT] = g_param_spec_boolean(
      "reconnect", "Reconnect",
      "On a lost connection, post a tlsframesrc-disconnected element message and reconnect with "
      "backoff instead of failing (certificate and settings errors always fail)",
      DEFAULT_RECONNECT, RW);
  properties[PROP_MAX_RECONNECT_INTERVAL] =
      g_param_spec_uint("max-reconnect-interval", "Maximum reconnect interval",
                        "Longest wait between reconnect attempts in milliseconds (the wait starts "
                        "at 100 and doubles)",
                        100, G_MAXUINT, DEFAULT_MAX_RECONNECT_INTERVAL, RW);
  properties[PROP_STREAM_NAME] = g_param_spec_string(
      "stream-name", "Stream name",
      "Named stream to receive from a protocol version 2 server: 1 to 64 of A-Z a-z 0-9 . _ -, "
      "not starting with '.' (empty = the server's default stream; a version 1 server has only "
      "that one). Changeable in NULL and READY only",
      DEFAULT_STREAM_NAME, RW);
  properties[PROP_RENDITION] = g_param_spec_string(
      "rendition", "Rendition",
      "Which rendition of a stream with several to receive (docs/PROTOCOL.md 8.12): \"auto\" = "
      "the server chooses from what it measures of this connection (down quickly when the link "
      "cannot carry it, up cautiously), or a rendition name the server's sinks have. Changeable "
      "while playing: the switch happens at the next keyframe of the new rendition (new caps, "
      "DISCONT on its first buffer) and posts a tlsframesrc-rendition element message. Ignored "
      "by streams without renditions",
      DEFAULT_RENDITION, static_cast<GParamFlags>(RW | GST_PARAM_MUTABLE_PLAYING));
  properties[PROP_URI] = g_param_spec_string(
      "uri", "URI",
      "tlsframe://HOST[:PORT][/NAME] (IPv6 as [addr], PORT 9999 when absent, no NAME = the "
      "default stream): sets host, port and stream-name. Changeable in NULL and READY only",
      "tlsframe://localhost:9999", RW);
  g_object_class_install_properties(gobject_class, PROP_LAST, properties);

  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(element_class, "TLS frame client source", "Source/Network",
                                        TLSFRAME_SRC_LONG_DESCRIPTION, "tlsframe developers");

  basesrc_class->start = GST_DEBUG_FUNCPTR(gst_tls_frame_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR(gst_tls_frame_src_stop);
  basesrc_class->query = GST_DEBUG_FUNCPTR(gst_tls_frame_src_query);
  basesrc_class->event = GST_DEBUG_FUNCPTR(gst_tls_frame_src_event);
  basesrc_class->unlock = GST_DEBUG_FUNCPTR(gst_tls_frame_src_unlock);
  basesrc_class->unlock_stop = GST_DEBUG_FUNCPTR(gst_tls_frame_src_unlock_stop);
  pushsrc_class->create = GST_DEBUG_FUNCPTR(gst_tls_frame_src_create);
}
