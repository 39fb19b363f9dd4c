#include "common/alloc_count.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

// Kept out of line so GCC does not pair an inlined free() with operator new and
// report a false -Wmismatched-new-delete.
__attribute__((noinline)) void *operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void *p = std::malloc(size != 0 ? size : 1)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void *p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete(void *p, std::size_t) noexcept {
  std::free(p);
}

namespace tlsframe::test {

long allocation_count() {
  return g_allocations.load();
}

}  // namespace tlsframe::test
