#include "driver.hpp"

#include <unistd.h>

#include <map>

#include "afbus/error.hpp"
#include "afbus/names.hpp"
#include "afbus/object.hpp"
#include "afbus/types.hpp"
#include "principal.hpp"

namespace afbus::daemon {
namespace {

constexpr std::string_view kBusName = "org.freedesktop.DBus";
constexpr std::string_view kBusInterface = "org.freedesktop.DBus";
constexpr std::string_view kPropertiesInterface = "org.freedesktop.DBus.Properties";
constexpr std::string_view kIntrospectableInterface = "org.freedesktop.DBus.Introspectable";
constexpr std::string_view kPeerInterface = "org.freedesktop.DBus.Peer";
constexpr std::string_view kMonitoringInterface = "org.freedesktop.DBus.Monitoring";
constexpr std::string_view kStatsInterface = "org.freedesktop.DBus.Debug.Stats";

using Handler = Expected<void, Error> (*)(Bus&, Bus::Peer&, const Message&, MessageBuilder&);

struct Method {
    std::string_view interface;
    std::string_view name;
    std::string_view in;
    std::string_view out;
    Handler handler;
    // Only root and the bus's own user may call it; checked before the arguments, as dbus-daemon does.
    bool privileged = false;
    // The handler sends its own reply, perhaps later (StartServiceByName answers once the service runs).
    bool answers_itself = false;
};

Error invalid_args(std::string text) { return make_error(error_names::kInvalidArgs, std::move(text)); }

template <class... Ts>
std::tuple<Ts...> args(const Message& call) {
    // The table checked the signature, so reading cannot fail.
    return read_all<Ts...>(call).value();
}

// --- names ---

Expected<void, Error> hello(Bus& bus, Bus::Peer& caller, const Message&, MessageBuilder& reply) {
    if (!caller.unique_name.empty()) return Unexpected(make_error(error_names::kFailed, "Already handled an Hello message"));
    // Connection limits count registered connections, as dbus-daemon's do.
    std::size_t completed = 0, same_user = 0;
    for (const auto& [name, id] : bus.unique_names()) {
        ++completed;
        if (const Bus::Peer* p = bus.find_peer(id); p && p->credentials.uid == caller.credentials.uid) ++same_user;
    }
    const Limits& limits = bus.settings().limits;
    if (completed >= static_cast<std::size_t>(limits.max_completed_connections)) {
        return Unexpected(make_error(error_names::kLimitsExceeded, "The maximum number of active connections has been reached"));
    }
    if (same_user >= static_cast<std::size_t>(limits.max_connections_per_user)) {
        return Unexpected(make_error(error_names::kLimitsExceeded, "The maximum number of active connections for UID " +
                                                                       std::to_string(caller.credentials.uid) +
                                                                       " has been reached"));
    }
    bus.register_unique_name(caller);
    reply.destination(caller.unique_name);
    append(reply, caller.unique_name);
    return {};
}

// Hello's reply goes out before NameOwnerChanged/NameAcquired for the unique name (dbus-daemon's order).
void after_hello(Bus& bus, Bus::Peer& caller) {
    auto changed = MessageBuilder::signal("/org/freedesktop/DBus", kBusInterface, "NameOwnerChanged");
    append(changed, caller.unique_name, std::string(), caller.unique_name);
    bus.emit_driver_signal(std::move(changed));
    auto acquired = MessageBuilder::signal("/org/freedesktop/DBus", kBusInterface, "NameAcquired");
    acquired.destination(caller.unique_name);
    append(acquired, caller.unique_name);
    bus.send_from_driver(caller, std::move(acquired));
}

Expected<void, Error> request_name(Bus& bus, Bus::Peer& caller, const Message& call, MessageBuilder& reply) {
    auto [name, flags] = args<std::string, std::uint32_t>(call);
    if (!is_valid_bus_name(name)) return Unexpected(invalid_args("Requested bus name \"" + name + "\" is not valid"));
    if (name.starts_with(':'))
        return Unexpected(invalid_args("Cannot acquire a service starting with ':' such as \"" + name + "\""));
    if (name == kBusName) {
        return Unexpected(invalid_args("Connection \"" + caller.unique_name + "\" is not allowed to own the service \"" + name +
                                       "\"because it is reserved for D-Bus' use only"));
    }
    if (!bus.policy_allows_own(caller, name)) {
        return Unexpected(make_error(error_names::kAccessDenied,
                                     "Connection \"" + caller.unique_name + "\" is not allowed to own the service \"" + name +
                                         "\" due to security policies in the configuration file"));
    }
    // The unique name counts as one of the connection's names, as in dbus-daemon.
    if (bus.names().owner(name) != caller.id &&
        bus.names().count_for(caller.id) + 1 >= static_cast<std::size_t>(bus.settings().limits.max_names_per_connection)) {
        return Unexpected(make_error(error_names::kLimitsExceeded,
                                     "Connection \"" + caller.unique_name + "\" is not allowed to own more services "
                                     "(increase limits in configuration file if required; max_names_per_connection=" +
                                     std::to_string(bus.settings().limits.max_names_per_connection) + ")"));
    }
    auto result = bus.names().request(name, caller.id, flags);
    bus.emit_name_changes(result.changes);
    append(reply, result.reply);
    return {};
}

Expected<void, Error> release_name(Bus& bus, Bus::Peer& caller, const Message& call, MessageBuilder& reply) {
    auto [name] = args<std::string>(call);
    if (!is_valid_bus_name(name)) return Unexpected(invalid_args("Given bus name \"" + name + "\" is not valid"));
    if (name.starts_with(':'))
        return Unexpected(invalid_args("Cannot release a service starting with ':' such as \"" + name + "\""));
    if (name == kBusName)
        return Unexpected(invalid_args("Cannot release the " + name + " service because it is owned by the bus"));
    auto result = bus.names().release(name, caller.id);
    bus.emit_name_changes(result.changes);
    append(reply, result.reply);
    return {};
}

Expected<void, Error> list_names(Bus& bus, Bus::Peer&, const Message&, MessageBuilder& reply) {
    std::vector<std::string> names{std::string(kBusName)};
    for (std::string& n : bus.names().names()) names.push_back(std::move(n));
    for (const auto& [unique, id] : bus.unique_names()) names.push_back(unique);
    append(reply, names);
    return {};
}

Expected<void, Error> list_activatable_names(Bus& bus, Bus::Peer&, const Message&, MessageBuilder& reply) {
    std::vector<std::string> names{std::string(kBusName)};
    for (std::string& name : bus.activation().activatable_names()) names.push_back(std::move(name));
    append(reply, names);
    return {};
}

Expected<void, Error> name_has_owner(Bus& bus, Bus::Peer&, const Message& call, MessageBuilder& reply) {
    auto [name] = args<std::string>(call);
    append(reply, name == kBusName || bus.find_peer_by_name(name) != nullptr);
    return {};
}

// The unique name owning `name`, or NameHasNoOwner with dbus-daemon's "Could not get <what> of name" text.
Expected<Bus::Peer*, Error> resolve(Bus& bus, const std::string& name, std::string_view what) {
    Bus::Peer* peer = bus.find_peer_by_name(name);
    if (!peer || peer->unique_name.empty()) {
        return Unexpected(make_error(error_names::kNameHasNoOwner,
                                     "Could not get " + std::string(what) + " of name '" + name + "': no such name"));
    }
    return peer;
}

Expected<void, Error> get_name_owner(Bus& bus, Bus::Peer&, const Message& call, MessageBuilder& reply) {
    auto [name] = args<std::string>(call);
    if (name == kBusName) {
        append(reply, name);
        return {};
    }
    auto peer = resolve(bus, name, "owner");
    if (!peer) return Unexpected(peer.error());
    append(reply, (*peer)->unique_name);
    return {};
}

Expected<void, Error> list_queued_owners(Bus& bus, Bus::Peer&, const Message& call, MessageBuilder& reply) {
    auto [name] = args<std::string>(call);
    std::vector<std::string> owners;
    if (name == kBusName) {
        owners.push_back(name);
    } else if (name.starts_with(':')) {
        auto peer = resolve(bus, name, "owners");
        if (!peer) return Unexpected(peer.error());
        owners.push_back((*peer)->unique_name);
    } else {
        for (PeerId id : bus.names().queue(name)) owners.push_back(bus.unique_name_of(id));
        if (owners.empty()) {
            return Unexpected(make_error(error_names::kNameHasNoOwner, "Could not get owners of name '" + name + "': no such name"));
        }
    }
    append(reply, owners);
    return {};
}

Expected<void, Error> get_unix_user(Bus& bus, Bus::Peer&, const Message& call, MessageBuilder& reply) {
    auto [name] = args<std::string>(call);
    if (name == kBusName) {
        append(reply, static_cast<std::uint32_t>(::getuid()));
        return {};
    }
    auto peer = resolve(bus, name, "UID");
    if (!peer) return Unexpected(peer.error());
    append(reply, static_cast<std::uint32_t>((*peer)->credentials.uid));
    return {};
}

Expected<void, Error> get_unix_pid(Bus& bus, Bus::Peer&, const Message& call, MessageBuilder& reply) {
    auto [name] = args<std::string>(call);
    if (name == kBusName) {
        append(reply, static_cast<std::uint32_t>(::getpid()));
        return {};
    }
    auto peer = resolve(bus, name, "PID");
    if (!peer) return Unexpected(peer.error());
    if ((*peer)->credentials.pid <= 0) {
        return Unexpected(make_error("org.freedesktop.DBus.Error.UnixProcessIdUnknown",
                                     "Could not determine PID for '" + name + "'"));
    }
    append(reply, static_cast<std::uint32_t>((*peer)->credentials.pid));
    return {};
}

Expected<void, Error> get_credentials(Bus& bus, Bus::Peer&, const Message& call, MessageBuilder& reply) {
    auto [name] = args<std::string>(call);
    std::map<std::string, Variant> creds;
    if (name == kBusName) {
        creds.emplace("UnixUserID", Variant(static_cast<std::uint32_t>(::getuid())));
        creds.emplace("ProcessID", Variant(static_cast<std::uint32_t>(::getpid())));
        append(reply, creds);
        return {};
    }
    auto peer = resolve(bus, name, "credentials");
    if (!peer) return Unexpected(peer.error());
    const PeerCredentials& c = (*peer)->credentials;
    creds.emplace("UnixUserID", Variant(static_cast<std::uint32_t>(c.uid)));
    // The socket's groups, or the account's when the kernel reports none (dbus-daemon's answer too).
    if (c.from_kernel) {
        if (auto identity = policy_identity((*peer)->uid, c.groups, bus.accounts()); identity && !identity->principal.groups.empty())
            creds.emplace("UnixGroupIDs", Variant(identity->principal.groups));
    }
    if (c.pid > 0) creds.emplace("ProcessID", Variant(static_cast<std::uint32_t>(c.pid)));
    if (c.security_label) {
        // An array of bytes including the terminating NUL, as dbus-daemon sends it.
        std::vector<std::uint8_t> label(c.security_label->begin(), c.security_label->end());
        label.push_back(0);
        creds.emplace("LinuxSecurityLabel", Variant(label));
    }
    if (c.pidfd) {
        // The variant holds an fd index; the message carries a duplicate of the pidfd.
        const std::uint32_t index = reply.add_fd(c.pidfd);
        creds.emplace("ProcessFD", Variant(Value::unix_fd_index(index)));
    }
    append(reply, creds);
    return {};
}

Expected<void, Error> get_adt_audit(Bus& bus, Bus::Peer&, const Message& call, MessageBuilder&) {
    auto [name] = args<std::string>(call);
    auto peer = resolve(bus, name, "audit session data");
    if (!peer) return Unexpected(peer.error());
    return Unexpected(make_error("org.freedesktop.DBus.Error.AdtAuditDataUnknown",
                                 "Could not determine audit session data for '" + name + "'"));
}

Expected<void, Error> get_selinux_context(Bus& bus, Bus::Peer&, const Message& call, MessageBuilder&) {
    auto [name] = args<std::string>(call);
    auto peer = resolve(bus, name, "security context");
    if (!peer) return Unexpected(peer.error());
    // SELinux is not enforced by afbus (docs/architecture.md), so no context is known.
    return Unexpected(make_error("org.freedesktop.DBus.Error.SELinuxSecurityContextUnknown",
                                 "Could not determine security context for '" + name + "'"));
}

// dbus-daemon's privileged callers: root and the bus's own user, whatever the policy says.
bool privileged(const Bus::Peer& caller) {
    return caller.uid && (*caller.uid == 0 || *caller.uid == ::geteuid());
}

Error not_privileged(const Bus::Peer& caller, std::string_view method) {
    const std::string uid = caller.uid ? std::to_string(*caller.uid) : std::string("(anonymous)");
    return make_error(error_names::kAccessDenied, "rejected attempt to call " + std::string(method) + " by connection " +
                                                      caller.unique_name + " (uid=" + uid + " pid=" +
                                                      std::to_string(caller.credentials.pid) + ") with uid " + uid);
}

// --- matches ---

Expected<void, Error> add_match(Bus& bus, Bus::Peer& caller, const Message& call, MessageBuilder&) {
    auto [text] = args<std::string>(call);
    auto rule = MatchRule::parse(text);
    if (!rule) {
        if (rule.error() == MatchRuleError::TooLong)
            return Unexpected(make_error(error_names::kLimitsExceeded, "Match rule text is too long"));
        return Unexpected(make_error(error_names::kMatchRuleInvalid, std::string(to_string(rule.error()))));
    }
    // Eavesdropping on other connections' traffic is for privileged callers only (as dbus-daemon).
    if (rule->eavesdrop().value_or(false) && !privileged(caller)) return Unexpected(not_privileged(caller, "AddMatch"));
    if (bus.matches().count(caller.id) >= static_cast<std::size_t>(bus.settings().limits.max_match_rules_per_connection)) {
        return Unexpected(make_error(error_names::kLimitsExceeded,
                                     "Connection \"" + caller.unique_name + "\" is not allowed to add more match rules "
                                     "(increase limits in configuration file if required; max_match_rules_per_connection=" +
                                     std::to_string(bus.settings().limits.max_match_rules_per_connection) + ")"));
    }
    bus.matches().add(caller.id, std::move(*rule));
    return {};
}

Expected<void, Error> remove_match(Bus& bus, Bus::Peer& caller, const Message& call, MessageBuilder&) {
    auto [text] = args<std::string>(call);
    auto rule = MatchRule::parse(text);
    if (!rule) return Unexpected(make_error(error_names::kMatchRuleInvalid, std::string(to_string(rule.error()))));
    if (!bus.matches().remove(caller.id, *rule)) {
        return Unexpected(make_error(error_names::kMatchRuleNotFound, "The given match rule wasn't found and can't be removed"));
    }
    return {};
}

// --- misc ---

Expected<void, Error> get_id(Bus& bus, Bus::Peer&, const Message&, MessageBuilder& reply) {
    append(reply, bus.guid());
    return {};
}

// Replies 1 once the service has started, 2 if the name has an owner already (Activation answers).
Expected<void, Error> start_service_by_name(Bus& bus, Bus::Peer& caller, const Message& call, MessageBuilder&) {
    auto [name, flags] = args<std::string, std::uint32_t>(call);
    (void)flags;  // unused by the specification
    auto stitched = call.with_sender(caller.unique_name);
    if (!stitched) return Unexpected(make_error(error_names::kNoMemory, "Cannot keep the call"));
    return bus.activation().start_service_by_name(name, caller.id, std::make_shared<const Message>(std::move(*stitched)));
}

Expected<void, Error> update_activation_environment(Bus& bus, Bus::Peer&, const Message& call, MessageBuilder&) {
    if (call.path() != "/org/freedesktop/DBus") {
        return Unexpected(make_error(error_names::kAccessDenied,
                                     "Cannot change activation environment on a path other than /org/freedesktop/DBus"));
    }
    // The system bus starts services through the setuid helper, which must not inherit a caller's
    // environment (dbus-daemon's rule).
    if (bus.settings().servicehelper)
        return Unexpected(make_error(error_names::kAccessDenied, "Cannot change activation environment on a system bus."));
    auto [env] = args<std::map<std::string, std::string>>(call);
    bus.activation().update_environment(env);
    return {};
}

Expected<void, Error> reload_config(Bus& bus, Bus::Peer&, const Message&, MessageBuilder&) {
    if (auto r = bus.reload_config(); !r) return Unexpected(make_error(error_names::kFailed, r.error()));
    return {};
}

Expected<void, Error> ping(Bus&, Bus::Peer&, const Message&, MessageBuilder&) { return {}; }

Expected<void, Error> get_machine_id(Bus&, Bus::Peer&, const Message&, MessageBuilder& reply) {
    if (auto id = machine_id()) {
        append(reply, *id);
        return {};
    }
    return Unexpected(make_error(error_names::kFailed, "Unable to load /var/lib/dbus/machine-id or /etc/machine-id"));
}

Expected<void, Error> introspect(Bus&, Bus::Peer&, const Message& call, MessageBuilder& reply) {
    append(reply, Driver::introspection_xml(call.path()));
    return {};
}

// --- monitoring ---

Expected<void, Error> become_monitor(Bus&, Bus::Peer&, const Message& call, MessageBuilder&) {
    auto [texts, flags] = args<std::vector<std::string>, std::uint32_t>(call);
    if (flags != 0) return Unexpected(invalid_args("BecomeMonitor flags must be 0, not " + std::to_string(flags)));
    for (const std::string& text : texts) {
        auto rule = MatchRule::parse(text);
        if (!rule) return Unexpected(make_error(error_names::kMatchRuleInvalid, std::string(to_string(rule.error()))));
    }
    return {};
}

// --- Debug.Stats ---

Expected<void, Error> get_stats(Bus& bus, Bus::Peer&, const Message&, MessageBuilder& reply) {
    std::map<std::string, Variant> stats;
    std::size_t active = 0;
    for (const auto& [id, p] : bus.peers())
        if (!p->sasl) ++active;
    stats.emplace("Serial", Variant(bus.last_serial()));
    stats.emplace("ActiveConnections", Variant(static_cast<std::uint32_t>(active)));
    stats.emplace("IncompleteConnections", Variant(static_cast<std::uint32_t>(bus.incomplete_connections())));
    stats.emplace("MatchRules", Variant(static_cast<std::uint32_t>(bus.matches().total())));
    stats.emplace("PeakMatchRules", Variant(static_cast<std::uint32_t>(bus.peak_match_rules())));
    stats.emplace("BusNames", Variant(static_cast<std::uint32_t>(bus.names().names().size())));
    stats.emplace("PeakBusNames", Variant(static_cast<std::uint32_t>(bus.peak_bus_names())));
    // afbus's own: messages not delivered because the recipient's queue was full, bus-wide.
    stats.emplace("DroppedMessages", Variant(static_cast<std::uint32_t>(bus.dropped_messages())));
    append(reply, stats);
    return {};
}

Expected<void, Error> get_connection_stats(Bus& bus, Bus::Peer&, const Message& call, MessageBuilder& reply) {
    auto [name] = args<std::string>(call);
    auto peer = resolve(bus, name, "statistics");
    if (!peer) return Unexpected(peer.error());
    const Bus::Peer& p = **peer;
    const auto u32 = [](auto v) { return Variant(static_cast<std::uint32_t>(v)); };
    std::map<std::string, Variant> stats;
    stats.emplace("Serial", Variant(bus.last_serial()));
    stats.emplace("UniqueName", Variant(p.unique_name));
    stats.emplace("MatchRules", u32(bus.matches().count(p.id)));
    stats.emplace("PeakMatchRules", u32(p.peak_match_rules));
    stats.emplace("BusNames", u32(bus.names().count_for(p.id)));
    stats.emplace("PeakBusNames", u32(p.peak_bus_names));
    // As dbus-daemon: what the bus holds now, not totals. Incoming: this peer's messages still queued
    // anywhere in the bus; outgoing: its own queue.
    stats.emplace("IncomingMessages", u32(p.incoming->messages));
    stats.emplace("IncomingBytes", u32(p.incoming->bytes));
    stats.emplace("IncomingFDs", u32(p.incoming->fds));
    stats.emplace("PeakIncomingBytes", u32(p.peak_incoming_bytes));
    stats.emplace("PeakIncomingFDs", u32(p.peak_incoming_fds));
    stats.emplace("OutgoingMessages", u32(p.transport->queued_messages()));
    stats.emplace("OutgoingBytes", u32(p.transport->queued_bytes()));
    stats.emplace("OutgoingFDs", u32(p.transport->queued_fds()));
    stats.emplace("PeakOutgoingBytes", u32(p.peak_outgoing_bytes));
    stats.emplace("PeakOutgoingFDs", u32(p.peak_outgoing_fds));
    // afbus's own: messages not delivered to this peer because its queue was full.
    stats.emplace("DroppedMessages", u32(p.dropped_messages));
    append(reply, stats);
    return {};
}

Expected<void, Error> get_all_match_rules(Bus& bus, Bus::Peer&, const Message&, MessageBuilder& reply) {
    std::map<std::string, std::vector<std::string>> all;
    for (const auto& [unique, id] : bus.unique_names()) {
        auto rules = bus.matches().rules_of(id);
        if (!rules.empty()) all.emplace(unique, std::move(rules));
    }
    append(reply, all);
    return {};
}

// --- properties ---

std::vector<std::string> features(const Bus& bus) {
    std::vector<std::string> f{"ActivatableServicesChanged", "HeaderFiltering"};
    if (bus.settings().systemd_activation) f.emplace_back("SystemdActivation");
    return f;
}

std::vector<std::string> interfaces() { return {std::string(kMonitoringInterface), std::string(kStatsInterface)}; }

Expected<void, Error> properties_get(Bus& bus, Bus::Peer&, const Message& call, MessageBuilder& reply) {
    auto [interface, property] = args<std::string, std::string>(call);
    if (interface == kBusInterface && property == "Features") {
        append(reply, Variant(features(bus)));
        return {};
    }
    if (interface == kBusInterface && property == "Interfaces") {
        append(reply, Variant(interfaces()));
        return {};
    }
    if (interface != kBusInterface)
        return Unexpected(make_error(error_names::kUnknownInterface, "Interface \"" + interface + "\" not found"));
    return Unexpected(make_error(error_names::kUnknownProperty, "Property \"" + interface + "." + property + "\" not found"));
}

Expected<void, Error> properties_get_all(Bus& bus, Bus::Peer&, const Message& call, MessageBuilder& reply) {
    auto [interface] = args<std::string>(call);
    std::map<std::string, Variant> all;
    if (interface == kBusInterface) {
        all.emplace("Features", Variant(features(bus)));
        all.emplace("Interfaces", Variant(interfaces()));
    } else if (!interface.empty() && interface != kPropertiesInterface && interface != kIntrospectableInterface &&
               interface != kPeerInterface && interface != kMonitoringInterface && interface != kStatsInterface) {
        return Unexpected(make_error(error_names::kUnknownInterface, "Interface \"" + interface + "\" not found"));
    }
    append(reply, all);
    return {};
}

Expected<void, Error> properties_set(Bus&, Bus::Peer&, const Message& call, MessageBuilder&) {
    auto [interface, property, value] = args<std::string, std::string, Variant>(call);
    if (interface == kBusInterface && (property == "Features" || property == "Interfaces"))
        return Unexpected(make_error(error_names::kPropertyReadOnly, "Property '" + interface + "." + property + "' cannot be set"));
    if (interface != kBusInterface)
        return Unexpected(make_error(error_names::kUnknownInterface, "Interface \"" + interface + "\" not found"));
    return Unexpected(make_error(error_names::kUnknownProperty, "Property \"" + interface + "." + property + "\" not found"));
}

constexpr Method kMethods[] = {
    {kBusInterface, "Hello", "", "s", hello},
    {kBusInterface, "RequestName", "su", "u", request_name},
    {kBusInterface, "ReleaseName", "s", "u", release_name},
    {kBusInterface, "StartServiceByName", "su", "u", start_service_by_name, false, true},
    {kBusInterface, "UpdateActivationEnvironment", "a{ss}", "", update_activation_environment, true},
    {kBusInterface, "NameHasOwner", "s", "b", name_has_owner},
    {kBusInterface, "ListNames", "", "as", list_names},
    {kBusInterface, "ListActivatableNames", "", "as", list_activatable_names},
    {kBusInterface, "AddMatch", "s", "", add_match},
    {kBusInterface, "RemoveMatch", "s", "", remove_match},
    {kBusInterface, "GetNameOwner", "s", "s", get_name_owner},
    {kBusInterface, "ListQueuedOwners", "s", "as", list_queued_owners},
    {kBusInterface, "GetConnectionUnixUser", "s", "u", get_unix_user},
    {kBusInterface, "GetConnectionUnixProcessID", "s", "u", get_unix_pid},
    {kBusInterface, "GetAdtAuditSessionData", "s", "ay", get_adt_audit},
    {kBusInterface, "GetConnectionSELinuxSecurityContext", "s", "ay", get_selinux_context},
    {kBusInterface, "ReloadConfig", "", "", reload_config},
    {kBusInterface, "GetId", "", "s", get_id},
    {kBusInterface, "GetConnectionCredentials", "s", "a{sv}", get_credentials},
    {kMonitoringInterface, "BecomeMonitor", "asu", "", become_monitor, true},
    {kStatsInterface, "GetStats", "", "a{sv}", get_stats},
    {kStatsInterface, "GetConnectionStats", "s", "a{sv}", get_connection_stats},
    {kStatsInterface, "GetAllMatchRules", "", "a{sas}", get_all_match_rules},
    {kIntrospectableInterface, "Introspect", "", "s", introspect},
    {kPeerInterface, "GetMachineId", "", "s", get_machine_id},
    {kPeerInterface, "Ping", "", "", ping},
    {kPropertiesInterface, "Get", "ss", "v", properties_get},
    {kPropertiesInterface, "GetAll", "s", "a{sv}", properties_get_all},
    {kPropertiesInterface, "Set", "ssv", "", properties_set},
};

}  // namespace

std::string Driver::introspection_xml(std::string_view path) {
    constexpr std::string_view kCanonical = "/org/freedesktop/DBus";
    const bool canonical = path == kCanonical;
    std::string xml =
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
        "\"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n";
    std::string_view current;
    for (const Method& m : kMethods) {
        if (!canonical && m.interface != kBusInterface && m.interface != kIntrospectableInterface &&
            m.interface != kPeerInterface)
            continue;
        if (m.interface != current) {
            if (!current.empty()) xml += "  </interface>\n";
            current = m.interface;
            xml += "  <interface name=\"" + std::string(m.interface) + "\">\n";
            if (m.interface == kBusInterface) {
                xml += "    <property name=\"Features\" type=\"as\" access=\"read\">\n"
                       "      <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"const\"/>\n"
                       "    </property>\n"
                       "    <property name=\"Interfaces\" type=\"as\" access=\"read\">\n"
                       "      <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"const\"/>\n"
                       "    </property>\n"
                       "    <signal name=\"NameOwnerChanged\">\n      <arg type=\"s\"/>\n      <arg type=\"s\"/>\n"
                       "      <arg type=\"s\"/>\n    </signal>\n"
                       "    <signal name=\"NameLost\">\n      <arg type=\"s\"/>\n    </signal>\n"
                       "    <signal name=\"NameAcquired\">\n      <arg type=\"s\"/>\n    </signal>\n"
                       "    <signal name=\"ActivatableServicesChanged\">\n    </signal>\n";
            } else if (m.interface == kPropertiesInterface) {
                xml += "    <signal name=\"PropertiesChanged\">\n      <arg type=\"s\" name=\"interface_name\"/>\n"
                       "      <arg type=\"a{sv}\" name=\"changed_properties\"/>\n"
                       "      <arg type=\"as\" name=\"invalidated_properties\"/>\n    </signal>\n";
            }
        }
        xml += "    <method name=\"" + std::string(m.name) + "\">\n";
        std::string_view in = m.in;
        while (!in.empty()) {
            const std::size_t n = complete_type_length(in);
            xml += "      <arg direction=\"in\" type=\"" + std::string(in.substr(0, n)) + "\"/>\n";
            in.remove_prefix(n);
        }
        std::string_view out = m.out;
        while (!out.empty()) {
            const std::size_t n = complete_type_length(out);
            xml += "      <arg direction=\"out\" type=\"" + std::string(out.substr(0, n)) + "\"/>\n";
            out.remove_prefix(n);
        }
        xml += "    </method>\n";
    }
    xml += "  </interface>\n";
    // The way down to the bus's object, so that tree walkers (busctl tree) find it.
    if (path == "/") xml += "  <node name=\"" + std::string(kCanonical.substr(1)) + "\"/>\n";
    else if (kCanonical.starts_with(path) && kCanonical.size() > path.size() && kCanonical[path.size()] == '/')
        xml += "  <node name=\"" + std::string(kCanonical.substr(path.size() + 1)) + "\"/>\n";
    xml += "</node>\n";
    return xml;
}

bool Driver::handle(Bus& bus, Bus::Peer& caller, const Message& call) {
    if (call.type() != MessageType::MethodCall) return false;  // signals and replies to the bus go nowhere
    const std::string_view interface = call.interface();
    const std::string_view member = call.member();
    const Method* method = nullptr;
    bool interface_known = interface.empty();
    for (const Method& m : kMethods) {
        if (!interface.empty() && m.interface != interface) continue;
        interface_known = true;
        if (m.name == member) {
            method = &m;
            break;
        }
    }
    // Properties of the bus exist only on its canonical path (other interfaces answer anywhere, for
    // compatibility with clients that never set a path properly).
    if (method && (method->interface == kPropertiesInterface || method->interface == kMonitoringInterface ||
                   method->interface == kStatsInterface) &&
        call.path() != "/org/freedesktop/DBus") {
        method = nullptr;
        interface_known = false;
    }
    const PeerId caller_id = caller.id;
    auto reply = MessageBuilder::method_return(caller.unique_name.empty() ? std::string_view() : caller.unique_name,
                                               call.serial());
    Expected<void, Error> result;
    if (!method) {
        result = Unexpected(make_error(interface_known ? error_names::kUnknownMethod : error_names::kUnknownInterface,
                                       std::string(kBusName) + " does not understand message " + std::string(member)));
    } else if (method->privileged && !privileged(caller)) {
        result = Unexpected(not_privileged(caller, member));
    } else if (call.signature() != method->in) {
        result = Unexpected(invalid_args("Call to " + std::string(member) + " has wrong args (" +
                                         std::string(call.signature()) + ", expected " + std::string(method->in) + ")\n"));
    } else {
        result = method->handler(bus, caller, call, reply);
    }
    Bus::Peer* peer = bus.find_peer(caller_id);
    if (!peer) return false;
    // Monitors see Hello with the name it just gave, before its reply (dbus-daemon's order).
    if (method && method->handler == hello && result) bus.show_to_monitors(call, *peer);
    if (!result) {
        bus.reply_error(*peer, call, result.error().name, result.error().message);
    } else if (call.expects_reply() && !method->answers_itself) {
        bus.send_from_driver(*peer, std::move(reply));
    }
    if (method && method->handler == hello && result) after_hello(bus, *peer);
    if (method && method->handler == become_monitor && result) {
        auto [texts, flags] = args<std::vector<std::string>, std::uint32_t>(call);
        std::vector<MatchRule> rules;
        for (const std::string& text : texts) rules.push_back(MatchRule::parse(text).value());
        bus.become_monitor(*peer, std::move(rules));
    }
    if (method && (method->handler == request_name || method->handler == add_match)) bus.note_peaks(*peer);
    return result.has_value();
}

}  // namespace afbus::daemon
