#include "driver.hpp"

#include <unistd.h>

#include <map>

#include "activation.hpp"
#include "afbus/error.hpp"
#include "afbus/introspection.hpp"
#include "afbus/names.hpp"
#include "afbus/object.hpp"
#include "afbus/types.hpp"
#include "bus_settings.hpp"
#include "log.hpp"
#include "name_signals.hpp"
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

using Handler = Expected<void, Error> (*)(DriverContext&, Peer&, const Message&, MessageBuilder&, DriverOutcome&);

// Where a method answers. dbus-daemon answers most of them on any path, for clients that never set one
// properly; the properties, monitoring and statistics of the bus exist only on its own object.
enum class Paths : std::uint8_t { Any, BusObject };

struct Method {
    std::string_view interface;
    std::string_view name;
    std::string_view in;
    std::string_view out;
    Handler handler;
    Paths paths = Paths::Any;
    // Only Hello may be called before Hello.
    bool needs_registration = true;
    // Only root and the bus's own user may call it; checked before the arguments, as dbus-daemon does.
    bool privileged = false;
    // The handler answers itself, perhaps later (StartServiceByName answers once the service runs).
    bool answers_itself = false;
    AfterReply after = AfterReply::Nothing;
};

Error invalid_args(std::string text) { return make_error(error_names::kInvalidArgs, std::move(text)); }

template <class... Ts>
std::tuple<Ts...> args(const Message& call) {
    // The table checked the signature, so reading cannot fail.
    return read_all<Ts...>(call).value();
}

// --- names ---

Expected<void, Error> hello(DriverContext& bus, Peer& caller, const Message&, MessageBuilder& reply, DriverOutcome&) {
    if (!caller.unique_name().empty()) return Unexpected(make_error(error_names::kFailed, "Already handled an Hello message"));
    // Connection limits count registered connections, as dbus-daemon's do.
    const Limits& limits = bus.settings().limits;
    if (bus.peers().registered() >= static_cast<std::size_t>(limits.max_completed_connections)) {
        log_warning("connection %s refused at Hello: max_completed_connections=%lld", caller.log_name().c_str(),
                    static_cast<long long>(limits.max_completed_connections));
        return Unexpected(make_error(error_names::kLimitsExceeded, "The maximum number of active connections has been reached"));
    }
    if (bus.peers().registered_of(caller.credentials().uid) >= static_cast<std::size_t>(limits.max_connections_per_user)) {
        log_warning("connection %s refused at Hello: max_connections_per_user=%lld", caller.log_name().c_str(),
                    static_cast<long long>(limits.max_connections_per_user));
        return Unexpected(make_error(error_names::kLimitsExceeded, "The maximum number of active connections for UID " +
                                                                       std::to_string(caller.credentials().uid) +
                                                                       " has been reached"));
    }
    reply.body().reserve(32);  // the reply's memory before the change: nothing below allocates
    const std::string& unique_name = bus.register_unique_name(caller);
    reply.destination(unique_name);
    append(reply, unique_name);
    return {};
}

Expected<void, Error> request_name(DriverContext& bus, Peer& caller, const Message& call, MessageBuilder& reply, DriverOutcome&) {
    auto [name, flags] = args<std::string, std::uint32_t>(call);
    if (!is_valid_bus_name(name)) return Unexpected(invalid_args("Requested bus name \"" + name + "\" is not valid"));
    if (name.starts_with(':'))
        return Unexpected(invalid_args("Cannot acquire a service starting with ':' such as \"" + name + "\""));
    if (name == kBusName) {
        return Unexpected(invalid_args("Connection \"" + caller.unique_name() + "\" is not allowed to own the service \"" + name +
                                       "\"because it is reserved for D-Bus' use only"));
    }
    if (!bus.allows_own(caller, name)) {
        return Unexpected(make_error(error_names::kAccessDenied,
                                     "Connection \"" + caller.unique_name() + "\" is not allowed to own the service \"" + name +
                                         "\" due to security policies in the configuration file"));
    }
    // The unique name counts as one of the connection's names, as in dbus-daemon.
    if (bus.names().owner(name) != caller.id() &&
        bus.names().count_for(caller.id()) + 1 >= static_cast<std::size_t>(bus.settings().limits.max_names_per_connection)) {
        return Unexpected(make_error(error_names::kLimitsExceeded,
                                     "Connection \"" + caller.unique_name() + "\" is not allowed to own more services "
                                     "(increase limits in configuration file if required; max_names_per_connection=" +
                                     std::to_string(bus.settings().limits.max_names_per_connection) + ")"));
    }
    reply.body().reserve(8);  // the reply's memory before the change: appending it allocates nothing
    auto result = bus.request_name(caller, name, flags);
    append(reply, result.reply);
    return {};
}

