// What fuzz_bus_model.cpp offers a test that replays an input through the model (test_bus_model_seeds
// checks that a seed converted from a capture delivers its calls to the peers they were meant for).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "afbus/message.hpp"

namespace afbus::fuzz {

// Each message the model delivers, with the receiving peer's index in the input (the order of the connect
// operations that made the peers).
using BusModelDeliveryTrace = std::function<void(std::size_t peer_index, const Message& message)>;
// Set before running an input; empty (the default, and the fuzzer's own runs): no trace.
void set_bus_model_delivery_trace(BusModelDeliveryTrace trace);

}  // namespace afbus::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
