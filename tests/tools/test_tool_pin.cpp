// tlsframe view --fingerprint and relay --fingerprint (issue 12): a viewer
// with no CA file trusts the server by the fingerprint `tlsframe serve`
// prints, exactly as printed; a wrong fingerprint fails with both
// fingerprints in one error line; a relay pins its upstream the same way.
#include "tools/tool_fixture.h"

namespace tlsframe::test {
namespace {

class PinTest : public ToolTest {
 protected:
  // Starts serve and returns its port; *fingerprint: the fingerprint it printed.
  int serve(const std::string &certs, std::string *fingerprint) {
    int port =
        start_server(&server_, {"serve", "--certs", certs, "--source", "test", "--port", "0"});
    auto line =
        server_->wait_line("certificate SHA-256 fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2}", 5s);
    EXPECT_TRUE(line) << server_->transcript();
    if (line) *fingerprint = match_group(*line, "fingerprint (([0-9A-F]{2}:){31}[0-9A-F]{2})");
    return port;
  }
  std::unique_ptr<Process> server_;
};

TEST_F(PinTest, ViewWithThePrintedFingerprintNeedsNoCaFile) {
  std::string certs = make_certs(), fp;
  int port = serve(certs, &fp);
  ASSERT_NE(port, 0);
  ASSERT_EQ(fp.size(), 95u);
  // A viewer's own directory: no ca.pem at all.
  const std::string empty = dir() + "/viewer-certs";
  RunResult view = run_process(cmd({"view", "127.0.0.1:" + std::to_string(port), "--certs", empty,
                                    "--fingerprint", fp, "--display", "none", "--frames", "10"}),
                               30s, quiet_env());
  ASSERT_EQ(view.status, 0) << view.transcript;
  EXPECT_NE(view.transcript.find("pinned certificate"), std::string::npos) << view.transcript;
  EXPECT_NE(view.transcript.find("end of stream after 10 frames"), std::string::npos)
      << view.transcript;
}

TEST_F(PinTest, ViewWithAWrongFingerprintNamesBoth) {
  std::string certs = make_certs(), fp;
  int port = serve(certs, &fp);
  ASSERT_NE(port, 0);
  std::string wrong = fp;
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  RunResult view =
      run_process(cmd({"view", "127.0.0.1:" + std::to_string(port), "--certs", dir() + "/none",
                       "--fingerprint", wrong, "--display", "none", "--frames", "10"}),
                  30s, quiet_env());
  EXPECT_NE(view.status, 0) << view.transcript;
  EXPECT_NE(view.transcript.find("expected " + wrong), std::string::npos) << view.transcript;
  EXPECT_NE(view.transcript.find("got " + fp), std::string::npos) << view.transcript;
}

TEST_F(PinTest, RelayPinsItsUpstreamWithoutTheUpstreamCa) {
  std::string origin_certs = make_certs("origin"), fp;
  int port = serve(origin_certs, &fp);
  ASSERT_NE(port, 0);
  // The relay's own set: another CA, so only the pin can vouch for the origin.
  std::string relay_certs = make_certs("relay");
  std::unique_ptr<Process> relay;
  int relay_port =
      start_server(&relay, {"relay", "--from", "127.0.0.1:" + std::to_string(port), "--fingerprint",
                            fp, "--port", "0", "--certs", relay_certs});
  ASSERT_NE(relay_port, 0);
  RunResult view = run_process(cmd({"view", "127.0.0.1:" + std::to_string(relay_port), "--certs",
                                    relay_certs, "--display", "none", "--frames", "10"}),
                               30s, quiet_env());
  ASSERT_EQ(view.status, 0) << view.transcript << relay->transcript();
  EXPECT_TRUE(relay->wait_line("upstream connected", 5s)) << relay->transcript();
}

TEST_F(PinTest, MalformedFingerprintIsRefusedBeforeConnecting) {
  RunResult view = run_process(cmd({"view", "127.0.0.1:9", "--fingerprint", "AB:CD:EF", "--display",
                                    "none", "--codec", "jpeg"}),
                               30s, quiet_env());
  EXPECT_NE(view.status, 0) << view.transcript;
  EXPECT_NE(view.transcript.find("invalid server fingerprint"), std::string::npos)
      << view.transcript;
}

}  // namespace
}  // namespace tlsframe::test
