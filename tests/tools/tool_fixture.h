// Shared by the tool tests: the tlsframe binary from the build tree, a
// temporary directory per test, certificates made by `tlsframe certs`, and
// servers started with --port 0 whose real port is read from their output.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tools/process.h"

namespace tlsframe::test {

using namespace std::chrono_literals;

// Environment for tool children that must print nothing but their own lines.
std::map<std::string, std::string> quiet_env();

class ToolTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  static std::string tool() { return TLSFRAME_TOOL_PATH; }
  const std::string &dir() const { return dir_; }
  // A certificate set made by `tlsframe certs` in dir()/name (client "alice").
  std::string make_certs(const std::string &name = "certs",
                         const std::vector<std::string> &hosts = {"localhost", "127.0.0.1", "::1"});
  // Starts `tlsframe <args>` (serve or relay) and waits for "listening on port N".
  // Returns the port (0 with an ADD_FAILURE on timeout).
  int start_server(std::unique_ptr<Process> *proc, const std::vector<std::string> &args);
  std::vector<std::string> cmd(const std::vector<std::string> &args) const;

 private:
  std::string dir_;
};

// Runs gst-discoverer-1.0 on path; the duration in seconds (-1 if unreadable).
double discovered_duration(const std::string &path, std::string *output = nullptr);

}  // namespace tlsframe::test
