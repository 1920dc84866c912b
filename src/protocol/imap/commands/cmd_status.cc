// STATUS (RFC 3501 6.3.10, RFC 9051 6.3.11 SIZE and DELETED, RFC 7162 HIGHESTMODSEQ); the
// same counters serve LIST-STATUS (RFC 5819).
#include <algorithm>

#include "protocol/imap/imap_context.h"

namespace mailark::imap {

Result<std::string> status_items(ImapContext& ctx, const FolderInfo& folder,
                                 const std::vector<Value>& items) {
  std::string out;
  std::optional<std::vector<ItemInfo>> all;  // read only for the counters that need it
  auto load = [&]() -> Status {
    if (all) return Status::ok();
    MK_ASSIGN_OR_RETURN(auto fetched, ctx.store().fetch(*ctx.account, folder.name));
    all = std::move(fetched);
    return Status::ok();
  };
  for (const Value& v : items) {
    if (!v.is_atom()) return invalid("Invalid STATUS item");
    std::string item = v.upper();
    uint64_t n = 0;
    if (item == "MESSAGES") {
      n = folder.messages;
    } else if (item == "UIDNEXT") {
      n = folder.uidnext;
    } else if (item == "UIDVALIDITY") {
      n = folder.uidvalidity;
    } else if (item == "UNSEEN") {
      n = folder.unseen;
    } else if (item == "HIGHESTMODSEQ") {
      n = folder.highestmodseq;
    } else if (item == "SIZE") {
      n = folder.bytes;
    } else if (item == "RECENT") {
      uint32_t first = ctx.service.recent().first_unclaimed(folder.guid);
      if (first < folder.uidnext) {
        MK_RETURN_IF_ERROR(load());
        n = static_cast<uint64_t>(std::count_if(all->begin(), all->end(),
                                                [&](const ItemInfo& i) { return i.uid >= first; }));
      }
    } else if (item == "DELETED") {
      MK_RETURN_IF_ERROR(load());
      n = static_cast<uint64_t>(std::count_if(all->begin(), all->end(), [](const ItemInfo& i) {
        return std::binary_search(i.flags.begin(), i.flags.end(), std::string("\\Deleted"));
      }));
    } else {
      return invalid("Unknown STATUS item " + v.text.substr(0, 40));
    }
    if (!out.empty()) out += ' ';
    out += item + " " + std::to_string(n);
  }
  if (std::any_of(items.begin(), items.end(),
                  [](const Value& v) { return v.upper() == "HIGHESTMODSEQ"; }))
    ctx.condstore = true;  // a CONDSTORE enabling command (RFC 7162 3.1)
  return "(" + out + ")";
}

void cmd_status(ImapContext& ctx, const Command& cmd) {
  if (cmd.args.size() != 2 || !cmd.args[1].is_list() || cmd.args[1].items.empty())
    return ctx.bad("STATUS takes a mailbox name and a list of items");
  auto name = ctx.mailbox_from_wire(cmd.args[0]);
  if (!name.is_ok()) return ctx.no("[CANNOT] " + name.status().message());
  auto folder = ctx.store().folder(*ctx.account, *name);
  if (!folder.is_ok()) return ctx.fail(folder.status());
  // Calendars and address books are not mailboxes: LIST does not show them either.
  if (folder->kind != "mail") return ctx.fail(not_found("no mailbox " + folder->name));
  auto items = status_items(ctx, *folder, cmd.args[1].items);
  if (!items.is_ok()) {
    if (items.status().code() == ErrorCode::kInvalid) return ctx.bad(items.status().message());
    return ctx.fail(items.status());
  }
  ctx.out += "* STATUS " + ctx.mailbox_to_wire(folder->name) + " " + *items + "\r\n";
  ctx.ok("Status completed");
}

}  // namespace mailark::imap
