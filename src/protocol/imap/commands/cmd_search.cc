// SEARCH and UID SEARCH (RFC 3501 6.4.4) with ESEARCH replies (RFC 4731, and always under
// IMAP4rev2) and CONDSTORE's MODSEQ (RFC 7162 3.1.5). The header fields records answer keys
// on the fields they keep (FROM, SUBJECT...), the parse cache other header keys; message bytes
// are read only for BODY and TEXT.
#include "base/log.h"
#include "protocol/imap/imap_context.h"
#include "protocol/imap/imap_search.h"
#include "storage/blob_store.h"

namespace mailark::imap {

constexpr size_t kSearchSlice = 1024;

void cmd_search(ImapContext& ctx, const Command& cmd) {
  if (cmd.args.empty()) return ctx.bad("SEARCH needs search keys");
  auto parsed = parse_search_command(cmd.args);
  if (!parsed.is_ok()) {
    if (parsed.status().code() == ErrorCode::kNotFound) {
      // A SEARCH with SAVE that fails with NO empties "$" (RFC 5182 2.1).
      if (search_requests_save(cmd.args)) ctx.saved_uids.clear();
      return ctx.no("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
    }
    return ctx.bad(parsed.status().message());
  }
  const SearchProgram& program = parsed->program;
  if (program.uses_modseq()) ctx.condstore = true;
  MailboxView& view = *ctx.selected;
  const SearchReturn& ret = parsed->ret;
  SearchView search_view{view.exists(), view.max_uid(), &ctx.saved_uids};
  std::vector<uint32_t> found;
  std::vector<uint32_t> found_uids;
  uint64_t highest_modseq = 0;
  // In slices of the UID space, each one read, one message at a time.
  const UidList& all_uids = view.uids();
  BlobBuffers buffers;  // BODY and TEXT read every message: one allocation for all
  using Detail = MailStore::ScanDetail;
  const Detail detail = program.needs_info()            ? Detail::kParseCache
                        : program.needs_header_fields() ? Detail::kHeaderFields
                                                        : Detail::kItem;
  for (uint32_t first = 0; first < all_uids.size(); first += kSearchSlice) {
    uint32_t last = std::min<uint32_t>(all_uids.size(), first + kSearchSlice) - 1;
    Status scanned = ctx.store().scan(
        *ctx.account, view.name(), all_uids.at(first), all_uids.at(last), detail,
        [&](const ItemInfo& item, MessageInfo* info, const HeaderFieldValues* fields) -> Status {
          auto seq = view.seq_of(item.uid);
          if (!seq || view.is_pending_expunge(item.uid)) return Status::ok();
          SearchMessage m;
          m.seq = *seq;
          m.uid = item.uid;
          m.flags = &item.flags;
          m.recent = view.is_recent(item.uid);
          m.size = item.size;
          m.internal_date_ms = item.internal_date_ms;
          m.modseq = item.modseq;
          m.info = info;
          m.fields = fields;
          if (program.needs_body()) {
            MK_RETURN_IF_ERROR(ctx.store().read_message(*ctx.account, item.blob, buffers));
            m.raw = buffers.content;
          }
          if (!search_matches(program, search_view, m)) return Status::ok();
          found.push_back(cmd.uid ? item.uid : *seq);
          found_uids.push_back(item.uid);
          highest_modseq = std::max(highest_modseq, item.modseq);
          return Status::ok();
        });
    if (!scanned.is_ok()) {
      if (ret.save) ctx.saved_uids.clear();
      return ctx.fail(scanned);
    }
  }
  std::sort(found.begin(), found.end());
  std::sort(found_uids.begin(), found_uids.end());
  // "$" changes only after the search has read it (RFC 5182).
  if (ret.save) ctx.saved_uids = saved_search_result(ret, found_uids);
  if (!ret.sends_response()) {
    // RETURN (SAVE) alone: only the tagged reply.
  } else if (ret.esearch || ctx.rev2) {
    bool all = ret.all || !ret.esearch || !(ret.min || ret.max || ret.count);
    std::string line = "* ESEARCH (TAG " + quote(ctx.tag) + ")";
    if (cmd.uid) line += " UID";
    if (!found.empty()) {
      if (ret.min) line += " MIN " + std::to_string(found.front());
      if (ret.max) line += " MAX " + std::to_string(found.back());
    }
    if (ret.count) line += " COUNT " + std::to_string(found.size());
    if (all && !found.empty()) line += " ALL " + format_sequence_set(found);
    if (program.uses_modseq() && !found.empty())
      line += " MODSEQ " + std::to_string(highest_modseq);
    ctx.out += line + "\r\n";
  } else {
    std::string line = "* SEARCH";
    for (uint32_t n : found) line += " " + std::to_string(n);
    if (program.uses_modseq() && !found.empty())
      line += " (MODSEQ " + std::to_string(highest_modseq) + ")";
    ctx.out += line + "\r\n";
  }
  ctx.ok("Search completed");
}

}  // namespace mailark::imap
