// Differential test of the kernel's D-Bus header parser (kernel/dbus/dbus_header.c, compiled here as C)
// against libafbus's Message::parse: the fuzz corpora, random valid messages (with random unknown header
// fields) and random corruptions of them must get the same verdict from both, and on acceptance the same
// header (type, flags, serial, every field). libafbus also validates the body, which the C parser does not:
// where the C parser accepts, libafbus must accept exactly when its own body validator accepts the body,
// so a body-only defect is told apart explicitly (docs/kernel.md). The leading 's'/'o' arguments the C
// body reader returns are compared with libafbus's values too.
// Seeded and reproducible: AFBUS_DIFF_SEED and AFBUS_DIFF_COUNT override the defaults; AFBUS_DIFF_EXTRA_CORPUS
// names one more directory of inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "afbus/decoder.hpp"
#include "afbus/message.hpp"
#include "afbus/signature.hpp"
#include "afbus/validate.hpp"
#include "dbus_header.h"
#include "support/random_message.hpp"

namespace afbus {
namespace {

using namespace testgen;

const std::uint64_t kSeed = env_or("AFBUS_DIFF_SEED", 0x6b65726e656c);
const std::uint64_t kCount = env_or("AFBUS_DIFF_COUNT", 10000);

struct Counts {
    int accepted = 0;
    int refused = 0;
    int body_only = 0;  // header accepted by both, body refused by libafbus
    int total() const { return accepted + refused + body_only; }
};

std::string_view view(const std::vector<std::byte>& w, const dbus_hdr_view& v) {
    if (!v.present) return {};
    return {reinterpret_cast<const char*>(w.data()) + v.off, v.len};
}

// libafbus's verdict on the body alone, for a message whose header the C parser accepted.
bool lib_body_valid(const std::vector<std::byte>& w, const dbus_hdr& h) {
    const std::span<const std::byte> body(w.data() + h.body_off, h.body_len);
    Decoder d(body, h.endian == 'B' ? Endian::Big : Endian::Little);
    return validate_values(d, view(w, h.signature)) && d.pos() == body.size();
}

// Runs both parsers on `w`; any disagreement is a test failure that names `what`.
void compare(const std::vector<std::byte>& w, const std::string& what, Counts& counts) {
    dbus_hdr h;
    dbus_hdr_reason reason;
    const int rc = dbus_hdr_parse(reinterpret_cast<const u8*>(w.data()), w.size(), &h, &reason);
    ASSERT_EQ(rc, dbus_hdr_reason_errno(reason));
    {
        // The kernel's way: only the header copied out, into a buffer of exactly that size (so that
        // AddressSanitizer catches a read beyond it), with the message's length alongside.
        std::size_t avail = w.size();
        if (w.size() >= DBUS_HDR_FIXED_LEN)
            avail = std::min<std::size_t>(w.size(), dbus_hdr_header_len(reinterpret_cast<const u8*>(w.data())));
        const std::vector<std::byte> prefix(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(avail));
        dbus_hdr hp;
        dbus_hdr_reason prefix_reason;
        ASSERT_EQ(dbus_hdr_parse_header(reinterpret_cast<const u8*>(prefix.data()), prefix.size(), w.size(), &hp,
                                        &prefix_reason),
                  rc)
            << what;
        ASSERT_EQ(prefix_reason, reason) << what;
        if (rc == 0) {
            ASSERT_EQ(std::memcmp(&hp, &h, sizeof h), 0) << what;
        }
    }
    auto m = Message::parse(w);
    if (rc != 0) {
        ASSERT_TRUE(rc == -EBADMSG || rc == -EMSGSIZE || rc == -EINVAL) << what;
        EXPECT_FALSE(m) << what << ": the C parser refuses (" << dbus_hdr_reason_name(reason)
                        << "), libafbus accepts " << m->describe();
        ++counts.refused;
        return;
    }
    // libafbus's body validator needs a valid signature: one the C parser wrongly accepted fails here.
    ASSERT_TRUE(validate_signature(view(w, h.signature)))
        << what << ": the C parser accepts the signature '" << view(w, h.signature) << "'";
    const bool body_ok = lib_body_valid(w, h);
    if (!m) {
        EXPECT_FALSE(body_ok) << what << ": the C parser accepts, libafbus refuses ("
                              << to_string(m.error()) << ") though it accepts the body";
        ++counts.body_only;
        if (std::getenv("AFBUS_DIFF_VERBOSE"))
            std::printf("%s: body refused by libafbus (%s), signature %s\n", what.c_str(),
                        std::string(to_string(m.error())).c_str(), std::string(view(w, h.signature)).c_str());
        return;
    }
    EXPECT_TRUE(body_ok) << what;
    ++counts.accepted;
    EXPECT_EQ(h.type, static_cast<std::uint8_t>(m->type())) << what;
    EXPECT_EQ(h.flags, m->flags()) << what;
    EXPECT_EQ(h.serial, m->serial()) << what;
    EXPECT_EQ(view(w, h.path), m->path()) << what;
    EXPECT_EQ(view(w, h.interface), m->interface()) << what;
    EXPECT_EQ(view(w, h.member), m->member()) << what;
    EXPECT_EQ(view(w, h.error_name), m->error_name()) << what;
    EXPECT_EQ(view(w, h.destination), m->destination()) << what;
    EXPECT_EQ(view(w, h.sender), m->sender()) << what;
    EXPECT_EQ(view(w, h.signature), m->signature()) << what;
    EXPECT_EQ(h.reply_serial, m->reply_serial().value_or(0)) << what;
    EXPECT_EQ(h.unix_fds, m->unix_fds()) << what;
    EXPECT_EQ(h.total_len, w.size()) << what;

    // The argN reader: the leading 's'/'o' arguments, as libafbus reads them.
    dbus_hdr_view args[8];
    const int n = dbus_hdr_body_strings(reinterpret_cast<const u8*>(w.data()), w.size(), &h, args, 8);
    ASSERT_GE(n, 0) << what;
    auto values = m->reader().read_all();
    ASSERT_TRUE(values) << what;
    int expected = 0;
    while (expected < 8 && static_cast<std::size_t>(expected) < values->size() &&
           ((*values)[expected].type() == "s" || (*values)[expected].type() == "o"))
        ++expected;
    ASSERT_EQ(n, expected) << what;
    for (int i = 0; i < n; ++i) {
        EXPECT_GE(args[i].off, h.body_off) << what;
        EXPECT_EQ(view(w, args[i]), (*values)[i].text()) << what;
    }
}

// Random header fields with codes the parser does not know, holding random values.
std::vector<std::pair<std::uint8_t, Value>> random_unknown_fields(Generator& g) {
    std::vector<std::pair<std::uint8_t, Value>> extra;
    if (!g.chance(30)) return extra;
    const int n = 1 + static_cast<int>(g.next(3));
    for (int i = 0; i < n; ++i) {
        const auto code = static_cast<std::uint8_t>(11 + g.next(245));
        const std::string type = g.type_for_depth(60);
        int budget = 40;
        extra.emplace_back(code, g.value(type, 3, budget));
    }
    return extra;
}

std::vector<std::byte> random_message(Generator& g, std::uint64_t i) {
    const Parts p = random_parts(g);
    const auto extra = random_unknown_fields(g);
    return afbus_marshal(p, i % 2 ? Endian::Big : Endian::Little, true, extra);
}

std::vector<std::vector<std::byte>> read_corpus(const std::filesystem::path& dir) {
    std::vector<std::vector<std::byte>> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        std::ifstream in(entry.path(), std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::vector<std::byte> w(bytes.size());
        std::memcpy(w.data(), bytes.data(), bytes.size());
        files.push_back(std::move(w));
    }
    return files;
}

TEST(DbusHeaderDifferential, FuzzCorpora) {
    Counts counts;
    std::vector<std::filesystem::path> dirs = {std::filesystem::path(AFBUS_FUZZ_CORPUS_DIR) / "dbus_header",
                                               std::filesystem::path(AFBUS_FUZZ_CORPUS_DIR) / "message"};
    // A corpus a fuzzing run grew (e.g. fuzz_dbus_header's output directory) can be checked too.
    if (const char* extra = std::getenv("AFBUS_DIFF_EXTRA_CORPUS")) dirs.emplace_back(extra);
    for (const auto& dir : dirs) {
        ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
        for (const auto& w : read_corpus(dir)) compare(w, dir.string(), counts);
    }
    std::printf("corpora: %d messages, %d accepted, %d refused, %d header-valid with a bad body\n",
                counts.total(), counts.accepted, counts.refused, counts.body_only);
    EXPECT_GT(counts.accepted, 0);
}

// Names at the edges of the grammars, in every string field, both byte orders (marshalled unchecked).
TEST(DbusHeaderDifferential, EdgeNames) {
    const std::string long_name = "a." + std::string(253, 'b');
    const std::vector<std::string> names = {
        "", "a", "a.b", "a.b.", ".a.b", "a..b", "0a.b", "a.0b", "_a._b", "a-b.c", "-a.b", "a.-b", ":1.2", ":1",
        ":1x", ":1.x", ":.1", ":1..2", ":-.0", "a.b/c", "/", "/a", "/a/", "//", "/a//b", "/a/0", "/a-b", "0abc",
        "abc", "a_1", "a:b", "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local", long_name,
        long_name + "c", std::string("a.b\xc3\xa9")};
    Counts counts;
    for (const std::string& name : names) {
        for (int field = 0; field < 6; ++field) {
            Parts p;
            p.type = field == 3 ? MessageType::Error : field == 1 ? MessageType::Signal : MessageType::MethodCall;
            p.serial = 7;
            p.path = "/a";
            p.member = "M";
            p.interface = "a.b";
            if (p.type == MessageType::Error) {
                p.path = p.member = p.interface = "";
                p.reply_serial = 3;
                p.error_name = "e.E";
            }
            std::string* target[] = {&p.path, &p.interface, &p.member, &p.error_name, &p.destination, &p.sender};
            *target[field] = name;
            for (Endian e : {Endian::Little, Endian::Big}) {
                const auto w = afbus_marshal(p, e, false);
                compare(w, "field " + std::to_string(field) + " = '" + name + "'", counts);
            }
        }
    }
    std::printf("edge names: %d messages, %d accepted, %d refused\n", counts.total(), counts.accepted,
                counts.refused);
    EXPECT_GT(counts.accepted, 0);
    EXPECT_GT(counts.refused, 0);
}

// The signature grammar: random strings of type codes and brackets, and the nesting limits, as the value
// of an unknown 'g' field (validated as a signature by both) and as the SIGNATURE field of a message
// without a body.
TEST(DbusHeaderDifferential, SignatureGrammar) {
    std::vector<std::string> sigs = {"", "a", "aa", "ay", "a{", "a{}", "a{s}", "a{sv}", "a{vs}", "a{svs}", "{sv}",
                                     "()", "(y)", "(y", "y)", "a(y)", "a{s(y)}", "a{(y)s}", "aa{sv}", "a{sa{sv}}",
                                     "z", "v", "h", "(yv)a(y)", "((((y))))"};
    auto nest = [](int arrays, int structs) {
        std::string s(static_cast<std::size_t>(arrays), 'a');
        s += std::string(static_cast<std::size_t>(structs), '(') + "y" + std::string(static_cast<std::size_t>(structs), ')');
        return s;
    };
    for (int n : {31, 32, 33}) {
        sigs.push_back(nest(n, 0));
        sigs.push_back(nest(0, n));
        std::string interleaved;
        for (int i = 0; i < n; ++i) interleaved += "a(";
        interleaved += "y" + std::string(static_cast<std::size_t>(n), ')');
        sigs.push_back(interleaved);
        std::string dicts;
        for (int i = 0; i < n; ++i) dicts += "a{s";
        dicts += "y" + std::string(static_cast<std::size_t>(n), '}');
        sigs.push_back(dicts);
    }
    sigs.push_back(std::string(255, 'y'));
    Generator g(kSeed + 2);
    static constexpr char kCodes[] = "aybnqiuxtdsoghv(){}z";
    for (std::uint64_t i = 0; i < kCount; ++i) {
        std::string sig;
        const std::size_t n = g.next(g.chance(10) ? 255 : 12);
        for (std::size_t k = 0; k < n; ++k) sig += kCodes[g.next(sizeof kCodes - 1)];
        sigs.push_back(sig);
    }
    Counts counts;
    for (const std::string& sig : sigs) {
        Parts p;
        p.path = "/a";
        p.member = "M";
        for (Endian e : {Endian::Little, Endian::Big}) {
            compare(afbus_marshal(p, e, false, {{50, Value::signature(sig)}}), "'g' field " + sig, counts);
            // As the SIGNATURE field (code 8) of a message without a body: only "" has a valid body.
            compare(afbus_marshal(p, e, false, {{8, Value::signature(sig)}}), "SIGNATURE " + sig, counts);
        }
    }
    std::printf("signatures: %zu signatures, %d messages, %d accepted, %d refused, %d with a bad body\n",
                sigs.size(), counts.total(), counts.accepted, counts.refused, counts.body_only);
    EXPECT_GT(counts.accepted, 0);
    EXPECT_GT(counts.body_only, 0);
}

// The nesting limit inside an unknown field's value, where the C parser walks an explicit stack: values
// of nested variants, structs, arrays (one element each) and mixes of them around the 64-container limit
// (the field itself counts as 3), accepted or refused alike by both parsers.
TEST(DbusHeaderDifferential, UnknownFieldNestingLimit) {
    Counts counts;
    for (int levels = 55; levels <= 64; ++levels) {
        for (int shape = 0; shape < 4; ++shape) {
            Value v = Value::uint32(7);
            for (int i = 0; i < levels; ++i) {
                switch ((shape == 3 ? i : shape) % 3) {
                    case 0: v = Value::variant(std::move(v)); break;
                    case 1: {
                        std::vector<Value> fields;
                        fields.push_back(Value::byte(1));
                        fields.push_back(std::move(v));
                        v = Value::structure(std::move(fields));
                        break;
                    }
                    default: {
                        const std::string element(v.type());
                        std::vector<Value> elements;
                        elements.push_back(std::move(v));
                        v = Value::array(element, std::move(elements));
                        break;
                    }
                }
            }
            if (v.type().size() > 255) continue;  // not a signature any more: the builder cannot say it
            Parts p;
            p.path = "/a";
            p.member = "M";
            for (Endian e : {Endian::Little, Endian::Big}) {
                compare(afbus_marshal(p, e, false, {{200, v}}),
                        "shape " + std::to_string(shape) + ", " + std::to_string(levels) + " levels", counts);
            }
        }
    }
    std::printf("nesting: %d messages, %d accepted, %d refused\n", counts.total(), counts.accepted, counts.refused);
    EXPECT_GT(counts.accepted, 0);
    EXPECT_GT(counts.refused, 0);
}

TEST(DbusHeaderDifferential, RandomValidMessages) {
    Generator g(kSeed);
    Counts counts;
    for (std::uint64_t i = 0; i < kCount; ++i) {
        const auto w = random_message(g, i);
        compare(w, "valid message " + std::to_string(i) + " (seed " + std::to_string(kSeed) + ")", counts);
        if (HasFatalFailure()) return;
    }
    std::printf("valid: %d messages, %d accepted, %d refused, %d header-valid with a bad body\n",
                counts.total(), counts.accepted, counts.refused, counts.body_only);
    // Every header is valid. A body can be refused: the generator's variants can, rarely (about one in
    // 100,000 messages), nest deeper than 64 containers; such a body-only refusal is counted, not failed.
    EXPECT_EQ(counts.refused, 0);
    EXPECT_GE(counts.accepted, static_cast<int>(kCount) - 10);
}

TEST(DbusHeaderDifferential, RandomCorruptionsAgree) {
    Generator g(kSeed + 1);
    Counts counts;
    for (std::uint64_t i = 0; i < kCount; ++i) {
        auto w = random_message(g, i);
        // Most corruptions hit the header, where the parsers can disagree; some hit anywhere.
        const std::size_t header_len = std::min<std::size_t>(w.size(), 16 + [&] {
            std::uint32_t n;
            std::memcpy(&n, w.data() + 12, 4);
            return w[0] == std::byte{'B'} ? __builtin_bswap32(n) : n;
        }());
        const int flips = 1 + static_cast<int>(g.next(3));
        for (int f = 0; f < flips; ++f) {
            const std::size_t at = g.next(g.chance(80) ? header_len : w.size());
            // A random byte, a flipped bit, or a character that matters to the name grammars.
            static constexpr char kInteresting[] = "09/.:-_a{}()v\x80\xff";
            const auto roll = g.next(100);
            w[at] = static_cast<std::byte>(
                roll < 35   ? g.next(256)
                : roll < 70 ? (static_cast<std::uint64_t>(w[at]) ^ (1u << g.next(8)))
                            : static_cast<std::uint8_t>(kInteresting[g.next(sizeof kInteresting)]));
        }
        if (g.chance(5)) w.resize(g.next(w.size() + 9));  // truncated or extended by up to 8 zero bytes
        compare(w, "corruption " + std::to_string(i) + " (seed " + std::to_string(kSeed + 1) + ")", counts);
        if (HasFatalFailure()) return;
    }
    std::printf("corrupted: %d messages, %d accepted, %d refused, %d header-valid with a bad body\n",
                counts.total(), counts.accepted, counts.refused, counts.body_only);
    EXPECT_GT(counts.refused, 0);
    EXPECT_GT(counts.accepted, 0);
}

}  // namespace
}  // namespace afbus
