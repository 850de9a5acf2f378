// The whole bus model (daemon/bus.*: names, matches, replies, the driver, policy, monitors) driven through
// the delivery seam by fake peers, the way a delivery mode drives it: connections, authentication,
// messages, disconnections and flushes, interleaved as the input says. After every step it checks what a
// client of the bus relies on (issue 17, item 5):
//   - no crash, no sanitizer report;
//   - a call the bus routed to a peer that then left is answered: by the callee, or by the bus (NoReply);
//   - the driver answers every call that expects a reply, once;
//   - nothing policy forbids reaches a peer: no org.fuzz.Denied message from a client, no org.fuzz.I.Hidden
//     (monitors excepted: they see refused traffic, as dbus-monitor does).
// The input is a program of operations (see step()); a message is either built from the input's choices
// among names, members and arguments, or taken as raw bytes and parsed (seeds: captures of the
// integration tests' traffic).
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "afbus/decoder.hpp"
#include "afbus/message.hpp"
#include "afbus/types.hpp"
#include "bus.hpp"
#include "config.hpp"
#include "fuzz_bus_model.hpp"
#include "fuzz_check.hpp"
#include "log.hpp"
#include "policy_engine.hpp"

namespace afbus::daemon {
namespace {

using fuzz::check;

constexpr std::string_view kBusName = "org.freedesktop.DBus";

fuzz::BusModelDeliveryTrace& delivery_trace() {
    static fuzz::BusModelDeliveryTrace trace;
    return trace;
}

// The model's deliveries, per peer, as the fake delivery mode records them.
class FuzzDelivery final : public Delivery {
public:
    FuzzDelivery(EventLoop&, DeliveryEvents&, ConnectionSettings) {}

    void configure(const ConnectionSettings&) override {}
    QueueLoad queued(PeerId peer) const override {
        auto it = queued_.find(peer);
        return it == queued_.end() ? QueueLoad{} : it->second;
    }
    bool passes_fds(PeerId) const override { return true; }
    QueueLoad deliver(PeerId peer, std::shared_ptr<const Message> message) override {
        check(!detached.contains(peer), "a message for a peer the model let go");
        QueueLoad& q = queued_[peer];
        ++q.messages;
        q.bytes += message->size();
        delivered.push_back({peer, std::move(message)});
        return q;
    }
    void flush() override { queued_.clear(); }
    void detach(PeerId peer) override {
        detached.insert(peer);
        queued_.erase(peer);
    }
    void became_monitor(PeerId peer, const std::vector<MatchRule>&) noexcept override { monitors.insert(peer); }

