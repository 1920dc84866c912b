// S3 backend tests: retries, error texts and range fallbacks against a canned loopback HTTP
// server (always run), and the whole RepositoryBackend contract against a real S3 server when
// MAILARK_TEST_S3_ENDPOINT is set (tests/integration/s3_server.py starts one: s3rver behind a
// proxy that checks SigV4 signatures).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backup/backend.h"
#include "base/hash.h"

namespace mailark {

// Defined in s3_backend.cc for tests: ListObjectsV2 pages of `list_page_size` keys.
std::unique_ptr<RepositoryBackend> make_s3_backend_with_list_page(S3Settings settings,
                                                                  int list_page_size);

namespace {

// --- Canned HTTP server: one reply per request, in order, then "Connection: close". ------

struct CannedReply {
  CannedReply() = default;
  CannedReply(int status, std::string body, std::string extra_headers = "")
      : status(status), body(std::move(body)), extra_headers(std::move(extra_headers)) {}
  int status = 200;
  std::string body;
  std::string extra_headers;  // "Name: value\r\n" lines
};

struct SeenRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

class CannedHttpServer {
 public:
  explicit CannedHttpServer(std::vector<CannedReply> replies) : replies_(std::move(replies)) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listener_, 16) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }

  ~CannedHttpServer() {
    stopping_ = true;
    shutdown(listener_, SHUT_RDWR);
    close(listener_);
    if (thread_.joinable()) thread_.join();
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<SeenRequest> seen() {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_;
  }

 private:
  void serve() {
    while (!stopping_) {
      int fd = accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      handle(fd);
      close(fd);
    }
  }

  void handle(int fd) {
    std::string data;
    char buf[65536];
    size_t header_end;
    while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) return;
      data.append(buf, n);
    }
    SeenRequest request;
    std::string head = data.substr(0, header_end);
    size_t line_end = head.find("\r\n");
    std::string first = head.substr(0, line_end);
    request.method = first.substr(0, first.find(' '));
    request.target =
        first.substr(request.method.size() + 1, first.rfind(' ') - first.find(' ') - 1);
    size_t pos = line_end;
    while (pos != std::string::npos && pos < head.size()) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line =
          head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        request.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      pos = next;
    }
    size_t length =
        request.headers.count("content-length") ? std::stoul(request.headers["content-length"]) : 0;
    if (request.headers.count("expect")) {
      std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
      (void)!write(fd, cont.data(), cont.size());
    }
    request.body = data.substr(header_end + 4);
    while (request.body.size() < length) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) return;
      request.body.append(buf, n);
    }
    CannedReply reply;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      reply = seen_.size() < replies_.size() ? replies_[seen_.size()]
                                             : CannedReply(500, "no more canned replies");
      seen_.push_back(request);
    }
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " Canned\r\n" +
                      reply.extra_headers + "Content-Length: " + std::to_string(reply.body.size()) +
                      "\r\nConnection: close\r\n\r\n";
    if (request.method != "HEAD") out += reply.body;
    (void)!write(fd, out.data(), out.size());
  }

  std::vector<CannedReply> replies_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<SeenRequest> seen_;  // guarded by mutex_
};

S3Settings canned_settings(const CannedHttpServer& server, int retries) {
  S3Settings s;
  s.endpoint = server.endpoint();
  s.bucket = "bucket";
  s.prefix = "pre/";
  s.access_key = "AKID";
  s.secret_key = "secret";
  s.timeout_s = 10;
  s.retries = retries;
  return s;
}

std::string s3_error(const std::string& code, const std::string& message) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code + "</Code><Message>" +
         message + "</Message><RequestId>1</RequestId></Error>";
}

TEST(S3BackendCanned, RetriesServerErrorsThenSucceeds) {
  CannedHttpServer server({{503, s3_error("SlowDown", "Please reduce your request rate.")},
                           {429, ""},
                           {200, "payload"}});
  auto backend = make_s3_backend(canned_settings(server, 2));
  auto got = backend->get("index/a.b-c");
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  EXPECT_EQ(*got, "payload");
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].target, "/bucket/pre/index/a.b-c");
}

