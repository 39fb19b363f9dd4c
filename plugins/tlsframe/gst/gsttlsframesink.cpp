// tlsframesink: GstBaseSink glue around tlsframe::Server.
//
// Threads: render()/event()/set_caps() run on the streaming thread and only
// post work to the server. client-added / client-removed (and notify::num-clients)
// are emitted in order from the element's signal thread (SignalDispatcher), with
// no element lock held, so a slow handler never delays a client and a handler
// may even stop the pipeline. start()/stop() run on the state-change thread.
#include "gst/gsttlsframesink.h"

#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/server.h"
#include "gst/common.h"
#include "gst/element_docs.h"
#include "gst/signal_dispatcher.h"

#define GST_CAT_DEFAULT tlsframe_sink_debug

namespace {

constexpr const char *DEFAULT_STREAM_NAME = "";  // the default stream (what v1 clients get)
constexpr const char *DEFAULT_RENDITION = "";    // the stream has one encoding
constexpr const char *DEFAULT_HOST = "0.0.0.0";
constexpr int DEFAULT_PORT = 9999;
constexpr gboolean DEFAULT_REQUIRE_CLIENT_CERT = FALSE;
constexpr gboolean DEFAULT_BROWSER = tlsframe::tls::kDefaultHttp;
constexpr GstTlsFrameTlsVersion DEFAULT_MIN_TLS_VERSION = GST_TLS_FRAME_TLS_VERSION_1_3;
constexpr guint DEFAULT_MAX_CLIENTS = 0;
constexpr guint64 DEFAULT_HANDSHAKE_TIMEOUT =
    std::chrono::nanoseconds(tlsframe::kDefaultHandshakeTimeout).count();
constexpr guint64 DEFAULT_TIMEOUT =
    std::chrono::nanoseconds(tlsframe::kDefaultClientTimeout).count();
constexpr guint DEFAULT_BUFFERS_MAX = 32;
constexpr guint64 DEFAULT_BYTES_MAX = guint64{32} * 1024 * 1024;
constexpr guint64 DEFAULT_TIME_MAX =
    std::chrono::nanoseconds(tlsframe::kDefaultQueueTimeMax).count();
constexpr guint DEFAULT_IO_THREADS = 0;  // one per CPU core (bench: +40% at 32 clients on 2 cores)
constexpr guint64 DEFAULT_FLUSH_TIMEOUT = 5 * GST_SECOND;
constexpr int DEFAULT_SEND_BUFFER_SIZE = tlsframe::kDefaultSendBufferSize;
constexpr guint DEFAULT_MAX_HANDSHAKES = tlsframe::kDefaultMaxHandshakes;
constexpr guint DEFAULT_MAX_HANDSHAKES_PER_ADDRESS = tlsframe::kDefaultMaxHandshakesPerAddress;
constexpr guint64 DEFAULT_HELLO_TIMEOUT =
    std::chrono::nanoseconds(tlsframe::kDefaultHelloTimeout).count();
constexpr guint64 DEFAULT_KEYFRAME_REQUEST_INTERVAL =
    std::chrono::nanoseconds(tlsframe::kDefaultKeyframeRequestInterval).count();
constexpr GstTlsFrameSinkSyncMethod DEFAULT_SYNC_METHOD =
    static_cast<GstTlsFrameSinkSyncMethod>(tlsframe::kDefaultSyncMethod);
constexpr guint64 DEFAULT_GOP_CACHE_BYTES_MAX = tlsframe::kDefaultGopCacheBytesMax;

static_assert(GST_TLS_FRAME_SINK_SYNC_METHOD_NEXT_KEYFRAME ==
              static_cast<int>(tlsframe::SyncMethod::kNextKeyframe));
static_assert(GST_TLS_FRAME_SINK_SYNC_METHOD_LATEST_KEYFRAME ==
              static_cast<int>(tlsframe::SyncMethod::kLatestKeyframe));

static_assert(GST_TLS_FRAME_CLIENT_STATUS_FORBIDDEN ==
              static_cast<int>(tlsframe::RemoveReason::kForbidden));
static_assert(GST_TLS_FRAME_CLIENT_STATUS_REVOKED ==
              static_cast<int>(tlsframe::RemoveReason::kRevoked));

enum {
  PROP_0,
  PROP_HOST,
  PROP_PORT,
  PROP_CURRENT_PORT,
  PROP_CERT_FILE,
  PROP_KEY_FILE,
  PROP_CA_FILE,
  PROP_REQUIRE_CLIENT_CERT,
  PROP_BROWSER,
  PROP_CRL_FILE,
  PROP_AUTHORIZED_CLIENTS,
  PROP_MIN_TLS_VERSION,
  PROP_MAX_CLIENTS,
  PROP_HANDSHAKE_TIMEOUT,
  PROP_TIMEOUT,
  PROP_BUFFERS_MAX,
  PROP_BYTES_MAX,
  PROP_TIME_MAX,
  PROP_IO_THREADS,
  PROP_FLUSH_TIMEOUT,
  PROP_SEND_BUFFER_SIZE,
  PROP_MAX_HANDSHAKES,
  PROP_MAX_HANDSHAKES_PER_ADDRESS,
  PROP_HELLO_TIMEOUT,
  PROP_KEYFRAME_REQUEST_INTERVAL,
  PROP_STREAM_NAME,
  PROP_RENDITION,
  PROP_SYNC_METHOD,
  PROP_GOP_CACHE_BYTES_MAX,
  PROP_NUM_CLIENTS,
  PROP_BYTES_SERVED,
  PROP_STATS,
  PROP_LAST
};

enum {
  SIGNAL_CLIENT_ADDED,
  SIGNAL_CLIENT_RENDITION_CHANGED,
  SIGNAL_CLIENT_REMOVED,
  SIGNAL_GET_STATS,
  SIGNAL_ACCEPT_CLIENT,
  SIGNAL_LAST
};

GParamSpec *properties[PROP_LAST];
guint signals[SIGNAL_LAST];

// Copied once at start(); changes while running apply at the next start,
// except cert-file/key-file/ca-file, which reload the TLS context (see reload_tls).
struct Settings {
  std::string stream_name = DEFAULT_STREAM_NAME;
  std::string rendition = DEFAULT_RENDITION;  // "" = the stream has one encoding
  std::string host = DEFAULT_HOST;
  int port = DEFAULT_PORT;
  std::string cert_file, key_file, ca_file;
  bool require_client_cert = DEFAULT_REQUIRE_CLIENT_CERT;
  bool browser = DEFAULT_BROWSER;  // ALPN http/1.1: the browser front
  std::string crl_file;                         // "" = no CRL
  std::vector<std::string> authorized_clients;  // empty = any client the CA accepts
  GstTlsFrameTlsVersion min_tls_version = DEFAULT_MIN_TLS_VERSION;
  guint max_clients = DEFAULT_MAX_CLIENTS;
  guint64 handshake_timeout = DEFAULT_HANDSHAKE_TIMEOUT;
  guint64 timeout = DEFAULT_TIMEOUT;
  guint buffers_max = DEFAULT_BUFFERS_MAX;
  guint64 bytes_max = DEFAULT_BYTES_MAX;
  guint64 time_max = DEFAULT_TIME_MAX;
  guint io_threads = DEFAULT_IO_THREADS;
  guint64 flush_timeout = DEFAULT_FLUSH_TIMEOUT;
  int send_buffer_size = DEFAULT_SEND_BUFFER_SIZE;
  guint max_handshakes = DEFAULT_MAX_HANDSHAKES;
  guint max_handshakes_per_address = DEFAULT_MAX_HANDSHAKES_PER_ADDRESS;
  guint64 hello_timeout = DEFAULT_HELLO_TIMEOUT;
  guint64 keyframe_request_interval = DEFAULT_KEYFRAME_REQUEST_INTERVAL;
  GstTlsFrameSinkSyncMethod sync_method = DEFAULT_SYNC_METHOD;
  guint64 gop_cache_bytes_max = DEFAULT_GOP_CACHE_BYTES_MAX;
};

struct Private {
  std::mutex settings_lock;  // protects settings
  Settings settings;
  std::mutex state_lock;  // protects server and dispatcher (the pointers)
  std::shared_ptr<tlsframe::Server> server;
  std::shared_ptr<tlsframe::gst::SignalDispatcher> dispatcher;  // emits client signals
  std::atomic<int> current_port{0};
  std::atomic<bool> keyframe_request_pending{false};
  std::atomic<guint> keyframe_requests{0};
};

}  // namespace