    struct Delivered {
        PeerId peer;
        std::shared_ptr<const Message> message;
    };
    std::vector<Delivered> delivered;  // since the last step
    std::set<PeerId> detached;
    std::set<PeerId> monitors;

private:
    std::map<PeerId, QueueLoad> queued_;
};

// Reads the fuzzer's bytes as choices; past the end every choice is 0.
class Input {
public:
    explicit Input(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
    [[nodiscard]] bool done() const { return pos_ >= bytes_.size(); }
    std::uint8_t byte() { return done() ? 0 : bytes_[pos_++]; }
    std::size_t pick(std::size_t n) { return n == 0 ? 0 : byte() % n; }
    std::uint32_t u32() {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v = (v << 8) | byte();
        return v;
    }
    std::span<const std::uint8_t> take(std::size_t n) {
        n = std::min(n, bytes_.size() - std::min(pos_, bytes_.size()));
        auto s = bytes_.subspan(pos_, n);
        pos_ += n;
        return s;
    }

private:
    std::span<const std::uint8_t> bytes_;
    std::size_t pos_ = 0;
};

// dbus-daemon's default session policy plus two denials the invariants look for.
constexpr const char* kConfig = R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <allow user="*"/>
    <deny send_interface="org.fuzz.Denied"/>
    <deny receive_interface="org.fuzz.I" receive_member="Hidden"/>
  </policy>
  <limit name="max_replies_per_connection">8</limit>
  <limit name="max_match_rules_per_connection">16</limit>
  <limit name="max_names_per_connection">8</limit>
</busconfig>
)";

// Parsed once: every input starts a bus with the same settings.
const BusSettings& fuzz_settings() {
    static const BusSettings settings = [] {
        auto config = parse_config(kConfig, "fuzz.conf", "/");
        if (!config) std::fprintf(stderr, "fuzz.conf: %s\n", config.error().to_string().c_str());
        check(config.has_value(), "the fuzz configuration parses");
        auto engine = policy::PolicyEngine::load(config->policy_image);
        check(engine.has_value(), "the fuzz policy loads");
        BusSettings s;
        s.limits = config->limits;
        s.policy = std::make_shared<policy::PolicyEngine>(std::move(*engine));
        return s;
    }();
    return settings;
}

const std::vector<std::string> kDriverMethods = {
    "Hello", "RequestName", "ReleaseName", "ListNames", "ListActivatableNames", "NameHasOwner", "GetNameOwner",
    "ListQueuedOwners", "AddMatch", "RemoveMatch", "StartServiceByName", "GetConnectionUnixUser",
    "GetConnectionUnixProcessID", "GetConnectionCredentials", "GetId", "BecomeMonitor", "GetAdtAuditSessionData",
    "GetConnectionSELinuxSecurityContext", "UpdateActivationEnvironment", "Ping", "GetMachineId", "Introspect",
    "Get", "GetAll", "Set", "GetStats", "GetConnectionStats", "GetAllMatchRules", "NoSuchMethod"};
const std::vector<std::string> kInterfaces = {"org.freedesktop.DBus", "org.freedesktop.DBus.Peer",
                                              "org.freedesktop.DBus.Introspectable", "org.freedesktop.DBus.Properties",
                                              "org.freedesktop.DBus.Monitoring", "org.freedesktop.DBus.Debug.Stats",
                                              "org.fuzz.I", "org.fuzz.Denied"};
const std::vector<std::string> kWellKnown = {"org.fuzz.A", "org.fuzz.B", "org.fuzz.A.Sub", "org.freedesktop.DBus",
                                             "org.fuzz.Activatable"};
const std::vector<std::string> kMembers = {"M", "Tick", "Hidden", "NameOwnerChanged", "Changed"};
const std::vector<std::string> kRules = {"",
                                         "type='signal'",
                                         "type='signal',interface='org.fuzz.I'",
                                         "member='Hidden'",
                                         "eavesdrop='true'",
                                         "type='method_call',eavesdrop='true'",
                                         "arg0='org.fuzz.A'",
                                         "arg0namespace='org.fuzz'",
                                         "path_namespace='/org'",
                                         "sender='org.fuzz.A'",
                                         "destination=':1.0'",
                                         "type='error'",
                                         "type='bogus'"};

class ModelFuzzer {
public:
    ModelFuzzer() : bus_(loop_, fuzz_settings()), delivery_(bus_.use_delivery<FuzzDelivery>()), events_(bus_) {}

    void run(Input& in) {
        for (int steps = 0; !in.done() && steps < 256; ++steps) {
            step(in);
            check_deliveries();
        }
        // Everyone leaves: every call still owed gets its NoReply.
        for (const auto& [id, peer] : peers_) {
            if (!peer.gone) events_.peer_failed(id, "fuzz: end");
        }
        for (auto& [id, peer] : peers_) peer.gone = true;
        check_deliveries();
        for (const auto& [key, owed] : owed_)
            check(peers_.at(owed.caller).gone, "a call routed to a peer that left is answered");
    }

private:
    struct FakePeer {
        std::string unique_name;  // after Hello
        bool gone = false;
        std::uint32_t next_serial = 1;
    };
    // A call the model routed to a peer, owed to its caller.
    struct Owed {
        PeerId caller;
        PeerId callee;
    };

    void step(Input& in) {
        switch (in.pick(8)) {
            case 0:
                connect(in);
                break;
            case 1:
                if (PeerId* p = some_peer(in)) {
                    fail(*p);
                }
                break;
            case 2:
                delivery_.flush();
                break;
            case 3:
                if (PeerId* p = some_peer(in)) send_raw(*p, in);
                break;
            default:
                if (PeerId* p = some_peer(in)) send_built(*p, in);
                break;
        }
    }

