// SHA-256 through OpenSSL's EVP interface; GUIDs from the OpenSSL CSPRNG.
#include "base/hash.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cstdlib>
#include <cstring>

namespace mailark {

namespace {

uint32_t crc32c_portable(std::string_view bytes) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : bytes) crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(std::string_view bytes) {
  uint64_t crc = 0xFFFFFFFFu;
  const char* p = bytes.data();
  size_t n = bytes.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    crc = __builtin_ia32_crc32di(crc, word);
  }
  uint32_t c = static_cast<uint32_t>(crc);
  for (; n > 0; ++p, --n) c = __builtin_ia32_crc32qi(c, static_cast<unsigned char>(*p));
  return c ^ 0xFFFFFFFFu;
}
#endif

}  // namespace

uint32_t crc32c(std::string_view bytes) {
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware) return crc32c_sse42(bytes);
#endif
  return crc32c_portable(bytes);
}

// Fetched from the provider once: EVP_sha256() makes every EVP_DigestInit_ex look the
// implementation up again (a quarter of the cost of hashing a 1 KB calendar object).
static const EVP_MD* sha256_md() {
  static const EVP_MD* md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
    return fetched ? fetched : EVP_sha256();
  }();
  return md;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), sha256_md(), nullptr);
}
Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}
void Sha256::update(std::string_view bytes) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), bytes.data(), bytes.size());
}
Digest Sha256::finish() {
  Digest d{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), d.data(), &len);
  return d;
}

Digest sha256(std::string_view bytes) {
  // One context per thread, set up again for every hash: a new context costs allocations
  // and a provider context each time, and a multiget verifies a hundred small bodies.
  // OpenSSL reinitialises a context that already holds this digest in place.
  struct Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Context context;
  Digest d{};
  unsigned int len = 0;
  EVP_MD_CTX* ctx = context.ctx;
  if (ctx && EVP_DigestInit_ex(ctx, sha256_md(), nullptr) == 1 &&
      EVP_DigestUpdate(ctx, bytes.data(), bytes.size()) == 1 &&
      EVP_DigestFinal_ex(ctx, d.data(), &len) == 1)
    return d;
  Sha256 h;  // the thread's context could not be made or set up: a fresh one
  h.update(bytes);
  return h.finish();
}

std::string to_hex(const uint8_t* data, size_t size) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

static bool hex_to_bytes(std::string_view hex, uint8_t* out, size_t size) {
  if (hex.size() != size * 2) return false;
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < size; ++i) {
    int hi = val(hex[2 * i]), lo = val(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

std::optional<Digest> digest_from_hex(std::string_view hex) {
  Digest d{};
  if (!hex_to_bytes(hex, d.data(), d.size())) return std::nullopt;
  return d;
}

std::optional<Digest> digest_from_bytes(std::string_view bytes) {
  if (bytes.size() != 32) return std::nullopt;
  Digest d{};
  std::memcpy(d.data(), bytes.data(), 32);
  return d;
}

size_t DigestHash::operator()(const Digest& d) const {
  static const uint64_t key = [] {
    uint64_t k = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&k), sizeof k) != 1) std::abort();
    return k | 1;
  }();
  uint64_t a = 0, b = 0;
  std::memcpy(&a, d.data(), 8);
  std::memcpy(&b, d.data() + 8, 8);
  // Multiply-xorshift of two words under the key: bucket indexes depend on every bit of
  // them and on the key.
  uint64_t h = (a ^ key) * 0x9E3779B97F4A7C15ull;
  h ^= (b + key) * 0xC2B2AE3D27D4EB4Full;
  return static_cast<size_t>(h ^ (h >> 29));
}

Guid Guid::random() {
  Guid g;
  if (RAND_bytes(g.bytes.data(), static_cast<int>(g.bytes.size())) != 1) std::abort();
  return g;
}

Guid Guid::derived(std::string_view seed) {
  Digest d = sha256(seed);
  Guid g;
  std::memcpy(g.bytes.data(), d.data(), g.bytes.size());
  return g;
}

std::optional<Guid> Guid::from_hex(std::string_view hex) {
  Guid g;
  if (!hex_to_bytes(hex, g.bytes.data(), g.bytes.size())) return std::nullopt;
  return g;
}

std::optional<Guid> Guid::from_bytes(std::string_view raw) {
  if (raw.size() != 16) return std::nullopt;
  Guid g;
  std::memcpy(g.bytes.data(), raw.data(), 16);
  return g;
}

bool Guid::is_zero() const {
  for (uint8_t b : bytes)
    if (b) return false;
  return true;
}

}  // namespace mailark
