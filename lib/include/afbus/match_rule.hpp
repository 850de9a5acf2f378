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
    friend bool operator==(const MatchRule& a, const MatchRule& b) = default;

    [[nodiscard]] std::optional<MessageType> type() const { return type_; }
    [[nodiscard]] const std::optional<std::string>& sender() const { return sender_; }
    [[nodiscard]] const std::optional<std::string>& interface() const { return interface_; }
    [[nodiscard]] const std::optional<std::string>& member() const { return member_; }
    [[nodiscard]] const std::optional<std::string>& path() const { return path_; }
    [[nodiscard]] const std::optional<std::string>& path_namespace() const { return path_namespace_; }
    [[nodiscard]] const std::optional<std::string>& destination() const { return destination_; }
    // Sorted by index; at most one condition per index.
    [[nodiscard]] const std::vector<ArgCondition>& args() const { return args_; }
    [[nodiscard]] std::optional<bool> eavesdrop() const { return eavesdrop_; }

private:
    std::optional<MessageType> type_;
    std::optional<std::string> sender_, interface_, member_, path_, path_namespace_, destination_;
    std::vector<ArgCondition> args_;
    std::optional<bool> eavesdrop_;
};

}  // namespace afbus
