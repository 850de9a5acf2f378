// D-Bus match rules ("Match Rules" in the specification): parsing exactly what dbus-daemon 1.14 accepts,
// a canonical text form (two rules are equal when their canonical forms are, which is what RemoveMatch
// compares), and matching against a Message. Sans-I/O; used by clients to route signals to handlers
// and by the daemon's match registry and policy engine.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/message.hpp"

namespace afbus {

inline constexpr int kMaxMatchArgs = 64;  // arg0 … arg63

enum class MatchRuleError : std::uint8_t {
    Syntax,              // not key='value',... (unterminated quote, missing '=', stray characters)
    UnknownKey,          // a key the specification does not define
    DuplicateKey,        // the same key twice
    BadType,             // type= not signal/method_call/method_return/error
    BadSender,           // sender= not a valid bus name
    BadInterface,
    BadMember,
    BadPath,             // path= or path_namespace= not a valid object path
    PathAndNamespace,    // both path= and path_namespace=
    BadDestination,      // destination= not a valid bus name
    ArgIndexTooLarge,    // argN with N > 63
    BadArgPath,          // argNpath= value invalid
    BadArg0Namespace,    // arg0namespace= not a valid (partial) bus or interface name
    BadEavesdrop,        // eavesdrop= not true/false
    TooLong,             // longer than dbus-daemon's limit on a rule's text
};
std::string_view to_string(MatchRuleError error);

// The compiled form of a match rule, version 1: one little-endian record, at most kMaxMatchRecordSize
// bytes, strings by offset from the record's start, no pointers. Byte offsets:
//   0 u8 version (1)   1 u8 message type (0 any, else the D-Bus type)   2 u8 eavesdrop (0 unset, 1 false,
//   2 true)   3 u8 number of argument conditions (0..64)   4 u16 record size   6 u16 reserved (0)
//   8 six string slices {u16 offset, u16 length}: sender, interface, member, path, path_namespace,
//     destination; length 0xffff: the key is absent
//  32 the argument conditions, 6 bytes each, by strictly increasing index:
//     {u8 index (0..63), u8 kind (0 string, 1 path, 2 namespace), u16 offset, u16 length}
//  then the strings, not NUL-terminated.
inline constexpr std::uint8_t kMatchRecordVersion = 1;
inline constexpr std::size_t kMatchRecordType = 1, kMatchRecordEavesdrop = 2, kMatchRecordArgCount = 3,
                             kMatchRecordSize = 4, kMatchRecordReserved = 6, kMatchRecordSlices = 8;
inline constexpr std::size_t kMatchFieldSender = 0, kMatchFieldInterface = 1, kMatchFieldMember = 2,
                             kMatchFieldPath = 3, kMatchFieldPathNamespace = 4, kMatchFieldDestination = 5,
                             kMatchFieldCount = 6;
inline constexpr std::size_t kMatchRecordHeaderSize = 32, kMatchRecordArgSize = 6;
inline constexpr std::uint16_t kMatchRecordAbsent = 0xffff;
// A rule's text is at most 1024 bytes, so its strings are too; with 64 arguments that bounds the record.
inline constexpr std::size_t kMaxMatchRecordStrings = 1024;
inline constexpr std::size_t kMaxMatchRecordSize =
    kMatchRecordHeaderSize + kMaxMatchArgs * kMatchRecordArgSize + kMaxMatchRecordStrings;

class MatchRule {
public:
    struct ArgCondition {
        int index = 0;
        enum class Kind : std::uint8_t { String, Path, Namespace } kind = Kind::String;
        std::string value;
        friend bool operator==(const ArgCondition&, const ArgCondition&) = default;
    };

    // The empty rule, which matches every message (as parse("") gives).
    MatchRule();
    static Expected<MatchRule, MatchRuleError> parse(std::string_view text);

    // Whether `message` satisfies every condition of the rule. `destination=` compares with the
    // message's DESTINATION field; eavesdropping semantics are the bus's business, not this. A client
    // cannot know who owns a well-known sender name (the bus does, and already filtered by it), so it
    // passes check_well_known_sender = false; the bus resolves the owner and compares unique names.
    [[nodiscard]] bool matches(const Message& message, bool check_well_known_sender = true) const;
    // Every condition except sender= and destination=: the bus checks those itself against name owners.
    [[nodiscard]] bool matches_except_names(const Message& message) const;

    // The same rule with sender='`sender`' (the rest unchanged): in kernel mode the bus installs a rule
    // naming a well-known sender as one naming that name's owner, since the kernel compares SENDER as
    // written and a message's SENDER is always a unique name. `sender` must be a valid bus name.
    [[nodiscard]] MatchRule with_sender(std::string_view sender) const;

    // key='value' pairs in a fixed key order with values quoted as the specification describes.
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(const MatchRule& a, const MatchRule& b);

    [[nodiscard]] std::optional<MessageType> type() const;
    [[nodiscard]] std::optional<std::string_view> sender() const { return field(kMatchFieldSender); }
    [[nodiscard]] std::optional<std::string_view> interface() const { return field(kMatchFieldInterface); }
    [[nodiscard]] std::optional<std::string_view> member() const { return field(kMatchFieldMember); }
    [[nodiscard]] std::optional<std::string_view> path() const { return field(kMatchFieldPath); }
    [[nodiscard]] std::optional<std::string_view> path_namespace() const { return field(kMatchFieldPathNamespace); }
    [[nodiscard]] std::optional<std::string_view> destination() const { return field(kMatchFieldDestination); }
    // Sorted by index; at most one condition per index. Copies: for inspection, not for matching.
    [[nodiscard]] std::vector<ArgCondition> args() const;
    [[nodiscard]] std::size_t arg_count() const { return byte_at(kMatchRecordArgCount); }
    // The value of a plain arg0='…' condition (not arg0path/arg0namespace), if there is one.
    [[nodiscard]] std::optional<std::string_view> string_arg0() const;
    [[nodiscard]] std::optional<bool> eavesdrop() const;

    // The compiled record (layout below and in docs/policy.md). load() accepts exactly the records
    // that describe a rule parse() could have produced, checking every offset, enum and name.
    [[nodiscard]] std::span<const std::byte> compiled() const {
        return std::as_bytes(std::span(record_.data(), record_.size()));
    }
    static Expected<MatchRule, std::string> load(std::span<const std::byte> record);

private:
    // A rule is its compiled record (see kMatchRecord* below), one buffer of at least
    // kMatchRecordHeaderSize bytes: a daemon keeps tens of thousands of rules, and the AF_BUS kernel
    // filter is to evaluate the very same bytes.
    [[nodiscard]] std::uint8_t byte_at(std::size_t offset) const { return static_cast<std::uint8_t>(record_[offset]); }
    [[nodiscard]] std::uint16_t u16_at(std::size_t offset) const;
    [[nodiscard]] std::optional<std::string_view> slice_at(std::size_t offset) const;
    [[nodiscard]] std::optional<std::string_view> field(std::size_t field_index) const;
    [[nodiscard]] std::size_t arg_record(std::size_t i) const;

    std::string record_;
};

}  // namespace afbus
