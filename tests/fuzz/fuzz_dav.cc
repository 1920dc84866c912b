// Fuzz target for the WebDAV/CalDAV/CardDAV XML layer: any bytes go to every request parser,
// no crash; a document that parses serializes to one that parses back the same; what the
// multistatus writer makes of parsed names and values is well-formed; an href that decodes
// encodes back to itself; escaped text survives a parse.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/dav/dav_xml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailark;
  using namespace mailark::dav;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // What this target writes may be larger and deeper than any input it came from.
  XmlLimits roomy;
  roomy.max_bytes = 64u << 20;
  roomy.max_depth = 64;
  roomy.max_elements = 1u << 20;

  auto root = parse_xml(in);
  if (root.is_ok()) {
    std::string once = serialize(*root);
    auto back = parse_xml(once, roomy);
    if (!back.is_ok() || !(*back == *root) || serialize(*back) != once) std::abort();
  }

  MultistatusWriter writer;
  writer.begin_response(in.substr(0, 64));
  auto propfind = parse_propfind(in);
  if (propfind.is_ok()) {
    std::vector<PropValue> values;
    for (const PropName& name : propfind->props)
      values.push_back({name, "", std::string(in.substr(0, 64))});
    writer.propstat(200, values);
  }
  auto proppatch = parse_proppatch(in);
  if (proppatch.is_ok()) {
    std::vector<PropValue> values;
    for (const auto& op : proppatch->ops) values.push_back({op.name, op.value_xml, ""});
    writer.propstat(424, values, PropName{kDav, "cannot-modify-protected-property"});
  }
  auto mkcol = parse_mkcol(in);
  if (mkcol.is_ok()) {
    for (const auto& op : mkcol->set)
      if (op.remove) std::abort();
  }
  auto report = parse_report(in);
  if (report.is_ok()) {
    if (const auto* query = std::get_if<CalendarQuery>(&report->body)) {
      const std::string& name = query->filter.name;
      if (name.size() != 9) std::abort();  // "VCALENDAR", in any case
    }
    if (const auto* multiget = std::get_if<Multiget>(&report->body)) {
      if (multiget->hrefs.empty()) std::abort();
      for (const std::string& href : multiget->hrefs) {
        writer.response_status(href, 404);
        (void)href_decode(href_path(href));
      }
    }
    if (const auto* sync = std::get_if<SyncCollection>(&report->body))
      writer.sync_token(sync->sync_token);
  } else {
    (void)failed_precondition(report.status());
  }
  if (!parse_xml(writer.finish(), roomy).is_ok()) std::abort();

  auto decoded = href_decode(in);
  if (decoded.is_ok()) {
    auto again = href_decode(href_encode(*decoded));
    if (!again.is_ok() || *again != *decoded) std::abort();
  }
  (void)href_path(in);
  std::string escaped = xml_escape(in);
  auto text = parse_xml("<a>" + escaped + "</a>", roomy);
  if (!text.is_ok() || xml_escape(text->text) != escaped) std::abort();
  return 0;
}
