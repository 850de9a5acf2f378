// afbus-bench: BusClient over libafbus's Connection. A libafbus Slot is already the RAII registration
// the seam asks for; it is only wrapped.
#include "libafbus_client.hpp"

#include <utility>

#include "afbus/connection.hpp"
#include "bench_protocol.hpp"

namespace afbus::bench {
namespace {

std::string describe(const Error& e) {
    return e.name + ": " + e.message;
}

class SlotRegistration final : public Registration {
public:
    explicit SlotRegistration(Slot slot) : slot_(std::move(slot)) {}

private:
    Slot slot_;
};

RegistrationPtr wrap(Slot slot) {
    return std::make_unique<SlotRegistration>(std::move(slot));
}

Result<Message> build(MessageBuilder& builder, const char* what) {
    auto m = builder.build();
    if (!m) return failure(std::string("cannot build ") + what);
    return std::move(*m);
}

class LibafbusClient final : public BusClient {
public:
    explicit LibafbusClient(std::unique_ptr<Connection> connection) : conn_(std::move(connection)) {}

    [[nodiscard]] int fd() const override { return conn_->fd(); }
    [[nodiscard]] short poll_events() const override { return conn_->poll_events(); }
    Result<void> process() override {
        if (auto r = conn_->process(); !r) return failure("process: " + describe(r.error()));
        return {};
    }

    Result<void> ping() override {
        auto m = ping_message();
        if (!m) return failure(m.error());
        if (auto reply = conn_->call(std::move(*m)); !reply)
            return failure("Ping: " + describe(reply.error()));
        return {};
    }

    Result<RegistrationPtr> ping_async(CallDone done) override {
        auto m = ping_message();
        if (!m) return failure(m.error());
        auto slot = conn_->call_async(
            std::move(*m),
            [done = std::move(done)](Expected<Message, Error> reply) { done(reply.has_value()); });
        if (!slot) return failure("Ping: " + describe(slot.error()));
        return wrap(std::move(*slot));
    }

    Result<std::size_t> echo(std::span<const std::uint8_t> data) override {
        auto b = MessageBuilder::method_call(kServerName, kServerPath, kServerInterface, "Echo");
        append(b, data);
        auto m = build(b, "Echo");
        if (!m) return failure(m.error());
        auto reply = conn_->call(std::move(*m));
        if (!reply) return failure("Echo: " + describe(reply.error()));
        auto back = read_all<std::span<const std::uint8_t>>(*reply);
        if (!back) return failure("Echo: the reply is not ay");
        return std::get<0>(*back).size();
    }

    Result<RegistrationPtr> add_match_async(const std::string& rule, CallDone done) override {
        auto b = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                             "org.freedesktop.DBus", "AddMatch");
        append(b, rule);
        auto m = build(b, "AddMatch");
        if (!m) return failure(m.error());
        auto slot = conn_->call_async(
            std::move(*m),
            [done = std::move(done)](Expected<Message, Error> reply) { done(reply.has_value()); });
        if (!slot) return failure("AddMatch: " + describe(slot.error()));
        return wrap(std::move(*slot));
    }

    Result<RegistrationPtr> subscribe(const std::string& rule, SignalHandler handler) override {
        auto slot =
            conn_->subscribe(rule, [handler = std::move(handler)](const Message& m) { handler(m.member()); });
        if (!slot) return failure("AddMatch: " + describe(slot.error()));
        return wrap(std::move(*slot));
    }

    Result<void> emit(std::string_view member, const std::string& arg0, std::uint64_t seq) override {
        auto b = MessageBuilder::signal(kSignalPath, kSignalInterface, member);
        append(b, std::string_view(arg0), seq);
        auto m = build(b, "signal");
        if (!m) return failure(m.error());
        if (auto sent = conn_->send(std::move(*m)); !sent) return failure("emit: " + describe(sent.error()));
        return {};
    }

    RegistrationPtr batch_sends() override {
        struct Batch : Registration {
            explicit Batch(Connection::SendBatch b) : batch(std::move(b)) {}
            Connection::SendBatch batch;
        };
        return std::make_unique<Batch>(conn_->batch_sends());
    }

    Result<void> serve() override {
        if (auto r = conn_->run(); !r) return failure("run: " + describe(r.error()));
        return {};
    }

    Result<RegistrationPtr> serve_echo() override {
        Interface bench{std::string(kServerInterface), {}, {}, {}};
        bench.methods.push_back(
            {"Ping", {}, {}, [](const Message&, MessageBuilder&) -> Expected<void, Error> { return {}; }});
        bench.methods.push_back({"Echo",
                                 {{"data", "ay"}},
                                 {{"data", "ay"}},
                                 [](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                                     // Borrowed from the call, copied once into the reply.
                                     auto data = read_all<std::span<const std::uint8_t>>(call);
                                     if (!data)
                                         return Unexpected(make_error(error_names::kInvalidArgs, "not ay"));
                                     append(reply, std::get<0>(*data));
                                     return {};
                                 }});
        auto slot = conn_->export_interface(kServerPath, std::move(bench));
        if (!slot) return failure("export: " + describe(slot.error()));
        auto owner = conn_->request_name(kServerName, name_flags::kDoNotQueue);
        if (!owner) return failure("RequestName: " + describe(owner.error()));
        if (*owner != RequestNameReply::PrimaryOwner) return failure("RequestName: not the primary owner");
        return wrap(std::move(*slot));
    }

private:
    static Result<Message> ping_message() {
        auto b = MessageBuilder::method_call(kServerName, kServerPath, kServerInterface, "Ping");
        return build(b, "Ping");
    }

    std::unique_ptr<Connection> conn_;
};

}  // namespace

Result<std::unique_ptr<BusClient>> open_libafbus_client(const std::string& address) {
    auto c = Connection::open(address);
    if (!c) return failure("connect: " + describe(c.error()));
    return std::unique_ptr<BusClient>(std::make_unique<LibafbusClient>(std::move(*c)));
}

}  // namespace afbus::bench
