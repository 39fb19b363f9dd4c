// Who may watch a `tlsframe serve --mtls` (issue 12), end to end with real
// processes and certificates made by `tlsframe certs`: the CRL beside the CA
// (DIR/crl.pem) is used at start, reloaded when `certs --revoke` renames a new
// one over it (and on SIGHUP), and a CRL the CA did not sign is refused while
// the old one stays; --allow [NAME/]IDENTITY restricts a stream. The watchers
// of the revoke test are tlsframesrc pipelines in this process, so the time
// from the revoke to the cut and the other viewer's frames are measured.
#include <gst/gst.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>

#include "tools/tool_fixture.h"

namespace tlsframe::test {
namespace {

using Clock = std::chrono::steady_clock;

// One viewer: tlsframesrc (client certificate NAME of the set) ! fakesink; counts the
// buffers and records the error text and when it came.
class Watcher {
 public:
  Watcher(int port, const std::string &certs, const std::string &client)
      : pipeline_("tlsframesrc name=src ! fakesink sync=false") {
    if (!pipeline_.ok()) return;
    const std::string address = uri(port);
    const std::string cert = certs + "/client-" + client + ".pem";
    const std::string key = certs + "/client-" + client + ".key";
    const std::string ca = certs + "/ca.pem";
    g_object_set(pipeline_.src(), "uri", address.c_str(), "ca-file", ca.c_str(), "cert-file",
                 cert.c_str(), "key-file", key.c_str(), nullptr);
    pipeline_.probe(GST_PAD_PROBE_TYPE_BUFFER, &Watcher::on_buffer, this);
    pipeline_.play([this](GstMessage *msg) { on_message(msg); });
  }
  Watcher(const Watcher &) = delete;
  Watcher &operator=(const Watcher &) = delete;

  // Waits until more than `frames` buffers arrived in all.
  bool wait_frames_after(uint64_t frames, Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cond_.wait_until(lock, deadline, [&] { return frames_ > frames; });
  }
  // Waits for an error; its text ("" on timeout).
  std::string wait_error(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    cond_.wait_until(lock, deadline, [&] { return !errors_.empty(); });
    return errors_;
  }
  uint64_t frames() {
    std::lock_guard<std::mutex> lock(mutex_);
    return frames_;
  }
  std::string errors() {
    std::lock_guard<std::mutex> lock(mutex_);
    return errors_;
  }
  Clock::time_point error_at() {
    std::lock_guard<std::mutex> lock(mutex_);
    return error_at_;
  }

