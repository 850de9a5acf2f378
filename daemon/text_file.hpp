// Whole small text files (configuration, the pid file) read and written with plain system calls. The
// daemon used iostreams for these; the first stream builds the C++ locale, which alone touched about
// 450 KiB of libstdc++ that then stayed resident for the bus's lifetime (docs/performance.md, "idle").
#pragma once

#include <string>
#include <string_view>

#include "afbus/expected.hpp"

namespace afbus::daemon {

// The file's contents, or the errno that stopped reading it.
Expected<std::string, int> read_text_file(const std::string& path);

// Creates or truncates `path` (mode 0644) and writes `text`; the errno on failure.
Expected<void, int> write_text_file(const std::string& path, std::string_view text);

}  // namespace afbus::daemon
