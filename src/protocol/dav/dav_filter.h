// CalDAV and CardDAV query evaluation, pure: does a stored object match a calendar-query
// filter (RFC 4791 9.7) or an addressbook-query filter (RFC 6352 10.5), and the text-match
// collations both use. Recurrences are expanded through mailstore/groupware.h (libical).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "mailstore/groupware.h"
#include "protocol/dav/dav_xml.h"

namespace mailark::dav {

// Collations the server supports (RFC 4790): i;ascii-casemap, i;octet, i;unicode-casemap.
bool supported_collation(std::string_view collation);

// RFC 4790 / RFC 5051 matching of `value` against a text-match (negate-condition applied).
bool text_matches(std::string_view value, const TextMatch& match);

// A CALDAV:time-range from its attributes: kInvalid for text that is not a UTC date-time, or
// for a start not before the end. A missing start or end is open.
Result<TimeRange> parse_time_range(const TimeRangeText& text);

// The time range a calendar-query filter restricts its main component to (the first
// time-range under VCALENDAR's child comp-filter), for the store's prefilter.
std::optional<TimeRange> filter_range(const CompFilter& vcalendar);

// True when the calendar object matches the filter, whose root must be the VCALENDAR
// comp-filter. kInvalid for a time-range that does not parse (the valid-filter precondition)
// or an unsupported collation (supported-collation); kInvalid also for an object that does
// not parse (stored objects always do).
// Floating times are evaluated in `floating_tz` (an Olson name or a VCALENDAR with one
// VTIMEZONE: the query's CALDAV:timezone or the calendar's calendar-timezone).
Result<bool> calendar_matches(std::string_view ics, const CompFilter& vcalendar,
                              const std::string& floating_tz = "UTC");

// True when the vCard matches the query's filters (none: every card).
bool card_matches(std::string_view vcf, const AddressbookQuery& query);

// The object with its recurrences expanded into the instances overlapping `range` (RFC 4791
// 9.6.5): one component per instance without RRULE/RDATE/EXDATE, with RECURRENCE-ID, and
// every date-time in UTC. A non-recurring object is returned with its times in UTC.
// Expansion stops at kMaxExpandedInstances (kTooLarge), well below what libical's own
// iterator could be made to produce by a hostile rule.
inline constexpr size_t kMaxExpandedInstances = 10000;
Result<std::string> expand_calendar(std::string_view ics, const TimeRange& range,
                                    const std::string& floating_tz = "UTC");

// Partial retrieval (RFC 4791 9.6.1): the object with only the components and properties
// `comp` names (starting with VCALENDAR).
Result<std::string> select_calendar_data(std::string_view ics, const CalendarComp& comp);

// Partial retrieval (RFC 6352 10.4.2): the card with only the named properties (BEGIN, END,
// VERSION and UID are always kept). Lines are returned unfolded.
std::string select_address_data(std::string_view vcf, const std::vector<std::string>& props);

}  // namespace mailark::dav
