// tlsframe certs, --print-pipeline and the one-line errors, end to end with the
// binary from the build tree.
#include <gst/gst.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <tuple>

#include "tools/tool_fixture.h"

namespace tlsframe::test {
namespace {

// A loopback port nobody listens on: bound, read, closed.
int closed_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// An error for people: a non-zero exit and exactly one line on stderr, no GLib noise.
void expect_one_error_line(const RunResult &r, const std::string &must_contain) {
  EXPECT_NE(r.status, 0) << r.transcript;
  ASSERT_EQ(r.err.size(), 1u) << r.transcript;
  EXPECT_NE(r.err[0].find("error: "), std::string::npos) << r.err[0];
  EXPECT_NE(r.err[0].find(must_contain), std::string::npos)
      << "'" << must_contain << "' not in: " << r.err[0];
  for (const auto &l : r.out) {
    EXPECT_EQ(l.find("CRITICAL"), std::string::npos) << l;
    EXPECT_EQ(l.find("WARNING"), std::string::npos) << l;
  }
}

class CertsTest : public ToolTest {};

TEST_F(CertsTest, MakesChainThatOpensslVerifiesWithKeysPrivateAndFingerprintsPrinted) {
  std::string out = dir() + "/pki";
  RunResult r =
      run_process(cmd({"certs", "--out", out, "--host", "cam1.lan", "--host", "192.0.2.20",
                       "--host", "::1", "--client", "alice", "--client", "bob"}),
                  30s, quiet_env());
  ASSERT_EQ(r.status, 0) << r.transcript;
  for (const char *key : {"ca.key", "server.key", "client-alice.key", "client-bob.key"}) {
    EXPECT_EQ(mode_of(out + "/" + key), 0600) << key;
  }
  RunResult v =
      run_process({"/usr/bin/openssl", "verify", "-CAfile", out + "/ca.pem", out + "/server.pem",
                   out + "/client-alice.pem", out + "/client-bob.pem"},
                  30s);
  EXPECT_EQ(v.status, 0) << v.transcript;
  EXPECT_EQ(v.out.size(), 3u) << v.transcript;
  for (const auto &l : v.out) EXPECT_NE(l.find(": OK"), std::string::npos) << l;

  RunResult san = run_process({"/usr/bin/openssl", "x509", "-in", out + "/server.pem", "-noout",
                               "-ext", "subjectAltName,extendedKeyUsage"},
                              30s);
  std::string text = san.transcript;
  EXPECT_NE(text.find("DNS:cam1.lan"), std::string::npos) << text;
  EXPECT_NE(text.find("IP Address:192.0.2.20"), std::string::npos) << text;
  EXPECT_NE(text.find("IP Address:0:0:0:0:0:0:0:1"), std::string::npos) << text;
  EXPECT_NE(text.find("TLS Web Server Authentication"), std::string::npos) << text;

  RunResult key = run_process(
      {"/usr/bin/openssl", "pkey", "-in", out + "/server.key", "-noout", "-text_pub"}, 30s);
  EXPECT_NE(key.transcript.find("prime256v1"), std::string::npos) << key.transcript;

  // The printed SHA-256 fingerprint is OpenSSL's.
  RunResult fp = run_process(
      {"/usr/bin/openssl", "x509", "-in", out + "/server.pem", "-noout", "-fingerprint", "-sha256"},
      30s);
  ASSERT_EQ(fp.out.size(), 1u) << fp.transcript;
  std::string expected = fp.out[0].substr(fp.out[0].find('=') + 1);
  bool found = false;
  for (const auto &l : r.out) found |= l == "SHA-256 server.pem " + expected;
  EXPECT_TRUE(found) << expected << "\n" << r.transcript;
}

TEST_F(CertsTest, NeverOverwritesWithoutForce) {
  std::string out = make_certs();
  std::string before = read_text(out + "/server.pem");
  RunResult again = run_process(cmd({"certs", "--out", out}), 30s, quiet_env());
  expect_one_error_line(again, "--force");
  EXPECT_EQ(read_text(out + "/server.pem"), before);

  RunResult forced = run_process(cmd({"certs", "--out", out, "--force"}), 30s, quiet_env());
  EXPECT_EQ(forced.status, 0) << forced.transcript;
  EXPECT_NE(read_text(out + "/server.pem"), before);
  EXPECT_EQ(mode_of(out + "/server.key"), 0600);
}

// Finding 10: certs/make-dev-certs.sh made its directory before `umask 077`, so under
// umask 000 the directory was 0777 and another local user could swap ca.pem.
TEST_F(CertsTest, DevCertsScriptUnderUmask000KeepsTheDirectoryPrivate) {
  std::string out = dir() + "/new/dev";
  RunResult r = run_process({"/bin/bash", "-c", "umask 000 && exec bash \"$0\" \"$1\"",
                             std::string(TLSFRAME_SOURCE_ROOT) + "/certs/make-dev-certs.sh", out},
                            60s, quiet_env());
  ASSERT_EQ(r.status, 0) << r.transcript;
  EXPECT_EQ(mode_of(out), 0700);
  EXPECT_EQ(mode_of(dir() + "/new") & 022, 0) << "parent made group/other-writable";
  for (const char *key : {"ca.key", "server.key", "client.key"}) {
    EXPECT_EQ(mode_of(out + "/" + key), 0600) << key;
  }
  for (const char *pem : {"ca.pem", "server.pem", "client.pem"}) {
    EXPECT_EQ(mode_of(out + "/" + pem) & 022, 0) << pem;
  }
}

class PrintPipelineTest : public ToolTest {
 protected:
  static void SetUpTestSuite() { gst_init(nullptr, nullptr); }
};

// The printed pipeline as gst-launch-1.0 builds it: the line split into arguments as a POSIX
// shell does (g_shell_parse_argv), then gst_parse_launchv. nullptr (with *err) on failure.
GstElement *launch_printed(const std::string &line, std::string *err) {
  gchar **argv = nullptr;
  GError *e = nullptr;
  if (!g_shell_parse_argv(line.c_str(), nullptr, &argv, &e)) {
    *err = e->message;
    g_clear_error(&e);
    return nullptr;
  }
  GstElement *p = gst_parse_launchv(const_cast<const gchar **>(argv), &e);
  g_strfreev(argv);
  if (e) {
    *err = e->message;
    g_clear_error(&e);
    if (p) gst_object_unref(p);
    return nullptr;
  }
  return p;
}

// What a pipeline is made of: "factory" for each element, and "factory name=NAME" for the
// elements the template names (automatic names like queue3 depend on the process).
std::vector<std::string> element_list(GstElement *pipeline) {
  std::vector<std::string> out;
  GstIterator *it = gst_bin_iterate_recurse(GST_BIN(pipeline));
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    auto *e = GST_ELEMENT(g_value_get_object(&item));
    std::string factory = GST_OBJECT_NAME(gst_element_get_factory(e));
    std::string name = GST_OBJECT_NAME(e);
    bool automatic = name.rfind(factory, 0) == 0 &&
                     name.find_first_not_of("0123456789", factory.size()) == std::string::npos;
    out.push_back(automatic ? factory : factory + " name=" + name);
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  std::sort(out.begin(), out.end());
  return out;
}

std::string string_property(GstElement *pipeline, const char *element, const char *property) {
  GstElement *e = gst_bin_get_by_name(GST_BIN(pipeline), element);
  if (!e) return "(no element " + std::string(element) + ")";
  gchar *v = nullptr;
  g_object_get(e, property, &v, nullptr);
  std::string out = v ? v : "(null)";
  g_free(v);
  gst_object_unref(e);
  return out;
}

// Every printed pipeline is one line that gst_parse_launch builds into a pipeline.
TEST_F(PrintPipelineTest, OutputParsesWithGstParseLaunch) {
  std::string certs = make_certs();
  std::string video = dir() + "/in.mkv";
  std::ofstream(video) << "x";  // file:PATH only needs a readable file to print
  std::vector<std::vector<std::string>> cases = {
      {"serve", "--certs", certs, "--source", "test"},
      {"serve", "--certs", certs, "--source", "auto", "--port", "0"},
      {"serve", "--certs", certs, "--source", "test:smpte", "--codec", "h264", "--bitrate", "800",
       "--gop", "15", "--width", "320", "--height", "240", "--fps", "15", "--mtls"},
      {"serve", "--certs", certs, "--source", "file:" + video, "--no-zerolatency", "--codec",
       "h264"},
      {"view", "127.0.0.1:9999", "--certs", certs, "--codec", "jpeg", "--display", "none"},
      {"view", "[::1]:9999", "--certs", certs, "--codec", "h264", "--display", "none", "--record",
       dir() + "/out file.mkv", "--snapshot", dir() + "/snap.jpg", "--frames", "10", "--client",
       "alice"},
      {"view", "localhost", "--certs", certs, "--codec", "decodebin", "--record", dir() + "/o.mp4"},
      {"relay", "--from", "127.0.0.1:9999", "--port", "0", "--certs", certs},
  };
  GstPluginFeature *probe = gst_registry_lookup_feature(gst_registry_get(), "cvcamsrc");
  if (probe) {
    cases.push_back({"serve", "--certs", certs, "--source", "opencv:1"});
    gst_object_unref(probe);
  }
  for (const auto &args : cases) {
    std::vector<std::string> a = args;
    a.push_back("--print-pipeline");
    RunResult r = run_process(cmd(a), 30s, quiet_env());
    ASSERT_EQ(r.status, 0) << r.transcript;
    ASSERT_EQ(r.out.size(), 1u) << r.transcript;
    EXPECT_TRUE(r.err.empty()) << r.transcript;
    std::string err;
    GstElement *p = launch_printed(r.out[0], &err);
    EXPECT_NE(p, nullptr) << err << "\n" << r.out[0];
    if (p) gst_object_unref(p);
  }
}

// Issue 14: user values are properties set by element name, so no value (a backslash at the
// end, quotes, " ! ", "name=") changes the elements; the printed pipeline gives each
// element its value back exactly.
TEST_F(PrintPipelineTest, CraftedValuesLeaveTheElementsAsTheyAre) {
  const std::string tail = "\\";  // a value ending in one backslash
  const std::string crafted =
      "x\" ! identity name=INJECTED ! filesink location=OUT name=y \"" + tail;
  const std::string host = "h" + tail;
  std::string certs = make_certs();
  std::string odd_certs = make_certs("c \" ! identity name=INJ2 ! fakesink '" + tail + "x");
  std::string plain_file = dir() + "/in.mkv", odd_file = dir() + "/" + crafted;
  std::ofstream(plain_file) << "x";
  std::ofstream(odd_file) << "x";
  struct Case {
    std::vector<std::string> plain, odd;
    std::vector<std::tuple<std::string, std::string, std::string>> expect;  // element, prop, value
  };
  std::vector<Case> cases = {
      {{"view", "localhost", "--certs", certs, "--codec", "jpeg", "--display", "none", "--record",
        dir() + "/o.mkv", "--snapshot", dir() + "/s.jpg", "--server-name", "cam"},
       {"view", host, "--certs", odd_certs, "--codec", "jpeg", "--display", "none", "--record",
        dir() + "/" + crafted + ".mkv", "--snapshot", dir() + "/" + crafted, "--server-name",
        crafted},
       {{"src", "host", host},
        {"src", "server-name", crafted},
        {"src", "ca-file", odd_certs + "/ca.pem"},
        {"record", "location", dir() + "/" + crafted + ".mkv"},
        {"snapshot", "location", dir() + "/" + crafted}}},
      {{"relay", "--from", "up", "--certs", certs, "--server-name", "cam", "--mtls"},
       {"relay", "--from", "up" + tail, "--certs", odd_certs, "--server-name", crafted, "--bind",
        crafted, "--mtls"},
       {{"src", "host", "up" + tail},
        {"src", "server-name", crafted},
        {"sink", "host", crafted},
        {"sink", "cert-file", odd_certs + "/server.pem"},
        {"sink", "ca-file", odd_certs + "/ca.pem"}}},
      {{"serve", "--certs", certs, "--source", "file:" + plain_file},
       {"serve", "--certs", odd_certs, "--source", "file:" + odd_file, "--bind", host},
       {{"source", "location", odd_file},
        {"sink", "host", host},
        {"sink", "key-file", odd_certs + "/server.key"}}},
  };
  for (const auto &c : cases) {
    std::vector<std::string> lists[2];
    for (int odd = 0; odd < 2; ++odd) {
      auto args = odd ? c.odd : c.plain;
      args.push_back("--print-pipeline");
      RunResult r = run_process(cmd(args), 30s, quiet_env());
      ASSERT_EQ(r.status, 0) << r.transcript;
      ASSERT_EQ(r.out.size(), 1u) << r.transcript;
      std::string err;
      GstElement *p = launch_printed(r.out[0], &err);
      ASSERT_NE(p, nullptr) << err << "\n" << r.out[0];
      lists[odd] = element_list(p);
      for (const auto &[element, prop, value] : odd ? c.expect : decltype(c.expect){}) {
        EXPECT_EQ(string_property(p, element.c_str(), prop.c_str()), value)
            << element << "." << prop << " from: " << r.out[0];
      }
      gst_object_unref(p);
    }
    EXPECT_EQ(lists[0], lists[1]) << c.plain[0];
    for (const auto &e : lists[1]) EXPECT_EQ(e.find("INJ"), std::string::npos) << e;
  }
}

// The printed pipeline with paths full of shell and gst-launch specials runs under
// gst-launch-1.0 through a shell.
TEST_F(PrintPipelineTest, PrintedPipelineWithOddPathsRunsWithGstLaunch) {
  std::string certs = make_certs("my certs \"q\" 'it''s' ! x \\");
  RunResult r = run_process(
      cmd({"serve", "--certs", certs, "--source", "test", "--port", "0", "--print-pipeline"}), 30s,
      quiet_env());
  ASSERT_EQ(r.status, 0) << r.transcript;
  ASSERT_EQ(r.out.size(), 1u) << r.transcript;
  Process launch({"/bin/sh", "-c", "exec gst-launch-1.0 " + r.out[0]}, quiet_env());
  auto line = launch.wait_line("Setting pipeline to PLAYING|ERROR|erroneous", 20s);
  ASSERT_TRUE(line) << launch.transcript();
  EXPECT_NE(line->find("PLAYING"), std::string::npos) << launch.transcript();
  launch.signal(SIGINT);
  EXPECT_TRUE(launch.wait_exit(15s)) << launch.transcript();
}

// The printed server pipeline runs as it is under gst-launch-1.0 (through a shell, as pasted).
TEST_F(PrintPipelineTest, PrintedServerPipelineRunsWithGstLaunch) {
  std::string certs = make_certs();
  RunResult r = run_process(
      cmd({"serve", "--certs", certs, "--source", "test", "--port", "0", "--print-pipeline"}), 30s,
      quiet_env());
  ASSERT_EQ(r.status, 0) << r.transcript;
  ASSERT_EQ(r.out.size(), 1u) << r.transcript;
  Process launch({"/bin/sh", "-c", "exec gst-launch-1.0 " + r.out[0]}, quiet_env());
  auto line = launch.wait_line("Setting pipeline to PLAYING|ERROR|erroneous", 20s);
  ASSERT_TRUE(line) << launch.transcript();
  EXPECT_NE(line->find("PLAYING"), std::string::npos) << launch.transcript();
  launch.signal(SIGINT);
  EXPECT_TRUE(launch.wait_exit(15s)) << launch.transcript();
}

TEST_F(PrintPipelineTest, PipelineOptionReplacesTheTemplate) {
  std::string certs = make_certs();
  std::string tpl = dir() + "/mine.pipeline";
  std::ofstream(tpl) << "# my template\n${SOURCE} num-buffers=${FRAMERATE} ! tlsframesink "
                        "name=sink\n";
  RunResult r = run_process(cmd({"serve", "--certs", certs, "--source", "test", "--pipeline", tpl,
                                 "--print-pipeline", "--fps", "7"}),
                            30s, quiet_env());
  ASSERT_EQ(r.status, 0) << r.transcript;
  ASSERT_EQ(r.out.size(), 1u);
  EXPECT_EQ(r.out[0],
            "videotestsrc name=source pattern=ball is-live=true num-buffers=7/1 ! "
            "tlsframesink name=sink host=0.0.0.0 cert-file=" +
                certs + "/server.pem key-file=" + certs + "/server.key");

  // The values go to elements by name: a template without them is an error.
  std::ofstream(tpl) << "videotestsrc ! fakesink\n";
  RunResult unnamed = run_process(
      cmd({"serve", "--certs", certs, "--pipeline", tpl, "--source", "test", "--print-pipeline"}),
      30s, quiet_env());
  expect_one_error_line(unnamed, "no element named");

  std::ofstream(tpl) << "videotestsrc ! ${NOPE} ! fakesink\n";
  RunResult bad = run_process(
      cmd({"serve", "--certs", certs, "--pipeline", tpl, "--source", "test", "--print-pipeline"}),
      30s, quiet_env());
  expect_one_error_line(bad, "${NOPE}");
}

class ErrorsTest : public ToolTest {};

TEST_F(ErrorsTest, MissingCertificateFile) {
  RunResult r =
      run_process(cmd({"serve", "--certs", dir() + "/nowhere", "--source", "test", "--port", "0"}),
                  30s, quiet_env());
  expect_one_error_line(r, "nowhere/server.pem");
  EXPECT_NE(r.err[0].find("tlsframe certs"), std::string::npos) << r.err[0];
}

TEST_F(ErrorsTest, UnreachableHost) {
  std::string certs = make_certs();
  int port = closed_port();
  RunResult r = run_process(
      cmd({"view", "127.0.0.1:" + std::to_string(port), "--certs", certs, "--display", "none"}),
      30s, quiet_env());
  expect_one_error_line(r, "127.0.0.1");
  EXPECT_NE(r.err[0].find("server running"), std::string::npos) << r.err[0];
}

// Issue 14: without DIR/ca.pem the viewer falls back to the system's CAs, and says so.
TEST_F(ErrorsTest, ViewWithoutCaFileSaysItUsesTheSystemCas) {
  std::string empty = dir() + "/empty";
  mkdir(empty.c_str(), 0700);
  int port = closed_port();
  RunResult r = run_process(cmd({"view", "127.0.0.1:" + std::to_string(port), "--certs", empty,
                                 "--display", "none", "--codec", "jpeg"}),
                            30s, quiet_env());
  std::string line = "tlsframe view: " + empty +
                     "/ca.pem not found: the server is verified against the system's CA "
                     "certificates";
  EXPECT_NE(std::find(r.out.begin(), r.out.end(), line), r.out.end()) << r.transcript;
  // With the file there, no such line.
  std::string certs = make_certs();
  RunResult with = run_process(cmd({"view", "127.0.0.1:" + std::to_string(port), "--certs", certs,
                                    "--display", "none", "--codec", "jpeg"}),
                               30s, quiet_env());
  EXPECT_EQ(with.transcript.find("system's CA"), std::string::npos) << with.transcript;
}

TEST_F(ErrorsTest, RefusedServerCertificate) {
  std::string certs = make_certs("certs");
  std::string other = make_certs("other");  // another CA
  std::unique_ptr<Process> server;
  int port = start_server(&server, {"serve", "--certs", certs, "--source", "test", "--port", "0"});
  ASSERT_NE(port, 0);
  RunResult r = run_process(
      cmd({"view", "127.0.0.1:" + std::to_string(port), "--certs", other, "--display", "none"}),
      30s, quiet_env());
  expect_one_error_line(r, "verif");
  EXPECT_NE(r.err[0].find("--certs"), std::string::npos) << r.err[0];
}

TEST_F(ErrorsTest, RefusedClientWithoutCertificate) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  int port = start_server(&server,
                          {"serve", "--certs", certs, "--source", "test", "--port", "0", "--mtls"});
  ASSERT_NE(port, 0);
  RunResult r = run_process(
      cmd({"view", "127.0.0.1:" + std::to_string(port), "--certs", certs, "--display", "none"}),
      30s, quiet_env());
  expect_one_error_line(r, "");
  EXPECT_NE(r.err[0].find("--client"), std::string::npos) << r.err[0];
}

TEST_F(ErrorsTest, BusyPort) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  int port = start_server(&server, {"serve", "--certs", certs, "--source", "test", "--port", "0"});
  ASSERT_NE(port, 0);
  RunResult r = run_process(
      cmd({"serve", "--certs", certs, "--source", "test", "--port", std::to_string(port)}), 30s,
      quiet_env());
  expect_one_error_line(r, std::to_string(port));
  EXPECT_NE(r.err[0].find("--port 0"), std::string::npos) << r.err[0];
}

