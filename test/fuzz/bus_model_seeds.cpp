#include "bus_model_seeds.hpp"

#include <set>
#include <utility>

#include "afbus/header_encoding.hpp"
#include "afbus/types.hpp"
#include "afbus/value.hpp"

namespace afbus::fuzz {

namespace {

constexpr std::string_view kBusName = "org.freedesktop.DBus";
// The longest message one send_raw carries (its length is two bytes).
constexpr std::size_t kMaxRawLength = 0xFFFF;

// A name as an argument (GetNameOwner, NameOwnerChanged's) or quoted in a match rule (sender=':1.4');
// ":1.1" never stands for the start of ":1.12".
std::string rename_in_text(const std::string& text, const std::map<std::string, std::string>& names) {
    if (auto it = names.find(text); it != names.end()) return it->second;
    // One pass over the quoted values, so that a name renamed to another capture name is not renamed twice.
    std::string out;
    std::size_t at = 0;
    for (std::size_t open = text.find('\''); open != std::string::npos; open = text.find('\'', at)) {
        const std::size_t close = text.find('\'', open + 1);
        if (close == std::string::npos) break;
        const std::string quoted = text.substr(open + 1, close - open - 1);
        const auto it = names.find(quoted);
        out += text.substr(at, open + 1 - at);
        out += it == names.end() ? quoted : it->second;
        out += '\'';
        at = close + 1;
    }
    return out + text.substr(at);
}

Value rename_in_value(const Value& value, const std::map<std::string, std::string>& names, bool& changed) {
    if (const auto* text = value.get_if<std::string>(); text && value.type() == "s") {
        std::string renamed = rename_in_text(*text, names);
        if (renamed == *text) return value;
        changed = true;
        return Value(value.type(), std::move(renamed));
    }
    if (const auto* children = value.get_if<std::vector<Value>>()) {
        std::vector<Value> renamed;
        renamed.reserve(children->size());
        for (const Value& child : *children) renamed.push_back(rename_in_value(child, names, changed));
        return Value(value.type(), std::move(renamed));
    }
    return value;
}

std::string_view renamed(std::string_view name, const std::map<std::string, std::string>& names) {
    auto it = names.find(std::string(name));
    return it == names.end() ? name : std::string_view(it->second);
}

// The body with names renamed, in the message's own byte order; the body as it was when nothing changed.
std::optional<std::vector<std::byte>> renamed_body(const Message& message, const std::map<std::string, std::string>& names,
                                                   bool swap_bytes) {
    const std::vector<std::byte> original(message.body_bytes().begin(), message.body_bytes().end());
    if (message.signature().find_first_of("sv") == std::string_view::npos) return original;
    auto values = message.reader().read_all();
    if (!values) return std::nullopt;
    bool changed = false;
    std::vector<Value> renamed_values;
    for (const Value& value : *values) renamed_values.push_back(rename_in_value(value, names, changed));
    if (!changed) return original;
    Encoder body(swap_bytes);
    for (const Value& value : renamed_values)
        if (!encode_value(body, value)) return std::nullopt;
    return std::move(body).take();
}

// What one input is being made of.
class SeedInput {
public:
    explicit SeedInput(BusModelSeedLimits limits) : limits_(limits) {}

    [[nodiscard]] bool has(const std::string& client) const { return peers_.contains(client); }
    [[nodiscard]] bool fits(std::size_t steps, std::size_t new_peers, std::size_t bytes) const {
        return steps_ + steps <= limits_.max_steps && peers_.size() + new_peers <= limits_.max_peers &&
               bytes_.size() + bytes <= limits_.max_bytes;
    }
    [[nodiscard]] bool has_sends() const { return sends_ > 0; }
    [[nodiscard]] const std::map<std::string, std::string>& names() const { return names_; }

