// Shared by the tool tests: the tlsframe binary from the build tree, a
// temporary directory per test, certificates made by `tlsframe certs`, and
// servers started with --port 0 whose real port is read from their output.
#pragma once

#include <gst/gst.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tools/process.h"

namespace tlsframe::test {

using namespace std::chrono_literals;

// Environment for tool children that must print nothing but their own lines.
std::map<std::string, std::string> quiet_env();

class ToolTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  static std::string tool() { return TLSFRAME_TOOL_PATH; }
  const std::string &dir() const { return dir_; }
  // A certificate set made by `tlsframe certs` in dir()/name (client "alice").
  std::string make_certs(const std::string &name = "certs",
                         const std::vector<std::string> &hosts = {"localhost", "127.0.0.1", "::1"});
  // Starts `tlsframe <args>` (serve or relay) and waits for "listening on port N".
  // Returns the port (0 with an ADD_FAILURE on timeout).
  int start_server(std::unique_ptr<Process> *proc, const std::vector<std::string> &args);
  // The same with the child's environment and standard input (kPipe: commands to serve).
  int start_server(std::unique_ptr<Process> *proc, const std::vector<std::string> &args,
                   const std::map<std::string, std::string> &env, Process::Stdin in);
  std::vector<std::string> cmd(const std::vector<std::string> &args) const;

 private:
  std::string dir_;
};

// Runs gst-discoverer-1.0 on path; the duration in seconds (-1 if unreadable).
double discovered_duration(const std::string &path, std::string *output = nullptr);

// tlsframe://127.0.0.1:PORT[/NAME] ("" = the default stream).
std::string uri(int port, const std::string &name = "");
// True when one of lines contains needle.
bool has_line(const std::vector<std::string> &lines, const std::string &needle);
// The whole file ("" when it cannot be read).
std::string read_text(const std::string &path);
// The permission bits of path (-1 when it cannot be stat'ed).
int mode_of(const std::string &path);
// One JPEG picture of w x h (videotestsrc ! jpegenc; empty on failure). Calls gst_init.
std::vector<uint8_t> make_jpeg(int w, int h);
// The text of an ERROR message ("?" when it has none).
std::string error_text(GstMessage *msg);

// The viewer side of a tool test: a pipeline in this process whose tlsframesrc (named
// "src") watches a tool's server. The owner configures src() and adds probes, then
// play() hands every bus message to a handler (on the posting thread; the message is
// dropped after it) and sets PLAYING. Destruction sets NULL before removing the
// handler, so the handler's state must outlive this object: declare it last in the owner.
class SrcPipeline {
 public:
  explicit SrcPipeline(const std::string &launch);  // ADD_FAILURE when it does not parse
  ~SrcPipeline();
  SrcPipeline(const SrcPipeline &) = delete;
  SrcPipeline &operator=(const SrcPipeline &) = delete;

  bool ok() const { return pipeline_ != nullptr && src_ != nullptr; }
  GstElement *src() const { return src_; }      // borrowed
  GstElement *element(const char *name) const;  // borrowed; nullptr when missing
  // A probe on src's source pad.
  void probe(GstPadProbeType type, GstPadProbeCallback callback, gpointer data);
  void play(std::function<void(GstMessage *)> on_message);

 private:
  static GstBusSyncReply on_bus(GstBus *, GstMessage *msg, gpointer data);

  GstElement *pipeline_ = nullptr;
  GstElement *src_ = nullptr;  // own reference
  std::function<void(GstMessage *)> on_message_;
};

}  // namespace tlsframe::test
