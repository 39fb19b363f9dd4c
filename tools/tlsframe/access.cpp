#include "access.h"

#include <glib-unix.h>
#include <signal.h>
#include <sys/stat.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include "cli.h"
#include "core/authorization.h"
#include "core/certgen.h"
#include "core/wire_fields.h"
#include "streams.h"

namespace tlsframe::tool {

namespace {

constexpr guint kPollSeconds = 1;  // how often the CRL file is looked at

std::string utc_date(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  char buf[64];
  if (gmtime_r(&tt, &tm) == nullptr || strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm) == 0) {
    return "?";
  }
  return buf;
}

std::string read_text(const std::string &path, bool *ok) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  *ok = in.good() || in.eof();
  return text.str();
}

// The directory of a file path ("." for a bare name).
std::string dir_of(const std::string &path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::optional<std::vector<std::vector<std::string>>> parse_allow_options(
    const std::vector<std::string> &values, const std::vector<std::string> &streams) {
  std::vector<std::vector<std::string>> out(streams.size());
  for (const std::string &v : values) {
    // NAME/IDENTITY when what precedes the first '/' is a stream name (or empty): an
    // identity's prefix (CN=, DNS:, ...) always holds a '=' or ':' before any '/'.
    std::string identity = v;
    std::optional<std::string> stream;
    auto slash = v.find('/');
    if (slash != std::string::npos) {
      std::string name = v.substr(0, slash);
      if (name.empty() || wire::valid_stream_name(name)) {
        stream = name;
        identity = v.substr(slash + 1);
      }
    }
    auto rule = authz::parse_rule(identity);
    if (!rule) {
      error("--allow " + v + ": " + rule.error().message);
      return std::nullopt;
    }
    if (!stream) {
      for (auto &list : out) list.push_back(identity);
      continue;
    }
    size_t i = 0;
    while (i < streams.size() && streams[i] != *stream) ++i;
    if (i == streams.size()) {
      std::string names;
      for (const auto &s : streams) names += (names.empty() ? "" : ", ") + stream_label(s);
      error("--allow " + v + ": no stream " + stream_label(*stream) +
            " is served (streams: " + names + ")");
      return std::nullopt;
    }
    out[i].push_back(identity);
  }
  return out;
}

std::string authorized_clients_value(const std::vector<std::string> &identities) {
  // <"CN=alice", "DNS:door.lan">: each a quoted GStreamer string ('\\' and '"' escaped).
  std::string out = "<";
  for (const auto &id : identities) {
    out += out.size() > 1 ? ", \"" : "\"";
    for (char c : id) {
      if (c == '\\' || c == '"') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + ">";
}

std::string CrlSummary::text() const {
  std::string out = std::to_string(revoked) + " revoked";
  if (next_update == 0) return out + ", no next update";
  out += ", next update " + utc_date(next_update);
  if (next_update < static_cast<int64_t>(time(nullptr))) out += " (passed)";
  return out;
}

CrlWatch::CrlWatch(const TlsOptions &tls) {
  // Beside the CA that checks client certificates, where `certs --revoke` writes it.
  ca_ = tls.ca.empty() ? tls.dir + "/ca.pem" : tls.ca;
  crl_ = dir_of(ca_) + "/crl.pem";
}

CrlWatch::~CrlWatch() {
  stop();
}

void CrlWatch::stop() {
  if (poll_) g_source_remove(poll_);
  if (hangup_) g_source_remove(hangup_);
  poll_ = hangup_ = 0;
}

std::string CrlWatch::renew_command() const {
  std::string dir = dir_of(crl_);
  return "tlsframe certs" + (dir == default_cert_dir() ? "" : " --out " + dir) + " --revoke NAME";
}

bool CrlWatch::present() const {
  return stamp().exists;
}

CrlWatch::Stamp CrlWatch::stamp() const {
  Stamp s;
  struct stat st {};
  if (stat(crl_.c_str(), &st) != 0) return s;
  s.exists = true;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return s;
}

bool CrlWatch::read(CrlSummary *summary, std::string *why_not) const {
  bool ok_crl = false, ok_ca = false;
  std::string crl = read_text(crl_, &ok_crl);
  std::string ca = read_text(ca_, &ok_ca);
  if (!ok_crl || !ok_ca) {
    *why_not = "cannot read " + (ok_crl ? ca_ : crl_);
    return false;
  }
  auto contents = certgen::read_crl(crl, ca);
  if (!contents) {
    *why_not = contents.error().message + " (a CRL signed by the CA in " + ca_ + " is expected)";
    return false;
  }
  summary->revoked = contents->revoked.size();
  summary->next_update = contents->next_update;
  return true;
}

bool CrlWatch::prepare(const std::vector<std::string> &sinks, PropertyValues *values) {
  seen_ = stamp();
  if (!seen_.exists) return true;
  CrlSummary summary;
  std::string why_not;
  if (!read(&summary, &why_not)) {
    error("the CRL " + crl_ + " cannot be used: " + why_not +
          "; serving without it would let revoked certificates in (fix it with tlsframe certs "
          "--revoke, or move it away)");
    return false;
  }
  for (const auto &sink : sinks) values->push_back({sink, "crl-file", crl_});
  loaded_ = true;
  return true;
}

void CrlWatch::start(std::vector<GstElement *> sinks, Say say) {
  sinks_ = std::move(sinks);
  say_ = std::move(say);
  if (loaded_) {
    CrlSummary summary;
    std::string why_not;
    if (read(&summary, &why_not)) say_("using CRL " + crl_ + ": " + summary.text(), false);
  } else {
    say_("no CRL at " + crl_ + " (yet): every certificate the CA signed is accepted; " +
             "`tlsframe certs --revoke NAME` makes one and serve loads it",
         false);
  }
  poll_ = g_timeout_add_seconds(kPollSeconds, &CrlWatch::on_poll, this);
  hangup_ = g_unix_signal_add(SIGHUP, &CrlWatch::on_hangup, this);
}

gboolean CrlWatch::on_poll(gpointer data) {
  auto *self = static_cast<CrlWatch *>(data);
  Stamp now = self->stamp();
  if (!(now == self->seen_)) {
    self->seen_ = now;
    self->reload("changed");
  }
  return G_SOURCE_CONTINUE;
}

gboolean CrlWatch::on_hangup(gpointer data) {
  auto *self = static_cast<CrlWatch *>(data);
  self->seen_ = self->stamp();
  self->reload("SIGHUP");
  return G_SOURCE_CONTINUE;
}

void CrlWatch::reload(const std::string &why) {
  if (!stamp().exists) {
    if (!loaded_) {
      if (why == "SIGHUP") say_("SIGHUP: no CRL at " + crl_ + " to load", false);
      return;
    }
    if (!gone_said_ || why == "SIGHUP") {
      say_(crl_ + " is gone (" + why +
               "): the sinks keep the CRL they loaded; revoked certificates stay refused",
           false);
    }
    gone_said_ = true;
    return;
  }
  gone_said_ = false;
  CrlSummary summary;
  std::string why_not;
  if (!read(&summary, &why_not)) {
    say_("CRL " + crl_ + " (" + why + ") not loaded: " + why_not + "; " +
             (loaded_ ? "the CRL loaded before stays in use" : "no CRL in use"),
         true);
    return;
  }
  // Setting the property again makes each sink read the file and close the connected
  // clients it revokes (tlsframesink crl-file).
  for (GstElement *sink : sinks_) g_object_set(sink, "crl-file", crl_.c_str(), nullptr);
  say_(std::string(loaded_ ? "reloaded CRL " : "using CRL ") + crl_ + " (" + why +
           "): " + summary.text(),
       false);
  loaded_ = true;
}

}  // namespace tlsframe::tool
