// CREATE, DELETE, RENAME, SUBSCRIBE and UNSUBSCRIBE (RFC 3501 6.3.3-7), CREATE's USE option
// (RFC 6154 5.2). The store does the hierarchy work (parents on create, children on rename).
#include "protocol/imap/imap_context.h"

namespace mailark::imap {

namespace {

// The name without a trailing hierarchy separator ("a/b/" creates "a/b", RFC 3501 6.3.3).
Result<std::string> folder_argument(ImapContext& ctx, const Value& v) {
  MK_ASSIGN_OR_RETURN(std::string name, ctx.mailbox_from_wire(v));
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  return normalize_folder_name(name);
}

bool is_special_use(const std::string& attr) {
  static const char* const kUses[] = {"\\All",  "\\Archive", "\\Drafts", "\\Flagged",
                                      "\\Junk", "\\Sent",    "\\Trash"};
  for (const char* u : kUses)
    if (strcasecmp(u, attr.c_str()) == 0) return true;
  return false;
}

}  // namespace

void cmd_create(ImapContext& ctx, const Command& cmd) {
  if (cmd.args.empty() || cmd.args.size() > 2) return ctx.bad("CREATE takes a mailbox name");
  auto name = folder_argument(ctx, cmd.args[0]);
  if (!name.is_ok()) return ctx.no("[CANNOT] " + name.status().message());
  std::string special_use;
  if (cmd.args.size() == 2) {
    const Value& opts = cmd.args[1];
    if (!opts.is_list() || opts.items.size() != 2 || opts.items[0].upper() != "USE" ||
        !opts.items[1].is_list() || opts.items[1].items.size() > 1)
      return ctx.bad("Invalid CREATE parameters");
    if (!opts.items[1].items.empty()) {
      special_use = opts.items[1].items[0].text;
      if (!is_special_use(special_use))
        return ctx.no("[USEATTR] Unsupported special-use attribute");
      special_use[1] = static_cast<char>(std::toupper(static_cast<unsigned char>(special_use[1])));
    }
  }
  if (*name == "INBOX") return ctx.no("[ALREADYEXISTS] INBOX always exists");
  auto created = ctx.store().create_folder(*ctx.account, *name, special_use);
  if (!created.is_ok()) return ctx.fail(created.status());
  ctx.ok("Create completed");
}

void cmd_delete(ImapContext& ctx, const Command& cmd) {
  if (cmd.args.size() != 1) return ctx.bad("DELETE takes a mailbox name");
  auto name = folder_argument(ctx, cmd.args[0]);
  if (!name.is_ok()) return ctx.no("[CANNOT] " + name.status().message());
  if (*name == "INBOX") return ctx.no("[CANNOT] INBOX cannot be deleted");
  Status st = ctx.store().delete_folder(*ctx.account, *name);
  if (!st.is_ok()) return ctx.fail(st);
  if (ctx.selected && ctx.selected->name() == *name) {
    ctx.out += "* BYE Selected mailbox was deleted\r\n";
    ctx.then = ImapContext::Then::kLogout;
  }
  ctx.ok("Delete completed");
}

void cmd_rename(ImapContext& ctx, const Command& cmd) {
  if (cmd.args.size() != 2) return ctx.bad("RENAME takes two mailbox names");
  auto from = folder_argument(ctx, cmd.args[0]);
  auto to = folder_argument(ctx, cmd.args[1]);
  if (!from.is_ok() || !to.is_ok())
    return ctx.no("[CANNOT] " + (from.is_ok() ? to.status() : from.status()).message());
  if (*to == "INBOX") return ctx.no("[ALREADYEXISTS] INBOX always exists");
  if (*from == *to) return ctx.no("[ALREADYEXISTS] Mailbox already exists");
  if (to->size() > from->size() && to->compare(0, from->size() + 1, *from + "/") == 0)
    return ctx.no("[CANNOT] Cannot move a mailbox into itself");
  Status st = ctx.store().rename_folder(*ctx.account, *from, *to);
  if (!st.is_ok()) return ctx.fail(st);
  if (ctx.selected && *from != "INBOX") {
    const std::string& sel = ctx.selected->name();
    if (sel == *from)
      ctx.selected->set_name(*to);
    else if (sel.compare(0, from->size() + 1, *from + "/") == 0)
      ctx.selected->set_name(*to + sel.substr(from->size()));
  }
  ctx.ok("Rename completed");
}

void cmd_subscribe(ImapContext& ctx, const Command& cmd) {
  bool subscribe = cmd.name == "SUBSCRIBE";
  if (cmd.args.size() != 1) return ctx.bad(cmd.name + " takes a mailbox name");
  auto name = folder_argument(ctx, cmd.args[0]);
  if (!name.is_ok()) return ctx.no("[CANNOT] " + name.status().message());
  Status st = ctx.store().set_subscribed(*ctx.account, *name, subscribe);
  if (!st.is_ok()) return ctx.fail(st);
  ctx.ok(subscribe ? "Subscribe completed" : "Unsubscribe completed");
}

}  // namespace mailark::imap
