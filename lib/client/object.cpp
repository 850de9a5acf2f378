// Exported objects: method dispatch with signature checks, org.freedesktop.DBus.Properties,
// .Introspectable and .Peer.
#include "afbus/object.hpp"

#include <cassert>
#include <fstream>
#include <set>

#include "afbus/connection.hpp"
#include "afbus/introspection.hpp"
#include "connection_state.hpp"

namespace afbus {

using detail::ConnectionState;

std::optional<std::string> machine_id() {
    for (const char* file : {"/etc/machine-id", "/var/lib/dbus/machine-id"}) {
        std::ifstream in(file);
        std::string id;
        if (in >> id && id.size() == 32) return id;
    }
    return std::nullopt;
}

std::string joined_signature(const std::vector<Argument>& arguments) {
    std::string s;
    for (const Argument& a : arguments) s += a.signature;
    return s;
}

namespace {

constexpr std::string_view kPropertiesInterface = "org.freedesktop.DBus.Properties";
constexpr std::string_view kIntrospectableInterface = "org.freedesktop.DBus.Introspectable";
constexpr std::string_view kPeerInterface = "org.freedesktop.DBus.Peer";
constexpr std::string_view kObjectManagerInterface = "org.freedesktop.DBus.ObjectManager";

std::vector<IntrospectionArg> named_args(const std::vector<Argument>& args) {
    std::vector<IntrospectionArg> out;
    out.reserve(args.size());
    for (const Argument& a : args) out.push_back({a.name, a.signature});
    return out;
}

std::string introspect(const ConnectionState& state, std::string_view path) {
    IntrospectionXml xml;
    bool has_interfaces = false;
    std::set<std::string> children;
    if (state.manages(path)) {
        has_interfaces = true;
        xml.begin_interface(kObjectManagerInterface);
        const IntrospectionArg managed[] = {{"objpath_interfaces_and_properties", "a{oa{sa{sv}}}"}};
        xml.method("GetManagedObjects", {}, managed);
        const IntrospectionArg added[] = {{"object_path", "o"}, {"interfaces_and_properties", "a{sa{sv}}"}};
        xml.signal("InterfacesAdded", added);
        const IntrospectionArg removed[] = {{"object_path", "o"}, {"interfaces", "as"}};
        xml.signal("InterfacesRemoved", removed);
        xml.end_interface();
    }
    const std::string prefix = path == "/" ? "/" : std::string(path) + "/";
    for (const auto& [id, e] : state.exports) {
        if (e.path == path) {
            has_interfaces = true;
            const Interface& iface = *e.interface;
            xml.begin_interface(iface.name);
            for (const Method& m : iface.methods) xml.method(m.name, named_args(m.in), named_args(m.out));
            for (const SignalDescription& s : iface.signals) xml.signal(s.name, named_args(s.args));
            for (const Property& p : iface.properties) {
                xml.property(p.name, p.signature,
                             p.access == Property::Access::Read    ? "read"
                             : p.access == Property::Access::Write ? "write"
                                                                   : "readwrite");
            }
            xml.end_interface();
        } else if (e.path.starts_with(prefix)) {
            const std::string_view rest = std::string_view(e.path).substr(prefix.size());
            children.insert(std::string(rest.substr(0, rest.find('/'))));
        }
    }
    if (has_interfaces) xml.standard_interfaces();
    for (const std::string& child : children) xml.child_node(child);
    return xml.finish();
}

const Property* find_property(const Interface& iface, std::string_view name) {
    for (const Property& p : iface.properties)
        if (p.name == name) return &p;
    return nullptr;
}

}  // namespace

std::map<std::string, Variant> detail::readable_properties(const Interface& interface) {
    std::map<std::string, Variant> all;
    for (const Property& p : interface.properties)
        if (p.access != Property::Access::Write && p.get) all.emplace(p.name, p.get());
    return all;
}

void ConnectionState::dispatch_method_call(const Message& call) {
    const std::string_view path = call.path();
    const std::string_view iface_name = call.interface();
    const std::string_view member = call.member();

    // Interfaces at this path, kept alive while handlers run (they may unexport themselves).
    std::vector<std::shared_ptr<const Interface>> interfaces;
    bool has_children = false;
    const std::string prefix = path == "/" ? "/" : std::string(path) + "/";
    for (const auto& [id, e] : exports) {
        if (e.path == path) interfaces.push_back(e.interface);
        else if (e.path.starts_with(prefix)) has_children = true;
    }

    auto reply = MessageBuilder::method_return(call);
    std::optional<Error> error;
    auto finish = [&] {
        if (!call.expects_reply()) return;
        if (error) {
            auto m = MessageBuilder::error(call, error->name, error->message).build();
            if (m) (void)send(std::move(*m));
            return;
        }
        auto m = reply.build();
        if (m) {
            (void)send(std::move(*m));
        } else {
            auto e = MessageBuilder::error(call, error_names::kFailed,
                                           "Could not build the reply: " + std::string(to_string(m.error()))).build();
            if (e) (void)send(std::move(*e));
        }
    };
    auto fail = [&](std::string_view name, std::string text) {
        error = make_error(name, std::move(text));
        finish();
    };

    if (iface_name == kPeerInterface) {
        if (member == "Ping" && call.signature().empty()) return finish();
        if (member == "GetMachineId" && call.signature().empty()) {
            append(reply, machine_id().value_or(""));
            return finish();
        }
        return fail(error_names::kUnknownMethod, "Unknown method '" + std::string(member) + "' on org.freedesktop.DBus.Peer");
    }
    const bool manager_here = manages(path);
    if (manager_here && (iface_name == kObjectManagerInterface || (iface_name.empty() && member == "GetManagedObjects"))) {
        if (member != "GetManagedObjects" || !call.signature().empty()) {
            return fail(error_names::kUnknownMethod, "Unknown method '" + std::string(member) + "' on " +
                                                         std::string(kObjectManagerInterface));
        }
        append(reply, managed_objects(path));
        return finish();
    }
    if (interfaces.empty() && !manager_here && !(has_children && iface_name == kIntrospectableInterface) &&
        !(has_children && iface_name.empty() && member == "Introspect")) {
        return fail(error_names::kUnknownObject, "Unknown object '" + std::string(path) + "'.");
    }
    if (iface_name == kIntrospectableInterface || (iface_name.empty() && member == "Introspect")) {
        if (member != "Introspect" || !call.signature().empty())
            return fail(error_names::kUnknownMethod, "Unknown method '" + std::string(member) + "'");
        append(reply, introspect(*this, path));
        return finish();
    }
    if (iface_name == kPropertiesInterface) {
        auto find_interface = [&](std::string_view name) -> const Interface* {
            for (const auto& i : interfaces)
                if (i->name == name) return i.get();
            return nullptr;
        };
        MessageReader r(call);
        std::string interface, property;
        if (member == "Get" && call.signature() == "ss" && read(r, interface, property)) {
            const Interface* i = find_interface(interface);
            if (!i) return fail(error_names::kUnknownInterface, "Unknown interface '" + interface + "'.");
            const Property* p = find_property(*i, property);
            if (!p) return fail(error_names::kUnknownProperty, "Unknown property '" + property + "'.");
            if (p->access == Property::Access::Write || !p->get)
                return fail(error_names::kAccessDenied, "Property '" + property + "' is not readable.");
            append(reply, p->get());
            return finish();
        }
        if (member == "GetAll" && call.signature() == "s" && read(r, interface)) {
            const Interface* i = find_interface(interface);
            if (!i) return fail(error_names::kUnknownInterface, "Unknown interface '" + interface + "'.");
            append(reply, readable_properties(*i));
            return finish();
        }
        Variant value;
        if (member == "Set" && call.signature() == "ssv" && read(r, interface, property, value)) {
            const Interface* i = find_interface(interface);
            if (!i) return fail(error_names::kUnknownInterface, "Unknown interface '" + interface + "'.");
            const Property* p = find_property(*i, property);
            if (!p) return fail(error_names::kUnknownProperty, "Unknown property '" + property + "'.");
            if (p->access == Property::Access::Read || !p->set)
                return fail(error_names::kPropertyReadOnly, "Property '" + property + "' is not writable.");
            if (value.type() != p->signature) {
                return fail(error_names::kInvalidArgs, "Property '" + property + "' has type '" + p->signature +
                                                           "', not '" + std::string(value.type()) + "'.");
            }
            if (auto set = p->set(value); !set) {
                error = set.error();
                return finish();
            }
            return finish();
        }
        return fail(error_names::kInvalidArgs, "Invalid arguments for '" + std::string(member) + "' of org.freedesktop.DBus.Properties");
    }

    const Method* method = nullptr;
    bool interface_known = iface_name.empty();
    for (const auto& i : interfaces) {
        if (!iface_name.empty() && i->name != iface_name) continue;
        interface_known = true;
        for (const Method& m : i->methods) {
            if (m.name == member) {
                method = &m;
                break;
            }
        }
        if (method) break;
    }
    if (!interface_known) return fail(error_names::kUnknownInterface, "Unknown interface '" + std::string(iface_name) + "'.");
    if (!method) {
        return fail(error_names::kUnknownMethod, "Unknown method '" + std::string(member) + "' or interface '" +
                                                     std::string(iface_name) + "'.");
    }
    const std::string expected = joined_signature(method->in);
    if (call.signature() != expected) {
        return fail(error_names::kInvalidArgs, "Invalid arguments '" + std::string(call.signature()) + "' to call " +
                                                   std::string(iface_name) + "." + std::string(member) +
                                                   "(), expecting '" + expected + "'.");
    }
    // Keep the interface alive during the handler.
    std::shared_ptr<const Interface> owner;
    for (const auto& i : interfaces)
        for (const Method& m : i->methods)
            if (&m == method) owner = i;
    if (method->deferred) return method->deferred(call, MethodReply(weak_from_this(), call));
    if (auto r = method->handler(call, reply); !r) error = r.error();
    finish();
}

Expected<Slot, Error> Connection::export_interface(std::string_view path, Interface interface) {
    if (!is_valid_object_path(path)) return Unexpected(make_error(error_names::kInvalidArgs, "Invalid object path '" + std::string(path) + "'"));
    if (!is_valid_interface_name(interface.name))
        return Unexpected(make_error(error_names::kInvalidArgs, "Invalid interface name '" + interface.name + "'"));
    for (const auto& [id, e] : state_->exports) {
        if (e.path == path && e.interface->name == interface.name)
            return Unexpected(make_error(error_names::kInvalidArgs, "Interface '" + interface.name + "' is already exported at " + std::string(path)));
    }
    const std::uint64_t id = state_->next_id++;
    auto exported = std::make_shared<const Interface>(std::move(interface));
    state_->exports.emplace(id, ConnectionState::Export{std::string(path), exported});
    state_->announce_interface(path, *exported, ConnectionState::Change::Added);
    return Slot(state_, id);
}

Expected<void, Error> Connection::emit_properties_changed(std::string_view path, std::string_view interface,
                                                         const std::vector<std::string>& names) {
    const Interface* found = nullptr;
    for (const auto& [id, e] : state_->exports)
        if (e.path == path && e.interface->name == interface) found = e.interface.get();
    if (!found) return Unexpected(make_error(error_names::kUnknownInterface, "Interface not exported at this path"));
    std::map<std::string, Variant> changed;
    std::vector<std::string> invalidated;
    for (const std::string& name : names) {
        const Property* p = find_property(*found, name);
        if (!p) return Unexpected(make_error(error_names::kUnknownProperty, "Unknown property '" + name + "'."));
        if (p->get) changed.emplace(name, p->get());
        else invalidated.push_back(name);
    }
    auto b = MessageBuilder::signal(path, kPropertiesInterface, "PropertiesChanged");
    append(b, interface, changed, invalidated);
    auto m = b.build();
    if (!m) return Unexpected(make_error(error_names::kInvalidArgs, std::string(to_string(m.error()))));
    auto sent = send(std::move(*m));
    if (!sent) return Unexpected(sent.error());
    return {};
}

// --- MethodReply ---

MethodReply::MethodReply(std::weak_ptr<detail::ConnectionState> connection, const Message& call)
    : connection_(std::move(connection)),
      caller_(call.sender()),
      // A call may leave the interface out.
      method_(call.interface().empty() ? std::string(call.member())
                                       : std::string(call.interface()) + "." + std::string(call.member())),
      serial_(call.serial()),
      expects_reply_(call.expects_reply()),
      pending_(true) {}

MethodReply::MethodReply(MethodReply&& other) noexcept
    : connection_(std::move(other.connection_)),
      caller_(std::move(other.caller_)),
      method_(std::move(other.method_)),
      serial_(other.serial_),
      expects_reply_(other.expects_reply_),
      pending_(std::exchange(other.pending_, false)) {}

MethodReply& MethodReply::operator=(MethodReply&& other) noexcept {
    if (this != &other) {
        if (pending_) (void)send_error(make_error(error_names::kNoReply, method_ + " was not answered"));
        connection_ = std::move(other.connection_);
        caller_ = std::move(other.caller_);
        method_ = std::move(other.method_);
        serial_ = other.serial_;
        expects_reply_ = other.expects_reply_;
        pending_ = std::exchange(other.pending_, false);
    }
    return *this;
}

MethodReply::~MethodReply() {
    if (pending_) (void)send_error(make_error(error_names::kNoReply, method_ + " was dropped without a reply"));
}

MessageBuilder MethodReply::start() const { return MessageBuilder::method_return(caller_, serial_); }

Expected<void, Error> MethodReply::send(MessageBuilder reply) { return answer(std::move(reply)); }

Expected<void, Error> MethodReply::send_error(const Error& error) {
    return answer(MessageBuilder::error(caller_, serial_, error.name, error.message));
}

Expected<void, Error> MethodReply::answer(MessageBuilder message) {
    assert(pending_ && "a method call is answered once");
    if (!pending_) return Unexpected(make_error(error_names::kFailed, method_ + " was answered already"));
    pending_ = false;
    if (!expects_reply_) return {};
    const auto connection = connection_.lock();
    if (!connection || !connection->connected)
        return Unexpected(make_error(error_names::kDisconnected, "The connection of " + method_ + " is gone"));
    auto built = std::move(message).build();
    if (!built) {
        // The caller still gets an answer: the results could not be marshalled (bad UTF-8, a bad path).
        auto failed = MessageBuilder::error(caller_, serial_, error_names::kFailed,
                                            "Could not build the reply of " + method_ + ": " +
                                                std::string(to_string(built.error())))
                          .build();
        if (failed) (void)connection->send(std::move(*failed));
        return Unexpected(make_error(error_names::kInvalidArgs, std::string(to_string(built.error()))));
    }
    auto sent = connection->send(std::move(*built));
    if (!sent) return Unexpected(std::move(sent).error());
    return {};
}

}  // namespace afbus
