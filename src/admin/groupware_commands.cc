// `mailark calendar import|export` and `mailark contacts import|export`: moving calendars
// (iCalendar files) and address books (vCard files) in and out of an account, for
// migrations. An import is idempotent: an object whose UID the collection holds replaces
// that resource, so importing the same file twice creates nothing new. Every object is
// validated before the first one is stored; one invalid object stops the import unchanged.
#include <algorithm>
#include <cstdio>

#include "admin/commands.h"
#include "base/hash.h"
#include "base/log.h"
#include "mailstore/groupware.h"
#include "os/file.h"
#include "server/services.h"

namespace mailark::admin {
namespace {

struct Opened {
  std::unique_ptr<Services> services;
  Account account;
  DavCollection collection;
};

Result<Opened> open_collection(const std::string& config_path, const std::string& address,
                               CollectionKind kind, const std::string& segment, bool create) {
  MK_ASSIGN_OR_RETURN(Config config, load_config(config_path));
  set_log_level(LogLevel::kWarn);
  Opened o;
  MK_ASSIGN_OR_RETURN(o.services, open_services(config));
  MK_ASSIGN_OR_RETURN(std::string normalized, normalize_address(address));
  MK_ASSIGN_OR_RETURN(User user, o.services->directory->find_user(normalized));
  MK_ASSIGN_OR_RETURN(
      o.account, o.services->store->open_or_create_account(user.database, user.guid, user.address));
  o.account.quota_bytes = user.quota_bytes;
  MailStore& store = *o.services->store;
  MK_RETURN_IF_ERROR(store.ensure_default_collections(o.account));
  auto c = store.collection(o.account, kind, segment);
  if (c.is_ok()) {
    o.collection = std::move(*c);
  } else if (c.status().code() == ErrorCode::kNotFound && create) {
    CollectionProps props{{"{DAV:}displayname", segment}};
    MK_ASSIGN_OR_RETURN(o.collection, store.create_collection(o.account, kind, segment, props));
  } else {
    return c.status();
  }
  return o;
}

Result<std::string> read_input(const std::string& file) {
  if (file != "-") return posix_fs().read_file(file);
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) out.append(buf, n);
  return out;
}

Status write_output(const std::string& file, const std::string& text) {
  if (file == "-" || file.empty()) {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size())
      return io_error("cannot write to stdout");
    return Status::ok();
  }
  return publish_file(posix_fs(), file, text);
}

// A resource name for an object: its UID when that is a plain name, else a digest of it.
std::string name_for(const std::string& uid, const char* extension) {
  bool plain = !uid.empty() && uid.size() <= 200;
  for (char c : uid)
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                      c == '.' || c == '@');
  std::string base = plain ? uid : to_hex(sha256(uid)).substr(0, 32);
  return base + extension;
}

// A vCard without UID gets one derived from its content, so importing it again finds it.
std::string with_uid(const std::string& card, std::string* uid) {
  *uid = "mailark-" + to_hex(sha256(card)).substr(0, 32);
  size_t version = card.find("VERSION:");
  size_t eol = version == std::string::npos ? std::string::npos : card.find('\n', version);
  if (eol == std::string::npos) return card;
  return card.substr(0, eol + 1) + "UID:" + *uid + "\r\n" + card.substr(eol + 1);
}

struct ImportCounts {
  int created = 0, updated = 0, unchanged = 0;
};

int import_objects(Opened& o, const std::vector<std::string>& objects,
                   const std::vector<std::string>& uids, const char* extension, bool quiet) {
  MailStore& store = *o.services->store;
  ImportCounts counts;
  for (size_t i = 0; i < objects.size(); ++i) {
    std::string name = name_for(uids[i], extension);
    auto holder = store.resource_by_uid(o.account, o.collection, uids[i]);
    if (holder.is_ok())
      name = holder->name;
    else if (holder.status().code() != ErrorCode::kNotFound)
      return fail(holder.status().message());
    DavPut put;
    put.body = objects[i];
    auto r = store.put_resource(o.account, o.collection, name, put);
    if (!r.is_ok()) return fail(r.status().message());
    using Outcome = DavPutResult::Outcome;
    if (r->outcome == Outcome::kCreated) {
      ++counts.created;
    } else if (r->outcome == Outcome::kReplaced) {
      if (holder.is_ok() && holder->blob == r->resource.blob)
        ++counts.unchanged;
      else
        ++counts.updated;
    } else {
      return fail("object " + std::to_string(i + 1) + " (UID " + uids[i] +
                  ") was not stored: " + (r->reason.empty() ? "refused" : r->reason) + "; " +
                  std::to_string(counts.created + counts.updated + counts.unchanged) +
                  " objects before it were");
    }
  }
  if (!quiet)
    std::printf("%s: %d created, %d updated, %d unchanged\n", o.collection.folder.name.c_str(),
                counts.created, counts.updated, counts.unchanged);
  return kExOk;
}

}  // namespace

