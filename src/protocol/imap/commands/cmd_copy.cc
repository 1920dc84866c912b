// COPY and MOVE with their UID forms (RFC 3501 6.4.7, RFC 6851), answering COPYUID (RFC 4315).
#include "protocol/imap/imap_context.h"

namespace mailark::imap {

void cmd_copy(ImapContext& ctx, const Command& cmd) {
  bool move = cmd.name == "MOVE";
  if (cmd.args.size() != 2 || !cmd.args[0].is_atom())
    return ctx.bad(cmd.name + " takes a sequence set and a mailbox");
  auto dest = ctx.mailbox_from_wire(cmd.args[1]);
  if (!dest.is_ok()) return ctx.bad(dest.status().message());
  MailboxView& view = *ctx.selected;
  if (move && view.read_only()) return ctx.no("[READ-ONLY] Mailbox is read-only");
  auto uids = ctx.resolve_set(cmd.args[0], cmd.uid);
  if (!uids.is_ok()) return ctx.bad(uids.status().message());
  std::vector<uint32_t> present;
  for (uint32_t uid : *uids)
    if (!view.is_pending_expunge(uid)) present.push_back(uid);
  if (present.size() != uids->size() && !cmd.uid)
    return ctx.no("[EXPUNGEISSUED] Some of the messages no longer exist");
  if (present.empty()) return ctx.ok(move ? "No messages moved" : "No messages copied");
  auto result = move ? ctx.store().move(*ctx.account, view.name(), present, *dest)
                     : ctx.store().copy(*ctx.account, view.name(), present, *dest);
  if (!result.is_ok()) {
    if (result.status().code() == ErrorCode::kNotFound)
      return ctx.no("[TRYCREATE] Mailbox does not exist");
    return ctx.fail(result.status());
  }
  std::string code;
  if (!result->items.empty()) {
    std::vector<uint32_t> src, dst;
    bool ascending = true;
    for (const CopiedItem& c : result->items) {
      if (!dst.empty() && (c.dest_uid <= dst.back() || c.source_uid <= src.back()))
        ascending = false;
      src.push_back(c.source_uid);
      dst.push_back(c.dest_uid);
    }
    std::string src_set, dst_set;
    if (ascending) {
      src_set = format_sequence_set(src);
      dst_set = format_sequence_set(dst);
    } else {
      // Both lists in the same order, number by number (RFC 4315 3).
      for (size_t i = 0; i < src.size(); ++i) {
        src_set += (i ? "," : "") + std::to_string(src[i]);
        dst_set += (i ? "," : "") + std::to_string(dst[i]);
      }
    }
    code = "[COPYUID " + std::to_string(result->dest_uidvalidity) + " " + src_set + " " + dst_set +
           "] ";
  }
  if (!move) return ctx.ok(code + "Copy completed");
  ctx.out += "* OK " + code + "Moved\r\n";
  std::vector<uint32_t> moved;
  for (const CopiedItem& c : result->items) moved.push_back(c.source_uid);
  view.expunged_now(moved, ctx.sync_options(true), &ctx.out);
  ctx.ok("Move completed");
}

}  // namespace mailark::imap