TEST(S3BackendCanned, GivesUpAfterRetries) {
  CannedHttpServer server({{500, s3_error("InternalError", "We encountered an internal error.")},
                           {500, s3_error("InternalError", "We encountered an internal error.")}});
  auto backend = make_s3_backend(canned_settings(server, 1));
  Status st = backend->put("packs/aa/x", "data");
  EXPECT_EQ(st.code(), ErrorCode::kIo);
  EXPECT_NE(st.message().find("s3 put bucket/pre/packs/aa/x: HTTP 500 InternalError"),
            std::string::npos)
      << st.message();
  EXPECT_EQ(server.seen().size(), 2u);
}

TEST(S3BackendCanned, ClientErrorFailsAtOnceWithS3CodeAndMessage) {
  CannedHttpServer server({{403, s3_error("AccessDenied", "Access &amp; Denied")}});
  auto backend = make_s3_backend(canned_settings(server, 3));
  Status st = backend->put("packs/aa/x", "data");
  EXPECT_EQ(st.code(), ErrorCode::kIo);
  EXPECT_EQ(st.message(), "s3 put bucket/pre/packs/aa/x: HTTP 403 AccessDenied: Access & Denied");
  EXPECT_EQ(server.seen().size(), 1u);
}

TEST(S3BackendCanned, SignsWithContentHashOfThePayload) {
  CannedHttpServer server({{200, ""}, {200, "x"}});
  auto backend = make_s3_backend(canned_settings(server, 0));
  ASSERT_TRUE(backend->put("packs/aa/x", "hello").is_ok());
  ASSERT_TRUE(backend->get("packs/aa/x").is_ok());
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "PUT");
  EXPECT_EQ(seen[0].body, "hello");
  EXPECT_EQ(seen[0].headers["x-amz-content-sha256"], to_hex(sha256("hello")));
  EXPECT_EQ(seen[1].headers["x-amz-content-sha256"], to_hex(sha256("")));
  for (const auto& request : seen) {
    const std::string& auth = request.headers.at("authorization");
    EXPECT_EQ(auth.rfind("AWS4-HMAC-SHA256 Credential=AKID/", 0), 0u) << auth;
    EXPECT_NE(auth.find("/us-east-1/s3/aws4_request, "), std::string::npos) << auth;
    // curl also signs Content-Type on the PUT: "SignedHeaders=content-type;host;…".
    EXPECT_NE(auth.find("host;x-amz-content-sha256;x-amz-date, Signature="), std::string::npos)
        << auth;
    EXPECT_EQ(request.headers.count("x-amz-date"), 1u);
  }
}

TEST(S3BackendCanned, RangeIgnoredByServerIsSliced) {
  CannedHttpServer server({{200, "0123456789"}, {200, "0123456789"}, {416, ""}});
  auto backend = make_s3_backend(canned_settings(server, 0));
  auto middle = backend->get_range("f", 3, 4);
  ASSERT_TRUE(middle.is_ok()) << middle.status().to_string();
  EXPECT_EQ(*middle, "3456");
  auto past = backend->get_range("f", 20, 4);
  ASSERT_TRUE(past.is_ok());
  EXPECT_EQ(*past, "");
  auto unsatisfiable = backend->get_range("f", 20, 4);
  ASSERT_TRUE(unsatisfiable.is_ok());
  EXPECT_EQ(*unsatisfiable, "");
  EXPECT_EQ(server.seen()[0].headers["range"], "bytes=3-6");
}

TEST(S3BackendCanned, PartialContentFromAnotherOffsetIsAnError) {
  CannedHttpServer server({{206, "456", "Content-Range: bytes 4-6/10\r\n"}});
  auto backend = make_s3_backend(canned_settings(server, 0));
  EXPECT_EQ(backend->get_range("f", 3, 3).status().code(), ErrorCode::kIo);
}

