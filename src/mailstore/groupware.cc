// Calendar and contact objects (groupware.h). libical parses iCalendar, resolves VTIMEZONEs and
// Olson zones and iterates daily-or-coarser RRULEs; written here, because libical does not do
// them (or not safely): the content-line scan that catches what libical's parser forgives, the
// vCard parser, sub-daily RRULEs (libical 3.0 walks them second by second and can spin for
// minutes on a rule like FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30), and the RFC 4791 9.9 overlap
// table.
//
// Thread safety: every call parses into its own libical objects. The shared state is the Olson
// zone cache below (mutex), libical's builtin-zone list (touched only under that mutex) and two
// lazily set libical globals, set once by warm_up_libical(). libical keeps icalerrno and its
// temporary string ring per thread (it is built with pthreads on Debian).
#include "mailstore/groupware.h"

#include <libical/ical.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace mailark {
namespace {

constexpr int64_t kSecondsPerDay = 86400;
constexpr int64_t kMsPerDay = kSecondsPerDay * 1000;
// Floating times could be read in any zone from UTC-12 to UTC+14.
constexpr int64_t kMaxZoneOffsetMs = int64_t{14} * 3600 * 1000;
// Slack between wall-clock and UTC ordering (zone offsets are under a day).
constexpr int64_t kSlackSeconds = 2 * kSecondsPerDay;
// Loop iterations allowed to a sub-daily RRULE (each is a few arithmetic operations).
constexpr size_t kMaxSubDailySteps = 2'000'000;
// At PUT time a COUNT rule is walked at most this far to find its last instance; beyond, the
// object's range is left open (conservative).
constexpr int64_t kBoundsHorizonSeconds = int64_t{100} * 366 * kSecondsPerDay;
constexpr size_t kMaxNesting = 10;
// Changes libical may generate when expanding one object's VTIMEZONEs (see check_vtimezone).
constexpr int64_t kVtimezoneBudget = 200000;
constexpr char kDefaultProdid[] = "-//mailark//mailark//EN";

// ---- small helpers

int64_t sat_add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kTimeMax : kTimeMin;
  return r;
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t ceil_div_positive(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
constexpr int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void civil_from_days(int64_t z, int64_t* y, int* m, int* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  *m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2 ? 1 : 0);
}

bool is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int64_t y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

char ascii_upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}
char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_upper(c);
  return out;
}
std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}
bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  }
  return true;
}

// Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF.
bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string_view strip_bom(std::string_view s) {
  if (s.substr(0, 3) == "\xEF\xBB\xBF") s.remove_prefix(3);
  return s;
}

// ---- content lines (RFC 5545 3.1, RFC 6350 3.2), shared by the iCalendar pre-scan and vCard

struct LogicalLine {
  std::string text;   // unfolded, without its line break
  size_t begin = 0;   // offset of its first physical line
  size_t end = 0;     // offset just past its last line break
  size_t number = 0;  // 1-based number of its first physical line
};

// Unfolds CRLF or bare LF followed by one space or tab. A fold may split a UTF-8 sequence, so
// text is checked for UTF-8 only after unfolding.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
  }

  bool next(LogicalLine* out) {
    if (pos_ >= text_.size()) return false;
    out->begin = pos_;
    out->number = line_no_ + 1;
    out->text.clear();
    bool first = true;
    while (pos_ < text_.size()) {
      // A blank line is no content line: what follows it is not its continuation.
      if (!first && ((text_[pos_] != ' ' && text_[pos_] != '\t') || out->text.empty())) break;
      const size_t nl = text_.find('\n', pos_);
      const size_t stop = nl == std::string_view::npos ? text_.size() : nl;
      size_t content_end = stop;
      if (content_end > pos_ && text_[content_end - 1] == '\r') --content_end;
      const size_t content_begin = first ? pos_ : pos_ + 1;
      if (content_end > content_begin) {
        out->text.append(text_.substr(content_begin, content_end - content_begin));
      }
      pos_ = nl == std::string_view::npos ? text_.size() : nl + 1;
      ++line_no_;
      first = false;
    }
    out->end = pos_;
    return true;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  size_t line_no_ = 0;
};

struct ContentParam {
  std::string name;  // upper case
  std::vector<std::string> values;
};

struct ContentLine {
  std::string group;  // as written, may be empty
  std::string name;   // upper case
  std::vector<ContentParam> params;
  std::string value;  // raw (still escaped)
};

bool is_name_char(char c) {
  return is_alnum(c) || c == '-' || c == '_';
}

// RFC 6868 parameter value encoding: ^n newline, ^' double quote, ^^ caret.
std::string decode_caret(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '^' && i + 1 < v.size()) {
      const char c = v[i + 1];
      if (c == 'n' || c == 'N') {
        out.push_back('\n');
        ++i;
        continue;
      }
      if (c == '\'') {
        out.push_back('"');
        ++i;
        continue;
      }
      if (c == '^') {
        out.push_back('^');
        ++i;
        continue;
      }
    }
    out.push_back(v[i]);
  }
  return out;
}

std::optional<ContentLine> parse_content_line(std::string_view line) {
  ContentLine cl;
  size_t i = 0;
  auto token = [&]() {
    const size_t b = i;
    while (i < line.size() && is_name_char(line[i])) ++i;
    return line.substr(b, i - b);
  };
  std::string_view name = token();
  if (name.empty()) return std::nullopt;
  if (i < line.size() && line[i] == '.') {
    cl.group = std::string(name);
    ++i;
    name = token();
    if (name.empty()) return std::nullopt;
  }
  cl.name = to_upper(name);
  while (i < line.size() && line[i] == ';') {
    ++i;
    const std::string_view pname = token();
    if (pname.empty()) return std::nullopt;
    ContentParam param;
    param.name = to_upper(pname);
    if (i < line.size() && line[i] == '=') {
      ++i;
      while (true) {
        if (i < line.size() && line[i] == '"') {
          const size_t close = line.find('"', i + 1);
          if (close == std::string_view::npos) return std::nullopt;
          param.values.push_back(decode_caret(line.substr(i + 1, close - i - 1)));
          i = close + 1;
        } else {
          const size_t b = i;
          while (i < line.size() && line[i] != ',' && line[i] != ';' && line[i] != ':') ++i;
          param.values.push_back(decode_caret(line.substr(b, i - b)));
        }
        if (i < line.size() && line[i] == ',') {
          ++i;
          continue;
        }
        break;
      }
    } else {
      // vCard 2.1 style "TEL;CELL:", still written by some exporters: a TYPE value.
      param.values.push_back(param.name);
      param.name = "TYPE";
    }
    cl.params.push_back(std::move(param));
  }
  if (i >= line.size() || line[i] != ':') return std::nullopt;
  cl.value = std::string(line.substr(i + 1));
  return cl;
}

// RFC 6350 3.4 / RFC 2426 4: \n \N newline, \\ \, \; themselves; other escapes kept as written.
std::string unescape_text(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\' && i + 1 < v.size()) {
      const char c = v[i + 1];
      if (c == 'n' || c == 'N') {
        out.push_back('\n');
        ++i;
        continue;
      }
      if (c == '\\' || c == ',' || c == ';') {
        out.push_back(c);
        ++i;
        continue;
      }
    }
    out.push_back(v[i]);
  }
  return out;
}

// Splits a structured value (N, ADR) at unescaped ';', unescaping each part.
std::vector<std::string> split_structured(std::string_view v) {
  std::vector<std::string> parts;
  size_t b = 0;
  for (size_t i = 0; i <= v.size(); ++i) {
    if (i == v.size() || v[i] == ';') {
      parts.push_back(unescape_text(v.substr(b, i - b)));
      b = i + 1;
    } else if (v[i] == '\\') {
      ++i;
    }
  }
  return parts;
}

std::string line_ref(size_t number) {
  return " (line " + std::to_string(number) + ")";
}

// ---- libical ownership

struct ComponentFree {
  void operator()(icalcomponent* c) const { icalcomponent_free(c); }
};
using ComponentPtr = std::unique_ptr<icalcomponent, ComponentFree>;

struct ZoneFree {
  void operator()(icaltimezone* z) const { icaltimezone_free(z, 1); }
};
using ZonePtr = std::unique_ptr<icaltimezone, ZoneFree>;

struct IteratorFree {
  void operator()(icalrecur_iterator* it) const { icalrecur_iterator_free(it); }
};
using IteratorPtr = std::unique_ptr<icalrecur_iterator, IteratorFree>;

struct BufferFree {
  void operator()(char* s) const { icalmemory_free_buffer(s); }
};
using BufferPtr = std::unique_ptr<char, BufferFree>;

// libical keeps one iteration cursor per parent, so lists are taken before they are walked.
std::vector<icalcomponent*> children(icalcomponent* parent, icalcomponent_kind kind) {
  std::vector<icalcomponent*> out;
  for (icalcomponent* c = icalcomponent_get_first_component(parent, kind); c != nullptr;
       c = icalcomponent_get_next_component(parent, kind)) {
    out.push_back(c);
  }
  return out;
}

std::vector<icalproperty*> properties(icalcomponent* c, icalproperty_kind kind) {
  std::vector<icalproperty*> out;
  for (icalproperty* p = icalcomponent_get_first_property(c, kind); p != nullptr;
       p = icalcomponent_get_next_property(c, kind)) {
    out.push_back(p);
  }
  return out;
}

icalproperty* first_property(icalcomponent* c, icalproperty_kind kind) {
  return icalcomponent_get_first_property(c, kind);
}

std::string value_string(icalproperty* p) {
  BufferPtr s(icalproperty_get_value_as_string_r(p));
  return s ? std::string(s.get()) : std::string();
}

std::string kind_name(icalcomponent_kind kind) {
  const char* s = icalcomponent_kind_to_string(kind);
  return s != nullptr && *s != '\0' ? s : "unknown component";
}

