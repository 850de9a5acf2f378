// libFuzzer target for the kernel's match-record checker and evaluator (kernel/dbus/dbus_match.c) against
// libafbus's MatchRule. The input is split into a rule and a message:
//   byte 0     bit 0 clear: the rule part is a compiled record, as the master would install it;
//              bit 0 set: it is a rule's text, parsed by MatchRule::parse and compiled (so that most
//              inputs reach the evaluator with a valid record);
//              bit 1 clear: the message part is a whole message;
//              bit 1 set: it is {u8 header choices, u8 type, u8 n, n bytes of signature, the body}, and a
//              valid header is written around it (so that mutations of the body and signature do not
//              break the header, and header fields come from small pools rules can name)
//   bytes 1-2  the rule part's length (little-endian, cut to what is there)
//   then       the rule part, then the message part
// Invariants: dbus_match_check accepts exactly the records MatchRule::load accepts (and every record
// MatchRule::parse produces); for a message both the C header parser and Message::parse accept,
// dbus_match_eval says what MatchRule::matches(message, true) says, with the arguments extracted for the
// record alone and for all 64. A message only the C header parser accepts (a bad body: the kernel does
// not validate bodies) is evaluated too, for crashes and out-of-bounds reads. Both parts are copied to
// buffers of their exact size so that AddressSanitizer sees any read past either.
// AFBUS_FUZZ_STATS=1 prints, at exit, how many inputs reached each comparison.
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "afbus/match_rule.hpp"
#include "afbus/message.hpp"
#include "dbus_header.h"
#include "dbus_match.h"
#include "fuzz_check.hpp"

using afbus::fuzz::check;

