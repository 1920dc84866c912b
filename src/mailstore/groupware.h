// Calendar (iCalendar, RFC 5545) and contact (vCard 3.0/4.0, RFC 2426/6350) objects: what the
// store checks and indexes when a CalDAV/CardDAV resource is PUT, and what the CalDAV layer
// asks of a stored object (time-range tests with recurrence expansion, free-busy). Pure: text
// in, values out, no I/O. iCalendar goes through libical 3.0 (pkg-config `libical`); vCard,
// which libical 3.0 does not read, through a small content-line parser of our own.
//
// Times are milliseconds since the Unix epoch, UTC. Every function may be called from many
// threads at once: each call parses its own copy, and the one piece of shared state, a cache
// of Olson time zones, is behind a mutex (see groupware.cc). No function throws or prints.
// Callers must not switch libical's errors to fatal (icalerror_set_errors_are_fatal).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace mailark {

inline constexpr int64_t kTimeMin = INT64_MIN;
inline constexpr int64_t kTimeMax = INT64_MAX;

// Recurrence expansion stops with kTooLarge past this many instances (CalDAV's max-instances
// precondition, RFC 4791 9.6.7); it also bounds the work a hostile RRULE can cause.
inline constexpr size_t kMaxRecurrenceInstances = 100000;

// ---- iCalendar

struct CalendarObjectInfo {
  std::string component;  // "VEVENT", "VTODO", "VJOURNAL" or "VFREEBUSY"
  std::string uid;        // the UID shared by every component in the object
  // Bounds for an SQL prefilter, never narrower than the truth (often wider: floating and
  // all-day times are widened by the largest zone offset). The object can overlap a query
  // range [a, b) only if range_start < b && range_end >= a. An object that no range can
  // match (a VJOURNAL without DTSTART) gets range_start = kTimeMax, range_end = kTimeMin.
  int64_t range_start = kTimeMin;
  int64_t range_end = kTimeMax;  // kTimeMax for unbounded (or very long) recurrence
  bool recurring = false;        // RRULE/RDATE on the master, or overrides present
  std::string summary;           // of the master component (else the first override)
};

// Validates a calendar object resource (RFC 4791 4.1 and 5.3.2, valid-calendar-data and
// valid-calendar-object-resource): UTF-8; one VCALENDAR with VERSION:2.0 (PRODID may be
// missing) and no METHOD; no libical parse error (X-LIC-ERROR); exactly one component type
// among VEVENT/VTODO/VJOURNAL/VFREEBUSY, beside any VTIMEZONEs and X- components; one
// non-empty UID shared by all; at most one master (no RECURRENCE-ID); no two overrides with
// one RECURRENCE-ID (overrides without a master are accepted); a VEVENT has DTSTART; no DTEND
// with DURATION (nor DUE with DURATION); an RRULE needs DTSTART and must be one we can expand;
// VTIMEZONE rules must be bounded yearly rules. Errors: kInvalid with a short reason.
Result<CalendarObjectInfo> parse_calendar_object(std::string_view ics);

struct TimeRange {
  int64_t start = kTimeMin;  // inclusive
  int64_t end = kTimeMax;    // exclusive
};

// How times are read, for overlaps()/instances()/busy_intervals():
//  - a TZID resolves to the object's VTIMEZONE of that TZID; failing that, to the Olson zone
//    of that name from the system tz database (also after a "/prefix/" such as libical's
//    "/freeassociation.sourceforge.net/"); failing that the time is treated as floating;
//  - floating times and DATE values are read in `floating_tz`: "" or "UTC", an Olson name,
//    or the text of a VCALENDAR/VTIMEZONE (CalDAV's calendar-timezone). kInvalid if unknown;
//  - recurrence: DTSTART is always the first instance, then RRULE(s) and RDATEs, less
//    EXDATEs; an override (RECURRENCE-ID, THISANDFUTURE treated as a plain override) replaces
//    the instance it names and stands on its own times;
//  - instance length and the overlap test follow RFC 4791 9.9 for VEVENT, VTODO, VJOURNAL and
//    VFREEBUSY (a zero-length VEVENT overlaps when start <= t < end);
//  - kTooLarge when more than kMaxRecurrenceInstances instances overlap the range (instances()
//    and busy_intervals()), or when reaching the range would take more than a bounded amount
//    of work (about kMaxRecurrenceInstances RRULE steps; a rule without COUNT jumps to the
//    range, one with COUNT must be walked from DTSTART). parse_calendar_object() never fails
//    for this: it leaves range_end at kTimeMax instead.
// The object is validated as by parse_calendar_object() first.