// Lazily initialised libical globals, set once before any concurrent use: the builtin-zone
// list (via the UTC zone), the minimum expansion year of zone change tables, and the ICU
// statics behind libical's RRULE iterator (Debian builds libical with ICU; an iterator for a
// floating DTSTART opens an ICU calendar in "Etc/Unknown", whose zone ICU builds on first use).
// ICU guards those itself, but with atomics a thread sanitizer cannot see; doing it here, once,
// keeps such reports about our callers' threads meaningful.
void warm_up_libical() {
  static std::once_flag once;
  std::call_once(once, [] {
    (void)icaltimezone_get_utc_timezone();
    icalrecurrencetype rule = icalrecurrencetype_from_string("FREQ=DAILY;COUNT=2");
    for (const char* start : {"20000101T000000", "20000101T000000Z", "20000101"}) {
      IteratorPtr it(icalrecur_iterator_new(rule, icaltime_from_string(start)));
      if (it) (void)icalrecur_iterator_next(it.get());
    }
    static const char kZone[] =
        "BEGIN:VTIMEZONE\r\nTZID:warm-up\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
        "TZOFFSETFROM:+0000\r\nTZOFFSETTO:+0000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";
    ComponentPtr c(icalparser_parse_string(kZone));
    if (!c) return;
    ZonePtr zone(icaltimezone_new());
    if (!zone || !icaltimezone_set_component(zone.get(), c.get())) return;
    static_cast<void>(c.release());  // owned by the zone now
    icaltimetype t = icaltime_null_time();
    t.year = 2000;
    t.month = 1;
    t.day = 1;
    (void)icaltimezone_get_utc_offset(zone.get(), &t, nullptr);
  });
}

// ---- time zones

// A zone for reading wall-clock times. nullptr means UTC.
using Zone = icaltimezone*;

bool is_safe_zone_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '/' || name.back() == '/') return false;
  if (name.find("//") != std::string_view::npos) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return is_alnum(c) || c == '/' || c == '_' || c == '-' || c == '+';
  });
}

// Olson zones from the system tz database (libical's "builtin" zones in Debian's build). The
// builtin zones are shared and libical grows their change tables lazily on use, so each is
// copied once into a private zone, expanded to libical's last year under the mutex, and only
// read afterwards. Never freed: a few hundred zones at most, a few KiB each. nullopt when the
// name is unknown; a value of nullptr is UTC.
std::optional<Zone> olson_zone(std::string_view name) {
  if (!is_safe_zone_name(name)) return std::nullopt;
  static std::mutex mutex;
  static auto* cache = new std::unordered_map<std::string, Zone>();
  const std::string key(name);
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache->find(key); it != cache->end()) return it->second;
  icaltimezone* builtin = icaltimezone_get_builtin_timezone(key.c_str());
  if (builtin == nullptr) return std::nullopt;
  if (builtin == icaltimezone_get_utc_timezone()) {
    cache->emplace(key, nullptr);
    return Zone{nullptr};
  }
  icalcomponent* vtz = icaltimezone_get_component(builtin);
  if (vtz == nullptr) return std::nullopt;
  ComponentPtr copy(icalcomponent_new_clone(vtz));
  ZonePtr zone(icaltimezone_new());
  if (!copy || !zone || !icaltimezone_set_component(zone.get(), copy.get())) return std::nullopt;
  static_cast<void>(copy.release());  // owned by the zone now
  icaltimetype far = icaltime_null_time();
  far.year = 9999;
  far.month = 1;
  far.day = 1;
  (void)icaltimezone_get_utc_offset(zone.get(), &far, nullptr);
  Zone z = zone.release();
  cache->emplace(key, z);
  return z;
}

bool valid_time(const icaltimetype& t) {
  if (t.year < 0 || t.year > 9999 || t.month < 1 || t.month > 12 || t.day < 1 ||
      t.day > days_in_month(t.year, t.month)) {
    return false;
  }
  if (t.is_date) return true;
  return t.hour >= 0 && t.hour < 24 && t.minute >= 0 && t.minute < 60 && t.second >= 0 &&
         t.second <= 60;
}

// Wall-clock seconds since 1970-01-01T00:00:00 of the same wall clock.
int64_t civil_seconds(const icaltimetype& t) {
  int64_t s = days_from_civil(t.year, t.month, t.day) * kSecondsPerDay;
  if (!t.is_date) s += t.hour * 3600 + t.minute * 60 + t.second;
  return s;
}

icaltimetype to_icaltime(int64_t local, bool is_date) {
  static const int64_t kMin = days_from_civil(0, 1, 1) * kSecondsPerDay;
  static const int64_t kMax = days_from_civil(10000, 1, 1) * kSecondsPerDay - 1;
  local = std::clamp(local, kMin, kMax);
  icaltimetype t = icaltime_null_time();
  const int64_t days = floor_div(local, kSecondsPerDay);
  const int64_t tod = local - days * kSecondsPerDay;
  int64_t y = 0;
  civil_from_days(days, &y, &t.month, &t.day);
  t.year = static_cast<int>(y);
  t.is_date = is_date ? 1 : 0;
  if (!is_date) {
    t.hour = static_cast<int>(tod / 3600);
    t.minute = static_cast<int>(tod / 60 % 60);
    t.second = static_cast<int>(tod % 60);
  }
  return t;
}

int64_t zone_offset_seconds(Zone zone, int64_t local) {
  if (zone == nullptr) return 0;
  icaltimetype t = to_icaltime(local, false);
  int is_daylight = 0;
  return icaltimezone_get_utc_offset(zone, &t, &is_daylight);
}

// A DATE or DATE-TIME value as written, with the zone it is read in.
struct Moment {
  int64_t local = 0;  // wall-clock seconds (see civil_seconds)
  bool is_date = false;
  Zone zone = nullptr;  // nullptr: UTC
};

int64_t to_utc_ms(const Moment& m) {
  return (m.local - zone_offset_seconds(m.zone, m.local)) * 1000;
}

std::string format_date(int64_t local) {
  int64_t y = 0;
  int m = 0;
  int d = 0;
  civil_from_days(floor_div(local, kSecondsPerDay), &y, &m, &d);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d%02d%02d", static_cast<int>(y), m, d);
  return buf;
}

// Checks an observance rule of a VTIMEZONE: libical expands every observance from its DTSTART
// year to the year of the latest time it converts (up to 2582), keeping each change, so an
// unbounded or dense rule (FREQ=SECONDLY, or BYHOUR lists) would cost memory and time.
Status check_vtimezone(icalcomponent* vtz, int64_t* budget) {
  icalproperty* tzid = first_property(vtz, ICAL_TZID_PROPERTY);
  if (tzid == nullptr || icalproperty_get_tzid(tzid) == nullptr ||
      *icalproperty_get_tzid(tzid) == '\0') {
    return invalid("VTIMEZONE without TZID");
  }
  for (icalcomponent* obs : children(vtz, ICAL_ANY_COMPONENT)) {
    const icalcomponent_kind kind = icalcomponent_isa(obs);
    if (kind != ICAL_XSTANDARD_COMPONENT && kind != ICAL_XDAYLIGHT_COMPONENT) continue;
    icalproperty* dtstart = first_property(obs, ICAL_DTSTART_PROPERTY);
    if (dtstart == nullptr || !valid_time(icalproperty_get_dtstart(dtstart))) {
      return invalid("VTIMEZONE observance without a valid DTSTART");
    }
    const int first_year = icalproperty_get_dtstart(dtstart).year;
    for (icalproperty* p : properties(obs, ICAL_RRULE_PROPERTY)) {
      const icalrecurrencetype r = icalproperty_get_rrule(p);
      if (r.freq != ICAL_YEARLY_RECURRENCE) return invalid("VTIMEZONE rule is not yearly");
      auto count = [](const short* list, size_t size) {
        size_t n = 0;
        while (n < size && list[n] != ICAL_RECURRENCE_ARRAY_MAX) ++n;
        return static_cast<int64_t>(n);
      };
      int64_t days = 1;
      if (const int64_t n = count(r.by_month_day, ICAL_BY_MONTHDAY_SIZE)) {
        days = n;
      } else if (const int64_t y = count(r.by_year_day, ICAL_BY_YEARDAY_SIZE)) {
        days = y;
      } else if (const int64_t w = count(r.by_day, ICAL_BY_DAY_SIZE)) {
        days = w * 5;
      }
      // Lotus Notes writes BYHOUR=2;BYMINUTE=0: single values cost nothing.
      int64_t per_year = days;
      for (int64_t n :
           {count(r.by_month, ICAL_BY_MONTH_SIZE), count(r.by_hour, ICAL_BY_HOUR_SIZE),
            count(r.by_minute, ICAL_BY_MINUTE_SIZE), count(r.by_second, ICAL_BY_SECOND_SIZE),
            count(r.by_week_no, ICAL_BY_WEEKNO_SIZE)}) {
        per_year *= std::max<int64_t>(1, n);
      }
      if (per_year > 62) return invalid("VTIMEZONE rule too dense");
      int64_t last_year = 2600;
      if (!icaltime_is_null_time(r.until)) last_year = std::min<int64_t>(last_year, r.until.year);
      int64_t years = std::clamp<int64_t>(last_year - first_year + 1, 0, 2600);
      if (r.count > 0) years = std::min<int64_t>(years, r.count);
      *budget -= years * per_year;
      if (*budget < 0) return invalid("VTIMEZONE too large to expand");
    }
  }
  return Status::ok();
}

// Zones built from objects' own VTIMEZONEs, shared by every object that carries the same
// VTIMEZONE text. libical builds a zone's table of changes on first use, from the observances'
// DTSTART years on; for a usual zone that costs several times the parse of the whole event, and
// a calendar repeats the same few VTIMEZONEs in every object. A shared zone is expanded to
// libical's last year before it is published and only read afterwards (libical serializes
// those reads itself). At most kMaxSharedZones, least recently used first out; a zone whose
// table might be large stays private to its object. check_vtimezone's estimate counts five
// changes a year for "BYMONTH=3;BYDAY=-1SU", so two such rules from 1601 (as Outlook writes
// them) estimate 10,000 for about 2,000 real changes of some 40 bytes.
constexpr size_t kMaxSharedZones = 64;
constexpr int64_t kMaxSharedZoneChanges = 16000;

using SharedZone = std::shared_ptr<icaltimezone>;

SharedZone shared_zone(icalcomponent* vtz) {
  int64_t budget = kMaxSharedZoneChanges;
  if (vtz == nullptr || !check_vtimezone(vtz, &budget).is_ok()) return nullptr;
  BufferPtr text(icalcomponent_as_ical_string_r(vtz));
  if (!text) return nullptr;
  std::string key(text.get());

  struct Cache {
    std::mutex mutex;
    std::list<std::pair<std::string, SharedZone>> order;  // most recently used first
    std::unordered_map<std::string_view, decltype(order)::iterator> index;
  };
  static auto* cache = new Cache();
  {
    std::lock_guard<std::mutex> lock(cache->mutex);
    if (auto it = cache->index.find(key); it != cache->index.end()) {
      cache->order.splice(cache->order.begin(), cache->order, it->second);
      return it->second->second;
    }
  }
  ComponentPtr copy(icalcomponent_new_clone(vtz));
  ZonePtr zone(icaltimezone_new());
  if (!copy || !zone || !icaltimezone_set_component(zone.get(), copy.get())) return nullptr;
  static_cast<void>(copy.release());  // owned by the zone now
  icaltimetype far = icaltime_null_time();
  far.year = 9999;  // libical stops at its last year
  far.month = 1;
  far.day = 1;
  (void)icaltimezone_get_utc_offset(zone.get(), &far, nullptr);
  SharedZone built(zone.release(), ZoneFree());

  std::lock_guard<std::mutex> lock(cache->mutex);
  if (auto it = cache->index.find(key); it != cache->index.end()) return it->second->second;
  cache->order.emplace_front(std::move(key), built);
  cache->index.emplace(cache->order.front().first, cache->order.begin());
  if (cache->order.size() > kMaxSharedZones) {
    cache->index.erase(cache->order.back().first);
    cache->order.pop_back();  // objects still holding it keep it alive
  }
  return built;
}

