// Logging hook for the core. The core has no GStreamer dependency; the
// element glue installs a sink that forwards into GStreamer debug categories.
#pragma once

#include <cstdarg>
#include <functional>
#include <string>

namespace tlsframe::log {

// Same meaning as GStreamer's levels: ERROR can't continue, WARNING one client
// dropped, INFO lifecycle, DEBUG connection events, LOG per buffer.
enum class Level { kError = 1, kWarning = 2, kInfo = 4, kDebug = 5, kLog = 6 };

// Core components, one debug category each.
enum class Component { kTls, kServer, kReceiver };

using Sink = void (*)(Level level, Component component, const char *file, int line,
                      const char *function, const std::string &message);
// Sink that decides whether a level is wanted at all (cheap check before formatting).
using Enabled = bool (*)(Level level, Component component);

// Install the sink (process-wide). nullptr restores the default (stderr for
// ERROR and WARNING when TLSFRAME_DEBUG is set, otherwise nothing).
void set_sink(Sink sink, Enabled enabled);

bool enabled(Level level, Component component);
void write(Level level, Component component, const char *file, int line, const char *function,
           const char *format, ...) __attribute__((format(printf, 6, 7)));

}  // namespace tlsframe::log

#define TF_LOG_AT(level, comp, ...)                                                   \
  do {                                                                                \
    if (::tlsframe::log::enabled(level, comp))                                        \
      ::tlsframe::log::write(level, comp, __FILE__, __LINE__, __func__, __VA_ARGS__); \
  } while (0)
#define TF_ERROR(comp, ...) TF_LOG_AT(::tlsframe::log::Level::kError, comp, __VA_ARGS__)
#define TF_WARNING(comp, ...) TF_LOG_AT(::tlsframe::log::Level::kWarning, comp, __VA_ARGS__)
#define TF_INFO(comp, ...) TF_LOG_AT(::tlsframe::log::Level::kInfo, comp, __VA_ARGS__)
#define TF_DEBUG(comp, ...) TF_LOG_AT(::tlsframe::log::Level::kDebug, comp, __VA_ARGS__)
#define TF_LOGV(comp, ...) TF_LOG_AT(::tlsframe::log::Level::kLog, comp, __VA_ARGS__)
