// The client side of org.freedesktop.DBus.ObjectManager: a typed GetManagedObjects and subscriptions to
// InterfacesAdded and InterfacesRemoved. (A connection serves the interface with
// Connection::add_object_manager.)
//
//   afbus::ObjectManagerProxy manager(*connection, "org.example.Devices", "/org/example/Devices");
//   auto objects = manager.get_managed_objects();   // Expected<ManagedObjects, Error>
//   auto added = manager.on_interfaces_added([](afbus::Expected<afbus::InterfacesAdded, afbus::Error> a) { ... });
//
// Like Proxy, it refers to its Connection, which must outlive it, and runs on the Connection's thread.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/proxy.hpp"
#include "afbus/types.hpp"

namespace afbus {

inline constexpr std::string_view kObjectManagerInterface = "org.freedesktop.DBus.ObjectManager";

// Properties.GetAll's answer for each interface of an object, by interface name.
using InterfacesAndProperties = std::map<std::string, std::map<std::string, Variant>>;
// GetManagedObjects' answer: every object below the manager, by path.
using ManagedObjects = std::map<ObjectPath, InterfacesAndProperties>;

struct InterfacesAdded {
    ObjectPath path;
    InterfacesAndProperties interfaces;  // the interfaces the object gained, with their properties
};

struct InterfacesRemoved {
    ObjectPath path;
    std::vector<std::string> interfaces;  // the interfaces the object lost
};

class ObjectManagerProxy {
public:
    // `destination` is a bus name (empty on a peer-to-peer connection), `path` the manager's object path.
    ObjectManagerProxy(Connection& connection, std::string destination, std::string path);

    [[nodiscard]] const Proxy& proxy() const noexcept { return proxy_; }

    Expected<ManagedObjects, Error> get_managed_objects(const CallOptions& options = {});

    // Subscribe until the Slot is dropped; a malformed signal reaches the handler as an InvalidSignature
    // Error. The match rule names the manager's path: the signals come from it, whatever object they are
    // about.
    using InterfacesAddedHandler = std::function<void(Expected<InterfacesAdded, Error>)>;
    using InterfacesRemovedHandler = std::function<void(Expected<InterfacesRemoved, Error>)>;
    Expected<Slot, Error> on_interfaces_added(InterfacesAddedHandler handler);
    Expected<Slot, Error> on_interfaces_removed(InterfacesRemovedHandler handler);

private:
    Proxy proxy_;
};

}  // namespace afbus
