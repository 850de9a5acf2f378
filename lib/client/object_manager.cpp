// org.freedesktop.DBus.ObjectManager: what a connection serves at a manager's path (GetManagedObjects,
// InterfacesAdded, InterfacesRemoved), and ObjectManagerProxy, the client.
#include "afbus/object_manager.hpp"

#include "connection_state.hpp"

namespace afbus {

using detail::ConnectionState;

namespace {

// True when `path` lies strictly below `ancestor` ("/" is above every other path).
bool below(std::string_view path, std::string_view ancestor) {
    if (ancestor == "/") return path != "/";
    return path.size() > ancestor.size() && path.starts_with(ancestor) && path[ancestor.size()] == '/';
}

}  // namespace

bool ConnectionState::manages(std::string_view path) const {
    for (const auto& [id, manager_path] : object_managers)
        if (manager_path == path) return true;
    return false;
}

std::map<ObjectPath, std::map<std::string, std::map<std::string, Variant>>> ConnectionState::managed_objects(
    std::string_view manager_path) const {
    std::map<ObjectPath, std::map<std::string, std::map<std::string, Variant>>> objects;
    for (const auto& [id, e] : exports)
        if (below(e.path, manager_path))
            objects[ObjectPath(e.path)].emplace(e.interface->name, readable_properties(*e.interface));
    return objects;
}

void ConnectionState::announce_interface(std::string_view path, const Interface& interface, Change change) {
    for (const auto& [id, manager_path] : object_managers) {
        if (!below(path, manager_path)) continue;
        auto signal = MessageBuilder::signal(manager_path, kObjectManagerInterface,
                                             change == Change::Added ? "InterfacesAdded" : "InterfacesRemoved");
        if (change == Change::Added) {
            append(signal, ObjectPath(std::string(path)),
                   InterfacesAndProperties{{interface.name, readable_properties(interface)}});
        } else {
            append(signal, ObjectPath(std::string(path)), std::vector<std::string>{interface.name});
        }
        // Best effort, like every signal: a full or closed connection loses it.
        if (auto m = std::move(signal).build()) (void)send(std::move(*m));
    }
}

Expected<Slot, Error> Connection::add_object_manager(std::string_view path) {
    if (!is_valid_object_path(path))
        return Unexpected(make_error(error_names::kInvalidArgs, "Invalid object path '" + std::string(path) + "'"));
    if (state_->manages(path)) {
        return Unexpected(make_error(error_names::kInvalidArgs,
                                     "An object manager is already at " + std::string(path)));
    }
    const std::uint64_t id = state_->next_id++;
    state_->object_managers.emplace(id, std::string(path));
    return Slot(state_, id);
}

// --- ObjectManagerProxy ---

ObjectManagerProxy::ObjectManagerProxy(Connection& connection, std::string destination, std::string path)
    : proxy_(connection, std::move(destination), std::move(path)) {}

Expected<ManagedObjects, Error> ObjectManagerProxy::get_managed_objects(const CallOptions& options) {
    return proxy_.call<ManagedObjects>(options, kObjectManagerInterface, "GetManagedObjects");
}

Expected<Slot, Error> ObjectManagerProxy::on_interfaces_added(InterfacesAddedHandler handler) {
    return proxy_.on_signal<ObjectPath, InterfacesAndProperties>(
        kObjectManagerInterface, "InterfacesAdded",
        [handler = std::move(handler)](Expected<std::tuple<ObjectPath, InterfacesAndProperties>, Error> args) {
            if (!args) return handler(Unexpected(std::move(args).error()));
            auto& [path, interfaces] = *args;
            handler(InterfacesAdded{std::move(path), std::move(interfaces)});
        });
}

Expected<Slot, Error> ObjectManagerProxy::on_interfaces_removed(InterfacesRemovedHandler handler) {
    return proxy_.on_signal<ObjectPath, std::vector<std::string>>(
        kObjectManagerInterface, "InterfacesRemoved",
        [handler = std::move(handler)](Expected<std::tuple<ObjectPath, std::vector<std::string>>, Error> args) {
            if (!args) return handler(Unexpected(std::move(args).error()));
            auto& [path, interfaces] = *args;
            handler(InterfacesRemoved{std::move(path), std::move(interfaces)});
        });
}

}  // namespace afbus