    void connect(Input& in) {
        if (peers_.size() >= 12) return;
        PeerCredentials c;
        const uid_t uid = in.pick(2) ? 1000 : 0;
        c.uid = uid;
        c.pid = 100 + static_cast<pid_t>(peers_.size());
        c.from_kernel = true;
        const auto id = events_.peer_connected(std::move(c));
        if (!id) return;
        peers_[*id] = FakePeer{};
        order_.push_back(*id);
        if (!events_.peer_authenticated(*id, uid)) peers_[*id].gone = true;
    }

    void fail(PeerId id) {
        events_.peer_failed(id, "fuzz: disconnected");
        peers_[id].gone = true;
    }

    PeerId* some_peer(Input& in) {
        if (order_.empty()) return nullptr;
        PeerId& id = order_[in.pick(order_.size())];
        return peers_[id].gone || delivery_.detached.contains(id) ? nullptr : &id;
    }

    std::string some_destination(Input& in) {
        switch (in.pick(4)) {
            case 0:
                return std::string(kBusName);
            case 1:
                return kWellKnown[in.pick(kWellKnown.size())];
            default: {
                const PeerId target = order_[in.pick(order_.size())];
                const std::string& name = peers_[target].unique_name;
                return name.empty() ? ":1." + std::to_string(in.pick(16)) : name;
            }
        }
    }

    void send_built(PeerId from, Input& in) {
        FakePeer& peer = peers_[from];
        const std::uint8_t kind = in.byte();
        const bool to_driver = (kind & 3) == 0 || peer.unique_name.empty();
        std::optional<MessageBuilder> builder;
        if (to_driver) {
            const std::string& member = peer.unique_name.empty() && in.pick(4) ? kDriverMethods[0]
                                                                                 : kDriverMethods[in.pick(kDriverMethods.size())];
            std::string interface = kInterfaces[in.pick(3) == 0 ? in.pick(kInterfaces.size()) : 0];
            builder = MessageBuilder::method_call(kBusName, "/org/freedesktop/DBus", interface, member);
            append_driver_arguments(*builder, member, in);
        } else {
            switch ((kind >> 2) & 3) {
                case 0:
                case 1: {
                    // Each choice read in a statement of its own: the order in which a call's arguments are
                    // evaluated is unspecified (clang goes left to right, which the corpus was made with).
                    const std::string destination = some_destination(in);
                    const std::string& interface = kInterfaces[6 + in.pick(2)];
                    const std::string& member = kMembers[in.pick(kMembers.size())];
                    builder = MessageBuilder::method_call(destination, "/org/fuzz", interface, member);
                    break;
                }
                case 2: {
                    const std::string& interface = kInterfaces[6 + in.pick(2)];
                    const std::string& member = kMembers[in.pick(kMembers.size())];
                    builder = MessageBuilder::signal("/org/fuzz", interface, member);
                    if (in.pick(3) == 0) builder->destination(some_destination(in));
                    break;
                }
                default: {
                    // A reply to something this peer received, or to a made-up serial.
                    const std::uint32_t serial = in.pick(2) ? last_call_serial_[from] : in.u32();
                    const std::string destination = some_destination(in);
                    builder = in.pick(2) ? MessageBuilder::method_return(destination, serial)
                                         : MessageBuilder::error(destination, serial, "org.fuzz.Error", "fuzz");
                    break;
                }
            }
            if (in.pick(2)) append(*builder, kWellKnown[in.pick(kWellKnown.size())]);
        }
        builder->no_reply_expected((kind & 0x10) != 0);
        builder->no_auto_start((kind & 0x20) != 0);
        if (kind & 0x40) builder->sender(some_destination(in));  // a forged sender, which the bus replaces
        auto message = builder->build(peer.next_serial++);
        if (!message) return;
        send(from, std::move(*message));
    }

