// Query evaluation for CalDAV and CardDAV on libical's component tree, the collations of
// RFC 4790 (unicode-casemap through GLib's case folding after NFKD), and recurrence
// expansion for CALDAV:expand.
#include "protocol/dav/dav_filter.h"

#include <glib.h>
#include <libical/ical.h>
#include <strings.h>

#include <cstdio>
#include <map>
#include <memory>

namespace mailark::dav {

namespace {

struct ComponentFree {
  void operator()(icalcomponent* c) const { icalcomponent_free(c); }
};
using Component = std::unique_ptr<icalcomponent, ComponentFree>;

Result<Component> parse(std::string_view ics) {
  std::string text(ics);
  Component root(icalparser_parse_string(text.c_str()));
  if (!root) return invalid("the calendar object does not parse");
  return root;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string unicode_fold(std::string_view s) {
  if (!g_utf8_validate(s.data(), static_cast<gssize>(s.size()), nullptr)) return ascii_lower(s);
  gchar* normalized = g_utf8_normalize(s.data(), static_cast<gssize>(s.size()), G_NORMALIZE_NFKD);
  if (!normalized) return ascii_lower(s);
  gchar* folded = g_utf8_casefold(normalized, -1);
  std::string out = folded ? folded : "";
  g_free(folded);
  g_free(normalized);
  return out;
}

std::string property_text(icalproperty* p) {
  icalvalue* v = icalproperty_get_value(p);
  if (v && icalvalue_isa(v) == ICAL_TEXT_VALUE) {
    const char* t = icalvalue_get_text(v);
    return t ? t : "";
  }
  const char* s = icalproperty_get_value_as_string(p);
  return s ? s : "";
}

std::string property_name(icalproperty* p) {
  const char* n = icalproperty_get_property_name(p);
  return n ? n : "";
}

std::string parameter_name(icalparameter* par) {
  if (icalparameter_isa(par) == ICAL_X_PARAMETER) {
    const char* x = icalparameter_get_xname(par);
    return x ? x : "";
  }
  const char* n = icalparameter_kind_to_string(icalparameter_isa(par));
  return n ? n : "";
}

std::string parameter_value(icalparameter* par) {
  const char* text = icalparameter_as_ical_string(par);
  std::string s = text ? text : "";
  size_t eq = s.find('=');
  std::string v = eq == std::string::npos ? s : s.substr(eq + 1);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

int64_t to_ms(icaltimetype t) {
  const icaltimezone* zone = t.zone ? t.zone : icaltimezone_get_utc_timezone();
  return static_cast<int64_t>(icaltime_as_timet_with_zone(t, zone)) * 1000;
}

bool param_matches(icalproperty* p, const ParamFilter& f) {
  for (icalparameter* par = icalproperty_get_first_parameter(p, ICAL_ANY_PARAMETER); par;
       par = icalproperty_get_next_parameter(p, ICAL_ANY_PARAMETER)) {
    if (strcasecmp(parameter_name(par).c_str(), f.name.c_str()) != 0) continue;
    if (f.is_not_defined) return false;
    return !f.text_match || text_matches(parameter_value(par), *f.text_match);
  }
  return f.is_not_defined;
}

Result<bool> prop_matches(icalcomponent* comp, const PropFilter& f) {
  bool any_present = false;
  for (icalproperty* p = icalcomponent_get_first_property(comp, ICAL_ANY_PROPERTY); p;
       p = icalcomponent_get_next_property(comp, ICAL_ANY_PROPERTY)) {
    if (strcasecmp(property_name(p).c_str(), f.name.c_str()) != 0) continue;
    any_present = true;
    if (f.is_not_defined) return false;
    bool ok = true;
    if (f.time_range) {
      MK_ASSIGN_OR_RETURN(TimeRange range, parse_time_range(*f.time_range));
      icalvalue* v = icalproperty_get_value(p);
      icalvalue_kind k = v ? icalvalue_isa(v) : ICAL_NO_VALUE;
      if (k != ICAL_DATETIME_VALUE && k != ICAL_DATE_VALUE) {
        ok = false;
      } else {
        int64_t t = to_ms(icalvalue_get_datetime(v));
        ok = range.start <= t && t < range.end;
      }
    }
    if (ok && f.text_match) ok = text_matches(property_text(p), *f.text_match);
    for (const auto& param : f.params) ok = ok && param_matches(p, param);
    if (ok) return true;
  }
  return f.is_not_defined && !any_present;
}

Result<bool> comp_matches(icalcomponent* comp, const CompFilter& f, std::string_view ics,
                          const std::string& floating_tz) {
  if (f.time_range) {
    MK_ASSIGN_OR_RETURN(TimeRange range, parse_time_range(*f.time_range));
    icalcomponent_kind kind = icalcomponent_isa(comp);
    if (kind == ICAL_VEVENT_COMPONENT || kind == ICAL_VTODO_COMPONENT ||
        kind == ICAL_VJOURNAL_COMPONENT || kind == ICAL_VFREEBUSY_COMPONENT) {
      // The whole object (master and overrides, recurrences expanded) is what overlaps.
      MK_ASSIGN_OR_RETURN(bool overlap, overlaps(ics, range, floating_tz));
      if (!overlap) return false;
    }
    // VALARM and other components: their time-range is not evaluated (they match).
  }
  for (const auto& pf : f.props) {
    MK_ASSIGN_OR_RETURN(bool ok, prop_matches(comp, pf));
    if (!ok) return false;
  }
  for (const auto& cf : f.comps) {
    icalcomponent_kind kind = icalcomponent_string_to_kind(cf.name.c_str());
    bool any = false;
    for (icalcomponent* sub = icalcomponent_get_first_component(comp, ICAL_ANY_COMPONENT); sub;
         sub = icalcomponent_get_next_component(comp, ICAL_ANY_COMPONENT)) {
      bool named = kind != ICAL_NO_COMPONENT && kind != ICAL_X_COMPONENT
                       ? icalcomponent_isa(sub) == kind
                       : strcasecmp(icalcomponent_kind_to_string(icalcomponent_isa(sub)),
                                    cf.name.c_str()) == 0;
      if (!named) continue;
      if (cf.is_not_defined) return false;
      MK_ASSIGN_OR_RETURN(bool ok, comp_matches(sub, cf, ics, floating_tz));
      if (ok) {
        any = true;
        break;
      }
    }
    if (!any && !cf.is_not_defined) return false;
  }
  return true;
}

icalcomponent* calendar_of(icalcomponent* root) {
  if (icalcomponent_isa(root) == ICAL_VCALENDAR_COMPONENT) return root;
  return icalcomponent_get_first_component(root, ICAL_VCALENDAR_COMPONENT);
}

}  // namespace

bool supported_collation(std::string_view c) {
  return c.empty() || c == "i;ascii-casemap" || c == "i;octet" || c == "i;unicode-casemap";
}

bool text_matches(std::string_view value, const TextMatch& m) {
  std::string v, t;
  if (m.collation == "i;octet") {
    v = value;
    t = m.text;
  } else if (m.collation == "i;unicode-casemap") {
    v = unicode_fold(value);
    t = unicode_fold(m.text);
  } else {
    v = ascii_lower(value);
    t = ascii_lower(m.text);
  }
  bool hit = false;
  if (m.match_type == "equals")
    hit = v == t;
  else if (m.match_type == "starts-with")
    hit = v.compare(0, t.size(), t) == 0 && v.size() >= t.size();
  else if (m.match_type == "ends-with")
    hit = v.size() >= t.size() && v.compare(v.size() - t.size(), t.size(), t) == 0;
  else
    hit = v.find(t) != std::string::npos;
  return m.negate ? !hit : hit;
}

Result<TimeRange> parse_time_range(const TimeRangeText& text) {
  TimeRange r;
  if (!text.start.empty()) {
    MK_ASSIGN_OR_RETURN(r.start, parse_utc(text.start));
  }
  if (!text.end.empty()) {
    MK_ASSIGN_OR_RETURN(r.end, parse_utc(text.end));
  }
  if (r.start >= r.end) return invalid("time-range start is not before its end");
  return r;
}

std::optional<TimeRange> filter_range(const CompFilter& vcalendar) {
  for (const auto& c : vcalendar.comps) {
    if (c.is_not_defined || !c.time_range) continue;
    if (c.name != "VEVENT" && c.name != "VTODO" && c.name != "VJOURNAL") continue;
    auto r = parse_time_range(*c.time_range);
    if (r.is_ok()) return *r;
  }
  return std::nullopt;
}

Result<bool> calendar_matches(std::string_view ics, const CompFilter& vcalendar,
                              const std::string& floating_tz) {
  if (vcalendar.name != "VCALENDAR") return invalid("the filter must start with VCALENDAR");
  if (vcalendar.is_not_defined) return false;
  MK_ASSIGN_OR_RETURN(Component root, parse(ics));
  icalcomponent* cal = calendar_of(root.get());
  if (!cal) return invalid("no VCALENDAR");
  return comp_matches(cal, vcalendar, ics, floating_tz);
}

bool card_matches(std::string_view vcf, const AddressbookQuery& q) {
  if (q.filters.empty()) return true;
  bool all = q.test == FilterTest::kAllOf;
  for (const auto& f : q.filters) {
    std::vector<std::string> values = vcard_values(vcf, f.name);
    bool ok;
    if (f.is_not_defined) {
      ok = values.empty();
    } else if (values.empty()) {
      ok = false;
    } else if (f.text_matches.empty()) {
      ok = true;
    } else {
      bool each_all = f.test == FilterTest::kAllOf;
      ok = each_all;
      for (const auto& m : f.text_matches) {
        bool hit = false;
        for (const auto& v : values) hit = hit || text_matches(v, m);
        if (each_all && !hit) {
          ok = false;
          break;
        }
        if (!each_all && hit) {
          ok = true;
          break;
        }
      }
    }
    if (all && !ok) return false;
    if (!all && ok) return true;
  }
  return all;
}

namespace {

void set_utc(icalcomponent* comp, icalproperty_kind kind, int64_t ms, bool date) {
  icaltimetype t = icaltime_from_timet_with_zone(static_cast<time_t>(ms / 1000), date ? 1 : 0,
                                                 icaltimezone_get_utc_timezone());
  for (icalproperty* p = icalcomponent_get_first_property(comp, kind); p;
       p = icalcomponent_get_first_property(comp, kind)) {
    icalcomponent_remove_property(comp, p);
    icalproperty_free(p);
  }
  icalproperty* p = icalproperty_new(kind);
  icalproperty_set_value(p, date ? icalvalue_new_date(t) : icalvalue_new_datetime(t));
  icalcomponent_add_property(comp, p);
}

void remove_all(icalcomponent* comp, icalproperty_kind kind) {
  for (icalproperty* p = icalcomponent_get_first_property(comp, kind); p;
       p = icalcomponent_get_first_property(comp, kind)) {
    icalcomponent_remove_property(comp, p);
    icalproperty_free(p);
  }
}

// A date-time property in UTC ms, and whether it is a DATE.
std::optional<std::pair<int64_t, bool>> property_time(icalcomponent* comp, icalproperty_kind kind) {
  icalproperty* p = icalcomponent_get_first_property(comp, kind);
  if (!p) return std::nullopt;
  icaltimetype t = icalproperty_get_datetime_with_component(p, comp);
  return std::make_pair(to_ms(t), t.is_date != 0);
}

// RECURRENCE-ID as instances() spells it: "YYYYMMDD" for a date, else UTC date-time text.
std::string recurrence_key(icalcomponent* comp) {
  icalproperty* p = icalcomponent_get_first_property(comp, ICAL_RECURRENCEID_PROPERTY);
  if (!p) return {};
  icaltimetype t = icalproperty_get_datetime_with_component(p, comp);
  if (t.is_date) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04d%02d%02d", t.year, t.month, t.day);
    return buf;
  }
  return format_utc(to_ms(t));
}

// A copy of `c` with its own times in UTC (dates stay dates).
icalcomponent* utc_copy(icalcomponent* c) {
  icalcomponent* copy = icalcomponent_new_clone(c);
  for (icalproperty_kind k :
       {ICAL_DTSTART_PROPERTY, ICAL_DTEND_PROPERTY, ICAL_DUE_PROPERTY, ICAL_RECURRENCEID_PROPERTY})
    if (auto t = property_time(c, k)) set_utc(copy, k, t->first, t->second);
  return copy;
}

}  // namespace

Result<std::string> expand_calendar(std::string_view ics, const TimeRange& range,
                                    const std::string& floating_tz) {
  // The module's expansion is bounded (instances and work); a response is bounded further.
  MK_ASSIGN_OR_RETURN(std::vector<Instance> list, instances(ics, range, floating_tz));
  if (list.size() > kMaxExpandedInstances)
    return too_large(std::to_string(list.size()) + " instances in the expanded range");
  MK_ASSIGN_OR_RETURN(Component root, parse(ics));
  icalcomponent* cal = calendar_of(root.get());
  if (!cal) return invalid("no VCALENDAR");
  Component out(icalcomponent_new(ICAL_VCALENDAR_COMPONENT));
  for (icalproperty* p = icalcomponent_get_first_property(cal, ICAL_ANY_PROPERTY); p;
       p = icalcomponent_get_next_property(cal, ICAL_ANY_PROPERTY))
    icalcomponent_add_property(out.get(), icalproperty_new_clone(p));
  icalcomponent* master = nullptr;
  std::map<std::string, icalcomponent*> overrides;
  for (icalcomponent* c = icalcomponent_get_first_component(cal, ICAL_ANY_COMPONENT); c;
       c = icalcomponent_get_next_component(cal, ICAL_ANY_COMPONENT)) {
    icalcomponent_kind k = icalcomponent_isa(c);
    if (k != ICAL_VEVENT_COMPONENT && k != ICAL_VTODO_COMPONENT && k != ICAL_VJOURNAL_COMPONENT)
      continue;
    std::string key = recurrence_key(c);
    if (key.empty())
      master = c;
    else
      overrides[key] = c;
  }
  for (const Instance& inst : list) {
    auto o = inst.recurrence_id.empty() ? overrides.end() : overrides.find(inst.recurrence_id);
    if (o != overrides.end()) {
      icalcomponent_add_component(out.get(), utc_copy(o->second));
      continue;
    }
    if (!master) continue;
    icalcomponent* copy = icalcomponent_new_clone(master);
    for (icalproperty_kind k :
         {ICAL_RRULE_PROPERTY, ICAL_RDATE_PROPERTY, ICAL_EXDATE_PROPERTY, ICAL_EXRULE_PROPERTY,
          ICAL_DURATION_PROPERTY, ICAL_DTEND_PROPERTY, ICAL_DUE_PROPERTY})
      remove_all(copy, k);
    auto start = property_time(master, ICAL_DTSTART_PROPERTY);
    bool date = start && start->second;
    if (start) set_utc(copy, ICAL_DTSTART_PROPERTY, inst.start, date);
    if (inst.end != inst.start && inst.end != kTimeMax)
      set_utc(
          copy,
          icalcomponent_isa(copy) == ICAL_VTODO_COMPONENT ? ICAL_DUE_PROPERTY : ICAL_DTEND_PROPERTY,
          inst.end, date);
    if (!inst.recurrence_id.empty()) set_utc(copy, ICAL_RECURRENCEID_PROPERTY, inst.start, date);
    icalcomponent_add_component(out.get(), copy);
  }
  const char* text = icalcomponent_as_ical_string(out.get());
  return std::string(text ? text : "");
}

namespace {

bool names(const std::vector<std::string>& list, const char* name) {
  for (const auto& n : list)
    if (strcasecmp(n.c_str(), name) == 0) return true;
  return false;
}

void prune(icalcomponent* c, const CalendarComp& spec) {
  if (!spec.allprop) {
    std::vector<icalproperty*> drop;
    for (icalproperty* p = icalcomponent_get_first_property(c, ICAL_ANY_PROPERTY); p;
         p = icalcomponent_get_next_property(c, ICAL_ANY_PROPERTY))
      if (!names(spec.props, property_name(p).c_str())) drop.push_back(p);
    for (icalproperty* p : drop) {
      icalcomponent_remove_property(c, p);
      icalproperty_free(p);
    }
  }
  std::vector<icalcomponent*> subs;
  for (icalcomponent* sub = icalcomponent_get_first_component(c, ICAL_ANY_COMPONENT); sub;
       sub = icalcomponent_get_next_component(c, ICAL_ANY_COMPONENT))
    subs.push_back(sub);
  for (icalcomponent* sub : subs) {
    const char* kind = icalcomponent_kind_to_string(icalcomponent_isa(sub));
    const CalendarComp* child = nullptr;
    for (const auto& cc : spec.comps)
      if (kind && strcasecmp(cc.name.c_str(), kind) == 0) child = &cc;
    if (child) {
      prune(sub, *child);
    } else if (!spec.allcomp) {
      icalcomponent_remove_component(c, sub);
      icalcomponent_free(sub);
    }
  }
}

}  // namespace

Result<std::string> select_calendar_data(std::string_view ics, const CalendarComp& comp) {
  MK_ASSIGN_OR_RETURN(Component root, parse(ics));
  icalcomponent* cal = calendar_of(root.get());
  if (!cal) return invalid("no VCALENDAR");
  if (strcasecmp(comp.name.c_str(), "VCALENDAR") != 0)
    return invalid("calendar-data comp must start with VCALENDAR");
  prune(cal, comp);
  const char* text = icalcomponent_as_ical_string(cal);
  return std::string(text ? text : "");
}

std::string select_address_data(std::string_view vcf, const std::vector<std::string>& props) {
  // Unfold, then keep the lines whose property name (without group) is asked for.
  std::string unfolded;
  for (size_t i = 0; i < vcf.size(); ++i) {
    if (vcf[i] == '\r' && i + 1 < vcf.size() && vcf[i + 1] == '\n') continue;
    if (vcf[i] == '\n' && i + 1 < vcf.size() && (vcf[i + 1] == ' ' || vcf[i + 1] == '\t')) {
      ++i;
      continue;
    }
    unfolded += vcf[i];
  }
  std::string out;
  size_t pos = 0;
  while (pos < unfolded.size()) {
    size_t nl = unfolded.find('\n', pos);
    if (nl == std::string::npos) nl = unfolded.size();
    std::string line = unfolded.substr(pos, nl - pos);
    pos = nl + 1;
    size_t end = line.find_first_of(":;");
    std::string name = line.substr(0, end == std::string::npos ? line.size() : end);
    size_t dot = name.rfind('.');
    if (dot != std::string::npos) name = name.substr(dot + 1);
    bool keep =
        names({"BEGIN", "END", "VERSION", "UID"}, name.c_str()) || names(props, name.c_str());
    if (keep && !line.empty()) out += line + "\r\n";
  }
  return out;
}

}  // namespace mailark::dav
