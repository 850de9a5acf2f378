#include "afbus/message.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "afbus/framer.hpp"
#include "afbus/types.hpp"
#include "support/random_message.hpp"

namespace afbus {
namespace {

struct Field {
    std::uint8_t code;
    Value value;
};

// Hand-crafts wire bytes in either byte order, bypassing MessageBuilder's checks.
std::vector<std::byte> craft(Endian endian, std::uint8_t type, std::uint32_t serial, const std::vector<Field>& fields,
                             const std::function<void(Encoder&)>& body = {}, std::uint8_t version = 1) {
    const bool swap = endian != native_endian();
    Encoder b(swap);
    if (body) body(b);
    Encoder h(swap);
    h.put_u8(static_cast<std::uint8_t>(endian));
    h.put_u8(type);
    h.put_u8(0);
    h.put_u8(version);
    h.put_u32(static_cast<std::uint32_t>(b.size()));
    h.put_u32(serial);
    auto mark = h.begin_array(8);
    for (const Field& f : fields) {
        h.align(8);
        h.put_u8(f.code);
        h.put_signature(f.value.type());
        EXPECT_TRUE(encode_value(h, f.value));
    }
    h.end_array(mark);
    h.align(8);
    std::vector<std::byte> out = std::move(h).take();
    const auto& body_bytes = b.buffer();
    out.insert(out.end(), body_bytes.begin(), body_bytes.end());
    return out;
}

std::vector<Field> call_fields(std::string signature = "") {
    std::vector<Field> f{{1, Value::object_path("/org/example")},
                         {2, Value::string("org.example.Iface")},
                         {3, Value::string("Method")},
                         {6, Value::string("org.example.Service")}};
    if (!signature.empty()) f.push_back({8, Value::signature(signature)});
    return f;
}

WireError parse_error(const std::vector<std::byte>& wire) {
    auto m = Message::parse(wire);
    EXPECT_FALSE(m) << "accepted";
    return m ? WireError::BadArgument : m.error();
}

TEST(Message, BuildAndParseMethodCall) {
    auto b = MessageBuilder::method_call("org.example.Service", "/org/example", "org.example.Iface", "Method");
    append(b, std::string("hello"), std::uint32_t{42});
    auto built = std::move(b).build(5);
    ASSERT_TRUE(built) << to_string(built.error());
    auto m = Message::parse(built->wire());
    ASSERT_TRUE(m) << to_string(m.error());
    EXPECT_EQ(m->type(), MessageType::MethodCall);
    EXPECT_EQ(m->serial(), 5u);
    EXPECT_EQ(m->path(), "/org/example");
    EXPECT_EQ(m->interface(), "org.example.Iface");
    EXPECT_EQ(m->member(), "Method");
    EXPECT_EQ(m->destination(), "org.example.Service");
    EXPECT_EQ(m->signature(), "su");
    EXPECT_TRUE(m->expects_reply());
    EXPECT_EQ(m->header_bytes().size() % 8, 0u);
    auto values = read_all<std::string, std::uint32_t>(*m);
    ASSERT_TRUE(values);
    EXPECT_EQ(std::get<0>(*values), "hello");
    EXPECT_EQ(std::get<1>(*values), 42u);
}

TEST(Message, BigEndianInput) {
    const Endian other = native_endian() == Endian::Little ? Endian::Big : Endian::Little;
    auto wire = craft(other, 1, 0x01020304, call_fields("ut(sq)"), [](Encoder& e) {
        e.put_u32(0xdeadbeef);
        e.put_u64(0x0102030405060708ull);
        e.align(8);
        e.put_string("text");
        e.put_u16(0x1234);
    });
    auto m = Message::parse(wire);
    ASSERT_TRUE(m) << to_string(m.error());
    EXPECT_EQ(m->endian(), other);
    EXPECT_EQ(m->serial(), 0x01020304u);
    auto values = read_all<std::uint32_t, std::uint64_t, std::tuple<std::string, std::uint16_t>>(*m);
    ASSERT_TRUE(values) << to_string(values.error());
    EXPECT_EQ(std::get<0>(*values), 0xdeadbeefu);
    EXPECT_EQ(std::get<1>(*values), 0x0102030405060708ull);
    EXPECT_EQ(std::get<2>(*values), std::make_tuple(std::string("text"), std::uint16_t{0x1234}));

    // Stitching a sender keeps the message's own byte order and its body bytes.
    auto stitched = m->with_sender(":1.7");
    ASSERT_TRUE(stitched) << to_string(stitched.error());
    EXPECT_EQ(stitched->endian(), other);
    EXPECT_EQ(stitched->sender(), ":1.7");
    EXPECT_EQ(stitched->serial(), 0x01020304u);
    EXPECT_TRUE(std::equal(stitched->body_bytes().begin(), stitched->body_bytes().end(), m->body_bytes().begin(),
                           m->body_bytes().end()));
    auto reparsed = Message::parse(stitched->wire());
    EXPECT_TRUE(reparsed) << to_string(reparsed.error());
}

TEST(Message, WithSenderStripsUnknownFieldsAndReplacesSender) {
    auto fields = call_fields();
    fields.push_back({7, Value::string(":1.99")});                 // a forged sender
    fields.push_back({42, Value::array("i", {Value::int32(1)})});  // unknown field
    auto m = Message::parse(craft(native_endian(), 1, 3, fields));
    ASSERT_TRUE(m) << to_string(m.error());
    EXPECT_TRUE(m->has_unknown_fields());
    auto s = m->with_sender(":1.5");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->sender(), ":1.5");
    EXPECT_FALSE(s->has_unknown_fields());
    EXPECT_EQ(s->member(), "Method");
}

// with_sender on random messages in both byte orders, with and without a SENDER of their own: the result
// parses to the same message as before but for its sender, and keeps the body bytes. (A message with no
// SENDER gets one appended to its fields as they are; one with a SENDER gets a new header.)
TEST(Message, WithSenderKeepsEverythingButTheSender) {
    testgen::Generator g(testgen::env_or("AFBUS_DIFF_SEED", 7));
    for (int i = 0; i < 500; ++i) {
        const testgen::Parts parts = testgen::random_parts(g);
        const Endian endian = i % 2 ? Endian::Little : Endian::Big;
        auto m = Message::parse(testgen::afbus_marshal(parts, endian));
        ASSERT_TRUE(m) << to_string(m.error());
        const std::string sender = ":1." + std::to_string(i);
        auto stamped = m->with_sender(sender);
        ASSERT_TRUE(stamped) << to_string(stamped.error());
        auto again = Message::parse(stamped->wire());
        ASSERT_TRUE(again) << to_string(again.error()) << " (message " << i << ")";
        for (const Message* got : {&*stamped, &*again}) {
            EXPECT_EQ(got->sender(), sender);
            EXPECT_EQ(got->endian(), endian);
            EXPECT_EQ(got->type(), m->type());
            EXPECT_EQ(got->flags(), m->flags());
            EXPECT_EQ(got->serial(), m->serial());
            EXPECT_EQ(got->path(), m->path());
            EXPECT_EQ(got->interface(), m->interface());
            EXPECT_EQ(got->member(), m->member());
            EXPECT_EQ(got->error_name(), m->error_name());
            EXPECT_EQ(got->destination(), m->destination());
            EXPECT_EQ(got->signature(), m->signature());
            EXPECT_EQ(got->reply_serial(), m->reply_serial());
            EXPECT_EQ(got->unix_fds(), m->unix_fds());
            EXPECT_TRUE(std::ranges::equal(got->body_bytes(), m->body_bytes()));
        }
        EXPECT_EQ(stamped->size() % 8, m->body_bytes().size() % 8) << "the header is padded to 8";
    }
}

TEST(Message, RequiredHeaderFields) {
    const Endian e = native_endian();
    EXPECT_EQ(parse_error(craft(e, 1, 1, {{3, Value::string("M")}})), WireError::MissingPath);
    EXPECT_EQ(parse_error(craft(e, 1, 1, {{1, Value::object_path("/a")}})), WireError::MissingMember);
    EXPECT_EQ(parse_error(craft(e, 2, 1, {})), WireError::MissingReplySerial);
    EXPECT_EQ(parse_error(craft(e, 3, 1, {{5, Value::uint32(1)}})), WireError::MissingErrorName);
    EXPECT_EQ(parse_error(craft(e, 3, 1, {{4, Value::string("a.B")}})), WireError::MissingReplySerial);
    EXPECT_EQ(parse_error(craft(e, 4, 1, {{1, Value::object_path("/a")}, {3, Value::string("M")}})),
              WireError::MissingInterface);
    EXPECT_TRUE(Message::parse(craft(e, 2, 1, {{5, Value::uint32(9)}})));
    EXPECT_TRUE(Message::parse(craft(e, 9, 1, {})));  // unknown types: no required fields
}

TEST(Message, HeaderRules) {
    const Endian e = native_endian();
    EXPECT_EQ(parse_error(craft(e, 0, 1, call_fields())), WireError::BadMessageType);
    EXPECT_EQ(parse_error(craft(e, 1, 0, call_fields())), WireError::ZeroSerial);
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields(), {}, 2)), WireError::BadProtocolVersion);
    auto twice = call_fields();
    twice.push_back({3, Value::string("Other")});
    EXPECT_EQ(parse_error(craft(e, 1, 1, twice)), WireError::HeaderFieldTwice);
    auto wrong_type = call_fields();
    wrong_type[0] = {1, Value::string("/a")};
    EXPECT_EQ(parse_error(craft(e, 1, 1, wrong_type)), WireError::HeaderFieldWrongType);
    auto code0 = call_fields();
    code0.push_back({0, Value::uint32(1)});
    EXPECT_EQ(parse_error(craft(e, 1, 1, code0)), WireError::HeaderFieldCodeInvalid);
    auto bad_member = call_fields();
    bad_member[2] = {3, Value::string("9bad")};
    EXPECT_EQ(parse_error(craft(e, 1, 1, bad_member)), WireError::BadMember);
    auto bad_dest = call_fields();
    bad_dest[3] = {6, Value::string("nodots")};
    EXPECT_EQ(parse_error(craft(e, 1, 1, bad_dest)), WireError::BadDestination);
    auto local = call_fields();
    local[0] = {1, Value::object_path("/org/freedesktop/DBus/Local")};
    EXPECT_EQ(parse_error(craft(e, 1, 1, local)), WireError::UsesLocalPath);
    EXPECT_EQ(parse_error(craft(e, 2, 1, {{5, Value::uint32(0)}})), WireError::ZeroReplySerial);

    auto wire = craft(e, 1, 1, call_fields());
    wire[0] = std::byte{'X'};
    EXPECT_EQ(parse_error(wire), WireError::BadEndianFlag);
}

