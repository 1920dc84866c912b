// Base64 (RFC 4648 section 4) for protocol exchanges such as SASL; strict on input.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailark {

std::string base64_encode(std::string_view bytes);
// nullopt for anything but canonical padded base64 (no whitespace, no stray characters).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace mailark
