// Fuzz target for the LMTP wire parsers: command lines and the DATA reader must accept any
// bytes without crashing, and the DATA reader must agree with itself whether fed at once or
// in pieces.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/lmtp/lmtp_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailark::lmtp;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  while (pos < in.size()) {
    size_t lf = in.find('\n', pos);
    std::string_view line = in.substr(pos, lf == std::string_view::npos ? in.npos : lf - pos);
    ParsedCommand p = parse_command(line);
    if (p.command.has_value() == p.error.has_value()) std::abort();
    if (p.error && p.error->reply.size() < 4) std::abort();
    if (lf == std::string_view::npos) break;
    pos = lf + 1;
  }
  DataReader whole(4096);
  size_t used = whole.feed(in);
  DataReader pieces(4096);
  size_t used_pieces = 0;
  for (size_t i = 0; i < in.size() && !pieces.done(); i += 7)
    used_pieces += pieces.feed(in.substr(i, 7));
  if (whole.done() != pieces.done() || used != used_pieces) std::abort();
  if (whole.too_large() != pieces.too_large()) std::abort();
  std::string a = whole.take_message(), b = pieces.take_message();
  if (a != b) std::abort();
  if (a.size() > 4096) std::abort();
  return 0;
}
