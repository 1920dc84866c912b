// Wall-clock time in milliseconds since the Unix epoch, and its text forms (RFC 3339 UTC).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailark {

int64_t now_ms();
// "2026-11-24T16:00:00.123Z"
std::string format_time_ms(int64_t ms);
// "2026-11-24T16:00:00Z"
std::string format_time_s(int64_t ms);
// RFC 5322 date for Received/Date headers: "Tue, 24 Nov 2026 16:00:00 +0000".
std::string format_rfc5322(int64_t ms);

// Accepts "2026-11-24T16:00:00Z" (optionally with fraction or +hh:mm), "2026-11-24 16:00",
// "2026-11-24", a Unix time "@1795000000", or a relative age "-2h" / "30m" / "7d" meaning
// that long before `now`. Returns nullopt on anything else.
std::optional<int64_t> parse_time(std::string_view text, int64_t now);

// "90s", "15m", "2h", "7d", "1w" -> milliseconds.
std::optional<int64_t> parse_duration_ms(std::string_view text);
// "512", "10K", "50MB", "2GiB", "1.5G" -> bytes (powers of 1024).
std::optional<uint64_t> parse_size(std::string_view text);
std::string format_size(uint64_t bytes);
// "45s", "12m30s", "3h05m", "2d04h": an age or a lag for people to read.
std::string format_duration_short(int64_t ms);

}  // namespace mailark
