// Raw connections to a test bus, for sending what libafbus never would and for watching exactly what the
// bus does with a connection (answers, closes). Every wait is a poll with a deadline: no sleeps.
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/fd.hpp"
#include "afbus/message.hpp"
#include "integration/test_bus.hpp"

namespace afbus::test {

// A call to org.freedesktop.DBus on its object (no serial yet).
Message driver_call(std::string_view member);
// The same with one string argument (a bus name: NameHasOwner, GetConnectionUnixProcessID, AddMatch's rule).
Message driver_call(std::string_view member, const std::string& argument);
// A call to the bus's org.freedesktop.DBus.Debug.Stats interface (GetStats, GetAllMatchRules); with
// `name`, about that connection (GetConnectionStats).
Message stats_call(std::string_view member);
Message stats_call(std::string_view member, const std::string& name);

// A connected socket that has not said a word (not even the SASL NUL byte).
Fd unauthenticated_connection(const TestBus& bus);
// A socket past SASL EXTERNAL (with NEGOTIATE_UNIX_FD if `unix_fds`), before Hello.
Fd raw_connection(const TestBus& bus, bool unix_fds = false);

void send_all(const Fd& fd, const std::vector<std::byte>& bytes);
// One sendmsg of `bytes` with `fds` (SCM_RIGHTS) attached; sendmsg's result, for the caller to judge (a
// test may send part of a message on purpose, or run in a child that must not assert).
ssize_t send_with_fds(const Fd& fd, std::span<const std::byte> bytes, const std::vector<int>& fds);
// Sends `message` with `serial`, and `fds` with its first byte.
void send_message(const Fd& fd, Message message, std::uint32_t serial, const std::vector<int>& fds = {});

// SASL by hand: `text` in hex, as AUTH's initial response is written.
std::string sasl_hex(std::string_view text);
// One line from the bus during SASL ("" when it closed the connection or 10 s passed).
std::string read_sasl_line(const Fd& fd);

// Reads until the message answering `serial` arrives (none: the bus closed the connection or 10 s passed);
// `before` gets the messages read ahead of it.
std::optional<Message> read_reply(const Fd& fd, std::uint32_t serial, std::vector<Message>* before = nullptr);
// Reads until the bus closes the connection (true) or 10 s pass (false); `received` gets the messages.
bool closed_by_bus(const Fd& fd, std::vector<Message>* received = nullptr);

}  // namespace afbus::test
