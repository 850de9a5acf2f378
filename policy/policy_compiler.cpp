#include "policy_compiler.hpp"

#include <grp.h>
#include <pwd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <map>

namespace afbus::policy {
namespace {

constexpr std::string_view kAccessDenied = "org.freedesktop.DBus.Error.AccessDenied";

std::optional<std::uint32_t> decimal_id(const std::string& text) {
    if (text.empty() || text.size() > 10) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (value >= 0xffffffffu) return std::nullopt;  // (uid_t)-1 is "no user"
    return static_cast<std::uint32_t>(value);
}

std::optional<std::uint8_t> message_type_from_string(std::string_view s) {
    if (s == "method_call") return 1;
    if (s == "method_return") return 2;
    if (s == "error") return 3;
    if (s == "signal") return 4;
    return std::nullopt;
}

// The attributes of one <allow> or <deny>, looked up by name; absent ones are null.
class Attributes {
public:
    explicit Attributes(const SourceRule& rule) {
        for (const auto& [k, v] : rule.attributes) values_[k] = &v;
    }
    [[nodiscard]] const std::string* get(std::string_view name) const {
        auto it = values_.find(name);
        return it == values_.end() ? nullptr : it->second;
    }

private:
    std::map<std::string, const std::string*, std::less<>> values_;
};

bool is_wildcard(const std::string* value) { return value && *value == "*"; }

class Compiler {
public:
    Compiler(const NameResolver& resolver, CompileResult& result) : resolver_(resolver), result_(result) {}

    Expected<void, CompileError> compile(const std::vector<SourceContext>& contexts) {
        for (const SourceContext& context : contexts) {
            auto kind = open_context(context);
            if (!kind) {
                // Its rules are still checked, as dbus-daemon parses them before dropping them.
                for (const SourceRule& rule : context.rules) {
                    auto compiled = compile_rule(rule, ContextKind::Default, false);
                    if (!compiled) return Unexpected(std::move(compiled).error());
                }
                // Unknown user or group: dbus-daemon ignores the whole <policy> element.
                const std::string file = context.rules.empty() ? std::string() : context.rules.front().file;
                result_.warnings.push_back(
                    file + ": Unknown " + (context.kind == SourceContext::Kind::User ? "username" : "group") + " \"" +
                    context.who + "\" in message bus configuration file");
                continue;
            }
            for (const SourceRule& rule : context.rules) {
                auto compiled = compile_rule(rule, *kind, true);
                if (!compiled) return Unexpected(std::move(compiled).error());
            }
        }
        return {};
    }

    ImageBuilder& builder() { return builder_; }

private:
    std::optional<ContextKind> open_context(const SourceContext& context) {
        switch (context.kind) {
            case SourceContext::Kind::Default:
                builder_.begin_context(ContextKind::Default, 0);
                return ContextKind::Default;
            case SourceContext::Kind::Mandatory:
                builder_.begin_context(ContextKind::Mandatory, 0);
                return ContextKind::Mandatory;
            case SourceContext::Kind::AtConsole:
                builder_.begin_context(ContextKind::AtConsole, 0);
                return ContextKind::AtConsole;
            case SourceContext::Kind::NotAtConsole:
                builder_.begin_context(ContextKind::NotAtConsole, 0);
                return ContextKind::NotAtConsole;
            case SourceContext::Kind::User: {
                auto uid = resolve_user(context.who);
                if (!uid) return std::nullopt;
                builder_.begin_context(ContextKind::User, *uid);
                return ContextKind::User;
            }
            case SourceContext::Kind::Group: {
                auto gid = resolve_group(context.who);
                if (!gid) return std::nullopt;
                builder_.begin_context(ContextKind::Group, *gid);
                return ContextKind::Group;
            }
        }
        return std::nullopt;
    }

    std::optional<std::uint32_t> resolve_user(const std::string& name) const {
        if (auto id = decimal_id(name)) return id;
        if (auto uid = resolver_.user(name)) return static_cast<std::uint32_t>(*uid);
        return std::nullopt;
    }
    std::optional<std::uint32_t> resolve_group(const std::string& name) const {
        if (auto id = decimal_id(name)) return id;
        if (auto gid = resolver_.group(name)) return static_cast<std::uint32_t>(*gid);
        return std::nullopt;
    }

