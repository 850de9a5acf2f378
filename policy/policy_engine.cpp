#include "policy_engine.hpp"

#include <algorithm>

namespace afbus::policy {
namespace {

// `name` is `prefix` or lies below it in dot-separated words ("a.b" is under "a", "a.bc" is not).
bool is_below(std::string_view name, std::string_view prefix) {
    if (!name.starts_with(prefix)) return false;
    return name.size() == prefix.size() || name[prefix.size()] == '.';
}

RuleKind kind_of(const RuleRecord& rule) { return static_cast<RuleKind>(rule.kind); }
bool is_allow(const RuleRecord& rule) { return rule.verdict == static_cast<std::uint8_t>(Verdict::Accept); }

}  // namespace

bool Party::owns(std::string_view name) const {
    if (name == unique_name) return true;
    return std::find(names.begin(), names.end(), name) != names.end();
}

bool Party::owns_below(std::string_view prefix) const {
    return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return is_below(n, prefix); });
}

ConnectionChains::ConnectionChains(std::shared_ptr<const PolicyImage> image, const Principal& principal)
    : image_(std::move(image)) {
    // Per-connection rule lists in dbus-daemon's order. Only relative order within one kind matters (a
    // hook looks at one kind), so each kind is kept apart; a rule that overrides everything of its kind
    // before it (kRuleOverridesEarlier) simply clears that list, as dbus-daemon's optimisation does.
    std::array<std::vector<const RuleRecord*>, 4> by_kind;
    auto add_context = [&](const ContextRecord& context) {
        for (std::uint32_t i = 0; i < context.rule_count; ++i) {
            const RuleRecord& rule = image_->rules()[context.first_rule + i];
            if (kind_of(rule) == RuleKind::Connect) continue;  // bus-global, not per connection
            auto& list = by_kind[rule.kind];
            if (rule.flags & kRuleOverridesEarlier) list.clear();
            list.push_back(&rule);
        }
    };
    auto add_contexts = [&](ContextKind kind, std::optional<std::uint32_t> id) {
        for (const ContextRecord& context : image_->contexts())
            if (context.kind == static_cast<std::uint8_t>(kind) && (!id || context.id == *id)) add_context(context);
    };
    add_contexts(ContextKind::Default, std::nullopt);
    for (std::uint32_t gid : principal.groups) add_contexts(ContextKind::Group, gid);
    if (principal.uid) {
        add_contexts(ContextKind::User, *principal.uid);
        add_contexts(principal.at_console ? ContextKind::AtConsole : ContextKind::NotAtConsole, std::nullopt);
    }
    add_contexts(ContextKind::Mandatory, std::nullopt);

    chains_[static_cast<std::size_t>(Hook::Own)].rules = by_kind[static_cast<std::size_t>(RuleKind::Own)];
    chains_[static_cast<std::size_t>(Hook::Send)].rules = by_kind[static_cast<std::size_t>(RuleKind::Send)];
    for (const RuleRecord* rule : by_kind[static_cast<std::size_t>(RuleKind::Receive)]) {
        const bool eavesdrop = rule->flags & kRuleEavesdrop;
        // Deny rules marked eavesdrop only apply to eavesdropping; allow rules only apply to it when marked.
        if (is_allow(*rule) || !eavesdrop) chains_[static_cast<std::size_t>(Hook::Receive)].rules.push_back(rule);
        if (!is_allow(*rule) || eavesdrop) chains_[static_cast<std::size_t>(Hook::Eavesdrop)].rules.push_back(rule);
    }
    for (Chain& chain : chains_) index(chain);
}

void ConnectionChains::index(Chain& chain) const {
    chain.strings.reserve(chain.rules.size());
    for (std::uint32_t i = 0; i < chain.rules.size(); ++i) {
        const RuleRecord& rule = *chain.rules[i];
        chain.strings.push_back({image_->string(rule.name), image_->string(rule.path), image_->string(rule.interface),
                                 image_->string(rule.member), image_->string(rule.error)});
        if (rule.name_match == static_cast<std::uint8_t>(NameMatch::Exact))
            chain.by_name[chain.strings.back().name].push_back(i);
        else if (rule.interface != kNoString && (rule.flags & kRuleInterfaceRequired))
            chain.by_interface[chain.strings.back().interface].push_back(i);
        else
            chain.generic.push_back(i);
    }
}

