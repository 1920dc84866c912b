// SHA-256 digests (content addresses, journal chain), CRC-32C checksums (derived records) and
// 128-bit GUIDs (item identity).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailark {

using Digest = std::array<uint8_t, 32>;

Digest sha256(std::string_view bytes);

// CRC-32C (Castagnoli, as in iSCSI and ext4), with the CPU's CRC32 instruction when it has
// one: a check against accidental damage of derived records, not a content address.
uint32_t crc32c(std::string_view bytes);

// Incremental SHA-256 for data that arrives in pieces.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view bytes);
  Digest finish();

 private:
  void* ctx_;
};

std::string to_hex(const uint8_t* data, size_t size);
inline std::string to_hex(const Digest& d) {
  return to_hex(d.data(), d.size());
}
std::optional<Digest> digest_from_hex(std::string_view hex);
inline std::string_view as_bytes(const Digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}
std::optional<Digest> digest_from_bytes(std::string_view bytes);

// Hash for unordered containers of digests. A SHA-256 is uniform already, but its bytes can
// be chosen (brute force over message contents) to crowd one bucket, so they are mixed with
// a key drawn once per process.
struct DigestHash {
  size_t operator()(const Digest& d) const;
};

// A 128-bit identifier. Random for new items; derived (hash-based) where a later replay of
// the same event must produce the same id.
struct Guid {
  std::array<uint8_t, 16> bytes{};

  static Guid random();
  // The first 16 bytes of SHA-256 over `seed`.
  static Guid derived(std::string_view seed);
  static std::optional<Guid> from_hex(std::string_view hex);
  static std::optional<Guid> from_bytes(std::string_view raw);
  std::string hex() const { return to_hex(bytes.data(), bytes.size()); }
  std::string_view raw() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
  bool is_zero() const;
  auto operator<=>(const Guid&) const = default;
};

}  // namespace mailark
