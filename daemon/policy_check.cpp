#include "policy_check.hpp"

#include <optional>

#include "log.hpp"

namespace afbus::daemon {
namespace {

inline constexpr std::string_view kDriverName = "org.freedesktop.DBus";

policy::MessageFacts facts_of(const Message& m, bool requested_reply) {
    policy::MessageFacts facts;
    facts.type = static_cast<std::uint8_t>(m.type());
    facts.path = m.path();
    facts.interface = m.interface();
    facts.member = m.member();
    facts.error_name = m.error_name();
    facts.destination = m.destination();
    facts.sender = m.sender();
    facts.is_reply = m.reply_serial().has_value();
    facts.requested_reply = requested_reply;
    facts.fds = m.unix_fds();
    return facts;
}

std::string or_unset(std::string_view s) { return s.empty() ? std::string("(unset)") : std::string(s); }

// dbus-daemon's complaint, word for word: it is both the log line and the error's text.
std::string complaint(const char* what, unsigned matched, const PolicyQuestion& q) {
    const Message& m = *q.message;
    auto owner = [](const Peer* p) { return p ? p->describe_owner() : std::string("bus"); };
    return std::string(what) + ", " + std::to_string(matched) + " matched rules; type=\"" + std::string(to_string(m.type())) +
           "\", sender=\"" + (q.sender ? q.sender->unique_name() : std::string("(unset)")) + "\" (" +
           (q.sender ? owner(q.sender) : std::string("(bus)")) + ") interface=\"" + or_unset(m.interface()) +
           "\" member=\"" + or_unset(m.member()) + "\" error name=\"" + or_unset(m.error_name()) +
           "\" requested_reply=\"" + (q.requested_reply ? "1" : "0") + "\" destination=\"" +
           (m.destination().empty() ? std::string(kDriverName) : std::string(m.destination())) + "\" (" +
           owner(q.recipient) + ")";
}

}  // namespace

PolicyVerdict check_policy(const NameRegistry& names, const PolicyQuestion& q) {
    const policy::ConnectionChains* send_chains = q.sender ? q.sender->policy() : nullptr;
    const policy::ConnectionChains* receive_chains = q.recipient ? q.recipient->policy() : nullptr;
    if (!send_chains && !receive_chains) return PolicyVerdict::allow();

    const policy::MessageFacts facts = facts_of(*q.message, q.requested_reply);
    auto party = [&names](const Peer* p) -> std::optional<policy::Party> {
        if (!p) return std::nullopt;
        return policy::Party{p->unique_name(), names.names_of(p->id())};
    };
    const auto sender_party = party(q.sender);
    const auto recipient_party = party(q.recipient);
    const policy::Party* from = sender_party ? &*sender_party : nullptr;
    const policy::Party* to = recipient_party ? &*recipient_party : nullptr;

    auto verdict = [&](const char* what, const policy::Decision& decision, policy::Hook hook,
                       const policy::ConnectionChains& chains) {
        const policy::Party* other = hook == policy::Hook::Send ? to : from;
        std::string text = complaint(what, chains.count_matching(hook, facts, other), q);
        if (decision.log) log_warning("%s", text.c_str());
        if (decision.verdict == policy::Verdict::Drop) return PolicyVerdict{PolicyVerdict::Kind::Drop, {}};
        return PolicyVerdict{PolicyVerdict::Kind::Reject, Error{std::string(decision.error_name), std::move(text)}};
    };

    if (send_chains) {
        const policy::Decision decision = send_chains->check_send(facts, to);
        if (!decision.allowed()) return verdict("Rejected send message", decision, policy::Hook::Send, *send_chains);
        if (decision.log) (void)verdict("Would reject message", decision, policy::Hook::Send, *send_chains);
    }
    if (receive_chains) {
        const policy::Decision decision = receive_chains->check_receive(facts, from, q.eavesdropping);
        if (!decision.allowed())
            return verdict("Rejected receive message", decision,
                           q.eavesdropping ? policy::Hook::Eavesdrop : policy::Hook::Receive, *receive_chains);
    }
    return PolicyVerdict::allow();
}

}  // namespace afbus::daemon