// With no system plugins, the H.264 server names the elements and the Debian packages.
TEST_F(ErrorsTest, MissingPluginNamesDebianPackage) {
  std::string certs = make_certs();
  std::string empty = dir() + "/no-plugins";
  mkdir(empty.c_str(), 0755);
  auto env = quiet_env();
  env["GST_PLUGIN_SYSTEM_PATH_1_0"] = empty;
  env["GST_REGISTRY_1_0"] = dir() + "/registry.bin";
  RunResult r = run_process(
      cmd({"serve", "--certs", certs, "--source", "test", "--codec", "h264", "--port", "0"}), 60s,
      env);
  expect_one_error_line(r, "'x264enc' (install the Debian package gstreamer1.0-plugins-ugly)");
}

TEST_F(ErrorsTest, NoDisplaySuggestsDisplayNoneOrRecord) {
  RunResult r = run_process(cmd({"view", "127.0.0.1:9", "--display", "auto"}), 30s, quiet_env());
  expect_one_error_line(r, "--display none");
  EXPECT_NE(r.err[0].find("--record"), std::string::npos);
}

TEST_F(ErrorsTest, BadCommandLinesExitWithUsageStatus) {
  for (const std::vector<std::string> &args : {std::vector<std::string>{"serve", "--codec", "vp9"},
                                               {"serve", "--port", "70000"},
                                               {"view"},
                                               {"view", "[::1"},
                                               {"relay"},
                                               {"frobnicate"},
                                               {"serve", "--bogus"},
                                               {"view", "--frames"},
                                               {"certs", "--bogus"}}) {
    RunResult r = run_process(cmd(args), 30s, quiet_env());
    EXPECT_EQ(r.status, 2) << args[0] << "\n" << r.transcript;
    EXPECT_EQ(r.err.size(), 1u) << r.transcript;
  }
}

