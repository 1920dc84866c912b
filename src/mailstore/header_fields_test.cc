// The header fields record: layout, what it keeps, and that damage is always detected.
#include "mailstore/header_fields.h"

#include <gtest/gtest.h>

#include "base/hash.h"

namespace mailark {
namespace {

std::string with_checksum(std::string body) {
  const uint32_t crc = crc32c(body);
  for (int i = 0; i < 4; ++i) body.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  return body;
}

std::vector<std::pair<HeaderField, std::string>> decoded(std::string_view record) {
  HeaderFieldValues values;
  EXPECT_TRUE(decode_header_fields(record, values).is_ok());
  std::vector<std::pair<HeaderField, std::string>> out;
  for (const auto& [code, text] : values.fields) out.emplace_back(code, std::string(text));
  return out;
}

TEST(HeaderFields, FieldCodes) {
  const std::vector<std::pair<std::string, std::optional<HeaderField>>> cases = {
      {"Subject", HeaderField::kSubject},
      {"FROM", HeaderField::kFrom},
      {"sender", HeaderField::kSender},
      {"Reply-To", HeaderField::kReplyTo},
      {"to", HeaderField::kTo},
      {"Cc", HeaderField::kCc},
      {"BCC", HeaderField::kBcc},
      {"message-id", HeaderField::kMessageId},
      {"Subj", std::nullopt},
      {"Subjects", std::nullopt},
      {"X-Subject", std::nullopt},
      {"Date", std::nullopt},
      {"References", std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& [name, code] : cases) EXPECT_EQ(header_field_code(name), code) << name;
}

TEST(HeaderFields, LayoutIsVersionEntriesChecksum) {
  const std::string record = encode_header_fields("Subject: Hi\r\nX-A: b\r\nTo:  a@b \r\n\r\n");
  EXPECT_EQ(record, with_checksum(std::string("\x01"
                                              "\x01\x02"
                                              "Hi"
                                              "\x05\x03"
                                              "a@b",
                                              10)));
  // No kept field: the version and the checksum only.
  EXPECT_EQ(encode_header_fields(""), with_checksum("\x01"));
  EXPECT_TRUE(decoded(encode_header_fields("X-Only: 1\r\n\r\n")).empty());
}

TEST(HeaderFields, KeepsEveryOccurrenceInHeaderOrderAsReadersSeeIt) {
  const std::string header =
      "Received: from x\r\n"
      "to: one@example.test,\r\n"
      " two@example.test\r\n"  // unfolding removes the line break only
      "Subject: =?utf-8?q?caf=C3=A9?= au lait\r\n"
      "Message-ID: <m@example.test>\r\n"
      "TO: three@example.test\r\n"
      "Bcc:\r\n"
      "Subject: bad \xff byte\r\n"  // 8-bit text that is not UTF-8 is read as Latin-1
      "\r\n"
      "From: not a header field, the body\r\n";
  const std::vector<std::pair<HeaderField, std::string>> want = {
      {HeaderField::kTo, "one@example.test, two@example.test"},
      {HeaderField::kSubject, "caf\xC3\xA9 au lait"},
      {HeaderField::kMessageId, "<m@example.test>"},
      {HeaderField::kTo, "three@example.test"},
      {HeaderField::kBcc, ""},
      {HeaderField::kSubject, "bad \xC3\xBF byte"},
  };
  EXPECT_EQ(decoded(encode_header_fields(header)), want);
}

TEST(HeaderFields, LongValuesAreKeptWhole) {
  std::string to = "To: ";
  for (int i = 0; i < 2000; ++i) to += "user" + std::to_string(i) + "@example.test, ";
  to += "last@example.test\r\n";
  auto fields = decoded(encode_header_fields(to + "\r\n"));
  ASSERT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields[0].second.size(), to.size() - 6);
  EXPECT_EQ(fields[0].second.substr(fields[0].second.size() - 17), "last@example.test");
}

TEST(HeaderFields, DamageIsAlwaysDetected) {
  const std::string record =
      encode_header_fields("From: a@example.test\r\nSubject: something\r\n\r\n");
  HeaderFieldValues values;
  for (size_t len = 0; len < record.size(); ++len) {
    EXPECT_EQ(decode_header_fields(record.substr(0, len), values).code(), ErrorCode::kCorrupt)
        << len;
    EXPECT_TRUE(values.fields.empty());
  }
  EXPECT_EQ(decode_header_fields(record + "x", values).code(), ErrorCode::kCorrupt);
  for (size_t i = 0; i < record.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = record;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      EXPECT_EQ(decode_header_fields(damaged, values).code(), ErrorCode::kCorrupt)
          << i << ":" << bit;
    }
  }
}

TEST(HeaderFields, WellSummedButMalformedRecordsAreCorrupt) {
  const std::vector<std::string> bodies = {
      std::string("\x02", 1),          // unknown version
      std::string("\x01\x00\x00", 3),  // field code 0
      std::string("\x01\x09\x00", 3),  // unknown field code
      std::string("\x01\x01\x05"
                  "abc",
                  6),                  // text runs past the end
      std::string("\x01\x01", 2),      // no length
      std::string("\x01\x01\x80", 3),  // unfinished varint
      std::string("\x01\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 12),  // over 64 bits
  };
  HeaderFieldValues values;
  for (const std::string& body : bodies) {
    EXPECT_EQ(decode_header_fields(with_checksum(body), values).code(), ErrorCode::kCorrupt)
        << testing::PrintToString(body);
    EXPECT_TRUE(values.fields.empty());
  }
  EXPECT_TRUE(decode_header_fields(with_checksum(std::string("\x01\x01\x00", 3)), values).is_ok());
  ASSERT_EQ(values.fields.size(), 1u);
  EXPECT_EQ(values.fields[0].second, "");
}

}  // namespace
}  // namespace mailark
