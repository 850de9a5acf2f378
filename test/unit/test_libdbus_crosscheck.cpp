// Cross-check of the wire format against the reference implementation, libdbus:
//  - random messages (random signatures up to the nesting limits, random values, both byte orders)
//    marshalled by afbus are demarshalled by libdbus (dbus_message_demarshal) and every value compared;
//  - random messages built and marshalled by libdbus are parsed by afbus and every value compared;
//  - a corpus of invalid messages must be rejected by both, and random corruptions of valid messages must
//    be accepted or rejected by both alike (where they differ by design, docs/wire-format.md says why).
// Seeded and reproducible: AFBUS_CROSSCHECK_SEED and AFBUS_CROSSCHECK_COUNT override the defaults.
#include <dbus/dbus.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "afbus/message.hpp"
#include "afbus/names.hpp"
#include "afbus/signature.hpp"
#include "afbus/types.hpp"
#include "support/random_message.hpp"

namespace afbus {
namespace {

struct DBusMessageDeleter {
    void operator()(DBusMessage* m) const { dbus_message_unref(m); }
};
using DBusMessagePtr = std::unique_ptr<DBusMessage, DBusMessageDeleter>;

using namespace testgen;  // Generator, Parts, random_parts, raw_encode, afbus_marshal

// ---------------------------------------------------------------------------------------------------
// libdbus side.

Value libdbus_read(DBusMessageIter* it) {
    const int type = dbus_message_iter_get_arg_type(it);
    DBusBasicValue v;
    switch (type) {
        case DBUS_TYPE_BYTE: dbus_message_iter_get_basic(it, &v); return Value::byte(v.byt);
        case DBUS_TYPE_BOOLEAN: dbus_message_iter_get_basic(it, &v); return Value::boolean(v.bool_val != 0);
        case DBUS_TYPE_INT16: dbus_message_iter_get_basic(it, &v); return Value::int16(v.i16);
        case DBUS_TYPE_UINT16: dbus_message_iter_get_basic(it, &v); return Value::uint16(v.u16);
        case DBUS_TYPE_INT32: dbus_message_iter_get_basic(it, &v); return Value::int32(v.i32);
        case DBUS_TYPE_UINT32: dbus_message_iter_get_basic(it, &v); return Value::uint32(v.u32);
        case DBUS_TYPE_INT64: dbus_message_iter_get_basic(it, &v); return Value::int64(v.i64);
        case DBUS_TYPE_UINT64: dbus_message_iter_get_basic(it, &v); return Value::uint64(v.u64);
        case DBUS_TYPE_DOUBLE: dbus_message_iter_get_basic(it, &v); return Value::float64(v.dbl);
        case DBUS_TYPE_STRING: dbus_message_iter_get_basic(it, &v); return Value::string(v.str);
        case DBUS_TYPE_OBJECT_PATH: dbus_message_iter_get_basic(it, &v); return Value::object_path(v.str);
        case DBUS_TYPE_SIGNATURE: dbus_message_iter_get_basic(it, &v); return Value::signature(v.str);
        case DBUS_TYPE_VARIANT: {
            DBusMessageIter sub;
            dbus_message_iter_recurse(it, &sub);
            return Value::variant(libdbus_read(&sub));
        }
        case DBUS_TYPE_ARRAY: {
            char* sig = dbus_message_iter_get_signature(it);
            const std::string element(sig + 1);
            dbus_free(sig);
            DBusMessageIter sub;
            dbus_message_iter_recurse(it, &sub);
            std::vector<Value> elements;
            while (dbus_message_iter_get_arg_type(&sub) != DBUS_TYPE_INVALID) {
                elements.push_back(libdbus_read(&sub));
                dbus_message_iter_next(&sub);
            }
            return Value::array(element, std::move(elements));
        }
        case DBUS_TYPE_STRUCT:
        case DBUS_TYPE_DICT_ENTRY: {
            DBusMessageIter sub;
            dbus_message_iter_recurse(it, &sub);
            std::vector<Value> fields;
            while (dbus_message_iter_get_arg_type(&sub) != DBUS_TYPE_INVALID) {
                fields.push_back(libdbus_read(&sub));
                dbus_message_iter_next(&sub);
            }
            if (type == DBUS_TYPE_DICT_ENTRY) return Value::dict_entry(std::move(fields.at(0)), std::move(fields.at(1)));
            return Value::structure(std::move(fields));
        }
    }
    ADD_FAILURE() << "libdbus returned type " << type;
    return {};
}

std::vector<Value> libdbus_body(DBusMessage* m) {
    std::vector<Value> values;
    DBusMessageIter it;
    if (!dbus_message_iter_init(m, &it)) return values;
    while (dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_INVALID) {
        values.push_back(libdbus_read(&it));
        dbus_message_iter_next(&it);
    }
    return values;
}

bool libdbus_append(DBusMessageIter* it, const Value& v) {
    const char code = v.type()[0];
    auto basic = [it](int type, const void* p) { return dbus_message_iter_append_basic(it, type, p) != 0; };
    switch (code) {
        case 'y': { const std::uint8_t x = *v.get_if<std::uint8_t>(); return basic(DBUS_TYPE_BYTE, &x); }
        case 'b': { const dbus_bool_t x = *v.get_if<bool>(); return basic(DBUS_TYPE_BOOLEAN, &x); }
        case 'n': return basic(DBUS_TYPE_INT16, v.get_if<std::int16_t>());
        case 'q': return basic(DBUS_TYPE_UINT16, v.get_if<std::uint16_t>());
        case 'i': return basic(DBUS_TYPE_INT32, v.get_if<std::int32_t>());
        case 'u': return basic(DBUS_TYPE_UINT32, v.get_if<std::uint32_t>());
        case 'x': return basic(DBUS_TYPE_INT64, v.get_if<std::int64_t>());
        case 't': return basic(DBUS_TYPE_UINT64, v.get_if<std::uint64_t>());
        case 'd': return basic(DBUS_TYPE_DOUBLE, v.get_if<double>());
        case 's': case 'o': case 'g': {
            const char* s = v.text().c_str();
            return basic(code == 's' ? DBUS_TYPE_STRING : code == 'o' ? DBUS_TYPE_OBJECT_PATH : DBUS_TYPE_SIGNATURE, &s);
        }
        case 'v': case 'a': case '(': case '{': {
            DBusMessageIter sub;
            int type = DBUS_TYPE_STRUCT;
            std::string contained;
            if (code == 'v') {
                type = DBUS_TYPE_VARIANT;
                contained = v.children()[0].type();
            } else if (code == 'a') {
                type = DBUS_TYPE_ARRAY;
                contained = v.type().substr(1);
            } else if (code == '{') {
                type = DBUS_TYPE_DICT_ENTRY;
            }
            if (!dbus_message_iter_open_container(it, type, contained.empty() ? nullptr : contained.c_str(), &sub))
                return false;
            for (const Value& child : v.children())
                if (!libdbus_append(&sub, child)) return false;
            return dbus_message_iter_close_container(it, &sub) != 0;
        }
    }
    return false;
}

DBusMessagePtr libdbus_build(const Parts& p) {
    DBusMessagePtr m(dbus_message_new(static_cast<int>(p.type)));
    if (!p.path.empty()) dbus_message_set_path(m.get(), p.path.c_str());
    if (!p.interface.empty()) dbus_message_set_interface(m.get(), p.interface.c_str());
    if (!p.member.empty()) dbus_message_set_member(m.get(), p.member.c_str());
    if (!p.error_name.empty()) dbus_message_set_error_name(m.get(), p.error_name.c_str());
    if (p.reply_serial) dbus_message_set_reply_serial(m.get(), p.reply_serial);
    if (!p.destination.empty()) dbus_message_set_destination(m.get(), p.destination.c_str());
    if (!p.sender.empty()) dbus_message_set_sender(m.get(), p.sender.c_str());
    dbus_message_set_no_reply(m.get(), (p.flags & message_flags::kNoReplyExpected) != 0);
    dbus_message_set_auto_start(m.get(), (p.flags & message_flags::kNoAutoStart) == 0);
    dbus_message_set_allow_interactive_authorization(
        m.get(), (p.flags & message_flags::kAllowInteractiveAuthorization) != 0);
    DBusMessageIter it;
    dbus_message_iter_init_append(m.get(), &it);
    for (const Value& v : p.body) EXPECT_TRUE(libdbus_append(&it, v)) << v.type();
    dbus_message_set_serial(m.get(), p.serial);
    return m;
}

bool libdbus_accepts(const std::vector<std::byte>& wire) {
    DBusError error;
    dbus_error_init(&error);
    DBusMessage* m = dbus_message_demarshal(reinterpret_cast<const char*>(wire.data()),
                                            static_cast<int>(wire.size()), &error);
    if (m) dbus_message_unref(m);
    dbus_error_free(&error);
    return m != nullptr;
}

std::string str_or_empty(const char* s) { return s ? s : ""; }

void expect_same_header(const Parts& p, DBusMessage* m) {
    EXPECT_EQ(dbus_message_get_type(m), static_cast<int>(p.type));
    EXPECT_EQ(dbus_message_get_serial(m), p.serial);
    EXPECT_EQ(str_or_empty(dbus_message_get_path(m)), p.path);
    EXPECT_EQ(str_or_empty(dbus_message_get_interface(m)), p.interface);
    EXPECT_EQ(str_or_empty(dbus_message_get_member(m)), p.member);
    EXPECT_EQ(str_or_empty(dbus_message_get_error_name(m)), p.error_name);
    EXPECT_EQ(str_or_empty(dbus_message_get_destination(m)), p.destination);
    EXPECT_EQ(str_or_empty(dbus_message_get_sender(m)), p.sender);
    EXPECT_EQ(str_or_empty(dbus_message_get_signature(m)), p.signature());
    EXPECT_EQ(dbus_message_get_reply_serial(m), p.reply_serial);
    EXPECT_EQ(dbus_message_get_no_reply(m) != 0, (p.flags & message_flags::kNoReplyExpected) != 0);
}

void expect_same_header(const Parts& p, const Message& m) {
    EXPECT_EQ(m.type(), p.type);
    EXPECT_EQ(m.serial(), p.serial);
    EXPECT_EQ(m.path(), p.path);
    EXPECT_EQ(m.interface(), p.interface);
    EXPECT_EQ(m.member(), p.member);
    EXPECT_EQ(m.error_name(), p.error_name);
    EXPECT_EQ(m.destination(), p.destination);
    EXPECT_EQ(m.sender(), p.sender);
    EXPECT_EQ(m.signature(), p.signature());
    EXPECT_EQ(m.reply_serial().value_or(0), p.reply_serial);
    EXPECT_EQ(m.flags() & 1, p.flags & 1);
}

const std::uint64_t kSeed = env_or("AFBUS_CROSSCHECK_SEED", 20261126);
const std::uint64_t kCount = env_or("AFBUS_CROSSCHECK_COUNT", 10000);

TEST(LibdbusCrossCheck, AfbusMarshalsLibdbusDemarshals) {
    Generator g(kSeed);
    for (std::uint64_t i = 0; i < kCount; ++i) {
        const Parts p = random_parts(g);
        const Endian endian = i % 2 ? Endian::Big : Endian::Little;
        const auto wire = afbus_marshal(p, endian);
        ASSERT_TRUE(Message::parse(wire)) << "afbus rejects its own message " << i << " " << p.signature();
        DBusError error;
        dbus_error_init(&error);
        DBusMessagePtr m(dbus_message_demarshal(reinterpret_cast<const char*>(wire.data()),
                                                static_cast<int>(wire.size()), &error));
        ASSERT_TRUE(m) << "message " << i << " (seed " << kSeed << ") signature " << p.signature() << ": "
                       << (error.message ? error.message : "");
        dbus_error_free(&error);
        SCOPED_TRACE("message " + std::to_string(i) + " signature " + p.signature());
        expect_same_header(p, m.get());
        ASSERT_EQ(libdbus_body(m.get()), p.body);
    }
}

TEST(LibdbusCrossCheck, LibdbusMarshalsAfbusParses) {
    Generator g(kSeed + 1);
    for (std::uint64_t i = 0; i < kCount; ++i) {
        const Parts p = random_parts(g);
        DBusMessagePtr m = libdbus_build(p);
        char* bytes = nullptr;
        int length = 0;
        ASSERT_TRUE(dbus_message_marshal(m.get(), &bytes, &length));
        std::vector<std::byte> wire(reinterpret_cast<std::byte*>(bytes), reinterpret_cast<std::byte*>(bytes) + length);
        dbus_free(bytes);
        auto parsed = Message::parse(wire);
        ASSERT_TRUE(parsed) << "message " << i << " (seed " << kSeed + 1 << ") signature " << p.signature() << ": "
                            << to_string(parsed.error());
        SCOPED_TRACE("message " + std::to_string(i) + " signature " + p.signature());
        expect_same_header(p, *parsed);
        auto body = parsed->reader().read_all();
        ASSERT_TRUE(body);
        ASSERT_EQ(*body, p.body);
    }
}

// ---------------------------------------------------------------------------------------------------
// Invalid messages.

struct Invalid {
    const char* name;
    std::function<void(Parts&)> edit_parts;                 // applied before marshalling
    std::function<void(std::vector<std::byte>&)> edit_wire;  // applied after
};

Parts valid_call() {
    Parts p;
    p.path = "/org/example";
    p.interface = "org.example.Iface";
    p.member = "Method";
    p.destination = "org.example.Service";
    p.serial = 9;
    p.body = {Value::string("text"), Value::uint32(7), Value::boolean(true)};
    return p;
}

void set_u32(std::vector<std::byte>& w, std::size_t at, std::uint32_t v) { std::memcpy(w.data() + at, &v, 4); }

std::size_t find(const std::vector<std::byte>& w, std::string_view needle) {
    const auto* base = reinterpret_cast<const char*>(w.data());
    const std::string_view hay(base, w.size());
    return hay.find(needle);
}

std::size_t body_offset(const std::vector<std::byte>& w) {
    std::uint32_t fields;
    std::memcpy(&fields, w.data() + 12, 4);
    return (16 + fields + 7) & ~std::size_t{7};
}

TEST(LibdbusCrossCheck, BothRejectTheInvalidCorpus) {
    const std::vector<Invalid> corpus = {
        {"bad endian flag", {}, [](auto& w) { w[0] = std::byte{'x'}; }},
        {"protocol version 2", {}, [](auto& w) { w[3] = std::byte{2}; }},
        {"message type 0", {}, [](auto& w) { w[1] = std::byte{0}; }},
        {"serial 0", {}, [](auto& w) { set_u32(w, 8, 0); }},
        {"method call without path", [](Parts& p) { p.path.clear(); }, {}},
        {"method call without member", [](Parts& p) { p.member.clear(); }, {}},
        {"signal without interface", [](Parts& p) { p.type = MessageType::Signal; p.interface.clear(); }, {}},
        {"error without error name", [](Parts& p) { p.type = MessageType::Error; p.reply_serial = 1; p.path.clear(); p.member.clear(); p.interface.clear(); }, {}},
        {"return without reply serial", [](Parts& p) { p.type = MessageType::MethodReturn; p.path.clear(); p.member.clear(); p.interface.clear(); }, {}},
        {"invalid path", [](Parts& p) { p.path = "/org//example"; }, {}},
        {"path with trailing slash", [](Parts& p) { p.path = "/org/"; }, {}},
        {"invalid interface", [](Parts& p) { p.interface = "noDots"; }, {}},
        {"interface element starts with digit", [](Parts& p) { p.interface = "org.9example"; }, {}},
        {"invalid member", [](Parts& p) { p.member = "Has.Dot"; }, {}},
        {"invalid destination", [](Parts& p) { p.destination = "org..example"; }, {}},
        {"invalid sender", [](Parts& p) { p.sender = "sender"; }, {}},
        {"local path", [](Parts& p) { p.path = "/org/freedesktop/DBus/Local"; }, {}},
        {"local interface", [](Parts& p) { p.interface = "org.freedesktop.DBus.Local"; }, {}},
        {"string not UTF-8", [](Parts& p) { p.body[0] = Value::string("caf\xc3"); }, {}},
        {"string with overlong encoding", [](Parts& p) { p.body[0] = Value::string("\xc0\xaf"); }, {}},
        {"string with surrogate", [](Parts& p) { p.body[0] = Value::string("\xed\xb0\x80"); }, {}},
        {"string with NUL", [](Parts& p) { p.body[0] = Value::string(std::string("a\0b", 3)); }, {}},
        {"object path value invalid", [](Parts& p) { p.body[0] = Value::object_path("relative"); }, {}},
        {"signature value invalid", [](Parts& p) { p.body[0] = Value::signature("a{vs}"); }, {}},
        {"boolean 2", {}, [](auto& w) { set_u32(w, w.size() - 4, 2); }},
        {"string missing NUL", {}, [](auto& w) { w[body_offset(w) + 8] = std::byte{'x'}; }},
        {"nonzero padding in body", [](Parts& p) { p.body = {Value::byte(1), Value::uint32(2)}; },
         [](auto& w) { w[body_offset(w) + 1] = std::byte{1}; }},
        {"nonzero header padding", [](Parts& p) { p.path = "/a"; }, [](auto& w) { w[body_offset(w) - 1] = std::byte{1}; }},
        {"body shorter than signature", {}, [](auto& w) { w.resize(w.size() - 4); set_u32(w, 4, static_cast<std::uint32_t>(w.size() - body_offset(w))); }},
        {"body longer than signature", {}, [](auto& w) { w.resize(w.size() + 4); set_u32(w, 4, static_cast<std::uint32_t>(w.size() - body_offset(w))); }},
        {"array length not a multiple of element size", [](Parts& p) { p.body = {Value::array("i", {Value::int32(1), Value::int32(2)})}; },
         [](auto& w) { set_u32(w, body_offset(w), 7); }},
        {"array longer than 64 MiB", [](Parts& p) { p.body = {Value::array("y", {})}; },
         [](auto& w) { set_u32(w, body_offset(w), 64u * 1024 * 1024 + 4); }},
        {"header field twice", [](Parts& p) { p.sender = ":1.5"; }, [](auto& w) {
             // Turn the SENDER field code into DESTINATION: DESTINATION then appears twice.
             w[find(w, ":1.5") - 8] = std::byte{6};
         }},
        {"header field with wrong type", {}, [](auto& w) {
             const std::size_t at = find(w, "org.example.Iface") - 6;  // variant signature "s" of INTERFACE
             w[at] = std::byte{'o'};
         }},
        {"header field code 0", {}, [](auto& w) { w[find(w, "org.example.Iface") - 8] = std::byte{0}; }},
        {"variant with two types", [](Parts& p) { p.body = {Value::variant(Value::int32(1))}; },
         [](auto& w) { const std::size_t at = body_offset(w); w[at] = std::byte{2}; w[at + 2] = std::byte{'i'}; }},
        {"message longer than 128 MiB", {}, [](auto& w) { set_u32(w, 4, 128u * 1024 * 1024); }},
        {"variant nesting deeper than 64", [](Parts& p) {
             Value v = Value::byte(1);
             for (int i = 0; i < 65; ++i) v = Value::variant(std::move(v));
             p.body = {v};
         }, {}},
        {"reply serial 0", [](Parts& p) { p.type = MessageType::MethodReturn; p.path.clear(); p.member.clear(); p.interface.clear(); p.reply_serial = 1; },
         [](auto& w) {
             const std::uint8_t pattern[] = {5, 1, 'u', 0};
             const auto hay = std::string_view(reinterpret_cast<const char*>(w.data()), w.size());
             const std::size_t at = hay.find(std::string_view(reinterpret_cast<const char*>(pattern), 4));
             set_u32(w, at + 4, 0);
         }},
    };
    for (const Invalid& c : corpus) {
        Parts p = valid_call();
        if (c.edit_parts) c.edit_parts(p);
        auto wire = afbus_marshal(p, native_endian(), false);
        if (c.edit_wire) c.edit_wire(wire);
        EXPECT_FALSE(libdbus_accepts(wire)) << c.name << ": libdbus accepts";
        auto ours = Message::parse(wire);
        EXPECT_FALSE(ours) << c.name << ": afbus accepts";
        if (!ours && std::getenv("AFBUS_CROSSCHECK_VERBOSE")) std::printf("%s: %s\n", c.name, std::string(to_string(ours.error())).c_str());
    }
}

// libdbus accepts unique names without a '.' (":1x"); the specification requires one in every bus name,
// and afbus (like dbus-broker and sd-bus) follows it. That is the one difference, by design.
bool known_divergence(const std::vector<std::byte>& wire, WireError ours) {
    if (ours != WireError::BadDestination && ours != WireError::BadSender) return false;
    DBusError error;
    dbus_error_init(&error);
    DBusMessagePtr m(dbus_message_demarshal(reinterpret_cast<const char*>(wire.data()),
                                            static_cast<int>(wire.size()), &error));
    dbus_error_free(&error);
    const std::string name =
        str_or_empty(ours == WireError::BadDestination ? dbus_message_get_destination(m.get()) : dbus_message_get_sender(m.get()));
    return name.size() > 1 && name[0] == ':' && name.find('.') == std::string::npos;
}

// Random corruptions of valid messages: both must agree on what is valid.
TEST(LibdbusCrossCheck, RandomCorruptionsAgree) {
    Generator g(kSeed + 2);
    int rejected = 0;
    for (std::uint64_t i = 0; i < kCount; ++i) {
        const Parts p = random_parts(g);
        auto wire = afbus_marshal(p, i % 2 ? Endian::Big : Endian::Little);
        const int flips = 1 + static_cast<int>(g.next(3));
        for (int f = 0; f < flips; ++f) {
            const std::size_t at = g.next(wire.size());
            wire[at] = static_cast<std::byte>(g.chance(50) ? g.next(256) : (static_cast<std::uint64_t>(wire[at]) ^ (1u << g.next(8))));
        }
        const bool theirs = libdbus_accepts(wire);
        auto ours = Message::parse(wire);
        if (!ours) ++rejected;
        if (theirs && !ours && known_divergence(wire, ours.error())) continue;
        ASSERT_EQ(static_cast<bool>(ours), theirs)
            << "message " << i << " (seed " << kSeed + 2 << "): libdbus " << (theirs ? "accepts" : "rejects")
            << ", afbus " << (ours ? "accepts" : std::string("rejects: ") + std::string(to_string(ours.error())));
    }
    EXPECT_GT(rejected, 0);
}

}  // namespace
}  // namespace afbus
