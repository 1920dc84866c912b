// Password hashing with argon2id (invariant 9): PHC-encoded strings, constant-time verify.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace mailark {

Result<std::string> hash_password(std::string_view password);
// False for a wrong password or a hash that is not an argon2id PHC string.
bool verify_password(std::string_view password, const std::string& encoded);

}  // namespace mailark
