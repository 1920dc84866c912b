// zstd with one compression and one decompression context per thread. ZSTD_compress() and
// ZSTD_decompress() allocate and initialise a fresh context on every call, which costs more
// than the work itself for the small bodies (events, contacts, short mails) the store keeps.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mailark::zstd {

// Appends the zstd frame of `plain` at `level` to `out`; false if zstd failed (out unchanged).
bool compress(std::string_view plain, int level, std::string& out);

// The `size` bytes a frame decompresses to; false if the frame is damaged or its content is
// not exactly `size` bytes.
bool decompress(std::string_view frame, uint64_t size, std::string& out);
// The same into `out`, which has room for `size` bytes.
bool decompress(std::string_view frame, uint64_t size, char* out);

}  // namespace mailark::zstd
