// Commands about the session rather than mail (RFC 3501 6.1, 6.2.1; RFC 2971 ID, RFC 5161
// ENABLE, RFC 2342 NAMESPACE, RFC 2177 IDLE). Each is a few lines, so they share a file.
#include "protocol/imap/imap_context.h"

namespace mailark::imap {

void cmd_capability(ImapContext& ctx, const Command& cmd) {
  if (!cmd.args.empty()) return ctx.bad("CAPABILITY takes no arguments");
  ctx.out += "* CAPABILITY " + capabilities(ctx) + "\r\n";
  ctx.ok("Capability completed");
}

void cmd_noop(ImapContext& ctx, const Command& cmd) {
  if (!cmd.args.empty()) return ctx.bad(cmd.name + " takes no arguments");
  ctx.ok(cmd.name == "CHECK" ? "Check completed" : "NOOP completed");
}

void cmd_logout(ImapContext& ctx, const Command& cmd) {
  if (!cmd.args.empty()) return ctx.bad("LOGOUT takes no arguments");
  ctx.out += "* BYE Logging out\r\n";
  ctx.ok("Logout completed");
  ctx.then = ImapContext::Then::kLogout;
}

void cmd_id(ImapContext& ctx, const Command& cmd) {
  if (cmd.args.size() != 1) return ctx.bad("ID takes one argument");
  const Value& v = cmd.args[0];
  if (v.kind != Value::Kind::kNil) {
    if (!v.is_list() || v.items.size() % 2 != 0 || v.items.size() > 60)
      return ctx.bad("ID expects NIL or a list of field and value pairs");
    for (size_t i = 0; i < v.items.size(); i += 2) {
      const Value& field = v.items[i];
      const Value& value = v.items[i + 1];
      if (!field.is_string() || field.text.size() > 30 ||
          !(value.is_string() || value.kind == Value::Kind::kNil) || value.text.size() > 1024)
        return ctx.bad("ID fields are strings of at most 30 octets, values at most 1024");
    }
  }
  ctx.out += "* ID (\"name\" \"mailark\" \"vendor\" \"mailark\" \"support-url\" NIL)\r\n";
  ctx.ok("ID completed");
}

void cmd_enable(ImapContext& ctx, const Command& cmd) {
  if (cmd.args.empty()) return ctx.bad("ENABLE needs at least one capability");
  std::string enabled;
  for (const Value& v : cmd.args) {
    if (!v.is_atom()) return ctx.bad("ENABLE takes capability names");
    std::string name = v.upper();
    bool* flag = nullptr;
    if (name == "CONDSTORE")
      flag = &ctx.condstore;
    else if (name == "QRESYNC")
      flag = &ctx.qresync;
    else if (name == "IMAP4REV2")
      flag = &ctx.rev2;
    else if (name == "UTF8=ACCEPT")
      flag = &ctx.utf8;
    if (!flag || *flag) continue;  // unknown or already on: not listed (RFC 5161 3.1)
    *flag = true;
    enabled += " " + name;
    if (name == "QRESYNC" && !ctx.condstore) {
      ctx.condstore = true;
      enabled += " CONDSTORE";
    }
  }
  ctx.out += "* ENABLED" + enabled + "\r\n";
  ctx.ok("Enabled");
}

void cmd_namespace(ImapContext& ctx, const Command& cmd) {
  if (!cmd.args.empty()) return ctx.bad("NAMESPACE takes no arguments");
  ctx.out += "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n";
  ctx.ok("Namespace completed");
}

void cmd_starttls(ImapContext& ctx, const Command& cmd) {
  if (!cmd.args.empty()) return ctx.bad("STARTTLS takes no arguments");
  if (ctx.tls) return ctx.bad("TLS is already active");
  if (!ctx.service.tls_available()) return ctx.no("[UNAVAILABLE] TLS is not configured");
  ctx.ok("Begin TLS negotiation now");
  ctx.then = ImapContext::Then::kStartTls;
}

void cmd_idle(ImapContext& ctx, const Command& cmd) {
  if (!cmd.args.empty()) return ctx.bad("IDLE takes no arguments");
  ctx.out += "+ idling\r\n";
  ctx.then = ImapContext::Then::kIdle;
}

}  // namespace mailark::imap
