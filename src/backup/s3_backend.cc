// The S3 tier of backup repositories: RepositoryBackend on an S3-compatible bucket through
// libcurl, every request signed by curl's own AWS SigV4 support (CURLOPT_AWS_SIGV4).
#include <curl/curl.h>
#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "backup/backend.h"
#include "base/hash.h"
#include "base/log.h"

namespace mailark {
namespace {

// S3 checks x-amz-content-sha256 against the body it receives, and refuses V4-signed requests
// without it. curl 7.88 does not add the header for the s3 service, but when it is present
// curl signs it and uses its value as the payload hash of the canonical request.
constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr int kListPageSize = 1000;  // S3's own maximum for ListObjectsV2
constexpr std::chrono::milliseconds kFirstBackoff{200};
constexpr std::chrono::milliseconds kMaxBackoff{10000};

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool is_unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

// Percent-encoding as SigV4 canonicalises it: RFC 3986 unreserved characters kept, all else
// %XX in upper case; '/' kept in object keys and encoded in query values. curl 7.88 signs the
// path and query string exactly as they appear in the URL, so they must already be in S3's
// canonical form (query parameters sorted, too) or real S3 computes another signature.
std::string uri_encode(std::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out += c;
    } else {
      auto b = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// XML character data with the five predefined entities and numeric references resolved. An
// unknown or malformed reference is kept as it is.
std::string xml_unescape(std::string_view text) {
  static constexpr std::pair<std::string_view, char> kNamed[] = {
      {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t semi = text[i] == '&' ? text.find(';', i) : std::string_view::npos;
    if (semi == std::string_view::npos || semi - i > 10) {
      out += text[i++];
      continue;
    }
    std::string_view ref = text.substr(i + 1, semi - i - 1);
    bool done = false;
    for (const auto& [name, c] : kNamed) {
      if (ref == name) {
        out += c;
        done = true;
      }
    }
    if (!done && ref.size() > 1 && ref[0] == '#') {
      bool hex = ref[1] == 'x' || ref[1] == 'X';
      std::string_view digits = ref.substr(hex ? 2 : 1);
      uint32_t cp = 0;
      auto [end, ec] =
          std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
      if (ec == std::errc() && end == digits.data() + digits.size() && !digits.empty() &&
          cp <= 0x10FFFF) {
        append_utf8(out, cp);
        done = true;
      }
    }
    if (done) {
      i = semi + 1;
    } else {
      out += text[i++];
    }
  }
  return out;
}

// The raw text of the first <tag>…</tag> in `xml`. S3's XML has no attributes, CDATA or
// nesting of same-named elements where this is used.
std::optional<std::string_view> xml_element(std::string_view xml, std::string_view tag) {
  std::string open = fmt::format("<{}>", tag);
  std::string close = fmt::format("</{}>", tag);
  size_t start = xml.find(open);
  if (start == std::string_view::npos) return std::nullopt;
  start += open.size();
  size_t end = xml.find(close, start);
  if (end == std::string_view::npos) return std::nullopt;
  return xml.substr(start, end - start);
}

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// Repository names (backend.h): segments of [a-z0-9._-], other than "." and "..", joined by '/'.
bool valid_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

Status check_name(std::string_view name) {
  size_t start = 0;
  while (true) {
    size_t end = std::min(name.find('/', start), name.size());
    std::string_view segment = name.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == ".." ||
        !std::all_of(segment.begin(), segment.end(), valid_name_char)) {
      return invalid(fmt::format("s3: bad repository file name \"{}\"", name));
    }
    if (end == name.size()) return Status::ok();
    start = end + 1;
  }
}

Status check_list_prefix(std::string_view prefix) {
  bool ok = std::all_of(prefix.begin(), prefix.end(),
                        [](char c) { return c == '/' || valid_name_char(c); });
  if (ok && !prefix.starts_with('/') && prefix.find("//") == std::string_view::npos) {
    return Status::ok();
  }
  return invalid(fmt::format("s3: bad list prefix \"{}\"", prefix));
}

struct HttpRequest {
  HttpRequest(const char* method, std::string url) : method(method), url(std::move(url)) {}
  const char* method;  // GET, PUT, HEAD or DELETE
  std::string url;
  std::string_view payload;  // PUT only; must outlive the request
  std::string range;         // "bytes=0-99", or empty
};

struct HttpResponse {
  std::string network_error;  // set when no HTTP response arrived; status is 0 then
  long status = 0;
  std::string body;
  std::string content_range;  // the Content-Range header, for ranged GETs
  int64_t content_length = -1;
};

// "HTTP 403 AccessDenied: Access Denied", from the status and S3's XML error body.
std::string http_error_text(const HttpResponse& response) {
  std::string text = fmt::format("HTTP {}", response.status);
  if (auto code = xml_element(response.body, "Code")) text += " " + xml_unescape(*code);
  if (auto message = xml_element(response.body, "Message")) {
    text += ": " + xml_unescape(*message);
  }
  return text;
}

bool is_no_such_bucket(const HttpResponse& response) {
  auto code = xml_element(response.body, "Code");
  return code && *code == "NoSuchBucket";
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  std::string_view line(data, size * count);
  constexpr std::string_view kName = "content-range:";
  if (line.size() > kName.size()) {
    std::string lower(line.substr(0, kName.size()));
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; });
    if (lower == kName) {
      std::string_view value = line.substr(kName.size());
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      while (!value.empty() &&
             (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
        value.remove_suffix(1);
      }
      *static_cast<std::string*>(user) = std::string(value);
    }
  }
  return size * count;
}

// The first byte position of "bytes 100-199/1000".
std::optional<uint64_t> content_range_start(std::string_view content_range) {
  if (!content_range.starts_with("bytes ")) return std::nullopt;
  content_range.remove_prefix(6);
  return parse_number<uint64_t>(content_range.substr(0, content_range.find('-')));
}

class S3Backend final : public RepositoryBackend {
 public:
  S3Backend(S3Settings settings, int list_page_size)
      : settings_(std::move(settings)), list_page_size_(list_page_size) {
    init_curl_once();
    config_error_ = configure();
  }

