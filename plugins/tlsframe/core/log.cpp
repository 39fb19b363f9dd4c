#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace tlsframe::log {
namespace {

std::atomic<Sink> g_sink{nullptr};
std::atomic<Enabled> g_enabled{nullptr};

bool default_enabled(Level level, Component) {
  static const bool on = std::getenv("TLSFRAME_DEBUG") != nullptr;
  return on && level <= Level::kWarning;
}

const char *component_name(Component c) {
  switch (c) {
    case Component::kTls:
      return "tls";
    case Component::kServer:
      return "server";
    case Component::kReceiver:
      return "receiver";
  }
  return "?";
}

}  // namespace

void set_sink(Sink sink, Enabled is_enabled) {
  g_enabled.store(is_enabled);
  g_sink.store(sink);
}

bool enabled(Level level, Component component) {
  Enabled e = g_enabled.load();
  return e ? e(level, component) : default_enabled(level, component);
}

void write(Level level, Component component, const char *file, int line, const char *function,
           const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  va_list ap2;
  va_copy(ap2, ap);
  int n = std::vsnprintf(nullptr, 0, format, ap);
  va_end(ap);
  std::string text;
  if (n > 0) {
    std::vector<char> buf(static_cast<size_t>(n) + 1);
    std::vsnprintf(buf.data(), buf.size(), format, ap2);
    text.assign(buf.data(), static_cast<size_t>(n));
  }
  va_end(ap2);
  Sink s = g_sink.load();
  if (s) {
    s(level, component, file, line, function, text);
  } else {
    std::fprintf(stderr, "tlsframe-%s: %s\n", component_name(component), text.c_str());
  }
}

}  // namespace tlsframe::log