TEST(S3BackendCanned, ListFollowsContinuationAndDecodesKeys) {
  const std::string head =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>bucket</Name>";
  CannedHttpServer server(
      {{200, head + "<Prefix>pre/</Prefix><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>"
                    "<Contents><Key>pre/b&#x2e;x</Key><Size>12</Size></Contents>"
                    "<Contents><Key>pre/a</Key><LastModified>x</LastModified><Size>0</Size>"
                    "</Contents><NextContinuationToken>1/a+b=&amp;</NextContinuationToken>"
                    "</ListBucketResult>"},
       {200, head + "<IsTruncated>false</IsTruncated>"
                    "<Contents><Key>pre/c&amp;d</Key><Size>7</Size></Contents>"
                    "</ListBucketResult>"}});
  auto backend = make_s3_backend(canned_settings(server, 0));
  auto files = backend->list("");
  ASSERT_TRUE(files.is_ok()) << files.status().to_string();
  ASSERT_EQ(files->size(), 3u);
  EXPECT_EQ((*files)[0].name, "a");
  EXPECT_EQ((*files)[0].size, 0u);
  EXPECT_EQ((*files)[1].name, "b.x");
  EXPECT_EQ((*files)[1].size, 12u);
  EXPECT_EQ((*files)[2].name, "c&d");
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].target, "/bucket?list-type=2&max-keys=1000&prefix=pre%2F");
  EXPECT_EQ(seen[1].target,
            "/bucket?continuation-token=1%2Fa%2Bb%3D%26&list-type=2&max-keys=1000&prefix=pre%2F");
}

TEST(S3BackendCanned, NotFoundAndMissingBucket) {
  CannedHttpServer server({{404, s3_error("NoSuchKey", "The specified key does not exist.")},
                           {404, ""},
                           {404, s3_error("NoSuchBucket", "The specified bucket does not exist")},
                           {204, ""},
                           {404, s3_error("NoSuchKey", "gone")}});
  auto backend = make_s3_backend(canned_settings(server, 0));
  EXPECT_EQ(backend->get("a").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(backend->size("a").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(backend->get("a").status().code(), ErrorCode::kIo);
  EXPECT_TRUE(backend->remove("a").is_ok());
  EXPECT_TRUE(backend->remove("a").is_ok());
}

TEST(S3BackendOffline, NetworkErrorIsIoErrorAfterRetries) {
  S3Settings s;
  s.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1
  s.bucket = "bucket";
  s.retries = 1;
  auto backend = make_s3_backend(s);
  auto got = backend->get("index/x");
  EXPECT_EQ(got.status().code(), ErrorCode::kIo);
  EXPECT_NE(got.status().message().find("s3 get bucket/index/x: "), std::string::npos);
  EXPECT_NE(got.status().message().find("after 2 attempts"), std::string::npos)
      << got.status().message();
}

TEST(S3BackendOffline, BadSettingsAndNamesAreInvalid) {
  S3Settings s;
  s.endpoint = "127.0.0.1:9000";  // no scheme
  s.bucket = "bucket";
  EXPECT_EQ(make_s3_backend(s)->get("a").status().code(), ErrorCode::kInvalid);
  s.endpoint = "http://127.0.0.1:1";
  s.bucket = "";
  EXPECT_EQ(make_s3_backend(s)->get("a").status().code(), ErrorCode::kInvalid);
  s.bucket = "bucket";
  auto backend = make_s3_backend(s);
  for (const char* name : {"", "/a", "a/", "a//b", "a/../b", "./a", "A", "a b", "a?b", "a%2f"}) {
    EXPECT_EQ(backend->put(name, "x").code(), ErrorCode::kInvalid) << name;
  }
  EXPECT_EQ(backend->list("/x").status().code(), ErrorCode::kInvalid);
}

TEST(S3BackendOffline, DescribeNamesBucketAndPrefix) {
  S3Settings s;
  s.endpoint = "http://127.0.0.1:9000/";
  s.bucket = "bucket";
  s.prefix = "mailark/";
  EXPECT_EQ(make_s3_backend(s)->describe(), "s3 http://127.0.0.1:9000/bucket/mailark/");
  s.endpoint = "https://s3.eu-central-1.amazonaws.com";
  s.path_style = false;
  EXPECT_EQ(make_s3_backend(s)->describe(),
            "s3 https://bucket.s3.eu-central-1.amazonaws.com/mailark/");
}

// --- Against a real S3 server ------------------------------------------------------------

const char* env(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

class S3BackendLive : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!env("MAILARK_TEST_S3_ENDPOINT") || !env("MAILARK_TEST_S3_BUCKET")) {
      GTEST_SKIP() << "set MAILARK_TEST_S3_ENDPOINT and MAILARK_TEST_S3_BUCKET (see "
                      "tests/integration/s3_server.py) to run against an S3 server";
    }
    settings_.endpoint = env("MAILARK_TEST_S3_ENDPOINT");
    settings_.bucket = env("MAILARK_TEST_S3_BUCKET");
    if (env("MAILARK_TEST_S3_REGION")) settings_.region = env("MAILARK_TEST_S3_REGION");
    if (env("MAILARK_TEST_S3_ACCESS_KEY")) settings_.access_key = env("MAILARK_TEST_S3_ACCESS_KEY");
    if (env("MAILARK_TEST_S3_SECRET_KEY")) settings_.secret_key = env("MAILARK_TEST_S3_SECRET_KEY");
    if (env("MAILARK_TEST_S3_CA_FILE")) settings_.ca_file = env("MAILARK_TEST_S3_CA_FILE");
    // A fresh prefix per test: runs never see each other's objects.
    std::random_device random;
    settings_.prefix = "mailark-test-" + std::to_string(random()) + "/";
    settings_.retries = 1;
    settings_.timeout_s = 20;
    backend_ = make_s3_backend(settings_);
  }

  void TearDown() override {
    if (!backend_) return;
    auto files = backend_->list("");
    if (!files.is_ok()) return;
    for (const auto& file : *files) (void)backend_->remove(file.name);
  }

  S3Settings settings_;
  std::unique_ptr<RepositoryBackend> backend_;
};

