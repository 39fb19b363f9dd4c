#include "switcher.h"

#include <gst/video/video.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "cli.h"
#include "streams.h"

namespace tlsframe::tool {

namespace {

constexpr size_t kMaxLine = 4096;

std::vector<std::string> split_words(const std::string &line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::string trim(const std::string &text) {
  auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

// The text after the first `n` words of line, trimmed.
std::string after_words(const std::string &line, size_t n) {
  size_t pos = 0;
  for (size_t i = 0; i < n; ++i) {
    pos = line.find_first_not_of(" \t", pos);
    if (pos == std::string::npos) return "";
    pos = line.find_first_of(" \t", pos);
    if (pos == std::string::npos) return "";
  }
  return trim(line.substr(pos));
}

}  // namespace

Switcher::~Switcher() {
  for (auto &s : streams_) {
    for (GstPad *p : s.pads) gst_object_unref(p);
  }
}

bool Switcher::add(const std::string &name, GstElement *selector, std::vector<GstElement *> sinks,
                   std::vector<Input> inputs) {
  Stream s{name, selector, std::move(sinks), std::move(inputs), {}, 0};
  if (selector) {
    for (size_t i = 0; i < s.inputs.size(); ++i) {
      std::string pad_name = "sink_" + std::to_string(i);
      GstPad *pad = gst_element_get_static_pad(selector, pad_name.c_str());
      if (!pad) {
        error("the pipeline's input-selector for stream " + stream_label(name) + " has no pad " +
              pad_name);
        for (GstPad *p : s.pads) gst_object_unref(p);
        return false;
      }
      s.pads.push_back(pad);
    }
    g_object_set(selector, "active-pad", s.pads[0], nullptr);
  }
  streams_.push_back(std::move(s));
  return true;
}

std::string Switcher::line_for(const Stream &s) const {
  std::string text = "stream " + stream_label(s.name) + ": ";
  for (size_t i = 0; i < s.inputs.size(); ++i) {
    text += (i ? ", [" : "[") + std::to_string(i) + "] " + s.inputs[i].label;
    if (s.inputs.size() > 1 && i == s.active) text += " (active)";
  }
  return text;
}

std::vector<std::string> Switcher::describe() const {
  std::vector<std::string> lines;
  for (const auto &s : streams_) lines.push_back(line_for(s));
  return lines;
}

std::string Switcher::example() const {
  for (const auto &s : streams_) {
    if (s.selector) return "switch " + (s.name.empty() ? std::string() : s.name + " ") + "1";
  }
  return "";
}

long Switcher::find_input(const Stream &s, const std::string &which) {
  if (!which.empty() && which.find_first_not_of("0123456789") == std::string::npos &&
      which.size() < 6) {
    long i = std::atol(which.c_str());
    return i < static_cast<long>(s.inputs.size()) ? i : -1;
  }
  for (size_t i = 0; i < s.inputs.size(); ++i) {
    if (s.inputs[i].label == which) return static_cast<long>(i);
  }
  return -1;
}

Switcher::Reply Switcher::switch_to(Stream &s, size_t index) {
  const std::string label = stream_label(s.name);
  if (index == s.active) {
    return {true, "stream " + label + ": [" + std::to_string(index) + "] " + s.inputs[index].label +
                      " is already active"};
  }
  // The new source from its next frame on; then a keyframe at once, so that viewers of a
  // delta-unit stream (H.264) see it whole within a frame instead of at the next GOP. The
  // caps after the selector stay as they were: every input is converted to the same ones.
  // Each rendition's encoder is asked from its own sink (a tee passes the event up one
  // branch only).
  g_object_set(s.selector, "active-pad", s.pads[index], nullptr);
  s.active = index;
  const guint count = ++keyframe_requests_;
  for (GstElement *sink : s.sinks) {
    gst_element_send_event(
        sink, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, count));
  }
  return {true, "stream " + label + ": switched to [" + std::to_string(index) + "] " +
                    s.inputs[index].label + ": " + s.inputs[index].what};
}

std::vector<Switcher::Reply> Switcher::switch_command(const std::vector<std::string> &words,
                                                      const std::string &line) {
  const std::string usage = "usage: switch [NAME] INDEX|SOURCE";
  if (words.size() < 2) return {{false, usage}};
  std::vector<Stream *> switchable;
  for (auto &s : streams_) {
    if (s.selector) switchable.push_back(&s);
  }
  if (switchable.empty()) {
    return {{false,
             "no stream has several sources to switch between (give --stream NAME=SOURCE "
             "more than once for one NAME)"}};
  }
  // "switch INDEX|SOURCE" when one stream can switch and the rest names one of its sources.
  if (switchable.size() == 1) {
    long i = find_input(*switchable[0], after_words(line, 1));
    if (i >= 0) return {switch_to(*switchable[0], static_cast<size_t>(i))};
  }
  const std::string name = words[1] == "\"\"" ? std::string() : words[1];
  for (auto *s : switchable) {
    if (s->name != name) continue;
    std::string which = after_words(line, 2);
    long i = find_input(*s, which);
    if (i < 0) {
      return {{false,
               "stream " + stream_label(name) + " has no source '" + which + "': " + line_for(*s)}};
    }
    return {switch_to(*s, static_cast<size_t>(i))};
  }
  for (const auto &s : streams_) {
    if (s.name == name) {
      return {{false, "stream " + stream_label(name) + " has one source: nothing to switch"}};
    }
  }
  std::string names;
  for (auto *s : switchable) names += (names.empty() ? "" : ", ") + stream_label(s->name);
  return {{false, "no stream '" + name + "' to switch (" + usage +
                      "; streams with several "
                      "sources: " +
                      names + ")"}};
}

std::vector<Switcher::Reply> Switcher::command(const std::string &line) {
  auto words = split_words(line);
  if (words.empty()) return {};
  if (words[0] == "switch") return switch_command(words, line);
  std::vector<Reply> replies;
  if (words[0] == "list" && words.size() == 1) {
    for (const auto &l : describe()) replies.push_back({true, l});
    return replies;
  }
  if (words[0] == "help" && words.size() == 1) {
    replies.push_back({true,
                       "commands: switch [NAME] INDEX|SOURCE (NAME may be left out when "
                       "one stream has several sources), list, help"});
    std::string ex = example();
    if (!ex.empty()) replies.push_back({true, "for example: " + ex});
    return replies;
  }
  return {{false, "unknown command '" + trim(line) + "' (commands: switch, list, help)"}};
}

CommandReader::CommandReader(std::function<void(const std::string &)> on_line)
    : on_line_(std::move(on_line)) {
  channel_ = g_io_channel_unix_new(STDIN_FILENO);
  // Raw bytes, read as they come: lines are split here, and a partial line never blocks.
  g_io_channel_set_encoding(channel_, nullptr, nullptr);
  g_io_channel_set_buffered(channel_, FALSE);
  g_io_channel_set_close_on_unref(channel_, FALSE);
  watch_ = g_io_add_watch(channel_, static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR),
                          &CommandReader::on_input, this);
}

CommandReader::~CommandReader() {
  if (watch_) g_source_remove(watch_);
  g_io_channel_unref(channel_);
}

void CommandReader::take(const char *data, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    char c = data[i];
    if (c == '\n') {
      if (!overlong_) on_line_(partial_);
      partial_.clear();
      overlong_ = false;
    } else if (!overlong_) {
      partial_ += c;
      if (partial_.size() > kMaxLine) {
        error("command line longer than " + std::to_string(kMaxLine) + " bytes: ignored");
        partial_.clear();
        overlong_ = true;
      }
    }
  }
}

gboolean CommandReader::on_input(GIOChannel *channel, GIOCondition, gpointer data) {
  auto *self = static_cast<CommandReader *>(data);
  char buf[1024];
  gsize n = 0;
  GIOStatus status = g_io_channel_read_chars(channel, buf, sizeof buf, &n, nullptr);
  if (status == G_IO_STATUS_NORMAL) {
    self->take(buf, n);
    return G_SOURCE_CONTINUE;
  }
  if (status == G_IO_STATUS_AGAIN) return G_SOURCE_CONTINUE;
  // End of input or a read error: the last unterminated line counts, then no more commands.
  if (!self->partial_.empty() && !self->overlong_) self->on_line_(self->partial_);
  self->partial_.clear();
  self->watch_ = 0;
  return G_SOURCE_REMOVE;
}

}  // namespace tlsframe::tool
