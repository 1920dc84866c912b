// IMAP modified UTF-7 (RFC 3501 section 5.1.3), the wire form of mailbox names for clients
// that have not enabled UTF8=ACCEPT, and UTF-8 validation. Pure; knows nothing of folders.
// Written by hand: neither OpenSSL nor GMime nor iconv offers the IMAP variant of UTF-7.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailark::imap {

// UTF-8 -> modified UTF-7. Printable US-ASCII (0x20-0x7e) stands for itself, "&" becomes
// "&-", and every run of other characters (non-ASCII and control characters alike) becomes
// one "&<base64 of UTF-16BE>-" with ',' in place of '/' and no '=' padding. The output is
// canonical: mutf7_to_utf8() accepts it and gives back exactly `utf8`. Ill-formed UTF-8
// is not rejected: each maximal ill-formed subsequence is encoded as U+FFFD (the Unicode
// "maximal subpart" rule), so callers that must not alter names check is_valid_utf8() first.
std::string utf8_to_mutf7(std::string_view utf8);

// Modified UTF-7 -> UTF-8, or nullopt when `mutf7` is not the canonical encoding of some
// string, so that utf8_to_mutf7(*mutf7_to_utf8(x)) == x whenever the result has a value.
// Rejected: bytes outside 0x20-0x7e (8-bit or control characters must be encoded), an '&'
// run without its closing '-', characters outside the modified base64 alphabet, a run whose
// length leaves 6 or more spare bits or non-zero spare bits, an empty run other than "&-",
// a run that encodes a printable ASCII character (it must stand for itself), unpaired
// surrogates, and two encoded runs back to back ("&AOQ-&APY-" must be "&AOQA9g-").
std::optional<std::string> mutf7_to_utf8(std::string_view mutf7);

// True when `s` is well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates
// (U+D800-U+DFFF), nothing above U+10FFFF, no truncated sequences. NUL is allowed.
bool is_valid_utf8(std::string_view s);

}  // namespace mailark::imap
