// Query evaluation tables: collations and match types, calendar-query filters on real
// objects, expansion (overrides, exclusions, UTC output, the instance bound), and partial
// retrieval of calendar and address data.
#include "protocol/dav/dav_filter.h"

#include <gtest/gtest.h>

namespace mailark::dav {
namespace {

const char* kWeekly =
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
    "BEGIN:VEVENT\r\nUID:w\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260302T090000Z\r\n"
    "DURATION:PT1H\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE:20260316T090000Z\r\n"
    "SUMMARY:Weekly\\, sync\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:w\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260309T090000Z\r\n"
    "DTSTART:20260310T140000Z\r\nDURATION:PT1H\r\nSUMMARY:Moved\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n";

TEST(TextMatch, CollationsAndMatchTypes) {
  struct Case {
    const char* value;
    const char* text;
    const char* collation;
    const char* type;
    bool negate;
    bool want;
  };
  const Case cases[] = {
      {"Weekly Sync", "sync", "i;ascii-casemap", "contains", false, true},
      {"Weekly Sync", "sync", "i;octet", "contains", false, false},
      {"Weekly Sync", "weekly sync", "", "equals", false, true},
      {"Weekly Sync", "week", "i;ascii-casemap", "starts-with", false, true},
      {"Weekly Sync", "week", "i;ascii-casemap", "ends-with", false, false},
      {"Weekly Sync", "SYNC", "i;ascii-casemap", "ends-with", false, true},
      {"Weekly Sync", "sync", "i;ascii-casemap", "contains", true, false},
      {"Straße", "STRASSE", "i;unicode-casemap", "equals", false, true},
      {"Ärger", "ärg", "i;unicode-casemap", "starts-with", false, true},
      {"Ärger", "ärg", "i;ascii-casemap", "starts-with", false, false},
  };
  for (const auto& c : cases) {
    TextMatch m{c.text, c.collation, c.type, c.negate};
    EXPECT_EQ(text_matches(c.value, m), c.want)
        << c.value << " / " << c.text << " " << c.collation << " " << c.type;
  }
  EXPECT_TRUE(supported_collation("i;octet"));
  EXPECT_FALSE(supported_collation("i;basic"));
}

CompFilter vevent(std::optional<TimeRangeText> range, std::vector<PropFilter> props = {}) {
  CompFilter ev;
  ev.name = "VEVENT";
  ev.time_range = std::move(range);
  ev.props = std::move(props);
  CompFilter cal;
  cal.name = "VCALENDAR";
  cal.comps.push_back(std::move(ev));
  return cal;
}

TEST(CalendarMatches, FiltersOnARecurringObject) {
  struct Case {
    const char* what;
    CompFilter filter;
    bool want;
  };
  PropFilter summary{"SUMMARY", false, std::nullopt, TextMatch{"moved", "", "contains", false}, {}};
  PropFilter no_location{"LOCATION", true, std::nullopt, std::nullopt, {}};
  PropFilter has_attendee{"ATTENDEE", false, std::nullopt, std::nullopt, {}};
  const Case cases[] = {
      {"first instance", vevent(TimeRangeText{"20260302T000000Z", "20260303T000000Z"}), true},
      {"moved away (9 Mar)", vevent(TimeRangeText{"20260309T000000Z", "20260310T000000Z"}), false},
      {"moved to (10 Mar)", vevent(TimeRangeText{"20260310T000000Z", "20260311T000000Z"}), true},
      {"excluded (16 Mar)", vevent(TimeRangeText{"20260316T000000Z", "20260317T000000Z"}), false},
      {"after COUNT", vevent(TimeRangeText{"20260330T000000Z", "20260331T000000Z"}), false},
      {"open end", vevent(TimeRangeText{"20260323T000000Z", ""}), true},
      {"an override's SUMMARY", vevent(std::nullopt, {summary}), true},
      {"no LOCATION anywhere", vevent(std::nullopt, {no_location}), true},
      {"no ATTENDEE", vevent(std::nullopt, {has_attendee}), false},
  };
  for (const auto& c : cases) {
    auto r = calendar_matches(kWeekly, c.filter);
    ASSERT_TRUE(r.is_ok()) << c.what << ": " << r.status().to_string();
    EXPECT_EQ(*r, c.want) << c.what;
  }
  CompFilter wrong;
  wrong.name = "VEVENT";
  EXPECT_EQ(calendar_matches(kWeekly, wrong).status().code(), ErrorCode::kInvalid);
  EXPECT_EQ(filter_range(vevent(TimeRangeText{"20260302T000000Z", "20260303T000000Z"}))->start,
            parse_utc("20260302T000000Z").value());
}

TEST(ExpandCalendar, InstancesInUtcWithOverridesAndExclusions) {
  auto out =
      expand_calendar(kWeekly, parse_time_range({"20260301T000000Z", "20260401T000000Z"}).value());
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  const std::string& s = *out;
  EXPECT_EQ(s.find("RRULE"), std::string::npos);
  EXPECT_EQ(s.find("EXDATE"), std::string::npos);
  EXPECT_NE(s.find("DTSTART:20260302T090000Z"), std::string::npos);
  EXPECT_NE(s.find("RECURRENCE-ID:20260302T090000Z"), std::string::npos);
  EXPECT_NE(s.find("DTSTART:20260310T140000Z"), std::string::npos);  // the override
  EXPECT_EQ(s.find("DTSTART:20260309T090000Z"), std::string::npos);  // replaced
  EXPECT_EQ(s.find("DTSTART:20260316T090000Z"), std::string::npos);  // excluded
  EXPECT_NE(s.find("DTSTART:20260323T090000Z"), std::string::npos);
  EXPECT_NE(s.find("SUMMARY:Weekly\\, sync"), std::string::npos);  // escaped once
  size_t events = 0;
  for (size_t p = s.find("BEGIN:VEVENT"); p != std::string::npos; p = s.find("BEGIN:VEVENT", p + 1))
    ++events;
  EXPECT_EQ(events, 3u);
  // A rule with more instances than a response may hold is refused, not expanded.
  std::string hostile =
      "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:s\r\nDTSTAMP:20260101T000000Z\r\n"
      "DTSTART:20260101T000000Z\r\nRRULE:FREQ=SECONDLY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
  auto big =
      expand_calendar(hostile, parse_time_range({"20260101T000000Z", "20260102T000000Z"}).value());
  EXPECT_EQ(big.status().code(), ErrorCode::kTooLarge);
}

TEST(PartialRetrieval, CalendarCompsAndCardProps) {
  CalendarComp cal{"VCALENDAR", false, false, {"VERSION"}, {}};
  cal.comps.push_back(CalendarComp{"VEVENT", false, false, {"SUMMARY", "UID"}, {}});
  auto selected = select_calendar_data(kWeekly, cal);
  ASSERT_TRUE(selected.is_ok());
  EXPECT_EQ(selected->find("PRODID"), std::string::npos);
  EXPECT_EQ(selected->find("DTSTART"), std::string::npos);
  EXPECT_NE(selected->find("SUMMARY:Moved"), std::string::npos);
  EXPECT_NE(selected->find("VERSION:2.0"), std::string::npos);
  std::string card =
      "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:Bob\r\nitem1.EMAIL:bob@x.test\r\n"
      "TEL:+49 30\r\n 1234\r\nNOTE:long\r\n  folded\r\nEND:VCARD\r\n";
  EXPECT_EQ(select_address_data(card, {"EMAIL"}),
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nitem1.EMAIL:bob@x.test\r\nEND:VCARD\r\n");
  EXPECT_EQ(select_address_data(card, {"tel"}),
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nTEL:+49 301234\r\nEND:VCARD\r\n");
}

TEST(CardMatches, AnyOfAndAllOf) {
  std::string card =
      "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:Bob Builder\r\nEMAIL:bob@builder.test\r\n"
      "END:VCARD\r\n";
  AddressbookQuery q;
  CardPropFilter fn{"FN",
                    FilterTest::kAnyOf,
                    false,
                    {TextMatch{"bob", "i;unicode-casemap", "starts-with", false}},
                    {}};
  CardPropFilter tel{"TEL", FilterTest::kAnyOf, false, {}, {}};
  CardPropFilter no_tel{"TEL", FilterTest::kAnyOf, true, {}, {}};
  q.filters = {fn, tel};
  q.test = FilterTest::kAnyOf;
  EXPECT_TRUE(card_matches(card, q));
  q.test = FilterTest::kAllOf;
  EXPECT_FALSE(card_matches(card, q));
  q.filters = {fn, no_tel};
  EXPECT_TRUE(card_matches(card, q));
  q.filters = {};
  EXPECT_TRUE(card_matches(card, q));
}

}  // namespace
}  // namespace mailark::dav
