// The subcommands of the tlsframe tool; each returns the process exit status.
#pragma once

namespace tlsframe::tool {

int cmd_serve(int argc, char **argv);
int cmd_view(int argc, char **argv);
int cmd_relay(int argc, char **argv);
int cmd_certs(int argc, char **argv);

}  // namespace tlsframe::tool
