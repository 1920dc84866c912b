// APPEND (RFC 3501 6.3.11) with UIDPLUS's APPENDUID (RFC 4315) and the APPENDLIMIT size
// bound; also the flag-list parser shared with STORE.
#include "protocol/imap/commands/flags.h"
#include "protocol/imap/imap_context.h"

namespace mailark::imap {

Result<std::vector<std::string>> parse_flags(const std::vector<Value>& values) {
  static const char* const kSystem[] = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen",
                                        "\\Draft"};
  std::vector<std::string> out;
  for (const Value& v : values) {
    if (!v.is_atom() || v.text.empty()) return invalid("Invalid flag");
    if (v.text[0] == '\\') {
      if (strcasecmp(v.text.c_str(), "\\Recent") == 0) continue;
      const char* system = nullptr;
      for (const char* s : kSystem)
        if (strcasecmp(s, v.text.c_str()) == 0) system = s;
      if (!system) return invalid("Invalid system flag " + v.text.substr(0, 40));
      out.push_back(system);
      continue;
    }
    for (char c : v.text) {
      auto u = static_cast<unsigned char>(c);
      if (u <= ' ' || u >= 0x7f || c == '(' || c == ')' || c == '{' || c == '%' || c == '*' ||
          c == '"' || c == '\\' || c == ']')
        return invalid("Invalid keyword");
    }
    if (v.text.size() > 128) return invalid("Keyword too long");
    out.push_back(v.text);
  }
  return normalize_flags(std::move(out));
}

void cmd_append(ImapContext& ctx, const Command& cmd) {
  const auto& args = cmd.args;
  if (args.size() < 2 || args.size() > 4 || !args.back().is_string())
    return ctx.bad("APPEND takes a mailbox, optional flags and date, and a message literal");
  auto name = ctx.mailbox_from_wire(args[0]);
  if (!name.is_ok()) return ctx.bad(name.status().message());
  MessageInput input;
  for (size_t i = 1; i + 1 < args.size(); ++i) {
    if (args[i].is_list()) {
      auto flags = parse_flags(args[i].items);
      if (!flags.is_ok()) return ctx.bad(flags.status().message());
      input.flags = std::move(*flags);
    } else if (args[i].is_string()) {
      auto date = parse_internal_date(args[i].text);
      if (!date) return ctx.bad("Invalid date-time");
      input.internal_date_ms = *date;
    } else {
      return ctx.bad("Invalid APPEND arguments");
    }
  }
  const std::string& message = args.back().text;
  // A literal is CHAR8 (RFC 3501 9): NUL only in a literal8 (BINARY, RFC 3516 4.4), which is
  // stored as it came.
  if (!args.back().literal8 && message.find('\0') != std::string::npos)
    return ctx.bad("NUL in message literal; send it as literal8");
  if (message.empty()) return ctx.no("[CANNOT] Cannot save an empty message");
  if (message.size() > ctx.options().max_message_size)
    return ctx.no("[TOOBIG] Message exceeds the size limit");
  input.raw = message;
  auto saved = ctx.store().append(*ctx.account, *name, input);
  if (!saved.is_ok()) {
    if (saved.status().code() == ErrorCode::kNotFound)
      return ctx.no("[TRYCREATE] Mailbox does not exist");
    return ctx.fail(saved.status());
  }
  ctx.ok("[APPENDUID " + std::to_string(saved->uidvalidity) + " " + std::to_string(saved->uid) +
         "] Append completed");
}

}  // namespace mailark::imap
