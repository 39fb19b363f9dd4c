// Test PKI made at test time (see pki.h for the files).
#include "common/pki.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include "core/certgen.h"

namespace tlsframe::test {
namespace {

using certgen::CertSpec;
using certgen::Issued;
using certgen::Usage;

constexpr int64_t kDay = 86400;

// A path that can never exist (nothing lives under /dev/null), used when no
// directory could be made so every accessor points at a missing file.
constexpr const char *kNoDir = "/dev/null/tlsframe-pki";

std::string error_text(const Error &e) {
  return e.detail.empty() ? e.message : e.message + " (" + e.detail + ")";
}

CertSpec localhost_spec(Usage usage) {
  CertSpec spec;
  spec.common_name = "localhost";
  spec.dns_names = {"localhost"};
  spec.ip_addresses = {"127.0.0.1", "::1"};
  spec.usage = usage;
  return spec;
}

CertSpec named_spec(const std::string &cn, Usage usage) {
  CertSpec spec;
  spec.common_name = cn;
  spec.usage = usage;
  return spec;
}

// One file to write: name in the directory, contents, private key or not.
struct File {
  std::string name;
  std::string text;
  bool private_key;
};

// Generates every certificate in memory; nothing touches the disk on failure.
Result<std::vector<File>> generate() {
  std::vector<File> files;
  auto add_pair = [&files](const std::string &stem, Issued issued) {
    files.push_back({stem + ".pem", std::move(issued.cert_pem), false});
    files.push_back({stem + ".key", std::move(issued.key_pem), true});
  };

  Result<Issued> ca = certgen::make_self_signed(named_spec("tlsframe test CA", Usage::kCa));
  if (!ca) return Error{ca.error().kind, "CA: " + ca.error().message, ca.error().detail};
  Result<Issued> other_ca =
      certgen::make_self_signed(named_spec("tlsframe other test CA", Usage::kCa));
  if (!other_ca) {
    return Error{other_ca.error().kind, "other CA: " + other_ca.error().message,
                 other_ca.error().detail};
  }

  CertSpec wrong_name = named_spec("elsewhere.example", Usage::kServer);
  wrong_name.dns_names = {"elsewhere.example"};
  CertSpec expired = localhost_spec(Usage::kServer);
  expired.not_before_offset_s = -30 * kDay;
  expired.not_after_offset_s = -kDay;
  CertSpec future = localhost_spec(Usage::kServer);
  future.not_before_offset_s = kDay;
  future.not_after_offset_s = 30 * kDay;
  // CN=localhost and no subjectAltName: names must come from the SAN only.
  CertSpec cn_only = named_spec("localhost", Usage::kServer);

  struct Job {
    const char *stem;
    CertSpec spec;
    const Issued *issuer;  // nullptr: self-signed
  };
  const Job jobs[] = {
      {"server", localhost_spec(Usage::kServer), &*ca},
      {"client", named_spec("client1", Usage::kClient), &*ca},
      {"rogue-client", named_spec("client1", Usage::kClient), &*other_ca},
      {"wrong-name", wrong_name, &*ca},
      {"expired", expired, &*ca},
      {"future", future, &*ca},
      {"self-signed", localhost_spec(Usage::kServer), nullptr},
      {"wrong-usage", localhost_spec(Usage::kClient), &*ca},
      {"cn-only", cn_only, &*ca},
  };

  files.push_back({"ca.pem", ca->cert_pem, false});
  files.push_back({"ca.key", ca->key_pem, true});
  files.push_back({"other-ca.pem", other_ca->cert_pem, false});
  files.push_back({"other-ca.key", other_ca->key_pem, true});
  for (const Job &job : jobs) {
    Result<Issued> issued =
        job.issuer ? certgen::issue(job.spec, *job.issuer) : certgen::make_self_signed(job.spec);
    if (!issued) {
      return Error{issued.error().kind, std::string(job.stem) + ": " + issued.error().message,
                   issued.error().detail};
    }
    add_pair(job.stem, std::move(*issued));
  }

  // ca -> intermediate -> leaf: the leaf file with and without the intermediate.
  Result<Issued> intermediate =
      certgen::issue(named_spec("tlsframe test intermediate CA", Usage::kCa), *ca);
  if (!intermediate) {
    return Error{intermediate.error().kind, "intermediate CA: " + intermediate.error().message,
                 intermediate.error().detail};
  }
  Result<Issued> chained = certgen::issue(localhost_spec(Usage::kServer), *intermediate);
  if (!chained) {
    return Error{chained.error().kind, "chained server: " + chained.error().message,
                 chained.error().detail};
  }
  files.push_back({"intermediate-ca.pem", intermediate->cert_pem, false});
  files.push_back({"chained-server-leaf.pem", chained->cert_pem, false});
  files.push_back({"chained-server.pem", chained->cert_pem + intermediate->cert_pem, false});
  files.push_back({"chained-server.key", chained->key_pem, true});
  return files;
}

}  // namespace

Pki::Pki() {
  const char *tmpdir = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/tlsframe-pki-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    int err = errno;
    dir_ = kNoDir;
    ADD_FAILURE() << "Pki: mkdtemp(" << tmpl << ") failed: " << std::strerror(err);
    return;
  }
  dir_ = tmpl;