    std::uint32_t optional_string(const std::string* value) {
        return value ? builder_.add_string(*value) : kNoString;
    }

    Expected<void, CompileError> compile_rule(const SourceRule& source, ContextKind context, bool keep) {
        const char* element = source.allow ? "allow" : "deny";
        auto fail = [&](std::string reason) { return Unexpected(CompileError{source.file, source.line, std::move(reason)}); };
        const Attributes a(source);

        const std::string* send_interface = a.get("send_interface");
        const std::string* send_member = a.get("send_member");
        const std::string* send_error = a.get("send_error");
        const std::string* send_destination = a.get("send_destination");
        const std::string* send_destination_prefix = a.get("send_destination_prefix");
        const std::string* send_path = a.get("send_path");
        const std::string* send_type = a.get("send_type");
        const std::string* send_requested_reply = a.get("send_requested_reply");
        const std::string* send_broadcast = a.get("send_broadcast");
        const std::string* receive_interface = a.get("receive_interface");
        const std::string* receive_member = a.get("receive_member");
        const std::string* receive_error = a.get("receive_error");
        const std::string* receive_sender = a.get("receive_sender");
        const std::string* receive_path = a.get("receive_path");
        const std::string* receive_type = a.get("receive_type");
        const std::string* receive_requested_reply = a.get("receive_requested_reply");
        const std::string* eavesdrop = a.get("eavesdrop");
        const std::string* max_fds_attr = a.get("max_fds");
        const std::string* min_fds_attr = a.get("min_fds");
        const std::string* own = a.get("own");
        const std::string* own_prefix = a.get("own_prefix");
        const std::string* user = a.get("user");
        const std::string* group = a.get("group");
        const std::string* log = a.get("log");

        const bool any_send = send_destination || send_destination_prefix || send_broadcast || send_path || send_type ||
                              send_interface || send_member || send_error || send_requested_reply;
        // <allow eavesdrop="true"/> alone is a receive rule (as receive_sender="*" eavesdrop="true").
        const bool any_receive = receive_sender || receive_path || receive_type || receive_interface || receive_member ||
                                 receive_error || receive_requested_reply || (!any_send && eavesdrop);
        const bool any_message = any_send || any_receive || eavesdrop || max_fds_attr || min_fds_attr;

        if (!(any_send || any_receive || own || own_prefix || user || group))
            return fail(std::string("Element <") + element + "> must have one or more attributes");
        if ((send_member && !send_interface && !send_path) || (receive_member && !receive_interface && !receive_path))
            return fail(std::string("On element <") + element +
                        ">, if you specify a member you must specify an interface or a path. Keep in mind that not "
                        "all messages have an interface field.");
        if (int{any_message} + int{own != nullptr} + int{own_prefix != nullptr} + int{user != nullptr} +
                int{group != nullptr} > 1)
            return fail(std::string("Invalid combination of attributes on element <") + element +
                        ">: own, own_prefix, user, group and the message-related attributes cannot be combined");
        if (any_send && any_receive)
            return fail(std::string("Invalid combination of attributes on element <") + element +
                        ">: send and receive attributes cannot be combined");
        if ((send_member || send_interface) && send_error)
            return fail(std::string("Invalid combination of attributes on element <") + element +
                        ">: send_error cannot be combined with send_member or send_interface");
        if (send_destination && send_destination_prefix)
            return fail(std::string("Invalid combination of attributes on element <") + element +
                        ">: send_destination cannot be combined with send_destination_prefix");
        if ((receive_member || receive_interface) && receive_error)
            return fail(std::string("Invalid combination of attributes on element <") + element +
                        ">: receive_error cannot be combined with receive_member or receive_interface");

        RuleRecord rule{};
        rule.verdict = static_cast<std::uint8_t>(source.allow ? Verdict::Accept : Verdict::Reject);
        rule.reject_error = source.allow ? kNoString : builder_.add_string(kAccessDenied);
        rule.name = rule.path = rule.interface = rule.member = rule.error = kNoString;
        rule.max_fds = kMaxMessageFds;
        rule.line = static_cast<std::uint32_t>(source.line);
        rule.file = source.file.empty() ? kNoString : builder_.add_string(source.file);

        if (any_send || any_receive) {
            const bool send = any_send;
            const std::string* interface = send ? send_interface : receive_interface;
            const std::string* member = send ? send_member : receive_member;
            const std::string* error = send ? send_error : receive_error;
            const std::string* name = send ? (send_destination ? send_destination : send_destination_prefix) : receive_sender;
            const bool name_is_prefix = send && send_destination_prefix;
            const std::string* path = send ? send_path : receive_path;
            const std::string* type = send ? send_type : receive_type;
            const std::string* requested_reply = send ? send_requested_reply : receive_requested_reply;

            // "*" is the wildcard, except for a prefix, which is always taken literally.
            if (is_wildcard(interface)) interface = nullptr;
            if (is_wildcard(member)) member = nullptr;
            if (is_wildcard(error)) error = nullptr;
            if (!name_is_prefix && is_wildcard(name)) name = nullptr;
            if (is_wildcard(path)) path = nullptr;
            if (is_wildcard(type)) type = nullptr;

            if (type) {
                auto t = message_type_from_string(*type);
                if (!t) return fail("Bad message type \"" + *type + "\"");
                rule.message_type = *t;
            }
            if (eavesdrop && *eavesdrop != "true" && *eavesdrop != "false")
                return fail("Bad value \"" + *eavesdrop + "\" for eavesdrop attribute, must be true or false");
            if (send && send_broadcast && *send_broadcast != "true" && *send_broadcast != "false")
                return fail("Bad value \"" + *send_broadcast + "\" for send_broadcast attribute, must be true or false");
            if (send && send_destination && send_broadcast && *send_broadcast == "true")
                return fail("Rule with send_broadcast=\"true\" and send_destination=\"" + *send_destination +
                            "\" cannot match anything");
            if (requested_reply && *requested_reply != "true" && *requested_reply != "false")
                return fail("Bad value \"" + *requested_reply + "\" for " +
                            (send ? "send_requested_reply" : "receive_requested_reply") +
                            " attribute, must be true or false");
            auto max_fds = parse_fd_count("max_fds", max_fds_attr, kMaxMessageFds, source);
            if (!max_fds) return Unexpected(std::move(max_fds).error());
            auto min_fds = parse_fd_count("min_fds", min_fds_attr, 0, source);
            if (!min_fds) return Unexpected(std::move(min_fds).error());
            rule.max_fds = *max_fds;
            rule.min_fds = *min_fds;

            const bool is_eavesdrop = eavesdrop && *eavesdrop == "true";
            // Allow rules default to requested replies only, deny rules to unrequested replies only.
            const bool wants_requested = requested_reply ? *requested_reply == "true" : source.allow;
            if (source.allow && wants_requested && !is_eavesdrop)
                rule.reply = static_cast<std::uint8_t>(ReplyCondition::RequestedOnly);
            else if (!source.allow && !wants_requested)
                rule.reply = static_cast<std::uint8_t>(ReplyCondition::UnrequestedOnly);

            rule.kind = static_cast<std::uint8_t>(send ? RuleKind::Send : RuleKind::Receive);
            if (send && log && *log == "true") rule.flags |= kRuleLog;
            if (!send && is_eavesdrop) rule.flags |= kRuleEavesdrop;
            if (interface && source.allow) rule.flags |= kRuleInterfaceRequired;
            if (send && send_broadcast)
                rule.broadcast = static_cast<std::uint8_t>(*send_broadcast == "true" ? Broadcast::Yes : Broadcast::No);
            rule.path = optional_string(path);
            rule.interface = optional_string(interface);
            rule.member = optional_string(member);
            rule.error = optional_string(error);
            rule.name = optional_string(name);
            rule.name_match = static_cast<std::uint8_t>(!name ? NameMatch::Any : name_is_prefix ? NameMatch::Prefix : NameMatch::Exact);
            if (!type && !path && !interface && !member && !error && !name) rule.flags |= kRuleOverridesEarlier;
        } else if (own || own_prefix) {
            rule.kind = static_cast<std::uint8_t>(RuleKind::Own);
            if (own) {
                if (!is_wildcard(own)) {
                    rule.name = builder_.add_string(*own);
                    rule.name_match = static_cast<std::uint8_t>(NameMatch::Exact);
                } else {
                    rule.flags |= kRuleOverridesEarlier;
                }
            } else {
                rule.name = builder_.add_string(*own_prefix);
                rule.name_match = static_cast<std::uint8_t>(NameMatch::Prefix);
            }
        } else {
            // user= or group=: who may connect. Meaningful in the default and mandatory contexts only.
            const bool is_group = group != nullptr;
            const std::string& who = is_group ? *group : *user;
            rule.kind = static_cast<std::uint8_t>(RuleKind::Connect);
            if (is_group) rule.flags |= kRulePrincipalIsGroup;
            if (who == "*") {
                rule.flags |= kRulePrincipalAny;
            } else {
                auto id = is_group ? resolve_group(who) : resolve_user(who);
                if (!id) {
                    result_.warnings.push_back(source.file + ":" + std::to_string(source.line) + ": Unknown " +
                                               (is_group ? "group" : "username") + " \"" + who + "\" on element <" +
                                               element + ">");
                    return {};
                }
                rule.principal = *id;
            }
            if (context == ContextKind::User || context == ContextKind::Group)
                return fail(std::string("<") + element + "> rule cannot be per-" +
                            (context == ContextKind::User ? "user" : "group") + " because it has bus-global semantics");
        }
        if (keep) builder_.add_rule(rule);
        return {};
    }

