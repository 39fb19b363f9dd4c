// A child process for tool tests: argv and extra environment, stdout and
// stderr collected line by line on a reader thread, waits on lines with
// deadlines (never sleeps), signals, and a kill on destruction. Standard input
// is /dev/null, or a pipe the test writes to (Stdin::kPipe).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace tlsframe::test {

class Process {
 public:
  enum class Stdin { kNull, kPipe };
  // env: variables to set (an empty value unsets the variable).
  Process(const std::vector<std::string> &argv, const std::map<std::string, std::string> &env = {},
          Stdin in = Stdin::kNull);
  ~Process();  // SIGKILL if still running
  Process(const Process &) = delete;
  Process &operator=(const Process &) = delete;

  bool started() const { return pid_ > 0; }
  // First line (stdout or stderr) matching re (ECMAScript), waiting up to timeout.
  std::optional<std::string> wait_line(const std::string &re, std::chrono::milliseconds timeout);
  // The n-th line (1 = the first) matching re, waiting up to timeout.
  std::optional<std::string> wait_nth_line(const std::string &re, size_t n,
                                           std::chrono::milliseconds timeout);
  void signal(int sig);
  // Stdin::kPipe only: writes text to the child's standard input (false once it is closed or
  // the child has gone), and closes it (the child reads end of file).
  bool write_stdin(const std::string &text);
  void close_stdin();
  // Exit status (WEXITSTATUS, or 128+signal) once the process ended, nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::vector<std::string> out_lines();  // stdout so far
  std::vector<std::string> err_lines();  // stderr so far
  std::string transcript();              // everything, for failure messages

 private:
  void read_loop(int out_fd, int err_fd);

  pid_t pid_ = -1;
  int stdin_fd_ = -1;  // write end of the child's standard input, -1 when none
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable cond_;
  std::vector<std::string> out_, err_, all_;
  bool eof_ = false;
  std::optional<int> status_;
};

// Submatch n of re in line ("" when it does not match).
std::string match_group(const std::string &line, const std::string &re, size_t n = 1);

// Runs argv to completion (bounded by timeout); returns the exit status and the lines.
struct RunResult {
  int status = -1;
  std::vector<std::string> out, err;
  std::string transcript;
};
RunResult run_process(const std::vector<std::string> &argv, std::chrono::milliseconds timeout,
                      const std::map<std::string, std::string> &env = {});

}  // namespace tlsframe::test
