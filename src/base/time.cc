// Time and size parsing and formatting shared by config, CLI and protocols.
#include "base/time.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace mailark {

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

static std::tm utc_tm(int64_t ms) {
  time_t secs = static_cast<time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return tm;
}

std::string format_time_ms(int64_t ms) {
  std::tm tm = utc_tm(ms);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(((ms % 1000) + 1000) % 1000));
  return buf;
}

std::string format_time_s(int64_t ms) {
  std::tm tm = utc_tm(ms);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string format_rfc5322(int64_t ms) {
  std::tm tm = utc_tm(ms);
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s, %d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

std::optional<int64_t> parse_duration_ms(std::string_view text) {
  if (text.empty()) return std::nullopt;
  size_t i = 0;
  int64_t value = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    value = value * 10 + (text[i] - '0');
    if (value > (int64_t{1} << 40)) return std::nullopt;
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string_view unit = text.substr(i);
  int64_t mult;
  if (unit == "ms")
    mult = 1;
  else if (unit == "s" || unit.empty())
    mult = 1000;
  else if (unit == "m" || unit == "min")
    mult = 60'000;
  else if (unit == "h")
    mult = 3'600'000;
  else if (unit == "d")
    mult = 86'400'000;
  else if (unit == "w")
    mult = 7 * 86'400'000LL;
  else
    return std::nullopt;
  return value * mult;
}

std::optional<int64_t> parse_time(std::string_view text, int64_t now) {
  if (text.empty()) return std::nullopt;
  if (text == "now") return now;
  if (text[0] == '@') {
    int64_t v = 0;
    if (text.size() < 2) return std::nullopt;
    for (char c : text.substr(1)) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      v = v * 10 + (c - '0');
    }
    return v * 1000;
  }
  if (text[0] == '-') {
    auto d = parse_duration_ms(text.substr(1));
    if (!d) return std::nullopt;
    return now - *d;
  }
  if (text.size() >= 10 && text[4] == '-' && text[7] == '-') {
    int y, mo, d, h = 0, mi = 0, s = 0;
    std::string str(text);
    int consumed = 0;
    if (std::sscanf(str.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &consumed) != 3) return std::nullopt;
    size_t pos = static_cast<size_t>(consumed);
    int ms = 0;
    int64_t offset_s = 0;
    if (pos < str.size()) {
      if (str[pos] != 'T' && str[pos] != ' ') return std::nullopt;
      ++pos;
      int n = 0;
      if (std::sscanf(str.c_str() + pos, "%2d:%2d%n", &h, &mi, &n) != 2) return std::nullopt;
      pos += static_cast<size_t>(n);
      if (pos < str.size() && str[pos] == ':') {
        if (std::sscanf(str.c_str() + pos, ":%2d%n", &s, &n) != 1) return std::nullopt;
        pos += static_cast<size_t>(n);
      }
      if (pos < str.size() && str[pos] == '.') {
        ++pos;
        int digits = 0;
        while (pos < str.size() && std::isdigit(static_cast<unsigned char>(str[pos]))) {
          if (digits < 3) ms = ms * 10 + (str[pos] - '0');
          ++digits;
          ++pos;
        }
        for (; digits < 3; ++digits) ms *= 10;
      }
      if (pos < str.size()) {
        if (str[pos] == 'Z' && pos + 1 == str.size()) {
          ++pos;
        } else if ((str[pos] == '+' || str[pos] == '-') && str.size() - pos == 6 &&
                   str[pos + 3] == ':') {
          int oh = 0, om = 0;
          if (std::sscanf(str.c_str() + pos + 1, "%2d:%2d", &oh, &om) != 2) return std::nullopt;
          offset_s = (oh * 3600 + om * 60) * (str[pos] == '+' ? 1 : -1);
          pos = str.size();
        } else {
          return std::nullopt;
        }
      }
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return std::nullopt;
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    time_t t = timegm(&tm);
    return (static_cast<int64_t>(t) - offset_s) * 1000 + ms;
  }
  return std::nullopt;
}

std::optional<uint64_t> parse_size(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::string s(text);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v < 0 || !std::isfinite(v)) return std::nullopt;
  std::string unit(end);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double mult;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB")
    mult = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB")
    mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GIB")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TB" || unit == "TIB")
    mult = 1024.0 * 1024 * 1024 * 1024;
  else
    return std::nullopt;
  double bytes = v * mult;
  if (bytes > 1.8e19) return std::nullopt;
  return static_cast<uint64_t>(bytes);
}

std::string format_size(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

std::string format_duration_short(int64_t ms) {
  int64_t s = std::max<int64_t>(0, ms) / 1000;
  char buf[48];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  else if (s < 86400)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  else
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  return buf;
}

}  // namespace mailark
