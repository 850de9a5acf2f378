// afbus-bench: BusClient over libsystemd's sd-bus, used the way an sd-bus application would: a private
// connection (sd_bus_new + sd_bus_set_address + sd_bus_set_bus_client + sd_bus_start), sd_bus_call for
// blocking calls, sd_bus_call_method_async for pipelined ones, sd_bus_add_match for subscriptions,
// sd_bus_emit_signal, and an object vtable for the echo server. Every sd-bus object is owned by a
// unique_ptr whose deleter drops sd-bus's reference.
#include "sdbus_client.hpp"

#include <poll.h>
#include <systemd/sd-bus.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "bench_protocol.hpp"

namespace afbus::bench {
namespace {

struct BusDeleter {
    // Flushes first, as an application closing its connection would: nothing it sent is lost.
    void operator()(sd_bus* bus) const noexcept { sd_bus_flush_close_unref(bus); }
};
struct MessageDeleter {
    void operator()(sd_bus_message* m) const noexcept { sd_bus_message_unref(m); }
};
struct SlotDeleter {
    // Unregisters: a pending call is cancelled, a match removed, an object vtable taken down.
    void operator()(sd_bus_slot* slot) const noexcept { sd_bus_slot_unref(slot); }
};
using BusPtr = std::unique_ptr<sd_bus, BusDeleter>;
using MessagePtr = std::unique_ptr<sd_bus_message, MessageDeleter>;
using SlotPtr = std::unique_ptr<sd_bus_slot, SlotDeleter>;

// An sd_bus_error that frees itself.
struct BusError {
    sd_bus_error error{};  // SD_BUS_ERROR_NULL, without its C compound literal (clang refuses that in C++)
    BusError() = default;
    BusError(const BusError&) = delete;
    BusError& operator=(const BusError&) = delete;
    ~BusError() { sd_bus_error_free(&error); }
    [[nodiscard]] std::string describe(int r) const {
        if (sd_bus_error_is_set(&error))
            return std::string(error.name) + ": " + (error.message ? error.message : "");
        return std::strerror(-r);
    }
};

std::string errno_text(int r) {
    return std::strerror(-r);
}

// The protocol's names as C strings: the constants are string literals, so data() is NUL-terminated.
const char* c_str(std::string_view literal) {
    return literal.data();
}

constexpr const char* kDbusName = "org.freedesktop.DBus";
constexpr const char* kDbusPath = "/org/freedesktop/DBus";

// A registration that owns an sd-bus slot and, when the slot has a callback, the callback's state. The
// slot is declared last so that it is dropped first: no callback can run once its state is gone.
template <class State>
class SlotRegistration final : public Registration {
public:
    explicit SlotRegistration(State state) : state_(std::make_unique<State>(std::move(state))) {}
    [[nodiscard]] State* state() const { return state_.get(); }
    void own(sd_bus_slot* slot) { slot_.reset(slot); }

private:
    std::unique_ptr<State> state_;
    SlotPtr slot_;
};

struct NoState {};

int on_call_done(sd_bus_message* reply, void* userdata, sd_bus_error*) {
    (*static_cast<BusClient::CallDone*>(userdata))(!sd_bus_message_is_method_error(reply, nullptr));
    return 0;
}

int on_signal(sd_bus_message* m, void* userdata, sd_bus_error*) {
    const char* member = sd_bus_message_get_member(m);
    (*static_cast<BusClient::SignalHandler*>(userdata))(member ? member : "");
    return 0;
}

int on_ping(sd_bus_message* call, void*, sd_bus_error*) {
    return sd_bus_reply_method_return(call, nullptr);
}

int on_echo(sd_bus_message* call, void*, sd_bus_error*) {
    // Borrowed from the call, copied once into the reply (as the libafbus server does).
    const void* data = nullptr;
    std::size_t size = 0;
    if (int r = sd_bus_message_read_array(call, 'y', &data, &size); r < 0) return r;
    sd_bus_message* raw = nullptr;
    if (int r = sd_bus_message_new_method_return(call, &raw); r < 0) return r;
    MessagePtr reply(raw);
    if (int r = sd_bus_message_append_array(reply.get(), 'y', data, size); r < 0) return r;
    if (int r = sd_bus_send(nullptr, reply.get(), nullptr); r < 0) return r;
    return 1;
}

// SD_BUS_VTABLE_UNPRIVILEGED: anyone may call them, as with the libafbus server. Without it, sd-bus checks
// every call's sender on a connection it does not trust (one made with sd_bus_new, unlike
// sd_bus_open_user's) with a blocking GetConnectionUnixUser call to the bus: a third routed message per
// call (seen with strace), work the libafbus server does not do.
const sd_bus_vtable kEchoVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Ping", "", "", on_ping, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Echo", "ay", "ay", on_echo, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

class SdBusClient final : public BusClient {
public:
    explicit SdBusClient(BusPtr bus) : bus_(std::move(bus)) {}

    [[nodiscard]] int fd() const override { return sd_bus_get_fd(bus_.get()); }
    [[nodiscard]] short poll_events() const override {
        const int events = sd_bus_get_events(bus_.get());
        return static_cast<short>(events < 0 ? POLLIN : events);
    }
    Result<void> process() override {
        // sd_bus_process handles one message (or one unit of work) per call: loop until it has none left.
        int r;
        while ((r = sd_bus_process(bus_.get(), nullptr)) > 0) {
        }
        if (r < 0) return failure("sd_bus_process: " + errno_text(r));
        return {};
    }

