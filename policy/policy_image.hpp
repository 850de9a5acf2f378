// The compiled policy: one flat, versioned binary image of every rule of a busconfig, grouped by the
// <policy> context it came from. It is the contract between the compiler and the evaluators (the
// daemon's now, the AF_BUS kernel filter's later): fixed-size little records, strings by offset, no
// pointers and no jumps, so that validating it once on load (PolicyImage::load) makes every later
// access safe. The layout is documented in docs/policy.md; change it only with a new version number.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"

namespace afbus::policy {

inline constexpr std::uint32_t kImageMagic = 0x50424641;  // "AFBP" read as a little-endian u32
inline constexpr std::uint16_t kImageVersion = 1;
inline constexpr std::uint32_t kNoString = 0xffffffff;
// Bounds that keep a hostile or corrupt image cheap to reject and cheap to evaluate.
inline constexpr std::size_t kMaxImageSize = 64u * 1024 * 1024;
inline constexpr std::uint32_t kMaxRules = 1u << 20;
inline constexpr std::uint32_t kMaxContexts = 1u << 16;
inline constexpr std::uint32_t kMaxStringLength = 65535;
// dbus-daemon's DBUS_MAXIMUM_MESSAGE_UNIX_FDS: the bound of max_fds / min_fds.
inline constexpr std::uint32_t kMaxMessageFds = 128u * 1024 * 1024 / 4;

// The point in a message's life where rules are evaluated.
enum class Hook : std::uint8_t {
    Connect = 0,    // may this uid connect at all (busconfig user= / group= rules)
    Own = 1,        // may this connection own a name
    Send = 2,       // may this connection send this message to that recipient
    Receive = 3,    // may this connection receive this message, addressed to it or broadcast
    Eavesdrop = 4,  // may this connection receive a copy of a message addressed to someone else
};
inline constexpr std::size_t kHookCount = 5;

enum class Verdict : std::uint8_t {
    Accept = 0,
    Drop = 1,    // silently
    Reject = 2,  // with the rule's error name (busconfig <deny>: org.freedesktop.DBus.Error.AccessDenied)
};

// Replies (messages with a reply serial) may be matched depending on whether the bus expected them.
enum class ReplyCondition : std::uint8_t { Any = 0, RequestedOnly = 1, UnrequestedOnly = 2 };
enum class Broadcast : std::uint8_t { Any = 0, Yes = 1, No = 2 };
enum class NameMatch : std::uint8_t {
    Any = 0,
    Exact = 1,   // the other party owns (or queues for) this name; for own rules: this name
    Prefix = 2,  // ... a name equal to it or below it in dot-separated words
};

enum RuleFlag : std::uint8_t {
    kRuleLog = 1u << 0,
    // A message without an interface does not match (dbus-daemon's allow rules); otherwise it does.
    kRuleInterfaceRequired = 1u << 1,
    // Receive rules: eavesdrop="true". Allow rules apply when eavesdropping only with it; deny rules
    // with it apply only when eavesdropping.
    kRuleEavesdrop = 1u << 2,
    // Connect rules: `principal` is a gid (else a uid); with kRulePrincipalAny it is "*".
    kRulePrincipalIsGroup = 1u << 3,
    kRulePrincipalAny = 1u << 4,
    // A rule whose message fields are all wildcards: when per-connection chains are built it removes
    // every earlier rule of its kind (dbus-daemon's optimisation, which is observable and so kept).
    kRuleOverridesEarlier = 1u << 5,
};

// What a rule is about, as recorded in the image. Receive rules are split into the Receive and
// Eavesdrop chains when a connection's chains are built (see kRuleEavesdrop).
enum class RuleKind : std::uint8_t { Connect = 0, Own = 1, Send = 2, Receive = 3 };

// One rule, 52 bytes. String fields are offsets into the string section, or kNoString for "any".
struct RuleRecord {
    std::uint8_t kind;          // RuleKind
    std::uint8_t verdict;       // Verdict
    std::uint8_t flags;         // RuleFlag bits
    std::uint8_t message_type;  // 0 = any, else the D-Bus message type
    std::uint8_t reply;         // ReplyCondition
    std::uint8_t broadcast;     // Broadcast
    std::uint8_t name_match;    // NameMatch
    std::uint8_t reserved = 0;
    std::uint32_t name;  // send: destination; receive: sender; own: the name
    std::uint32_t path;
    std::uint32_t interface;
    std::uint32_t member;
    std::uint32_t error;
    std::uint32_t min_fds;
    std::uint32_t max_fds;
    std::uint32_t principal;     // connect rules: uid or gid
    std::uint32_t reject_error;  // error name for Verdict::Reject
    std::uint32_t line;          // source line, for logs
    std::uint32_t file;          // source file name (string), for logs
};
static_assert(sizeof(RuleRecord) == 52);

enum class ContextKind : std::uint8_t { Default = 0, Mandatory = 1, User = 2, Group = 3, AtConsole = 4, NotAtConsole = 5 };

// A run of consecutive rules that came from <policy> elements of one context, in file order.
struct ContextRecord {
    std::uint8_t kind;  // ContextKind
    std::uint8_t reserved[3] = {0, 0, 0};
    std::uint32_t id;  // uid or gid for User / Group, else 0
    std::uint32_t first_rule;
    std::uint32_t rule_count;
};
static_assert(sizeof(ContextRecord) == 16);

struct ImageHeader {
    std::uint32_t magic;
    std::uint16_t version;
    std::uint16_t header_size;
    std::uint32_t total_size;
    std::uint32_t rule_count;
    std::uint32_t rules_offset;
    std::uint32_t context_count;
    std::uint32_t contexts_offset;
    std::uint32_t strings_offset;
    std::uint32_t strings_size;
    std::uint32_t reserved;
};
static_assert(sizeof(ImageHeader) == 40);

// Builds an image: rules are added context by context, in file order.
class ImageBuilder {
public:
    std::uint32_t add_string(std::string_view s);
    void begin_context(ContextKind kind, std::uint32_t id);
    void add_rule(const RuleRecord& rule);
    [[nodiscard]] std::vector<std::byte> finish() &&;

private:
    std::vector<RuleRecord> rules_;
    std::vector<ContextRecord> contexts_;
    std::string strings_;
    std::map<std::string, std::uint32_t, std::less<>> string_offsets_;
};

// A validated image. Accessors never fail: load() has checked every offset, enum and bound.
class PolicyImage {
public:
    static Expected<PolicyImage, std::string> load(std::vector<std::byte> bytes);

    [[nodiscard]] std::span<const RuleRecord> rules() const { return rules_; }
    [[nodiscard]] std::span<const ContextRecord> contexts() const { return contexts_; }
    [[nodiscard]] std::string_view string(std::uint32_t offset) const;  // "" for kNoString
    [[nodiscard]] std::optional<std::string_view> optional_string(std::uint32_t offset) const;
    [[nodiscard]] std::span<const std::byte> bytes() const { return bytes_; }

private:
    std::vector<std::byte> bytes_;
    // Copies, so that records are aligned whatever the buffer's alignment.
    std::vector<RuleRecord> rules_;
    std::vector<ContextRecord> contexts_;
    std::string strings_;
};

}  // namespace afbus::policy
