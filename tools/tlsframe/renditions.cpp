#include "renditions.h"

#include <sstream>

#include "cli.h"
#include "core/wire_fields.h"

namespace tlsframe::tool {

namespace {

constexpr const char *kSyntax = "NAME=WIDTHxHEIGHT@KBPS (e.g. 360p=640x360@500) or default";

// A decimal number between min and max in text (the whole of it).
bool read_number(const std::string &text, long min, long max, long *out) {
  if (text.empty() || text.size() > 9) return false;
  long v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < min || v > max) return false;
  *out = v;
  return true;
}

// One NAME=WxH@KBPS; nullopt after an error line.
std::optional<RenditionSpec> parse_one(const std::string &item) {
  auto bad = [&](const std::string &why) {
    error("--rendition '" + item + "': " + why + "; the form is " + kSyntax);
    return std::nullopt;
  };
  const auto eq = item.find('=');
  if (eq == std::string::npos) return bad("no '='");
  RenditionSpec r;
  r.name = item.substr(0, eq);
  if (r.name == wire::kRenditionAuto) {
    return bad("\"auto\" is what viewers ask for to let the server choose, not a rendition name");
  }
  if (!wire::valid_rendition_name(r.name)) {
    return bad("the name must be 1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.'");
  }
  const std::string rest = item.substr(eq + 1);
  const auto x = rest.find('x'), at = rest.find('@');
  if (x == std::string::npos || at == std::string::npos || at < x) {
    return bad("expected WIDTHxHEIGHT@KBPS after the name");
  }
  // x264 encodes 4:2:0 pictures: even sizes only.
  if (!read_number(rest.substr(0, x), 16, 7680, &r.width) || r.width % 2 != 0) {
    return bad("the width must be an even number from 16 to 7680");
  }
  if (!read_number(rest.substr(x + 1, at - x - 1), 16, 4320, &r.height) || r.height % 2 != 0) {
    return bad("the height must be an even number from 16 to 4320");
  }
  if (!read_number(rest.substr(at + 1), 16, 200000, &r.kbps)) {
    return bad("the bitrate must be a number of kbit/s from 16 to 200000");
  }
  return r;
}

}  // namespace

std::vector<RenditionSpec> default_ladder() {
  return {{"720p", 1280, 720, 2500}, {"360p", 640, 360, 500}};
}

std::optional<std::vector<RenditionSpec>> parse_rendition_options(
    const std::vector<std::string> &values) {
  std::vector<RenditionSpec> out;
  bool ladder = false;
  for (const auto &value : values) {
    std::istringstream items(value);
    for (std::string item; std::getline(items, item, ',');) {
      if (item == "default") {
        ladder = true;
        continue;
      }
      auto r = parse_one(item);
      if (!r) return std::nullopt;
      for (const auto &o : out) {
        if (o.name == r->name) {
          error("--rendition: the name '" + r->name +
                "' is given twice; each rendition of a stream needs its own");
          return std::nullopt;
        }
      }
      out.push_back(*r);
    }
    if (value.empty() || value.back() == ',') {
      error("--rendition '" + value + "': an empty rendition; the form is " + kSyntax);
      return std::nullopt;
    }
  }
  if (ladder && !out.empty()) {
    error("--rendition default stands alone: it is the ladder " + ladder_text(default_ladder()) +
          "; to change it, list every rendition instead");
    return std::nullopt;
  }
  if (ladder) return default_ladder();
  return out;
}

std::string rendition_text(const RenditionSpec &r) {
  return r.name + " " + std::to_string(r.width) + "x" + std::to_string(r.height) + " " +
         std::to_string(r.kbps) + " kbit/s";
}

std::string ladder_text(const std::vector<RenditionSpec> &ladder) {
  std::string text;
  for (const auto &r : ladder) text += (text.empty() ? "" : ", ") + rendition_text(r);
  return text;
}

std::string rendition_sink_element(const std::string &sink, size_t index) {
  return sink + "-r" + std::to_string(index);
}

std::string tee_element(const std::string &sink) {
  // "sink" -> "tee", "sink-3" -> "tee-3": the stream's index, as its sink has.
  return "tee" + sink.substr(4);
}

}  // namespace tlsframe::tool
