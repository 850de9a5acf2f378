// Driver: org.freedesktop.DBus (with .Introspectable, .Peer, .Properties, .Monitoring, .Debug.Stats) as
// a table of methods (driver_table.cpp): interface, name, signatures, the paths it answers on, whether
// the caller must have said Hello, whether only privileged callers may call it, and what the bus does
// once the reply is queued. Errors and texts are dbus-daemon 1.14's.
//
// The driver sees the bus through DriverContext, the bus model's narrow interface for it; it never sends
// anything itself: it returns the reply and the follow-up action, and the bus carries them out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/error.hpp"
#include "afbus/expected.hpp"
#include "afbus/match_rule.hpp"
#include "afbus/message.hpp"
#include "flow_control.hpp"
#include "match_registry.hpp"
#include "name_registry.hpp"
#include "peer_table.hpp"
#include "principal.hpp"

namespace afbus::daemon {

struct BusSettings;
class Activation;

// Bus-wide figures for Debug.Stats.
struct BusCounters {
    std::uint32_t last_serial = 0;
    std::size_t peak_match_rules = 0, peak_bus_names = 0;
    std::uint64_t dropped_messages = 0;
};

class DriverContext {
public:
    [[nodiscard]] virtual const BusSettings& settings() const = 0;
    [[nodiscard]] virtual const std::string& guid() const = 0;
    virtual PeerTable& peers() = 0;
    [[nodiscard]] virtual const NameRegistry& names() const = 0;
    [[nodiscard]] virtual const MatchRegistry& matches() const = 0;
    virtual Activation& activation() = 0;
    virtual AccountCache& accounts() = 0;
    // The peer that `name` (unique or well-known) stands for, or null.
    virtual Peer* owner_of(std::string_view name) = 0;
    // Hello's registration; like every change below it, done whole or (out of memory) not at all.
    virtual const std::string& register_unique_name(Peer& peer) = 0;
    // Said before a change that may not be whole if memory runs out part-way (the environment, a
    // reload): a call that then fails ends its caller's connection instead of an error. (Activation
    // says so itself once it took a message: ActivationHost::activation_took_effect().)
    virtual void changing() = 0;
    // RequestName / ReleaseName, with their ownership changes announced.
    virtual NameRegistry::Result request_name(Peer& peer, const std::string& name, std::uint32_t flags) = 0;
    virtual NameRegistry::Result release_name(Peer& peer, const std::string& name) = 0;
    virtual void apply_name_changes(const std::vector<NameChange>& changes) = 0;
    // Adds `rule`; an error (nothing changed) when the delivery mode could not take it.
    virtual Expected<void, Error> add_match(Peer& peer, MatchRule rule) = 0;
    virtual bool remove_match(Peer& peer, const MatchRule& rule) = 0;
    [[nodiscard]] virtual bool allows_own(const Peer& peer, std::string_view name) const = 0;
    [[nodiscard]] virtual BusCounters counters() const = 0;
    [[nodiscard]] virtual QueueLoad queued(PeerId peer) const = 0;
    virtual Expected<void, std::string> reload_config() = 0;

protected:
    ~DriverContext() = default;
};

// What the bus does after queueing a method's reply (the table's last column).
enum class AfterReply : std::uint8_t {
    Nothing,
    AnnounceUniqueName,  // Hello: NameOwnerChanged and NameAcquired for the new unique name
    BecomeMonitor,       // the caller becomes a monitor with DriverOutcome::monitor_rules
    NotePeaks,           // names or match rules changed: Debug.Stats's peaks
};

struct DriverOutcome {
    bool succeeded = false;  // only then do eavesdroppers see the call (dbus-daemon)
    // What to send the caller now: the reply, or the error. None when nothing is owed now (a signal to
    // the bus, NO_REPLY_EXPECTED, or a method that answers later).
    std::optional<MessageBuilder> reply;
    AfterReply after = AfterReply::Nothing;
    std::vector<MatchRule> monitor_rules;  // BecomeMonitor's, parsed once
};

class Driver {
public:
    static DriverOutcome handle(DriverContext& bus, Peer& caller, const Message& call);
    // What Introspect answers on `path` (also `afbus-daemon --introspect`): every interface on
    // /org/freedesktop/DBus; elsewhere, as dbus-daemon, only the ones that answer on any path, and the
    // way down to the canonical path.
    static std::string introspection_xml(std::string_view path = "/org/freedesktop/DBus");
};

}  // namespace afbus::daemon