  ~S3Backend() override {
    for (CURL* handle : idle_handles_) curl_easy_cleanup(handle);
  }

  std::string describe() const override {
    return fmt::format("s3 {}/{}", bucket_url_.empty() ? settings_.endpoint : bucket_url_,
                       settings_.prefix);
  }

  Status put(const std::string& name, std::string_view bytes) override {
    MK_RETURN_IF_ERROR(check_name(name));
    HttpRequest request("PUT", object_url(name));
    request.payload = bytes;
    MK_ASSIGN_OR_RETURN(HttpResponse response, perform("put", name, request));
    if (response.status / 100 != 2) return failure("put", name, response);
    return Status::ok();
  }

  Result<std::string> get(const std::string& name) override {
    MK_RETURN_IF_ERROR(check_name(name));
    HttpRequest request("GET", object_url(name));
    MK_ASSIGN_OR_RETURN(HttpResponse response, perform("get", name, request));
    if (response.status == 200) return std::move(response.body);
    return failure("get", name, response);
  }

  Result<std::string> get_range(const std::string& name, uint64_t offset,
                                uint64_t length) override {
    MK_RETURN_IF_ERROR(check_name(name));
    if (length == 0) {
      MK_RETURN_IF_ERROR(size(name).status());
      return std::string();
    }
    constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
    std::string last = length - 1 > kMax - offset ? "" : std::to_string(offset + length - 1);
    HttpRequest request("GET", object_url(name));
    request.range = fmt::format("bytes={}-{}", offset, last);
    MK_ASSIGN_OR_RETURN(HttpResponse response, perform("get", name, request));
    switch (response.status) {
      case 206: {
        auto start = content_range_start(response.content_range);
        if (start && *start != offset) {
          return io_error(fmt::format("s3 get {}: asked for bytes from {}, got \"{}\"",
                                      object_name(name), offset, response.content_range));
        }
        if (response.body.size() > length) response.body.resize(length);
        return std::move(response.body);
      }
      case 200:  // the server ignored the Range header and sent the whole file
        if (offset >= response.body.size()) return std::string();
        return response.body.substr(offset, length);
      case 416:  // offset at or past the end of the file
        return std::string();
      default:
        return failure("get", name, response);
    }
  }

