// Backup repository: config, packs, index files, snapshots and journal segments, all sealed
// with the installation's key. See docs/formats/backup-repository.md.
#include "backup/repository.h"

#include <openssl/rand.h>
#include <zstd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "base/time.h"
#include "storage/zstd.h"

namespace mailark {
namespace {

using json = nlohmann::json;

constexpr std::string_view kPackMagic = "MKPACK01";
constexpr std::string_view kIndexMagic = "MKINDX01";
constexpr std::string_view kSnapshotMagic = "MKSNAP01";
constexpr std::string_view kJournalMagic = "MKJRNL01";
constexpr size_t kPacksPerIndex = 8;
constexpr uint8_t kStored = 0, kZstd = 1;
constexpr size_t kEntrySize = 1 + 32 + 8 + 4 + 8;

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_le(std::string_view b, size_t pos, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[pos + i]);
  return v;
}

// Compressed when that saves space: one byte saying which, then the bytes.
std::string pack_content(std::string_view plain) {
  std::string out(1, static_cast<char>(kZstd));
  if (zstd::compress(plain, 3, out) && out.size() + 16 < 1 + plain.size()) return out;
  out.assign(1, static_cast<char>(kStored));
  out.append(plain);
  return out;
}

// As pack_content, with the compression decided already: the frame (zstd of `plain`) the
// store kept, or nullopt to try; an empty frame means the store found it incompressible.
std::string packed_content(std::string_view plain, std::optional<std::string_view> zstd_frame) {
  if (!zstd_frame) return pack_content(plain);
  std::string out(1, static_cast<char>(zstd_frame->empty() ? kStored : kZstd));
  out.append(zstd_frame->empty() ? plain : *zstd_frame);
  return out;
}

Result<std::string> unpack_content(std::string_view packed, uint64_t limit) {
  if (packed.empty()) return corrupt("empty content");
  uint8_t kind = static_cast<uint8_t>(packed[0]);
  packed.remove_prefix(1);
  if (kind == kStored) return std::string(packed);
  if (kind != kZstd) return corrupt("unknown compression " + std::to_string(kind));
  unsigned long long size = ZSTD_getFrameContentSize(packed.data(), packed.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > limit)
    return corrupt("bad compressed frame");
  std::string out;
  if (!zstd::decompress(packed, size, out)) return corrupt("compressed data is damaged");
  return out;
}

// One object's entry in a pack header or an index file (the layout is the same):
// u8 type, id (32), u64le offset, u32le sealed length, u64le content length.
void put_entry(std::string& out, const Digest& id, const ObjectLocation& loc) {
  out.push_back(static_cast<char>(loc.type));
  out.append(as_bytes(id));
  put_u64(out, loc.offset);
  put_u32(out, loc.length);
  put_u64(out, loc.raw_length);
}

// The entry at `p` (the caller checked that kEntrySize bytes are there).
std::pair<Digest, ObjectLocation> get_entry(std::string_view b, size_t p, const Digest& pack) {
  ObjectLocation loc;
  loc.pack = pack;
  loc.type = static_cast<ObjectType>(b[p]);
  Digest id{};
  std::copy(b.begin() + p + 1, b.begin() + p + 33, id.begin());
  loc.offset = get_le(b, p + 33, 8);
  loc.length = static_cast<uint32_t>(get_le(b, p + 41, 4));
  loc.raw_length = get_le(b, p + 45, 8);
  return {id, loc};
}

std::string object_context(const Digest& id) {
  return "mailark-object:" + to_hex(id);
}

std::string pack_file(const Digest& pack) {
  std::string hex = to_hex(pack);
  return "packs/" + hex.substr(0, 2) + "/" + hex;
}

std::string seq_name(int64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020lld", static_cast<long long>(seq));
  return buf;
}

std::string segment_context(const std::string& guid, int64_t first, int64_t last) {
  return "mailark-journal:" + guid + ":" + seq_name(first) + "-" + seq_name(last);
}

}  // namespace

