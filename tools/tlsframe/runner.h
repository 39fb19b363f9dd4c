// Runs a gst_parse_launch pipeline for a subcommand: plugin checks with the
// Debian package to install, the bus loop, Ctrl-C as end of stream, and
// errors for people (one line each, no GLib criticals).
#pragma once

#include <gst/gst.h>

#include <functional>
#include <map>
#include <string>

#include "cli.h"
#include "values.h"

namespace tlsframe::tool {

// gst_init (GStreamer's own options were parsed with the command's), then make sure the
// tlsframe plugin is found (the build tree's plugin directory is scanned when it is not
// installed). False after an error line.
bool init_gstreamer();

// The Debian package that provides a GStreamer element (factory name), or a
// hint for our own elements; "" when unknown.
std::string package_for_element(const std::string &factory);

// True when the element factory exists; otherwise prints one error line naming the package.
bool require_element(const std::string &factory, const std::string &why);

// gst_parse_launch with missing elements reported by name and package.
// Returns a floating-ref-sunk pipeline, or nullptr after one error line.
GstElement *launch(const std::string &description);

// Fills the template `name` (or run.pipeline_file) with vars (structure and validated
// numbers only), launches it and sets `values` on its named elements. With --print-pipeline
// it prints the pipeline with the values (printable_pipeline) and returns nullptr with
// *status = kExitOk; on a failure (one error line) nullptr with *status = kExitError;
// otherwise the launched pipeline.
GstElement *prepare_pipeline(const std::string &name, const RunOptions &run,
                             const std::map<std::string, std::string> &vars,
                             const PropertyValues &values, int *status);
// The same for a description already expanded (serve and relay join one expanded template
// per stream into one pipeline).
GstElement *prepare_description(const std::string &description, const RunOptions &run,
                                const PropertyValues &values, int *status);

class Runner {
 public:
  explicit Runner(GstElement *pipeline);  // takes the reference
  ~Runner();
  Runner(const Runner &) = delete;
  Runner &operator=(const Runner &) = delete;

  GstElement *pipeline() const { return pipeline_; }
  GstElement *element(const char *name) const;  // borrowed, nullptr if absent
  // element(name), or nullptr after an error line saying the pipeline lacks that `factory`.
  GstElement *require(const char *name, const char *factory) const;

  // Called once when the pipeline reaches PLAYING.
  std::function<void()> on_playing;
  // Element messages (e.g. tlsframesrc-connected) and the element that posted them.
  std::function<void(const GstStructure *, GstObject *)> on_element_message;
  // Adds a hint to an error line (e.g. which option to check); "" for none.
  std::function<std::string(GstMessage *)> hint_for_error;
  // Warning messages (e.g. tlsframesink's expired CRL); unset = not shown.
  std::function<void(GstMessage *)> on_warning;
  // Called when EOS reached the application (before the pipeline stops).
  std::function<void()> on_eos;
  // Called repeatedly from the main thread while running (e.g. the OpenCV
  // window); it may block ~10 ms. Return false to stop (end of stream).
  std::function<bool()> step;

  // Sets PLAYING and loops until EOS, an error or a second interrupt.
  // Returns the exit status (0 on EOS, 1 on error).
  int run();
  // Sends EOS into the pipeline (as Ctrl-C does); run() returns after it arrives.
  void stop();
  // Ends run() now with this status (no EOS).
  void quit(int status);

 private:
  static gboolean on_bus(GstBus *bus, GstMessage *msg, gpointer data);
  static gboolean on_signal(gpointer data);
  static gboolean on_stop_timeout(gpointer data);

  GstElement *pipeline_;
  bool done_ = false;
  bool playing_ = false;
  bool stopping_ = false;
  int status_ = 0;
  guint bus_watch_ = 0;
};

}  // namespace tlsframe::tool