bool ConnectionChains::matches(Hook hook, const RuleRecord& rule, const Strings& s, const MessageFacts& m,
                               const Party* other) const {
    if (hook == Hook::Own) return true;  // the name was checked by the caller
    if (rule.message_type != 0 && rule.message_type != m.type) return false;
    if (m.is_reply) {
        const auto reply = static_cast<ReplyCondition>(rule.reply);
        if (reply == ReplyCondition::RequestedOnly && !m.requested_reply) return false;
        if (reply == ReplyCondition::UnrequestedOnly && m.requested_reply) return false;
    }
    // A message without the header field matches a rule about it, except a rule that names an interface
    // and allows (dbus-daemon's asymmetry, so that deny rules cannot be dodged by leaving it out).
    if (rule.path != kNoString && !m.path.empty() && m.path != s.path) return false;
    if (rule.interface != kNoString) {
        if (m.interface.empty() ? (rule.flags & kRuleInterfaceRequired) != 0 : m.interface != s.interface) return false;
    }
    if (rule.member != kNoString && !m.member.empty() && m.member != s.member) return false;
    if (rule.error != kNoString && !m.error_name.empty() && m.error_name != s.error) return false;
    if (rule.broadcast != static_cast<std::uint8_t>(Broadcast::Any)) {
        const bool broadcast = m.destination.empty() && m.type == 4;
        if (broadcast != (rule.broadcast == static_cast<std::uint8_t>(Broadcast::Yes))) return false;
    }
    if (rule.name_match != static_cast<std::uint8_t>(NameMatch::Any)) {
        const std::string_view name = s.name;
        // Without a connection (the bus itself) the message's own field is compared.
        const std::string_view field = hook == Hook::Send ? m.destination : m.sender;
        if (rule.name_match == static_cast<std::uint8_t>(NameMatch::Exact)) {
            if (other ? !other->owns(name) : field != name) return false;
        } else {
            if (other ? !other->owns_below(name) : (field.empty() || !is_below(field, name))) return false;
        }
    }
    if ((rule.min_fds > 0 || rule.max_fds < kMaxMessageFds) && (m.fds < rule.min_fds || m.fds > rule.max_fds)) return false;
    return true;
}

Decision ConnectionChains::decide(Hook hook, const MessageFacts& message, const Party* other) const {
    const Chain& chain = chains_[static_cast<std::size_t>(hook)];
    // The last matching rule wins: scan each candidate list from its end and stop at the first match or
    // once below the best position found so far.
    std::int64_t best = -1;
    auto scan = [&](const std::vector<std::uint32_t>& positions) {
        for (auto it = positions.rbegin(); it != positions.rend() && static_cast<std::int64_t>(*it) > best; ++it) {
            if (matches(hook, *chain.rules[*it], chain.strings[*it], message, other)) {
                best = *it;
                return;
            }
        }
    };
    auto scan_name = [&](std::string_view name) {
        if (auto it = chain.by_name.find(name); it != chain.by_name.end()) scan(it->second);
    };
    scan(chain.generic);
    if (!message.interface.empty()) {
        if (auto it = chain.by_interface.find(message.interface); it != chain.by_interface.end()) scan(it->second);
    }
    if (!chain.by_name.empty()) {
        if (other) {
            scan_name(other->unique_name);
            for (const std::string& name : other->names) scan_name(name);
        } else {
            scan_name(hook == Hook::Send ? message.destination : message.sender);
        }
    }
    Decision decision;
    decision.error_name = kAccessDeniedError;
    if (best < 0) return decision;
    const RuleRecord& rule = *chain.rules[static_cast<std::size_t>(best)];
    decision.rule = &rule;
    decision.verdict = static_cast<Verdict>(rule.verdict);
    decision.log = (rule.flags & kRuleLog) != 0;
    if (decision.verdict == Verdict::Reject) decision.error_name = image_->string(rule.reject_error);
    return decision;
}

