// Who may watch what `tlsframe serve` serves (issue 12): the CRL beside the CA
// (DIR/crl.pem, as `tlsframe certs --revoke` writes it) as every sink's
// crl-file, reloaded when the file changes and on SIGHUP; and --allow, the
// identities each stream's sink lists in authorized-clients.
//
// Threads: everything here runs on the main thread (the main loop's timeout and
// SIGHUP sources), never on a streaming or signal thread.
#pragma once

#include <gst/gst.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tls_files.h"
#include "values.h"

namespace tlsframe::tool {

// --allow [NAME/]IDENTITY, repeatable. A bare IDENTITY (CN=…, DNS:…, URI:…, email:…,
// sha256:…) applies to every stream; NAME/IDENTITY to the stream NAME alone ("/IDENTITY":
// the default stream). Unambiguous: a stream name has no '=', ':' or '/', and every
// identity's prefix ends in '=' or ':'. Returns the identities of each stream, in the
// order of `streams` (their names); nullopt after one error line (a usage error).
std::optional<std::vector<std::vector<std::string>>> parse_allow_options(
    const std::vector<std::string> &values, const std::vector<std::string> &streams);

// The authorized-clients value for these identities: GStreamer value text of an array
// of strings, <"CN=alice", "DNS:door.lan"> (a PropertyValue with serialized = true).
std::string authorized_clients_value(const std::vector<std::string> &identities);

// What a CRL file held when it was last read.
struct CrlSummary {
  size_t revoked = 0;        // certificates it revokes
  int64_t next_update = 0;   // Unix seconds, 0 = none
  std::string text() const;  // "N revoked, next update DATE[ (passed)]"
};

// serve --mtls: the CRL beside the CA. Reads and checks it (signed by the CA) before
// any sink uses it; once running, polls the file each second (a rename over it, as
// `certs --revoke` does, or an edit) and reloads on SIGHUP: a CRL that checks is set
// again as every sink's crl-file (the sinks reload it and close the clients it
// revokes); one that does not is reported and the sinks keep the CRL they have.
class CrlWatch {
 public:
  // say(text, is_error): a line for the user (ServerOutput::say).
  using Say = std::function<void(const std::string &, bool)>;

  explicit CrlWatch(const TlsOptions &tls);
  ~CrlWatch();
  CrlWatch(const CrlWatch &) = delete;
  CrlWatch &operator=(const CrlWatch &) = delete;

  const std::string &path() const { return crl_; }
  bool present() const;
  // Before the pipeline is made, with --mtls: when the CRL exists and checks, adds
  // crl-file to each of `sinks` in *values. False after an error line (it exists but
  // cannot be read or is not signed by the CA): serve must not start without it.
  bool prepare(const std::vector<std::string> &sinks, PropertyValues *values);
  // Once PLAYING: says which CRL is used (if any) and starts watching.
  void start(std::vector<GstElement *> sinks, Say say);
  // Reads and checks the file now and sets it on every sink; why: "changed", "SIGHUP".
  void reload(const std::string &why);
  // Stops watching (before the pipeline goes).
  void stop();
  // The command that signs the CRL again: "tlsframe certs [--out DIR] --revoke NAME".
  std::string renew_command() const;

 private:
  // The file's identity and state; a rename over it changes the inode.
  struct Stamp {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const Stamp &o) const {
      return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size &&
             mtime_ns == o.mtime_ns;
    }
  };
  Stamp stamp() const;
  // The CRL's contents when it is signed by the CA, else an error text.
  bool read(CrlSummary *summary, std::string *why_not) const;
  static gboolean on_poll(gpointer data);
  static gboolean on_hangup(gpointer data);

  std::string crl_, ca_;
  std::vector<GstElement *> sinks_;  // borrowed; the pipeline outlives this object's sources
  Say say_;
  Stamp seen_;
  bool loaded_ = false;     // the sinks have a crl-file
  bool gone_said_ = false;  // "removed" reported for the current absence
  guint poll_ = 0, hangup_ = 0;
};

}  // namespace tlsframe::tool
