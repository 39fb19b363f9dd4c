// What serve and relay print about their tlsframesink: the addresses to
// dial, the certificate's fingerprint, clients joining and leaving, and the
// status line.
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>
#include <vector>

#include "status.h"

namespace tlsframe::tool {

// What viewers are told to run.
struct ViewerHint {
  std::string options;      // after the address, e.g. " --certs DIR --client NAME"
  std::string ca_to_copy;   // set for the per-user directory: the CA file viewers elsewhere copy
  std::string gst_options;  // tlsframesrc properties for the gst-launch-1.0 line (" ca-file=...")
  std::string client_options;  // " --client NAME" when the server asks for client certificates
};

// One rendition of a served stream (serve --rendition): its sink (borrowed) and what it is.
struct ServedRendition {
  GstElement *sink;
  std::string name;   // the sink's rendition, e.g. "360p"
  std::string about;  // e.g. "640x360 500 kbit/s"
};

// One stream the process serves: its tlsframesink (borrowed) and stream-name; with
// renditions, every rendition's sink (the first is `sink`).
struct ServedStream {
  GstElement *sink;
  std::string name;
  std::vector<ServedRendition> renditions;  // empty: the stream has one encoding
};

// Every sink of these streams (each rendition's).
std::vector<GstElement *> served_sinks(const std::vector<ServedStream> &streams);
// True when `object` is one of those sinks.
bool is_served_sink(const std::vector<ServedStream> &streams, GstObject *object);

class ServerOutput {
 public:
  // streams: every sink (one port); cert: their certificate file. With one stream
  // named "" (the default) the lines are those of a single-stream server; otherwise
  // client lines and viewer commands name the stream.
  ServerOutput(std::vector<ServedStream> streams, std::string bind, std::string cert,
               unsigned status_interval);
  ~ServerOutput();
  ServerOutput(const ServerOutput &) = delete;
  ServerOutput &operator=(const ServerOutput &) = delete;

  // Once PLAYING: "listening on port N", every address, the fingerprint;
  // starts the status line, and says what viewers run, for each stream (and its
  // renditions).
  void announce(const ViewerHint &hint);
  // A line of our own (main thread): ends an in-place status line first.
  void say(const std::string &text, bool is_error = false);
  void finish() { status_.finish(); }

 private:
  // Client signals come from whichever of a stream's sinks a client joined through (the
  // rendition that started first): every sink of the stream is connected.
  struct Handlers {
    GstElement *sink;
    gulong added = 0, removed = 0, rendition = 0;
  };
  struct Served {
    ServerOutput *self;
    ServedStream stream;
    std::vector<SinkStatus> status;  // the stream's sink, or one per rendition
    std::vector<Handlers> handlers;
  };
  static void on_client_added(GstElement *, guint64 id, const gchar *address, const gchar *subject,
                              gpointer data);
  static void on_client_removed(GstElement *, guint64 id, const gchar *address, gint status,
                                const gchar *error, gpointer data);
  static void on_client_rendition(GstElement *, guint64 id, const gchar *from, const gchar *to,
                                  const gchar *reason, gpointer data);
  static gboolean on_tick(gpointer data);
  static void print_on_main_thread(ServerOutput *self, const std::string &text);
  std::string status_text();
  std::string to_stream(const Served &s) const;  // " to stream cam1" or ""
  // The browser address of s ("in a browser: https://HOST:PORT/watch/NAME"),
  // when its sink's browser front is on.
  void announce_browser(const Served &s, const std::string &prefix, const std::string &host_port,
                        const ViewerHint &hint);

  std::vector<std::unique_ptr<Served>> served_;
  bool named_ = false;  // several streams, or a named one
  std::string bind_, cert_;
  StatusLine status_;
  guint tick_ = 0;
};

}  // namespace tlsframe::tool
