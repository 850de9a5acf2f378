// A whole message in busctl monitor's human format (header line, fields, then the body as an indented
// tree of typed values, then a blank line) and in its JSON form.
#pragma once

#include <chrono>
#include <string>

#include "afbus/expected.hpp"
#include "afbus/message.hpp"
#include "value_format.hpp"

namespace afbusctl {

// `received` is when the message arrived (the Timestamp= field).
std::string dump_message(const afbus::Message& message, std::chrono::system_clock::time_point received, bool utf8);
afbus::Expected<Json, std::string> message_to_json(const afbus::Message& message,
                                                   std::chrono::system_clock::time_point received);

}  // namespace afbusctl