TEST(Message, BodyRules) {
    const Endian e = native_endian();
    // Body bytes without a signature.
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields(), [](Encoder& b) { b.put_u32(1); })), WireError::TrailingBytes);
    // Signature promises more than the body has.
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields("uu"), [](Encoder& b) { b.put_u32(1); })), WireError::Truncated);
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields("b"), [](Encoder& b) { b.put_u32(2); })), WireError::BadBoolean);
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields("s"), [](Encoder& b) { b.put_string("\xff"); })),
              WireError::StringInvalidUtf8);
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields("o"), [](Encoder& b) { b.put_string("x/"); })),
              WireError::BadObjectPath);
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields("g"), [](Encoder& b) { b.put_signature("a"); })),
              WireError::BadSignatureValue);
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields("yu"), [](Encoder& b) {
                  b.put_u8(1);
                  b.put_u8(1);  // nonzero padding before the u32
                  b.align(4);
                  b.put_u32(5);
              })),
              WireError::NonzeroPadding);
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields("ai"), [](Encoder& b) {
                  b.put_u32(6);  // not a whole number of int32s
                  b.put_u32(1);
                  b.put_u16(0);
              })),
              WireError::ArrayLengthMismatch);
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields("as"), [](Encoder& b) {
                  b.put_u32(7);  // ends inside the string
                  b.put_string("abcdef");
              })),
              WireError::ArrayLengthMismatch);
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields("v"), [](Encoder& b) {
                  b.put_signature("ii");
                  b.put_u32(1);
                  b.put_u32(2);
              })),
              WireError::BadSignatureValue);
    // An empty array of 8-aligned elements still pads to 8.
    EXPECT_TRUE(Message::parse(craft(e, 1, 1, call_fields("at"), [](Encoder& b) {
        auto m = b.begin_array(8);
        b.end_array(m);
    })));
}

