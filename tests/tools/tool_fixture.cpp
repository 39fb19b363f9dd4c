#include "tools/tool_fixture.h"

#include <glib.h>

#include <cstdlib>

namespace tlsframe::test {

std::map<std::string, std::string> quiet_env() {
  // An empty value unsets: no GStreamer debug output, no display.
  return {{"GST_DEBUG", ""}, {"DISPLAY", ""}, {"WAYLAND_DISPLAY", ""}};
}

void ToolTest::SetUp() {
  gchar *d = g_dir_make_tmp("tlsframe-tool-XXXXXX", nullptr);
  ASSERT_NE(d, nullptr);
  dir_ = d;
  g_free(d);
}

void ToolTest::TearDown() {
  if (dir_.empty()) return;
  // Bounded recursive removal of our own temporary directory.
  run_process({"/bin/rm", "-rf", dir_}, 10s);
}

std::vector<std::string> ToolTest::cmd(const std::vector<std::string> &args) const {
  std::vector<std::string> v = {tool()};
  v.insert(v.end(), args.begin(), args.end());
  return v;
}

std::string ToolTest::make_certs(const std::string &name, const std::vector<std::string> &hosts) {
  std::string out = dir_ + "/" + name;
  std::vector<std::string> args = {"certs", "--out", out, "--client", "alice"};
  for (const auto &h : hosts) {
    args.push_back("--host");
    args.push_back(h);
  }
  RunResult r = run_process(cmd(args), 30s, quiet_env());
  EXPECT_EQ(r.status, 0) << r.transcript;
  return out;
}

int ToolTest::start_server(std::unique_ptr<Process> *proc, const std::vector<std::string> &args) {
  *proc = std::make_unique<Process>(cmd(args));
  auto line = (*proc)->wait_line("listening on port [0-9]+", 20s);
  if (!line) {
    ADD_FAILURE() << "no 'listening on port' line from " << args[0] << ":\n"
                  << (*proc)->transcript();
    return 0;
  }
  return std::atoi(match_group(*line, "listening on port ([0-9]+)").c_str());
}

double discovered_duration(const std::string &path, std::string *output) {
  RunResult r = run_process({"/usr/bin/gst-discoverer-1.0", path}, 30s);
  if (output) *output = r.transcript;
  for (const auto &line : r.out) {
    std::string h = match_group(line, "Duration: ([0-9]+):([0-9]+):([0-9.]+)", 1);
    if (h.empty()) continue;
    std::string m = match_group(line, "Duration: ([0-9]+):([0-9]+):([0-9.]+)", 2);
    std::string s = match_group(line, "Duration: ([0-9]+):([0-9]+):([0-9.]+)", 3);
    return std::atof(h.c_str()) * 3600 + std::atof(m.c_str()) * 60 + std::atof(s.c_str());
  }
  return -1;
}

}  // namespace tlsframe::test
