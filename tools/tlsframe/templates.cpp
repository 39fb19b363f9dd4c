#include "templates.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli.h"

namespace tlsframe::tool {

std::optional<std::string> find_template(const std::string &name) {
  std::string file = name + ".pipeline";
  const char *env = std::getenv("TLSFRAME_PIPELINE_DIR");
  for (std::string dir : {std::string(env ? env : ""), std::string(TLSFRAME_PIPELINE_INSTALL_DIR),
                          std::string(TLSFRAME_PIPELINE_SOURCE_DIR)}) {
    if (dir.empty()) continue;
    std::string path = dir + "/" + file;
    if (file_readable(path)) return path;
  }
  return std::nullopt;
}

std::optional<std::string> load_template(const std::string &path) {
  std::ifstream in(path);
  if (!in) {
    error("cannot read pipeline template '" + path + "'");
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<std::string> expand_template(const std::string &text,
                                           const std::map<std::string, std::string> &vars,
                                           const std::string &origin) {
  // Drop comment lines first, so placeholders in comments are not expanded.
  std::string body;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    body += line + " ";
  }
  std::string out;
  for (size_t i = 0; i < body.size();) {
    if (body.compare(i, 2, "${") == 0) {
      auto close = body.find('}', i + 2);
      if (close == std::string::npos) {
        error(origin + ": unterminated ${ in the pipeline template");
        return std::nullopt;
      }
      std::string name = body.substr(i + 2, close - i - 2);
      auto it = vars.find(name);
      if (it == vars.end()) {
        error(origin + ": unknown variable ${" + name + "} in the pipeline template");
        return std::nullopt;
      }
      out += it->second;
      i = close + 1;
    } else {
      out += body[i++];
    }
  }
  // Collapse runs of whitespace (outside quotes) so the result is one tidy line.
  std::string tidy;
  bool in_quotes = false, space = false;
  for (size_t i = 0; i < out.size(); ++i) {
    char c = out[i];
    if (c == '"' && (i == 0 || out[i - 1] != '\\')) in_quotes = !in_quotes;
    if (!in_quotes && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
      space = true;
      continue;
    }
    if (space && !tidy.empty()) tidy += ' ';
    space = false;
    tidy += c;
  }
  return tidy;
}

std::optional<std::string> pipeline_from_template(const std::string &name,
                                                  const std::string &override_path,
                                                  const std::map<std::string, std::string> &vars) {
  std::string path = override_path;
  if (path.empty()) {
    auto found = find_template(name);
    if (!found) {
      error("pipeline template '" + name +
            ".pipeline' not found (looked in $TLSFRAME_PIPELINE_DIR, " +
            TLSFRAME_PIPELINE_INSTALL_DIR + " and " + TLSFRAME_PIPELINE_SOURCE_DIR +
            "); pass one with --pipeline FILE");
      return std::nullopt;
    }
    path = *found;
  }
  auto text = load_template(path);
  if (!text) return std::nullopt;
  return expand_template(*text, vars, path);
}

}  // namespace tlsframe::tool