// The zone floating times and DATE values are read in (see groupware.h).
struct FloatingZone {
  Zone zone = nullptr;
  ZonePtr owned;  // when built from VTIMEZONE text
};

Result<FloatingZone> floating_zone(const std::string& spec) {
  FloatingZone out;
  const std::string_view s = trim(spec);
  if (s.empty() || s == "UTC" || s == "Z" || s == "GMT") return out;
  if (s.substr(0, 6) == "BEGIN:") {
    const std::string copy(s);
    ComponentPtr root(icalparser_parse_string(copy.c_str()));
    if (!root) return invalid("unreadable time zone");
    icalcomponent* vtz =
        icalcomponent_isa(root.get()) == ICAL_VTIMEZONE_COMPONENT
            ? root.get()
            : icalcomponent_get_first_component(root.get(), ICAL_VTIMEZONE_COMPONENT);
    if (vtz == nullptr) return invalid("time zone text without VTIMEZONE");
    int64_t budget = kVtimezoneBudget;
    MK_RETURN_IF_ERROR(check_vtimezone(vtz, &budget));
    ComponentPtr clone(icalcomponent_new_clone(vtz));
    ZonePtr zone(icaltimezone_new());
    if (!clone || !zone || !icaltimezone_set_component(zone.get(), clone.get())) {
      return invalid("unusable VTIMEZONE");
    }
    static_cast<void>(clone.release());  // owned by the zone now
    out.zone = zone.get();
    out.owned = std::move(zone);
    return out;
  }
  std::optional<Zone> z = olson_zone(s);
  if (!z) return invalid("unknown time zone " + std::string(s));
  out.zone = *z;
  return out;
}

// Resolves TZIDs of one object: its own VTIMEZONE first, then the Olson zone of that name
// (also after any "/prefix/", as in "/freeassociation.sourceforge.net/Europe/Berlin"), else the
// time counts as floating.
class ZoneResolver {
 public:
  ZoneResolver(icalcomponent* calendar, Zone floating) : calendar_(calendar), floating_(floating) {}

  Zone floating() {
    used_floating_ = true;
    return floating_;
  }
  bool used_floating() const { return used_floating_; }

  Zone resolve(const char* tzid) {
    if (tzid == nullptr || *tzid == '\0') return floating();
    if (auto it = cache_.find(tzid); it != cache_.end())
      return it->second ? *it->second : floating();
    std::optional<Zone> zone;
    if (icaltimezone* own = icalcomponent_get_timezone(calendar_, tzid)) {
      SharedZone shared = shared_zone(icaltimezone_get_component(own));
      zone = shared ? shared.get() : own;
      if (shared) held_.push_back(std::move(shared));
    } else {
      const std::string_view name(tzid);
      zone = olson_zone(name);
      for (size_t slash = name.find('/'); !zone && slash != std::string_view::npos;
           slash = name.find('/', slash + 1)) {
        zone = olson_zone(name.substr(slash + 1));
      }
    }
    cache_.emplace(tzid, zone);
    return zone ? *zone : floating();
  }

 private:
  icalcomponent* calendar_;
  Zone floating_;
  bool used_floating_ = false;
  std::unordered_map<std::string, std::optional<Zone>> cache_;
  std::vector<SharedZone> held_;  // shared zones this object's times refer to
};

Result<Moment> moment_of(icalproperty* p, const icaltimetype& t, ZoneResolver& zones) {
  if (icaltime_is_null_time(t) || !valid_time(t)) {
    const char* name = icalproperty_kind_to_string(icalproperty_isa(p));
    return invalid(std::string("bad date or time in ") + (name ? name : "a property"));
  }
  Moment m;
  m.local = civil_seconds(t);
  m.is_date = t.is_date != 0;
  if (!m.is_date && icaltime_is_utc(t)) {
    m.zone = nullptr;
    return m;
  }
  // DATE values and DATE-TIMEs without TZID are floating.
  icalparameter* tz =
      m.is_date ? nullptr : icalproperty_get_first_parameter(p, ICAL_TZID_PARAMETER);
  m.zone = tz != nullptr ? zones.resolve(icalparameter_get_tzid(tz)) : zones.floating();
  return m;
}

// ---- component timing

enum class Kind { kEvent, kTodo, kJournal, kFreeBusy };

// A length: nominal days (wall clock, 23 or 25 hours across a DST change) plus exact ms.
struct Span {
  int64_t days = 0;
  int64_t ms = 0;
};

Span span_of(const icaldurationtype& d) {
  if (d.is_neg) return {};
  Span s;
  s.days = static_cast<int64_t>(d.weeks) * 7 + d.days;
  s.ms = (static_cast<int64_t>(d.hours) * 3600 + static_cast<int64_t>(d.minutes) * 60 + d.seconds) *
         1000;
  return s;
}

int64_t end_of(const Moment& start, const Span& span) {
  if (span.days == 0) return sat_add(to_utc_ms(start), span.ms);
  Moment end = start;
  end.local += span.days * kSecondsPerDay;
  return sat_add(to_utc_ms(end), span.ms);
}

// The length from `start` to `end` as a Span: nominal days between two DATEs, else exact.
Span span_between(const Moment& start, const Moment& end) {
  if (start.is_date && end.is_date) return {(end.local - start.local) / kSecondsPerDay, 0};
  return {0, to_utc_ms(end) - to_utc_ms(start)};
}

int64_t span_upper_seconds(const Span& s) {
  return std::max<int64_t>(0, s.days) * kSecondsPerDay + std::max<int64_t>(0, s.ms) / 1000 +
         kSecondsPerDay;
}

struct RDate {
  Moment start;
  std::optional<Moment> end;  // PERIOD with an end
  std::optional<Span> span;   // PERIOD with a duration
};

struct FreeBusyPeriod {
  int64_t start = 0;
  int64_t end = 0;
  std::string fbtype;
};

struct Timing {
  icalcomponent* comp = nullptr;
  Kind kind = Kind::kEvent;
  std::optional<Moment> dtstart, dtend, due, recurrence_id;
  std::optional<Span> duration;
  std::optional<int64_t> completed, created;  // UTC ms
  std::vector<icalrecurrencetype> rrules;
  std::vector<RDate> rdates;
  std::vector<Moment> exdates;
  std::vector<FreeBusyPeriod> freebusy;
  bool transparent = false;
  std::string status;
  std::string summary;

  // The instance length of a VEVENT/VJOURNAL (from DTEND, DURATION or the defaults), and of a
  // VTODO's DTSTART..DUE.
  Span span() const {
    if (kind == Kind::kTodo) {
      if (dtstart && due) return span_between(*dtstart, *due);
      return duration.value_or(Span{});
    }
    if (dtstart && dtend) return span_between(*dtstart, *dtend);
    if (duration) return *duration;
    return dtstart && dtstart->is_date ? Span{1, 0} : Span{};
  }
};

// One instance and how RFC 4791 9.9 tests it against a range [a, b): the instance overlaps
// when (a < end, or a <= end if end_inclusive) and (b > start, or b >= start if
// start_inclusive).
struct Occurrence {
  int64_t start = 0;
  int64_t end = 0;
  bool end_inclusive = false;
  bool start_inclusive = false;

  bool overlaps(const TimeRange& r) const {
    const bool a = end_inclusive ? r.start <= end : r.start < end;
    const bool b = start_inclusive ? r.end >= start : r.end > start;
    return a && b;
  }
};

Occurrence interval_or_instant(int64_t s, int64_t e) {
  if (e > s) return {s, e, false, false};
  return {s, s, true, false};  // start <= t < end
}

// The occurrence of `t` starting at `start` (its DTSTART, or an RDATE/RRULE instance), or none
// when the component has no time at all (VJOURNAL without DTSTART). `rdate` carries an RDATE
// PERIOD's own end.
std::optional<Occurrence> occurrence_of(const Timing& t, const std::optional<Moment>& start,
                                        const RDate* rdate = nullptr) {
  if (t.kind == Kind::kTodo) {
    // RFC 4791 9.9, VTODO table.
    if (start) {
      const int64_t s = to_utc_ms(*start);
      if (rdate && (rdate->end || rdate->span)) {
        const int64_t e = rdate->end ? to_utc_ms(*rdate->end) : end_of(*start, *rdate->span);
        return e > s ? Occurrence{s, e, true, false} : Occurrence{s, s, true, true};
      }
      if (t.duration) {
        const int64_t e = end_of(*start, *t.duration);
        return e > s ? Occurrence{s, e, true, false} : Occurrence{s, s, true, true};
      }
      if (t.due) {
        const int64_t e = end_of(*start, t.span());
        return e > s ? Occurrence{s, e, false, false} : Occurrence{s, s, true, true};
      }
      return Occurrence{s, s, true, false};
    }
    if (t.due) {
      const int64_t d = to_utc_ms(*t.due);
      return Occurrence{d, d, false, true};
    }
    if (t.completed && t.created) {
      return Occurrence{std::min(*t.completed, *t.created), std::max(*t.completed, *t.created),
                        true, true};
    }
    if (t.completed) return Occurrence{*t.completed, *t.completed, true, true};
    if (t.created) return Occurrence{*t.created, kTimeMax, true, false};
    return Occurrence{kTimeMin, kTimeMax, true, true};
  }
  if (!start) return std::nullopt;
  const int64_t s = to_utc_ms(*start);
  if (rdate && rdate->end) return interval_or_instant(s, to_utc_ms(*rdate->end));
  if (rdate && rdate->span) return interval_or_instant(s, end_of(*start, *rdate->span));
  if (t.kind == Kind::kJournal) {
    return start->is_date ? interval_or_instant(s, end_of(*start, Span{1, 0}))
                          : Occurrence{s, s, true, false};
  }
  return interval_or_instant(s, end_of(*start, t.span()));
}

bool is_subdaily(const icalrecurrencetype& r) {
  return r.freq == ICAL_SECONDLY_RECURRENCE || r.freq == ICAL_MINUTELY_RECURRENCE ||
         r.freq == ICAL_HOURLY_RECURRENCE;
}

