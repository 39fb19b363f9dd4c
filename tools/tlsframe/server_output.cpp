#include "server_output.h"

#include <fstream>
#include <sstream>

#include "addresses.h"
#include "cli.h"
#include "core/certgen.h"
#include "streams.h"
#include "values.h"

namespace tlsframe::tool {

namespace {

struct Pending {
  ServerOutput *self;
  std::string text;
};

// client-removed's status as its nick ("closed", ..., "forbidden", "revoked"), read from the
// element's own enum so a status added there is named here too.
std::string status_name(gint status) {
  GType type = g_type_from_name("GstTlsFrameClientStatus");
  if (type == 0) return "status " + std::to_string(status);
  auto *cls = static_cast<GEnumClass *>(g_type_class_ref(type));
  GEnumValue *v = g_enum_get_value(cls, status);
  std::string name = v ? v->value_nick : "status " + std::to_string(status);
  g_type_class_unref(cls);
  return name;
}

}  // namespace

void ServerOutput::print_on_main_thread(ServerOutput *self, const std::string &text) {
  g_idle_add_full(
      G_PRIORITY_DEFAULT,
      [](gpointer d) -> gboolean {
        auto *p = static_cast<Pending *>(d);
        p->self->say(p->text);
        return G_SOURCE_REMOVE;
      },
      new Pending{self, text}, [](gpointer d) { delete static_cast<Pending *>(d); });
}

ServerOutput::ServerOutput(std::vector<ServedStream> streams, std::string bind, std::string cert,
                           unsigned status_interval)
    : named_(streams.size() > 1 || (!streams.empty() && !streams[0].name.empty())),
      bind_(std::move(bind)),
      cert_(std::move(cert)),
      status_(status_interval) {
  for (auto &st : streams) {
    auto served = std::make_unique<Served>(Served{this, st, {}, 0, 0});
    Served *d = served.get();
    d->added = g_signal_connect(st.sink, "client-added", G_CALLBACK(on_client_added), d);
    d->removed = g_signal_connect(st.sink, "client-removed", G_CALLBACK(on_client_removed), d);
    served_.push_back(std::move(served));
  }
}

ServerOutput::~ServerOutput() {
  if (tick_) g_source_remove(tick_);
  for (auto &s : served_) {
    g_signal_handler_disconnect(s->stream.sink, s->added);
    g_signal_handler_disconnect(s->stream.sink, s->removed);
  }
  // Lines still queued for the main thread are dropped with the context; none refer to us after
  // the handlers are gone because they are dispatched only from the main loop we run.
  while (g_main_context_iteration(nullptr, FALSE)) {
  }
  status_.finish();
}

void ServerOutput::say(const std::string &text, bool is_error) {
  status_.finish();
  if (is_error) {
    error(text);
  } else {
    info(text);
  }
}

std::string ServerOutput::to_stream(const Served &s) const {
  return named_ ? " to stream " + stream_label(s.stream.name) : "";
}

// Signals come from the element's signal thread: the lines are printed on the main thread.
void ServerOutput::on_client_added(GstElement *, guint64 id, const gchar *address,
                                   const gchar *subject, gpointer data) {
  auto *d = static_cast<Served *>(data);
  std::string text = "client " + std::to_string(id) + " connected from " + address;
  if (subject && *subject) text += " (" + std::string(subject) + ")";
  print_on_main_thread(d->self, text + d->self->to_stream(*d));
}

void ServerOutput::on_client_removed(GstElement *, guint64 id, const gchar *address, gint status,
                                     const gchar *err, gpointer data) {
  auto *d = static_cast<Served *>(data);
  std::string text = "client " + std::to_string(id) + " (" + address + ") left" +
                     (d->self->named_ ? " stream " + stream_label(d->stream.name) : "") + ": " +
                     status_name(status) + (err && *err ? std::string(": ") + err : "");
  print_on_main_thread(d->self, text);
}

std::string ServerOutput::status_text() {
  if (!named_) return served_[0]->status.text(served_[0]->stream.sink);
  std::string text;
  for (auto &s : served_) {
    text += (text.empty() ? "" : " | ") + stream_label(s->stream.name) + ": " +
            s->status.text(s->stream.sink);
  }
  return text;
}

gboolean ServerOutput::on_tick(gpointer data) {
  auto *self = static_cast<ServerOutput *>(data);
  self->status_.show(self->status_text());
  return G_SOURCE_CONTINUE;
}

void ServerOutput::announce_browser(const Served &s, const std::string &prefix,
                                    const std::string &host_port, const ViewerHint &hint) {
  gboolean browser = FALSE;
  if (g_object_class_find_property(G_OBJECT_GET_CLASS(s.stream.sink), "browser")) {
    g_object_get(s.stream.sink, "browser", &browser, nullptr);
  }
  if (!browser) return;
  // The sink's browser front: /watch/NAME, /watch/ for the default stream.
  std::string line = prefix + "in a browser: https://" + host_port + "/watch/" + s.stream.name;
  if (!hint.ca_to_copy.empty()) line += "   (the browser must trust " + hint.ca_to_copy + ")";
  info(line);
}

void ServerOutput::announce(const ViewerHint &hint) {
  if (served_.empty()) return;
  gint port = 0;
  g_object_get(served_[0]->stream.sink, "current-port", &port, nullptr);
  std::string port_text = std::to_string(port);
  info("listening on port " + port_text);
  auto addrs = usable_addresses(bind_);
  for (const auto &addr : addrs) info("Listening at " + addr + ":" + port_text);
  std::ifstream in(cert_);
  std::stringstream pem;
  pem << in.rdbuf();
  auto fp = certgen::fingerprint_sha256(pem.str());
  if (fp) info("certificate SHA-256 fingerprint " + *fp);
  if (!addrs.empty()) {
    bool wildcard = bind_.empty() || bind_ == "0.0.0.0" || bind_ == "::";
    bool loopback = bind_ == "127.0.0.1" || bind_ == "::1" || bind_ == "localhost";
    // The per-user directory: a viewer here finds ca.pem in its own (the same) directory.
    std::string here =
        hint.ca_to_copy.empty() || !(wildcard || loopback) ? addrs.front() : "localhost";
    // Elsewhere: the first address that is not loopback (the first one when all are).
    std::string remote = addrs.front();
    for (const auto &a : addrs) {
      if (a.rfind("127.", 0) != 0 && a != "[::1]") {
        remote = a;
        break;
      }
    }
    for (const auto &s : served_) {
      const std::string &name = s->stream.name;
      std::string prefix = named_ ? "stream " + stream_label(name) + ": " : "";
      std::string at_here = stream_address(here + ":" + port_text, name);
      if (hint.ca_to_copy.empty()) {
        info(prefix + "viewers run: tlsframe view " + at_here + hint.options);
      } else {
        info(prefix + "viewers on this machine run: tlsframe view " + at_here + hint.options);
        info(prefix + "viewers elsewhere run: tlsframe view " +
             stream_address(remote + ":" + port_text, name) + " --ca ca.pem" + hint.options +
             "   (ca.pem: a copy of " + hint.ca_to_copy + ")");
      }
      if (fp) {
        info(prefix + "or, with no CA file: tlsframe view " +
             stream_address(remote + ":" + port_text, name) + " --fingerprint " + *fp +
             hint.client_options);
      }
      info(prefix + "with GStreamer: gst-launch-1.0 tlsframesrc " +
           launch_argument("uri", "tlsframe://" + at_here) + hint.gst_options +
           " ! decodebin ! videoconvert ! autovideosink");
      announce_browser(*s, prefix, here + ":" + port_text, hint);
    }
  }
  for (auto &s : served_) s->status.text(s->stream.sink);  // first sample for the rates
  tick_ = g_timeout_add_seconds(1, &ServerOutput::on_tick, this);
}

}  // namespace tlsframe::tool