namespace {

struct Stats {
    unsigned long long records_loaded = 0, records_refused = 0, texts_parsed = 0, messages_evaluated = 0,
                       compared_match = 0, compared_no_match = 0;
    Stats() {
        if (std::getenv("AFBUS_FUZZ_STATS")) std::atexit([] { print(); });
    }
    static void print();
} stats;

void Stats::print() {
    std::fprintf(stderr,
                 "dbus_match stats: records loaded %llu, refused %llu; rule texts parsed %llu; evaluations %llu; "
                 "compared with libafbus: %llu match, %llu not\n",
                 stats.records_loaded, stats.records_refused, stats.texts_parsed, stats.messages_evaluated,
                 stats.compared_match, stats.compared_no_match);
}

// A little-endian message: a header with fields chosen by `choices` from small pools, around the given
// signature and body bytes (which may be anything).
class HeaderWriter {
public:
    void align(std::size_t n) {
        while (out.size() % n) out.push_back(0);
    }
    void u32(std::uint32_t v) {
        align(4);
        for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
    void field_string(std::uint8_t code, char type, std::string_view v) {
        field_start(code, type);
        u32(static_cast<std::uint32_t>(v.size()));
        out.insert(out.end(), v.begin(), v.end());
        out.push_back(0);
    }
    void field_u32(std::uint8_t code, std::uint32_t v) {
        field_start(code, 'u');
        u32(v);
    }
    void field_signature(std::string_view sig) {
        field_start(8, 'g');
        out.push_back(static_cast<std::uint8_t>(sig.size()));
        out.insert(out.end(), sig.begin(), sig.end());
        out.push_back(0);
    }
    std::vector<std::uint8_t> out;

private:
    void field_start(std::uint8_t code, char type) {
        align(8);
        out.push_back(code);
        out.push_back(1);
        out.push_back(static_cast<std::uint8_t>(type));
        out.push_back(0);
    }
};

std::vector<std::uint8_t> message_around(const std::uint8_t* part, std::size_t size) {
    if (size < 3) return {};
    static const char* const kPaths[] = {"/", "/a/b", "/org/example", nullptr};
    static const char* const kInterfaces[] = {"org.example.I", "org.freedesktop.DBus"};
    static const char* const kMembers[] = {"Changed", "NameOwnerChanged"};
    static const char* const kSenders[] = {":1.5", "org.example.Service", ":1.42", nullptr};
    const std::uint8_t choices = part[0];
    const std::uint8_t type = static_cast<std::uint8_t>(1 + part[1] % 4);
    const std::size_t sig_len = std::min<std::size_t>(part[2], size - 3);
    const std::string_view sig(reinterpret_cast<const char*>(part + 3), sig_len);
    const std::uint8_t* body = part + 3 + sig_len;
    const std::size_t body_len = size - 3 - sig_len;

    HeaderWriter h;
    h.out = {'l', type, 0, 1};
    h.u32(static_cast<std::uint32_t>(body_len));
    h.u32(1);
    h.u32(0);  // the field array's length, set below
    const char* path = kPaths[choices & 3];
    // Calls and signals need PATH: they get the first when the choice is none.
    if (!path && (type == 1 || type == 4)) path = kPaths[0];
    if (path) h.field_string(1, 'o', path);
    if (type == 4 || (choices & 4)) h.field_string(2, 's', kInterfaces[(choices >> 3) & 1]);
    if (type == 1 || type == 4) h.field_string(3, 's', kMembers[(choices >> 4) & 1]);
    if (type == 3) h.field_string(4, 's', "org.example.Error");
    if (type == 2 || type == 3) h.field_u32(5, 7);
    if (choices & 0x20) h.field_string(6, 's', (choices & 0x40) ? ":1.5" : "org.example.Service");
    if (const char* sender = kSenders[(choices >> 6) & 3]) h.field_string(7, 's', sender);
    if (!sig.empty()) h.field_signature(sig);
    const auto fields_len = static_cast<std::uint32_t>(h.out.size() - 16);
    for (int i = 0; i < 4; ++i) h.out[12 + i] = static_cast<std::uint8_t>(fields_len >> (8 * i));
    h.align(8);
    h.out.insert(h.out.end(), body, body + body_len);
    return h.out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const bool text_mode = data[0] & 1;
    std::size_t rule_len = data[1] | static_cast<std::size_t>(data[2]) << 8;
    if (rule_len > size - 3) rule_len = size - 3;
    const std::uint8_t* rule_part = data + 3;
    const std::vector<std::uint8_t> message = (data[0] & 2)
                                                  ? message_around(rule_part + rule_len, size - 3 - rule_len)
                                                  : std::vector<std::uint8_t>(rule_part + rule_len, data + size);

    std::vector<std::uint8_t> record;
    afbus::MatchRule rule;
    if (text_mode) {
        auto parsed = afbus::MatchRule::parse(std::string_view(reinterpret_cast<const char*>(rule_part), rule_len));
        if (!parsed) return 0;
        ++stats.texts_parsed;
        rule = std::move(*parsed);
        const auto compiled = rule.compiled();
        record.assign(reinterpret_cast<const std::uint8_t*>(compiled.data()),
                      reinterpret_cast<const std::uint8_t*>(compiled.data()) + compiled.size());
        check(dbus_match_check(record.data(), static_cast<u32>(record.size())) == 0,
              "the C check refuses a record MatchRule::parse produced");
    } else {
        record.assign(rule_part, rule_part + rule_len);
        auto loaded = afbus::MatchRule::load(std::as_bytes(std::span(record)));
        const bool c_accepts = dbus_match_check(record.data(), static_cast<u32>(record.size())) == 0;
        check(c_accepts == static_cast<bool>(loaded), "dbus_match_check and MatchRule::load disagree");
        ++(loaded ? stats.records_loaded : stats.records_refused);
        if (!loaded) return 0;
        rule = std::move(*loaded);
    }

    dbus_hdr hdr;
    if (dbus_hdr_parse(message.data(), message.size(), &hdr, nullptr) != 0) return 0;
    const unsigned int nargs = dbus_match_nargs(record.data());
    check(nargs <= DBUS_MATCH_MAX_ARGS, "a record needs at most 64 arguments");
    dbus_match_args just_enough, all;
    const int n = dbus_match_args_extract(message.data(), message.size(), &hdr, nargs, &just_enough);
    check(n == -EBADMSG || (n >= 0 && static_cast<unsigned int>(n) <= nargs), "extract returns a count or -EBADMSG");
    (void)dbus_match_args_extract(message.data(), message.size(), &hdr, DBUS_MATCH_MAX_ARGS, &all);
    const bool c_exact = dbus_match_eval(record.data(), message.data(), &hdr, &just_enough);
    const bool c_all = dbus_match_eval(record.data(), message.data(), &hdr, &all);
    ++stats.messages_evaluated;

    auto m = afbus::Message::parse(std::as_bytes(std::span(message)));
    if (!m) return 0;
    check(n >= 0, "the argument reader refuses a body libafbus accepts");
    const bool lib = rule.matches(*m, true);
    check(c_exact == lib, "dbus_match_eval (arguments for this record) and MatchRule::matches disagree");
    check(c_all == lib, "dbus_match_eval (all 64 arguments) and MatchRule::matches disagree");
    ++(lib ? stats.compared_match : stats.compared_no_match);
    return 0;
}