// RFC 4791 9.9: does any instance overlap the range? Stops at the first one that does.
Result<bool> overlaps(std::string_view ics, const TimeRange& range,
                      const std::string& floating_tz = "UTC");

struct Instance {
  int64_t start = 0;
  int64_t end = 0;  // == start for instants; kTimeMax for open-ended VTODOs
  // The instance's RECURRENCE-ID: "YYYYMMDDTHHMMSSZ" in UTC, or "YYYYMMDD" for all-day.
  // Empty when the object does not recur.
  std::string recurrence_id;
  bool transparent = false;  // TRANSP:TRANSPARENT on the component the instance comes from
  std::string status;        // its STATUS in upper case, or empty
};

// Every instance overlapping the range, sorted by start (same rules as overlaps()).
Result<std::vector<Instance>> instances(std::string_view ics, const TimeRange& range,
                                        const std::string& floating_tz = "UTC");

struct BusyInterval {
  int64_t start = 0;
  int64_t end = 0;
  std::string fbtype;  // "BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE" or an X- value
};

// Busy time for a free-busy query (RFC 4791 7.10), sorted by start: VEVENT instances that
// are not TRANSP:TRANSPARENT and not STATUS:CANCELLED, as BUSY (BUSY-TENTATIVE when
// STATUS:TENTATIVE), and VFREEBUSY FREEBUSY periods with their FBTYPE (FREE ones left out);
// all clipped to the range, empty ones dropped. VTODO and VJOURNAL give no busy time.
Result<std::vector<BusyInterval>> busy_intervals(std::string_view ics, const TimeRange& range,
                                                 const std::string& floating_tz = "UTC");

// Splits an .ics file (one or more VCALENDARs with many components, as other servers export
// them) into calendar object resources, one per UID in order of first appearance: each a
// VCALENDAR with VERSION, the source's PRODID (or ours) and CALSCALE, the components of that
// UID (master first) and the VTIMEZONEs they reference. METHOD and calendar-level X- properties
// are dropped. kInvalid when the file does not parse or a component has no UID; each result
// should still be checked with parse_calendar_object() (it may, e.g., mix VEVENT and VTODO).
Result<std::vector<std::string>> split_calendar(std::string_view ics);

// CalDAV time-range text: "YYYYMMDDTHHMMSSZ". format_utc() clamps to years 0000..9999 (so
// kTimeMin/kTimeMax format as 00000101T000000Z/99991231T235959Z); parse_utc() accepts only
// that exact form and returns kInvalid otherwise.
std::string format_utc(int64_t ms);
Result<int64_t> parse_utc(std::string_view text);

// ---- vCard

struct ContactInfo {
  std::string version;  // "3.0" or "4.0"
  std::string uid;      // may be empty when the card has none (the caller decides)
  std::string fn;       // FN; for a 3.0 card without FN, built from N ("Given Family")
  std::vector<std::string> emails, tels;  // unescaped values, in card order
  std::string kind;  // vCard 4 KIND (or 3.0 X-ADDRESSBOOKSERVER-KIND), lower case, or empty
};

// Validates a vCard (RFC 6352 valid-address-data): UTF-8; exactly one BEGIN:VCARD..END:VCARD
// and nothing else but blank lines; well-formed content lines (folded with CRLF or bare LF
// plus space/tab, groups such as "item1.EMAIL", quoted parameter values); exactly one VERSION,
// 3.0 or 4.0; FN present (a 3.0 card may have N instead); at most one UID. kInvalid with a
// reason otherwise.
Result<ContactInfo> parse_vcard(std::string_view vcf);

// The values of `property` (case-insensitive; any group prefix on the card ignored, unless
// `property` itself is "group.NAME") in every card of `vcf`, unescaped (\n \, \; \\) for
// addressbook-query text-match (RFC 6352 10.5.4). Malformed lines are skipped.
std::vector<std::string> vcard_values(std::string_view vcf, std::string_view property);

// Splits a .vcf holding many cards into the text of each card, unchanged (for `mailark
// contacts import`). Only the BEGIN/END structure is checked: kInvalid on an unterminated or
// nested card or text between cards; validate each card with parse_vcard().
Result<std::vector<std::string>> split_vcards(std::string_view vcf);

}  // namespace mailark