struct _GstTlsFrameSink {
  GstBaseSink parent;
  Private *priv;
};

G_DEFINE_TYPE(GstTlsFrameSink, gst_tls_frame_sink, GST_TYPE_BASE_SINK)

GType gst_tls_frame_sink_sync_method_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_TLS_FRAME_SINK_SYNC_METHOD_NEXT_KEYFRAME,
       "Serve starting from the next keyframe (asking upstream for one)", "next-keyframe"},
      {GST_TLS_FRAME_SINK_SYNC_METHOD_LATEST_KEYFRAME,
       "Serve everything since the latest keyframe (burst), then live", "latest-keyframe"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstTlsFrameSinkSyncMethod", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

static std::shared_ptr<tlsframe::Server> get_server(GstTlsFrameSink *self) {
  std::lock_guard<std::mutex> lock(self->priv->state_lock);
  return self->priv->server;
}

static GstStructure *client_stats_structure(const tlsframe::ClientStats &c) {
  return gst_structure_new(
      "tlsframesink-client-stats", "id", G_TYPE_UINT64, (guint64)c.info.id, "address",
      G_TYPE_STRING, c.info.address.c_str(), "subject", G_TYPE_STRING, c.info.subject.c_str(),
      "frames-sent", G_TYPE_UINT64, (guint64)c.frames_sent, "frames-dropped", G_TYPE_UINT64,
      (guint64)c.frames_dropped, "bytes-sent", G_TYPE_UINT64, (guint64)c.bytes_sent,
      "queue-buffers", G_TYPE_UINT64, (guint64)c.queue_buffers, "queue-bytes", G_TYPE_UINT64,
      (guint64)c.queue_bytes, "connected-seconds", G_TYPE_DOUBLE, c.connected_seconds, "last-error",
      G_TYPE_STRING, c.last_error.c_str(), "rendition", G_TYPE_STRING, c.rendition.c_str(),
      "rendition-auto", G_TYPE_BOOLEAN, c.rendition_auto, "switches-up", G_TYPE_UINT64,
      (guint64)c.switches_up, "switches-down", G_TYPE_UINT64, (guint64)c.switches_down,
      "last-reason", G_TYPE_STRING, c.rendition_reason.c_str(), "estimated-rate", G_TYPE_UINT64,
      (guint64)c.estimated_rate, nullptr);
}

static GstStructure *make_stats(GstTlsFrameSink *self) {
  auto server = get_server(self);
  tlsframe::ServerStats s = server ? server->stats() : tlsframe::ServerStats{};
  GstStructure *st = gst_structure_new(
      "tlsframesink-stats", "clients", G_TYPE_UINT64, (guint64)s.clients, "clients-total",
      G_TYPE_UINT64, (guint64)s.clients_total, "handshake-failures", G_TYPE_UINT64,
      (guint64)s.handshake_failures, "refused", G_TYPE_UINT64, (guint64)s.refused,
      "buffers-published", G_TYPE_UINT64, (guint64)s.buffers_published, "bytes-sent", G_TYPE_UINT64,
      (guint64)s.bytes_sent, "frames-dropped", G_TYPE_UINT64, (guint64)s.frames_dropped,
      "keyframe-requests", G_TYPE_UINT, self->priv->keyframe_requests.load(), nullptr);
  GValue list = G_VALUE_INIT;
  gst_value_array_init(&list, 0);
  if (server) {
    for (const auto &c : server->client_stats()) {
      GValue v = G_VALUE_INIT;
      g_value_init(&v, GST_TYPE_STRUCTURE);
      g_value_take_boxed(&v, client_stats_structure(c));
      gst_value_array_append_and_take_value(&list, &v);
    }
  }
  gst_structure_take_value(st, "client-stats", &list);
  return st;
}

static GstStructure *gst_tls_frame_sink_get_stats(GstTlsFrameSink *self, guint64 id) {
  auto server = get_server(self);
  if (!server) return nullptr;
  auto c = server->client_stats(id);
  return c ? client_stats_structure(*c) : nullptr;
}

// A certificate that loads but that clients will refuse (expired, not yet
// valid, not for server use): a warning at start or reload, not an error, so
// the operator sees it before the first client fails.
static void warn_if_certificate_refusable(GstTlsFrameSink *self, const std::string &cert_file) {
  std::string problem = tlsframe::tls::server_certificate_problem(cert_file);
  if (problem.empty()) return;
  GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS,
                      ("Clients will refuse the server certificate: %s.", problem.c_str()),
                      ("cert-file '%s'", cert_file.c_str()));
}

// ca-file alone asks clients for a certificate but serves those without one:
// say so, since an operator setting ca-file usually means to require one.
static void warn_if_client_certificates_optional(GstTlsFrameSink *self,
                                                 const tlsframe::tls::ServerTlsConfig &tls) {
  if (tls.ca_file.empty() || tls.require_client_cert) return;
  GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS,
                      ("ca-file is set but require-client-cert is false: client certificates "
                       "are optional, and clients without one are served. Set "
                       "require-client-cert=true to refuse them."),
                      ("ca-file '%s'", tls.ca_file.c_str()));
}

// crl-file holds a CRL past its next update: that CA's clients are refused
// until a current CRL is loaded. A warning at start and at every reload.
static void warn_if_crl_expired(GstTlsFrameSink *self, const std::string &crl_file) {
  if (crl_file.empty()) return;
  for (const std::string &problem : tlsframe::tls::expired_crls(crl_file)) {
    GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS,
                        ("crl-file: %s. Clients with certificates from that CA are refused until "
                         "a current CRL is loaded.",
                         problem.c_str()),
                        ("crl-file '%s'", crl_file.c_str()));
  }
}

static std::vector<std::string> strings_from_array(const GValue *value) {
  std::vector<std::string> out;
  const guint n = gst_value_array_get_size(value);
  for (guint i = 0; i < n; ++i) {
    const GValue *v = gst_value_array_get_value(value, i);
    if (G_VALUE_HOLDS_STRING(v) && g_value_get_string(v)) out.emplace_back(g_value_get_string(v));
  }
  return out;
}