Expected<void, Error> release_name(DriverContext& bus, Peer& caller, const Message& call, MessageBuilder& reply, DriverOutcome&) {
    auto [name] = args<std::string>(call);
    if (!is_valid_bus_name(name)) return Unexpected(invalid_args("Given bus name \"" + name + "\" is not valid"));
    if (name.starts_with(':'))
        return Unexpected(invalid_args("Cannot release a service starting with ':' such as \"" + name + "\""));
    if (name == kBusName)
        return Unexpected(invalid_args("Cannot release the " + name + " service because it is owned by the bus"));
    reply.body().reserve(8);  // the reply's memory before the change: appending it allocates nothing
    auto result = bus.release_name(caller, name);
    append(reply, result.reply);
    return {};
}

Expected<void, Error> list_names(DriverContext& bus, Peer&, const Message&, MessageBuilder& reply, DriverOutcome&) {
    std::vector<std::string> names{std::string(kBusName)};
    for (std::string& n : bus.names().names()) names.push_back(std::move(n));
    for (const auto& [unique, id] : bus.peers().unique_names()) names.push_back(unique);
    append(reply, names);
    return {};
}

Expected<void, Error> list_activatable_names(DriverContext& bus, Peer&, const Message&, MessageBuilder& reply, DriverOutcome&) {
    std::vector<std::string> names{std::string(kBusName)};
    for (std::string& name : bus.activation().activatable_names()) names.push_back(std::move(name));
    append(reply, names);
    return {};
}

Expected<void, Error> name_has_owner(DriverContext& bus, Peer&, const Message& call, MessageBuilder& reply, DriverOutcome&) {
    auto [name] = args<std::string>(call);
    append(reply, name == kBusName || bus.owner_of(name) != nullptr);
    return {};
}

// The unique name owning `name`, or NameHasNoOwner with dbus-daemon's "Could not get <what> of name" text.
Expected<Peer*, Error> resolve(DriverContext& bus, const std::string& name, std::string_view what) {
    Peer* peer = bus.owner_of(name);
    if (!peer || peer->unique_name().empty()) {
        return Unexpected(make_error(error_names::kNameHasNoOwner,
                                     "Could not get " + std::string(what) + " of name '" + name + "': no such name"));
    }
    return peer;
}

Expected<void, Error> get_name_owner(DriverContext& bus, Peer&, const Message& call, MessageBuilder& reply, DriverOutcome&) {
    auto [name] = args<std::string>(call);
    if (name == kBusName) {
        append(reply, name);
        return {};
    }
    auto peer = resolve(bus, name, "owner");
    if (!peer) return Unexpected(peer.error());
    append(reply, (*peer)->unique_name());
    return {};
}

Expected<void, Error> list_queued_owners(DriverContext& bus, Peer&, const Message& call, MessageBuilder& reply, DriverOutcome&) {
    auto [name] = args<std::string>(call);
    std::vector<std::string> owners;
    if (name == kBusName) {
        owners.push_back(name);
    } else if (name.starts_with(':')) {
        auto peer = resolve(bus, name, "owners");
        if (!peer) return Unexpected(peer.error());
        owners.push_back((*peer)->unique_name());
    } else {
        for (PeerId id : bus.names().queue(name)) owners.push_back(bus.peers().unique_name_of(id));
        if (owners.empty()) {
            return Unexpected(make_error(error_names::kNameHasNoOwner, "Could not get owners of name '" + name + "': no such name"));
        }
    }
    append(reply, owners);
    return {};
}

