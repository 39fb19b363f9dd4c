// An encoded wire message, immutable once built and shared by every client
// queue that sends it (serialized once per frame, never copied per client).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
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
  // kBuffer: when the stream published it (steady clock; {} = unknown): the
  // start of its queued time (ClientQueue's max_time).
  std::chrono::steady_clock::time_point published{};
  // Bytes after the payload (a browser connection's multipart boundary); usually empty.
  std::vector<uint8_t> trailer;
  // Already in its connection's own framing (the browser front's HTTP
  // responses and WebSocket control frames): sent as it is.
  bool framed = false;

  size_t wire_size() const { return bytes.size() + payload_size + trailer.size(); }
  // The contiguous wire bytes at offset (< wire_size()): where they are and how many.
  std::pair<const uint8_t *, size_t> piece(size_t offset) const {
    if (offset < bytes.size()) return {bytes.data() + offset, bytes.size() - offset};
    offset -= bytes.size();
    if (offset < payload_size) return {payload + offset, payload_size - offset};
    offset -= payload_size;
    return {trailer.data() + offset, trailer.size() - offset};
  }
};

}  // namespace tlsframe
