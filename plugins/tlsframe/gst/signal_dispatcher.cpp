#include "gst/signal_dispatcher.h"

namespace tlsframe::gst {

SignalDispatcher::SignalDispatcher() : state_(std::make_shared<State>()) {
  thread_ = std::thread([state = state_] { run(state); });
}

SignalDispatcher::~SignalDispatcher() {
  stop();
}

void SignalDispatcher::run(const std::shared_ptr<State> &state) {
  std::unique_lock<std::mutex> lock(state->mutex);
  for (;;) {
    state->cond.wait(lock, [&] { return state->stopping || !state->queue.empty(); });
    if (state->queue.empty()) return;  // stopping and drained
    std::function<void()> fn = std::move(state->queue.front());
    state->queue.pop_front();
    lock.unlock();
    fn();  // no lock held: the handler may post or stop
    fn = nullptr;
    lock.lock();
  }
}

void SignalDispatcher::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (state_->stopping) return;
    state_->queue.push_back(std::move(fn));
  }
  state_->cond.notify_one();
}

void SignalDispatcher::stop() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping = true;
  }
  state_->cond.notify_one();
  if (!thread_.joinable()) return;
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();  // it owns a reference to state_ and ends after the queue
  } else {
    thread_.join();
  }
}

}  // namespace tlsframe::gst