static void array_from_strings(GValue *value, const std::vector<std::string> &strings) {
  for (const std::string &text : strings) {
    GValue v = G_VALUE_INIT;
    g_value_init(&v, G_TYPE_STRING);
    g_value_set_string(&v, text.c_str());
    gst_value_array_append_and_take_value(value, &v);
  }
}

static void structure_set_strings(GstStructure *st, const char *field,
                                  const std::vector<std::string> &strings) {
  GValue list = G_VALUE_INIT;
  gst_value_array_init(&list, static_cast<guint>(strings.size()));
  array_from_strings(&list, strings);
  gst_structure_take_value(st, field, &list);
}

// accept-client's info: the fields docs/ELEMENTS.md lists, all present
// (empty, and not-after NULL, for a client without a certificate).
static GstStructure *accept_client_info(const tlsframe::AcceptRequest &r) {
  const tlsframe::authz::Identity &id = r.identity;
  GstDateTime *not_after =
      id.present ? gst_date_time_new_from_unix_epoch_utc(id.not_after) : nullptr;
  GstStructure *st = gst_structure_new(
      "tlsframesink-client-info", "address", G_TYPE_STRING, r.address.c_str(), "stream-name",
      G_TYPE_STRING, r.stream_name.c_str(), "subject", G_TYPE_STRING, id.subject.c_str(), "issuer",
      G_TYPE_STRING, id.issuer.c_str(), "serial", G_TYPE_STRING, id.serial.c_str(), "sha256",
      G_TYPE_STRING, id.sha256.c_str(), nullptr);
  structure_set_strings(st, "dns-names", id.dns_names);
  structure_set_strings(st, "ip-addresses", id.ip_addresses);
  structure_set_strings(st, "uris", id.uris);
  structure_set_strings(st, "emails", id.emails);
  gst_structure_set(st, "not-after", GST_TYPE_DATE_TIME, not_after, nullptr);
  if (not_after) gst_date_time_unref(not_after);
  return st;
}

// Every handler must accept: the first FALSE ends the emission.
static gboolean accept_accumulator(GSignalInvocationHint *, GValue *return_accu,
                                   const GValue *handler_return, gpointer) {
  const gboolean accept = g_value_get_boolean(handler_return);
  g_value_set_boolean(return_accu, accept);
  return accept;
}

// The core's accept_client: called on an I/O thread, it only checks for a
// handler and hands the emission to the signal thread, whose answer goes
// back through decide. Nothing waits for it.
template <typename ElementRef>
static std::function<bool(const tlsframe::AcceptRequest &, tlsframe::AcceptDecision)>
accept_client_callback(GstTlsFrameSink *self,
                       const std::shared_ptr<tlsframe::gst::SignalDispatcher> &dispatcher,
                       ElementRef element_ref) {
  return [self, dispatcher, element_ref](const tlsframe::AcceptRequest &request,
                                         tlsframe::AcceptDecision decide) {
    if (!g_signal_has_handler_pending(self, signals[SIGNAL_ACCEPT_CLIENT], 0, FALSE)) return false;
    dispatcher->post([ref = element_ref(), request, decide = std::move(decide)] {
      GstStructure *info = accept_client_info(request);
      gboolean accept = FALSE;
      g_signal_emit(ref.get(), signals[SIGNAL_ACCEPT_CLIENT], 0, (guint64)request.id, info,
                    &accept);
      gst_structure_free(info);
      GST_DEBUG_OBJECT(ref.get(), "accept-client: client %" G_GUINT64_FORMAT " %s %s",
                       (guint64)request.id, request.address.c_str(),
                       accept ? "accepted" : "refused");
      decide(accept != FALSE);
    });
    return true;
  };
}

static void request_keyframe(GstElement *element, gpointer) {
  auto *self = GST_TLS_FRAME_SINK(element);
  self->priv->keyframe_request_pending = false;
  self->priv->keyframe_requests++;
  GST_DEBUG_OBJECT(self, "a client joined a delta-unit stream: asking upstream for a keyframe");
  GstEvent *event = gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE,
                                                                self->priv->keyframe_requests);
  gst_pad_push_event(GST_BASE_SINK_PAD(self), event);
}

static gboolean gst_tls_frame_sink_start(GstBaseSink *bsink) {
  auto *self = GST_TLS_FRAME_SINK(bsink);
  tlsframe::ServerConfig config;
  {
    std::lock_guard<std::mutex> lock(self->priv->settings_lock);
    const Settings &s = self->priv->settings;
    config.stream_name = s.stream_name;
    config.rendition = s.rendition;
    config.host = s.host;
    config.port = static_cast<uint16_t>(s.port);
    config.tls.cert_file = s.cert_file;
    config.tls.key_file = s.key_file;
    config.tls.ca_file = s.ca_file;
    config.tls.require_client_cert = s.require_client_cert;
    config.tls.http = s.browser;
    config.tls.min_version = tlsframe::gst::to_core_version(s.min_tls_version);
    config.tls.crl_file = s.crl_file;
    config.authorized_clients = s.authorized_clients;
    config.max_clients = s.max_clients;
    config.handshake_timeout = std::chrono::nanoseconds(s.handshake_timeout);
    config.client_timeout = std::chrono::nanoseconds(s.timeout);
    config.queue_max_buffers = s.buffers_max;
    config.queue_max_bytes = s.bytes_max;
    config.queue_max_time = std::chrono::nanoseconds(s.time_max);
    config.send_buffer_size = s.send_buffer_size;
    config.max_handshakes = s.max_handshakes;
    config.max_handshakes_per_address = s.max_handshakes_per_address;
    config.hello_timeout = std::chrono::nanoseconds(s.hello_timeout);
    config.keyframe_request_interval = std::chrono::nanoseconds(s.keyframe_request_interval);
    config.sync_method = static_cast<tlsframe::SyncMethod>(s.sync_method);
    config.gop_cache_bytes_max = s.gop_cache_bytes_max;
    config.io_threads =
        s.io_threads ? s.io_threads : std::max(1u, std::thread::hardware_concurrency());
  }

  tlsframe::ServerCallbacks cb;
  // The callbacks run on I/O threads and only hand the signal to the dispatcher;
  // each queued call holds a reference on the element until it has run.
  auto dispatcher = std::make_shared<tlsframe::gst::SignalDispatcher>();
  auto element_ref = [self]() {
    return std::shared_ptr<GstTlsFrameSink>(GST_TLS_FRAME_SINK(gst_object_ref(self)),
                                            [](GstTlsFrameSink *e) { gst_object_unref(e); });
  };
  cb.client_added = [dispatcher, element_ref](const tlsframe::ClientInfo &c) {
    dispatcher->post([ref = element_ref(), c] {
      g_signal_emit(ref.get(), signals[SIGNAL_CLIENT_ADDED], 0, (guint64)c.id, c.address.c_str(),
                    c.subject.c_str());
      g_object_notify_by_pspec(G_OBJECT(ref.get()), properties[PROP_NUM_CLIENTS]);
    });
  };
  cb.rendition_changed = [dispatcher, element_ref](const tlsframe::ClientInfo &c,
                                                   const tlsframe::RenditionChange &ch) {
    dispatcher->post([ref = element_ref(), c, ch] {
      g_signal_emit(ref.get(), signals[SIGNAL_CLIENT_RENDITION_CHANGED], 0, (guint64)c.id,
                    ch.from.c_str(), ch.to.c_str(), ch.reason.c_str());
    });
  };
  cb.client_removed = [dispatcher, element_ref](const tlsframe::ClientInfo &c,
                                                tlsframe::RemoveReason r,
                                                const std::string &error) {
    dispatcher->post([ref = element_ref(), c, r, error] {
      if (r == tlsframe::RemoveReason::kError || r == tlsframe::RemoveReason::kProtocol ||
          r == tlsframe::RemoveReason::kTimeout) {
        GST_WARNING_OBJECT(ref.get(), "client %" G_GUINT64_FORMAT " %s removed: %s", (guint64)c.id,
                           c.address.c_str(), error.c_str());
      }
      g_signal_emit(ref.get(), signals[SIGNAL_CLIENT_REMOVED], 0, (guint64)c.id, c.address.c_str(),
                    static_cast<GstTlsFrameClientStatus>(r), error.c_str());
      g_object_notify_by_pspec(G_OBJECT(ref.get()), properties[PROP_NUM_CLIENTS]);
    });
  };
  cb.keyframe_wanted = [self]() {
    if (!self->priv->keyframe_request_pending.exchange(true)) {
      gst_element_call_async(GST_ELEMENT(self), request_keyframe, nullptr, nullptr);
    }
  };
  cb.handshake_failed = [self](const std::string &address, const tlsframe::Error &e) {
    GST_INFO_OBJECT(self, "handshake with %s failed: %s (%s)", address.c_str(), e.message.c_str(),
                    e.detail.c_str());
  };

  cb.accept_client = accept_client_callback(self, dispatcher, element_ref);

  auto started = tlsframe::Server::start(config, std::move(cb));
  if (!started) {
    dispatcher->stop();
    TLSFRAME_ELEMENT_ERROR(self, started.error());
    return FALSE;
  }
  std::shared_ptr<tlsframe::Server> server(std::move(started.value()));
  self->priv->current_port = server->port();
  {
    std::lock_guard<std::mutex> lock(self->priv->state_lock);
    self->priv->server = std::move(server);
    self->priv->dispatcher = std::move(dispatcher);
  }
  GST_INFO_OBJECT(self, "listening on %s port %d", config.host.c_str(),
                  self->priv->current_port.load());
  warn_if_certificate_refusable(self, config.tls.cert_file);
  warn_if_client_certificates_optional(self, config.tls);
  warn_if_crl_expired(self, config.tls.crl_file);
  g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_CURRENT_PORT]);
  return TRUE;
}

