// Command-line helpers shared by the subcommands: a small option parser,
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

// Parses "--name value", "--name=value" and flags. Options are declared
// before parse(); unknown options and missing values are usage errors.
class Options {
 public:
  void value(const std::string &name, std::string *out, const std::string &help_value);
  void flag(const std::string &name, bool *out);
  void repeated(const std::string &name, std::vector<std::string> *out);
  // Returns false (after printing one error line) on a bad command line.
  bool parse(int argc, char **argv, std::vector<std::string> *positional);

 private:
  struct Spec {
    std::string *value = nullptr;
    bool *flag = nullptr;
    std::vector<std::string> *list = nullptr;
  };
  std::map<std::string, Spec> specs_;
};

// The options of every pipeline command (serve, view, relay): --pipeline,
// --print-pipeline, --quiet, --status-interval and --help.
struct RunOptions {
  std::string pipeline_file;  // --pipeline: template instead of the installed one
  bool print = false;         // --print-pipeline
  long interval = 10;         // --status-interval, seconds
  // Declares these options, parses argv and handles --help. Returns -1 to go on,
  // else the exit status (kExitOk after the usage text, kExitUsage on a bad line).
  int parse(Options &opts, int argc, char **argv, const char *usage,
            std::vector<std::string> *positional);
};

// Integers from option text, with the option's name in the error line.
bool parse_int(const std::string &option, const std::string &text, long min, long max, long *out);

// HOST[:PORT], [IPV6]:PORT or a bare IPv6 address. Port defaults to default_port.
struct HostPort {
  std::string host;
  int port = 0;
};
std::optional<HostPort> parse_host_port(const std::string &text, int default_port);

// Quotes a value for a gst-launch description when it has spaces or specials.
std::string quote(const std::string &value);

bool file_readable(const std::string &path);

}  // namespace tlsframe::tool