// A unix-fd index that names none of the message's fds is well-formed (libdbus and dbus-daemon accept
// and forward it): parsing and framing accept it, the generic reader sees the index, and only reading it
// as a UnixFd fails, with an error value.
TEST(Message, FdIndexBeyondTheMessagesFdsParsesButDoesNotReadAsAnFd) {
    for (const Endian e : {Endian::Little, Endian::Big}) {
        const auto wire = craft(e, 1, 7, call_fields("hs"), [](Encoder& b) {
            b.put_u32(42);  // no UNIX_FDS field: the message has no fds at all
            b.put_string("after");
        });
        auto m = Message::parse(wire);
        ASSERT_TRUE(m) << to_string(m.error());
        EXPECT_EQ(m->unix_fds(), 0u);
        auto values = m->reader().read_all();
        ASSERT_TRUE(values) << to_string(values.error());
        ASSERT_EQ(values->size(), 2u);
        EXPECT_EQ((*values)[0], Value::unix_fd_index(42));
        EXPECT_EQ((*values)[1], Value::string("after"));
        auto typed = read_all<UnixFd, std::string>(*m);
        ASSERT_FALSE(typed);
        EXPECT_EQ(typed.error(), WireError::FdIndexOutOfRange);
        // Forwarding keeps the value as it is.
        auto stitched = m->with_sender(":1.42");
        ASSERT_TRUE(stitched) << to_string(stitched.error());
        auto again = Message::parse(stitched->wire());
        ASSERT_TRUE(again) << to_string(again.error());
        EXPECT_EQ(again->reader().read_all().value(), *values);

        // The stream framer, which is what the bus and libafbus connections read with, yields it too.
        MessageFramer framer;
        auto space = framer.prepare(wire.size());
        std::memcpy(space.data(), wire.data(), wire.size());
        framer.commit(wire.size());
        auto framed = framer.next();
        ASSERT_TRUE(framed) << to_string(framed.error());
        ASSERT_TRUE(*framed);
        EXPECT_EQ((*framed)->serial(), 7u);
    }
    // Inside containers as well; and a message built with such an index (the builder writes what it is
    // given) parses.
    auto b = MessageBuilder::method_call("org.example.Service", "/org/example", "org.example.Iface", "Method");
    b.append_value(Value::variant(Value::unix_fd_index(3)));
    b.append_value(Value::array("h", {Value::unix_fd_index(0), Value::unix_fd_index(UINT32_MAX)}));
    auto built = std::move(b).build(9);
    ASSERT_TRUE(built) << to_string(built.error());
    auto m = Message::parse(built->wire());
    ASSERT_TRUE(m) << to_string(m.error());
    EXPECT_EQ(m->signature(), "vah");
}

