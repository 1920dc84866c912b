// FETCH and UID FETCH (RFC 3501 6.4.5, 7.4.2) with CONDSTORE's MODSEQ item and CHANGEDSINCE
// modifier and QRESYNC's VANISHED modifier (RFC 7162 3.1.4, 3.2.6). ENVELOPE, BODY,
// BODYSTRUCTURE and top-level header sections come from the parse cache; the message bytes
// are read only for the sections that need them. Output goes out in batches, so a fetch of a
// whole large folder never builds one huge reply.
#include <algorithm>

#include <deque>

#include "base/log.h"
#include "protocol/imap/imap_context.h"
#include "protocol/imap/imap_format.h"
#include "storage/blob_store.h"

namespace mailark::imap {

namespace {

struct FetchItem {
  enum class Kind {
    kFlags,
    kUid,
    kInternalDate,
    kSize,
    kEnvelope,
    kBody,
    kBodyStructure,
    kModseq,
    kSection,
    kBinary
  };
  Kind kind;
  BodyFetch body;           // kSection
  BinaryFetch binary;       // kBinary
  std::string name;         // kSection: the response name ("BODY[TEXT]", "RFC822.HEADER")
  bool from_cache = false;  // kSection: answered from the parse cache
};

struct FetchPlan {
  std::vector<FetchItem> items;
  bool needs_info = false;
  bool needs_raw = false;
  bool sets_seen = false;
  bool has_flags = false;
  bool has_uid = false;
  bool has_modseq = false;
  uint64_t changed_since = 0;
  bool vanished = false;
};

constexpr size_t kBatchMessages = 256;
constexpr size_t kBatchBytes = 512 * 1024;
// Whole-message and TEXT sections of larger messages are streamed from the blob, so a
// session never holds such a message whole.
constexpr uint64_t kStreamAbove = 1 << 20;

Status add_item(const Value& v, FetchPlan* plan) {
  if (!v.is_atom()) return invalid("Invalid FETCH attribute");
  std::string up = v.upper();
  using K = FetchItem::Kind;
  auto simple = [&](K kind) { plan->items.push_back(FetchItem{kind, {}, {}, {}, false}); };
  if (up == "ALL" || up == "FAST" || up == "FULL") {
    simple(K::kFlags);
    simple(K::kInternalDate);
    simple(K::kSize);
    if (up != "FAST") simple(K::kEnvelope);
    if (up == "FULL") simple(K::kBody);
  } else if (up == "FLAGS") {
    simple(K::kFlags);
  } else if (up == "UID") {
    simple(K::kUid);
  } else if (up == "INTERNALDATE") {
    simple(K::kInternalDate);
  } else if (up == "RFC822.SIZE") {
    simple(K::kSize);
  } else if (up == "ENVELOPE") {
    simple(K::kEnvelope);
  } else if (up == "BODY") {
    simple(K::kBody);
  } else if (up == "BODYSTRUCTURE") {
    simple(K::kBodyStructure);
  } else if (up == "MODSEQ") {
    simple(K::kModseq);
  } else if (up == "RFC822" || up == "RFC822.HEADER" || up == "RFC822.TEXT") {
    FetchItem item{K::kSection, {}, {}, up, false};
    item.body.peek = up == "RFC822.HEADER";
    if (up == "RFC822.HEADER") item.body.section.text = Section::Text::kHeader;
    if (up == "RFC822.TEXT") item.body.section.text = Section::Text::kText;
    plan->items.push_back(std::move(item));
  } else if (up.compare(0, 5, "BODY[") == 0 || up.compare(0, 10, "BODY.PEEK[") == 0) {
    auto parsed = parse_body_fetch(v.text);
    if (!parsed.is_ok()) return parsed.status();
    FetchItem item{K::kSection, std::move(*parsed), {}, {}, false};
    item.name = body_response_name(item.body.section, item.body.partial);
    plan->items.push_back(std::move(item));
  } else if (up.compare(0, 7, "BINARY[") == 0 || up.compare(0, 12, "BINARY.PEEK[") == 0 ||
             up.compare(0, 12, "BINARY.SIZE[") == 0) {
    auto parsed = parse_binary_fetch(v.text);
    if (!parsed.is_ok()) return parsed.status();
    FetchItem item{K::kBinary, {}, std::move(*parsed), {}, false};
    item.name = binary_response_name(item.binary);
    plan->items.push_back(std::move(item));
  } else {
    return invalid("Unknown FETCH attribute " + v.text.substr(0, 40));
  }
  return Status::ok();
}

Result<FetchPlan> make_plan(const Command& cmd) {
  FetchPlan plan;
  const Value& attrs = cmd.args[1];
  if (attrs.is_list()) {
    if (attrs.items.empty()) return invalid("Empty FETCH attribute list");
    for (const Value& v : attrs.items) MK_RETURN_IF_ERROR(add_item(v, &plan));
  } else {
    MK_RETURN_IF_ERROR(add_item(attrs, &plan));
  }
  if (cmd.args.size() == 3) {
    const Value& mods = cmd.args[2];
    if (!mods.is_list() || mods.items.empty()) return invalid("Invalid FETCH modifiers");
    for (size_t i = 0; i < mods.items.size(); ++i) {
      std::string m = mods.items[i].upper();
      if (m == "CHANGEDSINCE" && i + 1 < mods.items.size() && mods.items[i + 1].is_atom()) {
        const std::string& n = mods.items[++i].text;
        char* end = nullptr;
        plan.changed_since = std::strtoull(n.c_str(), &end, 10);
        if (n.empty() || *end || n[0] == '-' || n.size() > 20 || plan.changed_since == 0)
          return invalid("Invalid CHANGEDSINCE");
      } else if (m == "VANISHED") {
        plan.vanished = true;
      } else {
        return invalid("Unknown FETCH modifier");
      }
    }
    if (plan.vanished && (!cmd.uid || plan.changed_since == 0))
      return invalid("VANISHED needs UID FETCH with CHANGEDSINCE");
  }
  for (FetchItem& item : plan.items) {
    using K = FetchItem::Kind;
    switch (item.kind) {
      case K::kFlags:
        plan.has_flags = true;
        break;
      case K::kUid:
        plan.has_uid = true;
        break;
      case K::kModseq:
        plan.has_modseq = true;
        break;
      case K::kEnvelope:
      case K::kBody:
      case K::kBodyStructure:
        plan.needs_info = true;
        break;
      case K::kSection: {
        const Section& s = item.body.section;
        item.from_cache = s.part.empty() && (s.text == Section::Text::kHeader ||
                                             s.text == Section::Text::kHeaderFields ||
                                             s.text == Section::Text::kHeaderFieldsNot);
        plan.needs_info = true;
        if (!item.from_cache) plan.needs_raw = true;
        if (!item.body.peek) plan.sets_seen = true;
        break;
      }
      case K::kBinary:
        plan.needs_info = true;
        plan.needs_raw = true;
        if (!item.binary.peek && !item.binary.size_only) plan.sets_seen = true;
        break;
      default:
        break;
    }
  }
  return plan;
}

std::string literal(std::string_view bytes) {
  std::string out = "{" + std::to_string(bytes.size()) + "}\r\n";
  out.append(bytes);
  return out;
}

// Output of one message: text, or a range of the message to stream from its blob.
struct Piece {
  std::string text;
  bool stream = false;
  Digest blob{};
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct FetchState {
  FetchPlan plan;
  std::vector<uint32_t> uids;
  // The items of `uids`, one each, when they were read already (CHANGEDSINCE asks the store
  // for exactly those) and nothing more than their rows is wanted; empty: read per batch.
  std::vector<ItemInfo> known;
  // The parse caches of the batch being answered; kept from batch to batch, so decoding the
  // next batch reuses their strings and vectors.
  std::vector<MessageInfo> infos;
  size_t pos = 0;
  bool missing = false;
  Status error;
  std::deque<Piece> pending;
  std::unique_ptr<BlobReader> reader;  // of pending.front() once streaming started
  uint64_t streamed = 0;
};

// The byte range of a section that can be streamed: the whole message or its TEXT, with
// the partial applied. nullopt for every other section.
std::optional<std::pair<uint64_t, uint64_t>> stream_range(const BodyFetch& body,
                                                          const MessageInfo& info, uint64_t size) {
  const Section& s = body.section;
  if (!s.part.empty() || (s.text != Section::Text::kNone && s.text != Section::Text::kText))
    return std::nullopt;
  uint64_t start = s.text == Section::Text::kText ? std::min(info.header_size, size) : 0;
  uint64_t length = size - start;
  if (body.partial) {
    uint64_t origin = std::min(body.partial->origin, length);
    start += origin;
    length = std::min(length - origin, body.partial->count);
  }
  return std::make_pair(start, length);
}

// Reads the whole message once, so nothing is sent from a blob that fails verification.
Status verify_message(ImapContext& ctx, const Digest& blob) {
  MK_ASSIGN_OR_RETURN(auto reader, ctx.store().open_message(*ctx.account, blob));
  std::string scratch;
  while (true) {
    scratch.clear();
    MK_ASSIGN_OR_RETURN(size_t n, reader->read(kBatchBytes, &scratch));
    if (n == 0) return Status::ok();
  }
}

// Appends pending output to ctx.out; false when it stopped because the batch is full.
bool drain(ImapContext& ctx, FetchState& st) {
  while (!st.pending.empty()) {
    Piece& p = st.pending.front();
    if (!p.stream) {
      ctx.out += p.text;
      st.pending.pop_front();
      continue;
    }
    if (!st.reader) {
      auto opened = ctx.store().open_message(*ctx.account, p.blob);
      if (!opened.is_ok()) {
        st.error = opened.status();
        return true;
      }
      st.reader = std::move(*opened);
      std::string skip;
      for (uint64_t skipped = 0; skipped < p.offset;) {
        skip.clear();
        auto n = st.reader->read(
            static_cast<size_t>(std::min<uint64_t>(kBatchBytes, p.offset - skipped)), &skip);
        if (!n.is_ok() || *n == 0) {
          st.error = n.is_ok() ? corrupt("message shorter than its size") : n.status();
          return true;
        }
        skipped += *n;
      }
      st.streamed = 0;
    }
    while (st.streamed < p.length) {
      auto n = st.reader->read(
          static_cast<size_t>(std::min<uint64_t>(kBatchBytes, p.length - st.streamed)), &ctx.out);
      if (!n.is_ok() || *n == 0) {
        st.error = n.is_ok() ? corrupt("message shorter than its size") : n.status();
        return true;
      }
      st.streamed += *n;
      if (ctx.out.size() >= kBatchBytes && st.streamed < p.length) return false;
    }
    st.reader.reset();
    st.pending.pop_front();
  }
  return true;
}

bool has_seen(const std::vector<std::string>& flags) {
  return std::binary_search(flags.begin(), flags.end(), std::string("\\Seen"));
}

// One message's "* n FETCH (...)" line.
Status format_message(ImapContext& ctx, const FetchPlan& plan, ItemInfo& item,
                      const MessageInfo* info, bool flags_changed, std::deque<Piece>* out) {
  const MailboxView& view = *ctx.selected;
  std::optional<std::string> raw;
  std::string line = "* " + std::to_string(*view.seq_of(item.uid)) + " FETCH (";
  bool first = true;
  auto sep = [&] {
    if (!first) line += ' ';
    first = false;
  };
  if (ctx.uid_command && !plan.has_uid) {
    sep();
    line += "UID " + std::to_string(item.uid);
  }
  bool recent = !ctx.rev2 && view.is_recent(item.uid);
  using K = FetchItem::Kind;
  for (const FetchItem& f : plan.items) {
    sep();
    switch (f.kind) {
      case K::kFlags:
        line += "FLAGS " + format_flags(item.flags, recent);
        break;
      case K::kUid:
        line += "UID " + std::to_string(item.uid);
        break;
      case K::kInternalDate:
        line += "INTERNALDATE \"" + format_internal_date(item.internal_date_ms) + "\"";
        break;
      case K::kSize:
        line += "RFC822.SIZE " + std::to_string(item.size);
        break;
      case K::kEnvelope:
        line += "ENVELOPE ";
        format_envelope_to(line, info->envelope);
        break;
      case K::kBody:
        line += "BODY ";
        format_bodystructure_to(line, info->body, false);
        break;
      case K::kBodyStructure:
        line += "BODYSTRUCTURE ";
        format_bodystructure_to(line, info->body, true);
        break;
      case K::kModseq:
        line += "MODSEQ (" + std::to_string(item.modseq) + ")";
        break;
      case K::kSection: {
        auto range = stream_range(f.body, *info, item.size);
        if (range && item.size > kStreamAbove) {
          if (!raw) MK_RETURN_IF_ERROR(verify_message(ctx, item.blob));
          line += f.name + " {" + std::to_string(range->second) + "}\r\n";
          out->push_back(Piece{std::move(line), false, {}, 0, 0});
          line.clear();
          out->push_back(Piece{{}, true, item.blob, range->first, range->second});
          break;
        }
        std::string bytes;
        std::optional<std::string> cached;
        if (f.from_cache) cached = header_section_from_cache(*info, f.body.section);
        if (cached) {
          bytes = std::move(*cached);
        } else {
          if (!raw) {
            MK_ASSIGN_OR_RETURN(std::string loaded,
                                ctx.store().read_message(*ctx.account, item.blob));
            raw = std::move(loaded);
          }
          MK_ASSIGN_OR_RETURN(bytes, extract_section(*raw, *info, f.body.section));
        }
        line += f.name + " " + literal(apply_partial(bytes, f.body.partial));
        break;
      }
      case K::kBinary: {
        if (!raw) {
          MK_ASSIGN_OR_RETURN(std::string loaded,
                              ctx.store().read_message(*ctx.account, item.blob));
          raw = std::move(loaded);
        }
        MK_ASSIGN_OR_RETURN(std::string decoded, extract_binary(*raw, *info, f.binary.part));
        if (f.binary.size_only) {
          line += f.name + " " + std::to_string(decoded.size());
          break;
        }
        std::string_view bytes = apply_partial(decoded, f.binary.partial);
        // NUL needs literal8 (RFC 3516 4.2).
        if (bytes.find('\0') != std::string_view::npos)
          line += f.name + " ~" + literal(bytes);
        else
          line += f.name + " " + literal(bytes);
        break;
      }
    }
  }
  if (flags_changed && !plan.has_flags) line += " FLAGS " + format_flags(item.flags, recent);
  if ((plan.changed_since || (ctx.condstore && flags_changed)) && !plan.has_modseq)
    line += " MODSEQ (" + std::to_string(item.modseq) + ")";
  line += ")\r\n";
  out->push_back(Piece{std::move(line), false, {}, 0, 0});
  return Status::ok();
}

// Answers the next batch; true when more remain.
bool fetch_batch(ImapContext& ctx, FetchState& st) {
  MailboxView& view = *ctx.selected;
  if (!drain(ctx, st)) return true;
  size_t start_size = ctx.out.size();
  while (st.pos < st.uids.size() && st.error.is_ok()) {
    // A batch is a dense stretch of UIDs: the store reads everything between its first and
    // last UID, so a sparse set must not make it read the folder in between.
    size_t end = st.pos + 1;
    while (end < st.uids.size() && end - st.pos < kBatchMessages &&
           st.uids[end] - st.uids[st.pos] < 2 * kBatchMessages)
      ++end;
    std::vector<MessageInfo>& infos = st.infos;
    Result<std::vector<ItemInfo>> found =
        !st.known.empty()
            ? Result<std::vector<ItemInfo>>(
                  std::vector<ItemInfo>(st.known.begin() + static_cast<ptrdiff_t>(st.pos),
                                        st.known.begin() + static_cast<ptrdiff_t>(end)))
            : ctx.store().fetch(*ctx.account, view.name(), st.uids[st.pos], st.uids[end - 1],
                                st.plan.needs_info ? &infos : nullptr);
    if (!found.is_ok()) {
      st.error = found.status();
      break;
    }
    std::vector<ItemInfo>& items = *found;
    // Keep only the requested UIDs (the range may hold others).
    std::vector<ItemInfo> wanted;
    std::vector<const MessageInfo*> wanted_infos;  // parse caches stay where fetch put them
    std::vector<size_t> index;                     // position of wanted[i] in st.uids
    size_t k = st.pos;
    for (size_t j = 0; j < items.size(); ++j) {
      ItemInfo& item = items[j];
      while (k < end && st.uids[k] < item.uid) {
        st.missing = true;
        ++k;
      }
      if (k < end && st.uids[k] == item.uid) {
        wanted.push_back(std::move(item));
        wanted_infos.push_back(st.plan.needs_info ? &infos[j] : nullptr);
        index.push_back(k);
        ++k;
      }
    }
    if (k < end) st.missing = true;
    // A message that will be streamed ends its batch.
    if (st.plan.needs_raw) {
      for (size_t i = 0; i < wanted.size(); ++i) {
        if (wanted[i].size <= kStreamAbove) continue;
        wanted.resize(i + 1);
        end = index[i] + 1;
        break;
      }
    }
    std::vector<bool> flags_changed(wanted.size(), false);
    if (st.plan.sets_seen && !view.read_only()) {
      std::vector<uint32_t> unseen;
      for (const ItemInfo& item : wanted)
        if (!has_seen(item.flags)) unseen.push_back(item.uid);
      if (!unseen.empty()) {
        auto changed =
            ctx.store().store_flags(*ctx.account, view.name(), unseen, FlagOp::kAdd, {"\\Seen"});
        if (!changed.is_ok()) {
          st.error = changed.status();
          break;
        }
        for (const ItemInfo& c : changed->changed) {
          for (size_t i = 0; i < wanted.size(); ++i) {
            if (wanted[i].uid != c.uid) continue;
            wanted[i].flags = c.flags;
            wanted[i].modseq = c.modseq;
            flags_changed[i] = true;
            view.reported(c.uid, c.modseq);
          }
        }
      }
    }
    for (size_t i = 0; i < wanted.size(); ++i) {
      if (st.plan.changed_since && wanted[i].modseq <= st.plan.changed_since) continue;
      Status s =
          format_message(ctx, st.plan, wanted[i], wanted_infos[i], flags_changed[i], &st.pending);
      if (!s.is_ok()) {
        MK_LOG_ERROR("imap {}: cannot fetch uid {} of {}: {}", ctx.user, wanted[i].uid, view.name(),
                     s.to_string());
        st.error = s;
        st.pending.clear();
        break;
      }
      if (!drain(ctx, st)) {
        st.pos = end;
        return true;
      }
    }
    st.pos = end;
    if (ctx.out.size() - start_size > kBatchBytes) break;
  }
  if (!st.error.is_ok() && (st.reader || !st.pending.empty())) {
    // A literal was begun and cannot be finished: the connection cannot go on.
    MK_LOG_ERROR("imap {}: message stream failed mid-literal: {}", ctx.user, st.error.to_string());
    ctx.then = ImapContext::Then::kDrop;
    return false;
  }
  return st.pos < st.uids.size() && st.error.is_ok();
}

void fetch_done(ImapContext& ctx, const FetchState& st) {
  if (st.error.code() == ErrorCode::kInvalid)
    return ctx.no("[UNKNOWN-CTE] Cannot decode the part's Content-Transfer-Encoding");
  if (!st.error.is_ok()) return ctx.fail(st.error);
  if (st.missing && !ctx.uid_command)
    return ctx.no("[EXPUNGEISSUED] Some of the requested messages no longer exist");
  ctx.ok("Fetch completed");
}

}  // namespace

void cmd_fetch(ImapContext& ctx, const Command& cmd) {
  if (cmd.args.size() < 2 || cmd.args.size() > 3 || !cmd.args[0].is_atom())
    return ctx.bad("FETCH takes a sequence set and attributes");
  auto plan = make_plan(cmd);
  if (!plan.is_ok()) return ctx.bad(plan.status().message());
  if (plan->vanished && !ctx.qresync) return ctx.bad("QRESYNC is not enabled");
  if (plan->has_modseq || plan->changed_since) ctx.condstore = true;
  auto uids = ctx.resolve_set(cmd.args[0], cmd.uid);
  if (!uids.is_ok()) return ctx.bad(uids.status().message());

  if (plan->vanished) {
    std::vector<SeqRange> ranges;
    if (cmd.args[0].text == "$") {
      for (uint32_t u : ctx.saved_uids) ranges.push_back(SeqRange{u, u});
    } else {
      ranges = *parse_sequence_set(cmd.args[0].text);
    }
    auto changes =
        ctx.store().changes_since(*ctx.account, ctx.selected->name(), plan->changed_since);
    if (!changes.is_ok()) return ctx.fail(changes.status());
    std::vector<uint32_t> gone;
    for (uint32_t uid : changes->vanished) {
      for (SeqRange r : ranges) {
        uint32_t lo = std::min(r.lo, r.hi), hi = std::max(r.lo, r.hi);
        if (uid >= lo && uid <= hi) {
          gone.push_back(uid);
          break;
        }
      }
    }
    if (!gone.empty()) ctx.out += "* VANISHED (EARLIER) " + format_sequence_set(gone) + "\r\n";
  }

  std::vector<ItemInfo> known_items;
  if (plan->changed_since) {
    // Only what changed: ask the store (an index on modseq) instead of walking everything;
    // when FLAGS, UID and MODSEQ are all that is asked, those rows are the answer.
    auto changes =
        ctx.store().changes_since(*ctx.account, ctx.selected->name(), plan->changed_since);
    if (!changes.is_ok()) return ctx.fail(changes.status());
    std::vector<ItemInfo> known;
    for (ItemInfo& item : changes->changed)
      if (std::binary_search(uids->begin(), uids->end(), item.uid))
        known.push_back(std::move(item));
    std::sort(known.begin(), known.end(),
              [](const ItemInfo& a, const ItemInfo& b) { return a.uid < b.uid; });
    uids->clear();
    for (const ItemInfo& item : known) uids->push_back(item.uid);
    if (!plan->needs_info && !plan->needs_raw) known_items = std::move(known);
  }
  auto state = std::make_shared<FetchState>();
  state->plan = std::move(*plan);
  state->uids = std::move(*uids);
  state->known = std::move(known_items);
  if (!fetch_batch(ctx, *state)) return fetch_done(ctx, *state);
  ImapContext* c = &ctx;
  ctx.more = [c, state] {
    if (fetch_batch(*c, *state)) return true;
    fetch_done(*c, *state);
    return false;
  };
}

}  // namespace mailark::imap