 private:
  static GstPadProbeReturn on_buffer(GstPad *, GstPadProbeInfo *, gpointer data) {
    auto *self = static_cast<Watcher *>(data);
    std::lock_guard<std::mutex> lock(self->mutex_);
    ++self->frames_;
    self->cond_.notify_all();
    return GST_PAD_PROBE_OK;
  }
  void on_message(GstMessage *msg) {
    if (GST_MESSAGE_TYPE(msg) != GST_MESSAGE_ERROR) return;
    const std::string text = error_text(msg);
    std::lock_guard<std::mutex> lock(mutex_);
    if (errors_.empty()) error_at_ = Clock::now();
    errors_ += text + "; ";
    cond_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable cond_;
  uint64_t frames_ = 0;  // buffers out of tlsframesrc
  std::string errors_;   // element errors, "; "-separated
  Clock::time_point error_at_{};
  SrcPipeline pipeline_;  // last: stopped before the state its callbacks use goes
};

class AuthzTest : public ToolTest {
 protected:
  void SetUp() override {
    ToolTest::SetUp();
    gst_init(nullptr, nullptr);
    certs_ = make_certs();  // client alice
    RunResult bob =
        run_process(cmd({"certs", "--out", certs_, "--client", "bob"}), 30s, quiet_env());
    ASSERT_EQ(bob.status, 0) << bob.transcript;
  }
  // serve --mtls from a small test pattern, with `extra` options; its port.
  int serve(const std::vector<std::string> &extra, bool mtls = true) {
    std::vector<std::string> args = {"serve", "--certs", certs_, "--port",
                                     "0",     "--width", "160",  "--height",
                                     "120",   "--fps",   "15",   "--status-interval",
                                     "60"};
    if (mtls) args.push_back("--mtls");
    bool source = false;
    for (const auto &e : extra) source = source || e == "--stream";
    if (!source) args.insert(args.end(), {"--source", "test"});
    args.insert(args.end(), extra.begin(), extra.end());
    return start_server(&server_, args);
  }
  RunResult revoke(const std::string &dir, const std::string &name) {
    return run_process(cmd({"certs", "--out", dir, "--revoke", name}), 30s, quiet_env());
  }
  // `tlsframe view` of ADDRESS with client certificate NAME, five frames.
  RunResult view(const std::string &address, const std::string &client) {
    return run_process(cmd({"view", address, "--certs", certs_, "--client", client, "--display",
                            "none", "--frames", "5"}),
                       30s, quiet_env());
  }
  std::string certs_;
  std::unique_ptr<Process> server_;
};

TEST_F(AuthzTest, RevokedWhileWatchingIsCutWithinSecondsAndTheOtherKeepsReceiving) {
  int port = serve({});
  ASSERT_NE(port, 0);
  ASSERT_TRUE(server_->wait_line("no CRL at .*crl.pem", 5s)) << server_->transcript();
  Watcher alice(port, certs_, "alice"), bob(port, certs_, "bob");
  ASSERT_TRUE(alice.wait_frames_after(5, Clock::now() + 10s)) << alice.errors();
  ASSERT_TRUE(bob.wait_frames_after(5, Clock::now() + 10s)) << bob.errors();

  // certs --revoke writes crl.pem (the first one: serve had none) by a rename.
  RunResult r = revoke(certs_, "bob");
  ASSERT_EQ(r.status, 0) << r.transcript;
  const auto revoked = Clock::now();
  std::string err = bob.wait_error(revoked + 5s);
  ASSERT_NE(err.find("revoked"), std::string::npos) << "bob: " << err << "\n"
                                                    << server_->transcript();
  const double cut_s = std::chrono::duration<double>(bob.error_at() - revoked).count();
  std::printf("bob cut %.3f s after certs --revoke returned\n", cut_s);
  EXPECT_LT(cut_s, 3.0);  // a poll each second, then the sink's own 1 s bound
  EXPECT_TRUE(server_->wait_line("using CRL .*crl.pem \\(changed\\): 1 revoked, next update", 2s))
      << server_->transcript();
  EXPECT_TRUE(server_->wait_line("client [0-9]+ .* left: revoked", 2s)) << server_->transcript();
  // Alice goes on at full rate: 15 more frames (1 s at 15 fps) within 2 s.
  const uint64_t at_cut = alice.frames();
  EXPECT_TRUE(alice.wait_frames_after(at_cut + 15, Clock::now() + 2s))
      << "alice frames " << alice.frames() << " from " << at_cut;
  EXPECT_EQ(alice.errors(), "");

  // SIGHUP reloads the same file on demand.
  server_->signal(SIGHUP);
  EXPECT_TRUE(server_->wait_line("reloaded CRL .*crl.pem \\(SIGHUP\\): 1 revoked", 5s))
      << server_->transcript();

  // A CRL another CA signed, renamed over crl.pem: refused, the loaded one stays.
  const std::string other = make_certs("other");
  ASSERT_EQ(revoke(other, "alice").status, 0);
  ASSERT_EQ(::rename((other + "/crl.pem").c_str(), (certs_ + "/crl.pem").c_str()), 0);
  EXPECT_TRUE(
      server_->wait_line("error: CRL .*crl.pem \\(changed\\) not loaded: .*the CRL "
                         "loaded before stays in use",
                         5s))
      << server_->transcript();
  const uint64_t after_bad = alice.frames();
  EXPECT_TRUE(alice.wait_frames_after(after_bad + 15, Clock::now() + 2s));
  EXPECT_EQ(alice.errors(), "");
  Watcher bob_again(port, certs_, "bob");  // still revoked: refused at connect
  EXPECT_NE(bob_again.wait_error(Clock::now() + 5s), "");
  EXPECT_EQ(bob_again.frames(), 0u);
}

TEST_F(AuthzTest, CrlPresentAtStartIsUsedAndTheFingerprintLineIsOffered) {
  ASSERT_EQ(revoke(certs_, "bob").status, 0);
  int port = serve({});
  ASSERT_NE(port, 0);
  EXPECT_TRUE(server_->wait_line("using CRL .*crl.pem: 1 revoked, next update", 5s))
      << server_->transcript();
  EXPECT_TRUE(server_->wait_line(
      "or, with no CA file: tlsframe view [^ ]+:[0-9]+ --fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2} "
      "--client NAME",
      5s))
      << server_->transcript();
  const std::string at = "127.0.0.1:" + std::to_string(port);
  RunResult alice = view(at, "alice");
  EXPECT_EQ(alice.status, 0) << alice.transcript;
  RunResult bob = view(at, "bob");
  EXPECT_NE(bob.status, 0) << bob.transcript;
}

TEST_F(AuthzTest, AllowAdmitsOnlyTheListedIdentityOnItsStream) {
  int port =
      serve({"--stream", "cam1=test", "--stream", "cam2=test:smpte", "--allow", "cam1/CN=alice"});
  ASSERT_NE(port, 0);
  EXPECT_TRUE(
      server_->wait_line("stream cam1: only these client certificates may watch: CN=alice", 5s))
      << server_->transcript();
  EXPECT_TRUE(server_->wait_line("stream cam2: any client certificate the CA signed may watch", 5s))
      << server_->transcript();
  const std::string at = "127.0.0.1:" + std::to_string(port);
  RunResult alice = view(at + "/cam1", "alice");
  EXPECT_EQ(alice.status, 0) << alice.transcript;
  RunResult bob = view(at + "/cam1", "bob");
  EXPECT_NE(bob.status, 0) << bob.transcript;
  EXPECT_NE(bob.transcript.find("forbidden"), std::string::npos) << bob.transcript;
  EXPECT_TRUE(server_->wait_line("left stream cam1: forbidden", 5s)) << server_->transcript();
  RunResult bob_cam2 = view(at + "/cam2", "bob");
  EXPECT_EQ(bob_cam2.status, 0) << bob_cam2.transcript;
}

TEST_F(AuthzTest, AllowOnEveryStreamByFingerprint) {
  RunResult fp = run_process({"/usr/bin/openssl", "x509", "-in", certs_ + "/client-bob.pem",
                              "-noout", "-fingerprint", "-sha256"},
                             30s);
  ASSERT_EQ(fp.status, 0) << fp.transcript;
  ASSERT_FALSE(fp.out.empty());
  const std::string hex = match_group(fp.out[0], "=([0-9A-F:]+)");
  ASSERT_EQ(hex.size(), 95u) << fp.out[0];
  int port = serve({"--allow", "sha256:" + hex});
  ASSERT_NE(port, 0);
  const std::string at = "127.0.0.1:" + std::to_string(port);
  RunResult bob = view(at, "bob");
  EXPECT_EQ(bob.status, 0) << bob.transcript;
  RunResult alice = view(at, "alice");
  EXPECT_NE(alice.status, 0) << alice.transcript;
  EXPECT_NE(alice.transcript.find("forbidden"), std::string::npos) << alice.transcript;
}

TEST_F(AuthzTest, AllowNeedsMtlsAValidIdentityAndAServedStream) {
  struct Case {
    std::vector<std::string> args;
    const char *says;
  } cases[] = {
      {{"--source", "test", "--allow", "CN=alice"}, "--allow needs --mtls"},
      {{"--mtls", "--source", "test", "--allow", "alice"}, "--allow alice: "},
      {{"--mtls", "--source", "test", "--allow", "cam9/CN=alice"}, "no stream cam9 is served"},
      {{"--mtls", "--stream", "cam1=test", "--allow", "cam1/sha256:AB"}, "--allow cam1/sha256:AB"},
  };
  for (const auto &c : cases) {
    std::vector<std::string> args = {"serve", "--certs", certs_, "--port", "0"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    RunResult r = run_process(cmd(args), 30s, quiet_env());
    EXPECT_EQ(r.status, 2) << r.transcript;
    EXPECT_NE(r.transcript.find(c.says), std::string::npos) << r.transcript;
  }
}

TEST_F(AuthzTest, PrintPipelineWritesAuthorizedClientsAsAnArray) {
  RunResult r = run_process(cmd({"serve", "--certs", certs_, "--mtls", "--source", "test",
                                 "--allow", "CN=alice", "--allow", "CN=a b", "--print-pipeline"}),
                            30s, quiet_env());
  ASSERT_EQ(r.status, 0) << r.transcript;
  // gst-launch-1.0 reads it back as the array <"CN=alice", "CN=a b">.
  EXPECT_NE(r.transcript.find("'authorized-clients=\"<\\\"CN=alice\\\", \\\"CN=a b\\\">\"'"),
            std::string::npos)
      << r.transcript;
}

TEST_F(AuthzTest, WithoutMtlsTheCrlIsNotUsedAndSaysSo) {
  ASSERT_EQ(revoke(certs_, "bob").status, 0);
  int port = serve({}, /*mtls=*/false);
  ASSERT_NE(port, 0);
  EXPECT_TRUE(server_->wait_line("crl.pem is not used: without --mtls", 5s))
      << server_->transcript();
}

}  // namespace
}  // namespace tlsframe::test
