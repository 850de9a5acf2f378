// Typed objects: the parts that do not depend on the handlers' types (afbus/typed_object.hpp has the
// templates).
#include "afbus/typed_object.hpp"

#include <algorithm>

namespace afbus {

namespace detail {

Error undecodable_call(const Message& call, std::string_view expected, WireError why) {
    return make_error(error_names::kInvalidArgs,
                      "Invalid arguments to " + std::string(call.interface()) + "." + std::string(call.member()) +
                          "() of signature '" + std::string(expected) + "': " + std::string(to_string(why)));
}

Error unreadable_property(std::string_view name, std::string_view expected, std::string_view got) {
    return make_error(error_names::kInvalidArgs, "Property '" + std::string(name) + "' has type '" +
                                                     std::string(expected) + "', not '" + std::string(got) + "'.");
}

}  // namespace detail

Expected<void, Error> Object::add(InterfaceBuilder interface) { return add(std::move(interface).build()); }

Expected<void, Error> Object::add(Interface interface) {
    std::string name = interface.name;
    auto slot = connection_->export_interface(path_, std::move(interface));
    if (!slot) return Unexpected(std::move(slot).error());
    exported_.push_back({std::move(name), std::move(*slot)});
    return {};
}

void Object::remove(std::string_view interface) {
    std::erase_if(exported_, [interface](const Exported& e) { return e.interface == interface; });
}

Expected<void, Error> Object::emit_properties_changed(std::string_view interface,
                                                      const std::vector<std::string>& names) {
    return connection_->emit_properties_changed(path_, interface, names);
}

}  // namespace afbus
