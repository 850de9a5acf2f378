#include "afbus/types.hpp"
#include "support/round_trip.hpp"

#include <gtest/gtest.h>

namespace afbus {
namespace {

using test::round_trip;

static_assert(signature_of<std::uint8_t> == "y");
static_assert(signature_of<bool> == "b");
static_assert(signature_of<std::string> == "s");
static_assert(signature_of<std::vector<std::int32_t>> == "ai");
static_assert(signature_of<std::map<std::string, Variant>> == "a{sv}");
static_assert(signature_of<std::tuple<std::int32_t, std::string, std::vector<ObjectPath>>> == "(isao)");
static_assert(signature_of<std::vector<std::tuple<std::uint64_t, std::map<std::uint32_t, Signature>>>> ==
              "a(ta{ug})");
static_assert(signature_of_all<std::int32_t, std::string>.view() == "is");

TEST(Types, ScalarsRoundTrip) {
    auto b = MessageBuilder::method_call("org.example", "/x", "org.example.I", "M");
    append(b, std::uint8_t{200}, true, std::int16_t{-3}, std::uint16_t{65000}, std::int32_t{-70000},
           std::uint32_t{4000000000u}, std::int64_t{-1} << 40, std::uint64_t{1} << 63, 2.5);
    const Message m = round_trip(std::move(b));
    EXPECT_EQ(m.signature(), "ybnqiuxtd");
    auto values = read_all<std::uint8_t, bool, std::int16_t, std::uint16_t, std::int32_t, std::uint32_t,
                           std::int64_t, std::uint64_t, double>(m);
    ASSERT_TRUE(values);
    EXPECT_EQ(std::get<0>(*values), 200);
    EXPECT_TRUE(std::get<1>(*values));
    EXPECT_EQ(std::get<2>(*values), -3);
    EXPECT_EQ(std::get<3>(*values), 65000);
    EXPECT_EQ(std::get<4>(*values), -70000);
    EXPECT_EQ(std::get<5>(*values), 4000000000u);
    EXPECT_EQ(std::get<6>(*values), std::int64_t{-1} << 40);
    EXPECT_EQ(std::get<7>(*values), std::uint64_t{1} << 63);
    EXPECT_EQ(std::get<8>(*values), 2.5);
}

TEST(Types, ContainersRoundTrip) {
    std::map<std::string, Variant> props{{"a", Variant(std::int32_t{1})},
                                         {"b", Variant(std::string("two"))},
                                         {"c", Variant(std::vector<std::string>{"x", "y"})}};
    std::vector<std::tuple<std::int64_t, std::string>> rows{{1, "one"}, {2, "two"}};
    std::vector<std::uint8_t> bytes(1000, 0xab);
    auto b = MessageBuilder::signal("/p", "org.example.I", "S");
    append(b, props, rows, bytes, ObjectPath("/a/b"), Signature("a{sv}"));
    const Message m = round_trip(std::move(b));
    EXPECT_EQ(m.signature(), "a{sv}a(xs)ayog");
    MessageReader r(m);
    std::map<std::string, Variant> props2;
    std::vector<std::tuple<std::int64_t, std::string>> rows2;
    std::vector<std::uint8_t> bytes2;
    ObjectPath path;
    Signature sig;
    ASSERT_TRUE(read(r, props2, rows2, bytes2, path, sig));
    EXPECT_TRUE(r.at_end());
    EXPECT_EQ(props2, props);
    EXPECT_EQ(*props2["c"].get<std::vector<std::string>>(), (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(props2["a"].get<std::string>().error(), WireError::TypeMismatch);
    EXPECT_EQ(rows2, rows);
    EXPECT_EQ(bytes2, bytes);
    EXPECT_EQ(path.str(), "/a/b");
    EXPECT_EQ(sig.str(), "a{sv}");
}

TEST(Types, ReadChecksTheSignature) {
    auto b = MessageBuilder::signal("/p", "org.example.I", "S");
    append(b, std::int32_t{1}, std::string("x"));
    const Message m = round_trip(std::move(b));
    MessageReader r(m);
    std::string s;
    EXPECT_EQ(read(r, s).error(), WireError::TypeMismatch);
    std::int32_t i;
    ASSERT_TRUE(read(r, i));
    ASSERT_TRUE(read(r, s));
    EXPECT_EQ(read(r, i).error(), WireError::NotEnoughArguments);
}

TEST(Types, InvalidValuesFailTheBuild) {
    auto b = MessageBuilder::signal("/p", "org.example.I", "S");
    append(b, ObjectPath("not/a/path"));
    EXPECT_EQ(std::move(b).build(1).error(), WireError::BadObjectPath);
    auto c = MessageBuilder::signal("/p", "org.example.I", "S");
    append(c, std::string("bad\xff utf8"));
    EXPECT_EQ(std::move(c).build(1).error(), WireError::StringInvalidUtf8);
    auto d = MessageBuilder::signal("/p", "org.example.I", "S");
    append(d, std::string("nul\0inside", 10));
    EXPECT_EQ(std::move(d).build(1).error(), WireError::StringInvalidUtf8);
}

TEST(Types, UnixFdsTravelWithTheMessage) {
    int pipefd[2];
    ASSERT_EQ(::pipe(pipefd), 0);
    Fd read_end(pipefd[0]), write_end(pipefd[1]);
    auto b = MessageBuilder::method_call("org.example", "/x", "org.example.I", "M");
    append(b, UnixFd(std::move(write_end)));
    auto built = std::move(b).build(1);
    ASSERT_TRUE(built);
    EXPECT_EQ(built->unix_fds(), 1u);
    ASSERT_EQ(built->fds().size(), 1u);
    UnixFd fd;
    MessageReader r(*built);
    ASSERT_TRUE(read(r, fd));
    ASSERT_EQ(::write(fd.fd().get(), "k", 1), 1);
    char c = 0;
    ASSERT_EQ(::read(read_end.get(), &c, 1), 1);
    EXPECT_EQ(c, 'k');
}

}  // namespace
}  // namespace afbus
