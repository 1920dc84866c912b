#include "storage/zstd.h"

#include <zstd.h>

namespace mailark::zstd {
namespace {

struct Contexts {
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_DCtx* dctx = nullptr;
  ~Contexts() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
};

Contexts& contexts() {
  thread_local Contexts c;
  return c;
}

}  // namespace

bool compress(std::string_view plain, int level, std::string& out) {
  Contexts& c = contexts();
  if (!c.cctx && !(c.cctx = ZSTD_createCCtx())) return false;
  size_t old = out.size();
  out.resize(old + ZSTD_compressBound(plain.size()));
  size_t n = ZSTD_compressCCtx(c.cctx, out.data() + old, out.size() - old, plain.data(),
                               plain.size(), level);
  if (ZSTD_isError(n)) {
    out.resize(old);
    return false;
  }
  out.resize(old + n);
  return true;
}

bool decompress(std::string_view frame, uint64_t size, char* out) {
  Contexts& c = contexts();
  if (!c.dctx && !(c.dctx = ZSTD_createDCtx())) return false;
  if (ZSTD_getFrameContentSize(frame.data(), frame.size()) != size) return false;
  size_t n = ZSTD_decompressDCtx(c.dctx, out, size, frame.data(), frame.size());
  return !ZSTD_isError(n) && n == size;
}

bool decompress(std::string_view frame, uint64_t size, std::string& out) {
  if (ZSTD_getFrameContentSize(frame.data(), frame.size()) != size) return false;
  out.resize(size);
  return decompress(frame, size, out.data());
}

}  // namespace mailark::zstd
