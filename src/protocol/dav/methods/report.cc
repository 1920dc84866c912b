// REPORT (RFC 3253 3.6): calendar-query, calendar-multiget and free-busy-query (RFC 4791
// 7.8-7.10), addressbook-query and addressbook-multiget (RFC 6352 8.6-8.7), and
// sync-collection (RFC 6578) with tokens made of the collection's MODSEQ, which a restore
// keeps (ARCHITECTURE.md invariant 5). Other reports get DAV:supported-report.
#include <algorithm>
#include <map>
#include <string_view>
#include <unordered_map>

#include "base/log.h"
#include "base/time.h"
#include "protocol/dav/dav_context.h"
#include "protocol/dav/dav_filter.h"

namespace mailark::dav {

namespace {

const PropName kValidFilter{std::string(kCalDav), "valid-filter"};

Node resource_node(const DavCollection& c, const DavResource& r, std::string href) {
  Node n;
  n.kind = Target::Kind::kResource;
  n.collection_kind = c.kind;
  n.collection = &c;
  n.resource = &r;
  n.href = std::move(href);
  return n;
}

Node resource_node(const DavContext& ctx, const DavCollection& c, const DavResource& r) {
  return resource_node(c, r, resource_href(c.kind, ctx.user.address, c.segment, r.name));
}

// The resources a query runs over: the collection's (Depth 1), or the one resource.
Status query_scope(DavContext& ctx, DavCollection& c, std::vector<DavResource>& out,
                   const std::optional<TimeRange>& range) {
  if (ctx.target.kind == Target::Kind::kResource) {
    MK_ASSIGN_OR_RETURN(DavResource r, ctx.store().resource(ctx.account, c, ctx.target.name));
    out.push_back(std::move(r));
    return Status::ok();
  }
  std::optional<std::pair<int64_t, int64_t>> window;
  if (range) window = std::make_pair(range->start, range->end);
  MK_ASSIGN_OR_RETURN(out, ctx.store().resources(ctx.account, c, window));
  return Status::ok();
}

// The calendar's CALDAV:calendar-timezone (a VCALENDAR with one VTIMEZONE), stored as the
// property's XML content.
std::optional<std::string> calendar_timezone(const DavCollection& c) {
  auto it = c.props.find("{urn:ietf:params:xml:ns:caldav}calendar-timezone");
  if (it == c.props.end() || it->second.empty()) return std::nullopt;
  auto parsed = parse_xml("<x>" + it->second + "</x>");
  if (!parsed.is_ok() || parsed->text.find("BEGIN:VTIMEZONE") == std::string::npos)
    return std::nullopt;
  return parsed->text;
}

// Bodies are read this many at a time (one read transaction each).
constexpr size_t kBodyBatch = 256;

// The child comp-filter of a filter that is only "VCALENDAR > X with a time-range", else null.
const CompFilter* simple_time_range(const CompFilter& f) {
  if (f.is_not_defined || !f.props.empty() || f.time_range || f.comps.size() != 1) return nullptr;
  const CompFilter& x = f.comps.front();
  if (x.is_not_defined || !x.time_range || !x.props.empty() || !x.comps.empty()) return nullptr;
  return &x;
}

bool collations_supported(const CompFilter& f) {
  for (const auto& p : f.props) {
    if (p.text_match && !supported_collation(p.text_match->collation)) return false;
    for (const auto& param : p.params)
      if (param.text_match && !supported_collation(param.text_match->collation)) return false;
  }
  for (const auto& c : f.comps)
    if (!collations_supported(c)) return false;
  return true;
}

void calendar_query(DavContext& ctx, DavCollection& c, const CalendarQuery& q) {
  if (!collations_supported(q.filter))
    return ctx.precondition(403, {std::string(kCalDav), "supported-collation"});
  std::optional<TimeRange> range = filter_range(q.filter);
  std::vector<DavResource> list;
  Status s = query_scope(ctx, c, list, range);
  if (!s.is_ok()) return ctx.store_error(s);
  // Floating times: the query's time zone, else the calendar's (RFC 4791 7.3), else UTC.
  std::string floating = "UTC";
  if (q.timezone)
    floating = *q.timezone;
  else if (q.timezone_id)
    floating = *q.timezone_id;
  else if (auto tz = calendar_timezone(c))
    floating = *tz;
  PropRequest request = prop_request(q.props);
  request.floating_tz = floating;
  // The common query (one component type in a time range, nothing else) is decided by the
  // stored range alone for objects that do not recur and lie wholly inside the range.
  const CompFilter* only = simple_time_range(q.filter);
  MultistatusWriter out;
  for (size_t first = 0; first < list.size(); first += kBodyBatch) {
    size_t end = std::min(list.size(), first + kBodyBatch);
    std::vector<Digest> blobs;
    for (size_t i = first; i < end; ++i) blobs.push_back(list[i].blob);
    auto bodies = ctx.store().read_messages(ctx.account, blobs);
    if (!bodies.is_ok()) return ctx.store_error(bodies.status());
    for (size_t i = first; i < end; ++i) {
      const DavResource& r = list[i];
      const std::string& body = (*bodies)[i - first];
      bool inside = only && range && !r.recurring && r.component == only->name &&
                    r.range_start >= range->start && r.range_end < range->end;
      if (!inside) {
        // The simple filter needs only the overlap of the object's instances (one parse);
        // an object holds one component type, so another type cannot match.
        auto match = only && range ? (r.component == only->name ? overlaps(body, *range, floating)
                                                                : Result<bool>(false))
                                   : calendar_matches(body, q.filter, floating);
        if (!match.is_ok()) {
          if (match.status().code() == ErrorCode::kTooLarge) return ctx.store_error(match.status());
          return ctx.precondition(403, kValidFilter);
        }
        if (!*match) continue;
      }
      Node node = resource_node(ctx, c, r);
      node.body = &body;
      Status d = describe(ctx, node, request, out);
      if (!d.is_ok()) return ctx.store_error(d);
    }
  }
  ctx.multistatus(out.finish());
}

void addressbook_query(DavContext& ctx, DavCollection& c, const AddressbookQuery& q) {
  for (const auto& f : q.filters) {
    for (const auto& m : f.text_matches)
      if (!supported_collation(m.collation))
        return ctx.precondition(403, {std::string(kCardDav), "supported-collation"});
  }
  std::vector<DavResource> list;
  Status s = query_scope(ctx, c, list, std::nullopt);
  if (!s.is_ok()) return ctx.store_error(s);
  PropRequest request = prop_request(q.props);
  MultistatusWriter out;
  uint32_t matched = 0;
  bool truncated = false;
  for (const auto& r : list) {
    auto body = ctx.store().read_message(ctx.account, r.blob);
    if (!body.is_ok()) return ctx.store_error(body.status());
    if (!card_matches(*body, q)) continue;
    if (q.limit && matched >= *q.limit) {
      truncated = true;
      break;
    }
    ++matched;
    Status d = describe(ctx, resource_node(ctx, c, r), request, out);
    if (!d.is_ok()) return ctx.store_error(d);
  }
  // RFC 6352 8.6.1: a truncated result says so with 507 on the request-URI.
  if (truncated) out.response_status(collection_href(c.kind, ctx.user.address, c.segment), 507);
  ctx.multistatus(out.finish());
}

// `requested` is the request's collection, read already (hrefs are usually in it).
void multiget(DavContext& ctx, const DavCollection& requested, const Multiget& m) {
  PropRequest request = prop_request(m.props);
  // Resolve every href first: one read per collection, bodies included.
  struct Wanted {
    const std::string* href;
    int status = 0;  // 0: found
    std::string segment, name;
  };
  std::vector<Wanted> wanted;
  wanted.reserve(m.hrefs.size());
  std::map<std::string, std::vector<std::string>> names;  // segment -> names
  for (const auto& href : m.hrefs) {
    Wanted w{&href, 0, {}, {}};
    auto target = parse_target(href_path(href));
    if (!target.is_ok() || target->kind != Target::Kind::kResource ||
        target->owner != ctx.user.address ||
        target->collection_kind != ctx.target.collection_kind) {
      w.status = target.is_ok() && target->owner != ctx.user.address ? 403 : 404;
    } else {
      w.segment = std::move(target->segment);
      w.name = std::move(target->name);
      names[w.segment].push_back(w.name);
    }
    wanted.push_back(std::move(w));
  }
  // Per collection: its resources and bodies, and which of them has each name.
  struct Read {
    DavCollection collection;
    std::vector<DavResource> resources;
    std::vector<std::string> bodies;
    std::unordered_map<std::string_view, size_t> by_name;  // views of resources' names
  };
  const bool with_data = wants_data(request);
  std::map<std::string, Read> read;
  for (const auto& [segment, list] : names) {
    Read& r = read[segment];
    if (segment == requested.segment) {
      r.collection = requested;
    } else {
      auto c = ctx.store().collection(ctx.account, ctx.target.collection_kind, segment);
      if (!c.is_ok()) {
        if (c.status().code() != ErrorCode::kNotFound) return ctx.store_error(c.status());
        read.erase(segment);
        continue;
      }
      r.collection = std::move(*c);
    }
    auto rs = ctx.store().resources_named(ctx.account, r.collection, list,
                                          with_data ? &r.bodies : nullptr);
    if (!rs.is_ok()) return ctx.store_error(rs.status());
    r.resources = std::move(*rs);
    r.by_name.reserve(r.resources.size());
    for (size_t i = 0; i < r.resources.size(); ++i) r.by_name.emplace(r.resources[i].name, i);
  }
  MultistatusWriter out;
  size_t body_bytes = 0;
  for (const auto& [segment, r] : read)
    for (const auto& body : r.bodies) body_bytes += body.size();
  // Each body escaped (a reference per CR), each href with its etag and status lines.
  out.reserve(body_bytes + body_bytes / 16 + wanted.size() * 512);
  for (const auto& w : wanted) {
    const Read* r = nullptr;
    size_t index = 0;
    if (!w.status) {
      auto c = read.find(w.segment);
      if (c != read.end()) {
        auto it = c->second.by_name.find(w.name);
        if (it != c->second.by_name.end()) r = &c->second, index = it->second;
      }
    }
    if (!r) {
      out.response_status(*w.href, w.status ? w.status : 404);
      continue;
    }
    // Answered under the href the client sent.
    Node node = resource_node(r->collection, r->resources[index], *w.href);
    if (with_data) node.body = &r->bodies[index];
    Status d = describe(ctx, node, request, out);
    if (!d.is_ok()) return ctx.store_error(d);
  }
  ctx.multistatus(out.finish());
}

void free_busy(DavContext& ctx, DavCollection& c, const FreeBusyQuery& q) {
  auto range = parse_time_range(q.time_range);
  if (!range.is_ok() || q.time_range.start.empty())
    return ctx.status(400, "free-busy-query needs a valid time-range with a start");
  std::vector<DavResource> list;
  Status s = query_scope(ctx, c, list, *range);
  if (!s.is_ok()) return ctx.store_error(s);
  std::vector<BusyInterval> busy;
  std::string floating = calendar_timezone(c).value_or("UTC");
  for (const auto& r : list) {
    if (r.component != "VEVENT" && r.component != "VFREEBUSY") continue;
    auto body = ctx.store().read_message(ctx.account, r.blob);
    if (!body.is_ok()) return ctx.store_error(body.status());
    auto periods = busy_intervals(*body, *range, floating);
    // Too many instances in the range: refused, never answered as free time.
    if (!periods.is_ok() && periods.status().code() == ErrorCode::kTooLarge)
      return ctx.store_error(periods.status());
    if (!periods.is_ok()) continue;  // valid when stored; a parser change must not fail all
    busy.insert(busy.end(), periods->begin(), periods->end());
  }
  std::sort(busy.begin(), busy.end(),
            [](const BusyInterval& a, const BusyInterval& b) { return a.start < b.start; });
  std::string out =
      "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailark//CalDAV//EN\r\nBEGIN:VFREEBUSY\r\n";
  out += "DTSTAMP:" + format_utc(now_ms()) + "\r\n";
  out += "DTSTART:" + format_utc(range->start) + "\r\n";
  if (range->end != kTimeMax) out += "DTEND:" + format_utc(range->end) + "\r\n";
  for (const auto& b : busy)
    out += "FREEBUSY;FBTYPE=" + b.fbtype + ":" + format_utc(b.start) + "/" + format_utc(b.end) +
           "\r\n";
  out += "END:VFREEBUSY\r\nEND:VCALENDAR\r\n";
  ctx.response.status = 200;
  ctx.response.set("Content-Type", "text/calendar; charset=utf-8");
  ctx.response.body = std::move(out);
}

void sync_collection(DavContext& ctx, DavCollection& c, const SyncCollection& q) {
  const PropName valid_token{std::string(kDav), "valid-sync-token"};
  uint64_t since = 0;
  if (!q.sync_token.empty()) {
    auto parsed = parse_sync_token(c, q.sync_token);
    if (!parsed.is_ok()) return ctx.precondition(403, valid_token);
    since = *parsed;
  }
  auto changes = ctx.store().resource_changes(ctx.account, c, since);
  if (!changes.is_ok()) {
    if (changes.status().code() == ErrorCode::kInvalid) return ctx.precondition(403, valid_token);
    return ctx.store_error(changes.status());
  }
  // Changes and removals in MODSEQ order, so a limited answer ends at a consistent token.
  struct Entry {
    uint64_t modseq;
    const DavResource* resource;
    const DavChanges::Removed* removed;
  };
  std::vector<Entry> entries;
  for (const auto& r : changes->changed) entries.push_back({r.modseq, &r, nullptr});
  for (const auto& g : changes->removed) entries.push_back({g.modseq, nullptr, &g});
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.modseq < b.modseq; });
  uint64_t token = changes->highestmodseq;
  bool truncated = false;
  if (q.limit && entries.size() > *q.limit) {
    entries.resize(*q.limit);
    token = entries.empty() ? since : entries.back().modseq;
    truncated = true;
  }
  PropRequest request = prop_request(q.props);
  MultistatusWriter out;
  for (const auto& e : entries) {
    if (e.resource) {
      Status d = describe(ctx, resource_node(ctx, c, *e.resource), request, out);
      if (!d.is_ok()) return ctx.store_error(d);
    } else {
      out.response_status(resource_href(c.kind, ctx.user.address, c.segment, e.removed->name), 404);
    }
  }
  if (truncated) out.response_status(collection_href(c.kind, ctx.user.address, c.segment), 507);
  out.sync_token(sync_token(c, token));
  ctx.multistatus(out.finish());
}

}  // namespace

