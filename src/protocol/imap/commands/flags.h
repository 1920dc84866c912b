// Flag arguments shared by APPEND and STORE (RFC 3501 2.3.2, flag-list grammar in 9).
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "protocol/imap/imap_parser.h"

namespace mailark::imap {

// The flags of a flag list (or STORE's bare flags), system flags in canonical case. \Recent
// cannot be set and is dropped; an unknown system flag or a keyword with characters outside
// atom-char is kInvalid (the command gets BAD).
Result<std::vector<std::string>> parse_flags(const std::vector<Value>& values);

}  // namespace mailark::imap
