// Fuzz target for the IMAP command parser and framer, and for what handlers parse out of a
// command (SEARCH programs, FETCH body sections, modified UTF-7 names): any bytes, no crash,
// a command that parses has a tag and a name, and a name that decodes encodes back the same.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/imap/imap_format.h"
#include "protocol/imap/imap_parser.h"
#include "protocol/imap/imap_search.h"
#include "protocol/imap/mutf7.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailark;
  using namespace mailark::imap;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ParseResult r = parse_command(in);
  if (r.command) {
    if (r.command->tag.empty() || r.command->name.empty()) std::abort();
    const auto& args = r.command->args;
    if (r.command->name == "SEARCH") {
      auto search = parse_search_command(args);
      if (search.is_ok()) {
        MessageInfo info =
            parse_message("Subject: a\r\nDate: 1 Jan 2020 00:00:00 +0000\r\n\r\nb\r\n");
        SearchMessage m;
        m.seq = m.uid = 1;
        m.info = &info;
        m.raw = "Subject: a\r\n\r\nb\r\n";
        (void)search_matches(search->program, SearchView{3, 9}, m);
      }
    }
    for (const Value& v : args) {
      if (v.is_atom()) (void)parse_body_fetch(v.text);
      if (v.is_list())
        for (const Value& item : v.items)
          if (item.is_atom()) (void)parse_body_fetch(item.text);
      if (v.is_astring()) {
        auto name = mutf7_to_utf8(v.text);
        if (name && utf8_to_mutf7(*name) != v.text) std::abort();
      }
    }
  } else if (r.error.empty()) {
    std::abort();
  }
  CommandFramer framer({4096, 4096, 16384});
  size_t pos = 0;
  while (pos < in.size()) {
    size_t lf = in.find('\n', pos);
    std::string_view line = in.substr(pos, lf == std::string_view::npos ? in.npos : lf - pos);
    pos = lf == std::string_view::npos ? in.size() : lf + 1;
    auto step = framer.feed_line(line);
    if (step == CommandFramer::Step::kTooLarge) break;
    if (step == CommandFramer::Step::kComplete) {
      (void)parse_command(framer.command());
      framer.reset();
      continue;
    }
    size_t n = std::min<uint64_t>(framer.literal_size(), in.size() - pos);
    framer.feed_literal(in.substr(pos, n));
    pos += n;
  }
  (void)parse_sequence_set(in.substr(0, 64));
  (void)quote(in);
  return 0;
}