static gboolean gst_tls_frame_sink_stop(GstBaseSink *bsink) {
  auto *self = GST_TLS_FRAME_SINK(bsink);
  std::shared_ptr<tlsframe::Server> server;
  std::shared_ptr<tlsframe::gst::SignalDispatcher> dispatcher;
  {
    std::lock_guard<std::mutex> lock(self->priv->state_lock);
    server.swap(self->priv->server);
    dispatcher.swap(self->priv->dispatcher);
  }
  // Stopped outside the lock: client-removed handlers may read properties.
  if (server) server->stop();
  server.reset();
  // Emits the last client-removed signals (from the server's stop) before returning,
  // unless stop() runs inside one of those handlers.
  if (dispatcher) dispatcher->stop();
  self->priv->current_port = 0;
  GST_INFO_OBJECT(self, "stopped");
  return TRUE;
}

// unlock/unlock_stop: only the EOS flush ever waits, so that is what they interrupt.
static gboolean gst_tls_frame_sink_unlock(GstBaseSink *bsink) {
  auto server = get_server(GST_TLS_FRAME_SINK(bsink));
  if (server) server->abort_flush();
  return TRUE;
}

static gboolean gst_tls_frame_sink_unlock_stop(GstBaseSink *bsink) {
  auto server = get_server(GST_TLS_FRAME_SINK(bsink));
  if (server) server->clear_abort_flush();
  return TRUE;
}

static gboolean gst_tls_frame_sink_set_caps(GstBaseSink *bsink, GstCaps *caps) {
  auto *self = GST_TLS_FRAME_SINK(bsink);
  auto server = get_server(self);
  if (!server) return FALSE;
  gchar *text = gst_caps_to_string(caps);
  GST_DEBUG_OBJECT(self, "caps %s", text);
  // The decoder's own checks: never send caps a tlsframesrc would refuse (the
  // string GStreamer serializes may nest deeper than the one upstream gave).
  tlsframe::wire::DecodeResult checked = tlsframe::wire::check_caps(text);
  if (checked.status != tlsframe::wire::DecodeStatus::kMessage) {
    GST_ELEMENT_ERROR(self, STREAM, FORMAT,
                      ("The stream's caps cannot be sent to clients: %s.", checked.error.c_str()),
                      ("caps: %.200s", text));
    g_free(text);
    return FALSE;
  }
  server->publish_caps(text);
  g_free(text);
  return TRUE;
}

namespace {
// A buffer kept mapped for as long as a client queue holds it.
struct MappedBuffer {
  GstBuffer *buffer;
  GstMapInfo map;
  ~MappedBuffer() {
    gst_buffer_unmap(buffer, &map);
    gst_buffer_unref(buffer);
  }
};
}  // namespace

static GstFlowReturn gst_tls_frame_sink_render(GstBaseSink *bsink, GstBuffer *buffer) {
  auto *self = GST_TLS_FRAME_SINK(bsink);
  auto server = get_server(self);
  if (!server) return GST_FLOW_FLUSHING;
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) {
    GST_ELEMENT_ERROR(self, RESOURCE, READ, ("Could not read a buffer's memory."), (nullptr));
    return GST_FLOW_ERROR;
  }
  if (map.size > UINT32_MAX - tlsframe::wire::kBufferMetaSize) {
    gst_buffer_unmap(buffer, &map);
    GST_ELEMENT_ERROR(self, STREAM, TOO_LAZY, ("Buffer too large to send (%zu bytes).", map.size),
                      (nullptr));
    return GST_FLOW_ERROR;
  }
  tlsframe::wire::BufferMeta meta;
  meta.pts = GST_BUFFER_PTS(buffer);
  meta.dts = GST_BUFFER_DTS(buffer);
  meta.duration = GST_BUFFER_DURATION(buffer);
  meta.flags = tlsframe::gst::wire_flags_from_buffer(buffer);
  GST_LOG_OBJECT(self, "render %" GST_PTR_FORMAT, buffer);
  if (buffer->pool) {
    // A pooled buffer (e.g. a camera's) goes back to its pool now: slow
    // clients must not hold the pool's few buffers and stall the source.
    server->publish_buffer(meta, map.data, map.size);
    gst_buffer_unmap(buffer, &map);
  } else {
    // Zero copy: every client queue shares the mapped buffer until written.
    auto mapped = std::shared_ptr<MappedBuffer>(new MappedBuffer{gst_buffer_ref(buffer), map});
    server->publish_buffer(meta, map.data, map.size, mapped);
  }
  return GST_FLOW_OK;
}