Repository::Repository(std::string name, std::unique_ptr<RepositoryBackend> backend)
    : name_(std::move(name)), backend_(std::move(backend)) {}

Repository::~Repository() {
  if (Status s = wait_pack_write(); !s.is_ok())
    MK_LOG_WARN("repository {}: writing a pack failed: {}", name_, s.message());
  if (!pending_.empty())
    MK_LOG_WARN("repository {}: {} objects dropped without flush()", name_, pending_.size());
}

Result<std::unique_ptr<Repository>> Repository::open(std::string name,
                                                     std::unique_ptr<RepositoryBackend> backend,
                                                     const KeySource& key) {
  std::unique_ptr<Repository> repo(new Repository(std::move(name), std::move(backend)));
  MK_RETURN_IF_ERROR(repo->read_config(key));
  return repo;
}

Result<std::unique_ptr<Repository>> Repository::create(std::string name,
                                                       std::unique_ptr<RepositoryBackend> backend,
                                                       const KeySource& source, Cipher cipher) {
  auto existing = backend->size("config");
  if (existing.is_ok()) return exists_error("repository " + name + " already exists");
  if (existing.status().code() != ErrorCode::kNotFound) return existing.status();
  std::unique_ptr<Repository> repo(new Repository(std::move(name), std::move(backend)));
  Guid id = Guid::random();
  json key_info;
  if (source.key) {
    repo->key_ = *source.key;
    key_info = {{"kind", "key-file"}};
  } else {
    std::string salt(16, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), 16) != 1)
      return io_error("no randomness for the repository salt");
    MK_ASSIGN_OR_RETURN(auto k, BackupKey::from_passphrase(source.passphrase, salt, source.argon2));
    repo->key_ = k;
    key_info = {{"kind", "passphrase"},
                {"kdf", "argon2id"},
                {"salt", to_hex(reinterpret_cast<const uint8_t*>(salt.data()), salt.size())},
                {"time_cost", source.argon2.time_cost},
                {"memory_kib", source.argon2.memory_kib},
                {"lanes", source.argon2.lanes}};
  }
  key_info["id"] = repo->key_->id();
  MK_ASSIGN_OR_RETURN(std::string check,
                      repo->key_->seal(cipher, "mailark-key-check:" + id.hex(), "mailark-config"));
  json config = {{"format", "mailark-backup-repository"},
                 {"version", kRepositoryFormatVersion},
                 {"id", id.hex()},
                 {"created_ms", now_ms()},
                 {"cipher", cipher_name(cipher)},
                 {"key", key_info},
                 {"check", to_hex(reinterpret_cast<const uint8_t*>(check.data()), check.size())}};
  std::string text = config.dump(2) + "\n";
  MK_RETURN_IF_ERROR(repo->io()->put("config", text));
  KeySource again;
  again.key = repo->key_;
  MK_RETURN_IF_ERROR(repo->read_config(again));
  return repo;
}

Result<std::unique_ptr<Repository>> Repository::create_like(
    std::string name, std::unique_ptr<RepositoryBackend> backend, const Repository& like) {
  auto existing = backend->size("config");
  if (existing.is_ok()) return exists_error("repository " + name + " already exists");
  if (existing.status().code() != ErrorCode::kNotFound) return existing.status();
  MK_RETURN_IF_ERROR(backend->put("config", like.config_text_));
  KeySource key;
  key.key = like.key_;
  return open(std::move(name), std::move(backend), key);
}

