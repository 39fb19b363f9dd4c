// Runs posted calls in order on a thread of its own, so the server's I/O
// threads never wait on application signal handlers, and a handler may even
// stop the element (which stops this dispatcher from its own thread).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace tlsframe::gst {

class SignalDispatcher {
 public:
  SignalDispatcher();
  ~SignalDispatcher();  // stop()
  SignalDispatcher(const SignalDispatcher &) = delete;
  SignalDispatcher &operator=(const SignalDispatcher &) = delete;

  // Queues fn; calls run one at a time, in the order posted. Ignored after stop().
  void post(std::function<void()> fn);
  // Runs everything already posted, then ends the thread. From another thread
  // it waits for that; from the dispatcher's own thread (a handler) it returns
  // at once and the thread finishes the queue after the handler returns.
  void stop();

 private:
  struct State {
    std::mutex mutex;  // protects queue and stopping
    std::condition_variable cond;
    std::deque<std::function<void()>> queue;
    bool stopping = false;
  };
  static void run(const std::shared_ptr<State> &state);

  std::shared_ptr<State> state_;  // shared with the thread, which may outlive this object
  std::thread thread_;
};

}  // namespace tlsframe::gst
