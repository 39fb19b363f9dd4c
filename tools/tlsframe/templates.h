// Pipeline templates: text files in pipelines/ with ${NAME} placeholders.
// Lines starting with '#' are comments; the rest is joined into one
// gst-launch-1.0 description.
#pragma once

#include <map>
#include <optional>
#include <string>

namespace tlsframe::tool {

// Where NAME.pipeline is looked for, in order: $TLSFRAME_PIPELINE_DIR, the
// installed data directory, then the source tree's pipelines/ (for runs from
// the build tree). Returns the first existing path, or nullopt.
std::optional<std::string> find_template(const std::string &name);

// Reads a template file. nullopt (after an error line) when unreadable.
std::optional<std::string> load_template(const std::string &path);

// Replaces every ${NAME} with vars[NAME]; an unknown name is an error (one
// line, nullopt). Comments dropped, whitespace collapsed to single spaces.
std::optional<std::string> expand_template(const std::string &text,
                                           const std::map<std::string, std::string> &vars,
                                           const std::string &origin);

// find + load + expand; `override_path` (from --pipeline) wins when not empty.
std::optional<std::string> pipeline_from_template(const std::string &name,
                                                  const std::string &override_path,
                                                  const std::map<std::string, std::string> &vars);

}  // namespace tlsframe::tool
