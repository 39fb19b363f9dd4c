// `tlsframe certs`: a CA, a server certificate for every --host name and
// address, and client certificates, made with OpenSSL's API (core/certgen).
#include "certs.h"

#include <arpa/inet.h>
#include <glib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli.h"
#include "commands.h"
#include "tls_files.h"

namespace tlsframe::tool {

namespace {

constexpr const char *kSummary =
    "Makes a certificate authority and certificates signed by it, ECDSA P-256 by default:\n"
    "  DIR/ca.pem, DIR/ca.key          the CA (copy ca.pem to every viewer)\n"
    "  DIR/server.pem, DIR/server.key  the server, with subjectAltName for every --host\n"
    "                                  (names and IPv4/IPv6 addresses; default localhost,\n"
    "                                  127.0.0.1 and ::1)\n"
    "  DIR/client-NAME.pem, .key       a client certificate per --client (mutual TLS)\n"
    "Keys are written with mode 0600, the directory (when made) with 0700. Existing files\n"
    "are never replaced without --force. With --client only (no --host) and a CA already in\n"
    "DIR (such as the one `tlsframe serve` makes on its first run), only the client\n"
    "certificates are made, signed by that CA. Bare words are more --host names.\n\n"
    "--revoke NAME revokes DIR/client-NAME.pem (or a certificate file, when NAME holds a\n"
    "'/' or ends in .pem) in DIR/crl.pem, the CRL beside the CA: made when missing,\n"
    "otherwise read (it must be signed by DIR/ca.pem) and re-signed with the CA key, the\n"
    "earlier entries kept. Revoking a certificate again changes nothing but the CRL's\n"
    "dates. The CRL's next update is --crl-days ahead (default 30): re-sign before then\n"
    "(any --revoke run does).";

bool valid_name(const std::string &name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

std::string read_file(const std::string &path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int issue_clients_from_existing_ca(const std::string &out, const std::vector<std::string> &clients,
                                   bool rsa, long days) {
  certgen::Issued ca{read_file(out + "/ca.pem"), read_file(out + "/ca.key")};
  CertSetSpec spec;
  spec.clients = clients;
  spec.rsa = rsa;
  spec.days = days;
  auto files = make_cert_set(spec, &ca);
  if (!files || !write_cert_set(out, *files, false)) return kExitError;
  for (const auto &name : clients) {
    info("wrote " + out + "/client-" + name + ".pem and client-" + name + ".key (CN=" + name +
         "), signed by the CA already in " + out);
  }
  return kExitOk;
}

// "2025-01-31 12:00 UTC" for Unix seconds.
std::string utc_text(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  char buf[64];
  if (gmtime_r(&tt, &tm) == nullptr || strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm) == 0) {
    return "?";
  }
  return buf;
}

// The certificate file --revoke NAME means: a path when it looks like one,
// else DIR/client-NAME.pem as `certs --client NAME` wrote it.
std::string revoke_target(const std::string &dir, const std::string &name) {
  bool path = name.find('/') != std::string::npos ||
              (name.size() > 4 && name.compare(name.size() - 4, 4, ".pem") == 0);
  return path ? name : dir + "/client-" + name + ".pem";
}

// certs --revoke: adds each certificate's serial to DIR/crl.pem (made when
// missing) and re-signs it with the CA key. Idempotent: a serial already
// listed keeps its first revocation date.
int revoke(const std::string &dir, const std::vector<std::string> &names, long crl_days) {
  const std::string ca_pem = dir + "/ca.pem", ca_key = dir + "/ca.key", crl_path = dir + "/crl.pem";
  if (!file_readable(ca_pem) || !file_readable(ca_key)) {
    error("--revoke needs the CA that signed the certificates: " + ca_pem + " and " + ca_key +
          " (pass --out DIR for another directory)");
    return kExitError;
  }
  certgen::Issued ca{read_file(ca_pem), read_file(ca_key)};
  certgen::CrlSpec spec;
  spec.next_update_offset_s = static_cast<int64_t>(crl_days) * 86400;
  if (file_readable(crl_path)) {
    auto old = certgen::read_crl(read_file(crl_path), ca.cert_pem);
    if (!old) {
      error("cannot update " + crl_path + ": " + old.error().message +
            " (move it away to start a new CRL)");
      return kExitError;
    }
    spec.revoked = old->revoked;
    spec.crl_number = old->crl_number + 1;
  }
  const int64_t now = static_cast<int64_t>(time(nullptr));
  for (const std::string &name : names) {
    const std::string file = revoke_target(dir, name);
    if (!file_readable(file)) {
      error("no certificate " + file +
            " to revoke (NAME is the --client NAME it was made with, or a certificate file)");
      return kExitError;
    }
    const std::string pem = read_file(file);
    auto serial = certgen::serial_hex(pem);
    auto ours = certgen::issued_by(pem, ca.cert_pem);
    if (!serial || !ours) {
      error("cannot read " + file + ": " + (!serial ? serial.error() : ours.error()).message);
      return kExitError;
    }
    if (!*ours) {
      error(file + " was not signed by the CA in " + ca_pem + ": its CRL cannot revoke it");
      return kExitError;
    }
    bool listed = false;
    for (const certgen::RevokedCert &r : spec.revoked) {
      if (r.serial_hex == *serial) {
        listed = true;
        info(file + " (serial " + *serial + ") was already revoked on " + utc_text(r.revoked_at));
      }
    }
    if (!listed) {
      spec.revoked.push_back({*serial, now});
      info("revoked " + file + " (serial " + *serial + ")");
    }
  }
  auto crl = certgen::make_crl(spec, ca);
  if (!crl) {
    error("making the CRL failed: " + crl.error().message);
    return kExitError;
  }
  Status written = certgen::write_file(crl_path, *crl, false, /*overwrite=*/true);
  if (!written) {
    error(written.error().message);
    return kExitError;
  }
  info("wrote " + crl_path + ": " + std::to_string(spec.revoked.size()) +
       " revoked certificate(s), CRL number " + std::to_string(spec.crl_number) + ", signed by " +
       ca_pem + ", next update " + utc_text(now + spec.next_update_offset_s) +
       " (re-sign before then: certs --revoke again)");
  return kExitOk;
}

}  // namespace

bool is_ip_address(const std::string &text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

std::string san_text(const std::vector<std::string> &hosts) {
  std::string text;
  for (const auto &h : hosts) {
    text += (text.empty() ? "" : ", ") + std::string(is_ip_address(h) ? "IP:" : "DNS:") + h;
  }
  return text;
}

std::optional<std::vector<CertFile>> make_cert_set(const CertSetSpec &spec,
                                                   const certgen::Issued *existing_ca) {
  certgen::CertSpec base;
  base.key_type = spec.rsa ? certgen::KeyType::kRsa2048 : certgen::KeyType::kEcdsaP256;
  base.not_after_offset_s = spec.days * 86400;
  std::vector<CertFile> files;

  certgen::Issued ca;
  if (existing_ca) {
    ca = *existing_ca;
  } else {
    certgen::CertSpec ca_spec = base;
    ca_spec.common_name = "tlsframe CA";
    ca_spec.usage = certgen::Usage::kCa;
    auto made = certgen::make_self_signed(ca_spec);
    if (!made) {
      error("making the CA failed: " + made.error().message);
      return std::nullopt;
    }
    ca = *made;
    files.push_back({"ca.pem", ca.cert_pem, false});
    files.push_back({"ca.key", ca.key_pem, true});
  }

  if (!spec.hosts.empty()) {
    certgen::CertSpec server_spec = base;
    server_spec.common_name = spec.hosts.front();
    server_spec.usage = certgen::Usage::kServer;
    for (const auto &h : spec.hosts) {
      (is_ip_address(h) ? server_spec.ip_addresses : server_spec.dns_names).push_back(h);
    }
    auto server = certgen::issue(server_spec, ca);
    if (!server) {
      error("making the server certificate failed: " + server.error().message);
      return std::nullopt;
    }
    files.push_back({"server.pem", server->cert_pem, false});
    files.push_back({"server.key", server->key_pem, true});
  }

  for (const auto &name : spec.clients) {
    certgen::CertSpec client_spec = base;
    client_spec.common_name = name;
    client_spec.usage = certgen::Usage::kClient;
    auto client = certgen::issue(client_spec, ca);
    if (!client) {
      error("making the client certificate '" + name + "' failed: " + client.error().message);
      return std::nullopt;
    }
    files.push_back({"client-" + name + ".pem", client->cert_pem, false});
    files.push_back({"client-" + name + ".key", client->key_pem, true});
  }
  return files;
}

bool write_cert_set(const std::string &dir, const std::vector<CertFile> &files, bool force) {
  // The directory holds private keys: nobody else may list it or swap a file in it.
  if (g_mkdir_with_parents(dir.c_str(), 0700) != 0) {
    error("cannot create directory '" + dir + "': " + strerror(errno));
    return false;
  }
  // Refuse before writing anything, so a refused run leaves the directory as it was.
  if (!force) {
    for (const auto &f : files) {
      struct stat st;
      if (lstat((dir + "/" + f.name).c_str(), &st) == 0) {
        error(dir + "/" + f.name + " already exists; pass --force to replace the certificates in " +
              dir);
        return false;
      }
    }
  }
  for (const auto &f : files) {
    Status s = certgen::write_file(dir + "/" + f.name, f.text, f.key, force);
    if (!s) {
      error(s.error().message);
      return false;
    }
  }
  return true;
}

int cmd_certs(int argc, char **argv) {
  std::string out = default_cert_dir(), days_text = "825", crl_days_text = "30";
  std::vector<std::string> hosts, clients, revoked;
  bool rsa = false, force = false;
  Options opts("[NAME…]", kSummary);
  opts.value("out", &out, "DIR",
             "Output directory, created if missing (default: the per-user directory "
             "${XDG_CONFIG_HOME:-~/.config}/tlsframe/certs, which serve, view and relay use)");
  opts.repeated("host", &hosts, "NAME", "A DNS name or IP address of the server (repeatable)");
  opts.repeated("client", &clients, "NAME", "A client certificate with CN=NAME (repeatable)");
  opts.flag("rsa", &rsa, "RSA 2048 keys instead of ECDSA P-256");
  opts.value("days", &days_text, "N", "Validity of the certificates in days (default 825)");
  opts.flag("force", &force, "Replace existing files");
  opts.repeated("revoke", &revoked, "NAME",
                "Revoke client-NAME.pem (or a certificate file) in DIR/crl.pem, signed by the "
                "CA in DIR (repeatable; nothing else is made)");
  opts.value("crl-days", &crl_days_text, "N",
             "With --revoke: the CRL's next update, in days from now (default 30)");
  std::vector<std::string> positional;
  if (!opts.parse(argc, argv, &positional)) return kExitUsage;
  // Bare words are taken as more --host names (as make-dev-certs.sh does).
  hosts.insert(hosts.end(), positional.begin(), positional.end());
  if (!revoked.empty()) {
    if (!hosts.empty() || !clients.empty() || force || rsa) {
      error("--revoke only updates the CRL: make certificates in another run");
      return kExitUsage;
    }
    long crl_days = 0;
    if (!parse_int("crl-days", crl_days_text, 1, 3650, &crl_days)) return kExitUsage;
    return revoke(out, revoked, crl_days);
  }
  long days = 0;
  if (!parse_int("days", days_text, 1, 36500, &days)) return kExitUsage;
  for (const auto &c : clients) {
    if (!valid_name(c)) {
      error("--client names use letters, digits, '-', '_' and '.' only: '" + c + "'");
      return kExitUsage;
    }
  }
  // Only --client, and DIR already holds a CA (e.g. the one serve made on its first run):
  // the client certificates are signed by that CA, which stays as it is.
  if (hosts.empty() && !clients.empty() && !force && file_readable(out + "/ca.pem") &&
      file_readable(out + "/ca.key")) {
    return issue_clients_from_existing_ca(out, clients, rsa, days);
  }
  if (hosts.empty()) hosts = {"localhost", "127.0.0.1", "::1"};

  CertSetSpec spec;
  spec.hosts = hosts;
  spec.clients = clients;
  spec.rsa = rsa;
  spec.days = days;
  auto files = make_cert_set(spec);
  if (!files || !write_cert_set(out, *files, force)) return kExitError;

  info("wrote " + out + "/ca.pem and ca.key (certificate authority \"tlsframe CA\")");
  info("wrote " + out + "/server.pem and server.key for " + san_text(hosts));
  for (const auto &name : clients) {
    info("wrote " + out + "/client-" + name + ".pem and client-" + name + ".key (CN=" + name + ")");
  }
  info(std::string(rsa ? "RSA 2048" : "ECDSA P-256") + " keys, mode 0600, valid " +
       std::to_string(days) + " days");
  for (const auto &f : *files) {
    if (f.key) continue;
    auto fp = certgen::fingerprint_sha256(f.text);
    if (fp) std::cout << "SHA-256 " << f.name << " " << *fp << std::endl;
  }
  return kExitOk;
}

}  // namespace tlsframe::tool
