// WebSocket framing and the upgrade check (RFC 6455). The handshake hash is
// OpenSSL's SHA-1 and base64 (EVP_Digest, EVP_EncodeBlock/EVP_DecodeBlock).
#include "core/websocket.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace tlsframe::ws {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Whether a comma-separated header value holds `token` (case-insensitive).
bool has_token(const std::string *value, std::string_view token) {
  if (!value) return false;
  const std::string v = lower(*value);
  size_t start = 0;
  while (start <= v.size()) {
    size_t end = v.find(',', start);
    if (end == std::string::npos) end = v.size();
    size_t a = start, b = end;
    while (a < b && (v[a] == ' ' || v[a] == '\t')) ++a;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) --b;
    if (v.compare(a, b - a, token) == 0) return true;
    start = end + 1;
  }
  return false;
}

// The key must be base64 of exactly 16 bytes: 24 characters ending in "==".
bool key_ok(const std::string &key) {
  if (key.size() != 24 || key.compare(22, 2, "==") != 0) return false;
  for (size_t i = 0; i < 22; ++i) {
    const char c = key[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/') return false;
  }
  uint8_t out[18];
  return EVP_DecodeBlock(out, reinterpret_cast<const unsigned char *>(key.data()), 24) == 18;
}

}  // namespace

std::string accept_key(std::string_view key) {
  std::string input(key);
  input.append(kGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &size, EVP_sha1(), nullptr) != 1) return "";
  unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(b64, digest, static_cast<int>(size));
  return std::string(reinterpret_cast<const char *>(b64), n > 0 ? static_cast<size_t>(n) : 0);
}

UpgradeCheck check_upgrade(const http::Request &r) {
  UpgradeCheck c;
  auto refuse = [&c](int status, std::string why) {
    c.http_status = status;
    c.error = std::move(why);
    return c;
  };
  if (r.method != "GET") return refuse(400, "a WebSocket upgrade must be a GET");
  if (!has_token(r.header("upgrade"), "websocket")) return refuse(400, "Upgrade is not websocket");
  if (!has_token(r.header("connection"), "upgrade")) {
    return refuse(400, "Connection does not include upgrade");
  }
  const std::string *version = r.header("sec-websocket-version");
  if (!version || *version != "13") return refuse(426, "Sec-WebSocket-Version must be 13");
  const std::string *key = r.header("sec-websocket-key");
  if (!key || !key_ok(*key)) return refuse(400, "bad Sec-WebSocket-Key");
  const std::string *host = r.header("host");
  if (!host || host->empty()) return refuse(400, "no Host");
  const std::string *origin = r.header("origin");
  if (!origin) return refuse(403, "no Origin: WebSocket upgrades only from this server's pages");
  if (lower(*origin) != "https://" + lower(*host)) {
    return refuse(403,
                  "cross-origin WebSocket upgrade refused (Origin " + origin->substr(0, 128) + ")");
  }
  c.ok = true;
  c.accept = accept_key(*key);
  return c;
}

size_t write_frame_header(uint8_t *out, Opcode op, uint64_t size) {
  out[0] = static_cast<uint8_t>(0x80 | static_cast<uint8_t>(op));
  if (size < 126) {
    out[1] = static_cast<uint8_t>(size);
    return 2;
  }
  if (size <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<uint8_t>(size >> 8);
    out[3] = static_cast<uint8_t>(size);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<uint8_t>(size >> (56 - 8 * i));
  return 10;
}

std::vector<uint8_t> frame_header(Opcode op, uint64_t size) {
  std::vector<uint8_t> out(kMaxHeaderSize);
  out.resize(write_frame_header(out.data(), op, size));
  return out;
}

std::vector<uint8_t> encode_frame(Opcode op, const uint8_t *data, size_t size) {
  std::vector<uint8_t> out = frame_header(op, size);
  if (size > 0) out.insert(out.end(), data, data + size);
  return out;
}

std::vector<uint8_t> encode_close(uint16_t code, std::string_view reason) {
  size_t cut = std::min<size_t>(reason.size(), 123);
  while (cut > 0 && cut < reason.size() && (static_cast<uint8_t>(reason[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  std::vector<uint8_t> payload{static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
  payload.insert(payload.end(), reason.begin(), reason.begin() + cut);
  return encode_frame(Opcode::kClose, payload.data(), payload.size());
}

FrameDecoder::Result FrameDecoder::fail(uint16_t code, std::string why) {
  error_.status = Status::kError;
  error_.close_code = code;
  error_.error = std::move(why);
  error_.consumed = 0;
  return error_;
}

FrameDecoder::Result FrameDecoder::feed(const uint8_t *data, size_t size) {
  if (error_.status == Status::kError) return error_;
  Result r;
  size_t used = 0;
  if (!have_head_) {
    if (head_size_ == 0) frame_.payload.clear();
    while (!have_head_ && used < size) {
      head_[head_size_++] = data[used++];
      if (head_size_ == 2) {
        const uint8_t b0 = head_[0], b1 = head_[1];
        if (b0 & 0x70) return fail(kCloseProtocol, "reserved bits set");
        if (!(b0 & 0x80)) return fail(kCloseProtocol, "fragmented message (FIN clear)");
        const auto op = static_cast<Opcode>(b0 & 0x0F);
        switch (op) {
          case Opcode::kClose:
          case Opcode::kPing:
          case Opcode::kPong:
          case Opcode::kBinary:
            break;
          case Opcode::kContinuation:
            return fail(kCloseProtocol, "continuation frame (fragmentation refused)");
          case Opcode::kText:
            return fail(kCloseUnsupported, "text message (only a binary KEYFRAME_REQUEST is read)");
          default:
            return fail(kCloseProtocol, "unknown opcode " + std::to_string(b0 & 0x0F));
        }
        frame_.op = op;
        if (!(b1 & 0x80)) return fail(kCloseProtocol, "unmasked client frame");
        const uint8_t len7 = b1 & 0x7F;
        head_needed_ = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
      }
      if (head_size_ >= 2 && head_size_ == head_needed_) {
        const uint8_t len7 = head_[1] & 0x7F;
        size_t p = 2;
        if (len7 < 126) {
          length_ = len7;
        } else {
          const size_t bytes = len7 == 126 ? 2 : 8;
          length_ = 0;
          for (size_t i = 0; i < bytes; ++i) length_ = (length_ << 8) | head_[p + i];
          p += bytes;
        }
        std::memcpy(mask_.data(), &head_[p], 4);
        if (length_ > kMaxClientFrame) {
          return fail(kCloseTooBig, "client frame of " + std::to_string(length_) +
                                        " bytes (at most " + std::to_string(kMaxClientFrame) + ")");
        }
        have_head_ = true;
      }
    }
    if (!have_head_) {
      r.consumed = used;
      return r;
    }
  }
  const size_t take = std::min<uint64_t>(length_ - frame_.payload.size(), size - used);
  for (size_t i = 0; i < take; ++i) {
    const size_t k = frame_.payload.size();
    frame_.payload.push_back(data[used + i] ^ mask_[k % 4]);
  }
  used += take;
  r.consumed = used;
  if (frame_.payload.size() < length_) return r;
  if (frame_.op == Opcode::kClose && frame_.payload.size() == 1) {
    return fail(kCloseProtocol, "close frame with a 1-byte payload");
  }
  have_head_ = false;
  head_size_ = 0;
  head_needed_ = 2;
  r.status = Status::kFrame;
  return r;
}

}  // namespace tlsframe::ws
