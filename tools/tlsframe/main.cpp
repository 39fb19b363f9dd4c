// tlsframe: stream a camera to viewers over TLS with the tlsframe GStreamer elements.
#include <clocale>
#include <cstring>
#include <iostream>
#include <string>

#include "cli.h"
#include "commands.h"

namespace {

constexpr const char *kUsage = R"(usage: tlsframe COMMAND [OPTIONS]

Commands:
  serve   stream a camera (or a test pattern or a file) to viewers over TLS
  view    connect to a server and show, record or snapshot its stream
  relay   receive one stream and serve it again (trees of relays reach many viewers)
  certs   make a CA, a server certificate and client certificates

`tlsframe COMMAND --help` lists the options of each command.
Typical use:
  tlsframe serve                  # on the camera machine; the first run makes a CA and a
                                  # certificate in ${XDG_CONFIG_HOME:-~/.config}/tlsframe/certs
  tlsframe view localhost         # a viewer on the same machine
  tlsframe view cam1.lan --ca ca.pem   # a viewer elsewhere, with a copy of the server's ca.pem
)";

}  // namespace

int main(int argc, char **argv) {
  using namespace tlsframe::tool;
  // The user's locale for GOption's help and messages (as gst-launch-1.0 does), but C
  // numbers, so figures read the same in every locale and scripts can parse them.
  setlocale(LC_ALL, "");
  setlocale(LC_NUMERIC, "C");
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    std::cout << kUsage;
    return argc < 2 ? kExitUsage : kExitOk;
  }
  if (!strcmp(argv[1], "--version")) {
    std::cout << "tlsframe " << TLSFRAME_VERSION << std::endl;
    return kExitOk;
  }
  std::string cmd = argv[1];
  set_command_name(cmd);
  // Each command gets the arguments after its name.
  if (cmd == "serve") return cmd_serve(argc - 2, argv + 2);
  if (cmd == "view") return cmd_view(argc - 2, argv + 2);
  if (cmd == "relay") return cmd_relay(argc - 2, argv + 2);
  if (cmd == "certs") return cmd_certs(argc - 2, argv + 2);
  set_command_name("");
  std::cerr << "tlsframe: error: unknown command '" << cmd << "' (serve, view, relay or certs)"
            << std::endl;
  return kExitUsage;
}