std::vector<int> list_of(const short* list, size_t size) {
  std::vector<int> out;
  for (size_t i = 0; i < size && list[i] != ICAL_RECURRENCE_ARRAY_MAX; ++i) out.push_back(list[i]);
  return out;
}

// What expand_subdaily() supports, checked when the object is loaded: RFC 5545 forbids BYWEEKNO
// and numbered BYDAY outside YEARLY/MONTHLY; RSCALE is left to libical's coarser iterators.
Status check_rrule(const icalrecurrencetype& r, const Moment& dtstart) {
  if (r.interval < 1) return invalid("RRULE INTERVAL must be positive");
  if (is_subdaily(r)) {
    if (r.rscale != nullptr && *r.rscale != '\0' && !iequals(r.rscale, "GREGORIAN")) {
      return invalid("RSCALE is not supported with sub-daily RRULEs");
    }
    if (!list_of(r.by_week_no, ICAL_BY_WEEKNO_SIZE).empty()) {
      return invalid("BYWEEKNO is only allowed with FREQ=YEARLY");
    }
    for (int d : list_of(r.by_day, ICAL_BY_DAY_SIZE)) {
      if (icalrecurrencetype_day_position(static_cast<short>(d)) != 0) {
        return invalid("numbered BYDAY is only allowed with FREQ=MONTHLY or YEARLY");
      }
    }
    return Status::ok();
  }
  IteratorPtr it(icalrecur_iterator_new(r, to_icaltime(dtstart.local, dtstart.is_date)));
  if (!it) return invalid("RRULE cannot be expanded");
  return Status::ok();
}

std::string status_text(icalcomponent* c) {
  icalproperty* p = first_property(c, ICAL_STATUS_PROPERTY);
  return p ? to_upper(trim(value_string(p))) : std::string();
}

std::string fbtype_of(icalproperty* p) {
  icalparameter* param = icalproperty_get_first_parameter(p, ICAL_FBTYPE_PARAMETER);
  if (param == nullptr) return "BUSY";
  switch (icalparameter_get_fbtype(param)) {
    case ICAL_FBTYPE_FREE:
      return "FREE";
    case ICAL_FBTYPE_BUSYUNAVAILABLE:
      return "BUSY-UNAVAILABLE";
    case ICAL_FBTYPE_BUSYTENTATIVE:
      return "BUSY-TENTATIVE";
    case ICAL_FBTYPE_X: {
      const char* x = icalparameter_get_xvalue(param);
      return x != nullptr && *x != '\0' ? to_upper(x) : "BUSY";
    }
    default:
      return "BUSY";
  }
}

Result<Timing> read_timing(icalcomponent* c, Kind kind, ZoneResolver& zones) {
  Timing t;
  t.comp = c;
  t.kind = kind;
  auto moment = [&](icalproperty_kind pk,
                    icaltimetype (*get)(const icalproperty*)) -> Result<std::optional<Moment>> {
    icalproperty* p = first_property(c, pk);
    if (p == nullptr) return std::optional<Moment>();
    MK_ASSIGN_OR_RETURN(Moment m, moment_of(p, get(p), zones));
    return std::optional<Moment>(m);
  };
  MK_ASSIGN_OR_RETURN(t.dtstart, moment(ICAL_DTSTART_PROPERTY, icalproperty_get_dtstart));
  MK_ASSIGN_OR_RETURN(t.recurrence_id,
                      moment(ICAL_RECURRENCEID_PROPERTY, icalproperty_get_recurrenceid));
  if (kind == Kind::kEvent || kind == Kind::kFreeBusy) {
    MK_ASSIGN_OR_RETURN(t.dtend, moment(ICAL_DTEND_PROPERTY, icalproperty_get_dtend));
  }
  if (kind == Kind::kTodo) {
    MK_ASSIGN_OR_RETURN(t.due, moment(ICAL_DUE_PROPERTY, icalproperty_get_due));
    MK_ASSIGN_OR_RETURN(auto completed,
                        moment(ICAL_COMPLETED_PROPERTY, icalproperty_get_completed));
    MK_ASSIGN_OR_RETURN(auto created, moment(ICAL_CREATED_PROPERTY, icalproperty_get_created));
    if (completed) t.completed = to_utc_ms(*completed);
    if (created) t.created = to_utc_ms(*created);
  }
  if (kind != Kind::kJournal) {
    if (icalproperty* p = first_property(c, ICAL_DURATION_PROPERTY)) {
      t.duration = span_of(icalproperty_get_duration(p));
    }
  }
  const std::string name = kind_name(icalcomponent_isa(c));
  if (kind == Kind::kEvent && !t.dtstart) return invalid(name + " without DTSTART");
  if (t.dtend && t.duration) return invalid(name + " with both DTEND and DURATION");
  if (t.due && t.duration) return invalid(name + " with both DUE and DURATION");
  if (kind == Kind::kTodo && t.duration && !t.dtstart) {
    return invalid("VTODO with DURATION but no DTSTART");
  }

  for (icalproperty* p : properties(c, ICAL_RRULE_PROPERTY)) {
    if (!t.dtstart) return invalid(name + " with RRULE but no DTSTART");
    const icalrecurrencetype r = icalproperty_get_rrule(p);
    if (r.freq == ICAL_NO_RECURRENCE) return invalid("unreadable RRULE");
    MK_RETURN_IF_ERROR(check_rrule(r, *t.dtstart));
    t.rrules.push_back(r);
  }
  for (icalproperty* p : properties(c, ICAL_RDATE_PROPERTY)) {
    if (!t.dtstart) return invalid(name + " with RDATE but no DTSTART");
    const icaldatetimeperiodtype v = icalproperty_get_rdate(p);
    RDate rd;
    if (!icaltime_is_null_time(v.time)) {
      MK_ASSIGN_OR_RETURN(rd.start, moment_of(p, v.time, zones));
    } else {
      MK_ASSIGN_OR_RETURN(rd.start, moment_of(p, v.period.start, zones));
      if (!icaltime_is_null_time(v.period.end)) {
        MK_ASSIGN_OR_RETURN(Moment end, moment_of(p, v.period.end, zones));
        rd.end = end;
      } else {
        rd.span = span_of(v.period.duration);
      }
    }
    t.rdates.push_back(rd);
  }
  for (icalproperty* p : properties(c, ICAL_EXDATE_PROPERTY)) {
    MK_ASSIGN_OR_RETURN(Moment m, moment_of(p, icalproperty_get_exdate(p), zones));
    t.exdates.push_back(m);
  }
  if (kind == Kind::kFreeBusy) {
    for (icalproperty* p : properties(c, ICAL_FREEBUSY_PROPERTY)) {
      const icalperiodtype period = icalproperty_get_freebusy(p);
      MK_ASSIGN_OR_RETURN(Moment start, moment_of(p, period.start, zones));
      FreeBusyPeriod fb;
      fb.start = to_utc_ms(start);
      if (!icaltime_is_null_time(period.end)) {
        MK_ASSIGN_OR_RETURN(Moment end, moment_of(p, period.end, zones));
        fb.end = to_utc_ms(end);
      } else {
        fb.end = end_of(start, span_of(period.duration));
      }
      fb.end = std::max(fb.end, fb.start);
      fb.fbtype = fbtype_of(p);
      t.freebusy.push_back(std::move(fb));
    }
  }
  if (icalproperty* p = first_property(c, ICAL_TRANSP_PROPERTY)) {
    const icalproperty_transp transp = icalproperty_get_transp(p);
    t.transparent =
        transp == ICAL_TRANSP_TRANSPARENT || transp == ICAL_TRANSP_TRANSPARENTNOCONFLICT;
  }
  t.status = status_text(c);
  if (const char* s = icalcomponent_get_summary(c)) t.summary = s;
  return t;
}

// ---- parsing and validating an object

// What libical forgives and a calendar object resource must not have: text before or after
// the VCALENDAR, BEGIN/END that do not pair up, lines that are not content lines, text that is
// not UTF-8 once unfolded. `many` allows several VCALENDARs in a row (export files).
Status check_ical_structure(std::string_view ics, bool many) {
  if (ics.find('\0') != std::string_view::npos) return invalid("NUL byte in iCalendar text");
  LineReader reader(ics);
  LogicalLine line;
  std::vector<std::string> stack;
  int calendars = 0;
  while (reader.next(&line)) {
    if (trim(line.text).empty()) continue;
    if (!is_valid_utf8(line.text)) return invalid("not UTF-8" + line_ref(line.number));
    const std::optional<ContentLine> cl = parse_content_line(line.text);
    const bool begin = cl && cl->name == "BEGIN";
    const bool end = cl && cl->name == "END";
    const std::string what = cl ? to_upper(trim(cl->value)) : std::string();
    if (stack.empty()) {
      if (!begin || what != "VCALENDAR") {
        return invalid(calendars == 0 ? "not an iCalendar object (no BEGIN:VCALENDAR)"
                                      : "text after END:VCALENDAR" + line_ref(line.number));
      }
      if (calendars > 0 && !many) return invalid("more than one VCALENDAR");
      ++calendars;
    }
    if (!cl) return invalid("malformed content line" + line_ref(line.number));
    if (begin) {
      if (stack.size() >= kMaxNesting) return invalid("components nested too deep");
      stack.push_back(what);
    } else if (end) {
      if (stack.back() != what) {
        return invalid("END:" + what + " does not close BEGIN:" + stack.back() +
                       line_ref(line.number));
      }
      stack.pop_back();
    }
  }
  if (!stack.empty()) return invalid("unterminated " + stack.back());
  if (calendars == 0) return invalid("not an iCalendar object (no BEGIN:VCALENDAR)");
  return Status::ok();
}

// libical marks every line it could not read with an X-LIC-ERROR property (and drops the line).
const char* find_parse_error(icalcomponent* c) {
  if (icalproperty* p = first_property(c, ICAL_XLICERROR_PROPERTY)) {
    const char* m = icalproperty_get_xlicerror(p);
    return m != nullptr ? m : "parse error";
  }
  for (icalcomponent* child : children(c, ICAL_ANY_COMPONENT)) {
    if (const char* m = find_parse_error(child)) return m;
  }
  return nullptr;
}