std::string all_bytes(size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 7 + i / 256) & 0xff);
  return s;
}

TEST_F(S3BackendLive, PutGetRoundTripAndOverwrite) {
  const std::string name = "packs/a.b-c/d_e..f-g.pack";
  const std::string bytes = all_bytes(70000);
  ASSERT_TRUE(backend_->put(name, bytes).is_ok());
  auto got = backend_->get(name);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  EXPECT_EQ(*got, bytes);

  ASSERT_TRUE(backend_->put(name, "short").is_ok());
  EXPECT_EQ(backend_->get(name).value_or(""), "short");
  auto size = backend_->size(name);
  ASSERT_TRUE(size.is_ok()) << size.status().to_string();
  EXPECT_EQ(*size, 5u);

  ASSERT_TRUE(backend_->put("empty", "").is_ok());
  auto empty = backend_->get("empty");
  ASSERT_TRUE(empty.is_ok()) << empty.status().to_string();
  EXPECT_EQ(*empty, "");
  EXPECT_EQ(backend_->size("empty").value_or(99), 0u);
}

TEST_F(S3BackendLive, LargeObject) {
  const std::string bytes = all_bytes(3 << 20);  // past curl's 1 MiB Expect: 100-continue
  ASSERT_TRUE(backend_->put("packs/large", bytes).is_ok());
  auto got = backend_->get("packs/large");
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  EXPECT_TRUE(*got == bytes);
  auto tail = backend_->get_range("packs/large", bytes.size() - 10, 100);
  ASSERT_TRUE(tail.is_ok()) << tail.status().to_string();
  EXPECT_EQ(*tail, bytes.substr(bytes.size() - 10));
}

