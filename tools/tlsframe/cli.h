// Command-line helpers shared by the subcommands: the option parser (GOption),
// messages for people (one line, the command's name first) and HOST[:PORT].
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tlsframe::tool {

// Exit statuses of every subcommand.
constexpr int kExitOk = 0;
constexpr int kExitError = 1;  // runtime failure (network, certificate, pipeline)
constexpr int kExitUsage = 2;  // bad command line

// The running subcommand's name ("serve", ...), used as the message prefix.
void set_command_name(const std::string &name);
const std::string &command_name();

// "tlsframe serve: <text>" on stdout (info) or "tlsframe serve: error: <text>" on stderr.
void info(const std::string &text);
void error(const std::string &text);
// Quiet mode silences info() (errors are always printed).
void set_quiet(bool quiet);
bool quiet();

// The command line of one subcommand, parsed by GLib's GOptionContext (as GStreamer's own
// tools do): "--name value", "--name=value", flags, and --help in the GOption layout
// (Usage:, Help Options:, Application Options:). Options are declared before parse().
class Options {
 public:
  // parameters: what follows "[OPTION…]" in the usage line (e.g. "HOST[:PORT]");
  // summary: the text above the options; description: the text below them.
  Options(std::string parameters, std::string summary, std::string description = "");
  ~Options();
  Options(const Options &) = delete;
  Options &operator=(const Options &) = delete;

  void value(const char *name, std::string *out, const char *arg, const char *help);
  void flag(const char *name, bool *out, const char *help, char short_name = 0);
  void repeated(const char *name, std::vector<std::string> *out, const char *arg, const char *help);
  // Adds GStreamer's option group (--gst-debug, --gst-plugin-path, ...; --help-gst).
  void with_gstreamer() { gstreamer_ = true; }
  // argv: the arguments after the subcommand's name. --help prints the help and exits 0.
  // Returns false after one error line (a usage error).
  bool parse(int argc, char **argv, std::vector<std::string> *positional);

 private:
  struct Slot;
  std::string parameters_, summary_, description_;
  std::vector<Slot *> slots_;  // owned; stable addresses for GOption's arg_data
  bool gstreamer_ = false;
};

// The options of every pipeline command (serve, view, relay): --pipeline,
// --print-pipeline, --quiet, --status-interval, and GStreamer's options.
struct RunOptions {
  std::string pipeline_file;  // --pipeline: template instead of the installed one
  bool print = false;         // --print-pipeline
  long interval = 10;         // --status-interval, seconds
  // Declares these options and parses argv. Returns -1 to go on, else the exit status
  // (kExitUsage on a bad command line).
  int parse(Options &opts, int argc, char **argv, std::vector<std::string> *positional);
};

// Integers from option text, with the option's name in the error line.
bool parse_int(const std::string &option, const std::string &text, long min, long max, long *out);

// HOST[:PORT], [IPV6]:PORT or a bare IPv6 address. Port defaults to default_port.
struct HostPort {
  std::string host;
  int port = 0;
};
std::optional<HostPort> parse_host_port(const std::string &text, int default_port);

bool file_readable(const std::string &path);

}  // namespace tlsframe::tool
