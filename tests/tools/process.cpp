#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char **environ;

namespace tlsframe::test {

Process::Process(const std::vector<std::string> &argv,
                 const std::map<std::string, std::string> &env, Stdin in) {
  int out[2], err[2], input[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0) return;
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return;
  }
  if (in == Stdin::kPipe && pipe2(input, O_CLOEXEC) != 0) {
    for (int fd : {out[0], out[1], err[0], err[1]}) close(fd);
    return;
  }
  // Environment: ours with env applied.
  std::map<std::string, std::string> vars;
  for (char **e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto &kv : env) {
    if (kv.second.empty()) {
      vars.erase(kv.first);
    } else {
      vars[kv.first] = kv.second;
    }
  }
  std::vector<std::string> env_strings;
  for (const auto &kv : vars) env_strings.push_back(kv.first + "=" + kv.second);
  std::vector<char *> envp, args;
  for (auto &s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto &s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  if (in == Stdin::kPipe) {
    posix_spawn_file_actions_adddup2(&actions, input[0], 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  // Default signal handling in the child (the test runner may ignore SIGINT).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all;
  sigfillset(&all);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(out[1]);
  close(err[1]);
  if (input[0] >= 0) close(input[0]);
  stdin_fd_ = input[1];
  if (rc != 0) {
    close(out[0]);
    close(err[0]);
    close_stdin();
    all_.push_back(std::string("spawn failed: ") + strerror(rc));
    return;
  }
  pid_ = pid;
  reader_ = std::thread([this, o = out[0], e = err[0]] { read_loop(o, e); });
}

Process::~Process() {
  close_stdin();
  if (pid_ > 0 && !status_) {
    kill(pid_, SIGKILL);
    wait_exit(std::chrono::seconds(10));
  }
  if (reader_.joinable()) reader_.join();
}

void Process::read_loop(int out_fd, int err_fd) {
  std::string partial[2];
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        if (!partial[i].empty()) {
          std::lock_guard<std::mutex> lock(mutex_);
          (i == 0 ? out_ : err_).push_back(partial[i]);
          all_.push_back(partial[i]);
        }
        continue;
      }
      partial[i].append(buf, static_cast<size_t>(n));
      size_t nl;
      std::lock_guard<std::mutex> lock(mutex_);
      while ((nl = partial[i].find_first_of("\n\r")) != std::string::npos) {
        std::string line = partial[i].substr(0, nl);
        partial[i].erase(0, nl + 1);
        if (line.empty()) continue;
        (i == 0 ? out_ : err_).push_back(line);
        all_.push_back(line);
      }
      cond_.notify_all();
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  eof_ = true;
  cond_.notify_all();
}

std::optional<std::string> Process::wait_line(const std::string &re,
                                              std::chrono::milliseconds timeout) {
  std::regex rx(re);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mutex_);
  size_t checked = 0;
  while (true) {
    for (; checked < all_.size(); ++checked) {
      if (std::regex_search(all_[checked], rx)) return all_[checked];
    }
    if (eof_) return std::nullopt;
    if (cond_.wait_until(lock, deadline) == std::cv_status::timeout && checked == all_.size()) {
      return std::nullopt;
    }
  }
}

std::optional<std::string> Process::wait_nth_line(const std::string &re, size_t n,
                                                  std::chrono::milliseconds timeout) {
  std::regex rx(re);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mutex_);
  size_t checked = 0, found = 0;
  while (true) {
    for (; checked < all_.size(); ++checked) {
      if (std::regex_search(all_[checked], rx) && ++found >= n) return all_[checked];
    }
    if (eof_) return std::nullopt;
    if (cond_.wait_until(lock, deadline) == std::cv_status::timeout && checked == all_.size()) {
      return std::nullopt;
    }
  }
}

std::string match_group(const std::string &line, const std::string &re, size_t n) {
  std::smatch m;
  if (!std::regex_search(line, m, std::regex(re)) || m.size() <= n) return "";
  return m[n].str();
}

bool Process::write_stdin(const std::string &text) {
  if (stdin_fd_ < 0) return false;
  // A child that has gone would raise SIGPIPE in the test: EPIPE instead.
  ::signal(SIGPIPE, SIG_IGN);
  size_t done = 0;
  for (int i = 0; i < 1000 && done < text.size(); ++i) {
    ssize_t n = write(stdin_fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return done == text.size();
}

void Process::close_stdin() {
  if (stdin_fd_ >= 0) close(stdin_fd_);
  stdin_fd_ = -1;
}

void Process::signal(int sig) {
  if (pid_ > 0 && !status_) kill(pid_, sig);
}

std::optional<int> Process::wait_exit(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  if (pid_ <= 0) return std::nullopt;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // waitpid with WNOHANG, polled every 10 ms until the deadline (no SIGCHLD handler here).
  for (int i = 0; i < 1000000; ++i) {
    int ws = 0;
    pid_t r = waitpid(pid_, &ws, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
      if (reader_.joinable()) reader_.join();
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::unique_lock<std::mutex> lock(mutex_);
    cond_.wait_for(lock, std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

std::vector<std::string> Process::out_lines() {
  std::lock_guard<std::mutex> lock(mutex_);
  return out_;
}
std::vector<std::string> Process::err_lines() {
  std::lock_guard<std::mutex> lock(mutex_);
  return err_;
}
std::string Process::transcript() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string t;
  for (const auto &l : all_) t += "  | " + l + "\n";
  return t;
}

RunResult run_process(const std::vector<std::string> &argv, std::chrono::milliseconds timeout,
                      const std::map<std::string, std::string> &env) {
  Process p(argv, env);
  RunResult r;
  auto status = p.wait_exit(timeout);
  r.status = status ? *status : -1;
  r.out = p.out_lines();
  r.err = p.err_lines();
  r.transcript = p.transcript();
  return r;
}

}  // namespace tlsframe::test
