#include "server_output.h"

#include <fstream>
#include <sstream>

#include "addresses.h"
#include "cli.h"
#include "core/certgen.h"

namespace tlsframe::tool {

namespace {

struct Pending {
  ServerOutput *self;
  std::string text;
};

const char *status_name(gint status) {
  static const char *names[] = {"closed", "error", "timeout", "protocol", "server-stopped", "eos"};
  return status >= 0 && status < 6 ? names[status] : "unknown";
}

}  // namespace

void ServerOutput::print_on_main_thread(ServerOutput *self, const std::string &text) {
  g_idle_add_full(
      G_PRIORITY_DEFAULT,
      [](gpointer d) -> gboolean {
        auto *p = static_cast<Pending *>(d);
        p->self->print_line(p->text);
        return G_SOURCE_REMOVE;
      },
      new Pending{self, text}, [](gpointer d) { delete static_cast<Pending *>(d); });
}

ServerOutput::ServerOutput(GstElement *sink, std::string bind, std::string cert,
                           unsigned status_interval)
    : sink_(sink), bind_(std::move(bind)), cert_(std::move(cert)), status_(status_interval) {
  added_ = g_signal_connect(sink_, "client-added", G_CALLBACK(on_client_added), this);
  removed_ = g_signal_connect(sink_, "client-removed", G_CALLBACK(on_client_removed), this);
}

ServerOutput::~ServerOutput() {
  if (tick_) g_source_remove(tick_);
  g_signal_handler_disconnect(sink_, added_);
  g_signal_handler_disconnect(sink_, removed_);
  // Lines still queued for the main thread are dropped with the context; none refer to us after
  // the handlers are gone because they are dispatched only from the main loop we run.
  while (g_main_context_iteration(nullptr, FALSE)) {
  }
  status_.finish();
}

void ServerOutput::print_line(const std::string &text) {
  status_.finish();
  info(text);
}

// Signals come from the element's signal thread: the lines are printed on the main thread.
void ServerOutput::on_client_added(GstElement *, guint64 id, const gchar *address,
                                   const gchar *subject, gpointer data) {
  std::string text = "client " + std::to_string(id) + " connected from " + address;
  if (subject && *subject) text += " (" + std::string(subject) + ")";
  print_on_main_thread(static_cast<ServerOutput *>(data), text);
}

void ServerOutput::on_client_removed(GstElement *, guint64 id, const gchar *address, gint status,
                                     const gchar *err, gpointer data) {
  std::string text = "client " + std::to_string(id) + " (" + address +
                     ") left: " + status_name(status) +
                     (err && *err ? std::string(": ") + err : "");
  print_on_main_thread(static_cast<ServerOutput *>(data), text);
}

gboolean ServerOutput::on_tick(gpointer data) {
  auto *self = static_cast<ServerOutput *>(data);
  self->status_.show(self->sink_status_.text(self->sink_));
  return G_SOURCE_CONTINUE;
}

void ServerOutput::announce(const ViewerHint &hint) {
  gint port = 0;
  g_object_get(sink_, "current-port", &port, nullptr);
  std::string port_text = std::to_string(port);
  info("listening on port " + port_text);
  auto addrs = usable_addresses(bind_);
  for (const auto &addr : addrs) info("Listening at " + addr + ":" + port_text);
  std::ifstream in(cert_);
  std::stringstream pem;
  pem << in.rdbuf();
  auto fp = certgen::fingerprint_sha256(pem.str());
  if (fp) info("certificate SHA-256 fingerprint " + *fp);
  if (addrs.empty()) {
    // Nothing to dial: no viewer line.
  } else if (hint.ca_to_copy.empty()) {
    info("viewers run: tlsframe view " + addrs.front() + ":" + port_text + hint.options);
  } else {
    // The per-user directory: a viewer here finds ca.pem in its own (the same) directory.
    bool wildcard = bind_.empty() || bind_ == "0.0.0.0" || bind_ == "::";
    bool loopback = bind_ == "127.0.0.1" || bind_ == "::1" || bind_ == "localhost";
    std::string here = wildcard || loopback ? "localhost" : addrs.front();
    info("viewers on this machine run: tlsframe view " + here + ":" + port_text + hint.options);
    // Elsewhere: the first address that is not loopback (the first one when all are).
    std::string remote = addrs.front();
    for (const auto &a : addrs) {
      if (a.rfind("127.", 0) != 0 && a != "[::1]") {
        remote = a;
        break;
      }
    }
    info("viewers elsewhere run: tlsframe view " + remote + ":" + port_text + " --ca ca.pem" +
         hint.options + "   (ca.pem: a copy of " + hint.ca_to_copy + ")");
  }
  sink_status_.text(sink_);  // first sample for the rates
  tick_ = g_timeout_add_seconds(1, &ServerOutput::on_tick, this);
}

}  // namespace tlsframe::tool
