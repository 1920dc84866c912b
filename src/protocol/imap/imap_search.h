// IMAP SEARCH (RFC 3501 6.4.4, RFC 9051 6.4.4) with ESEARCH return options (RFC 4731), the
// SAVE option and "$" marker of SEARCHRES (RFC 5182, RFC 9051 6.4.4.1) and the CONDSTORE MODSEQ
// key (RFC 7162 3.1.5): the command's arguments in, a compiled program out, and the program
// evaluated against one message at a time. Pure: no store access; the caller supplies each
// message's flags, sizes, dates, parse cache and (for BODY/TEXT) bytes, and keeps the saved
// search result.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "mailstore/header_fields.h"
#include "mailstore/mime.h"
#include "protocol/imap/imap_parser.h"

namespace mailark::imap {

// A compiled search: the keys of one SEARCH command, implicitly ANDed. Immutable and cheap to
// copy (the key tree is shared). Needles are case-folded once here, not per message.
class SearchProgram {
 public:
  struct Node;  // the key tree; defined in imap_search.cc

  SearchProgram();  // matches every message (ALL)
  explicit SearchProgram(std::shared_ptr<const Node> root);

  // Evaluation reads the parse cache (header fields, the Date header, the part structure):
  // the caller sets SearchMessage::info. True whenever needs_body() is.
  bool needs_info() const { return needs_info_; }
  // Evaluation reads header fields the header fields record keeps, and nothing else of the
  // parse cache: the caller sets SearchMessage::fields (or info). Never with needs_info().
  bool needs_header_fields() const { return needs_header_fields_; }
  // BODY or TEXT: the caller sets SearchMessage::raw (the whole message).
  bool needs_body() const { return needs_body_; }
  // A MODSEQ key: RFC 7162 3.1.5 wants "(MODSEQ n)" appended to the SEARCH response.
  bool uses_modseq() const { return uses_modseq_; }

  // The program in IMAP search-key syntax, for logs and tests; it parses back to the same
  // program. Keys appear as evaluated: cheap keys before ones that read the header or body,
  // NEW/OLD/UNSEEN... in their expanded form, strings case-folded, dates as "1-Feb-1994",
  // "$" for both "$" and "UID $".
  std::string to_string() const;

  const Node& root() const { return *root_; }

 private:
  std::shared_ptr<const Node> root_;
  bool needs_info_ = false;
  bool needs_header_fields_ = false;
  bool needs_body_ = false;
  bool uses_modseq_ = false;
};

// RETURN (...) of RFC 4731 and RFC 5182. `esearch` is set when RETURN was given at all.
// RETURN () means ALL (RFC 4731 3.1); RETURN (SAVE) does not: it asks for no result data.
struct SearchReturn {
  bool esearch = false;
  bool min = false, max = false, count = false, all = false;
  // SAVE: on success the command replaces the session's search result variable with
  // saved_search_result(); when it ends in a tagged NO (BADCHARSET, a store error) the
  // variable becomes empty (RFC 9051 6.4.4.1). Without SAVE, and after any BAD, the variable
  // is left as it was.
  bool save = false;

  // Whether an untagged ESEARCH (or, for IMAP4rev1 without RETURN, SEARCH) response is sent.
  // False only for RETURN (SAVE) alone, which answers with the tagged OK and nothing else
  // (RFC 5182 1, RFC 9051 6.4.4). SAVE never changes which of MIN/MAX/COUNT/ALL are reported.
  bool sends_response() const { return !save || min || max || count || all; }