int calendar_import(const std::string& config_path, const std::string& address,
                    const std::string& calendar, const std::string& file, bool quiet) {
  auto text = read_input(file);
  if (!text.is_ok()) return fail(text.status().message(), kExIoErr);
  auto objects = split_calendar(*text);
  if (!objects.is_ok())
    return fail(file + ": " + objects.status().message() + "; nothing was imported", kExDataErr);
  std::vector<std::string> uids, components;
  for (size_t i = 0; i < objects->size(); ++i) {
    auto info = parse_calendar_object((*objects)[i]);
    if (!info.is_ok())
      return fail(file + ": object " + std::to_string(i + 1) + ": " + info.status().message() +
                      "; nothing was imported",
                  kExDataErr);
    uids.push_back(info->uid);
    components.push_back(info->component);
  }
  auto opened = open_collection(config_path, address, CollectionKind::kCalendar, calendar, true);
  if (!opened.is_ok()) return fail(opened.status().message());
  const auto& allowed = opened->collection.components;
  for (size_t i = 0; i < components.size(); ++i) {
    if (std::find(allowed.begin(), allowed.end(), components[i]) == allowed.end())
      return fail(file + ": object " + std::to_string(i + 1) + " is a " + components[i] +
                      ", which calendar " + calendar + " does not take; nothing was imported",
                  kExDataErr);
  }
  return import_objects(*opened, *objects, uids, ".ics", quiet);
}

int contacts_import(const std::string& config_path, const std::string& address,
                    const std::string& book, const std::string& file, bool quiet) {
  auto text = read_input(file);
  if (!text.is_ok()) return fail(text.status().message(), kExIoErr);
  auto cards = split_vcards(*text);
  if (!cards.is_ok())
    return fail(file + ": " + cards.status().message() + "; nothing was imported", kExDataErr);
  std::vector<std::string> objects, uids;
  for (size_t i = 0; i < cards->size(); ++i) {
    auto info = parse_vcard((*cards)[i]);
    if (!info.is_ok())
      return fail(file + ": card " + std::to_string(i + 1) + ": " + info.status().message() +
                      "; nothing was imported",
                  kExDataErr);
    std::string uid = info->uid;
    objects.push_back(uid.empty() ? with_uid((*cards)[i], &uid) : (*cards)[i]);
    uids.push_back(uid);
  }
  auto opened = open_collection(config_path, address, CollectionKind::kContacts, book, true);
  if (!opened.is_ok()) return fail(opened.status().message());
  return import_objects(*opened, objects, uids, ".vcf", quiet);
}

namespace {

// The VCALENDAR body (everything between BEGIN:VCALENDAR and END:VCALENDAR, unfolded lines
// kept as they are) split into its top-level components.
struct CalendarParts {
  std::vector<std::pair<std::string, std::string>> timezones;  // TZID, block
  std::vector<std::string> components;
};

void collect_parts(const std::string& object, CalendarParts& out) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < object.size()) {
    size_t nl = object.find('\n', pos);
    if (nl == std::string::npos) nl = object.size();
    std::string line = object.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
    pos = nl + 1;
  }
  int depth = 0;
  std::string block, tzid;
  bool in_tz = false;
  for (const auto& line : lines) {
    bool begin = line.rfind("BEGIN:", 0) == 0;
    bool end = line.rfind("END:", 0) == 0;
    if (begin) ++depth;
    if (depth >= 2) {
      if (depth == 2 && begin) {
        block.clear();
        tzid.clear();
        in_tz = line == "BEGIN:VTIMEZONE";
      }
      block += line + "\r\n";
      if (in_tz && depth == 2 && line.rfind("TZID:", 0) == 0) tzid = line.substr(5);
    }
    if (end) {
      if (depth == 2) {
        if (in_tz) {
          bool seen = false;
          for (const auto& [id, b] : out.timezones) seen = seen || id == tzid;
          if (!seen) out.timezones.emplace_back(tzid, block);
        } else {
          out.components.push_back(block);
        }
      }
      --depth;
    }
  }
}

}  // namespace

int calendar_export(const std::string& config_path, const std::string& address,
                    const std::string& calendar, const std::string& file) {
  auto opened = open_collection(config_path, address, CollectionKind::kCalendar, calendar, false);
  if (!opened.is_ok()) return fail(opened.status().message());
  MailStore& store = *opened->services->store;
  auto list = store.resources(opened->account, opened->collection);
  if (!list.is_ok()) return fail(list.status().message());
  CalendarParts parts;
  for (const auto& r : *list) {
    auto body = store.read_message(opened->account, r.blob);
    if (!body.is_ok()) return fail(r.name + ": " + body.status().message());
    collect_parts(*body, parts);
  }
  std::string out = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailark//export//EN\r\n";
  for (const auto& [id, block] : parts.timezones) out += block;
  for (const auto& block : parts.components) out += block;
  out += "END:VCALENDAR\r\n";
  Status s = write_output(file, out);
  return s.is_ok() ? kExOk : fail(s.message(), kExIoErr);
}

int contacts_export(const std::string& config_path, const std::string& address,
                    const std::string& book, const std::string& file) {
  auto opened = open_collection(config_path, address, CollectionKind::kContacts, book, false);
  if (!opened.is_ok()) return fail(opened.status().message());
  MailStore& store = *opened->services->store;
  auto list = store.resources(opened->account, opened->collection);
  if (!list.is_ok()) return fail(list.status().message());
  std::string out;
  for (const auto& r : *list) {
    auto body = store.read_message(opened->account, r.blob);
    if (!body.is_ok()) return fail(r.name + ": " + body.status().message());
    out += *body;
    if (!out.empty() && out.back() != '\n') out += "\r\n";
  }
  Status s = write_output(file, out);
  return s.is_ok() ? kExOk : fail(s.message(), kExIoErr);
}

}  // namespace mailark::admin
