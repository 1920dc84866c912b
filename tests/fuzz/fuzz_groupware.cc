// Fuzz target for the iCalendar/vCard intake path (what a CalDAV/CardDAV PUT and an import
// run on untrusted bytes): validation, splitting, recurrence expansion over a bounded range,
// busy time and vCard property lookup. No crash, no unbounded work, and the invariants the
// store relies on: an object that validates has a UID, and every instance in a query range
// lies inside the object's stored range (the SQL prefilter must never drop a match).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailstore/groupware.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailark;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto info = parse_calendar_object(in);
  if (info.is_ok()) {
    if (info->uid.empty()) std::abort();
    // 2026 and a decade around it: wide enough to expand, bounded by the module's budget.
    TimeRange year{1767225600000, 1798761600000};
    auto list = instances(in, year);
    if (list.is_ok())
      for (const auto& i : *list)
        if (!(info->range_start < year.end && info->range_end >= year.start) ||
            i.start > info->range_end || (i.end < info->range_start && i.end != i.start))
          std::abort();
    (void)overlaps(in, year);
    (void)busy_intervals(in, year);
  }
  (void)split_calendar(in);
  if (auto card = parse_vcard(in); card.is_ok()) (void)vcard_values(in, "EMAIL");
  (void)vcard_values(in, "FN");
  (void)split_vcards(in);
  return 0;
}