  bool operator==(const SearchReturn&) const = default;
};

struct SearchCommand {
  SearchReturn ret;
  std::string charset;  // upper-cased ("UTF-8", "US-ASCII"); empty when CHARSET was not given
  SearchProgram program;
};

// Parses the arguments of SEARCH / UID SEARCH as parse_command() produced them:
//   [RETURN (opts)] [CHARSET name] key *(SP key)
// Keywords are case-insensitive. Errors:
//   kInvalid  - malformed input (unknown key or RETURN option, missing or bad argument, bad
//               date or number, keys nested more than 64 deep): tagged BAD with the message.
//   kNotFound - CHARSET names a charset other than UTF-8 / US-ASCII: the caller answers
//               NO [BADCHARSET (UTF-8 US-ASCII)].
// "$" (the saved search result, RFC 5182 3) is accepted where a sequence set is, as a key or
// after UID, but only as the whole set: "$,1:3", "1:3,$" and "$:5" are kInvalid. "$" is the
// RFC's seq-last-command alternative of sequence-set, a set of its own; the recursion in
// sequence-set would admit a trailing ",$", which Dovecot rejects as well.
Result<SearchCommand> parse_search_command(const std::vector<Value>& args);

// Whether the arguments begin with a well-formed RETURN list that holds SAVE. For a command that
// parse_search_command() failed with kNotFound (answered NO [BADCHARSET]): when this is true
// the search result variable must become empty. After kInvalid (BAD) it never changes.
bool search_requests_save(const std::vector<Value>& args);

// The new value of the search result variable after a successful SEARCH with `ret.save`, from
// `matched_uids`: the UIDs of all matching messages, ascending (for a SEARCH by sequence number
// as well: "$" then serves FETCH and UID FETCH alike). RFC 5182 2.4 / RFC 9051 6.4.4.1:
//   SAVE alone, or with ALL or COUNT (MIN/MAX or not)  -> every match
//   SAVE MIN                                            -> the lowest match only
//   SAVE MAX                                            -> the highest match only
//   SAVE MIN MAX                                        -> the lowest and the highest
// No match saves the empty set. Without `ret.save` the result is meaningless (empty).
std::vector<uint32_t> saved_search_result(const SearchReturn& ret,
                                          const std::vector<uint32_t>& matched_uids);

// What '*' stands for in sequence and UID sets, and what "$" stands for.
struct SearchView {
  uint32_t max_seq = 0;  // messages in the mailbox
  uint32_t max_uid = 0;  // highest UID in the mailbox
  // The search result variable as it was before this command (a SEARCH that both uses "$" and
  // SAVEs reads the old value): UIDs, ascending. Null or empty: "$" matches nothing, which is
  // its value after SELECT/EXAMINE, a failed SAVE, or when no SAVE has been done
  // (RFC 9051 6.4.4.1). Expunged UIDs may stay in it; they match no message.
  const std::vector<uint32_t>* saved_uids = nullptr;
};

// One message as the evaluator sees it. Nothing is owned; everything must outlive the call.
struct SearchMessage {
  uint32_t seq = 0, uid = 0;
  const std::vector<std::string>* flags = nullptr;  // "\\Seen", "$Label1", ...; null: none
  bool recent = false;
  uint64_t size = 0;             // RFC822.SIZE
  int64_t internal_date_ms = 0;  // ms since the epoch, UTC
  uint64_t modseq = 0;
  // The parse cache of `raw`, when program.needs_info(). When it is null but `raw` is set,
  // the message is parsed on the spot (slow, but never a wrong answer).
  const MessageInfo* info = nullptr;
  // The header fields record of `raw`, when program.needs_header_fields(); it answers the
  // header keys it keeps in place of `info`.
  const HeaderFieldValues* fields = nullptr;
  std::string_view raw;  // the whole message, when program.needs_body()
};

// The form needles and texts are compared in: Unicode case folding then NFC (GLib's) for
// UTF-8, ASCII lower case of the bytes for anything else. Exposed for the test that holds it
// to GLib folding the whole text at once.
std::string fold_for_search(std::string s);

// Whether `m` matches. Never fails: a key whose data is missing or unusable (no Date header,
// no parse cache, a cache whose offsets do not fit `raw`) simply does not match.
// Matching rules (choices where the RFCs leave room):
// - "$" and "UID $" both match the messages whose UID is in view.saved_uids, in SEARCH and
//   UID SEARCH alike.
// - Flags and keywords compare case-insensitively. NEW = RECENT UNSEEN, OLD = NOT RECENT.
// - BEFORE/ON/SINCE use the UTC calendar day of the internal date.
// - SENTBEFORE/SENTON/SENTSINCE use the calendar day written in the (last) Date header, i.e.
//   in the sender's own zone. Without a parsable Date header they do not match (Dovecot falls
//   back to the internal date instead).
// - HEADER/FROM/TO/CC/BCC/SUBJECT: substring of the unfolded, RFC 2047-decoded value of any
//   top-level field of that name; an empty string matches when the field exists.
// - BODY: substring of the decoded (transfer encoding and charset) text of every text/* part,
//   including the header and text of attached message/rfc822 parts; other parts are skipped.
//   TEXT: the top-level header (names and decoded values) or BODY.
// - Strings compare after Unicode case folding and NFC (ASCII lower-casing for ASCII text);
//   bytes that are not UTF-8 compare as they are.
bool search_matches(const SearchProgram& program, const SearchView& view, const SearchMessage& m);

}  // namespace mailark::imap