  Result<std::vector<RepositoryFile>> list(const std::string& prefix) override {
    MK_RETURN_IF_ERROR(check_list_prefix(prefix));
    std::vector<RepositoryFile> files;
    std::string token;
    do {
      // Parameters in name order: curl 7.88 signs the query string as given.
      std::string query;
      if (!token.empty()) query += "continuation-token=" + uri_encode(token, false) + "&";
      query += fmt::format("list-type=2&max-keys={}&prefix={}", list_page_size_,
                           uri_encode(settings_.prefix + prefix, false));
      HttpRequest request("GET", list_url_ + query);
      MK_ASSIGN_OR_RETURN(HttpResponse response, perform("list", prefix, request));
      if (response.status != 200) return failure("list", prefix, response);
      MK_RETURN_IF_ERROR(parse_list_page(response.body, prefix, files, token));
    } while (!token.empty());
    std::sort(files.begin(), files.end(),
              [](const RepositoryFile& a, const RepositoryFile& b) { return a.name < b.name; });
    return files;
  }

  Result<uint64_t> size(const std::string& name) override {
    MK_RETURN_IF_ERROR(check_name(name));
    HttpRequest request("HEAD", object_url(name));
    MK_ASSIGN_OR_RETURN(HttpResponse response, perform("size", name, request));
    if (response.status != 200) return failure("size", name, response);
    if (response.content_length < 0) {
      return io_error(fmt::format("s3 size {}: no Content-Length in the reply", object_name(name)));
    }
    return static_cast<uint64_t>(response.content_length);
  }

  Status remove(const std::string& name) override {
    MK_RETURN_IF_ERROR(check_name(name));
    HttpRequest request("DELETE", object_url(name));
    MK_ASSIGN_OR_RETURN(HttpResponse response, perform("remove", name, request));
    // S3 answers 204 whether or not the object existed; some servers say 404 when it did not.
    if (response.status == 204 || response.status == 200) return Status::ok();
    if (response.status == 404 && !is_no_such_bucket(response)) return Status::ok();
    return failure("remove", name, response);
  }

 private:
  Status configure() {
    if (settings_.region.empty() || settings_.region.find(':') != std::string::npos) {
      return invalid(fmt::format("s3: bad region \"{}\"", settings_.region));
    }
    const std::string& bucket = settings_.bucket;
    if (bucket.empty() || !std::all_of(bucket.begin(), bucket.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
        })) {
      return invalid(fmt::format("s3: bad bucket name \"{}\"", bucket));
    }
    std::string_view endpoint = settings_.endpoint;
    size_t scheme_end = endpoint.find("://");
    std::string_view scheme = endpoint.substr(0, scheme_end);
    if (scheme_end == std::string_view::npos || (scheme != "http" && scheme != "https")) {
      return invalid(fmt::format("s3: endpoint \"{}\" is not an http(s) URL", endpoint));
    }
    std::string_view rest = endpoint.substr(scheme_end + 3);
    std::string_view host = rest.substr(0, rest.find('/'));
    std::string_view base_path = rest.substr(host.size());
    while (base_path.ends_with('/')) base_path.remove_suffix(1);
    if (host.empty() || base_path.find_first_of("?#") != std::string_view::npos) {
      return invalid(fmt::format("s3: bad endpoint \"{}\"", endpoint));
    }
    if (settings_.path_style) {
      bucket_url_ = fmt::format("{}://{}{}/{}", scheme, host, base_path, bucket);
      list_url_ = bucket_url_ + "?";
    } else {
      bucket_url_ = fmt::format("{}://{}.{}{}", scheme, bucket, host, base_path);
      list_url_ = bucket_url_ + "/?";
    }
    sigv4_ = "aws:amz:" + settings_.region + ":s3";
    return Status::ok();
  }