// GOption conventions, with GStreamer's own options on serve, view and relay.
TEST_F(ErrorsTest, HelpIsGOptionStyleWithGStreamerOptions) {
  for (const char *command : {"serve", "view", "relay", "certs"}) {
    RunResult r = run_process(cmd({command, "--help"}), 30s, quiet_env());
    EXPECT_EQ(r.status, 0) << r.transcript;
    EXPECT_TRUE(r.err.empty()) << r.transcript;
    std::string text = r.transcript;
    ASSERT_GE(r.out.size(), 2u) << text;
    EXPECT_EQ(r.out[0], "Usage:") << text;
    EXPECT_EQ(r.out[1].rfind("  tlsframe " + std::string(command) + " [OPTION", 0), 0u) << text;
    EXPECT_NE(text.find("Help Options:"), std::string::npos) << text;
    EXPECT_NE(text.find("Application Options:"), std::string::npos) << text;
    bool gst = std::string(command) != "certs";
    EXPECT_EQ(text.find("--help-gst") != std::string::npos, gst) << text;
  }
  RunResult g = run_process(cmd({"view", "--help-gst"}), 30s, quiet_env());
  EXPECT_EQ(g.status, 0) << g.transcript;
  EXPECT_NE(g.transcript.find("--gst-debug="), std::string::npos) << g.transcript;
  // --gst-debug works (the category's lines go to stderr); the printed pipeline is unchanged.
  std::string certs = make_certs();
  RunResult d = run_process(cmd({"serve", "--certs", certs, "--source", "test", "--print-pipeline",
                                 "--gst-debug=GST_PIPELINE:6", "--gst-debug-no-color"}),
                            30s, quiet_env());
  EXPECT_EQ(d.status, 0) << d.transcript;
  EXPECT_EQ(d.out.size(), 1u) << d.transcript;
}

}  // namespace
}  // namespace tlsframe::test
