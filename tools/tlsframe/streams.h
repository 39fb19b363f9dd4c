// Several streams from one serve or relay process: `serve --stream NAME=SOURCE`
// (repeatable; a NAME given again adds a source to switch to), the names of the
// elements each stream's branch uses, and one port for all of their sinks.
#pragma once

#include <gst/gst.h>

#include <optional>
#include <string>
#include <vector>

namespace tlsframe::tool {

// One stream of `serve --stream`: its name ("" = the default stream) and its
// sources in the --source syntax, in the order given (index 0 is active at start).
struct StreamSpec {
  std::string name;
  std::vector<std::string> sources;
};

// The --stream NAME=SOURCE values grouped by NAME, streams in order of first
// appearance. nullopt after one error line (no '=', an empty SOURCE).
std::optional<std::vector<StreamSpec>> parse_stream_options(const std::vector<std::string> &values);

// Element names in a pipeline of several streams: indexes, never user text, so
// no stream name can change the pipeline's shape. With one default stream the
// names stay "sink", "source" and "src" (the single-stream templates' names).
std::string sink_element(size_t stream);                  // "sink-0"
std::string src_element(size_t stream);                   // "src-0" (relay)
std::string selector_element(size_t stream);              // "select-0"
std::string source_element(size_t stream, size_t index);  // "source-0-1"

// "HOST:PORT/NAME" (no "/NAME" for the default stream).
std::string stream_address(const std::string &host_port, const std::string &name);
// "cam1", or "(default)" for "".
std::string stream_label(const std::string &name);

// Sinks on one port share one listener only when the port is fixed (a sink with
// port=0 binds a port of its own). For several sinks and --port 0, serve and
// relay reserve a free port first: a socket bound to it (SO_REUSEADDR, not
// listening) keeps other programs from taking it, while the sinks, which also
// set SO_REUSEADDR, bind and listen on it. Closed once they listen.
class PortReservation {
 public:
  // Binds a free port on `bind` (an address or name, as --bind). False after an
  // error line.
  bool reserve(const std::string &bind);
  int port() const { return port_; }
  void release();
  ~PortReservation() { release(); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace tlsframe::tool
