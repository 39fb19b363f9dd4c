#include "cli.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
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

void Options::value(const std::string &name, std::string *out, const std::string &) {
  specs_[name].value = out;
}
void Options::flag(const std::string &name, bool *out) {
  specs_[name].flag = out;
}
void Options::repeated(const std::string &name, std::vector<std::string> *out) {
  specs_[name].list = out;
}

bool Options::parse(int argc, char **argv, std::vector<std::string> *positional) {
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      if (arg.size() > 1 && arg[0] == '-' && arg != "-") {
        error("unknown option '" + arg + "' (see --help)");
        return false;
      }
      positional->push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), val;
    bool has_val = false;
    auto eq = name.find('=');
    if (eq != std::string::npos) {
      val = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_val = true;
    }
    auto it = specs_.find(name);
    if (it == specs_.end()) {
      error("unknown option '--" + name + "' (see --help)");
      return false;
    }
    Spec &s = it->second;
    if (s.flag) {
      if (has_val) {
        error("option '--" + name + "' takes no value");
        return false;
      }
      *s.flag = true;
      continue;
    }
    if (!has_val) {
      if (i + 1 >= argc) {
        error("option '--" + name + "' needs a value");
        return false;
      }
      val = argv[++i];
    }
    if (s.value) *s.value = val;
    if (s.list) s.list->push_back(val);
  }
  return true;
}

int RunOptions::parse(Options &opts, int argc, char **argv, const char *usage,
                      std::vector<std::string> *positional) {
  std::string interval_text = std::to_string(interval);
  bool quiet_flag = false, help = false;
  opts.value("pipeline", &pipeline_file, "FILE");
  opts.flag("print-pipeline", &print);
  opts.flag("quiet", &quiet_flag);
  opts.value("status-interval", &interval_text, "S");
  opts.flag("help", &help);
  if (!opts.parse(argc, argv, positional)) return kExitUsage;
  if (help) {
    std::cout << usage;
    return kExitOk;
  }
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

std::string quote(const std::string &value) {
  bool plain = !value.empty();
  for (char c : value) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_' || c == '-' ||
          c == ':' || c == '+')) {
      plain = false;
    }
  }
  if (plain) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool file_readable(const std::string &path) {
  return access(path.c_str(), R_OK) == 0;
}

}  // namespace tlsframe::tool