Status Repository::read_config(const KeySource& source) {
  auto text = io()->get("config");
  if (!text.is_ok()) {
    if (text.status().code() == ErrorCode::kNotFound)
      return not_found("no repository at " + io()->describe());
    return text.status();
  }
  json c = json::parse(*text, nullptr, false);
  if (c.is_discarded() || !c.is_object() || c.value("format", "") != "mailark-backup-repository")
    return corrupt("repository " + name_ + ": config is not a mailark repository config");
  int version = c.value("version", 0);
  if (version > kRepositoryFormatVersion || version < 1)
    return invalid("repository " + name_ + " has format version " + std::to_string(version) +
                   "; this mailark reads versions up to " +
                   std::to_string(kRepositoryFormatVersion));
  try {
    id_ = c.at("id").get<std::string>();
    MK_ASSIGN_OR_RETURN(cipher_, parse_cipher(c.at("cipher").get<std::string>()));
    const json& k = c.at("key");
    std::string kind = k.at("kind").get<std::string>();
    std::string want_id = k.at("id").get<std::string>();
    if (kind == "key-file") {
      if (!source.key)
        return invalid("repository " + name_ +
                       " is encrypted with a key file, and none is configured");
      key_ = *source.key;
    } else if (kind == "passphrase") {
      if (source.passphrase.empty() && source.key && source.key->id() == want_id) {
        key_ = *source.key;  // a copy made with the derived key in hand
      } else {
        if (source.passphrase.empty())
          return invalid("repository " + name_ +
                         " is encrypted with a passphrase, and none is configured");
        auto salt = k.at("salt").get<std::string>();
        std::string raw;
        for (size_t i = 0; i + 1 < salt.size(); i += 2)
          raw.push_back(static_cast<char>(std::stoi(salt.substr(i, 2), nullptr, 16)));
        Argon2Params p{k.at("time_cost").get<uint32_t>(), k.at("memory_kib").get<uint32_t>(),
                       k.at("lanes").get<uint32_t>()};
        MK_ASSIGN_OR_RETURN(auto derived, BackupKey::from_passphrase(source.passphrase, raw, p));
        key_ = derived;
      }
    } else {
      return invalid("repository " + name_ + ": unknown key kind " + kind);
    }
    key_id_ = key_->id();
    if (key_id_ != want_id)
      return invalid("wrong key for repository " + name_ + ": it was written with key " + want_id +
                     ", the configured key is " + key_id_);
    std::string check_hex = c.at("check").get<std::string>();
    std::string check;
    for (size_t i = 0; i + 1 < check_hex.size(); i += 2)
      check.push_back(static_cast<char>(std::stoi(check_hex.substr(i, 2), nullptr, 16)));
    auto opened = key_->open(cipher_, check, "mailark-config");
    if (!opened.is_ok() || *opened != "mailark-key-check:" + id_)
      return invalid("wrong key for repository " + name_ + ": the key check does not decrypt");
  } catch (const std::exception& e) {
    return corrupt("repository " + name_ + ": config is damaged (" + e.what() + ")");
  }
  config_text_ = *text;
  return Status::ok();
}

Result<std::string> Repository::seal_file(std::string_view magic, std::string_view plain,
                                          std::string_view context) {
  MK_ASSIGN_OR_RETURN(std::string sealed, key_->seal(cipher_, pack_content(plain), context));
  return std::string(magic) + sealed;
}

Result<std::string> Repository::open_file(std::string_view magic, std::string_view bytes,
                                          std::string_view context) {
  if (bytes.substr(0, magic.size()) != magic) return corrupt("wrong file type or truncated");
  MK_ASSIGN_OR_RETURN(std::string packed, key_->open(cipher_, bytes.substr(magic.size()), context));
  return unpack_content(packed, uint64_t{1} << 34);
}

// ---------------------------------------------------------------- index

