// What serve and relay print about their tlsframesink: the addresses to
// dial, the certificate's fingerprint, clients joining and leaving, and the
// status line.
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>

#include "status.h"

namespace tlsframe::tool {

// What viewers are told to run.
struct ViewerHint {
  std::string options;     // after the address, e.g. " --certs DIR --client NAME"
  std::string ca_to_copy;  // set for the per-user directory: the CA file viewers elsewhere copy
};

class ServerOutput {
 public:
  // sink: the pipeline's tlsframesink (borrowed); cert: its certificate file.
  ServerOutput(GstElement *sink, std::string bind, std::string cert, unsigned status_interval);
  ~ServerOutput();
  ServerOutput(const ServerOutput &) = delete;
  ServerOutput &operator=(const ServerOutput &) = delete;

  // Once PLAYING: "listening on port N", every address, the fingerprint;
  // starts the status line, and says what viewers run.
  void announce(const ViewerHint &hint);
  void finish() { status_.finish(); }

 private:
  static void on_client_added(GstElement *, guint64 id, const gchar *address, const gchar *subject,
                              gpointer data);
  static void on_client_removed(GstElement *, guint64 id, const gchar *address, gint status,
                                const gchar *error, gpointer data);
  static gboolean on_tick(gpointer data);
  void print_line(const std::string &text);  // main thread
  static void print_on_main_thread(ServerOutput *self, const std::string &text);

  GstElement *sink_;
  std::string bind_, cert_;
  StatusLine status_;
  SinkStatus sink_status_;
  guint tick_ = 0;
  gulong added_ = 0, removed_ = 0;
};

}  // namespace tlsframe::tool
