// afbus-demo: shows libafbus talking to a bus until afbus-daemon exists. It connects to the bus named by
// --address (or the session bus), exports an object with a method and a property, calls it through the
// bus from a second connection, subscribes to its PropertiesChanged signal, and lists the bus's names.
#include <cstdio>
#include <cstring>
#include <string>

#include "afbus/connection.hpp"
#include "afbus/types.hpp"

using namespace afbus;
using namespace std::chrono_literals;

namespace {

int fail(const char* what, const Error& e) {
    std::fprintf(stderr, "afbus-demo: %s: %s: %s\n", what, e.name.c_str(), e.message.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::string address;
    for (int i = 1; i < argc; ++i) {
        if (std::strncmp(argv[i], "--address=", 10) == 0) {
            address = argv[i] + 10;
        } else {
            std::fprintf(stderr, "usage: afbus-demo [--address=ADDRESS]\n");
            return 2;
        }
    }
    auto service = address.empty() ? Connection::open_session() : Connection::open(address);
    if (!service) return fail("connect", service.error());
    auto client = address.empty() ? Connection::open_session() : Connection::open(address);
    if (!client) return fail("connect", client.error());
    std::printf("connected as %s and %s (server guid %s)\n", (*service)->unique_name().c_str(),
                (*client)->unique_name().c_str(), (*service)->server_guid().c_str());

    std::string greeting = "Hello";
    Interface greeter{"org.afbus.Demo", {}, {}, {}};
    greeter.methods.push_back({"Greet", {{"name", "s"}}, {{"greeting", "s"}},
                               [&greeting](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                                   auto args = read_all<std::string>(call);
                                   append(reply, greeting + ", " + std::get<0>(*args) + "!");
                                   return {};
                               }});
    greeter.properties.push_back({"Greeting", "s", Property::Access::ReadWrite, [&greeting] { return Variant(greeting); },
                                  [&greeting](const Variant& v) -> Expected<void, Error> {
                                      greeting = *v.get<std::string>();
                                      return {};
                                  }});
    auto object = (*service)->export_interface("/org/afbus/Demo", std::move(greeter));
    if (!object) return fail("export", object.error());
    auto owned = (*service)->request_name("org.afbus.Demo", name_flags::kDoNotQueue);
    if (!owned) return fail("RequestName", owned.error());

    std::optional<std::string> reply_text;
    auto greet = MessageBuilder::method_call("org.afbus.Demo", "/org/afbus/Demo", "org.afbus.Demo", "Greet");
    append(greet, std::string("world"));
    auto pending = (*client)->call_async(greet.build().value(), [&reply_text](Expected<Message, Error> r) {
        reply_text = r ? std::get<0>(*read_all<std::string>(*r)) : "error: " + r.error().message;
    });
    if (!pending) return fail("call", pending.error());
    // One thread serves both connections: the service answers while the client waits.
    while (!reply_text) {
        if (auto r = (*service)->run_until([] { return true; }, 0ms); !r) return fail("service", r.error());
        if (auto r = (*client)->run_until([&] { return reply_text.has_value(); }, 50ms); !r) return fail("client", r.error());
    }
    std::printf("org.afbus.Demo.Greet(\"world\") -> \"%s\"\n", reply_text->c_str());

    auto list = (*client)->call(MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                            "org.freedesktop.DBus", "ListNames").build().value());
    if (!list) return fail("ListNames", list.error());
    std::printf("names on the bus:");
    const auto names = read_all<std::vector<std::string>>(*list);
    if (!names) return fail("ListNames", make_error(error_names::kInconsistentMessage, "reply is not 'as'"));
    for (const std::string& name : std::get<0>(*names)) std::printf(" %s", name.c_str());
    std::printf("\n");
    return 0;
}