void method_report(DavContext& ctx) {
  auto parsed = parse_report(ctx.request.body);
  if (!parsed.is_ok()) {
    if (auto pre = failed_precondition(parsed.status())) return ctx.precondition(403, *pre);
    return ctx.status(parsed.status().code() == ErrorCode::kTooLarge ? 413 : 400,
                      parsed.status().message());
  }
  using Kind = ReportRequest::Kind;
  const Target& t = ctx.target;
  const bool on_collection = t.kind == Target::Kind::kCollection;
  const bool on_resource = t.kind == Target::Kind::kResource;
  const bool calendar = t.collection_kind == CollectionKind::kCalendar;
  auto unsupported = [&] { ctx.precondition(403, {std::string(kDav), "supported-report"}); };
  bool fits = false;
  switch (parsed->kind) {
    case Kind::kCalendarQuery:
    case Kind::kCalendarMultiget:
      fits = calendar && (on_collection || on_resource);
      break;
    case Kind::kFreeBusyQuery:
      fits = calendar && on_collection;
      break;
    case Kind::kAddressbookQuery:
    case Kind::kAddressbookMultiget:
      fits = !calendar && (on_collection || on_resource);
      break;
    case Kind::kSyncCollection:
      fits = on_collection;
      break;
    default:
      fits = false;
  }
  if (!fits) return unsupported();
  auto c = ctx.collection();
  if (!c.is_ok()) return ctx.store_error(c.status());
  switch (parsed->kind) {
    case Kind::kCalendarQuery:
      return calendar_query(ctx, *c, std::get<CalendarQuery>(parsed->body));
    case Kind::kAddressbookQuery:
      return addressbook_query(ctx, *c, std::get<AddressbookQuery>(parsed->body));
    case Kind::kCalendarMultiget:
    case Kind::kAddressbookMultiget:
      return multiget(ctx, *c, std::get<Multiget>(parsed->body));
    case Kind::kFreeBusyQuery:
      return free_busy(ctx, *c, std::get<FreeBusyQuery>(parsed->body));
    case Kind::kSyncCollection: {
      // RFC 6578 asks for Depth: 0, but clients (python-caldav) send 1; the answer is the
      // same for collections that hold no collections.
      if (!ctx.depth(0)) return ctx.status(400, "Depth must be 0, 1 or infinity");
      return sync_collection(ctx, *c, std::get<SyncCollection>(parsed->body));
    }
    default:
      return unsupported();
  }
}

}  // namespace mailark::dav
