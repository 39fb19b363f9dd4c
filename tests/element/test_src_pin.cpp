// tlsframesrc server-fingerprint (issue 12): a pinned server certificate is
// the trust, over real TLS on loopback with certificates made at test time.
// The right pin connects without a CA file (whatever the name); a wrong pin
// fails at once, naming both fingerprints, and is not retried; no pin and no
// CA file still fails as before; with ca-file set too, both must hold.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "common/pki.h"
#include "core/certgen.h"
#include "core/tls_context.h"
#include "element/gst_util.h"

using namespace std::chrono_literals;
using tlsframe::test::Pipeline;

namespace {

constexpr auto kWait = 10s;  // generous bound for any one condition

std::string read_file(const std::string &path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// "AB:CD:..." of a PEM certificate file (the form tlsframe serve prints).
std::string fingerprint_of(const std::string &pem_file) {
  auto fp = tlsframe::certgen::fingerprint_sha256(read_file(pem_file));
  EXPECT_TRUE(fp.ok()) << pem_file;
  return fp.ok() ? *fp : "";
}

std::string without_colons_lower(std::string fp) {
  std::string out;
  for (char c : fp) {
    if (c != ':') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

struct ErrorInfo {
  bool seen = false;
  GQuark domain = 0;
  int code = 0;
  std::string message;
  bool reconnecting = false;  // a tlsframesrc-disconnected message came first (a retry)
};

class SrcPinTest : public ::testing::Test {
 protected:
  void SetUp() override { tlsframe::test::init_gstreamer(); }

  // A live JPEG server with the given certificate.
  std::unique_ptr<Pipeline> start_server(const std::string &cert, const std::string &key) {
    auto p = std::make_unique<Pipeline>(
        "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc ! "
        "tlsframesink name=sink host=127.0.0.1 port=0 sync=false cert-file=" +
        cert + " key-file=" + key);
    EXPECT_NE(gst_element_set_state(p->get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    return p;
  }

  // A client with extra tlsframesrc properties (no ca-file unless props has one).
  std::unique_ptr<Pipeline> start_client(int port, const std::string &props) {
    auto p = std::make_unique<Pipeline>(
        "tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(port) + " " + props +
        " ! appsink name=out sync=false");
    gst_element_set_state(p->get(), GST_STATE_PLAYING);
    return p;
  }

  static ::testing::AssertionResult receives(Pipeline &client, size_t n) {
    auto got = tlsframe::test::pull_samples(client.element("out"), n, kWait);
    size_t count = got.size();
    tlsframe::test::unref_samples(got);
    if (count == n) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "received " << count << " of " << n
           << " buffers; errors: " << tlsframe::test::pending_errors(client);
  }

  static ErrorInfo wait_error(Pipeline &client) {
    ErrorInfo info;
    GstMessage *msg = nullptr;
    for (int i = 0; i < 100; ++i) {  // bounded: element messages before the error
      msg = client.wait_message(
          static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT), kWait);
      if (!msg || GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) break;
      const GstStructure *s = gst_message_get_structure(msg);
      if (s && gst_structure_has_name(s, "tlsframesrc-disconnected")) info.reconnecting = true;
      gst_message_unref(msg);
      msg = nullptr;
    }
    if (!msg) return info;
    GError *err = nullptr;
    gst_message_parse_error(msg, &err, nullptr);
    info.seen = true;
    info.domain = err->domain;
    info.code = err->code;
    info.message = err->message;
    g_clear_error(&err);
    gst_message_unref(msg);
    return info;
  }

  tlsframe::test::Pki pki_;
};

TEST_F(SrcPinTest, RightPinConnectsWithoutCaFile) {
  auto server = start_server(pki_.server_cert(), pki_.server_key());
  int port = tlsframe::test::current_port(server->element("sink"));
  ASSERT_GT(port, 0);
  const std::string fp = fingerprint_of(pki_.server_cert());
  auto client = start_client(port, "server-fingerprint=" + fp);
  EXPECT_TRUE(receives(*client, 5));
}

TEST_F(SrcPinTest, PinIsCaseInsensitiveWithColonsOptional) {
  auto server = start_server(pki_.server_cert(), pki_.server_key());
  int port = tlsframe::test::current_port(server->element("sink"));
  ASSERT_GT(port, 0);
  auto client = start_client(
      port, "server-fingerprint=" + without_colons_lower(fingerprint_of(pki_.server_cert())));
  EXPECT_TRUE(receives(*client, 5));
}

TEST_F(SrcPinTest, PinnedSelfSignedServerConnects) {
  // The case pinning is for: no CA anyone holds, a certificate trusted by its digest.
  auto server = start_server(pki_.self_signed_cert(), pki_.self_signed_key());
  int port = tlsframe::test::current_port(server->element("sink"));
  ASSERT_GT(port, 0);
  auto client = start_client(port, "server-fingerprint=" + fingerprint_of(pki_.self_signed_cert()));
  EXPECT_TRUE(receives(*client, 5));
}

TEST_F(SrcPinTest, PinAloneDoesNotCheckTheName) {
  // The certificate names elsewhere.example only; the pin names the certificate itself.
  auto server = start_server(pki_.wrong_name_cert(), pki_.wrong_name_key());
  int port = tlsframe::test::current_port(server->element("sink"));
  ASSERT_GT(port, 0);
  auto client = start_client(port, "server-fingerprint=" + fingerprint_of(pki_.wrong_name_cert()));
  EXPECT_TRUE(receives(*client, 5));
}

TEST_F(SrcPinTest, WrongPinFailsNamingBothFingerprintsAndIsNotRetried) {
  auto server = start_server(pki_.server_cert(), pki_.server_key());
  GstElement *sink = server->element("sink");
  int port = tlsframe::test::current_port(sink);
  ASSERT_GT(port, 0);
  const std::string wrong = fingerprint_of(pki_.self_signed_cert());
  const std::string got = fingerprint_of(pki_.server_cert());
  ASSERT_NE(wrong, got);
  // reconnect=true: a certificate error must still be final.
  auto client =
      start_client(port, "reconnect=true server-fingerprint=" + without_colons_lower(wrong));
  ErrorInfo e = wait_error(*client);
  ASSERT_TRUE(e.seen);
  EXPECT_EQ(e.domain, GST_RESOURCE_ERROR);
  EXPECT_EQ(e.code, GST_RESOURCE_ERROR_NOT_AUTHORIZED);
  EXPECT_NE(e.message.find("expected " + wrong), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("got " + got), std::string::npos) << e.message;
  EXPECT_FALSE(e.reconnecting);
}

TEST_F(SrcPinTest, NoPinAndNoCaFileFailsAsBefore) {
  // The system store does not trust the test CA: verification fails as it always did.
  auto server = start_server(pki_.server_cert(), pki_.server_key());
  int port = tlsframe::test::current_port(server->element("sink"));
  ASSERT_GT(port, 0);
  auto client = start_client(port, "");
  ErrorInfo e = wait_error(*client);
  ASSERT_TRUE(e.seen);
  EXPECT_EQ(e.domain, GST_RESOURCE_ERROR);
  EXPECT_EQ(e.code, GST_RESOURCE_ERROR_NOT_AUTHORIZED);
  EXPECT_NE(e.message.find("server certificate verification failed"), std::string::npos)
      << e.message;
  EXPECT_EQ(e.message.find("fingerprint"), std::string::npos) << e.message;
}

TEST_F(SrcPinTest, PinAndCaFileMustBothHold) {
  auto server = start_server(pki_.server_cert(), pki_.server_key());
  int port = tlsframe::test::current_port(server->element("sink"));
  ASSERT_GT(port, 0);
  const std::string fp = fingerprint_of(pki_.server_cert());
  {
    SCOPED_TRACE("right pin, right CA");
    auto client = start_client(port, "ca-file=" + pki_.ca() + " server-fingerprint=" + fp);
    EXPECT_TRUE(receives(*client, 3));
  }
  {
    SCOPED_TRACE("right pin, a CA that did not sign the server");
    auto client = start_client(port, "ca-file=" + pki_.other_ca() + " server-fingerprint=" + fp);
    ErrorInfo e = wait_error(*client);
    ASSERT_TRUE(e.seen);
    EXPECT_NE(e.message.find("server certificate verification failed"), std::string::npos)
        << e.message;
  }
  {
    SCOPED_TRACE("wrong pin, right CA");
    auto client = start_client(port, "ca-file=" + pki_.ca() + " server-fingerprint=" +
                                         fingerprint_of(pki_.self_signed_cert()));
    ErrorInfo e = wait_error(*client);
    ASSERT_TRUE(e.seen);
    EXPECT_NE(e.message.find("got " + fp), std::string::npos) << e.message;
  }
}

TEST_F(SrcPinTest, PinAndCaFileStillCheckTheName) {
  auto server = start_server(pki_.wrong_name_cert(), pki_.wrong_name_key());
  int port = tlsframe::test::current_port(server->element("sink"));
  ASSERT_GT(port, 0);
  auto client = start_client(port, "ca-file=" + pki_.ca() + " server-fingerprint=" +
                                       fingerprint_of(pki_.wrong_name_cert()));
  ErrorInfo e = wait_error(*client);
  ASSERT_TRUE(e.seen);
  EXPECT_NE(e.message.find("verification failed"), std::string::npos) << e.message;
}

TEST_F(SrcPinTest, InvalidPinRefusesToStart) {
  const char *bad[] = {"AB:CD", "not-hex-at-all",
                       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef00"};
  for (const char *value : bad) {
    SCOPED_TRACE(value);
    GstElement *src = gst_element_factory_make("tlsframesrc", nullptr);
    ASSERT_NE(src, nullptr);
    g_object_set(src, "server-fingerprint", value, nullptr);
    gchar *back = nullptr;
    g_object_get(src, "server-fingerprint", &back, nullptr);
    EXPECT_STREQ(back, value);  // kept as set, so start() can say why it refuses
    g_free(back);
    EXPECT_EQ(gst_element_set_state(src, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
    gst_element_set_state(src, GST_STATE_NULL);
    gst_object_unref(src);
  }
}

TEST(Fingerprint, NormalizesCaseAndColons) {
  const std::string upper =
      "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:"
      "CD:EF";
  for (const std::string &in :
       {upper, std::string("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
        std::string("0123456789ABCDEF0123456789abcdef01:23:45:67:89:ab:cd:ef:0123456789abcdef")}) {
    auto n = tlsframe::tls::normalize_fingerprint(in);
    ASSERT_TRUE(n.ok()) << in;
    EXPECT_EQ(*n, upper);
  }
  for (const std::string &in : {std::string(""), std::string(62, 'a'), std::string(66, 'a'),
                                std::string(63, 'a') + "g", std::string("SHA256:") + upper}) {
    EXPECT_FALSE(tlsframe::tls::normalize_fingerprint(in).ok()) << in;
  }
}

}  // namespace
