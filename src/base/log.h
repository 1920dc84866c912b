// Minimal leveled logging to stderr, formatted with {fmt}. Thread-safe; one line per call.
#pragma once

#include <fmt/core.h>

#include <string_view>

namespace mailark {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
bool parse_log_level(std::string_view text, LogLevel* out);
void log_line(LogLevel level, std::string_view message);

template <typename... Args>
void log_at(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level < log_level()) return;
  log_line(level, fmt::format(format, std::forward<Args>(args)...));
}

#define MK_LOG_DEBUG(...) ::mailark::log_at(::mailark::LogLevel::kDebug, __VA_ARGS__)
#define MK_LOG_INFO(...) ::mailark::log_at(::mailark::LogLevel::kInfo, __VA_ARGS__)
#define MK_LOG_WARN(...) ::mailark::log_at(::mailark::LogLevel::kWarn, __VA_ARGS__)
#define MK_LOG_ERROR(...) ::mailark::log_at(::mailark::LogLevel::kError, __VA_ARGS__)

}  // namespace mailark
