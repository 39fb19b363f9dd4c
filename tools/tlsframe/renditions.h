// `serve --rendition`: several H.264 encodings of one capture in one stream
// (docs/PROTOCOL.md 8.12). Each rendition is an encoder branch after a tee and
// its own tlsframesink, all with the stream's stream-name and their own
// `rendition`; each viewer gets one rendition at a time.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace tlsframe::tool {

// One rendition as given: NAME=WxH@KBPS.
struct RenditionSpec {
  std::string name;  // a rendition name (core wire::valid_rendition_name()), not "auto"
  long width = 0, height = 0;
  long kbps = 0;  // x264enc bitrate, kbit/s
};

// The ladder `--rendition default` stands for: 720p at 2.5 Mbit/s and 360p at
// 500 kbit/s, both H.264 (see the option's help for why no JPEG rendition).
std::vector<RenditionSpec> default_ladder();

// The --rendition values, each "default" or a comma-separated list of NAME=WxH@KBPS,
// in the order given. Empty when none was given; nullopt after one error line naming
// --rendition (bad syntax, a size or rate out of range, a name used twice).
std::optional<std::vector<RenditionSpec>> parse_rendition_options(
    const std::vector<std::string> &values);

// "720p 1280x720 2500 kbit/s".
std::string rendition_text(const RenditionSpec &r);
// Every rendition's text, comma-separated.
std::string ladder_text(const std::vector<RenditionSpec> &ladder);

// The name of rendition `index`'s sink of the stream whose sink is `sink`:
// "sink-r0", "sink-0-r1" (indexes, never user text).
std::string rendition_sink_element(const std::string &sink, size_t index);
// The tee that feeds a stream's renditions: "tee" (one stream) or "tee-0".
std::string tee_element(const std::string &sink);

}  // namespace tlsframe::tool
