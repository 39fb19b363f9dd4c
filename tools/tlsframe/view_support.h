// Pieces of `tlsframe view`: display choice, codec-dependent fragments, the
// caps probe, the frame counter, and hints for connection errors.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "status.h"
#include "values.h"

namespace tlsframe::tool {

enum class Display { kOpenCv, kGst, kNone };

// --display auto|opencv|gst|none. auto: OpenCV window (if built) or a GStreamer
// window when a display exists; none when there is no display but another output
// (record/snapshot) was asked for. nullopt after one error line.
std::optional<Display> choose_display(const std::string &spec, bool other_output);
std::string display_sink(Display d);

// .mkv -> matroskamux, .mp4 -> mp4mux; false after an error line.
bool muxer_for(const std::string &file, std::string *muxer);

// Connects once and returns the stream's caps (as text), or nullopt after an
// error line. src_values: the properties of the tlsframesrc, named "src".
std::optional<std::string> probe_stream_caps(const PropertyValues &src_values);
// "image/jpeg 640x480 at 30 fps" for caps text.
std::string caps_summary(const std::string &caps);
// "jpeg", "h264" or "decodebin" for caps text.
std::string codec_from_caps(const std::string &caps);
std::string decoder_for(const std::string &codec);  // e.g. "h264parse ! avdec_h264"
std::string parser_for(const std::string &codec);   // "h264parse ! " or ""

// A server and stream as the user wrote it: HOST[:PORT], HOST[:PORT]/NAME or
// tlsframe://HOST[:PORT][/NAME] (IPv6 as [addr]; NAME "" = the default stream).
struct StreamTarget {
  std::string host;  // IPv6 without brackets
  int port = 0;
  std::string stream;
};
// nullopt after one error line naming `what` (e.g. "server").
std::optional<StreamTarget> read_target(const std::string &text, int default_port);
// "host:port" or "[v6]:port" for messages.
std::string target_text(const StreamTarget &t);

// One stream of a server's list (LIST_STREAMS).
struct StreamEntry {
  std::string name;  // "" = the default stream
  std::string caps;  // short caps summary ("" = no caps yet)
  uint32_t viewers = 0;
};
// Connects once and asks a protocol version 2 server for its streams.
// src_values as for print_stream_list. nullopt after an error line.
std::optional<std::vector<StreamEntry>> list_streams(const PropertyValues &src_values);

// Connects once, asks a protocol version 2 server for its streams and prints
// one line per stream (name, caps, viewers). src_values: the properties of the
// tlsframesrc named "src" (host, port, server-name, TLS files). kExitOk, or
// kExitError after an error line.
int print_stream_list(const PropertyValues &src_values);

// A hint for a tlsframesrc error ("" when none).
std::string client_error_hint(GstMessage *msg);

// Drops every buffer leaving `element` (the snapshot branch's queue) from now on.
void drop_after_first(GstElement *element);
// '%' doubled, for multifilesink's printf-style location.
std::string escape_percent(const std::string &path);

// Counts buffers and bytes leaving tlsframesrc for the status line.
class ViewerCounter {
 public:
  explicit ViewerCounter(GstElement *src);
  uint64_t frames() const { return frames_; }
  std::string text();  // "123 frames, 30.0 fps, 2.10 Mbit/s"

 private:
  static GstPadProbeReturn on_buffer(GstPad *, GstPadProbeInfo *info, gpointer data);
  std::atomic<uint64_t> frames_{0}, bytes_{0};
  Rate fps_, rate_;
};

}  // namespace tlsframe::tool