    // dbus-daemon parses these with strtol: leading blanks and a sign are accepted, trailing text ignored.
    static Expected<std::uint32_t, CompileError> parse_fd_count(const char* name, const std::string* text,
                                                                std::uint32_t fallback, const SourceRule& source) {
        if (!text) return fallback;
        errno = 0;
        char* end = nullptr;
        const long value = std::strtol(text->c_str(), &end, 0);
        if (end == text->c_str() || errno == ERANGE || value < 0 || value > static_cast<long>(kMaxMessageFds))
            return Unexpected(CompileError{source.file, source.line,
                                           "Bad value \"" + *text + "\" for " + name +
                                               " attribute, must be an integer in range 0 to " +
                                               std::to_string(kMaxMessageFds) + " inclusive"});
        return static_cast<std::uint32_t>(value);
    }

    const NameResolver& resolver_;
    CompileResult& result_;
    ImageBuilder builder_;
};

}  // namespace

NameResolver system_name_resolver() {
    return NameResolver{
        [](const std::string& name) -> std::optional<uid_t> {
            passwd pw{};
            passwd* found = nullptr;
            std::vector<char> buffer(16384);
            if (getpwnam_r(name.c_str(), &pw, buffer.data(), buffer.size(), &found) != 0 || !found) return std::nullopt;
            return found->pw_uid;
        },
        [](const std::string& name) -> std::optional<gid_t> {
            group gr{};
            group* found = nullptr;
            std::vector<char> buffer(16384);
            if (getgrnam_r(name.c_str(), &gr, buffer.data(), buffer.size(), &found) != 0 || !found) return std::nullopt;
            return found->gr_gid;
        },
    };
}

Expected<CompileResult, CompileError> compile_policy(const std::vector<SourceContext>& contexts,
                                                     const NameResolver& resolver) {
    CompileResult result;
    Compiler compiler(resolver, result);
    auto compiled = compiler.compile(contexts);
    if (!compiled) return Unexpected(std::move(compiled).error());
    result.image = std::move(compiler.builder()).finish();
    return result;
}

}  // namespace afbus::policy