Result<ComponentPtr> parse_ical(std::string_view ics, bool many) {
  warm_up_libical();
  MK_RETURN_IF_ERROR(check_ical_structure(ics, many));
  const std::string text(strip_bom(ics));
  ComponentPtr root(icalparser_parse_string(text.c_str()));
  if (!root) return invalid("not an iCalendar object");
  const icalcomponent_kind kind = icalcomponent_isa(root.get());
  if (kind != ICAL_VCALENDAR_COMPONENT && !(many && kind == ICAL_XROOT_COMPONENT)) {
    return invalid(kind == ICAL_XROOT_COMPONENT ? "more than one VCALENDAR"
                                                : "not an iCalendar object");
  }
  if (const char* error = find_parse_error(root.get())) {
    std::string m(error);
    if (m.size() > 160) m = m.substr(0, 160) + "...";
    return invalid("iCalendar syntax error: " + m);
  }
  return root;
}

struct CalendarObject {
  ComponentPtr root;
  FloatingZone floating;
  std::unique_ptr<ZoneResolver> zones;
  Kind kind = Kind::kEvent;
  std::string component;
  std::string uid;
  std::optional<Timing> master;
  std::vector<Timing> overrides;

  bool recurring() const {
    return !overrides.empty() || (master && (!master->rrules.empty() || !master->rdates.empty()));
  }
};

std::optional<Kind> kind_of(icalcomponent_kind k) {
  switch (k) {
    case ICAL_VEVENT_COMPONENT:
      return Kind::kEvent;
    case ICAL_VTODO_COMPONENT:
      return Kind::kTodo;
    case ICAL_VJOURNAL_COMPONENT:
      return Kind::kJournal;
    case ICAL_VFREEBUSY_COMPONENT:
      return Kind::kFreeBusy;
    default:
      return std::nullopt;
  }
}

Result<CalendarObject> load_calendar_object(std::string_view ics, const std::string& floating_tz) {
  CalendarObject obj;
  MK_ASSIGN_OR_RETURN(obj.root, parse_ical(ics, /*many=*/false));
  MK_ASSIGN_OR_RETURN(obj.floating, floating_zone(floating_tz));
  icalcomponent* cal = obj.root.get();
  obj.zones = std::make_unique<ZoneResolver>(cal, obj.floating.zone);

  icalproperty* version = first_property(cal, ICAL_VERSION_PROPERTY);
  if (version == nullptr) return invalid("VERSION missing");
  const char* v = icalproperty_get_version(version);
  if (v == nullptr || trim(v) != "2.0") return invalid("VERSION must be 2.0");
  if (first_property(cal, ICAL_METHOD_PROPERTY) != nullptr) {
    return invalid("METHOD is not allowed in a calendar object resource");
  }

  std::vector<icalcomponent*> comps;
  int64_t tz_budget = kVtimezoneBudget;
  for (icalcomponent* c : children(cal, ICAL_ANY_COMPONENT)) {
    const icalcomponent_kind k = icalcomponent_isa(c);
    if (k == ICAL_VTIMEZONE_COMPONENT) {
      MK_RETURN_IF_ERROR(check_vtimezone(c, &tz_budget));
    } else if (k == ICAL_X_COMPONENT) {
      continue;
    } else if (kind_of(k)) {
      comps.push_back(c);
    } else {
      return invalid("unexpected " + kind_name(k) + " in VCALENDAR");
    }
  }
  if (comps.empty()) return invalid("no VEVENT, VTODO, VJOURNAL or VFREEBUSY");
  const icalcomponent_kind first_kind = icalcomponent_isa(comps.front());
  obj.kind = *kind_of(first_kind);
  obj.component = kind_name(first_kind);
  std::unordered_set<int64_t> rids;
  for (icalcomponent* c : comps) {
    if (icalcomponent_isa(c) != first_kind) {
      return invalid("more than one component type (" + obj.component + " and " +
                     kind_name(icalcomponent_isa(c)) + ")");
    }
    const char* uid = icalcomponent_get_uid(c);
    if (uid == nullptr || trim(uid).empty()) return invalid(obj.component + " without UID");
    if (obj.uid.empty()) {
      obj.uid = uid;
    } else if (obj.uid != uid) {
      return invalid("two UIDs in one calendar object");
    }
    MK_ASSIGN_OR_RETURN(Timing t, read_timing(c, obj.kind, *obj.zones));
    if (t.recurrence_id) {
      if (!rids.insert(to_utc_ms(*t.recurrence_id)).second) {
        return invalid("two overrides with the same RECURRENCE-ID");
      }
      obj.overrides.push_back(std::move(t));
    } else {
      if (obj.master) return invalid("two components without RECURRENCE-ID");
      obj.master = std::move(t);
    }
  }
  return obj;
}

// ---- recurrence expansion

// Visits wall-clock instance starts; returns false to stop the expansion.
using StartVisitor = std::function<bool(int64_t local)>;

// FREQ=HOURLY/MINUTELY/SECONDLY by hand: period k starts at DTSTART + k*INTERVAL units (wall
// clock); BYMONTH, BYMONTHDAY, BYYEARDAY, BYDAY and the coarser of BYHOUR/BYMINUTE limit, the
// finer ones expand (RFC 5545 3.3.10 table), BYSETPOS picks from each period. A period whose
// day (or hour, minute) fails a limit skips straight to the next day (hour, minute), so the
// work is bounded by days + instances, however sparse the rule. Returns whether the rule ran
// out (true) rather than stopping at `stop_local` or at the visitor's request.
Result<bool> expand_subdaily(const icalrecurrencetype& r, const Moment& dtstart, int64_t jump_local,
                             int64_t stop_local, const StartVisitor& visit) {
  const int64_t unit = r.freq == ICAL_HOURLY_RECURRENCE     ? 3600
                       : r.freq == ICAL_MINUTELY_RECURRENCE ? 60
                                                            : 1;
  const int64_t step = unit * std::max<int64_t>(1, r.interval);
  const std::vector<int> hours = list_of(r.by_hour, ICAL_BY_HOUR_SIZE);
  const std::vector<int> minutes = list_of(r.by_minute, ICAL_BY_MINUTE_SIZE);
  const std::vector<int> seconds = list_of(r.by_second, ICAL_BY_SECOND_SIZE);
  std::vector<int> months;
  for (int m : list_of(r.by_month, ICAL_BY_MONTH_SIZE)) {
    months.push_back(icalrecurrencetype_month_month(static_cast<short>(m)));
  }
  const std::vector<int> monthdays = list_of(r.by_month_day, ICAL_BY_MONTHDAY_SIZE);
  const std::vector<int> yeardays = list_of(r.by_year_day, ICAL_BY_YEARDAY_SIZE);
  const std::vector<int> setpos = list_of(r.by_set_pos, ICAL_BY_SETPOS_SIZE);
  unsigned weekdays = 0;  // bit 0 = Sunday
  for (int d : list_of(r.by_day, ICAL_BY_DAY_SIZE)) {
    const int dow = icalrecurrencetype_day_day_of_week(static_cast<short>(d));  // 1 = Sunday
    if (dow >= 1 && dow <= 7) weekdays |= 1u << (dow - 1);
  }
  auto has = [](const std::vector<int>& list, int64_t v) {
    return std::find(list.begin(), list.end(), static_cast<int>(v)) != list.end();
  };
  auto day_ok = [&](int64_t day) {
    int64_t y = 0;
    int m = 0;
    int d = 0;
    civil_from_days(day, &y, &m, &d);
    if (!months.empty() && !has(months, m)) return false;
    if (!monthdays.empty()) {
      const int dim = days_in_month(y, m);
      if (!std::any_of(monthdays.begin(), monthdays.end(),
                       [&](int v) { return v > 0 ? d == v : d == dim + v + 1; })) {
        return false;
      }
    }
    if (!yeardays.empty()) {
      const int64_t yday = day - days_from_civil(y, 1, 1) + 1;
      const int64_t ylen = is_leap(y) ? 366 : 365;
      if (!std::any_of(yeardays.begin(), yeardays.end(),
                       [&](int v) { return v > 0 ? yday == v : yday == ylen + v + 1; })) {
        return false;
      }
    }
    if (weekdays != 0) {
      const int64_t dow = ((day + 4) % 7 + 7) % 7;  // 1970-01-01 was a Thursday
      if ((weekdays & (1u << dow)) == 0) return false;
    }
    return true;
  };

  const int64_t l0 = dtstart.local;
  const int64_t start_minute = floor_div(l0, 60) % 60;
  const int64_t start_second = l0 - floor_div(l0, 60) * 60;
  // First period at or after `t`.
  auto period_at_or_after = [&](int64_t k, int64_t t) {
    return std::max(k + 1, ceil_div_positive(t - l0, step));
  };
  int64_t k = 0;
  if (r.count == 0 && jump_local > l0) k = (jump_local - l0) / step;
  int64_t limit = r.count > 0 ? r.count : -1;
  int64_t emitted = 0;
  bool first = true;
  std::vector<int64_t> cands;
  for (size_t steps = 0;; ++steps) {
    if (steps >= kMaxSubDailySteps) return too_large("RRULE needs too much work to expand");
    const int64_t p = l0 + k * step;
    if (p > stop_local) return false;
    const int64_t day = floor_div(p, kSecondsPerDay);
    if (!day_ok(day)) {
      k = period_at_or_after(k, (day + 1) * kSecondsPerDay);
      continue;
    }
    const int64_t tod = p - day * kSecondsPerDay;
    if (!hours.empty() && !has(hours, tod / 3600)) {
      k = period_at_or_after(k, day * kSecondsPerDay + (tod / 3600 + 1) * 3600);
      continue;
    }
    if (unit < 3600 && !minutes.empty() && !has(minutes, tod / 60 % 60)) {
      k = period_at_or_after(k, day * kSecondsPerDay + (tod / 60 + 1) * 60);
      continue;
    }
    cands.clear();
    if (unit == 3600) {
      const int64_t hour_start = p - tod % 3600;
      for (int64_t m :
           minutes.empty() ? std::vector<int>{static_cast<int>(start_minute)} : minutes) {
        for (int64_t s :
             seconds.empty() ? std::vector<int>{static_cast<int>(start_second)} : seconds) {
          cands.push_back(hour_start + m * 60 + s);
        }
      }
    } else if (unit == 60) {
      const int64_t minute_start = p - tod % 60;
      for (int64_t s :
           seconds.empty() ? std::vector<int>{static_cast<int>(start_second)} : seconds) {
        cands.push_back(minute_start + s);
      }
    } else if (seconds.empty() || has(seconds, tod % 60)) {
      cands.push_back(p);
    }
    std::sort(cands.begin(), cands.end());
    cands.erase(std::unique(cands.begin(), cands.end()), cands.end());
    if (!setpos.empty()) {
      std::vector<int64_t> picked;
      const int64_t n = static_cast<int64_t>(cands.size());
      for (int pos : setpos) {
        const int64_t i = pos > 0 ? pos - 1 : n + pos;
        if (i >= 0 && i < n) picked.push_back(cands[i]);
      }
      std::sort(picked.begin(), picked.end());
      picked.erase(std::unique(picked.begin(), picked.end()), picked.end());
      cands.swap(picked);
    }
    for (int64_t c : cands) {
      if (c < l0) continue;
      if (c > stop_local) return false;
      if (first && limit > 0 && c != l0) --limit;  // DTSTART is the first instance of COUNT
      first = false;
      if (limit >= 0 && emitted >= limit) return true;
      ++emitted;
      if (!visit(c)) return false;
    }
    ++k;
  }
}