Result<std::vector<std::pair<Digest, ObjectLocation>>> Repository::read_pack_header(
    const Digest& pack, uint64_t size) {
  std::string name = pack_file(pack);
  size_t tail = 4 + kPackMagic.size();
  if (size < kPackMagic.size() + tail) return corrupt("pack is too short");
  MK_ASSIGN_OR_RETURN(std::string trailer, io()->get_range(name, size - tail, tail));
  if (trailer.size() != tail || trailer.substr(4) != kPackMagic)
    return corrupt("pack trailer is damaged");
  uint64_t header_len = get_le(trailer, 0, 4);
  if (header_len + tail + kPackMagic.size() > size) return corrupt("pack header length is damaged");
  MK_ASSIGN_OR_RETURN(std::string sealed,
                      io()->get_range(name, size - tail - header_len, header_len));
  MK_ASSIGN_OR_RETURN(std::string header, key_->open(cipher_, sealed, "mailark-pack-header"));
  if (header.size() < 4) return corrupt("pack header is truncated");
  uint64_t n = get_le(header, 0, 4);
  if (header.size() != 4 + n * kEntrySize) return corrupt("pack header has the wrong length");
  std::vector<std::pair<Digest, ObjectLocation>> out;
  for (uint64_t i = 0; i < n; ++i) out.push_back(get_entry(header, 4 + i * kEntrySize, pack));
  return out;
}

Status Repository::load_index(bool read_only, std::vector<RepositoryProblem>* problems) {
  index_.clear();
  pack_sizes_.clear();
  auto report = [&](std::string where, std::string what) {
    if (problems) problems->push_back({std::move(where), std::move(what)});
    MK_LOG_WARN("repository {}: {}: {}", name_, where, what);
  };
  MK_ASSIGN_OR_RETURN(auto files, io()->list("index/"));
  std::set<Digest> indexed;
  // Every index file is read and opened first, so that the table is sized once for all of
  // their entries (rehashing it as it grows was half the time of loading it).
  std::vector<std::pair<std::string, std::string>> opened;  // hex name, plain bytes
  size_t entries = 0;
  for (const auto& f : files) {
    std::string hex = f.name.substr(6);
    auto id = digest_from_hex(hex);
    if (!id) continue;
    MK_ASSIGN_OR_RETURN(std::string bytes, io()->get(f.name));
    if (sha256(bytes) != *id) {
      report("index " + hex.substr(0, 12), "damaged: content does not match its name (" +
                                               std::to_string(bytes.size()) + " bytes)");
      continue;
    }
    auto plain = open_file(kIndexMagic, bytes, "mailark-index");
    if (!plain.is_ok()) {
      report("index " + hex.substr(0, 12), plain.status().message());
      continue;
    }
    entries += plain->size() / kEntrySize;
    opened.emplace_back(std::move(hex), std::move(*plain));
  }
  index_.reserve(entries);
  for (const auto& [hex, b] : opened) {
    size_t p = 0;
    bool ok = b.size() >= 4;
    uint64_t packs = ok ? get_le(b, 0, 4) : 0;
    p = 4;
    for (uint64_t i = 0; ok && i < packs; ++i) {
      if (p + 32 + 8 + 4 > b.size()) {
        ok = false;
        break;
      }
      Digest pack{};
      std::copy(b.begin() + p, b.begin() + p + 32, pack.begin());
      uint64_t size = get_le(b, p + 32, 8);
      uint64_t n = get_le(b, p + 40, 4);
      p += 44;
      if (p + n * kEntrySize > b.size()) {
        ok = false;
        break;
      }
      pack_sizes_[pack] = size;
      indexed.insert(pack);
      for (uint64_t k = 0; k < n; ++k, p += kEntrySize) index_.insert(get_entry(b, p, pack));
    }
    if (!ok) report("index " + hex.substr(0, 12), "damaged: entries are truncated");
  }
  // Packs nobody indexed: an interrupted writer's, or ones whose index was damaged.
  MK_ASSIGN_OR_RETURN(auto packs, io()->list("packs/"));
  for (const auto& f : packs) {
    auto id = digest_from_hex(f.name.substr(f.name.rfind('/') + 1));
    if (!id || indexed.count(*id)) continue;
    auto entries = read_pack_header(*id, f.size);
    if (!entries.is_ok()) {
      report("pack " + to_hex(*id).substr(0, 12),
             "unindexed and unreadable: " + entries.status().message());
      continue;
    }
    pack_sizes_[*id] = f.size;
    for (auto& [oid, loc] : *entries) index_.emplace(oid, loc);
    unindexed_packs_.push_back(*id);
  }
  if (!unindexed_packs_.empty()) {
    MK_LOG_INFO("repository {}: indexed {} packs left without an index", name_,
                unindexed_packs_.size());
    if (read_only)
      unindexed_packs_.clear();
    else
      MK_RETURN_IF_ERROR(write_index());
  }
  return Status::ok();
}