  bool ok = true;
  Result<std::vector<File>> files = generate();
  if (!files) {
    ADD_FAILURE() << "Pki: " << error_text(files.error());
    ok = false;
  }
  for (size_t i = 0; ok && i < files->size(); ++i) {
    const File &f = (*files)[i];
    Status st = certgen::write_file(path(f.name), f.text, f.private_key, /*overwrite=*/false);
    if (!st) {
      ADD_FAILURE() << "Pki: " << error_text(st.error());
      ok = false;
    }
  }
  if (!ok) {
    // Leave every path pointing at a missing file rather than at a partial set.
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

namespace {

std::string read_text(const std::string &path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

certgen::Issued read_ca(const Pki &pki) {
  return certgen::Issued{read_text(pki.ca()), read_text(pki.path("ca.key"))};
}

}  // namespace

std::string Pki::read(const std::string &path) {
  return read_text(path);
}

bool Pki::issue_client(const std::string &stem, const std::string &cn,
                       const std::vector<std::string> &dns_names) {
  CertSpec spec = named_spec(cn, Usage::kClient);
  spec.dns_names = dns_names;
  Result<Issued> issued = certgen::issue(spec, read_ca(*this));
  if (!issued) {
    ADD_FAILURE() << "Pki::issue_client(" << stem << "): " << error_text(issued.error());
    return false;
  }
  for (const File &f : {File{stem + ".pem", issued->cert_pem, false},
                        File{stem + ".key", issued->key_pem, true}}) {
    Status st = certgen::write_file(path(f.name), f.text, f.private_key, /*overwrite=*/true);
    if (!st) {
      ADD_FAILURE() << "Pki::issue_client: " << error_text(st.error());
      return false;
    }
  }
  return true;
}

bool Pki::write_crl(const std::string &name, const std::vector<std::string> &revoked,
                    int64_t next_update_offset_s) {
  certgen::CrlSpec spec;
  spec.next_update_offset_s = next_update_offset_s;
  if (next_update_offset_s < 0) spec.this_update_offset_s = next_update_offset_s - kDay;
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  for (const std::string &cert_file : revoked) {
    Result<std::string> serial = certgen::serial_hex(read_text(cert_file));
    if (!serial) {
      ADD_FAILURE() << "Pki::write_crl: " << cert_file << ": " << error_text(serial.error());
      return false;
    }
    spec.revoked.push_back({*serial, now - 60});
  }
  Result<std::string> crl = certgen::make_crl(spec, read_ca(*this));
  if (!crl) {
    ADD_FAILURE() << "Pki::write_crl: " << error_text(crl.error());
    return false;
  }
  Status st = certgen::write_file(path(name), *crl, false, /*overwrite=*/true);
  if (!st) {
    ADD_FAILURE() << "Pki::write_crl: " << error_text(st.error());
    return false;
  }
  return true;
}

Pki::~Pki() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);  // no-op when the constructor failed
}

}  // namespace tlsframe::test
