// User values (host names, file names, patterns) reach the pipeline as properties of named
// elements, set after gst_parse_launch has built the pipeline from a template that holds only
// structure and validated numbers. No value can change the pipeline's shape.
#pragma once

#include <gst/gst.h>

#include <optional>
#include <string>
#include <vector>

namespace tlsframe::tool {

struct PropertyValue {
  std::string element;      // name= of the element in the pipeline
  std::string property;     // e.g. "location"
  std::string value;        // string properties take it verbatim; other types parse it
  bool serialized = false;  // value is GStreamer value text (e.g. an array): printed unquoted
};
using PropertyValues = std::vector<PropertyValue>;

// Sets every value on the element of that name in pipeline. False after one error line
// (no such element or property, or a value the property does not accept).
bool apply_values(GstElement *pipeline, const PropertyValues &values);

// gst_parse_launch(description), then apply_values. nullptr after one error line.
GstElement *launch_with_values(const std::string &description, const PropertyValues &values);

// For --print-pipeline: the description with each value written right after its element's
// "name=NAME", as gst-launch-1.0 arguments a POSIX shell passes through unchanged (values
// quoted for GStreamer's parser, then for the shell where needed). nullopt after one error
// line (an element name not in the description).
std::optional<std::string> printable_pipeline(const std::string &description,
                                              const PropertyValues &values);

// One "property=value" argument for gst-launch-1.0, as printable_pipeline writes it.
std::string launch_argument(const std::string &property, const std::string &value);

}  // namespace tlsframe::tool
