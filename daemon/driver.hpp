// Driver: org.freedesktop.DBus (with .Introspectable, .Peer, .Properties) as a table of methods whose
// input signatures are checked before the handler runs; errors and texts as dbus-daemon 1.14's.
#pragma once

#include "afbus/message.hpp"
#include "bus.hpp"

namespace afbus::daemon {

class Driver {
public:
    // True when the call succeeded (only then do eavesdroppers see it, as in dbus-daemon).
    static bool handle(Bus& bus, Bus::Peer& caller, const Message& call);
    // The introspection XML of the bus object (also for `afbus-daemon --introspect`).
    // What Introspect answers on `path`: every interface on /org/freedesktop/DBus; elsewhere, as
    // dbus-daemon, only the ones that answer on any path, and the way down to the canonical path.
    static std::string introspection_xml(std::string_view path = "/org/freedesktop/DBus");
};

}  // namespace afbus::daemon
