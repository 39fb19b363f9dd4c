// Certificate reload in tlsframesink: cert-file/key-file set while PLAYING
// apply to new handshakes, connected clients keep their sessions; files that
// cannot be loaded give a warning naming the problem and keep the old
// certificate (no error, no dropped client).
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "common/pki.h"
#include "common/raw_tls.h"
#include "element/gst_util.h"

namespace tlsframe::test {
namespace {

using namespace std::chrono_literals;
constexpr auto kWait = std::chrono::milliseconds(5000);  // generous bound for any one condition

// Issuer CN of the certificate a fresh TLS client is served ("" when the handshake fails).
std::string served_issuer(int port, const std::string &ca_file) {
  RawTlsClient c;
  if (!c.connect(port, ca_file)) return "";
  X509 *cert = SSL_get0_peer_certificate(c.ssl());
  if (!cert) return "";
  char cn[256] = "";
  X509_NAME_get_text_by_NID(X509_get_issuer_name(cert), NID_commonName, cn, sizeof cn);
  return cn;
}

class CertReloadTest : public ::testing::Test {
 protected:
  void SetUp() override { init_gstreamer(); }
  Pki pki;
};

TEST_F(CertReloadTest, CertificateSetWhilePlayingServesNewClientsAndKeepsConnectedOnes) {
  RemovedRecorder removed;
  Pipeline server(
      "videotestsrc is-live=true pattern=ball ! "
      "video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc ! "
      "tlsframesink name=sink port=0 host=127.0.0.1 cert-file=\"" +
      pki.server_cert() + "\" key-file=\"" + pki.server_key() + "\"");
  ASSERT_TRUE(server.ok());
  GstElement *sink = server.element("sink");
  g_signal_connect(sink, "client-removed", G_CALLBACK(RemovedRecorder::on_removed), &removed);
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  int port = current_port(sink);
  ASSERT_GT(port, 0);
  auto client_desc = "tlsframesrc host=127.0.0.1 port=" + std::to_string(port) + " ca-file=\"" +
                     pki.ca() + "\" ! appsink name=out sync=false max-buffers=2 drop=true";

  Pipeline before(client_desc);
  ASSERT_NE(gst_element_set_state(before.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(receives_fresh(before, sink, 3, kWait));
  ASSERT_EQ(served_issuer(port, pki.ca()), "tlsframe test CA");

  // Certificate and key together, in one g_object_set(): one reload.
  g_object_set(sink, "cert-file", pki.chained_server_cert().c_str(), "key-file",
               pki.chained_server_key().c_str(), nullptr);
  EXPECT_EQ(served_issuer(port, pki.ca()), "tlsframe test intermediate CA")
      << "new handshakes do not get the new certificate";
  Pipeline after(client_desc);
  ASSERT_NE(gst_element_set_state(after.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  EXPECT_TRUE(receives_fresh(after, sink, 3, kWait));
  EXPECT_TRUE(receives_fresh(before, sink, 3, kWait)) << "the connected client lost its stream";

  // A file that cannot be loaded: a warning naming it, the previous certificate stays.
  std::string missing = pki.path("missing.pem");
  g_object_set(sink, "cert-file", missing.c_str(), nullptr);
  std::string warning = server.wait_warning(kWait);
  EXPECT_NE(warning.find(missing), std::string::npos) << warning;
  EXPECT_NE(warning.find("previous"), std::string::npos) << warning;
  EXPECT_EQ(served_issuer(port, pki.ca()), "tlsframe test intermediate CA");

  // A certificate whose key is not key-file: refused as not matching, old one stays.
  g_object_set(sink, "cert-file", pki.server_cert().c_str(), nullptr);
  warning = server.wait_warning(kWait);
  EXPECT_NE(warning.find("does not match"), std::string::npos) << warning;
  EXPECT_EQ(served_issuer(port, pki.ca()), "tlsframe test intermediate CA");

  // Back to the first pair: served again.
  g_object_set(sink, "cert-file", pki.server_cert().c_str(), "key-file", pki.server_key().c_str(),
               nullptr);
  EXPECT_EQ(served_issuer(port, pki.ca()), "tlsframe test CA");

  EXPECT_TRUE(receives_fresh(before, sink, 3, kWait));
  EXPECT_TRUE(receives_fresh(after, sink, 3, kWait));
  // The raw probes come and go; the two pipelines stayed connected throughout.
  EXPECT_TRUE(wait_num_clients(
      sink, [](guint n) { return n == 2; }, kWait))
      << "num-clients=" << num_clients(sink);
  EXPECT_EQ(sink_stat(sink, "clients-total") - removed.count(), 2u);
  EXPECT_EQ(pending_errors(server), "");
  EXPECT_EQ(pending_errors(before), "");
  EXPECT_EQ(pending_errors(after), "");
}

// Client CAs reload too: under mutual TLS, a client from another CA is
// refused until ca-file names that CA, then accepted; the first client stays.
TEST_F(CertReloadTest, CaFileSetWhilePlayingAppliesToNewClientCertificates) {
  Pipeline server(
      "videotestsrc is-live=true pattern=ball ! "
      "video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc ! "
      "tlsframesink name=sink port=0 host=127.0.0.1 require-client-cert=true "
      "cert-file=\"" +
      pki.server_cert() + "\" key-file=\"" + pki.server_key() + "\" ca-file=\"" + pki.ca() + "\"");
  ASSERT_TRUE(server.ok());
  GstElement *sink = server.element("sink");
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  int port = current_port(sink);
  ASSERT_GT(port, 0);
  auto client_desc = [&](const std::string &cert, const std::string &key) {
    return "tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(port) + " ca-file=\"" +
           pki.ca() + "\" cert-file=\"" + cert + "\" key-file=\"" + key +
           "\" ! appsink name=out sync=false max-buffers=2 drop=true";
  };
  Pipeline good(client_desc(pki.client_cert(), pki.client_key()));
  ASSERT_NE(gst_element_set_state(good.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(receives_fresh(good, sink, 3, kWait));

  {
    Pipeline rogue(client_desc(pki.rogue_client_cert(), pki.rogue_client_key()));
    ASSERT_NE(gst_element_set_state(rogue.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    EXPECT_NE(rogue.wait_error(kWait), "") << "a client of the other CA was accepted";
  }
  g_object_set(sink, "ca-file", pki.other_ca().c_str(), nullptr);
  Pipeline rogue(client_desc(pki.rogue_client_cert(), pki.rogue_client_key()));
  ASSERT_NE(gst_element_set_state(rogue.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  EXPECT_TRUE(receives_fresh(rogue, sink, 3, kWait));
  EXPECT_TRUE(receives_fresh(good, sink, 3, kWait)) << "the connected client lost its stream";
  EXPECT_EQ(num_clients(sink), 2u);
  EXPECT_EQ(pending_errors(server), "");
}

}  // namespace
}  // namespace tlsframe::test
