// QUOTA (RFC 9208): one quota root "" per account, the storage limit from the directory.
// Quotas are set by the administrator (`mailark user quota`), never over IMAP.
#include "protocol/imap/imap_context.h"

namespace mailark::imap {

namespace {

// "* QUOTA "" (STORAGE used limit)" in KiB, or empty when the account has no limit.
Result<std::string> quota_line(ImapContext& ctx) {
  MK_ASSIGN_OR_RETURN(User user, ctx.service.directory().find_user(ctx.user));
  if (user.quota_bytes == 0) return std::string();
  MK_ASSIGN_OR_RETURN(MailStore::Usage usage, ctx.store().usage(*ctx.account));
  return "* QUOTA \"\" (STORAGE " + std::to_string((usage.bytes + 1023) / 1024) + " " +
         std::to_string(user.quota_bytes / 1024) + ")\r\n";
}

}  // namespace

void cmd_quota(ImapContext& ctx, const Command& cmd) {
  if (cmd.name == "SETQUOTA") return ctx.no("[NOPERM] Quotas are set by the administrator");
  if (cmd.args.size() != 1 || !cmd.args[0].is_astring())
    return ctx.bad(cmd.name + " takes one argument");
  auto line = quota_line(ctx);
  if (!line.is_ok()) return ctx.fail(line.status());
  if (cmd.name == "GETQUOTA") {
    if (!cmd.args[0].text.empty() || line->empty())
      return ctx.no("[NONEXISTENT] No such quota root");
    ctx.out += *line;
    return ctx.ok("Getquota completed");
  }
  auto name = ctx.mailbox_from_wire(cmd.args[0]);
  if (!name.is_ok()) return ctx.bad(name.status().message());
  auto folder = ctx.store().folder(*ctx.account, *name);
  if (!folder.is_ok()) return ctx.fail(folder.status());
  ctx.out +=
      "* QUOTAROOT " + ctx.mailbox_to_wire(folder->name) + (line->empty() ? "" : " \"\"") + "\r\n";
  ctx.out += *line;
  ctx.ok("Getquotaroot completed");
}

}  // namespace mailark::imap