Expected<void, Error> get_unix_user(DriverContext& bus, Peer&, const Message& call, MessageBuilder& reply, DriverOutcome&) {
    auto [name] = args<std::string>(call);
    if (name == kBusName) {
        append(reply, static_cast<std::uint32_t>(::getuid()));
        return {};
    }
    auto peer = resolve(bus, name, "UID");
    if (!peer) return Unexpected(peer.error());
    append(reply, static_cast<std::uint32_t>((*peer)->credentials().uid));
    return {};
}

Expected<void, Error> get_unix_pid(DriverContext& bus, Peer&, const Message& call, MessageBuilder& reply, DriverOutcome&) {
    auto [name] = args<std::string>(call);
    if (name == kBusName) {
        append(reply, static_cast<std::uint32_t>(::getpid()));
        return {};
    }
    auto peer = resolve(bus, name, "PID");
    if (!peer) return Unexpected(peer.error());
    if ((*peer)->credentials().pid <= 0) {
        return Unexpected(make_error("org.freedesktop.DBus.Error.UnixProcessIdUnknown",
                                     "Could not determine PID for '" + name + "'"));
    }
    append(reply, static_cast<std::uint32_t>((*peer)->credentials().pid));
    return {};
}

Expected<void, Error> get_credentials(DriverContext& bus, Peer&, const Message& call, MessageBuilder& reply, DriverOutcome&) {
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
    const PeerCredentials& c = (*peer)->credentials();
    creds.emplace("UnixUserID", Variant(static_cast<std::uint32_t>(c.uid)));
    // The socket's groups, or the account's when the kernel reports none (dbus-daemon's answer too).
    if (c.from_kernel) {
        if (auto identity = policy_identity((*peer)->uid(), c.groups, bus.accounts(), ConsoleCheck::Skip); identity && !identity->principal.groups.empty())
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

Expected<void, Error> get_adt_audit(DriverContext& bus, Peer&, const Message& call, MessageBuilder&, DriverOutcome&) {
    auto [name] = args<std::string>(call);
    auto peer = resolve(bus, name, "audit session data");
    if (!peer) return Unexpected(peer.error());
    return Unexpected(make_error("org.freedesktop.DBus.Error.AdtAuditDataUnknown",
                                 "Could not determine audit session data for '" + name + "'"));
}

Expected<void, Error> get_selinux_context(DriverContext& bus, Peer&, const Message& call, MessageBuilder&, DriverOutcome&) {
    auto [name] = args<std::string>(call);
    auto peer = resolve(bus, name, "security context");
    if (!peer) return Unexpected(peer.error());
    // afbus parses <selinux> but does not enforce it (docs/daemon.md), so it knows no context.
    return Unexpected(make_error("org.freedesktop.DBus.Error.SELinuxSecurityContextUnknown",
                                 "Could not determine security context for '" + name + "'"));
}

// dbus-daemon's privileged callers: root and the bus's own user, whatever the policy says.
bool privileged(const Peer& caller) {
    return caller.uid() && (*caller.uid() == 0 || *caller.uid() == ::geteuid());
}

Error not_privileged(const Peer& caller, std::string_view method) {
    const std::string uid = caller.uid() ? std::to_string(*caller.uid()) : std::string("(anonymous)");
    return make_error(error_names::kAccessDenied, "rejected attempt to call " + std::string(method) + " by connection " +
                                                      caller.unique_name() + " (uid=" + uid + " pid=" +
                                                      std::to_string(caller.credentials().pid) + ") with uid " + uid);
}

// --- matches ---

Expected<void, Error> add_match(DriverContext& bus, Peer& caller, const Message& call, MessageBuilder&, DriverOutcome&) {
    auto [text] = args<std::string>(call);
    auto rule = MatchRule::parse(text);
    if (!rule) {
        if (rule.error() == MatchRuleError::TooLong)
            return Unexpected(make_error(error_names::kLimitsExceeded, "Match rule text is too long"));
        return Unexpected(make_error(error_names::kMatchRuleInvalid, std::string(to_string(rule.error()))));
    }
    // Eavesdropping on other connections' traffic is for privileged callers only (as dbus-daemon).
    if (rule->eavesdrop().value_or(false) && !privileged(caller)) return Unexpected(not_privileged(caller, "AddMatch"));
    if (bus.matches().count(caller.id()) >= static_cast<std::size_t>(bus.settings().limits.max_match_rules_per_connection)) {
        return Unexpected(make_error(error_names::kLimitsExceeded,
                                     "Connection \"" + caller.unique_name() + "\" is not allowed to add more match rules "
                                     "(increase limits in configuration file if required; max_match_rules_per_connection=" +
                                     std::to_string(bus.settings().limits.max_match_rules_per_connection) + ")"));
    }
    return bus.add_match(caller, std::move(*rule));
}

Expected<void, Error> remove_match(DriverContext& bus, Peer& caller, const Message& call, MessageBuilder&, DriverOutcome&) {
    auto [text] = args<std::string>(call);
    auto rule = MatchRule::parse(text);
    if (!rule) return Unexpected(make_error(error_names::kMatchRuleInvalid, std::string(to_string(rule.error()))));
    if (!bus.remove_match(caller, *rule)) {
        return Unexpected(make_error(error_names::kMatchRuleNotFound, "The given match rule wasn't found and can't be removed"));
    }
    return {};
}

// --- misc ---

Expected<void, Error> get_id(DriverContext& bus, Peer&, const Message&, MessageBuilder& reply, DriverOutcome&) {
    append(reply, bus.guid());
    return {};
}

// Replies 1 once the service has started, 2 if the name has an owner already (Activation answers).
Expected<void, Error> start_service_by_name(DriverContext& bus, Peer& caller, const Message& call, MessageBuilder&, DriverOutcome&) {
    auto [name, flags] = args<std::string, std::uint32_t>(call);
    (void)flags;  // unused by the specification
    auto stitched = call.with_sender(caller.unique_name());
    if (!stitched) return Unexpected(make_error(error_names::kNoMemory, "Cannot keep the call"));
    // A change of the bus only once the activation took the call (then it answers it; the activation
    // tells the bus): before, a failure changed nothing and is answered NoMemory.
    return bus.activation().start_service_by_name(name, caller.id(), std::make_shared<const Message>(std::move(*stitched)));
}

Expected<void, Error> update_activation_environment(DriverContext& bus, Peer&, const Message& call, MessageBuilder&, DriverOutcome&) {
    if (call.path() != "/org/freedesktop/DBus") {
        return Unexpected(make_error(error_names::kAccessDenied,
                                     "Cannot change activation environment on a path other than /org/freedesktop/DBus"));
    }
    // The system bus starts services through the setuid helper, which must not inherit a caller's
    // environment (dbus-daemon's rule).
    if (bus.settings().servicehelper)
        return Unexpected(make_error(error_names::kAccessDenied, "Cannot change activation environment on a system bus."));
    auto [env] = args<std::map<std::string, std::string>>(call);
    bus.changing();
    bus.activation().update_environment(env);
    return {};
}

Expected<void, Error> reload_config(DriverContext& bus, Peer&, const Message&, MessageBuilder&, DriverOutcome&) {
    bus.changing();
    if (auto r = bus.reload_config(); !r) return Unexpected(make_error(error_names::kFailed, r.error()));
    return {};
}

Expected<void, Error> ping(DriverContext&, Peer&, const Message&, MessageBuilder&, DriverOutcome&) { return {}; }

Expected<void, Error> get_machine_id(DriverContext&, Peer&, const Message&, MessageBuilder& reply, DriverOutcome&) {
    if (auto id = machine_id()) {
        append(reply, *id);
        return {};
    }
    return Unexpected(make_error(error_names::kFailed, "Unable to load /var/lib/dbus/machine-id or /etc/machine-id"));
}

Expected<void, Error> introspect(DriverContext&, Peer&, const Message& call, MessageBuilder& reply, DriverOutcome&) {
    append(reply, Driver::introspection_xml(call.path()));
    return {};
}

// --- monitoring ---

Expected<void, Error> become_monitor(DriverContext&, Peer&, const Message& call, MessageBuilder&, DriverOutcome& outcome) {
    auto [texts, flags] = args<std::vector<std::string>, std::uint32_t>(call);
    if (flags != 0) return Unexpected(invalid_args("BecomeMonitor flags must be 0, not " + std::to_string(flags)));
    for (const std::string& text : texts) {
        auto rule = MatchRule::parse(text);
        if (!rule) return Unexpected(make_error(error_names::kMatchRuleInvalid, std::string(to_string(rule.error()))));
        outcome.monitor_rules.push_back(std::move(*rule));
    }
    return {};
}

// --- Debug.Stats ---

Expected<void, Error> get_stats(DriverContext& bus, Peer&, const Message&, MessageBuilder& reply, DriverOutcome&) {
    std::map<std::string, Variant> stats;
    const BusCounters counters = bus.counters();
    stats.emplace("Serial", Variant(counters.last_serial));
    stats.emplace("ActiveConnections", Variant(static_cast<std::uint32_t>(bus.peers().active())));
    stats.emplace("IncompleteConnections", Variant(static_cast<std::uint32_t>(bus.peers().incomplete())));
    stats.emplace("MatchRules", Variant(static_cast<std::uint32_t>(bus.matches().total())));
    stats.emplace("PeakMatchRules", Variant(static_cast<std::uint32_t>(counters.peak_match_rules)));
    stats.emplace("BusNames", Variant(static_cast<std::uint32_t>(bus.names().owned())));
    stats.emplace("PeakBusNames", Variant(static_cast<std::uint32_t>(counters.peak_bus_names)));
    // afbus's own: messages not delivered because the recipient's queue was full, bus-wide.
    stats.emplace("DroppedMessages", Variant(static_cast<std::uint32_t>(counters.dropped_messages)));
    append(reply, stats);
    return {};
}

Expected<void, Error> get_connection_stats(DriverContext& bus, Peer&, const Message& call, MessageBuilder& reply, DriverOutcome&) {
    auto [name] = args<std::string>(call);
    auto peer = resolve(bus, name, "statistics");
    if (!peer) return Unexpected(peer.error());
    const Peer& p = **peer;
    const auto u32 = [](auto v) { return Variant(static_cast<std::uint32_t>(v)); };
    std::map<std::string, Variant> stats;
    stats.emplace("Serial", Variant(bus.counters().last_serial));
    stats.emplace("UniqueName", Variant(p.unique_name()));
    stats.emplace("MatchRules", u32(bus.matches().count(p.id())));
    stats.emplace("PeakMatchRules", u32(p.stats().peak_match_rules));
    stats.emplace("BusNames", u32(bus.names().count_for(p.id())));
    stats.emplace("PeakBusNames", u32(p.stats().peak_bus_names));
    // As dbus-daemon: what the bus holds now, not totals. Incoming: this peer's messages still queued
    // anywhere in the bus; outgoing: its own queue.
    stats.emplace("IncomingMessages", u32(p.incoming()->messages));
    stats.emplace("IncomingBytes", u32(p.incoming()->bytes));
    stats.emplace("IncomingFDs", u32(p.incoming()->fds));
    stats.emplace("PeakIncomingBytes", u32(p.stats().peak_incoming_bytes));
    stats.emplace("PeakIncomingFDs", u32(p.stats().peak_incoming_fds));
    const QueueLoad queued = bus.queued(p.id());
    stats.emplace("OutgoingMessages", u32(queued.messages));
    stats.emplace("OutgoingBytes", u32(queued.bytes));
    stats.emplace("OutgoingFDs", u32(queued.fds));
    stats.emplace("PeakOutgoingBytes", u32(p.stats().peak_outgoing_bytes));
    stats.emplace("PeakOutgoingFDs", u32(p.stats().peak_outgoing_fds));
    // afbus's own: messages not delivered to this peer because its queue was full.
    stats.emplace("DroppedMessages", u32(p.stats().dropped_messages));
    append(reply, stats);
    return {};
}

Expected<void, Error> get_all_match_rules(DriverContext& bus, Peer&, const Message&, MessageBuilder& reply, DriverOutcome&) {
    std::map<std::string, std::vector<std::string>> all;
    for (const auto& [unique, id] : bus.peers().unique_names()) {
        auto rules = bus.matches().rules_of(id);
        if (!rules.empty()) all.emplace(unique, std::move(rules));
    }
    append(reply, all);
    return {};
}

// --- properties ---

std::vector<std::string> features(const DriverContext& bus) {
    std::vector<std::string> f{"ActivatableServicesChanged", "HeaderFiltering"};
    if (bus.settings().systemd_activation) f.emplace_back("SystemdActivation");
    return f;
}

std::vector<std::string> interfaces() { return {std::string(kMonitoringInterface), std::string(kStatsInterface)}; }

Expected<void, Error> properties_get(DriverContext& bus, Peer&, const Message& call, MessageBuilder& reply, DriverOutcome&) {
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

Expected<void, Error> properties_get_all(DriverContext& bus, Peer&, const Message& call, MessageBuilder& reply, DriverOutcome&) {
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

Expected<void, Error> properties_set(DriverContext&, Peer&, const Message& call, MessageBuilder&, DriverOutcome&) {
    auto [interface, property, value] = args<std::string, std::string, Variant>(call);
    if (interface == kBusInterface && (property == "Features" || property == "Interfaces"))
        return Unexpected(make_error(error_names::kPropertyReadOnly, "Property '" + interface + "." + property + "' cannot be set"));
    if (interface != kBusInterface)
        return Unexpected(make_error(error_names::kUnknownInterface, "Interface \"" + interface + "\" not found"));
    return Unexpected(make_error(error_names::kUnknownProperty, "Property \"" + interface + "." + property + "\" not found"));
}

constexpr Method kMethods[] = {
    //  interface               name                       in       out      handler                 paths              needs Hello  privileged  answers itself  after the reply
    {kBusInterface, "Hello", "", "s", hello, Paths::Any, false, false, false, AfterReply::AnnounceUniqueName},
    {kBusInterface, "RequestName", "su", "u", request_name, Paths::Any, true, false, false, AfterReply::NotePeaks},
    {kBusInterface, "ReleaseName", "s", "u", release_name},
    {kBusInterface, "StartServiceByName", "su", "u", start_service_by_name, Paths::Any, true, false, true},
    {kBusInterface, "UpdateActivationEnvironment", "a{ss}", "", update_activation_environment, Paths::Any, true, true},
    {kBusInterface, "NameHasOwner", "s", "b", name_has_owner},
    {kBusInterface, "ListNames", "", "as", list_names},
    {kBusInterface, "ListActivatableNames", "", "as", list_activatable_names},
    {kBusInterface, "AddMatch", "s", "", add_match, Paths::Any, true, false, false, AfterReply::NotePeaks},
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
    {kMonitoringInterface, "BecomeMonitor", "asu", "", become_monitor, Paths::BusObject, true, true, false, AfterReply::BecomeMonitor},
    {kStatsInterface, "GetStats", "", "a{sv}", get_stats, Paths::BusObject},
    {kStatsInterface, "GetConnectionStats", "s", "a{sv}", get_connection_stats, Paths::BusObject},
    {kStatsInterface, "GetAllMatchRules", "", "a{sas}", get_all_match_rules, Paths::BusObject},
    {kIntrospectableInterface, "Introspect", "", "s", introspect},
    {kPeerInterface, "GetMachineId", "", "s", get_machine_id},
    {kPeerInterface, "Ping", "", "", ping},
    {kPropertiesInterface, "Get", "ss", "v", properties_get, Paths::BusObject},
    {kPropertiesInterface, "GetAll", "s", "a{sv}", properties_get_all, Paths::BusObject},
    {kPropertiesInterface, "Set", "ssv", "", properties_set, Paths::BusObject},
};

// The method `call` names, if the bus has it on the call's path; `interface_known` says whether the
// interface exists there (UnknownMethod or UnknownInterface).
const Method* find_method(const Message& call, bool& interface_known) {
    const std::string_view interface = call.interface();
    const bool on_bus_object = call.path() == kDriverPath;
    interface_known = interface.empty();
    for (const Method& m : kMethods) {
        if (!interface.empty() && m.interface != interface) continue;
        if (m.paths == Paths::BusObject && !on_bus_object) continue;
        interface_known = true;
        if (m.name == call.member()) return &m;
    }
    return nullptr;
}

}  // namespace

std::string Driver::introspection_xml(std::string_view path) {
    const bool canonical = path == kDriverPath;
    IntrospectionXml xml;
    std::string_view current;
    for (const Method& m : kMethods) {
        // Elsewhere than on its object, the bus shows only what answers on any path (as dbus-daemon).
        if (!canonical && m.paths == Paths::BusObject) continue;
        if (m.interface != current) {
            if (!current.empty()) xml.end_interface();
            current = m.interface;
            xml.begin_interface(m.interface);
            if (m.interface == kBusInterface) {
                static constexpr IntrospectionArg kOwnerChanged[] = {{{}, "s"}, {{}, "s"}, {{}, "s"}};
                static constexpr IntrospectionArg kName[] = {{{}, "s"}};
                xml.property("Features", "as", "read", "const");
                xml.property("Interfaces", "as", "read", "const");
                xml.signal("NameOwnerChanged", kOwnerChanged);
                xml.signal("NameLost", kName);
                xml.signal("NameAcquired", kName);
                xml.signal("ActivatableServicesChanged", {});
            } else if (m.interface == kPropertiesInterface) {
                static constexpr IntrospectionArg kChanged[] = {
                    {"interface_name", "s"}, {"changed_properties", "a{sv}"}, {"invalidated_properties", "as"}};
                xml.signal("PropertiesChanged", kChanged);
            }
        }
        xml.method(m.name, unnamed_args(m.in), unnamed_args(m.out));
    }
    xml.end_interface();
    // The way down to the bus's object, so that tree walkers (busctl tree) find it.
    if (path == "/") xml.child_node(kDriverPath.substr(1));
    else if (kDriverPath.starts_with(path) && kDriverPath.size() > path.size() && kDriverPath[path.size()] == '/')
        xml.child_node(kDriverPath.substr(path.size() + 1));
    return xml.finish();
}

DriverOutcome Driver::handle(DriverContext& bus, Peer& caller, const Message& call) {
    DriverOutcome outcome;
    if (call.type() != MessageType::MethodCall) return outcome;  // signals and replies to the bus go nowhere
    const std::string_view member = call.member();
    bool interface_known = false;
    const Method* method = find_method(call, interface_known);
    // As dbus-daemon: before Hello, every call but Hello is refused (the connection stays).
    if (!caller.registered() && (!method || method->needs_registration)) {
        if (call.expects_reply()) {
            outcome.reply = MessageBuilder::error(":not.active.yet", call.serial(), error_names::kAccessDenied,
                                                  "Client tried to send a message other than Hello without being registered");
        }
        return outcome;
    }
    auto reply = MessageBuilder::method_return(caller.unique_name(), call.serial());
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
        result = method->handler(bus, caller, call, reply, outcome);
    }
    if (!result) {
        // Errors go back whatever the call's flags (dbus-daemon).
        outcome.reply = MessageBuilder::error(caller.unique_name(), call.serial(), result.error().name, result.error().message);
        outcome.monitor_rules.clear();
        return outcome;
    }
    outcome.succeeded = true;
    outcome.after = method->after;
    if (call.expects_reply() && !method->answers_itself) outcome.reply = std::move(reply);
    return outcome;
}

}  // namespace afbus::daemon