TEST(Message, VariantNestingLimit) {
    const Endian e = native_endian();
    auto nested = [](int variants) {
        return [variants](Encoder& b) {
            for (int i = 0; i < variants; ++i) b.put_signature("v");
            b.put_signature("y");
            b.put_u8(7);
        };
    };
    // The body's own variant plus 63 inside: 64 containers, then a byte.
    EXPECT_TRUE(Message::parse(craft(e, 1, 1, call_fields("v"), nested(63))));
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields("v"), nested(64))), WireError::NestedTooDeep);
}

TEST(Message, ArrayLengthLimit) {
    const Endian e = native_endian();
    EXPECT_TRUE(Message::parse(craft(e, 1, 1, call_fields("ay"), [](Encoder& b) {
        std::vector<std::uint8_t> bytes(kMaxArrayLength, 1);
        b.put_u32(kMaxArrayLength);
        b.put_bytes(bytes.data(), bytes.size());
    })));
    EXPECT_EQ(parse_error(craft(e, 1, 1, call_fields("ay"), [](Encoder& b) {
                  std::vector<std::uint8_t> bytes(kMaxArrayLength + 1, 1);
                  b.put_u32(kMaxArrayLength + 1);
                  b.put_bytes(bytes.data(), bytes.size());
              })),
              WireError::ArrayTooLong);
}

