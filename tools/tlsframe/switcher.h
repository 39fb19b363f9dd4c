// Source switching for `tlsframe serve`: a stream with several sources has an
// input-selector in front of its one encoder; a command picks the active
// source while viewers stay connected. Commands come one per line on standard
// input (the terminal when serve runs in one), read from the main loop.
//
// Threads: everything here runs on the main thread (the GLib main loop).
#pragma once

#include <gst/gst.h>

#include <functional>
#include <string>
#include <vector>

namespace tlsframe::tool {

class Switcher {
 public:
  struct Input {
    std::string label;  // the source as given to --stream, e.g. "test:blue"
    std::string what;   // for people, e.g. "test pattern blue (videotestsrc)"
  };
  // One printed line of a command's answer; errors go to standard error.
  struct Reply {
    bool ok;
    std::string text;
  };

  Switcher() = default;
  ~Switcher();
  Switcher(const Switcher &) = delete;
  Switcher &operator=(const Switcher &) = delete;

  // A stream: its sinks (borrowed; one per rendition, each asked for a keyframe at a
  // switch) and, for several inputs, its input-selector
  // (borrowed) whose pad sink_N carries inputs[N]. Sets input 0 active (before
  // PLAYING, so the selector does not pick whichever source is first). False
  // after an error line (a selector without those pads).
  bool add(const std::string &name, GstElement *selector, std::vector<GstElement *> sinks,
           std::vector<Input> inputs);

  // One command line: "switch [NAME] INDEX|SOURCE", "list" or "help" (blank: nothing).
  std::vector<Reply> command(const std::string &line);
  // One line per stream: its sources, the active one marked.
  std::vector<std::string> describe() const;
  // "switch cam1 1" as an example for the help lines; "" when nothing can switch.
  std::string example() const;

 private:
  struct Stream {
    std::string name;
    GstElement *selector = nullptr;   // nullptr: one source, nothing to switch
    std::vector<GstElement *> sinks;  // one per rendition
    std::vector<Input> inputs;
    std::vector<GstPad *> pads;  // owned refs, pads[i] carries inputs[i]
    size_t active = 0;
  };
  std::vector<Reply> switch_command(const std::vector<std::string> &words, const std::string &rest);
  Reply switch_to(Stream &s, size_t index);
  // inputs index for "1" or "test:blue"; -1 when none.
  static long find_input(const Stream &s, const std::string &which);
  std::string line_for(const Stream &s) const;

  std::vector<Stream> streams_;
  guint keyframe_requests_ = 0;  // count field of the force-key-unit events sent
};

// Lines from standard input to on_line, from a GIOChannel watch on fd 0 in the
// default main context (no thread). End of input (or /dev/null) removes the
// watch and nothing else: the server keeps running. Lines longer than 4 KiB
// are dropped with an error line.
class CommandReader {
 public:
  explicit CommandReader(std::function<void(const std::string &)> on_line);
  ~CommandReader();
  CommandReader(const CommandReader &) = delete;
  CommandReader &operator=(const CommandReader &) = delete;

 private:
  static gboolean on_input(GIOChannel *channel, GIOCondition condition, gpointer data);
  void take(const char *data, size_t size);

  std::function<void(const std::string &)> on_line_;
  GIOChannel *channel_ = nullptr;
  guint watch_ = 0;
  std::string partial_;
  bool overlong_ = false;  // dropping the rest of a too long line
};

}  // namespace tlsframe::tool
