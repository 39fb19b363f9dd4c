#include "first_run.h"

#include <glib.h>
#include <sys/stat.h>

#include <algorithm>

#include "addresses.h"
#include "certs.h"
#include "cli.h"

namespace tlsframe::tool {

namespace {

constexpr const char *kSetFiles[] = {"ca.pem", "ca.key", "server.pem", "server.key"};

bool exists(const std::string &path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

bool dns_name(const std::string &name) {
  if (name.empty() || name.size() > 253 || name.front() == '-' || name.front() == '.') {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return g_ascii_isalnum(c) || c == '-' || c == '.'; });
}

}  // namespace

std::vector<std::string> this_machine_names() {
  std::vector<std::string> names;
  auto add = [&](const std::string &n) {
    if (!n.empty() && std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  };
  std::string host = g_get_host_name();
  if (dns_name(host) && !is_ip_address(host)) add(host);
  add("localhost");
  // "::" lists the IPv4 and the IPv6 addresses, bracketed for IPv6.
  for (std::string a : usable_addresses("::")) {
    if (a.size() > 2 && a.front() == '[') a = a.substr(1, a.size() - 2);
    add(a);
  }
  add("127.0.0.1");
  add("::1");
  return names;
}

bool ensure_server_certs(const TlsOptions &o, bool dry_run, bool *fresh) {
  *fresh = false;
  if (!default_dir(o) || !o.cert.empty() || !o.key.empty()) return true;
  const std::string &dir = o.dir;
  std::vector<std::string> present, missing;
  for (const char *f : kSetFiles) (exists(dir + "/" + f) ? present : missing).push_back(f);
  if (exists(dir + "/server.pem") && exists(dir + "/server.key")) return true;
  if (!present.empty()) {
    std::string have, lack;
    for (const auto &f : present) have += (have.empty() ? "" : ", ") + f;
    for (const auto &f : missing) lack += (lack.empty() ? "" : ", ") + f;
    error("the certificates in " + dir + " are incomplete (" + have + " there, " + lack +
          " missing); nothing was overwritten: restore the missing files, or replace the set "
          "with: tlsframe certs --out " +
          dir + " --force");
    return false;
  }
  *fresh = true;
  if (dry_run) return true;
  CertSetSpec spec;
  spec.hosts = this_machine_names();
  auto files = make_cert_set(spec);
  if (!files || !write_cert_set(dir, *files, false)) return false;
  info("first run: made a development CA and a server certificate in " + dir);
  info("  " + dir + "/ca.pem: the CA certificate; a viewer on another machine needs a copy");
  info("  " + dir + "/ca.key: the CA's private key (mode 0600; it stays here)");
  info("  " + dir + "/server.pem and server.key: this server, for " + san_text(spec.hosts));
  return true;
}

}  // namespace tlsframe::tool
