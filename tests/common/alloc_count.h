// Heap allocation counting for tests that prove a code path allocates nothing,
// and a heap copy of exact size for tests that let AddressSanitizer catch reads
// past the end of an input.
//
// Link common/alloc_count.cpp only into the test programs that use
// allocation_count(): it replaces the global operator new and delete.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace tlsframe::test {

// Calls of operator new in this process so far.
long allocation_count();

// A heap copy of exactly size bytes (a std::vector may have spare capacity
// after its data, which would hide a read past the end from AddressSanitizer).
class ExactBytes {
 public:
  ExactBytes(const uint8_t *data, size_t size)
      : bytes_(new uint8_t[size == 0 ? 1 : size]), size_(size) {
    if (size != 0) std::memcpy(bytes_.get(), data, size);
  }
  explicit ExactBytes(const std::vector<uint8_t> &b) : ExactBytes(b.data(), b.size()) {}
  const uint8_t *data() const { return bytes_.get(); }
  size_t size() const { return size_; }

 private:
  std::unique_ptr<uint8_t[]> bytes_;
  size_t size_;
};

}  // namespace tlsframe::test
