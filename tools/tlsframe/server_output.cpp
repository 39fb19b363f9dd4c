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

void ServerOutput::announce(const std::string &view_hint) {
  gint port = 0;
  g_object_get(sink_, "current-port", &port, nullptr);
  info("listening on port " + std::to_string(port));
  for (const auto &addr : usable_addresses(bind_)) {
    info("Listening at " + addr + ":" + std::to_string(port));
  }
  std::ifstream in(cert_);
  std::stringstream pem;
  pem << in.rdbuf();
  auto fp = certgen::fingerprint_sha256(pem.str());
  if (fp) info("certificate SHA-256 fingerprint " + *fp);
  auto addrs = usable_addresses(bind_);
  if (!addrs.empty()) {
    info("viewers run: tlsframe view " + addrs.front() + ":" + std::to_string(port) + view_hint);
  }
  sink_status_.text(sink_);  // first sample for the rates
  tick_ = g_timeout_add_seconds(1, &ServerOutput::on_tick, this);
}

}  // namespace tlsframe::tool
