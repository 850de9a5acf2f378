// Evaluates a PolicyImage. A connection's rules are selected once, from its credentials, into one chain
// per hook (ConnectionChains) in dbus-daemon's order: default, then each of its groups, its user, the
// at_console contexts, mandatory; the last rule that matches decides. Chains are indexed by the name a
// rule is about, and evaluated from the end, so a decision costs in proportion to the rules that could
// apply to the message, not to the rules loaded.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "policy_image.hpp"

namespace afbus::policy {

// Who a connection is, as far as policy is concerned. Everything follows from the uid (groups from NSS,
// at_console from the seat manager), so connections are grouped by uid; none for anonymous ones.
struct Principal {
    std::optional<std::uint32_t> uid;
    std::vector<std::uint32_t> groups;
    bool at_console = false;
};

// The parts of a message rules look at. Strings are empty when the header field is absent.
struct MessageFacts {
    std::uint8_t type = 0;  // D-Bus message type
    std::string_view path, interface, member, error_name, destination, sender;
    bool is_reply = false;         // carries a reply serial
    bool requested_reply = false;  // ... and the bus was expecting it
    std::uint32_t fds = 0;
};

// The other end of a send (its recipient) or of a receive (its sender): a connection and the names it
// owns or is queued for. Null in the calls below means the bus driver, whose name is compared as text.
struct Party {
    std::string_view unique_name;
    std::span<const std::string> names;
    [[nodiscard]] bool owns(std::string_view name) const;
    [[nodiscard]] bool owns_below(std::string_view prefix) const;  // a name equal to or under `prefix`
};

struct Decision {
    Verdict verdict = Verdict::Reject;
    const RuleRecord* rule = nullptr;  // the deciding rule; null when none matched (the default: deny)
    std::string_view error_name;       // for Reject
    bool log = false;
    [[nodiscard]] bool allowed() const { return verdict == Verdict::Accept; }
};

inline constexpr std::string_view kAccessDeniedError = "org.freedesktop.DBus.Error.AccessDenied";

class ConnectionChains {
public:
    ConnectionChains(std::shared_ptr<const PolicyImage> image, const Principal& principal);

    [[nodiscard]] Decision check_send(const MessageFacts& message, const Party* recipient) const;
    [[nodiscard]] Decision check_receive(const MessageFacts& message, const Party* sender, bool eavesdropping) const;
    [[nodiscard]] bool can_own(std::string_view name) const;
    // How many rules of the chain match (dbus-daemon reports it when it denies a message).
    [[nodiscard]] unsigned count_matching(Hook hook, const MessageFacts& message, const Party* other) const;
    [[nodiscard]] std::size_t size(Hook hook) const { return chains_[static_cast<std::size_t>(hook)].rules.size(); }
    // The chain for `hook` as indices into the image's rule table, in evaluation order: what a kernel
    // bus's policy evaluator is given for this connection (kernel/dbus/dbus_policy.h).
    [[nodiscard]] std::vector<std::uint32_t> rule_indices(Hook hook) const;

private:
    // A rule's strings, looked up once when the chain is built rather than on every decision.
    struct Strings {
        std::string_view name, path, interface, member, error;
    };
    struct Chain {
        std::vector<const RuleRecord*> rules;  // in evaluation order
        std::vector<Strings> strings;          // parallel to `rules`
        // Positions in `rules`, ascending: rules about one exact name; allow rules about no name but one
        // interface (they cannot match a message with another interface or none); all the others.
        std::unordered_map<std::string_view, std::vector<std::uint32_t>> by_name;
        std::unordered_map<std::string_view, std::vector<std::uint32_t>> by_interface;
        std::vector<std::uint32_t> generic;
    };

    void index(Chain& chain) const;
    [[nodiscard]] Decision decide(Hook hook, const MessageFacts& message, const Party* other) const;
    [[nodiscard]] bool matches(Hook hook, const RuleRecord& rule, const Strings& strings, const MessageFacts& message,
                               const Party* other) const;

    std::shared_ptr<const PolicyImage> image_;
    std::array<Chain, kHookCount> chains_;
};

// A loaded policy: the image, who may connect, and each uid's chains, built on first use.
class PolicyEngine {
public:
    static Expected<PolicyEngine, std::string> load(std::vector<std::byte> image);

    // dbus-daemon's rule: the bus's own user may connect unless a rule says otherwise; user= and group=
    // rules of the default and mandatory contexts decide for everyone (last match wins).
    [[nodiscard]] bool allows_connect(std::uint32_t uid, std::span<const std::uint32_t> groups, std::uint32_t bus_uid) const;
    // The chains for `principal`, shared by every connection with the same one.
    std::shared_ptr<const ConnectionChains> chains_for(const Principal& principal);
    [[nodiscard]] const PolicyImage& image() const { return *image_; }
    // Whether any <policy at_console="…"> context has rules: only then does a connection's chain depend
    // on Principal::at_console, so only then is it worth asking the seat manager at every connect.
    [[nodiscard]] bool depends_on_console() const { return depends_on_console_; }

private:
    explicit PolicyEngine(std::shared_ptr<const PolicyImage> image);
    std::shared_ptr<const PolicyImage> image_;
    bool depends_on_console_ = false;
    using CacheKey = std::tuple<std::optional<std::uint32_t>, std::vector<std::uint32_t>, bool>;
    std::map<CacheKey, std::shared_ptr<const ConnectionChains>> cache_;
};

}  // namespace afbus::policy
