#include "cli.h"

#include <gst/gst.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace tlsframe::tool {

namespace {
std::string g_command = "tlsframe";
bool g_quiet = false;
}  // namespace

void set_command_name(const std::string &name) {
  g_command = "tlsframe " + name;
}
const std::string &command_name() {
  return g_command;
}
void set_quiet(bool q) {
  g_quiet = q;
}
bool quiet() {
  return g_quiet;
}

void info(const std::string &text) {
  if (g_quiet) return;
  std::cout << g_command << ": " << text << std::endl;
}

void error(const std::string &text) {
  std::cout.flush();
  std::cerr << g_command << ": error: " << text << std::endl;
}

struct Options::Slot {
  std::string name, arg, help;
  char short_name = 0;
  GOptionArg kind = G_OPTION_ARG_NONE;
  gboolean flag = FALSE;   // G_OPTION_ARG_NONE
  gchar *text = nullptr;   // G_OPTION_ARG_FILENAME: bytes as given, no charset conversion
  gchar **list = nullptr;  // G_OPTION_ARG_FILENAME_ARRAY
  std::string *out_text = nullptr;
  bool *out_flag = nullptr;
  std::vector<std::string> *out_list = nullptr;
};

Options::Options(std::string parameters, std::string summary, std::string description)
    : parameters_(std::move(parameters)),
      summary_(std::move(summary)),
      description_(std::move(description)) {}

Options::~Options() {
  for (Slot *s : slots_) {
    g_free(s->text);
    g_strfreev(s->list);
    delete s;
  }
}

void Options::value(const char *name, std::string *out, const char *arg, const char *help) {
  slots_.push_back(new Slot{name, arg, help, 0, G_OPTION_ARG_FILENAME});
  slots_.back()->out_text = out;
}

void Options::flag(const char *name, bool *out, const char *help, char short_name) {
  slots_.push_back(new Slot{name, "", help, short_name, G_OPTION_ARG_NONE});
  slots_.back()->out_flag = out;
}

void Options::repeated(const char *name, std::vector<std::string> *out, const char *arg,
                       const char *help) {
  slots_.push_back(new Slot{name, arg, help, 0, G_OPTION_ARG_FILENAME_ARRAY});
  slots_.back()->out_list = out;
}

bool Options::parse(int argc, char **argv, std::vector<std::string> *positional) {
  std::vector<GOptionEntry> entries;
  for (Slot *s : slots_) {
    void *data = s->kind == G_OPTION_ARG_NONE             ? static_cast<void *>(&s->flag)
                 : s->kind == G_OPTION_ARG_FILENAME_ARRAY ? static_cast<void *>(&s->list)
                                                          : static_cast<void *>(&s->text);
    entries.push_back({s->name.c_str(), s->short_name, 0, s->kind, data, s->help.c_str(),
                       s->arg.empty() ? nullptr : s->arg.c_str()});
  }
  entries.push_back({nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr});

  GOptionContext *ctx = g_option_context_new(parameters_.c_str());
  if (!summary_.empty()) g_option_context_set_summary(ctx, summary_.c_str());
  if (!description_.empty()) g_option_context_set_description(ctx, description_.c_str());
  g_option_context_add_main_entries(ctx, entries.data(), nullptr);
  if (gstreamer_) g_option_context_add_group(ctx, gst_init_get_option_group());

  // GOption reads argv[0] as the program: "tlsframe serve" in the usage line.
  g_set_prgname(command_name().c_str());
  std::vector<char *> args;
  std::string program = command_name();
  args.push_back(program.data());
  for (int i = 0; i < argc; ++i) args.push_back(argv[i]);
  int n = static_cast<int>(args.size());
  char **v = args.data();
  GError *err = nullptr;
  bool ok = g_option_context_parse(ctx, &n, &v, &err);
  g_option_context_free(ctx);
  if (!ok) {
    error(std::string(err ? err->message : "bad command line") + " (see --help)");
    g_clear_error(&err);
    return false;
  }
  for (int i = 1; i < n; ++i) {
    if (strcmp(v[i], "--") != 0) positional->push_back(v[i]);
  }
  for (Slot *s : slots_) {
    if (s->out_flag && s->flag) *s->out_flag = true;
    if (s->out_text && s->text) *s->out_text = s->text;
    for (gchar **p = s->list; s->out_list && p && *p; ++p) s->out_list->push_back(*p);
  }
  return true;
}

int RunOptions::parse(Options &opts, int argc, char **argv, std::vector<std::string> *positional) {
  std::string interval_text = std::to_string(interval);
  bool quiet_flag = false;
  opts.value("pipeline", &pipeline_file, "FILE",
             "Use this pipeline template instead of the installed one");
  opts.flag("print-pipeline", &print, "Print the pipeline as gst-launch-1.0 arguments and exit");
  opts.flag("quiet", &quiet_flag, "Print errors only", 'q');
  opts.value("status-interval", &interval_text, "S",
             "Seconds between status lines when not on a terminal (default 10)");
  opts.with_gstreamer();
  if (!opts.parse(argc, argv, positional)) return kExitUsage;
  if (!parse_int("status-interval", interval_text, 1, 3600, &interval)) return kExitUsage;
  // The printed pipeline is the only output of --print-pipeline.
  set_quiet(quiet_flag || print);
  return -1;
}

bool parse_int(const std::string &option, const std::string &text, long min, long max, long *out) {
  char *end = nullptr;
  errno = 0;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || errno || *end || v < min || v > max) {
    error("--" + option + " must be a number from " + std::to_string(min) + " to " +
          std::to_string(max) + ", not '" + text + "'");
    return false;
  }
  *out = v;
  return true;
}

std::optional<HostPort> parse_host_port(const std::string &text, int default_port) {
  HostPort hp;
  std::string port_text;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos) return std::nullopt;
    hp.host = text.substr(1, close - 1);
    std::string rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return std::nullopt;
      port_text = rest.substr(1);
    }
  } else {
    auto colon = text.rfind(':');
    if (colon != std::string::npos && text.find(':') == colon) {
      hp.host = text.substr(0, colon);
      port_text = text.substr(colon + 1);
    } else {
      hp.host = text;  // no port, or a bare IPv6 address
    }
  }
  if (hp.host.empty()) return std::nullopt;
  hp.port = default_port;
  if (!port_text.empty()) {
    char *end = nullptr;
    long v = std::strtol(port_text.c_str(), &end, 10);
    if (*end || v < 1 || v > 65535) return std::nullopt;
    hp.port = static_cast<int>(v);
  }
  return hp;
}

bool file_readable(const std::string &path) {
  return access(path.c_str(), R_OK) == 0;
}

}  // namespace tlsframe::tool
