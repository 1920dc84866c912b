// Fuzz target for the IMAP command parser and framer: any bytes, no crash, and a command
// that parses has a tag and a name.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/imap/imap_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailark::imap;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ParseResult r = parse_command(in);
  if (r.command) {
    if (r.command->tag.empty() || r.command->name.empty()) std::abort();
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