// FREQ=DAILY without BY parts and FREQ=WEEKLY with at most a plain BYDAY list, by wall-clock
// arithmetic: the most common recurring events, which libical's iterator walks through ICU's
// calendar one step at a time (a third of a calendar-query's time on a month of them). Same
// conventions as expand_subdaily(); nullopt for every other rule (libical expands those).
std::optional<Result<bool>> expand_simple(const icalrecurrencetype& r, const Moment& dtstart,
                                          int64_t jump_local, int64_t stop_local,
                                          const StartVisitor& visit) {
  if (r.freq != ICAL_DAILY_RECURRENCE && r.freq != ICAL_WEEKLY_RECURRENCE) return std::nullopt;
  if (r.rscale && r.rscale[0]) return std::nullopt;
  for (const auto& list :
       {list_of(r.by_second, ICAL_BY_SECOND_SIZE), list_of(r.by_minute, ICAL_BY_MINUTE_SIZE),
        list_of(r.by_hour, ICAL_BY_HOUR_SIZE), list_of(r.by_month_day, ICAL_BY_MONTHDAY_SIZE),
        list_of(r.by_year_day, ICAL_BY_YEARDAY_SIZE), list_of(r.by_week_no, ICAL_BY_WEEKNO_SIZE),
        list_of(r.by_month, ICAL_BY_MONTH_SIZE), list_of(r.by_set_pos, ICAL_BY_SETPOS_SIZE)})
    if (!list.empty()) return std::nullopt;
  const std::vector<int> by_day = list_of(r.by_day, ICAL_BY_DAY_SIZE);
  if (r.freq == ICAL_DAILY_RECURRENCE && !by_day.empty()) return std::nullopt;
  // Monday-based weekday numbers (0 = Monday); 1970-01-01 was a Thursday.
  auto weekday = [](int64_t day) { return ((day + 3) % 7 + 7) % 7; };
  auto monday_based = [](int ical_weekday) { return (ical_weekday + 5) % 7; };  // 1 = Sunday
  std::vector<int64_t> offsets;  // days from the start of a week (WKST)
  const int64_t wkst =
      monday_based(r.week_start == ICAL_NO_WEEKDAY ? ICAL_MONDAY_WEEKDAY : r.week_start);
  for (int d : by_day) {
    const short v = static_cast<short>(d);
    if (icalrecurrencetype_day_position(v) != 0) return std::nullopt;  // not valid in WEEKLY
    const int dow = icalrecurrencetype_day_day_of_week(v);
    if (dow < 1 || dow > 7) return std::nullopt;
    offsets.push_back((monday_based(dow) - wkst + 7) % 7);
  }
  std::sort(offsets.begin(), offsets.end());
  offsets.erase(std::unique(offsets.begin(), offsets.end()), offsets.end());

  const int64_t interval = std::max<int64_t>(1, r.interval);
  const int64_t l0 = dtstart.local;
  const int64_t day0 = floor_div(l0, kSecondsPerDay);
  const int64_t tod = l0 - day0 * kSecondsPerDay;
  // Period p covers days [first + p*length, first + (p+1)*length); candidates within it are
  // `offsets` (a week's BYDAY) or its first day.
  const bool weekly_days = !offsets.empty();
  const int64_t length = (r.freq == ICAL_DAILY_RECURRENCE ? 1 : 7) * interval;
  const int64_t first = weekly_days ? day0 - (weekday(day0) - wkst + 7) % 7 : day0;
  int64_t p = 0;
  if (r.count == 0 && jump_local > l0)
    p = std::max<int64_t>(0, floor_div(floor_div(jump_local, kSecondsPerDay) - first, length) - 1);
  int64_t limit = r.count > 0 ? r.count : -1;
  int64_t emitted = 0;
  bool is_first = true;
  for (size_t walked = 0;; ++p) {
    const int64_t period = first + p * length;
    if (period * kSecondsPerDay + tod > stop_local) return Result<bool>(false);
    for (int64_t off : weekly_days ? offsets : std::vector<int64_t>{0}) {
      const int64_t c = (period + off) * kSecondsPerDay + tod;
      if (c < l0) continue;
      if (c > stop_local) return Result<bool>(false);
      if (++walked > kMaxRecurrenceInstances)
        return Result<bool>(too_large("too many recurrence instances"));
      if (is_first && limit > 0 && c != l0) --limit;  // DTSTART is the first instance of COUNT
      is_first = false;
      if (limit >= 0 && emitted >= limit) return Result<bool>(true);
      ++emitted;
      if (!visit(c)) return Result<bool>(false);
    }
  }
}

// RRULE instance starts in wall-clock order, from DTSTART (or from about `jump_local` for a rule
// without COUNT) to `stop_local`. UNTIL is left to the caller (exact, in UTC); libical is given
// `stop_local` as its UNTIL so that it never runs past the range asked about.
Result<bool> expand_rrule(icalrecurrencetype r, const Moment& dtstart, int64_t jump_local,
                          int64_t stop_local, const StartVisitor& visit) {
  if (!icaltime_is_null_time(r.until)) {
    // A conservative wall-clock bound for the real UNTIL (zone offsets are under a day).
    stop_local = std::min(stop_local, civil_seconds(r.until) + kSlackSeconds);
  }
  if (is_subdaily(r)) return expand_subdaily(r, dtstart, jump_local, stop_local, visit);
  if (stop_local < dtstart.local) return false;
  if (auto simple = expand_simple(r, dtstart, jump_local, stop_local, visit)) return *simple;
  r.until = to_icaltime(stop_local, dtstart.is_date);
  IteratorPtr it(icalrecur_iterator_new(r, to_icaltime(dtstart.local, dtstart.is_date)));
  if (!it) return invalid("RRULE cannot be expanded");
  bool jumped = false;
  if (r.count == 0 && jump_local > dtstart.local && jump_local <= stop_local) {
    jumped = icalrecur_iterator_set_start(it.get(), to_icaltime(jump_local, dtstart.is_date)) != 0;
  }
  int64_t limit = r.count > 0 ? r.count : -1;
  int64_t emitted = 0;
  size_t walked = 0;
  bool first = true;
  while (true) {
    const icaltimetype t = icalrecur_iterator_next(it.get());
    if (icaltime_is_null_time(t)) return limit >= 0 && emitted >= limit;
    if (++walked > kMaxRecurrenceInstances) return too_large("too many recurrence instances");
    const int64_t local = civil_seconds(t);
    if (local > stop_local) return false;
    if (first && !jumped && limit > 0 && local != dtstart.local) --limit;
    first = false;
    if (limit >= 0 && emitted >= limit) return true;
    ++emitted;
    if (!visit(local)) return false;
  }
}

// Whether a wall-clock instance of `dtstart`'s zone is within the rule's UNTIL.
bool within_until(const icalrecurrencetype& r, const Moment& instance) {
  if (icaltime_is_null_time(r.until)) return true;
  if (r.until.is_date) {
    return floor_div(instance.local, kSecondsPerDay) <=
           days_from_civil(r.until.year, r.until.month, r.until.day);
  }
  if (icaltime_is_utc(r.until)) return to_utc_ms(instance) <= civil_seconds(r.until) * 1000;
  return instance.local <= civil_seconds(r.until);
}

struct Found {
  Occurrence occ;
  const Timing* from = nullptr;
  std::optional<Moment> recurrence_id;  // none when the object does not recur

  std::string recurrence_id_text() const {
    if (!recurrence_id) return {};
    return recurrence_id->is_date ? format_date(recurrence_id->local)
                                  : format_utc(to_utc_ms(*recurrence_id));
  }
};
using FoundVisitor = std::function<bool(const Found&)>;

// Walks the object's occurrences: every override, then the master's instances (DTSTART,
// RDATEs, RRULEs, less EXDATEs and overridden ones). Occurrences far outside `window` may be
// skipped; the visitor does the exact overlap test. Returns false when the visitor stopped.
Result<bool> walk(const CalendarObject& obj, const TimeRange& window, const FoundVisitor& visit) {
  const bool recurring = obj.recurring();
  std::unordered_set<int64_t> overridden;
  for (const Timing& o : obj.overrides) {
    overridden.insert(to_utc_ms(*o.recurrence_id));
    const std::optional<Occurrence> occ = occurrence_of(o, o.dtstart);
    if (!occ) continue;
    if (!visit(Found{*occ, &o, o.recurrence_id})) return false;
  }
  if (!obj.master) return true;
  const Timing& m = *obj.master;
  if (!m.dtstart) {
    const std::optional<Occurrence> occ = occurrence_of(m, std::nullopt);
    return !occ || visit(Found{*occ, &m, std::nullopt});
  }

  std::unordered_set<int64_t> exdates;
  std::unordered_set<int64_t> exdays;  // DATE EXDATEs of a DATE-TIME DTSTART
  for (const Moment& x : m.exdates) {
    if (x.is_date && !m.dtstart->is_date) {
      exdays.insert(floor_div(x.local, kSecondsPerDay));
    } else {
      exdates.insert(to_utc_ms(x));
    }
  }
  std::unordered_set<int64_t> seen;  // DTSTART and RDATEs, which RRULEs must not repeat
  auto emit = [&](const Moment& start, const RDate* rdate) {
    const int64_t rid = to_utc_ms(start);
    if (exdates.count(rid) || overridden.count(rid)) return true;
    if (!exdays.empty() && exdays.count(floor_div(start.local, kSecondsPerDay))) return true;
    const std::optional<Occurrence> occ = occurrence_of(m, start, rdate);
    if (!occ) return true;
    return visit(Found{*occ, &m, recurring ? std::optional<Moment>(start) : std::nullopt});
  };
  seen.insert(to_utc_ms(*m.dtstart));
  if (!emit(*m.dtstart, nullptr)) return false;
  for (const RDate& rd : m.rdates) {
    if (!seen.insert(to_utc_ms(rd.start)).second) continue;
    if (!emit(rd.start, &rd)) return false;
  }
  if (m.rrules.empty()) return true;

  // Instances starting after this cannot overlap the window; those ending before its start
  // need not be walked when the rule has no COUNT.
  const int64_t stop_local =
      window.end == kTimeMax ? kTimeMax / 2 : floor_div(window.end, 1000) + kSlackSeconds;
  const int64_t stop_ms = sat_add(window.end, kSlackSeconds * 1000);
  const int64_t jump_local =
      window.start == kTimeMin
          ? kTimeMin / 2
          : floor_div(window.start, 1000) - span_upper_seconds(m.span()) - kSlackSeconds;
  bool stopped = false;
  for (const icalrecurrencetype& r : m.rrules) {
    MK_ASSIGN_OR_RETURN(bool exhausted,
                        expand_rrule(r, *m.dtstart, jump_local, stop_local, [&](int64_t local) {
                          Moment start = *m.dtstart;
                          start.local = local;
                          if (!within_until(r, start)) return false;
                          const int64_t rid = to_utc_ms(start);
                          if (rid > stop_ms) return false;
                          if (seen.count(rid)) return true;
                          if (m.rrules.size() > 1) seen.insert(rid);
                          if (!emit(start, nullptr)) {
                            stopped = true;
                            return false;
                          }
                          return true;
                        }));
    (void)exhausted;
    if (stopped) return false;
  }
  return true;
}

