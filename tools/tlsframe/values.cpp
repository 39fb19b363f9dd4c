#include "values.h"

#include <cstring>

#include "cli.h"
#include "runner.h"

namespace tlsframe::tool {

namespace {

bool plain_char(char c) {
  return g_ascii_isalnum(c) || strchr("/._:+-", c) != nullptr;
}

// The value as GStreamer's parser reads it back exactly (gst/parse: the lexer, then
// gst_parse_unescape, then gst_value_deserialize for a string property).
std::string gst_quoted(const std::string &value) {
  // "NULL" and "\"...\"" mean something else to gst_value_deserialize: wrap those too.
  bool plain = !value.empty() && value != "NULL";
  bool simple = value != "NULL" && g_utf8_validate(value.c_str(), -1, nullptr);
  for (unsigned char c : value) {
    if (!plain_char(static_cast<char>(c))) plain = false;
    if (c == '\\' || c == '"' || c < 0x20 || c == 0x7f) simple = false;
  }
  if (plain) return value;
  if (simple) return "\"" + value + "\"";
  // The lexer ends a quoted string at the first '"' not preceded by '\', so a value ending in
  // '\' cannot simply be quoted. Instead: GStreamer's own string serialization ("..." with
  // '\' escapes and octal for control bytes), escaped once more for gst_parse_unescape. The
  // outer closing quote then always follows a '"', never a '\'.
  GValue v = G_VALUE_INIT;
  g_value_init(&v, G_TYPE_STRING);
  g_value_set_string(&v, value.c_str());
  gchar *serialized = gst_value_serialize(&v);
  g_value_unset(&v);
  std::string out = "\"";
  for (const char *p = serialized; p && *p; ++p) {
    if (*p == '\\' || *p == '"') out += '\\';
    out += *p;
  }
  g_free(serialized);
  return out + "\"";
}

// GStreamer value text (an array, ...) as the parser reads it back: quoted, '\' and '"'
// escaped once for gst_parse_unescape, then deserialized with the property's type.
std::string gst_quoted_serialized(const std::string &text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A word a POSIX shell passes on unchanged.
std::string shell_word(const std::string &word) {
  bool plain = !word.empty();
  for (char c : word) {
    if (!plain_char(c) && c != '=' && c != ',') plain = false;
  }
  if (plain) return word;
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

std::string launch_argument(const std::string &property, const std::string &value) {
  return shell_word(property + "=" + gst_quoted(value));
}

bool apply_values(GstElement *pipeline, const PropertyValues &values) {
  for (const auto &v : values) {
    GstElement *e = gst_bin_get_by_name(GST_BIN(pipeline), v.element.c_str());
    if (!e) {
      error("the pipeline has no element named '" + v.element + "' (for its " + v.property + ")");
      return false;
    }
    GParamSpec *pspec = g_object_class_find_property(G_OBJECT_GET_CLASS(e), v.property.c_str());
    bool ok = pspec != nullptr && (pspec->flags & G_PARAM_WRITABLE);
    if (ok && G_PARAM_SPEC_VALUE_TYPE(pspec) == G_TYPE_STRING) {
      g_object_set(e, v.property.c_str(), v.value.c_str(), nullptr);
    } else if (ok) {
      GValue gv = G_VALUE_INIT;
      g_value_init(&gv, G_PARAM_SPEC_VALUE_TYPE(pspec));
      ok = gst_value_deserialize_with_pspec(&gv, v.value.c_str(), pspec);
      if (ok) g_object_set_property(G_OBJECT(e), v.property.c_str(), &gv);
      g_value_unset(&gv);
    }
    if (!ok) {
      error(std::string(pspec ? "cannot set " : "no property ") + v.property + " of '" + v.element +
            "' (" + G_OBJECT_TYPE_NAME(e) + ")" + (pspec ? " to '" + v.value + "'" : ""));
    }
    gst_object_unref(e);
    if (!ok) return false;
  }
  return true;
}

GstElement *launch_with_values(const std::string &description, const PropertyValues &values) {
  GstElement *pipeline = launch(description);
  if (pipeline && !apply_values(pipeline, values)) {
    gst_object_unref(pipeline);
    return nullptr;
  }
  return pipeline;
}

std::optional<std::string> printable_pipeline(const std::string &description,
                                              const PropertyValues &values) {
  // The description holds no user text, so its words are split on spaces alone.
  std::vector<std::string> words;
  for (size_t i = 0; i < description.size();) {
    size_t end = description.find(' ', i);
    if (end == std::string::npos) end = description.size();
    if (end > i) words.push_back(description.substr(i, end - i));
    i = end + 1;
  }
  std::vector<std::string> extra(words.size());
  for (const auto &v : values) {
    size_t at = 0;
    while (at < words.size() && words[at] != "name=" + v.element) ++at;
    if (at == words.size()) {
      error("the pipeline has no element named '" + v.element + "' (for its " + v.property + ")");
      return std::nullopt;
    }
    extra[at] += " " + (v.serialized ? shell_word(v.property + "=" + gst_quoted_serialized(v.value))
                                     : launch_argument(v.property, v.value));
  }
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    out += (i ? " " : "") + words[i] + extra[i];  // the template's own text, as written
  }
  return out;
}

}  // namespace tlsframe::tool
