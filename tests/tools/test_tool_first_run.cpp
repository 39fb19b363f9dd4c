// tlsframe serve's first run (issue 9): with no certificates it makes a CA and a
// server certificate in the per-user directory, says where and what a viewer runs,
// reuses them on the next run, and never overwrites a partial set.
#include <signal.h>
#include <sys/stat.h>

#include <fstream>

#include "tools/tool_fixture.h"

namespace tlsframe::test {
namespace {

bool exists(const std::string &path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

class FirstRunTest : public ToolTest {
 protected:
  void SetUp() override {
    ToolTest::SetUp();
    home_ = dir() + "/home";
    ASSERT_EQ(mkdir(home_.c_str(), 0755), 0);
  }
  // A user with an empty home: $HOME set, $XDG_CONFIG_HOME unset.
  std::map<std::string, std::string> env() const {
    auto e = quiet_env();
    e["HOME"] = home_;
    e["XDG_CONFIG_HOME"] = "";
    return e;
  }
  std::string user_certs() const { return home_ + "/.config/tlsframe/certs"; }

  // Starts serve with no --certs; returns its port (0 after a failure).
  int serve(std::unique_ptr<Process> *proc, const std::map<std::string, std::string> &e) {
    *proc = std::make_unique<Process>(cmd({"serve", "--source", "test", "--port", "0"}), e);
    auto line = (*proc)->wait_line("listening on port [0-9]+|error", 30s);
    if (!line || line->find("listening") == std::string::npos) {
      ADD_FAILURE() << (*proc)->transcript();
      return 0;
    }
    return std::atoi(match_group(*line, "listening on port ([0-9]+)").c_str());
  }
  std::string fingerprint(Process &p) {
    auto line = p.wait_line("certificate SHA-256 fingerprint [0-9A-F:]+", 5s);
    return line ? match_group(*line, "fingerprint ([0-9A-F:]+)") : "";
  }
  void stop(Process &p) {
    p.signal(SIGINT);
    auto status = p.wait_exit(20s);
    EXPECT_TRUE(status) << p.transcript();
  }

  std::string home_;
};

TEST_F(FirstRunTest, MakesPrivateCertsInTheUserDirAndAViewerThereJustWorks) {
  std::unique_ptr<Process> server;
  int port = serve(&server, env());
  ASSERT_NE(port, 0);
  std::string d = user_certs();
  std::string p = std::to_string(port);
  EXPECT_TRUE(
      server->wait_line("first run: made a development CA and a server certificate in " + d, 1s))
      << server->transcript();
  EXPECT_TRUE(server->wait_line(d + "/ca.pem: the CA certificate", 1s)) << server->transcript();
  EXPECT_TRUE(
      server->wait_line("viewers on this machine run: tlsframe view localhost:" + p + "$", 5s))
      << server->transcript();
  EXPECT_TRUE(server->wait_line("viewers elsewhere run: tlsframe view [^ ]+:" + p +
                                    " --ca ca\\.pem .*a copy of " + d + "/ca\\.pem",
                                5s))
      << server->transcript();
  std::string fp = fingerprint(*server);
  EXPECT_FALSE(fp.empty()) << server->transcript();

  EXPECT_EQ(mode_of(d), 0700);
  EXPECT_EQ(mode_of(d + "/ca.key"), 0600);
  EXPECT_EQ(mode_of(d + "/server.key"), 0600);
  EXPECT_EQ(mode_of(d + "/ca.pem"), 0644);
  EXPECT_EQ(mode_of(d + "/server.pem"), 0644);
  RunResult v = run_process({"/usr/bin/openssl", "verify", "-CAfile", d + "/ca.pem",
                             "-verify_hostname", "localhost", d + "/server.pem"},
                            30s);
  EXPECT_EQ(v.status, 0) << v.transcript;

  // The command printed for this machine, with the defaults: verified TLS with the new CA.
  RunResult view = run_process(
      cmd({"view", "localhost:" + p, "--display", "none", "--frames", "5"}), 30s, env());
  EXPECT_EQ(view.status, 0) << view.transcript;
  EXPECT_NE(view.transcript.find("(TLS verified)"), std::string::npos) << view.transcript;
  stop(*server);
}

TEST_F(FirstRunTest, SecondRunReusesTheSet) {
  std::unique_ptr<Process> first;
  ASSERT_NE(serve(&first, env()), 0);
  std::string fp = fingerprint(*first);
  stop(*first);
  std::string ca = read_text(user_certs() + "/ca.pem");

  std::unique_ptr<Process> second;
  ASSERT_NE(serve(&second, env()), 0);
  EXPECT_EQ(fingerprint(*second), fp) << second->transcript();
  EXPECT_EQ(second->transcript().find("first run"), std::string::npos) << second->transcript();
  EXPECT_EQ(read_text(user_certs() + "/ca.pem"), ca);
  stop(*second);
}

TEST_F(FirstRunTest, XdgConfigHomeIsTheUserDir) {
  auto e = env();
  e["XDG_CONFIG_HOME"] = dir() + "/xdg";
  std::unique_ptr<Process> server;
  ASSERT_NE(serve(&server, e), 0);
  EXPECT_TRUE(exists(dir() + "/xdg/tlsframe/certs/server.key"));
  EXPECT_FALSE(exists(user_certs()));
  stop(*server);
}

TEST_F(FirstRunTest, PartialSetIsAnErrorAndNothingIsOverwritten) {
  std::string d = user_certs();
  ASSERT_EQ(run_process({"/bin/mkdir", "-p", d}, 10s).status, 0);
  std::ofstream(d + "/server.pem") << "mine\n";
  RunResult r = run_process(cmd({"serve", "--source", "test", "--port", "0"}), 30s, env());
  EXPECT_EQ(r.status, 1) << r.transcript;
  ASSERT_EQ(r.err.size(), 1u) << r.transcript;
  EXPECT_NE(r.err[0].find("incomplete"), std::string::npos) << r.err[0];
  EXPECT_NE(r.err[0].find("server.key"), std::string::npos) << r.err[0];
  EXPECT_EQ(read_text(d + "/server.pem"), "mine\n");
  EXPECT_FALSE(exists(d + "/ca.pem"));
  EXPECT_FALSE(exists(d + "/ca.key"));
  EXPECT_FALSE(exists(d + "/server.key"));
}

TEST_F(FirstRunTest, ExplicitCertsDirIsNeverFilled) {
  RunResult r = run_process(
      cmd({"serve", "--certs", dir() + "/nowhere", "--source", "test", "--port", "0"}), 30s, env());
  EXPECT_EQ(r.status, 1) << r.transcript;
  EXPECT_FALSE(exists(dir() + "/nowhere"));
  EXPECT_FALSE(exists(user_certs()));
}

TEST_F(FirstRunTest, PrintPipelineWritesNothing) {
  RunResult r = run_process(cmd({"serve", "--source", "test", "--print-pipeline"}), 30s, env());
  EXPECT_EQ(r.status, 0) << r.transcript;
  EXPECT_NE(r.transcript.find(user_certs() + "/server.pem"), std::string::npos) << r.transcript;
  EXPECT_FALSE(exists(user_certs()));
}

// `tlsframe certs --client NAME` signs with the CA serve made, and keeps that CA.
TEST_F(FirstRunTest, CertsClientOnlyUsesTheExistingCa) {
  std::unique_ptr<Process> server;
  ASSERT_NE(serve(&server, env()), 0);
  stop(*server);
  std::string d = user_certs();
  std::string ca = read_text(d + "/ca.pem");
  RunResult r = run_process(cmd({"certs", "--client", "alice"}), 30s, env());
  ASSERT_EQ(r.status, 0) << r.transcript;
  EXPECT_EQ(read_text(d + "/ca.pem"), ca);
  EXPECT_EQ(mode_of(d + "/client-alice.key"), 0600);
  RunResult v = run_process(
      {"/usr/bin/openssl", "verify", "-CAfile", d + "/ca.pem", d + "/client-alice.pem"}, 30s);
  EXPECT_EQ(v.status, 0) << v.transcript;
}

}  // namespace
}  // namespace tlsframe::test