    Result<void> ping() override {
        BusError error;
        sd_bus_message* raw = nullptr;
        const int r = sd_bus_call_method(bus_.get(), c_str(kServerName), c_str(kServerPath),
                                         c_str(kServerInterface), "Ping", &error.error, &raw, "");
        MessagePtr reply(raw);
        if (r < 0) return failure("Ping: " + error.describe(r));
        return {};
    }

    Result<RegistrationPtr> ping_async(CallDone done) override {
        auto registration = std::make_unique<SlotRegistration<CallDone>>(std::move(done));
        sd_bus_slot* slot = nullptr;
        const int r = sd_bus_call_method_async(bus_.get(), &slot, c_str(kServerName), c_str(kServerPath),
                                               c_str(kServerInterface), "Ping", on_call_done,
                                               registration->state(), "");
        if (r < 0) return failure("Ping: " + errno_text(r));
        registration->own(slot);
        return RegistrationPtr(std::move(registration));
    }

    Result<std::size_t> echo(std::span<const std::uint8_t> data) override {
        sd_bus_message* raw = nullptr;
        int r = sd_bus_message_new_method_call(bus_.get(), &raw, c_str(kServerName), c_str(kServerPath),
                                               c_str(kServerInterface), "Echo");
        MessagePtr call(raw);
        if (r < 0) return failure("Echo: " + errno_text(r));
        if ((r = sd_bus_message_append_array(call.get(), 'y', data.data(), data.size())) < 0)
            return failure("Echo: " + errno_text(r));
        BusError error;
        raw = nullptr;
        r = sd_bus_call(bus_.get(), call.get(), 0, &error.error, &raw);
        MessagePtr reply(raw);
        if (r < 0) return failure("Echo: " + error.describe(r));
        const void* back = nullptr;
        std::size_t size = 0;
        if ((r = sd_bus_message_read_array(reply.get(), 'y', &back, &size)) < 0)
            return failure("Echo: the reply is not ay: " + errno_text(r));
        return size;
    }

    Result<RegistrationPtr> add_match_async(const std::string& rule, CallDone done) override {
        // A plain AddMatch call, as libafbus's client sends it: sd_bus_add_match_async would also build a
        // local match for every rule, work the other client does not do.
        auto registration = std::make_unique<SlotRegistration<CallDone>>(std::move(done));
        sd_bus_slot* slot = nullptr;
        const int r = sd_bus_call_method_async(bus_.get(), &slot, kDbusName, kDbusPath, kDbusName, "AddMatch",
                                               on_call_done, registration->state(), "s", rule.c_str());
        if (r < 0) return failure("AddMatch: " + errno_text(r));
        registration->own(slot);
        return RegistrationPtr(std::move(registration));
    }

    Result<RegistrationPtr> subscribe(const std::string& rule, SignalHandler handler) override {
        auto registration = std::make_unique<SlotRegistration<SignalHandler>>(std::move(handler));
        sd_bus_slot* slot = nullptr;
        // Synchronous: returns once the bus has accepted the rule.
        const int r = sd_bus_add_match(bus_.get(), &slot, rule.c_str(), on_signal, registration->state());
        if (r < 0) return failure("AddMatch: " + errno_text(r));
        registration->own(slot);
        return RegistrationPtr(std::move(registration));
    }

    Result<void> emit(std::string_view member, const std::string& arg0, std::uint64_t seq) override {
        const std::string member_text(member);
        const int r = sd_bus_emit_signal(bus_.get(), c_str(kSignalPath), c_str(kSignalInterface),
                                         member_text.c_str(), "st", arg0.c_str(), static_cast<uint64_t>(seq));
        if (r < 0) return failure("emit: " + errno_text(r));
        return {};
    }

    Result<RegistrationPtr> serve_echo() override {
        auto registration = std::make_unique<SlotRegistration<NoState>>(NoState{});
        sd_bus_slot* slot = nullptr;
        int r = sd_bus_add_object_vtable(bus_.get(), &slot, c_str(kServerPath), c_str(kServerInterface),
                                         kEchoVtable, nullptr);
        if (r < 0) return failure("export: " + errno_text(r));
        registration->own(slot);
        // Without SD_BUS_NAME_QUEUE sd-bus asks with DBUS_NAME_FLAG_DO_NOT_QUEUE; 1 means primary owner.
        r = sd_bus_request_name(bus_.get(), c_str(kServerName), 0);
        if (r < 0) return failure("RequestName: " + errno_text(r));
        if (r != 1) return failure("RequestName: not the primary owner");
        return RegistrationPtr(std::move(registration));
    }

private:
    BusPtr bus_;
};

}  // namespace

Result<std::unique_ptr<BusClient>> open_sdbus_client(const std::string& address) {
    sd_bus* raw = nullptr;
    int r = sd_bus_new(&raw);
    if (r < 0) return failure("sd_bus_new: " + errno_text(r));
    BusPtr bus(raw);
    if ((r = sd_bus_set_address(bus.get(), address.c_str())) < 0)
        return failure("sd_bus_set_address: " + errno_text(r));
    if ((r = sd_bus_set_bus_client(bus.get(), 1)) < 0)
        return failure("sd_bus_set_bus_client: " + errno_text(r));
    if ((r = sd_bus_start(bus.get())) < 0) return failure("sd_bus_start: " + errno_text(r));
    // sd_bus_start returns before authentication and Hello; this waits for both, so that a connection
    // is "open" at the same point as libafbus's Connection::open.
    const char* unique = nullptr;
    if ((r = sd_bus_get_unique_name(bus.get(), &unique)) < 0)
        return failure("connect (Hello): " + errno_text(r));
    return std::unique_ptr<BusClient>(std::make_unique<SdBusClient>(std::move(bus)));
}

}  // namespace afbus::bench