TEST_F(S3BackendLive, GetRange) {
  const std::string bytes = "0123456789abcdefghij";
  ASSERT_TRUE(backend_->put("index/r", bytes).is_ok());
  struct Case {
    uint64_t offset, length;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{{0, 5, "01234"},
                                         {7, 3, "789"},
                                         {15, 100, "fghij"},
                                         {19, 1, "j"},
                                         {20, 5, ""},
                                         {500, 5, ""},
                                         {3, 0, ""},
                                         {0, UINT64_MAX, bytes}}) {
    auto got = backend_->get_range("index/r", c.offset, c.length);
    ASSERT_TRUE(got.is_ok()) << c.offset << "+" << c.length << ": " << got.status().to_string();
    EXPECT_EQ(*got, c.want) << c.offset << "+" << c.length;
  }
  EXPECT_EQ(backend_->get_range("index/absent", 0, 5).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(backend_->get_range("index/absent", 0, 0).status().code(), ErrorCode::kNotFound);
}

TEST_F(S3BackendLive, ListFollowsContinuationTokens) {
  auto paged = make_s3_backend_with_list_page(settings_, 7);
  std::vector<std::string> packs;
  for (int i = 0; i < 30; ++i) {
    char name[64];
    snprintf(name, sizeof(name), "packs/%02x/%02x-%d.pack", i * 37 % 256, i, i);
    packs.push_back(name);
    ASSERT_TRUE(paged->put(name, std::string(i, 'x')).is_ok()) << name;
  }
  ASSERT_TRUE(paged->put("index/0001", "i").is_ok());
  ASSERT_TRUE(paged->put("packsx", "not under packs/").is_ok());
  std::sort(packs.begin(), packs.end());

  auto listed = paged->list("packs/");
  ASSERT_TRUE(listed.is_ok()) << listed.status().to_string();
  ASSERT_EQ(listed->size(), packs.size());
  for (size_t i = 0; i < packs.size(); ++i) {
    EXPECT_EQ((*listed)[i].name, packs[i]);
    int n = std::stoi(packs[i].substr(packs[i].rfind('-') + 1));
    EXPECT_EQ((*listed)[i].size, static_cast<uint64_t>(n)) << packs[i];
  }
  auto all = paged->list("");
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(all->size(), 32u);
  EXPECT_EQ(all->front().name, "index/0001");
  EXPECT_EQ(all->back().name, "packsx");
  EXPECT_EQ(paged->list("packs").value_or({}).size(), 31u);  // a prefix, not a folder
  auto none = paged->list("nothing/");
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
  // The default page size lists the same.
  EXPECT_EQ(backend_->list("").value_or({}).size(), 32u);
}

TEST_F(S3BackendLive, SizeRemoveAndNotFound) {
  ASSERT_TRUE(backend_->put("locks/x-1.lock", "abc").is_ok());
  EXPECT_EQ(backend_->size("locks/x-1.lock").value_or(0), 3u);
  ASSERT_TRUE(backend_->remove("locks/x-1.lock").is_ok());
  EXPECT_EQ(backend_->size("locks/x-1.lock").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(backend_->get("locks/x-1.lock").status().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(backend_->remove("locks/x-1.lock").is_ok());
  EXPECT_TRUE(backend_->remove("never/there").is_ok());
  EXPECT_TRUE(backend_->list("locks/").value_or({{"sentinel", 0}}).empty());
}

TEST_F(S3BackendLive, PrefixesKeepRepositoriesApart) {
  S3Settings other_settings = settings_;
  other_settings.prefix = settings_.prefix + "other/";
  auto other = make_s3_backend(other_settings);
  ASSERT_TRUE(other->put("index/a", "other").is_ok());
  ASSERT_TRUE(backend_->put("index/a", "mine").is_ok());
  EXPECT_EQ(other->get("index/a").value_or(""), "other");
  auto mine = backend_->list("index/");
  ASSERT_TRUE(mine.is_ok());
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ((*mine)[0].name, "index/a");
  auto theirs = other->list("");
  ASSERT_TRUE(theirs.is_ok());
  ASSERT_EQ(theirs->size(), 1u);
  EXPECT_EQ((*theirs)[0].name, "index/a");
}

TEST_F(S3BackendLive, PrefixWithCharactersThatNeedEncoding) {
  // The configured prefix is not bound to the repository name rules: it must reach S3
  // percent-encoded exactly as SigV4 canonicalises it, in the path and in list queries.
  S3Settings odd_settings = settings_;
  odd_settings.prefix = settings_.prefix + "Odd Prefix+(1)=~!*'&/";
  auto odd = make_s3_backend_with_list_page(odd_settings, 2);
  for (const char* name : {"index/a", "index/b", "index/c"}) {
    ASSERT_TRUE(odd->put(name, name).is_ok()) << name;
  }
  EXPECT_EQ(odd->get("index/b").value_or(""), "index/b");
  auto files = odd->list("index/");
  ASSERT_TRUE(files.is_ok()) << files.status().to_string();
  ASSERT_EQ(files->size(), 3u);
  EXPECT_EQ((*files)[2].name, "index/c");
  for (const auto& file : *files) EXPECT_TRUE(odd->remove(file.name).is_ok());
  EXPECT_TRUE(odd->list("").value_or({{"sentinel", 0}}).empty());
}

TEST_F(S3BackendLive, ConcurrentCallsFromManyThreads) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        std::string name = "packs/t" + std::to_string(t) + "/" + std::to_string(i);
        std::string bytes = name + std::string(1000 * i, 'z');
        if (!backend_->put(name, bytes).is_ok() || backend_->get(name).value_or("") != bytes) {
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(backend_->list("packs/").value_or({}).size(), 80u);
}

TEST_F(S3BackendLive, WrongSecretIsRefused) {
  if (!env("MAILARK_TEST_S3_CHECKS_SIGNATURES")) {
    GTEST_SKIP() << "the server does not say it checks signatures";
  }
  S3Settings wrong = settings_;
  wrong.secret_key += "x";
  Status st = make_s3_backend(wrong)->put("index/a", "x");
  EXPECT_EQ(st.code(), ErrorCode::kIo);
  EXPECT_NE(st.message().find("HTTP 403 SignatureDoesNotMatch"), std::string::npos) << st.message();
}

TEST_F(S3BackendLive, MissingBucketIsAnErrorNotAbsence) {
  S3Settings missing = settings_;
  missing.bucket = "mailark-no-such-bucket-" + std::to_string(std::random_device{}());
  auto backend = make_s3_backend(missing);
  EXPECT_EQ(backend->get("index/a").status().code(), ErrorCode::kIo);
  EXPECT_EQ(backend->put("index/a", "x").code(), ErrorCode::kIo);
  EXPECT_EQ(backend->list("").status().code(), ErrorCode::kIo);
}

TEST_F(S3BackendLive, VirtualHostStyle) {
  if (!env("MAILARK_TEST_S3_VHOST_ENDPOINT")) {
    GTEST_SKIP() << "set MAILARK_TEST_S3_VHOST_ENDPOINT for virtual-host-style requests";
  }
  S3Settings vhost = settings_;
  vhost.endpoint = env("MAILARK_TEST_S3_VHOST_ENDPOINT");
  vhost.path_style = false;
  auto backend = make_s3_backend(vhost);
  ASSERT_TRUE(backend->put("index/v.1", "vhost").is_ok());
  EXPECT_EQ(backend->get("index/v.1").value_or(""), "vhost");
  EXPECT_EQ(backend->get_range("index/v.1", 1, 2).value_or(""), "ho");
  auto files = backend->list("index/");
  ASSERT_TRUE(files.is_ok()) << files.status().to_string();
  ASSERT_EQ(files->size(), 1u);
  // Written through one addressing style, read through the other.
  EXPECT_EQ(backend_->get("index/v.1").value_or(""), "vhost");
  EXPECT_TRUE(backend->remove("index/v.1").is_ok());
  EXPECT_EQ(backend_->size("index/v.1").status().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace mailark