    void append_driver_arguments(MessageBuilder& b, const std::string& member, Input& in) {
        if (member == "RequestName") {
            const std::string& name = kWellKnown[in.pick(kWellKnown.size())];
            append(b, name, static_cast<std::uint32_t>(in.pick(8)));
        } else if (member == "ReleaseName" || member == "NameHasOwner" || member == "GetNameOwner" ||
                   member == "ListQueuedOwners" || member == "GetConnectionUnixUser" ||
                   member == "GetConnectionUnixProcessID" || member == "GetConnectionCredentials" ||
                   member == "GetConnectionStats") {
            append(b, some_destination(in));
        } else if (member == "AddMatch" || member == "RemoveMatch") {
            append(b, kRules[in.pick(kRules.size())]);
        } else if (member == "StartServiceByName") {
            append(b, kWellKnown[in.pick(kWellKnown.size())], std::uint32_t{0});
        } else if (member == "BecomeMonitor") {
            append(b, std::vector<std::string>{kRules[in.pick(kRules.size())]}, std::uint32_t{0});
        } else if (member == "Get" || member == "GetAll") {
            append(b, std::string(kBusName));
            if (member == "Get") append(b, std::string(in.pick(2) ? "Features" : "Interfaces"));
        } else if (in.pick(4) == 0) {
            append(b, std::string("x"));  // arguments a method does not take
        }
    }

    void send_raw(PeerId from, Input& in) {
        // Two bytes, high first, read one after the other: the order of two calls in one expression is
        // unspecified. 16 bits rather than the former byte*4+byte (at most 1275): seeds from captures
        // (test/fuzz/make-bus-model-seeds.sh) carry real messages, introspection data and property sets
        // among them, which are longer.
        const std::size_t high = in.byte();
        const std::size_t length = high * 256u + in.byte();
        auto bytes = in.take(length);
        auto message = Message::parse(std::as_bytes(bytes));
        if (!message) return skipped(from, std::as_bytes(bytes));
        send(from, std::move(*message));
    }

    // Bytes that are not a message: the delivery mode ends such a connection itself and the model never
    // sees them, unless it had no room for them and skipped them (MessageFramer::skip_message), which it
    // can do from a valid fixed header alone: then the model answers a call NoMemory, once, or ends a
    // peer that has not said Hello.
    void skipped(PeerId from, std::span<const std::byte> bytes) {
        if (bytes.size() < kFixedHeaderLength) return;
        const auto header = bytes.first<kFixedHeaderLength>();
        if (!Message::frame_length(header)) return;
        std::uint32_t serial = 0;
        Decoder(header, static_cast<Endian>(header[0]), 8).read_u32(serial);
        if (serial == 0 || header[1] == std::byte{0}) return;
        const SkippedMessage message{static_cast<MessageType>(header[1]), static_cast<std::uint8_t>(header[2]), serial,
                                     bytes.size()};
        // (A peer may have said Hello without asking for the answer: its name is not known here.)
        const bool registered = !peers_[from].unique_name.empty() && !delivery_.monitors.contains(from);
        events_.peer_message_skipped(from, message);
        const bool owed = message.type == MessageType::MethodCall && !(message.flags & message_flags::kNoReplyExpected);
        int answers = 0;
        for (const auto& d : delivery_.delivered)
            if (d.peer == from && d.message->reply_serial() == serial && d.message->error_name() == error_names::kNoMemory)
                ++answers;
        if (delivery_.detached.contains(from)) {
            check(!registered, "a registered peer whose message was skipped is let go");
            check(answers == 0, "a peer let go for a skipped message is answered");
            return;
        }
        check(answers == (owed ? 1 : 0), "a skipped call is answered NoMemory once");
    }

    void send(PeerId from, Message message) {
        const bool driver_call = message.type() == MessageType::MethodCall && message.destination() == kBusName &&
                                 message.expects_reply();
        const std::uint32_t serial = message.serial();
        events_.peer_sent(from, std::move(message));
        if (peers_[from].unique_name.empty()) learn_unique_name(from);
        if (!driver_call || delivery_.detached.contains(from)) return;
        // The driver answered, once (BecomeMonitor too, before the peer turned monitor).
        int answers = 0;
        for (const auto& d : delivery_.delivered)
            if (d.peer == from && d.message->reply_serial() == serial && d.message->sender() == kBusName &&
                (d.message->type() == MessageType::MethodReturn || d.message->type() == MessageType::Error))
                ++answers;
        check(answers == 1 || delivery_.monitors.contains(from), "the driver answers a call once");
    }