Decision ConnectionChains::check_send(const MessageFacts& message, const Party* recipient) const {
    return decide(Hook::Send, message, recipient);
}

Decision ConnectionChains::check_receive(const MessageFacts& message, const Party* sender, bool eavesdropping) const {
    return decide(eavesdropping ? Hook::Eavesdrop : Hook::Receive, message, sender);
}

bool ConnectionChains::can_own(std::string_view name) const {
    const Chain& chain = chains_[static_cast<std::size_t>(Hook::Own)];
    std::int64_t best = -1;
    auto consider = [&](std::uint32_t position) {
        const RuleRecord& rule = *chain.rules[position];
        const bool applies = rule.name_match != static_cast<std::uint8_t>(NameMatch::Prefix) ||
                             is_below(name, image_->string(rule.name));
        if (applies) best = std::max<std::int64_t>(best, position);
        return applies;
    };
    for (auto it = chain.generic.rbegin(); it != chain.generic.rend(); ++it)
        if (consider(*it)) break;
    if (auto it = chain.by_name.find(name); it != chain.by_name.end() && !it->second.empty())
        best = std::max<std::int64_t>(best, it->second.back());
    return best >= 0 && is_allow(*chain.rules[static_cast<std::size_t>(best)]);
}

std::vector<std::uint32_t> ConnectionChains::rule_indices(Hook hook) const {
    const Chain& chain = chains_[static_cast<std::size_t>(hook)];
    std::vector<std::uint32_t> indices;
    indices.reserve(chain.rules.size());
    for (const RuleRecord* rule : chain.rules)
        indices.push_back(static_cast<std::uint32_t>(rule - image_->rules().data()));
    return indices;
}

unsigned ConnectionChains::count_matching(Hook hook, const MessageFacts& message, const Party* other) const {
    const Chain& chain = chains_[static_cast<std::size_t>(hook)];
    unsigned n = 0;
    for (std::size_t i = 0; i < chain.rules.size(); ++i)
        if (matches(hook, *chain.rules[i], chain.strings[i], message, other)) ++n;
    return n;
}

PolicyEngine::PolicyEngine(std::shared_ptr<const PolicyImage> image) : image_(std::move(image)) {
    for (const ContextRecord& context : image_->contexts()) {
        const auto kind = static_cast<ContextKind>(context.kind);
        if ((kind == ContextKind::AtConsole || kind == ContextKind::NotAtConsole) && context.rule_count > 0)
            depends_on_console_ = true;
    }
}

Expected<PolicyEngine, std::string> PolicyEngine::load(std::vector<std::byte> bytes) {
    auto image = PolicyImage::load(std::move(bytes));
    if (!image) return Unexpected(std::move(image).error());
    return PolicyEngine(std::make_shared<const PolicyImage>(std::move(*image)));
}

bool PolicyEngine::allows_connect(std::uint32_t uid, std::span<const std::uint32_t> groups, std::uint32_t bus_uid) const {
    bool allowed = uid == bus_uid;
    auto apply = [&](ContextKind kind) {
        for (const ContextRecord& context : image_->contexts()) {
            if (context.kind != static_cast<std::uint8_t>(kind)) continue;
            for (std::uint32_t i = 0; i < context.rule_count; ++i) {
                const RuleRecord& rule = image_->rules()[context.first_rule + i];
                if (kind_of(rule) != RuleKind::Connect) continue;
                if (!(rule.flags & kRulePrincipalAny)) {
                    const bool is_group = rule.flags & kRulePrincipalIsGroup;
                    const bool hit = is_group ? std::find(groups.begin(), groups.end(), rule.principal) != groups.end()
                                              : rule.principal == uid;
                    if (!hit) continue;
                }
                allowed = is_allow(rule);
            }
        }
    };
    apply(ContextKind::Default);
    apply(ContextKind::Mandatory);
    return allowed;
}

std::shared_ptr<const ConnectionChains> PolicyEngine::chains_for(const Principal& principal) {
    auto& slot = cache_[CacheKey{principal.uid, principal.groups, principal.at_console}];
    if (!slot) slot = std::make_shared<const ConnectionChains>(image_, principal);
    return slot;
}

}  // namespace afbus::policy