  std::string object_url(const std::string& name) const {
    return bucket_url_ + "/" + uri_encode(settings_.prefix + name, true);
  }

  // "bucket/prefix/name", for messages.
  std::string object_name(std::string_view name) const {
    return fmt::format("{}/{}{}", settings_.bucket, settings_.prefix, name);
  }

  Status failure(std::string_view op, std::string_view name, const HttpResponse& response) const {
    std::string text =
        fmt::format("s3 {} {}: {}", op, object_name(name), http_error_text(response));
    if (response.status == 404 && !is_no_such_bucket(response)) return not_found(text);
    return io_error(text);
  }

  Status parse_list_page(std::string_view xml, std::string_view prefix,
                         std::vector<RepositoryFile>& files, std::string& token) const {
    auto malformed = [&](std::string_view what) {
      return io_error(
          fmt::format("s3 list {}: malformed ListObjectsV2 reply ({})", object_name(prefix), what));
    };
    if (xml.find("<ListBucketResult") == std::string_view::npos) {
      return malformed("no ListBucketResult");
    }
    size_t pos = 0;
    while ((pos = xml.find("<Contents>", pos)) != std::string_view::npos) {
      size_t end = xml.find("</Contents>", pos);
      if (end == std::string_view::npos) return malformed("unterminated Contents");
      std::string_view contents = xml.substr(pos, end - pos);
      pos = end;
      auto key = xml_element(contents, "Key");
      auto size_text = xml_element(contents, "Size");
      std::optional<uint64_t> size;
      if (size_text) size = parse_number<uint64_t>(*size_text);
      if (!key || !size) return malformed("Contents without Key or Size");
      std::string name = xml_unescape(*key);
      if (!name.starts_with(settings_.prefix)) return malformed("key outside the prefix");
      files.push_back({name.substr(settings_.prefix.size()), *size});
    }
    token.clear();
    auto truncated = xml_element(xml, "IsTruncated");
    if (truncated && *truncated == "true") {
      auto next = xml_element(xml, "NextContinuationToken");
      if (!next || next->empty()) return malformed("truncated without NextContinuationToken");
      token = xml_unescape(*next);
    }
    return Status::ok();
  }