static gboolean gst_tls_frame_sink_event(GstBaseSink *bsink, GstEvent *event) {
  auto *self = GST_TLS_FRAME_SINK(bsink);
  if (GST_EVENT_TYPE(event) == GST_EVENT_TAG) {
    // The encoder's rate setting (x264enc, vp8enc... post it) ranks this
    // rendition among the stream's others; what it publishes may be far
    // below it (a still picture), and would rank them by chance.
    GstTagList *tags = nullptr;
    gst_event_parse_tag(event, &tags);
    guint rate = 0;
    if (tags && (gst_tag_list_get_uint(tags, GST_TAG_NOMINAL_BITRATE, &rate) ||
                 gst_tag_list_get_uint(tags, GST_TAG_BITRATE, &rate)) &&
        rate != 0) {
      if (auto server = get_server(self)) {
        GST_DEBUG_OBJECT(self, "encoder rate from tags: %u bit/s", rate);
        server->declare_rate(rate);
      }
    }
  }
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    auto server = get_server(self);
    guint64 timeout;
    {
      std::lock_guard<std::mutex> lock(self->priv->settings_lock);
      timeout = self->priv->settings.flush_timeout;
    }
    if (server) {
      // At most a day: chrono waits overflow on values near the 64-bit range.
      constexpr guint64 kMaxWait = guint64{24} * 3600 * GST_SECOND;
      bool all = server->publish_eos_and_flush(
          std::chrono::milliseconds(std::min(timeout, kMaxWait) / GST_MSECOND));
      if (!all) GST_WARNING_OBJECT(self, "EOS: not every client was flushed in time");
    }
  }
  return GST_BASE_SINK_CLASS(gst_tls_frame_sink_parent_class)->event(bsink, event);
}

static bool settable_now(GstTlsFrameSink *self) {
  GST_OBJECT_LOCK(self);
  bool ok = GST_STATE(self) <= GST_STATE_READY && GST_STATE_NEXT(self) <= GST_STATE_READY;
  GST_OBJECT_UNLOCK(self);
  return ok;
}

