// D-Bus match rules ("Match Rules" in the specification): parsing exactly what dbus-daemon 1.14 accepts,
// a canonical text form (two rules are equal when their canonical forms are, which is what RemoveMatch
// compares), and matching against a Message. Sans-I/O; used by clients to route signals to handlers
// and by the daemon's match registry and policy engine.
#pragma once

#include <cstdint>
#include <optional>
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

class MatchRule {
public:
    struct ArgCondition {
        int index = 0;
        enum class Kind : std::uint8_t { String, Path, Namespace } kind = Kind::String;
        std::string value;
        friend bool operator==(const ArgCondition&, const ArgCondition&) = default;
    };

    static Expected<MatchRule, MatchRuleError> parse(std::string_view text);

    // Whether `message` satisfies every condition of the rule. `destination=` compares with the
    // message's DESTINATION field; eavesdropping semantics are the bus's business, not this. A client
    // cannot know who owns a well-known sender name (the bus does, and already filtered by it), so it
    // passes check_well_known_sender = false; the bus resolves the owner and compares unique names.
    [[nodiscard]] bool matches(const Message& message, bool check_well_known_sender = true) const;
    // Every condition except sender= and destination=: the bus checks those itself against name owners.
    [[nodiscard]] bool matches_except_names(const Message& message) const;

    // key='value' pairs in a fixed key order with values quoted as the specification describes.
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(const MatchRule& a, const MatchRule& b);

    [[nodiscard]] std::optional<MessageType> type() const { return type_; }
    [[nodiscard]] std::optional<std::string_view> sender() const { return view(sender_); }
    [[nodiscard]] std::optional<std::string_view> interface() const { return view(interface_); }
    [[nodiscard]] std::optional<std::string_view> member() const { return view(member_); }
    [[nodiscard]] std::optional<std::string_view> path() const { return view(path_); }
    [[nodiscard]] std::optional<std::string_view> path_namespace() const { return view(path_namespace_); }
    [[nodiscard]] std::optional<std::string_view> destination() const { return view(destination_); }
    // Sorted by index; at most one condition per index. Copies: for inspection, not for matching.
    [[nodiscard]] std::vector<ArgCondition> args() const;
    [[nodiscard]] std::size_t arg_count() const { return args_.size(); }
    // The value of a plain arg0='…' condition (not arg0path/arg0namespace), if there is one.
    [[nodiscard]] std::optional<std::string_view> string_arg0() const {
        if (args_.empty() || args_.front().index != 0 || args_.front().kind != ArgCondition::Kind::String) return std::nullopt;
        return view(args_.front().value);
    }
    [[nodiscard]] std::optional<bool> eavesdrop() const { return eavesdrop_; }

private:
    // A daemon keeps tens of thousands of rules, so a rule is one small object and one buffer: every
    // string condition is a slice of text_ (a rule's text is at most 1024 bytes, so 16 bits suffice).
    struct Slice {
        static constexpr std::uint16_t kAbsent = 0xffff;
        std::uint16_t offset = 0, length = kAbsent;
        explicit operator bool() const { return length != kAbsent; }
    };
    struct StoredArg {
        std::uint8_t index = 0;
        ArgCondition::Kind kind = ArgCondition::Kind::String;
        Slice value;
    };
    [[nodiscard]] std::optional<std::string_view> view(Slice slice) const {
        if (!slice) return std::nullopt;
        return std::string_view(text_).substr(slice.offset, slice.length);
    }
    Slice store(std::string_view value);

    std::string text_;
    Slice sender_, interface_, member_, path_, path_namespace_, destination_;
    std::vector<StoredArg> args_;
    std::optional<MessageType> type_;
    std::optional<bool> eavesdrop_;
};

}  // namespace afbus
