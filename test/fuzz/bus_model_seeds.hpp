// Seeds for fuzz_bus_model from captured bus traffic (issue 17, item 5): the messages clients sent, in the
// order the bus saw them, as the fuzz target's program of operations (see step() in fuzz_bus_model.cpp):
//   connect      0, 1            a new peer (uid 1000), the first time a client appears in an input
//   send_raw     3, i, hi, lo, … peer i (its connect's rank) sends the hi*256+lo bytes that follow
//   disconnect   1, i            when the bus announced that the client left (NameOwnerChanged to "")
// The bus's own messages are left out: the model generates them. The model names its peers :1.0, :1.1, …
// in the order they say Hello, so each client's unique name is rewritten to the one its peer will have,
// in the destination and sender fields and in string arguments (a name itself, or quoted in a match rule),
// and calls reach the peer they reached on the real bus. A long capture is split into several inputs; a
// client that carries on in the next one says its Hello again there first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "afbus/message.hpp"

namespace afbus::fuzz {

struct BusModelSeedLimits {
    std::size_t max_steps = 250;  // the target runs at most 256 operations per input
    std::size_t max_peers = 12;   // and makes at most 12 peers
    // Bytes per input: the captures of flow-control tests hold hundreds of large messages, which would
    // make inputs of megabytes that slow every run of the fuzzer; a message that does not fit an input
    // alone is left out.
    std::size_t max_bytes = 64 * 1024;
};

struct BusModelSeeds {
    std::vector<std::vector<std::uint8_t>> inputs;
    std::size_t messages_used = 0;     // client messages that became send_raw operations
    std::size_t messages_skipped = 0;  // too long for an input, or not renamable
};

// `messages`: a capture's messages in order (what a monitor saw).
BusModelSeeds bus_model_seeds(const std::vector<Message>& messages, BusModelSeedLimits limits = {});

// `message` with every unique name in `names` (capture name -> model name) replaced, in its header fields
// and in its string arguments; the bytes to send, or nothing if the result is no valid message.
std::optional<std::vector<std::byte>> rename_unique_names(const Message& message,
                                                          const std::map<std::string, std::string>& names);

}  // namespace afbus::fuzz
