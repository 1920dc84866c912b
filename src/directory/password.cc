// argon2id through libargon2 (Debian libargon2-dev). Parameters follow OWASP's minimum for
// argon2id: 19 MiB memory, 2 iterations, 1 lane.
#include "directory/password.h"

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <vector>

#include "base/base64.h"

namespace mailark {

constexpr uint32_t kTimeCost = 2;
constexpr uint32_t kMemoryKib = 19 * 1024;
constexpr uint32_t kLanes = 1;
constexpr size_t kSaltLen = 16;
constexpr size_t kHashLen = 32;

Result<std::string> hash_password(std::string_view password) {
  unsigned char salt[kSaltLen];
  if (RAND_bytes(salt, sizeof salt) != 1) return io_error("no randomness for password salt");
  size_t len = argon2_encodedlen(kTimeCost, kMemoryKib, kLanes, kSaltLen, kHashLen, Argon2_id);
  std::string encoded(len, '\0');
  int rc = argon2id_hash_encoded(kTimeCost, kMemoryKib, kLanes, password.data(), password.size(),
                                 salt, sizeof salt, kHashLen, encoded.data(), encoded.size());
  if (rc != ARGON2_OK) return io_error(std::string("argon2id failed: ") + argon2_error_message(rc));
  encoded.resize(encoded.find('\0'));
  return encoded;
}

namespace {

// Memory for argon2's matrix: a few buffers kept for the life of the process and handed out
// one per computation, which also bounds how many run at once (argon2 is CPU-bound, so more
// than the cores gains nothing). Without this every login would map and fault in 19 MiB, or
// leave it in a malloc arena for good.
class ScratchPool {
 public:
  static ScratchPool& instance() {
    static ScratchPool pool(std::max(2u, std::thread::hardware_concurrency()));
    return pool;
  }
  // nullptr when memory is short (argon2 then fails cleanly; nothing is held).
  uint8_t* acquire(size_t bytes) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_use_ < slots_; });
    ++in_use_;
    for (auto& b : free_) {
      if (b.size >= bytes) {
        size_t size = b.size;
        uint8_t* p = b.data.release();
        std::swap(b, free_.back());
        free_.pop_back();
        sizes_[p] = size;
        return p;
      }
    }
    auto* p = new (std::nothrow) uint8_t[bytes];
    if (!p) {
      --in_use_;
      cv_.notify_one();
      return nullptr;
    }
    sizes_[p] = bytes;
    return p;
  }
  void release(uint8_t* p) {
    std::lock_guard lock(mu_);
    size_t size = sizes_[p];
    sizes_.erase(p);
    if (free_.size() < slots_)
      free_.push_back(Buffer{std::unique_ptr<uint8_t[]>(p), size});
    else
      delete[] p;
    --in_use_;
    cv_.notify_one();
  }

 private:
  explicit ScratchPool(unsigned slots) : slots_(slots) {}
  struct Buffer {
    std::unique_ptr<uint8_t[]> data;
    size_t size = 0;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  unsigned slots_;
  unsigned in_use_ = 0;
  std::vector<Buffer> free_;
  std::map<uint8_t*, size_t> sizes_;
};

// The buffer this thread holds, so one that argon2 did not free on an error path still goes
// back to the pool.
thread_local uint8_t* held_scratch = nullptr;

int allocate_scratch(uint8_t** memory, size_t bytes) {
  *memory = ScratchPool::instance().acquire(bytes);
  if (!*memory) return ARGON2_MEMORY_ALLOCATION_ERROR;
  held_scratch = *memory;
  return ARGON2_OK;
}

void free_scratch(uint8_t* memory, size_t) {
  if (memory == held_scratch) held_scratch = nullptr;
  ScratchPool::instance().release(memory);
}

// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" (base64 without padding).
std::optional<std::string> unpadded_base64(std::string_view text) {
  std::string padded(text);
  while (padded.size() % 4) padded += '=';
  return base64_decode(padded);
}

}  // namespace

bool verify_password(std::string_view password, const std::string& encoded) {
  if (encoded.rfind("$argon2id$", 0) != 0) return false;
  unsigned version = 0, m = 0, t = 0, p = 0;
  int consumed = 0;
  if (std::sscanf(encoded.c_str(), "$argon2id$v=%u$m=%u,t=%u,p=%u$%n", &version, &m, &t, &p,
                  &consumed) != 4 ||
      consumed <= 0)
    return false;
  std::string_view rest = std::string_view(encoded).substr(static_cast<size_t>(consumed));
  size_t dollar = rest.find('$');
  if (dollar == std::string_view::npos) return false;
  auto salt = unpadded_base64(rest.substr(0, dollar));
  auto expected = unpadded_base64(rest.substr(dollar + 1));
  // Bounds keep a damaged directory entry from asking for absurd memory or time.
  // Our hashes use one lane; 256 MiB and 16 passes bound what a damaged entry can demand.
  if (!salt || !expected || expected->empty() || expected->size() > 64 || m > (1u << 18) ||
      t == 0 || t > 16 || p != 1)
    return false;
  std::string computed(expected->size(), '\0');
  std::string pw(password);
  std::string salt_bytes = *salt;
  argon2_context ctx{};
  ctx.out = reinterpret_cast<uint8_t*>(computed.data());
  ctx.outlen = static_cast<uint32_t>(computed.size());
  ctx.pwd = reinterpret_cast<uint8_t*>(pw.data());
  ctx.pwdlen = static_cast<uint32_t>(pw.size());
  ctx.salt = reinterpret_cast<uint8_t*>(salt_bytes.data());
  ctx.saltlen = static_cast<uint32_t>(salt_bytes.size());
  ctx.t_cost = t;
  ctx.m_cost = m;
  ctx.lanes = p;
  ctx.threads = p;
  ctx.version = version;
  ctx.allocate_cbk = allocate_scratch;
  ctx.free_cbk = free_scratch;
  ctx.flags = ARGON2_DEFAULT_FLAGS;
  int rc = argon2_ctx(&ctx, Argon2_id);
  if (held_scratch) free_scratch(held_scratch, 0);
  OPENSSL_cleanse(pw.data(), pw.size());
  if (rc != ARGON2_OK) return false;
  return CRYPTO_memcmp(computed.data(), expected->data(), computed.size()) == 0;
}

}  // namespace mailark
