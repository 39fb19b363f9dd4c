// Lock scope made structural: the fields a mutex guards live in one struct
// that is reached only through a lock of that mutex (the C++ analogue of
// Rust's Mutex<State>). A field outside the struct cannot be read under the
// wrong lock, and a field inside cannot be read without one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

namespace tlsframe {

template <typename T>
class Guarded {
 public:
  // Holds the lock for as long as it lives; reach the state with -> or *.
  class Locked {
   public:
    explicit Locked(Guarded &g) : lock_(g.mutex_), value_(&g.value_) {}
    T *operator->() const { return value_; }
    T &operator*() const { return *value_; }
    // Waits on cv (releasing the lock meanwhile) until pred(state) or the timeout.
    template <typename Rep, typename Period, typename Pred>
    bool wait_for(std::condition_variable &cv, std::chrono::duration<Rep, Period> timeout,
                  Pred &&pred) {
      return cv.wait_for(lock_, timeout, [&] { return pred(*value_); });
    }

   private:
    std::unique_lock<std::mutex> lock_;
    T *value_;
  };

  template <typename... Args>
  explicit Guarded(Args &&...args) : value_(std::forward<Args>(args)...) {}

  Locked lock() const { return Locked(const_cast<Guarded &>(*this)); }

 private:
  mutable std::mutex mutex_;
  T value_;
};

}  // namespace tlsframe