// [range_start, range_end] for CalendarObjectInfo: every occurrence, with open recurrences
// (no COUNT/UNTIL, or more than we walk) reaching kTimeMax.
Status object_bounds(const CalendarObject& obj, int64_t* lo, int64_t* hi) {
  *lo = kTimeMax;
  *hi = kTimeMin;
  auto add = [&](const Occurrence& o) {
    *lo = std::min(*lo, o.start_inclusive ? sat_add(o.start, -1) : o.start);
    *hi = std::max(*hi, o.end);
  };
  if (obj.kind == Kind::kFreeBusy) {
    std::vector<const Timing*> all;
    if (obj.master) all.push_back(&*obj.master);
    for (const Timing& o : obj.overrides) all.push_back(&o);
    for (const Timing* t : all) {
      for (const FreeBusyPeriod& p : t->freebusy) add(Occurrence{p.start, p.end, false, false});
      if (t->freebusy.empty() && t->dtstart && t->dtend) {
        add(Occurrence{to_utc_ms(*t->dtstart), to_utc_ms(*t->dtend), true, false});
      }
    }
  } else {
    // Overrides, DTSTART and RDATEs; RRULEs below.
    for (const Timing& o : obj.overrides) {
      if (auto occ = occurrence_of(o, o.dtstart)) add(*occ);
    }
    if (obj.master) {
      const Timing& m = *obj.master;
      if (auto occ = occurrence_of(m, m.dtstart)) add(*occ);
      for (const RDate& rd : m.rdates) {
        if (auto occ = occurrence_of(m, rd.start, &rd)) add(*occ);
      }
      for (const icalrecurrencetype& r : m.rrules) {
        const int64_t span_ms = span_upper_seconds(m.span()) * 1000;
        const bool open = r.count == 0 && icaltime_is_null_time(r.until);
        if (open || static_cast<size_t>(r.count) > kMaxRecurrenceInstances) {
          *hi = kTimeMax;
        } else if (r.count == 0) {
          // UNTIL: no instance starts after it (nor after its date's end, for a DATE).
          const int64_t until =
              (civil_seconds(r.until) + (r.until.is_date ? kSecondsPerDay : 0)) * 1000;
          const int64_t slack = icaltime_is_utc(r.until) ? 0 : kMaxZoneOffsetMs;
          *hi = std::max(*hi, sat_add(sat_add(until, slack), span_ms));
        } else {
          auto walked = expand_rrule(r, *m.dtstart, kTimeMin / 2,
                                     m.dtstart->local + kBoundsHorizonSeconds, [&](int64_t local) {
                                       Moment start = *m.dtstart;
                                       start.local = local;
                                       if (auto occ = occurrence_of(m, start)) add(*occ);
                                       return true;
                                     });
          if (!walked.is_ok() || !*walked) *hi = kTimeMax;
        }
      }
    }
  }
  if (*lo > *hi) return Status::ok();  // nothing can overlap: kTimeMax..kTimeMin
  if (obj.zones->used_floating()) {
    *lo = sat_add(*lo, -kMaxZoneOffsetMs);
    *hi = sat_add(*hi, kMaxZoneOffsetMs);
  }
  return Status::ok();
}

// Collects the occurrences overlapping `range` (at most kMaxRecurrenceInstances).
Result<std::vector<Found>> overlapping(const CalendarObject& obj, const TimeRange& range) {
  std::vector<Found> out;
  bool too_many = false;
  auto visit = [&](const Found& f) {
    if (!f.occ.overlaps(range)) return true;
    if (out.size() >= kMaxRecurrenceInstances) {
      too_many = true;
      return false;
    }
    out.push_back(f);
    return true;
  };
  if (obj.kind == Kind::kFreeBusy) {
    std::vector<const Timing*> all;
    if (obj.master) all.push_back(&*obj.master);
    for (const Timing& o : obj.overrides) all.push_back(&o);
    for (const Timing* t : all) {
      for (const FreeBusyPeriod& p : t->freebusy) {
        visit(Found{Occurrence{p.start, p.end, false, false}, t, std::nullopt});
      }
      if (t->freebusy.empty() && t->dtstart && t->dtend) {
        visit(Found{Occurrence{to_utc_ms(*t->dtstart), to_utc_ms(*t->dtend), true, false}, t,
                    std::nullopt});
      }
    }
  } else {
    MK_ASSIGN_OR_RETURN(bool finished, walk(obj, range, visit));
    (void)finished;
  }
  if (too_many)
    return too_large("more than " + std::to_string(kMaxRecurrenceInstances) +
                     " instances in the range");
  return out;
}

std::string format_fields(int64_t y, int m, int d, int64_t tod) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02dZ", static_cast<int>(y), m, d,
                static_cast<int>(tod / 3600), static_cast<int>(tod / 60 % 60),
                static_cast<int>(tod % 60));
  return buf;
}

// ---- vCard structure

struct Card {
  size_t begin = 0;
  size_t end = 0;
  std::vector<ContentLine> lines;  // without BEGIN/END (only when parsed strictly)
};

// Groups a .vcf into cards. `strict` also requires every line inside a card to be a UTF-8
// content line and keeps the parsed lines.
Result<std::vector<Card>> scan_vcards(std::string_view vcf, bool strict) {
  if (vcf.find('\0') != std::string_view::npos) return invalid("NUL byte in vCard text");
  std::vector<Card> cards;
  LineReader reader(vcf);
  LogicalLine line;
  bool in_card = false;
  while (reader.next(&line)) {
    if (trim(line.text).empty()) continue;
    if (strict && !is_valid_utf8(line.text)) return invalid("not UTF-8" + line_ref(line.number));
    std::optional<ContentLine> cl = parse_content_line(line.text);
    const bool begin = cl && cl->name == "BEGIN";
    const bool end = cl && cl->name == "END";
    if (!in_card) {
      if (!begin || !iequals(trim(cl->value), "VCARD")) {
        return invalid("text outside BEGIN:VCARD..END:VCARD" + line_ref(line.number));
      }
      in_card = true;
      cards.emplace_back();
      cards.back().begin = line.begin;
      continue;
    }
    if (begin) {
      return invalid((iequals(trim(cl->value), "VCARD") ? std::string("nested BEGIN:VCARD")
                                                        : "BEGIN:" + cl->value + " in a vCard") +
                     line_ref(line.number));
    }
    if (end) {
      if (!iequals(trim(cl->value), "VCARD")) {
        return invalid("END:" + cl->value + " in a vCard" + line_ref(line.number));
      }
      in_card = false;
      cards.back().end = line.end;
      continue;
    }
    if (strict) {
      if (!cl) return invalid("malformed vCard line" + line_ref(line.number));
      cards.back().lines.push_back(std::move(*cl));
    }
  }
  if (in_card) return invalid("BEGIN:VCARD without END:VCARD");
  return cards;
}

}  // namespace

// ---- public: iCalendar

Result<CalendarObjectInfo> parse_calendar_object(std::string_view ics) {
  MK_ASSIGN_OR_RETURN(CalendarObject obj, load_calendar_object(ics, "UTC"));
  CalendarObjectInfo info;
  info.component = obj.component;
  info.uid = obj.uid;
  info.recurring = obj.recurring();
  if (obj.master) {
    info.summary = obj.master->summary;
  } else if (!obj.overrides.empty()) {
    info.summary = obj.overrides.front().summary;
  }
  MK_RETURN_IF_ERROR(object_bounds(obj, &info.range_start, &info.range_end));
  return info;
}

Result<bool> overlaps(std::string_view ics, const TimeRange& range,
                      const std::string& floating_tz) {
  MK_ASSIGN_OR_RETURN(CalendarObject obj, load_calendar_object(ics, floating_tz));
  if (obj.kind == Kind::kFreeBusy) {
    MK_ASSIGN_OR_RETURN(std::vector<Found> found, overlapping(obj, range));
    return !found.empty();
  }
  bool hit = false;
  MK_ASSIGN_OR_RETURN(bool finished, walk(obj, range, [&](const Found& f) {
                        if (!f.occ.overlaps(range)) return true;
                        hit = true;
                        return false;
                      }));
  (void)finished;
  return hit;
}

Result<std::vector<Instance>> instances(std::string_view ics, const TimeRange& range,
                                        const std::string& floating_tz) {
  MK_ASSIGN_OR_RETURN(CalendarObject obj, load_calendar_object(ics, floating_tz));
  MK_ASSIGN_OR_RETURN(std::vector<Found> found, overlapping(obj, range));
  std::vector<Instance> out;
  out.reserve(found.size());
  for (const Found& f : found) {
    Instance i;
    i.start = f.occ.start;
    i.end = f.occ.end;
    i.recurrence_id = f.recurrence_id_text();
    i.transparent = f.from->transparent;
    i.status = f.from->status;
    out.push_back(std::move(i));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Instance& a, const Instance& b) { return a.start < b.start; });
  return out;
}