    void learn_unique_name(PeerId id) {
        for (const auto& d : delivery_.delivered)
            if (d.peer == id && d.message->type() == MessageType::MethodReturn && d.message->sender() == kBusName) {
                if (auto name = read_all<std::string>(*d.message); name && std::get<0>(*name).starts_with(":"))
                    peers_[id].unique_name = std::get<0>(*name);
            }
    }

    PeerId peer_named(std::string_view name) const {
        for (const auto& [id, peer] : peers_)
            if (peer.unique_name == name) return id;
        return 0;
    }

    // The well-known names each peer owns, from the NameAcquired and NameLost the bus sent it (addressed to
    // it: an eavesdropper sees others' too).
    void note_ownership(PeerId peer, const Message& m) {
        if (m.type() != MessageType::Signal || m.sender() != kBusName || m.destination().empty() ||
            m.destination() != peers_[peer].unique_name)
            return;
        auto name = read_all<std::string>(m);
        if (!name) return;
        if (m.member() == "NameAcquired") owned_[peer].insert(std::get<0>(*name));
        if (m.member() == "NameLost") owned_[peer].erase(std::get<0>(*name));
    }

    bool addressed_to(PeerId peer, const Message& m) {
        return m.destination() == peers_[peer].unique_name || owned_[peer].contains(std::string(m.destination()));
    }

    void check_deliveries() {
        for (const auto& d : delivery_.delivered) {
            const Message& m = *d.message;
            if (delivery_trace())
                delivery_trace()(static_cast<std::size_t>(std::find(order_.begin(), order_.end(), d.peer) - order_.begin()), m);
            const bool from_client = m.sender() != kBusName;
            if (!delivery_.monitors.contains(d.peer)) {
                check(!(from_client && m.interface() == "org.fuzz.Denied"), "a denied send reached a peer");
                check(!(m.interface() == "org.fuzz.I" && m.member() == "Hidden"), "a denied receive reached a peer");
            }
            if (delivery_.monitors.contains(d.peer)) continue;
            note_ownership(d.peer, m);
            if (m.type() == MessageType::MethodCall && from_client) {
                last_call_serial_[d.peer] = m.serial();
                // Only the peer the call was routed to owes the reply, not one that eavesdrops on it.
                if (m.expects_reply() && addressed_to(d.peer, m)) {
                    const PeerId caller = peer_named(m.sender());
                    if (caller != 0) owed_[{caller, m.serial()}] = Owed{caller, d.peer};
                }
            } else if ((m.type() == MessageType::MethodReturn || m.type() == MessageType::Error) && m.reply_serial()) {
                owed_.erase({d.peer, *m.reply_serial()});
            }
        }
        delivery_.delivered.clear();
        // A call owed by a peer that is gone must have been answered (NoReply) by now, unless the caller
        // is gone too or became a monitor.
        for (auto it = owed_.begin(); it != owed_.end();) {
            const Owed& owed = it->second;
            const bool caller_gone = peers_[owed.caller].gone || delivery_.detached.contains(owed.caller) ||
                                     delivery_.monitors.contains(owed.caller);
            if (caller_gone) {
                it = owed_.erase(it);
                continue;
            }
            check(!(peers_[owed.callee].gone || delivery_.detached.contains(owed.callee) ||
                    delivery_.monitors.contains(owed.callee)),
                  "a call routed to a peer that left is answered (NoReply)");
            ++it;
        }
    }

    EventLoop loop_;
    Bus bus_;
    FuzzDelivery& delivery_;
    DeliveryEvents& events_;
    std::map<PeerId, FakePeer> peers_;
    std::vector<PeerId> order_;
    std::map<PeerId, std::uint32_t> last_call_serial_;
    std::map<PeerId, std::set<std::string>> owned_;
    std::map<std::pair<PeerId, std::uint32_t>, Owed> owed_;
};

}  // namespace
}  // namespace afbus::daemon

void afbus::fuzz::set_bus_model_delivery_trace(BusModelDeliveryTrace trace) {
    afbus::daemon::delivery_trace() = std::move(trace);
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    afbus::daemon::set_log_target(afbus::daemon::LogTarget::Discard);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    afbus::daemon::ModelFuzzer fuzzer;
    afbus::daemon::Input in(std::span<const std::uint8_t>(data, size));
    fuzzer.run(in);
    return 0;
}