    void connect(const std::string& client) {
        const std::size_t index = peers_.size();
        peers_[client] = index;
        names_[client] = ":1." + std::to_string(index);  // the model's PeerTable counts from :1.0
        op({0, 1});                                       // connect, uid 1000 (pick(2) == 1)
    }
    void send(const std::string& client, std::span<const std::byte> wire) {
        op({3, static_cast<std::uint8_t>(peers_.at(client)), static_cast<std::uint8_t>(wire.size() >> 8),
            static_cast<std::uint8_t>(wire.size() & 0xFF)});
        for (std::byte b : wire) bytes_.push_back(static_cast<std::uint8_t>(b));
        ++sends_;
    }
    void disconnect(const std::string& client) {
        op({1, static_cast<std::uint8_t>(peers_.at(client))});
        gone_.insert(client);
    }
    [[nodiscard]] bool gone(const std::string& client) const { return gone_.contains(client); }
    std::vector<std::uint8_t> take() && { return std::move(bytes_); }

private:
    void op(std::initializer_list<std::uint8_t> head) {
        bytes_.insert(bytes_.end(), head);
        ++steps_;
    }

    BusModelSeedLimits limits_;
    std::map<std::string, std::size_t> peers_;  // capture name -> rank of its connect
    std::map<std::string, std::string> names_;  // capture name -> the model's name for it
    std::set<std::string> gone_;
    std::vector<std::uint8_t> bytes_;
    std::size_t steps_ = 0;
    std::size_t sends_ = 0;
};

bool is_hello(const Message& m) {
    return m.type() == MessageType::MethodCall && m.destination() == kBusName && m.member() == "Hello";
}

// The unique name NameOwnerChanged says has left the bus, if it says that.
std::optional<std::string> departed(const Message& m) {
    if (m.type() != MessageType::Signal || m.member() != "NameOwnerChanged" || m.sender() != kBusName) return std::nullopt;
    auto args = read_all<std::string, std::string, std::string>(m);
    if (!args || !std::get<0>(*args).starts_with(":") || !std::get<2>(*args).empty()) return std::nullopt;
    return std::get<0>(*args);
}

// A driver call's name or rule.
std::optional<std::string> first_string_argument(const Message& m) {
    if (!m.signature().starts_with("s")) return std::nullopt;
    auto value = m.reader().read_value();
    if (!value) return std::nullopt;
    return value->text();
}

}  // namespace

std::optional<std::vector<std::byte>> rename_unique_names(const Message& message,
                                                          const std::map<std::string, std::string>& names) {
    const bool swap_bytes = message.endian() != native_endian();
    auto body = renamed_body(message, names, swap_bytes);
    if (!body) return std::nullopt;
    const std::string_view destination = renamed(message.destination(), names), sender = renamed(message.sender(), names);
    const HeaderParts header{message.type(), message.flags(), static_cast<std::uint32_t>(body->size()), message.serial(),
                             message.path(), message.interface(), message.member(), message.error_name(), destination,
                             sender, message.signature(), message.reply_serial(), message.unix_fds()};
    std::vector<std::byte> wire = encode_header(header, message.endian());
    wire.insert(wire.end(), body->begin(), body->end());
    if (!Message::parse(wire)) return std::nullopt;  // e.g. a renamed name that is no valid bus name
    return wire;
}

BusModelSeeds bus_model_seeds(const std::vector<Message>& messages, BusModelSeedLimits limits) {
    BusModelSeeds seeds;
    // What a client that joins a later input says again there first: its Hello, and the names it asked
    // for and the matches it added (by name and rule, the last call for each) that still hold.
    struct ClientState {
        std::vector<std::byte> hello;
        std::map<std::string, std::vector<std::byte>> name_requests, matches;
    };
    std::map<std::string, ClientState> clients;
    std::map<std::string, std::string> owners;  // well-known name -> client, from NameOwnerChanged
    std::set<std::string> departed_clients;
    SeedInput input(limits);
    const auto finish_input = [&] {
        if (input.has_sends()) seeds.inputs.push_back(std::move(input).take());
        input = SeedInput(limits);
    };
    // The calls a client joining this input makes before its own message (none before its Hello).
    const auto joining_calls = [&](const std::string& client, bool with_own_hello) {
        std::vector<std::vector<std::byte>> calls;
        if (with_own_hello) return calls;
        const ClientState& state = clients[client];
        if (!state.hello.empty()) {
            calls.push_back(state.hello);
        } else if (auto built = MessageBuilder::method_call(kBusName, "/org/freedesktop/DBus", kBusName, "Hello").build(1)) {
            calls.push_back(built->wire());  // a client whose Hello the capture missed
        }
        for (const auto& [name, call] : state.name_requests) calls.push_back(call);
        for (const auto& [rule, call] : state.matches) calls.push_back(call);
        return calls;
    };
    for (const Message& m : messages) {
        const std::string client(m.sender());
        if (client == kBusName) {
            if (m.type() == MessageType::Signal && m.member() == "NameOwnerChanged") {
                auto args = read_all<std::string, std::string, std::string>(m);
                if (!args) continue;
                const auto& [name, old_owner, new_owner] = *args;
                if (!name.starts_with(":")) {
                    if (new_owner.empty()) owners.erase(name);
                    else owners[name] = new_owner;
                }
            }
            if (auto name = departed(m)) {
                departed_clients.insert(*name);
                if (input.has(*name) && !input.gone(*name)) {
                    if (input.fits(1, 0, 2)) input.disconnect(*name);
                    else finish_input();
                }
            }
            continue;
        }
        if (client.empty() || !client.starts_with(":")) continue;  // not a message a client sent through the bus
        if (is_hello(m)) clients[client].hello = m.wire();
        if (m.size() > kMaxRawLength) {
            ++seeds.messages_skipped;
            continue;
        }
        // The peers this message needs in the input: its sender, and the client its destination names
        // when that one is still on the bus (in a later input it may not have been brought in yet).
        std::vector<std::string> needed{client};
        std::string addressed(m.destination());
        if (auto it = owners.find(addressed); it != owners.end()) addressed = it->second;
        if (addressed != client && clients.contains(addressed) && !departed_clients.contains(addressed))
            needed.push_back(addressed);
        // What it costs the input: its operation, and a connect and the joining calls of each peer it brings in.
        const auto fits = [&] {
            std::size_t steps = 1, new_peers = 0, bytes = 4 + m.size();
            for (const std::string& peer : needed)
                if (!input.has(peer)) {
                    ++new_peers;
                    steps += 1;
                    bytes += 2;
                    for (const auto& call : joining_calls(peer, peer == client && is_hello(m))) {
                        steps += 1;
                        bytes += 4 + call.size();
                    }
                }
            return input.fits(steps, new_peers, bytes);
        };
        if (!fits()) {
            finish_input();
            if (!fits()) {  // too long for an input of its own
                ++seeds.messages_skipped;
                continue;
            }
        }
        if (input.gone(client)) continue;
        for (const std::string& peer : needed) {
            if (input.has(peer)) continue;
            input.connect(peer);
            for (const auto& call : joining_calls(peer, peer == client && is_hello(m)))
                if (auto parsed = Message::parse(call))
                    if (auto wire = rename_unique_names(*parsed, input.names())) input.send(peer, *wire);
        }
        auto wire = rename_unique_names(m, input.names());
        if (!wire || wire->size() > kMaxRawLength) {
            ++seeds.messages_skipped;
            continue;
        }
        input.send(client, *wire);
        ++seeds.messages_used;
        // What later inputs replay when this client joins them.
        if (m.type() == MessageType::MethodCall && m.destination() == kBusName) {
            if (auto key = first_string_argument(m)) {
                ClientState& state = clients[client];
                if (m.member() == "RequestName") state.name_requests[*key] = m.wire();
                else if (m.member() == "ReleaseName") state.name_requests.erase(*key);
                else if (m.member() == "AddMatch") state.matches[*key] = m.wire();
                else if (m.member() == "RemoveMatch") state.matches.erase(*key);
            }
        }
    }
    finish_input();
    return seeds;
}

}  // namespace afbus::fuzz