Result<std::vector<BusyInterval>> busy_intervals(std::string_view ics, const TimeRange& range,
                                                 const std::string& floating_tz) {
  MK_ASSIGN_OR_RETURN(CalendarObject obj, load_calendar_object(ics, floating_tz));
  std::vector<BusyInterval> out;
  auto add = [&](int64_t s, int64_t e, std::string fbtype) {
    s = std::max(s, range.start);
    e = std::min(e, range.end);
    if (e > s) out.push_back(BusyInterval{s, e, std::move(fbtype)});
  };
  if (obj.kind == Kind::kFreeBusy) {
    std::vector<const Timing*> all;
    if (obj.master) all.push_back(&*obj.master);
    for (const Timing& o : obj.overrides) all.push_back(&o);
    for (const Timing* t : all) {
      for (const FreeBusyPeriod& p : t->freebusy) {
        if (p.fbtype != "FREE") add(p.start, p.end, p.fbtype);
      }
    }
  } else if (obj.kind == Kind::kEvent) {
    MK_ASSIGN_OR_RETURN(std::vector<Found> found, overlapping(obj, range));
    for (const Found& f : found) {
      if (f.from->transparent || f.from->status == "CANCELLED") continue;
      add(f.occ.start, f.occ.end, f.from->status == "TENTATIVE" ? "BUSY-TENTATIVE" : "BUSY");
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const BusyInterval& a, const BusyInterval& b) { return a.start < b.start; });
  return out;
}

Result<std::vector<std::string>> split_calendar(std::string_view ics) {
  MK_ASSIGN_OR_RETURN(ComponentPtr root, parse_ical(ics, /*many=*/true));
  std::vector<icalcomponent*> calendars;
  if (icalcomponent_isa(root.get()) == ICAL_XROOT_COMPONENT) {
    calendars = children(root.get(), ICAL_VCALENDAR_COMPONENT);
  } else {
    calendars.push_back(root.get());
  }
  std::string prodid;
  icalproperty* calscale = nullptr;
  struct Group {
    std::string uid;
    std::vector<std::pair<icalcomponent*, icalcomponent*>> comps;  // component, its VCALENDAR
  };
  std::vector<Group> groups;
  std::unordered_map<std::string, size_t> by_uid;
  for (icalcomponent* cal : calendars) {
    if (icalproperty* p = first_property(cal, ICAL_PRODID_PROPERTY); p && prodid.empty()) {
      if (const char* s = icalproperty_get_prodid(p)) prodid = s;
    }
    if (calscale == nullptr) calscale = first_property(cal, ICAL_CALSCALE_PROPERTY);
    for (icalcomponent* c : children(cal, ICAL_ANY_COMPONENT)) {
      if (!kind_of(icalcomponent_isa(c))) continue;
      const char* uid = icalcomponent_get_uid(c);
      if (uid == nullptr || trim(uid).empty()) {
        return invalid("a " + kind_name(icalcomponent_isa(c)) + " without UID");
      }
      auto [it, added] = by_uid.emplace(uid, groups.size());
      if (added) groups.push_back(Group{uid, {}});
      groups[it->second].comps.emplace_back(c, cal);
    }
  }
  if (groups.empty()) return invalid("no VEVENT, VTODO, VJOURNAL or VFREEBUSY");

  std::vector<std::string> out;
  for (Group& g : groups) {
    ComponentPtr cal(icalcomponent_new(ICAL_VCALENDAR_COMPONENT));
    icalcomponent_add_property(cal.get(), icalproperty_new_version("2.0"));
    icalcomponent_add_property(
        cal.get(), icalproperty_new_prodid(prodid.empty() ? kDefaultProdid : prodid.c_str()));
    if (calscale != nullptr)
      icalcomponent_add_property(cal.get(), icalproperty_new_clone(calscale));
    std::stable_partition(g.comps.begin(), g.comps.end(), [](const auto& entry) {
      return first_property(entry.first, ICAL_RECURRENCEID_PROPERTY) == nullptr;
    });
    // TZIDs used anywhere in the components (alarms included), in first-use order.
    std::vector<std::pair<std::string, icalcomponent*>> tzids;
    std::function<void(icalcomponent*, icalcomponent*)> collect = [&](icalcomponent* c,
                                                                      icalcomponent* source) {
      for (icalproperty* p : properties(c, ICAL_ANY_PROPERTY)) {
        icalparameter* tz = icalproperty_get_first_parameter(p, ICAL_TZID_PARAMETER);
        if (tz == nullptr || icalparameter_get_tzid(tz) == nullptr) continue;
        const std::string tzid = icalparameter_get_tzid(tz);
        if (std::none_of(tzids.begin(), tzids.end(),
                         [&](const auto& e) { return e.first == tzid; })) {
          tzids.emplace_back(tzid, source);
        }
      }
      for (icalcomponent* child : children(c, ICAL_ANY_COMPONENT)) collect(child, source);
    };
    for (const auto& [c, source] : g.comps) collect(c, source);
    for (const auto& [tzid, source] : tzids) {
      // The VTIMEZONE from the component's own VCALENDAR, else from any of them.
      icalcomponent* found = nullptr;
      std::vector<icalcomponent*> order{source};
      order.insert(order.end(), calendars.begin(), calendars.end());
      for (icalcomponent* from : order) {
        for (icalcomponent* vtz : children(from, ICAL_VTIMEZONE_COMPONENT)) {
          icalproperty* p = first_property(vtz, ICAL_TZID_PROPERTY);
          const char* id = p ? icalproperty_get_tzid(p) : nullptr;
          if (id != nullptr && tzid == id) {
            found = vtz;
            break;
          }
        }
        if (found) break;
      }
      if (found) icalcomponent_add_component(cal.get(), icalcomponent_new_clone(found));
    }
    for (const auto& entry : g.comps) {
      icalcomponent_add_component(cal.get(), icalcomponent_new_clone(entry.first));
    }
    BufferPtr text(icalcomponent_as_ical_string_r(cal.get()));
    if (!text) return invalid("cannot serialize calendar object " + g.uid);
    out.emplace_back(text.get());
  }
  return out;
}

std::string format_utc(int64_t ms) {
  static const int64_t kMinMs = days_from_civil(0, 1, 1) * kMsPerDay;
  static const int64_t kMaxMs = days_from_civil(10000, 1, 1) * kMsPerDay - 1000;
  ms = std::clamp(ms, kMinMs, kMaxMs);
  const int64_t secs = floor_div(ms, 1000);
  const int64_t days = floor_div(secs, kSecondsPerDay);
  int64_t y = 0;
  int m = 0;
  int d = 0;
  civil_from_days(days, &y, &m, &d);
  return format_fields(y, m, d, secs - days * kSecondsPerDay);
}

Result<int64_t> parse_utc(std::string_view text) {
  if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z') {
    return invalid("time must be YYYYMMDDTHHMMSSZ");
  }
  int64_t f[6] = {};
  const size_t pos[6] = {0, 4, 6, 9, 11, 13};
  const size_t len[6] = {4, 2, 2, 2, 2, 2};
  for (int i = 0; i < 6; ++i) {
    for (size_t k = 0; k < len[i]; ++k) {
      const char c = text[pos[i] + k];
      if (c < '0' || c > '9') return invalid("time must be YYYYMMDDTHHMMSSZ");
      f[i] = f[i] * 10 + (c - '0');
    }
  }
  if (f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > days_in_month(f[0], static_cast<int>(f[1])) ||
      f[3] > 23 || f[4] > 59 || f[5] > 60) {
    return invalid("time out of range");
  }
  const int64_t days = days_from_civil(f[0], static_cast<int>(f[1]), static_cast<int>(f[2]));
  return (days * kSecondsPerDay + f[3] * 3600 + f[4] * 60 + f[5]) * 1000;
}

// ---- public: vCard

Result<ContactInfo> parse_vcard(std::string_view vcf) {
  MK_ASSIGN_OR_RETURN(std::vector<Card> cards, scan_vcards(vcf, /*strict=*/true));
  if (cards.empty()) return invalid("no BEGIN:VCARD");
  if (cards.size() > 1) return invalid("more than one vCard");
  const Card& card = cards.front();
  ContactInfo info;
  int versions = 0;
  int uids = 0;
  bool has_fn = false;
  const ContentLine* n = nullptr;
  for (const ContentLine& l : card.lines) {
    if (l.name == "VERSION") {
      ++versions;
      info.version = std::string(trim(l.value));
    } else if (l.name == "FN") {
      if (!has_fn) info.fn = unescape_text(l.value);
      has_fn = true;
    } else if (l.name == "N") {
      if (n == nullptr) n = &l;
    } else if (l.name == "UID") {
      ++uids;
      info.uid = unescape_text(trim(l.value));
    } else if (l.name == "EMAIL") {
      info.emails.push_back(unescape_text(trim(l.value)));
    } else if (l.name == "TEL") {
      info.tels.push_back(unescape_text(trim(l.value)));
    } else if (l.name == "KIND" || l.name == "X-ADDRESSBOOKSERVER-KIND") {
      if (info.kind.empty()) info.kind = to_lower(trim(unescape_text(l.value)));
    }
  }
  if (versions == 0) return invalid("VERSION missing");
  if (versions > 1) return invalid("more than one VERSION");
  if (info.version != "3.0" && info.version != "4.0") {
    return invalid("unsupported vCard version " + info.version);
  }
  if (uids > 1) return invalid("two UIDs in one vCard");
  if (!has_fn) {
    if (info.version == "4.0") return invalid("FN missing");
    if (n == nullptr) return invalid("FN and N missing");
    // RFC 2426 N: family; given; additional; prefixes; suffixes.
    const std::vector<std::string> parts = split_structured(n->value);
    for (size_t i : {3, 1, 2, 0, 4}) {
      if (i >= parts.size()) continue;
      const std::string_view part = trim(parts[i]);
      if (part.empty()) continue;
      if (!info.fn.empty()) info.fn += ' ';
      info.fn += part;
    }
  }
  return info;
}

std::vector<std::string> vcard_values(std::string_view vcf, std::string_view property) {
  std::string_view group;
  std::string_view name = property;
  if (const size_t dot = property.rfind('.'); dot != std::string_view::npos) {
    group = property.substr(0, dot);
    name = property.substr(dot + 1);
  }
  std::vector<std::string> out;
  LineReader reader(vcf);
  LogicalLine line;
  while (reader.next(&line)) {
    const std::optional<ContentLine> cl = parse_content_line(line.text);
    if (!cl || !iequals(cl->name, name)) continue;
    if (!group.empty() && !iequals(cl->group, group)) continue;
    out.push_back(unescape_text(cl->value));
  }
  return out;
}

Result<std::vector<std::string>> split_vcards(std::string_view vcf) {
  MK_ASSIGN_OR_RETURN(std::vector<Card> cards, scan_vcards(vcf, /*strict=*/false));
  if (cards.empty()) return invalid("no BEGIN:VCARD");
  std::vector<std::string> out;
  out.reserve(cards.size());
  for (const Card& c : cards) {
    std::string text(vcf.substr(c.begin, c.end - c.begin));
    if (text.empty() || text.back() != '\n') text += "\r\n";
    out.push_back(std::move(text));
  }
  return out;
}

}  // namespace mailark