static void gst_tls_frame_sink_set_property(GObject *object, guint prop_id, const GValue *value,
                                            GParamSpec *pspec) {
  auto *self = GST_TLS_FRAME_SINK(object);
  if (prop_id == PROP_STREAM_NAME && !settable_now(self)) {
    GST_WARNING_OBJECT(self, "stream-name can only be changed in the NULL or READY state");
    return;
  }
  if (prop_id == PROP_RENDITION && !settable_now(self)) {
    GST_WARNING_OBJECT(self, "rendition can only be changed in the NULL or READY state");
    return;
  }
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  Settings &s = self->priv->settings;
  auto str = [value]() { return tlsframe::gst::string_from_value(value); };
  switch (prop_id) {
    case PROP_STREAM_NAME:
      s.stream_name = str();
      break;
    case PROP_RENDITION:
      s.rendition = str();
      break;
    case PROP_HOST:
      s.host = str();
      break;
    case PROP_PORT:
      s.port = g_value_get_int(value);
      break;
    case PROP_CERT_FILE:
      s.cert_file = str();
      break;
    case PROP_KEY_FILE:
      s.key_file = str();
      break;
    case PROP_CA_FILE:
      s.ca_file = str();
      break;
    case PROP_REQUIRE_CLIENT_CERT:
      s.require_client_cert = g_value_get_boolean(value);
      break;
    case PROP_BROWSER:
      s.browser = g_value_get_boolean(value);
      break;
    case PROP_CRL_FILE:
      s.crl_file = str();
      break;
    case PROP_AUTHORIZED_CLIENTS:
      s.authorized_clients = strings_from_array(value);
      break;
      break;
    case PROP_MIN_TLS_VERSION:
      s.min_tls_version = static_cast<GstTlsFrameTlsVersion>(g_value_get_enum(value));
      break;
    case PROP_MAX_CLIENTS:
      s.max_clients = g_value_get_uint(value);
      break;
    case PROP_HANDSHAKE_TIMEOUT:
      s.handshake_timeout = g_value_get_uint64(value);
      break;
    case PROP_TIMEOUT:
      s.timeout = g_value_get_uint64(value);
      break;
    case PROP_BUFFERS_MAX:
      s.buffers_max = g_value_get_uint(value);
      break;
    case PROP_BYTES_MAX:
      s.bytes_max = g_value_get_uint64(value);
      break;
    case PROP_TIME_MAX:
      s.time_max = g_value_get_uint64(value);
      break;
    case PROP_IO_THREADS:
      s.io_threads = g_value_get_uint(value);
      break;
    case PROP_FLUSH_TIMEOUT:
      s.flush_timeout = g_value_get_uint64(value);
      break;
    case PROP_SEND_BUFFER_SIZE:
      s.send_buffer_size = g_value_get_int(value);
      break;
    case PROP_MAX_HANDSHAKES:
      s.max_handshakes = g_value_get_uint(value);
      break;
    case PROP_MAX_HANDSHAKES_PER_ADDRESS:
      s.max_handshakes_per_address = g_value_get_uint(value);
      break;
    case PROP_HELLO_TIMEOUT:
      s.hello_timeout = g_value_get_uint64(value);
      break;
    case PROP_KEYFRAME_REQUEST_INTERVAL:
      s.keyframe_request_interval = g_value_get_uint64(value);
      break;
    case PROP_SYNC_METHOD:
      s.sync_method = static_cast<GstTlsFrameSinkSyncMethod>(g_value_get_enum(value));
      break;
    case PROP_GOP_CACHE_BYTES_MAX:
      s.gop_cache_bytes_max = g_value_get_uint64(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
}

// cert-file, key-file or ca-file changed while the server runs: new handshakes
// use the new files, connected clients are untouched. Runs once per
// g_object_set() (after all its properties are set), so a certificate and its
// key set together are loaded together. A bad set keeps the old context.
static void reload_tls(GstTlsFrameSink *self) {
  auto server = get_server(self);
  if (!server) return;  // not running: the next start() reads the files
  tlsframe::tls::ServerTlsConfig tls;
  {
    std::lock_guard<std::mutex> lock(self->priv->settings_lock);
    const Settings &s = self->priv->settings;
    tls.cert_file = s.cert_file;
    tls.key_file = s.key_file;
    tls.ca_file = s.ca_file;
    tls.require_client_cert = s.require_client_cert;
    tls.http = s.browser;
    tls.min_version = tlsframe::gst::to_core_version(s.min_tls_version);
    tls.crl_file = s.crl_file;
  }
  tlsframe::Status st = server->reload_tls(tls);
  if (!st) {
    GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS,
                        ("Could not reload the TLS certificate; new clients still get the "
                         "previous one: %s",
                         st.error().message.c_str()),
                        ("%s", st.error().detail.c_str()));
    return;
  }
  GST_INFO_OBJECT(self, "TLS certificate reloaded from %s", tls.cert_file.c_str());
  warn_if_certificate_refusable(self, tls.cert_file);
  warn_if_client_certificates_optional(self, tls);
  warn_if_crl_expired(self, tls.crl_file);
}

static void gst_tls_frame_sink_dispatch_properties_changed(GObject *object, guint n_pspecs,
                                                           GParamSpec **pspecs) {
  bool tls_changed = false;
  for (guint i = 0; i < n_pspecs; ++i) {
    tls_changed = tls_changed || pspecs[i] == properties[PROP_CERT_FILE] ||
                  pspecs[i] == properties[PROP_KEY_FILE] || pspecs[i] == properties[PROP_CA_FILE] ||
                  pspecs[i] == properties[PROP_CRL_FILE];
  }
  if (tls_changed) reload_tls(GST_TLS_FRAME_SINK(object));
  G_OBJECT_CLASS(gst_tls_frame_sink_parent_class)
      ->dispatch_properties_changed(object, n_pspecs, pspecs);
}

static void gst_tls_frame_sink_get_property(GObject *object, guint prop_id, GValue *value,
                                            GParamSpec *pspec) {
  auto *self = GST_TLS_FRAME_SINK(object);
  switch (prop_id) {
    case PROP_CURRENT_PORT:
      g_value_set_int(value, self->priv->current_port.load());
      return;
    case PROP_NUM_CLIENTS: {
      auto server = get_server(self);
      g_value_set_uint(value, server ? static_cast<guint>(server->num_clients()) : 0);
      return;
    }
    case PROP_BYTES_SERVED: {
      auto server = get_server(self);
      g_value_set_uint64(value, server ? server->stats().bytes_sent : 0);
      return;
    }
    case PROP_STATS:
      g_value_take_boxed(value, make_stats(self));
      return;
    default:
      break;
  }
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  const Settings &s = self->priv->settings;
  switch (prop_id) {
    case PROP_STREAM_NAME:
      g_value_set_string(value, s.stream_name.c_str());
      break;
    case PROP_RENDITION:
      g_value_set_string(value, s.rendition.c_str());
      break;
    case PROP_HOST:
      g_value_set_string(value, s.host.c_str());
      break;
    case PROP_PORT:
      g_value_set_int(value, s.port);
      break;
    case PROP_CERT_FILE:
      tlsframe::gst::value_set_string_or_null(value, s.cert_file);
      break;
    case PROP_KEY_FILE:
      tlsframe::gst::value_set_string_or_null(value, s.key_file);
      break;
    case PROP_CA_FILE:
      tlsframe::gst::value_set_string_or_null(value, s.ca_file);
      break;
    case PROP_REQUIRE_CLIENT_CERT:
      g_value_set_boolean(value, s.require_client_cert);
      break;
    case PROP_BROWSER:
      g_value_set_boolean(value, s.browser);
      break;
    case PROP_CRL_FILE:
      tlsframe::gst::value_set_string_or_null(value, s.crl_file);
      break;
    case PROP_AUTHORIZED_CLIENTS:
      array_from_strings(value, s.authorized_clients);
      break;
      break;
    case PROP_MIN_TLS_VERSION:
      g_value_set_enum(value, s.min_tls_version);
      break;
    case PROP_MAX_CLIENTS:
      g_value_set_uint(value, s.max_clients);
      break;
    case PROP_HANDSHAKE_TIMEOUT:
      g_value_set_uint64(value, s.handshake_timeout);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint64(value, s.timeout);
      break;
    case PROP_BUFFERS_MAX:
      g_value_set_uint(value, s.buffers_max);
      break;
    case PROP_BYTES_MAX:
      g_value_set_uint64(value, s.bytes_max);
      break;
    case PROP_TIME_MAX:
      g_value_set_uint64(value, s.time_max);
      break;
    case PROP_IO_THREADS:
      g_value_set_uint(value, s.io_threads);
      break;
    case PROP_FLUSH_TIMEOUT:
      g_value_set_uint64(value, s.flush_timeout);
      break;
    case PROP_SEND_BUFFER_SIZE:
      g_value_set_int(value, s.send_buffer_size);
      break;
    case PROP_MAX_HANDSHAKES:
      g_value_set_uint(value, s.max_handshakes);
      break;
    case PROP_MAX_HANDSHAKES_PER_ADDRESS:
      g_value_set_uint(value, s.max_handshakes_per_address);
      break;
    case PROP_HELLO_TIMEOUT:
      g_value_set_uint64(value, s.hello_timeout);
      break;
    case PROP_KEYFRAME_REQUEST_INTERVAL:
      g_value_set_uint64(value, s.keyframe_request_interval);
      break;
    case PROP_SYNC_METHOD:
      g_value_set_enum(value, s.sync_method);
      break;
    case PROP_GOP_CACHE_BYTES_MAX:
      g_value_set_uint64(value, s.gop_cache_bytes_max);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
}

static void gst_tls_frame_sink_finalize(GObject *object) {
  auto *self = GST_TLS_FRAME_SINK(object);
  delete self->priv;
  G_OBJECT_CLASS(gst_tls_frame_sink_parent_class)->finalize(object);
}

static void gst_tls_frame_sink_init(GstTlsFrameSink *self) {
  self->priv = new Private();
}

static void gst_tls_frame_sink_class_init(GstTlsFrameSinkClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  auto *basesink_class = GST_BASE_SINK_CLASS(klass);

  gobject_class->set_property = gst_tls_frame_sink_set_property;
  gobject_class->get_property = gst_tls_frame_sink_get_property;
  gobject_class->finalize = gst_tls_frame_sink_finalize;
  gobject_class->dispatch_properties_changed = gst_tls_frame_sink_dispatch_properties_changed;

  constexpr auto RW = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                               GST_PARAM_MUTABLE_READY);
  constexpr auto RO = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  // Certificate files: changeable while running (reloaded for new handshakes).
  constexpr auto RW_TLS = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                   GST_PARAM_MUTABLE_PLAYING);

  properties[PROP_STREAM_NAME] = g_param_spec_string(
      "stream-name", "Stream name",
      "Name protocol version 2 clients ask for this stream by: 1 to 64 of A-Z a-z 0-9 . _ -, not "
      "starting with '.' (empty = the default stream, the one version 1 clients get). Sinks in "
      "one process with the same host and a fixed port share one listener: each needs its own "
      "name there, and their listener settings (certificates, timeouts, limits, io-threads) must "
      "agree. Changeable in NULL and READY only",
      DEFAULT_STREAM_NAME, RW);
  properties[PROP_RENDITION] = g_param_spec_string(
      "rendition", "Rendition",
      "This sink's encoding of its stream when the stream has several (e.g. \"720p\", \"360p\"): "
      "sinks with the same host, fixed port and stream-name and different rendition names form "
      "one stream, each viewer getting one rendition at a time (its choice, or the server's from "
      "what it measures of the connection). Renditions rank by their encoder's nominal-bitrate "
      "tag (else by the rate published), the larger picture first among equal rates. Same rule "
      "as stream-name, and not \"auto\"; empty = the stream has one encoding. Changeable in "
      "NULL and READY only",
      DEFAULT_RENDITION, RW);
  properties[PROP_HOST] = g_param_spec_string(
      "host", "Host",
      "Address or name to listen on (\"0.0.0.0\" = every IPv4 interface, \"::\" = every interface)",
      DEFAULT_HOST, RW);
  properties[PROP_PORT] = g_param_spec_int(
      "port", "Port",
      "TCP port to listen on (0 = any free port; read current-port for the one chosen)", 0, 65535,
      DEFAULT_PORT, RW);
  properties[PROP_CURRENT_PORT] = g_param_spec_int(
      "current-port", "Current port",
      "The port the server is bound to (valid from PAUSED; 0 when not listening)", 0, 65535, 0, RO);
  properties[PROP_CERT_FILE] = g_param_spec_string(
      "cert-file", "Certificate file",
      "PEM file with the server certificate, then any intermediate CA certificates (required; "
      "set while running, it applies to new clients)",
      nullptr, RW_TLS);
  properties[PROP_KEY_FILE] = g_param_spec_string(
      "key-file", "Key file",
      "PEM file with the private key of cert-file (required; set it with cert-file in one "
      "g_object_set() to replace both while running)",
      nullptr, RW_TLS);
  properties[PROP_CA_FILE] =
      g_param_spec_string("ca-file", "CA file",
                          "PEM file with the CA certificates trusted for client certificates "
                          "(unset = clients are not asked for one; set while running, it "
                          "applies to new clients)",
                          nullptr, RW_TLS);
  properties[PROP_REQUIRE_CLIENT_CERT] = g_param_spec_boolean(
      "require-client-cert", "Require client certificate",
      "Mutual TLS: refuse clients without a certificate signed by a CA in ca-file",
      DEFAULT_REQUIRE_CLIENT_CERT, RW);
  properties[PROP_BROWSER] = g_param_spec_boolean(
      "browser", "Browser front",
      "Serve browsers on the same port (clients offering ALPN http/1.1): viewer pages at / and "
      "/watch/NAME, the stream over a secure WebSocket, /streams.json, /mjpeg/NAME for JPEG. "
      "Browsers are clients like any other (limits, require-client-cert, authorization). "
      "FALSE = refuse http/1.1 in the handshake. Sinks sharing a port must agree",
      DEFAULT_BROWSER, RW);
  properties[PROP_CRL_FILE] = g_param_spec_string(
      "crl-file", "CRL file",
      "PEM file with certificate revocation lists (one or more) checked for client "
      "certificates; needs ca-file, and a client whose CA has no CRL in it is refused. A CRL "
      "past its next update refuses that CA's clients and gives a warning (unset = no "
      "revocation check; set while running, it applies to new clients, and connected clients "
      "it revokes get ERROR REVOKED and are closed)",
      nullptr, RW_TLS);
  properties[PROP_AUTHORIZED_CLIENTS] = gst_param_spec_array(
      "authorized-clients", "Authorized clients",
      "Client certificates allowed to watch this stream: any of CN=NAME, DNS:NAME, URI:URI, "
      "email:ADDRESS, sha256:FINGERPRINT (hex, colons optional), e.g. "
      "<\"CN=alice\", \"DNS:door.lan\">. Others get ERROR FORBIDDEN after the handshake "
      "(client-removed status forbidden). Needs require-client-cert=true (empty = any client "
      "the CA accepts). Per stream",
      g_param_spec_string("identity", "Identity", "One rule, e.g. CN=alice", nullptr,
                          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS)),
      RW);
  properties[PROP_MIN_TLS_VERSION] = g_param_spec_enum(
      "min-tls-version", "Minimum TLS version", "Oldest TLS protocol version accepted from clients",
      GST_TYPE_TLS_FRAME_TLS_VERSION, DEFAULT_MIN_TLS_VERSION, RW);
  properties[PROP_MAX_CLIENTS] = g_param_spec_uint(
      "max-clients", "Maximum clients",
      "Most clients served at once; more are told the server is full and closed (0 = unlimited)", 0,
      G_MAXUINT, DEFAULT_MAX_CLIENTS, RW);
  properties[PROP_HANDSHAKE_TIMEOUT] =
      g_param_spec_uint64("handshake-timeout", "Handshake timeout",
                          "Nanoseconds a client may take to complete the TLS handshake before it "
                          "is dropped (0 = no limit)",
                          0, G_MAXINT64, DEFAULT_HANDSHAKE_TIMEOUT, RW);
  properties[PROP_TIMEOUT] =
      g_param_spec_uint64("timeout", "Timeout",
                          "Nanoseconds a write to a client may make no progress (no byte taken) "
                          "before the client is dropped: bounds what a client that stops reading "
                          "holds. Also how soon a client whose host vanished without closing the "
                          "connection is dropped, on a silent stream too (TCP keepalive and "
                          "TCP_USER_TIMEOUT) (0 = no limit)",
                          0, G_MAXINT64, DEFAULT_TIMEOUT, RW);
  properties[PROP_BUFFERS_MAX] = g_param_spec_uint(
      "buffers-max", "Maximum queued buffers",
      "Buffers queued per client; beyond it that client alone skips to the next keyframe", 1,
      G_MAXINT, DEFAULT_BUFFERS_MAX, RW);
  properties[PROP_BYTES_MAX] = g_param_spec_uint64(
      "bytes-max", "Maximum queued bytes",
      "Bytes queued per client; beyond it that client alone skips to the next keyframe", 1,
      G_MAXUINT64, DEFAULT_BYTES_MAX, RW);
  properties[PROP_TIME_MAX] = g_param_spec_uint64(
      "time-max", "Maximum queued time",
      "Nanoseconds a buffer may wait for a client, from its render: an older one is not sent. "
      "That client alone drops its oldest buffers (on a delta-unit stream up to the next "
      "keyframe, which is asked for), so its latency stays near this bound under overload "
      "(0 = no bound)",
      0, G_MAXINT64, DEFAULT_TIME_MAX, RW);
  properties[PROP_IO_THREADS] = g_param_spec_uint(
      "io-threads", "I/O threads",
      "Threads doing TLS and socket writes for all clients (0 = one per CPU core)", 0, 256,
      DEFAULT_IO_THREADS, RW);
  properties[PROP_FLUSH_TIMEOUT] = g_param_spec_uint64(
      "flush-timeout", "Flush timeout",
      "Nanoseconds EOS waits for every client to receive what is queued before the sink posts EOS",
      0, G_MAXINT64, DEFAULT_FLUSH_TIMEOUT, RW);
  properties[PROP_SEND_BUFFER_SIZE] = g_param_spec_int(
      "send-buffer-size", "Send buffer size",
      "Kernel send buffer per client in bytes (SO_SNDBUF; Linux doubles it): caps the kernel "
      "memory and latency of a slow client beyond buffers-max/bytes-max (0 = kernel default, "
      "autotuned up to net.ipv4.tcp_wmem's maximum, 4 MB by default)",
      0, G_MAXINT, DEFAULT_SEND_BUFFER_SIZE, RW);
  properties[PROP_MAX_HANDSHAKES] = g_param_spec_uint(
      "max-handshakes", "Maximum handshakes",
      "Connections in their TLS handshake at once, from all addresses; more are closed at once. "
      "Clamped at start to half the process's open-file limit (the value used is logged)",
      1, G_MAXUINT, DEFAULT_MAX_HANDSHAKES, RW);
  properties[PROP_MAX_HANDSHAKES_PER_ADDRESS] = g_param_spec_uint(
      "max-handshakes-per-address", "Maximum handshakes per address",
      "Connections in their TLS handshake at once from one address (an IPv6 /64 counts as one); "
      "more from it are closed at once, so one address cannot take every handshake slot "
      "(0 = no per-address limit)",
      0, G_MAXUINT, DEFAULT_MAX_HANDSHAKES_PER_ADDRESS, RW);
  properties[PROP_HELLO_TIMEOUT] = g_param_spec_uint64(
      "hello-timeout", "Hello timeout",
      "Nanoseconds a new connection may take to send the first byte of its TLS ClientHello "
      "before it is closed; handshake-timeout still bounds the whole handshake (0 = no limit)",
      0, G_MAXINT64, DEFAULT_HELLO_TIMEOUT, RW);
  properties[PROP_KEYFRAME_REQUEST_INTERVAL] = g_param_spec_uint64(
      "keyframe-request-interval", "Keyframe request interval",
      "Least nanoseconds between two upstream force-key-unit requests made for joining clients: "
      "requests within it are merged into one at its end, sent only if a client that asked is "
      "still connected (0 = no rate limit)",
      0, G_MAXINT64, DEFAULT_KEYFRAME_REQUEST_INTERVAL, RW);
  properties[PROP_SYNC_METHOD] = g_param_spec_enum(
      "sync-method", "Sync method",
      "Where a new client starts on a stream with delta units (multihandlesink's names): "
      "next-keyframe waits for the next keyframe and asks upstream for one; latest-keyframe "
      "sends the buffers from the latest keyframe on at once (kept in a GOP cache bounded by "
      "gop-cache-bytes-max), then the live stream, and asks for nothing: for sources that cannot "
      "make a keyframe on demand (files, version 1 relays). Per stream",
      GST_TYPE_TLS_FRAME_SINK_SYNC_METHOD, DEFAULT_SYNC_METHOD, RW);
  properties[PROP_GOP_CACHE_BYTES_MAX] = g_param_spec_uint64(
      "gop-cache-bytes-max", "GOP cache maximum bytes",
      "sync-method=latest-keyframe: most bytes of buffers kept from the latest keyframe on; a GOP "
      "that grows past it is dropped until the next keyframe, and clients joining meanwhile wait "
      "for that keyframe as with next-keyframe (0 = keep none). Shared with the client queues, "
      "not copied; a joiner's cached GOP is queued on top of buffers-max/bytes-max",
      0, G_MAXUINT64, DEFAULT_GOP_CACHE_BYTES_MAX, RW);
  properties[PROP_NUM_CLIENTS] =
      g_param_spec_uint("num-clients", "Number of clients",
                        "Clients connected now (TLS handshake completed)", 0, G_MAXUINT, 0, RO);
  properties[PROP_BYTES_SERVED] =
      g_param_spec_uint64("bytes-served", "Bytes served",
                          "Total bytes sent to all clients since start", 0, G_MAXUINT64, 0, RO);
  properties[PROP_STATS] = g_param_spec_boxed("stats", "Statistics",
                                              "Server totals and a client-stats array (frames sent "
                                              "and dropped, bytes, queue depth, last error per "
                                              "client)",
                                              GST_TYPE_STRUCTURE, RO);
  g_object_class_install_properties(gobject_class, PROP_LAST, properties);

  /**
   * GstTlsFrameSink::client-added:
   * @id: the client's id, @address: "ip:port", @subject: certificate subject or ""
   * Emitted from the element's signal thread once a client's TLS handshake
   * completed and it was admitted. Signals for one element come in order.
   */
  signals[SIGNAL_CLIENT_ADDED] =
      g_signal_new("client-added", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, nullptr, nullptr,
                   nullptr, G_TYPE_NONE, 3, G_TYPE_UINT64, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * GstTlsFrameSink::client-rendition-changed:
   * @id, @from, @to: rendition names, @reason: "requested", or "auto: ..." (why the server chose)
   * Emitted from the element's signal thread when a client switched
   * renditions (at a keyframe of @to), on the sink of the rendition the
   * client joined through (the stream's first sink), which also reports it
   * added and removed.
   */
  signals[SIGNAL_CLIENT_RENDITION_CHANGED] = g_signal_new(
      "client-rendition-changed", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, nullptr, nullptr,
      nullptr, G_TYPE_NONE, 4, G_TYPE_UINT64, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * GstTlsFrameSink::client-removed:
   * @id, @address, @status: why, @error: error text or ""
   * Emitted from the element's signal thread when a client is gone; every
   * client-added is followed by one client-removed, at the latest during stop().
   */
  signals[SIGNAL_CLIENT_REMOVED] =
      g_signal_new("client-removed", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, nullptr,
                   nullptr, nullptr, G_TYPE_NONE, 4, G_TYPE_UINT64, G_TYPE_STRING,
                   GST_TYPE_TLS_FRAME_CLIENT_STATUS, G_TYPE_STRING);
  /**
   * GstTlsFrameSink::get-stats:
   * @id: a client id from client-added
   * Action signal: that client's statistics, or NULL when it is not connected.
   */
  signals[SIGNAL_GET_STATS] =
      g_signal_new_class_handler("get-stats", G_TYPE_FROM_CLASS(klass),
                                 static_cast<GSignalFlags>(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
                                 G_CALLBACK(gst_tls_frame_sink_get_stats), nullptr, nullptr,
                                 nullptr, GST_TYPE_STRUCTURE, 1, G_TYPE_UINT64);

  /**
   * GstTlsFrameSink::accept-client:
   * @id: the client's id (as later in client-added), @info: what its certificate says
   *   (address, stream-name, subject, issuer, serial, sha256, dns-names, ip-addresses,
   *   uris, emails, not-after)
   * Returns: TRUE to let the client watch, FALSE to refuse it (ERROR FORBIDDEN,
   * client-removed status forbidden).
   * Emitted from the element's signal thread (never an I/O thread) once a
   * client completed its handshake, named its stream and passed
   * authorized-clients. The client waits meanwhile, and nothing else does;
   * no answer within handshake-timeout refuses it. Without a handler every
   * such client is accepted. With several handlers, all must return TRUE.
   */
  signals[SIGNAL_ACCEPT_CLIENT] = g_signal_new(
      "accept-client", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, accept_accumulator, nullptr,
      nullptr, G_TYPE_BOOLEAN, 2, G_TYPE_UINT64,
      static_cast<GType>(GST_TYPE_STRUCTURE | G_SIGNAL_TYPE_STATIC_SCOPE));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_set_static_metadata(element_class, "TLS frame server sink", "Sink/Network",
                                        TLSFRAME_SINK_LONG_DESCRIPTION, "tlsframe developers");

  basesink_class->start = GST_DEBUG_FUNCPTR(gst_tls_frame_sink_start);
  basesink_class->stop = GST_DEBUG_FUNCPTR(gst_tls_frame_sink_stop);
  basesink_class->unlock = GST_DEBUG_FUNCPTR(gst_tls_frame_sink_unlock);
  basesink_class->unlock_stop = GST_DEBUG_FUNCPTR(gst_tls_frame_sink_unlock_stop);
  basesink_class->set_caps = GST_DEBUG_FUNCPTR(gst_tls_frame_sink_set_caps);
  basesink_class->render = GST_DEBUG_FUNCPTR(gst_tls_frame_sink_render);
  basesink_class->event = GST_DEBUG_FUNCPTR(gst_tls_frame_sink_event);

  gst_type_mark_as_plugin_api(GST_TYPE_TLS_FRAME_TLS_VERSION, static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(GST_TYPE_TLS_FRAME_CLIENT_STATUS, static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(GST_TYPE_TLS_FRAME_SINK_SYNC_METHOD,
                              static_cast<GstPluginAPIFlags>(0));
}
