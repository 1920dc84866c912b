// EXPUNGE and UID EXPUNGE (RFC 3501 6.4.3, RFC 4315 2.1), CLOSE and UNSELECT (RFC 3501 6.4.2,
// RFC 3691).
#include "protocol/imap/imap_context.h"

namespace mailark::imap {

void cmd_expunge(ImapContext& ctx, const Command& cmd) {
  MailboxView& view = *ctx.selected;
  std::optional<std::vector<uint32_t>> only;
  if (cmd.uid) {
    if (cmd.args.size() != 1 || !cmd.args[0].is_atom())
      return ctx.bad("UID EXPUNGE takes a UID set");
    auto uids = ctx.resolve_set(cmd.args[0], true);
    if (!uids.is_ok()) return ctx.bad(uids.status().message());
    only = std::move(*uids);
  } else if (!cmd.args.empty()) {
    return ctx.bad("EXPUNGE takes no arguments");
  }
  if (view.read_only()) return ctx.no("[READ-ONLY] Mailbox is read-only");
  if (only && only->empty()) return ctx.ok("Expunge completed");
  auto gone = ctx.store().expunge(*ctx.account, view.name(), only);
  if (!gone.is_ok()) return ctx.fail(gone.status());
  view.expunged_now(*gone, ctx.sync_options(true), &ctx.out);
  ctx.ok("Expunge completed");
}

void cmd_close(ImapContext& ctx, const Command& cmd) {
  if (!cmd.args.empty()) return ctx.bad(cmd.name + " takes no arguments");
  if (cmd.name == "CLOSE" && !ctx.selected->read_only()) {
    // Silently: no EXPUNGE responses for a mailbox being closed.
    auto gone = ctx.store().expunge(*ctx.account, ctx.selected->name(), std::nullopt);
    if (!gone.is_ok()) return ctx.fail(gone.status());
  }
  ctx.deselect();
  ctx.ok(cmd.name == "CLOSE" ? "Close completed" : "Unselect completed");
}

}  // namespace mailark::imap