  // One request with retries and jittered exponential backoff for network errors, 5xx and 429.
  // Any other HTTP status is returned for the caller to judge.
  Result<HttpResponse> perform(std::string_view op, std::string_view name,
                               const HttpRequest& request) {
    MK_RETURN_IF_ERROR(config_error_);
    std::string payload_sha =
        request.payload.empty() ? std::string(kEmptySha256) : to_hex(sha256(request.payload));
    auto backoff = kFirstBackoff;
    for (int attempt = 1;; ++attempt) {
      HttpResponse response = perform_once(request, payload_sha);
      bool retryable =
          !response.network_error.empty() || response.status >= 500 || response.status == 429;
      if (!retryable) return response;
      std::string why =
          response.network_error.empty() ? http_error_text(response) : response.network_error;
      if (attempt > settings_.retries) {
        return io_error(fmt::format("s3 {} {}: {} (gave up after {} attempts)", op,
                                    object_name(name), why, attempt));
      }
      thread_local std::minstd_rand random(std::random_device{}());
      auto pause = backoff / 2 + std::chrono::milliseconds(random() % (backoff.count() / 2 + 1));
      MK_LOG_WARN("s3 {} {}: {}; retrying in {} ms", op, object_name(name), why, pause.count());
      std::this_thread::sleep_for(pause);
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }

  HttpResponse perform_once(const HttpRequest& request, const std::string& payload_sha) {
    HttpResponse response;
    CURL* handle = acquire_handle();
    if (!handle) {
      response.network_error = "curl_easy_init failed";
      return response;
    }
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, ("x-amz-content-sha256: " + payload_sha).c_str());
    if (!request.range.empty()) {
      headers = curl_slist_append(headers, ("Range: " + request.range).c_str());
    }
    std::string_view method = request.method;
    if (method == "PUT") {
      // POSTFIELDS rather than a read callback: curl can then resend the body by itself when
      // a kept-alive connection turns out to be dead. Override the form Content-Type it adds.
      headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
      curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, "PUT");
      curl_easy_setopt(handle, CURLOPT_POSTFIELDS,
                       request.payload.empty() ? "" : request.payload.data());
      curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.payload.size()));
    } else if (method == "HEAD") {
      curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
    } else if (method == "DELETE") {
      curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    char error_buffer[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(handle, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(handle, CURLOPT_AWS_SIGV4, sigv4_.c_str());
    curl_easy_setopt(handle, CURLOPT_USERNAME, settings_.access_key.c_str());
    curl_easy_setopt(handle, CURLOPT_PASSWORD, settings_.secret_key.c_str());
    curl_easy_setopt(handle, CURLOPT_USERAGENT, "mailark");
    // S3 speaks HTTP/1.1; this keeps curl from negotiating HTTP/2 with servers that offer it.
    curl_easy_setopt(handle, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer);
    // timeout_s bounds connecting and any stall; a large pack may take longer than that.
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT, static_cast<long>(settings_.timeout_s));
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME, static_cast<long>(settings_.timeout_s));
    if (!settings_.ca_file.empty()) {
      curl_easy_setopt(handle, CURLOPT_CAINFO, settings_.ca_file.c_str());
    }
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, &response.body);
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, &response.content_range);

    CURLcode code = curl_easy_perform(handle);
    if (code == CURLE_OK) {
      curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &response.status);
      curl_off_t length = -1;
      curl_easy_getinfo(handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
      response.content_length = length;
    } else {
      response.network_error = error_buffer[0] != '\0'
                                   ? fmt::format("{} ({})", curl_easy_strerror(code), error_buffer)
                                   : curl_easy_strerror(code);
    }
    release_handle(handle);
    curl_slist_free_all(headers);
    return response;
  }

  // Easy handles are kept between requests for their open connections; one handle serves one
  // thread at a time. The reset on release drops the pointers into the finished request's
  // stack (error buffer, header list, payload) while keeping the connections.
  CURL* acquire_handle() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!idle_handles_.empty()) {
        CURL* handle = idle_handles_.back();
        idle_handles_.pop_back();
        return handle;
      }
    }
    return curl_easy_init();
  }

  void release_handle(CURL* handle) {
    curl_easy_reset(handle);
    std::lock_guard<std::mutex> lock(mutex_);
    idle_handles_.push_back(handle);
  }

  const S3Settings settings_;
  const int list_page_size_;
  // Set once by the constructor, read-only after.
  Status config_error_;
  std::string bucket_url_;  // "http://host:port/bucket" or "http://bucket.host:port"
  std::string list_url_;    // bucket_url_ and what goes before the ListObjectsV2 query
  std::string sigv4_;       // "aws:amz:<region>:s3"

  std::mutex mutex_;
  std::vector<CURL*> idle_handles_;  // guarded by mutex_
};

}  // namespace

std::unique_ptr<RepositoryBackend> make_s3_backend(S3Settings settings) {
  return std::make_unique<S3Backend>(std::move(settings), kListPageSize);
}

// For tests only (declared in s3_backend_test.cc): a smaller ListObjectsV2 page, so that
// continuation tokens are exercised without thousands of objects.
std::unique_ptr<RepositoryBackend> make_s3_backend_with_list_page(S3Settings settings,
                                                                  int list_page_size) {
  return std::make_unique<S3Backend>(std::move(settings), list_page_size);
}

}  // namespace mailark
