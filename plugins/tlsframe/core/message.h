// An encoded wire message, immutable once built and shared by every client
// queue that sends it (serialized once per frame, never copied per client).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/wire_format.h"

namespace tlsframe {

struct Message;
using MessagePtr = std::shared_ptr<const Message>;

struct Message {
  wire::MessageType type = wire::MessageType::kBuffer;
  bool delta = false;          // kBuffer with the delta-unit flag: needs earlier frames
  // The message as it goes on the wire; for a zero-copy buffer, only its
  // header and meta, with the payload below following it on the wire.
  std::vector<uint8_t> bytes;
  const uint8_t *payload = nullptr;            // zero-copy payload (nullptr = none)
  size_t payload_size = 0;                     // its size in bytes
  std::shared_ptr<const void> payload_owner;   // keeps payload alive and unchanged
  MessagePtr caps;  // kBuffer: the caps message in force when it was published

  size_t wire_size() const { return bytes.size() + payload_size; }
};

}  // namespace tlsframe
