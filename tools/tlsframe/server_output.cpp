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

std::vector<GstElement *> served_sinks(const std::vector<ServedStream> &streams) {
  std::vector<GstElement *> sinks;
  for (const auto &st : streams) {
    if (st.renditions.empty()) sinks.push_back(st.sink);
    for (const auto &r : st.renditions) sinks.push_back(r.sink);
  }
  return sinks;
}

bool is_served_sink(const std::vector<ServedStream> &streams, GstObject *object) {
  for (GstElement *sink : served_sinks(streams)) {
    if (object == GST_OBJECT(sink)) return true;
  }
  return false;
}

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
    auto served = std::make_unique<Served>(Served{this, st, {}, {}});
    Served *d = served.get();
    for (GstElement *sink : served_sinks({st})) {
      Handlers h{sink};
      h.added = g_signal_connect(sink, "client-added", G_CALLBACK(on_client_added), d);
      h.removed = g_signal_connect(sink, "client-removed", G_CALLBACK(on_client_removed), d);
      if (!st.renditions.empty()) {
        h.rendition =
            g_signal_connect(sink, "client-rendition-changed", G_CALLBACK(on_client_rendition), d);
      }
      d->handlers.push_back(h);
      d->status.emplace_back();
    }
    served_.push_back(std::move(served));
  }
}

ServerOutput::~ServerOutput() {
  if (tick_) g_source_remove(tick_);
  for (auto &s : served_) {
    for (const auto &h : s->handlers) {
      g_signal_handler_disconnect(h.sink, h.added);
      g_signal_handler_disconnect(h.sink, h.removed);
      if (h.rendition) g_signal_handler_disconnect(h.sink, h.rendition);
    }
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

// A client switched renditions (the server's choice or its own request).
void ServerOutput::on_client_rendition(GstElement *, guint64 id, const gchar *from, const gchar *to,
                                       const gchar *reason, gpointer data) {
  auto *d = static_cast<Served *>(data);
  std::string text = "client " + std::to_string(id) + d->self->to_stream(*d) + ": rendition " +
                     (from ? from : "?") + " -> " + (to ? to : "?") +
                     (reason && *reason ? std::string(" (") + reason + ")" : "");
  print_on_main_thread(d->self, text);
}

std::string ServerOutput::status_text() {
  std::string text;
  for (auto &s : served_) {
    std::string part;
    if (s->stream.renditions.empty()) {
      part = s->status[0].text(s->stream.sink);
    } else {
      // Per rendition: its viewers (the sink's clients are those on that rendition now).
      for (size_t k = 0; k < s->stream.renditions.size(); ++k) {
        const ServedRendition &r = s->stream.renditions[k];
        part += (part.empty() ? "" : "; ") + r.name + ": " + s->status[k].text(r.sink);
      }
    }
    if (named_) part = stream_label(s->stream.name) + ": " + part;
    text += (text.empty() ? "" : " | ") + part;
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
      if (!s->stream.renditions.empty()) {
        std::string list;
        for (const auto &r : s->stream.renditions) {
          list += (list.empty() ? "" : ", ") + r.name + " " + r.about;
        }
        info(prefix + "renditions " + list + "; each viewer gets the one its link carries, or " +
             "the one it asks for: tlsframe view ... --rendition " +
             s->stream.renditions.back().name);
      }
      info(prefix + "with GStreamer: gst-launch-1.0 tlsframesrc " +
           launch_argument("uri", "tlsframe://" + at_here) + hint.gst_options +
           " ! decodebin ! videoconvert ! autovideosink");
      announce_browser(*s, prefix, here + ":" + port_text, hint);
    }
  }
  status_text();  // first sample for the rates
  tick_ = g_timeout_add_seconds(1, &ServerOutput::on_tick, this);
}

}  // namespace tlsframe::tool
