// Blob store: fan-out directories by the first byte of the digest, one file per blob,
// published with temp file + fsync + rename; the directory fsync is left to the caller's
// group commit.
#include "storage/blob_store.h"

#include <zstd.h>

#include <cstring>
#include <vector>

#include "storage/zstd.h"

namespace mailark {
namespace {

constexpr char kMagic[4] = {'M', 'K', 'B', '1'};
constexpr uint8_t kRaw = 0;
constexpr uint8_t kZstd = 1;
constexpr size_t kHeaderSize = 16;
constexpr uint64_t kMaxBlobSize = uint64_t{4} << 30;
// Smaller bodies (most calendar events and contacts) are stored raw: decoding a zstd frame
// has a fixed cost (its entropy tables, a cold decoder context) larger than copying the
// whole body, and would save only a few hundred bytes.
constexpr size_t kMinCompressed = 1024;

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

std::string BlobStore::path_of(const Digest& digest) const {
  std::string hex = to_hex(digest);
  return root_ + "/" + hex.substr(0, 2) + "/" + hex;
}

Status BlobStore::create_layout() {
  MK_RETURN_IF_ERROR(fs_.make_dirs(root_ + "/tmp"));
  for (int i = 0; i < 256; ++i) {
    uint8_t b = static_cast<uint8_t>(i);
    MK_RETURN_IF_ERROR(fs_.make_dirs(root_ + "/" + to_hex(&b, 1)));
  }
  MK_RETURN_IF_ERROR(fs_.sync_dir(root_));
  return fs_.sync_dir(parent_dir(root_));
}

std::string BlobStore::encode(std::string_view content) {
  std::string out;
  const bool try_zstd = content.size() >= kMinCompressed;
  out.reserve(kHeaderSize +
              (try_zstd ? ZSTD_compressBound(content.size()) : content.size()));  // zstd's room
  out.append(kMagic, 4);
  out.push_back(static_cast<char>(kZstd));
  out.append(3, '\0');
  put_u64(out, content.size());
  if (try_zstd && zstd::compress(content, 1, out) && out.size() + 64 < kHeaderSize + content.size())
    return out;
  out.resize(kHeaderSize);
  out[4] = static_cast<char>(kRaw);
  out.append(content);
  return out;
}

Result<std::string> BlobStore::zstd_frame(std::string_view encoded) {
  if (encoded.size() < kHeaderSize || std::memcmp(encoded.data(), kMagic, 4) != 0)
    return corrupt("blob header is damaged");
  if (static_cast<uint8_t>(encoded[4]) != kZstd) return std::string();
  return std::string(encoded.substr(kHeaderSize));
}

namespace {

// Decodes an encoded blob into `out`: nullptr, or what is wrong with it. The callers name
// the blob only when it is damaged, so a good read builds no message.
const char* decode_into(std::string_view file, std::string& out) {
  if (file.size() < kHeaderSize || std::memcmp(file.data(), kMagic, 4) != 0)
    return "bad blob header";
  uint8_t kind = static_cast<uint8_t>(file[4]);
  uint64_t size = get_u64(file.data() + 8);
  if (size > kMaxBlobSize) return "implausible blob size";
  std::string_view payload = file.substr(kHeaderSize);
  if (kind == kRaw) {
    if (payload.size() != size) return "blob length mismatch";
    out.assign(payload);
    return nullptr;
  }
  if (kind != kZstd) return "unknown blob encoding";
  unsigned long long frame = ZSTD_getFrameContentSize(payload.data(), payload.size());
  if (frame != size) return "zstd frame size mismatch";
  if (!zstd::decompress(payload, size, out)) return "zstd data damaged";
  return nullptr;
}

}  // namespace

Result<std::string> BlobStore::decode(std::string_view file, const std::string& what) {
  std::string out;
  if (const char* error = decode_into(file, out)) return corrupt(what + ": " + error);
  return out;
}

Result<std::string> BlobStore::decode_verified(std::string_view encoded, const Digest& digest) {
  std::string content;
  MK_RETURN_IF_ERROR(decode_verified(encoded, digest, content));
  return content;
}

Status BlobStore::decode_verified(std::string_view encoded, const Digest& digest,
                                  std::string& content) {
  if (const char* error = decode_into(encoded, content))
    return corrupt("blob " + to_hex(digest) + ": " + error);
  if (sha256(content) != digest)
    return corrupt("blob " + to_hex(digest) + ": content does not match its SHA-256");
  return Status::ok();
}

Result<BlobStore::PutResult> BlobStore::put(std::string_view content, const Digest* known_digest) {
  PutResult result;
  result.digest = known_digest ? *known_digest : sha256(content);
  std::string path = path_of(result.digest);
  result.dir_to_sync = parent_dir(path);
  if (fs_.exists(path) && verify(result.digest).is_ok()) {
    result.was_present = true;
    auto size = fs_.file_size(path);
    result.stored_size = size.is_ok() ? *size : 0;
    return result;
  }
  std::string encoded = encode(content);
  MK_RETURN_IF_ERROR(
      write_synced_and_rename(fs_, root_ + "/tmp/" + Guid::random().hex(), path, encoded));
  result.stored_size = encoded.size();
  return result;
}

Status BlobStore::sync_dirs(const std::set<std::string>& dirs) {
  for (const auto& d : dirs) MK_RETURN_IF_ERROR(fs_.sync_dir(d));
  return Status::ok();
}

Result<std::string> BlobStore::get(const Digest& digest) const {
  std::string path = path_of(digest);
  auto file = fs_.read_file(path);
  if (!file.is_ok()) {
    if (file.status().code() == ErrorCode::kNotFound)
      return not_found("blob " + to_hex(digest) + " missing");
    return file.status();
  }
  return decode_verified(*file, digest);
}

Status BlobStore::get(const Digest& digest, BlobBuffers& buffers) const {
  auto file = fs_.open_read(path_of(digest));
  if (!file.is_ok()) {
    if (file.status().code() == ErrorCode::kNotFound)
      return not_found("blob " + to_hex(digest) + " missing");
    return file.status();
  }
  buffers.encoded.resize((*file)->size());
  MK_ASSIGN_OR_RETURN(size_t got,
                      (*file)->read_into(0, buffers.encoded.data(), buffers.encoded.size()));
  buffers.encoded.resize(got);
  return decode_verified(buffers.encoded, digest, buffers.content);
}

Result<std::unique_ptr<BlobReader>> BlobStore::open(const Digest& digest) const {
  std::string path = path_of(digest);
  if (!fs_.exists(path)) return not_found("blob " + to_hex(digest) + " missing");
  return BlobReader::open_file(fs_, path, digest);
}

// ---------------------------------------------------------------- streaming reads

// (Namespace scope, not function-local: the reader is used from coroutine-driven code paths.)
constexpr size_t kReadBlock = 128 * 1024;

BlobReader::BlobReader(const Digest& digest, uint64_t size, uint8_t kind)
    : digest_(digest), size_(size), kind_(kind) {
  if (kind_ == kZstd) dstream_ = ZSTD_createDStream();
}

BlobReader::~BlobReader() {
  if (dstream_) ZSTD_freeDStream(static_cast<ZSTD_DStream*>(dstream_));
}

static Result<uint8_t> check_header(std::string_view header, const std::string& what,
                                    uint64_t* size) {
  if (header.size() < kHeaderSize || std::memcmp(header.data(), kMagic, 4) != 0)
    return corrupt(what + ": bad blob header");
  uint8_t kind = static_cast<uint8_t>(header[4]);
  *size = get_u64(header.data() + 8);
  if (*size > kMaxBlobSize) return corrupt(what + ": implausible blob size");
  if (kind != kRaw && kind != kZstd) return corrupt(what + ": unknown blob encoding");
  return kind;
}

Result<std::unique_ptr<BlobReader>> BlobReader::open_file(FileSystem& fs, const std::string& path,
                                                          const Digest& digest) {
  std::string what = "blob " + to_hex(digest);
  MK_ASSIGN_OR_RETURN(auto file, fs.open_read(path));
  MK_ASSIGN_OR_RETURN(std::string header, file->read_at(0, kHeaderSize));
  uint64_t size = 0;
  MK_ASSIGN_OR_RETURN(uint8_t kind, check_header(header, what, &size));
  std::unique_ptr<BlobReader> r(new BlobReader(digest, size, kind));
  r->encoded_size_ = file->size();
  r->file_ = std::move(file);
  r->offset_ = kHeaderSize;
  if (kind == kRaw && r->encoded_size_ != kHeaderSize + size)
    return corrupt(what + ": blob length mismatch");
  return r;
}

Result<std::unique_ptr<BlobReader>> BlobReader::open_encoded(std::string encoded,
                                                             const Digest& digest) {
  std::string what = "blob " + to_hex(digest);
  uint64_t size = 0;
  MK_ASSIGN_OR_RETURN(uint8_t kind, check_header(encoded, what, &size));
  std::unique_ptr<BlobReader> r(new BlobReader(digest, size, kind));
  r->encoded_size_ = encoded.size();
  r->encoded_ = std::move(encoded);
  r->offset_ = kHeaderSize;
  if (kind == kRaw && r->encoded_size_ != kHeaderSize + size)
    return corrupt(what + ": blob length mismatch");
  return r;
}

Status BlobReader::refill() {
  if (input_pos_ < input_.size()) return Status::ok();
  input_.clear();
  input_pos_ = 0;
  if (offset_ >= encoded_size_) return Status::ok();
  size_t n = static_cast<size_t>(std::min<uint64_t>(kReadBlock, encoded_size_ - offset_));
  if (file_) {
    MK_ASSIGN_OR_RETURN(input_, file_->read_at(offset_, n));
    if (input_.size() != n) return corrupt("blob " + to_hex(digest_) + ": short read");
  } else {
    input_.assign(encoded_, static_cast<size_t>(offset_), n);
  }
  offset_ += n;
  return Status::ok();
}

Result<size_t> BlobReader::read(size_t max, std::string* out) {
  size_t appended = 0;
  while (appended < max && produced_ < size_) {
    MK_RETURN_IF_ERROR(refill());
    bool input_left = input_pos_ < input_.size();
    size_t want = static_cast<size_t>(std::min<uint64_t>(max - appended, size_ - produced_));
    size_t old = out->size();
    size_t got = 0;
    if (kind_ == kRaw) {
      got = std::min(want, input_.size() - input_pos_);
      out->append(input_, input_pos_, got);
      input_pos_ += got;
    } else {
      // The decoder may still hold output when all input is in, so it is asked even then.
      out->resize(old + want);
      ZSTD_outBuffer ob{out->data() + old, want, 0};
      ZSTD_inBuffer ib{input_.data() + input_pos_, input_.size() - input_pos_, 0};
      size_t rc = ZSTD_decompressStream(static_cast<ZSTD_DStream*>(dstream_), &ob, &ib);
      out->resize(old + ob.pos);
      if (ZSTD_isError(rc)) return corrupt("blob " + to_hex(digest_) + ": zstd data damaged");
      input_pos_ += ib.pos;
      got = ob.pos;
    }
    if (got == 0 && !input_left) return corrupt("blob " + to_hex(digest_) + ": blob is truncated");
    hash_.update(std::string_view(out->data() + old, got));
    produced_ += got;
    appended += got;
  }
  if (produced_ == size_ && !done_) {
    done_ = true;
    if (kind_ == kRaw && offset_ != encoded_size_)
      return corrupt("blob " + to_hex(digest_) + ": data after the end of the blob");
    if (hash_.finish() != digest_)
      return corrupt("blob " + to_hex(digest_) + ": content does not match its SHA-256");
  }
  return appended;
}

Status BlobStore::verify(const Digest& digest) const {
  auto r = get(digest);
  return r.is_ok() ? Status::ok() : r.status();
}

bool BlobStore::contains(const Digest& digest) const {
  return fs_.exists(path_of(digest));
}

Status BlobStore::remove(const Digest& digest) {
  std::string path = path_of(digest);
  MK_RETURN_IF_ERROR(fs_.remove(path));
  return fs_.sync_dir(parent_dir(path));
}

int BlobStore::remove_stale_temporaries(int64_t now_ms, int64_t min_age_ms) {
  auto names = fs_.list_dir(root_ + "/tmp");
  if (!names.is_ok()) return 0;
  int removed = 0;
  for (const auto& n : *names) {
    std::string path = root_ + "/tmp/" + n;
    auto mtime = fs_.modified_ms(path);
    if (mtime.is_ok() && *mtime < now_ms - min_age_ms && fs_.remove(path).is_ok()) ++removed;
  }
  return removed;
}

Result<std::vector<Digest>> BlobStore::list(std::vector<std::string>* strays) const {
  std::vector<Digest> out;
  for (int i = 0; i < 256; ++i) {
    uint8_t b = static_cast<uint8_t>(i);
    std::string dir = root_ + "/" + to_hex(&b, 1);
    auto names = fs_.list_dir(dir);
    if (!names.is_ok()) {
      if (names.status().code() == ErrorCode::kNotFound) continue;
      return names.status();
    }
    for (const auto& name : *names) {
      auto d = digest_from_hex(name);
      if (d && name.substr(0, 2) == to_hex(&b, 1))
        out.push_back(*d);
      else if (strays)
        strays->push_back(dir + "/" + name);
    }
  }
  return out;
}

}  // namespace mailark