TEST(Message, FrameLength) {
    auto b = MessageBuilder::signal("/a", "a.b", "C");
    append(b, std::string(100, 'x'));
    auto m = std::move(b).build(1);
    ASSERT_TRUE(m);
    auto wire = m->wire();
    auto n = Message::frame_length(std::span<const std::byte>(wire).first<kFixedHeaderLength>());
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, wire.size());
    std::uint32_t huge = 0x7fffffff;
    std::memcpy(wire.data() + 4, &huge, 4);
    EXPECT_EQ(Message::frame_length(std::span<const std::byte>(wire).first<kFixedHeaderLength>()).error(),
              WireError::MessageTooLong);
    EXPECT_EQ(Message::parse(std::span<const std::byte>(m->wire()).first(20)).error(), WireError::Truncated);
}

// A transport that read a whole message into one block hands it over: the body stays where it was read.
TEST(Message, ParseFromOneBlockKeepsTheBodyInPlace) {
    auto b = MessageBuilder::signal("/a", "a.b", "C");
    append(b, std::string(1000, 'x'));
    auto built = std::move(b).build(5);
    ASSERT_TRUE(built);
    const auto wire = built->wire();
    const std::size_t header_length = built->header_bytes().size();
    auto block_with = [&](std::size_t size) {
        OwnedBytes block = OwnedBytes::for_overwrite(size);
        std::memcpy(block.data(), wire.data(), std::min(size, wire.size()));
        return block;
    };

    OwnedBytes block = block_with(wire.size());
    const std::byte* body_in_block = block.data() + header_length;
    auto m = Message::parse(std::move(block));
    ASSERT_TRUE(m) << to_string(m.error());
    EXPECT_EQ(m->body_bytes().data(), body_in_block);
    EXPECT_EQ(m->serial(), 5u);
    EXPECT_EQ(std::get<0>(*read_all<std::string>(*m)), std::string(1000, 'x'));
    EXPECT_EQ(m->wire(), wire);
    // It forwards, clones and re-parses like any other message.
    auto stitched = std::move(*m).with_sender(":1.7");
    ASSERT_TRUE(stitched);
    EXPECT_EQ(stitched->body_bytes().data(), body_in_block);
    auto clone = stitched->clone();
    ASSERT_TRUE(clone);
    EXPECT_NE(clone->body_bytes().data(), body_in_block);
    EXPECT_TRUE(Message::parse(clone->wire()));

    EXPECT_EQ(Message::parse(block_with(wire.size() - 1)).error(), WireError::Truncated);
    EXPECT_EQ(Message::parse(block_with(wire.size() + 8)).error(), WireError::TrailingBytes);
    EXPECT_EQ(Message::parse(block_with(10)).error(), WireError::Truncated);
    OwnedBytes corrupt = block_with(wire.size());
    corrupt.data()[wire.size() - 1] = std::byte{'y'};  // the string's terminating NUL
    EXPECT_FALSE(Message::parse(std::move(corrupt)));
}

TEST(Message, RepliesAndErrors) {
    auto call = MessageBuilder::method_call("a.b", "/", "a.b", "M").sender(":1.3").build(11);
    ASSERT_TRUE(call);
    auto reply = MessageBuilder::method_return(*call).build(2);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->destination(), ":1.3");
    EXPECT_EQ(reply->reply_serial(), 11u);
    auto err = MessageBuilder::error(*call, "org.example.Error.Failed", "it broke").build(3);
    ASSERT_TRUE(err);
    EXPECT_EQ(err->type(), MessageType::Error);
    EXPECT_EQ(err->error_name(), "org.example.Error.Failed");
    EXPECT_EQ(std::get<0>(*read_all<std::string>(*err)), "it broke");
    EXPECT_EQ(MessageBuilder::method_call("a.b", "bad path", "a.b", "M").build(1).error(), WireError::BadPath);
    EXPECT_EQ(MessageBuilder::signal("/a", "", "M").build(1).error(), WireError::MissingInterface);
}

TEST(Message, DescribeNamesTheFields) {
    auto m = MessageBuilder::method_call("a.b", "/p", "a.b", "M").build(4);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->describe(), "method_call serial=4 destination=a.b path=/p interface=a.b member=M");
}

}  // namespace
}  // namespace afbus
