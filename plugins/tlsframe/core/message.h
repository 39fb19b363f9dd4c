// An encoded wire message, immutable once built and shared by every client
// queue that sends it (serialized once per frame, never copied per client).
#pragma once

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
  std::vector<uint8_t> bytes;  // the complete message as it goes on the wire
  MessagePtr caps;             // kBuffer: the caps message in force when it was published
};

}  // namespace tlsframe