bool Repository::has_object(const Digest& id) const {
  return index_.count(id) > 0 || pending_ids_.count(id) > 0 || writing_ids_.count(id) > 0;
}

std::optional<ObjectLocation> Repository::locate(const Digest& id) const {
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

Result<std::string> Repository::read_object(const Digest& id) {
  auto it = index_.find(id);
  if (it == index_.end())
    return not_found("object " + to_hex(id) + " is not in repository " + name_);
  const ObjectLocation& loc = it->second;
  std::string where = "object " + to_hex(id) + " in pack " + to_hex(loc.pack);
  auto sealed = io()->get_range(pack_file(loc.pack), loc.offset, loc.length);
  if (!sealed.is_ok()) {
    if (sealed.status().code() == ErrorCode::kNotFound)
      return not_found(where + ": the pack is missing from repository " + name_);
    return sealed.status();
  }
  if (sealed->size() != loc.length) return corrupt(where + ": the pack is truncated");
  auto packed = key_->open(cipher_, *sealed, object_context(id));
  if (!packed.is_ok()) return corrupt(where + ": " + packed.status().message());
  auto content = unpack_content(*packed, loc.raw_length);
  if (!content.is_ok()) return corrupt(where + ": " + content.status().message());
  if (content->size() != loc.raw_length || sha256(*content) != id)
    return corrupt(where + ": content does not match its id");
  return content;
}

// ---------------------------------------------------------------- writing

Result<bool> Repository::add_object(ObjectType type, const Digest& id, std::string_view content,
                                    std::optional<std::string_view> zstd_frame) {
  if (has_object(id)) return false;
  MK_RETURN_IF_ERROR(append_to_pack(type, id, content, zstd_frame));
  return true;
}

Status Repository::rewrite_objects(const std::set<Digest>& ids) {
  for (const Digest& id : ids) {
    auto loc = locate(id);
    if (!loc || pending_ids_.count(id)) continue;
    MK_ASSIGN_OR_RETURN(std::string content, read_object(id));
    MK_RETURN_IF_ERROR(append_to_pack(loc->type, id, content));
  }
  return Status::ok();
}

Result<std::string> Repository::seal_object(const Digest& id, std::string_view content,
                                            std::optional<std::string_view> zstd_frame) const {
  return key_->seal(cipher_, packed_content(content, zstd_frame), object_context(id));
}

Result<bool> Repository::add_sealed(ObjectType type, const Digest& id, std::string_view sealed,
                                    uint64_t raw_length) {
  if (has_object(id)) return false;
  MK_RETURN_IF_ERROR(append_sealed(type, id, sealed, raw_length));
  return true;
}

Status Repository::append_to_pack(ObjectType type, const Digest& id, std::string_view content,
                                  std::optional<std::string_view> zstd_frame) {
  MK_ASSIGN_OR_RETURN(std::string sealed, seal_object(id, content, zstd_frame));
  return append_sealed(type, id, sealed, content.size());
}

Status Repository::append_sealed(ObjectType type, const Digest& id, std::string_view sealed,
                                 uint64_t raw_length) {
  if (pack_.empty()) {
    pack_.reserve(kPackTarget + (1u << 20));
    pack_.assign(kPackMagic);
  }
  ObjectLocation loc;
  loc.offset = pack_.size();
  loc.length = static_cast<uint32_t>(sealed.size());
  loc.raw_length = raw_length;
  loc.type = type;
  pack_ += sealed;
  pending_.push_back({id, loc});
  pending_ids_.insert(id);
  if (pack_.size() >= Repository::kPackTarget) MK_RETURN_IF_ERROR(finish_pack());
  return Status::ok();
}

Status Repository::finish_pack() {
  MK_RETURN_IF_ERROR(wait_pack_write());
  if (pending_.empty()) return Status::ok();
  std::string header;
  put_u32(header, static_cast<uint32_t>(pending_.size()));
  for (const auto& e : pending_) put_entry(header, e.id, e.location);
  MK_ASSIGN_OR_RETURN(std::string sealed, key_->seal(cipher_, header, "mailark-pack-header"));
  pack_ += sealed;
  put_u32(pack_, static_cast<uint32_t>(sealed.size()));
  pack_ += kPackMagic;
  // Hashed (its name) and written while the next pack fills.
  pack_write_size_ = pack_.size();
  writing_ = std::move(pending_);
  writing_ids_ = std::move(pending_ids_);
  pending_.clear();
  pending_ids_.clear();
  RepositoryBackend* backend = backend_.get();
  pack_write_ =
      std::async(std::launch::async, [backend, pack = std::move(pack_)]() -> Result<Digest> {
        Digest id = sha256(pack);
        MK_RETURN_IF_ERROR(backend->put(pack_file(id), pack));
        return id;
      });
  pack_.clear();
  return Status::ok();
}

Status Repository::wait_pack_write() {
  if (!write_error_.is_ok()) return write_error_;
  if (!pack_write_.valid()) return Status::ok();
  Result<Digest> written = pack_write_.get();
  if (!written.is_ok()) {
    writing_.clear();
    writing_ids_.clear();
    write_error_ = written.status();
    return write_error_;
  }
  const Digest& pack_id = *written;
  bytes_uploaded_ += pack_write_size_;
  pack_sizes_[pack_id] = pack_write_size_;
  for (auto& e : writing_) {
    e.location.pack = pack_id;
    index_[e.id] = e.location;  // a rewritten object moves to its new pack
  }
  unindexed_packs_.push_back(pack_id);
  writing_.clear();
  writing_ids_.clear();
  if (unindexed_packs_.size() >= kPacksPerIndex) MK_RETURN_IF_ERROR(write_index());
  return Status::ok();
}

RepositoryBackend* Repository::io() {
  if (pack_write_.valid()) {  // logged once; flush() and finish_pack() return it
    Status s = wait_pack_write();
    if (!s.is_ok()) MK_LOG_WARN("repository {}: writing a pack failed: {}", name_, s.message());
  }
  return backend_.get();
}

Status Repository::write_index() {
  if (unindexed_packs_.empty()) return Status::ok();
  std::map<Digest, std::vector<std::pair<Digest, ObjectLocation>>> by_pack;
  std::set<Digest> wanted(unindexed_packs_.begin(), unindexed_packs_.end());
  for (const auto& [id, loc] : index_)
    if (wanted.count(loc.pack)) by_pack[loc.pack].emplace_back(id, loc);
  std::string b;
  put_u32(b, static_cast<uint32_t>(by_pack.size()));
  for (auto& [pack, entries] : by_pack) {
    std::sort(entries.begin(), entries.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    b.append(as_bytes(pack));
    put_u64(b, pack_sizes_[pack]);
    put_u32(b, static_cast<uint32_t>(entries.size()));
    for (const auto& [id, loc] : entries) put_entry(b, id, loc);
  }
  MK_ASSIGN_OR_RETURN(std::string file, seal_file(kIndexMagic, b, "mailark-index"));
  last_index_written_ = "index/" + to_hex(sha256(file));
  MK_RETURN_IF_ERROR(io()->put(last_index_written_, file));
  bytes_uploaded_ += file.size();
  unindexed_packs_.clear();
  return Status::ok();
}

Result<std::string> Repository::rewrite_index(const std::set<Digest>& drop) {
  MK_RETURN_IF_ERROR(flush());
  for (auto it = index_.begin(); it != index_.end();)
    it = drop.count(it->second.pack) ? index_.erase(it) : std::next(it);
  for (const Digest& d : drop) pack_sizes_.erase(d);
  unindexed_packs_.clear();
  for (const auto& [pack, size] : pack_sizes_) unindexed_packs_.push_back(pack);
  if (unindexed_packs_.empty()) return std::string();
  MK_RETURN_IF_ERROR(write_index());
  return last_index_written_;
}

Status Repository::remove_pack(const Digest& pack) {
  return io()->remove(pack_file(pack));
}

Status Repository::flush() {
  MK_RETURN_IF_ERROR(finish_pack());
  MK_RETURN_IF_ERROR(wait_pack_write());
  return write_index();
}

// ---------------------------------------------------------------- snapshots

Result<std::string> Repository::write_snapshot(const std::string& text) {
  MK_RETURN_IF_ERROR(flush());  // everything it references first
  MK_ASSIGN_OR_RETURN(std::string file, seal_file(kSnapshotMagic, text, "mailark-snapshot"));
  std::string id = to_hex(sha256(file));
  MK_RETURN_IF_ERROR(io()->put("snapshots/" + id, file));
  bytes_uploaded_ += file.size();
  return id;
}

Result<std::vector<std::string>> Repository::snapshot_ids() {
  MK_ASSIGN_OR_RETURN(auto files, io()->list("snapshots/"));
  std::vector<std::string> out;
  for (const auto& f : files) {
    std::string id = f.name.substr(10);
    if (digest_from_hex(id)) out.push_back(id);
  }
  return out;
}

Result<std::string> Repository::read_snapshot(const std::string& id) {
  MK_ASSIGN_OR_RETURN(std::string bytes, io()->get("snapshots/" + id));
  auto want = digest_from_hex(id);
  if (!want || sha256(bytes) != *want)
    return corrupt("snapshot " + id.substr(0, 12) +
                   " is damaged (content does not match its name)");
  auto text = open_file(kSnapshotMagic, bytes, "mailark-snapshot");
  if (!text.is_ok())
    return corrupt("snapshot " + id.substr(0, 12) + ": " + text.status().message());
  return text;
}

Status Repository::remove_snapshot(const std::string& id) {
  return io()->remove("snapshots/" + id);
}

// ---------------------------------------------------------------- journal

Status Repository::write_segment(const std::string& guid,
                                 const std::vector<JournalRecord>& records) {
  if (records.empty()) return Status::ok();
  json arr = json::array();
  for (const auto& r : records)
    arr.push_back({r.seq, r.time_ms, r.op, r.account.hex(), r.item.hex(), r.payload,
                   to_hex(r.prev_hash), to_hex(r.hash)});
  int64_t first = records.front().seq, last = records.back().seq;
  MK_RETURN_IF_ERROR(flush());  // the blobs these records reference first
  MK_ASSIGN_OR_RETURN(std::string file,
                      seal_file(kJournalMagic, arr.dump(), segment_context(guid, first, last)));
  MK_RETURN_IF_ERROR(
      io()->put("journal/" + guid + "/" + seq_name(first) + "-" + seq_name(last), file));
  bytes_uploaded_ += file.size();
  return Status::ok();
}

Result<std::vector<JournalSegment>> Repository::segments(const std::string& guid) {
  MK_ASSIGN_OR_RETURN(auto files, io()->list("journal/" + guid + "/"));
  std::vector<JournalSegment> out;
  for (const auto& f : files) {
    std::string base = f.name.substr(f.name.rfind('/') + 1);
    if (base.size() != 41 || base[20] != '-') continue;
    JournalSegment s;
    s.database_guid = guid;
    s.first = std::atoll(base.substr(0, 20).c_str());
    s.last = std::atoll(base.substr(21).c_str());
    s.file = f.name;
    if (s.first < 1 || s.last < s.first) continue;
    out.push_back(s);
  }
  return out;
}

Result<std::vector<std::string>> Repository::archived_databases() {
  MK_ASSIGN_OR_RETURN(auto files, io()->list("journal/"));
  std::set<std::string> guids;
  for (const auto& f : files) {
    size_t a = f.name.find('/'), b = f.name.find('/', a + 1);
    if (b != std::string::npos) guids.insert(f.name.substr(a + 1, b - a - 1));
  }
  return std::vector<std::string>(guids.begin(), guids.end());
}

Result<std::vector<JournalRecord>> Repository::read_segment(const JournalSegment& s) {
  std::string where = "journal segment " + s.database_guid.substr(0, 8) + "/" +
                      std::to_string(s.first) + "-" + std::to_string(s.last);
  auto bytes = io()->get(s.file);
  if (!bytes.is_ok()) return bytes.status();
  auto text = open_file(kJournalMagic, *bytes, segment_context(s.database_guid, s.first, s.last));
  if (!text.is_ok()) return corrupt(where + ": " + text.status().message());
  json arr = json::parse(*text, nullptr, false);
  if (!arr.is_array()) return corrupt(where + ": not a record list");
  std::vector<JournalRecord> out;
  try {
    for (const auto& e : arr) {
      JournalRecord r;
      r.seq = e.at(0).get<int64_t>();
      r.time_ms = e.at(1).get<int64_t>();
      r.op = e.at(2).get<std::string>();
      r.account = Guid::from_hex(e.at(3).get<std::string>()).value_or(Guid{});
      r.item = Guid::from_hex(e.at(4).get<std::string>()).value_or(Guid{});
      r.payload = e.at(5).get<std::string>();
      r.prev_hash = digest_from_hex(e.at(6).get<std::string>()).value_or(Digest{});
      r.hash = digest_from_hex(e.at(7).get<std::string>()).value_or(Digest{});
      if (journal::compute_hash(r) != r.hash)
        return corrupt(where + ": record " + std::to_string(r.seq) + " does not match its hash");
      if (!out.empty() && (r.seq != out.back().seq + 1 || r.prev_hash != out.back().hash))
        return corrupt(where + ": record " + std::to_string(r.seq) + " breaks the chain");
      out.push_back(std::move(r));
    }
  } catch (const json::exception& e) {
    return corrupt(where + ": " + e.what());
  }
  if (out.empty() || out.front().seq != s.first || out.back().seq != s.last)
    return corrupt(where + ": records do not match the segment's name");
  return out;
}

// ---------------------------------------------------------------- verify

Status Repository::verify_pack(const Digest& pack, std::vector<RepositoryProblem>* problems) {
  std::string where = "pack " + to_hex(pack);
  auto bytes = io()->get(pack_file(pack));
  if (!bytes.is_ok()) {
    problems->push_back({where, bytes.status().code() == ErrorCode::kNotFound
                                    ? "missing"
                                    : bytes.status().message()});
    return Status::ok();
  }
  if (sha256(*bytes) != pack) {
    problems->push_back({where, "damaged: content does not match its name"});
  }
  std::vector<std::pair<Digest, ObjectLocation>> objects;
  for (const auto& [id, loc] : index_)
    if (loc.pack == pack) objects.emplace_back(id, loc);
  std::sort(objects.begin(), objects.end(),
            [](const auto& x, const auto& y) { return x.second.offset < y.second.offset; });
  for (const auto& [id, loc] : objects) {
    std::string owhere = "object " + to_hex(id) + " in " + where;
    if (loc.offset + loc.length > bytes->size()) {
      problems->push_back({owhere, "beyond the end of the pack"});
      continue;
    }
    auto packed = key_->open(cipher_, std::string_view(*bytes).substr(loc.offset, loc.length),
                             object_context(id));
    if (!packed.is_ok()) {
      problems->push_back({owhere, packed.status().message()});
      continue;
    }
    auto content = unpack_content(*packed, loc.raw_length);
    if (!content.is_ok() || content->size() != loc.raw_length || sha256(*content) != id)
      problems->push_back({owhere, "content does not match its id"});
  }
  return Status::ok();
}

}  // namespace mailark
