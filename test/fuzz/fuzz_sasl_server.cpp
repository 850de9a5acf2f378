// Feeds arbitrary client bytes to a SaslServer in varying chunks and checks the invariants the
// daemon relies on: consumption never exceeds the input, a finished conversation neither consumes
// nor answers, authentication only ever ends with BEGIN, replies are whole ASCII lines, and the
// result does not depend on how the input was split. One configuration bit offers DBUS_COOKIE_SHA1 with a
// fake keyring (a fixed cookie) and a fixed "random" challenge, so the corpus can hold a correct answer
// and the fuzzer can explore around it without touching any file.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "afbus/sasl.hpp"
#include "fuzz_check.hpp"

using afbus::fuzz::check;

namespace {

constexpr uid_t kPeerUid = 1000;
constexpr uid_t kServerUid = 1000;
// The fake keyring's only cookie; test/fuzz/corpus/sasl_server/cookie_* answer challenges with it.
constexpr const char* kCookieSecret = "d4a9c3be6f7a1c2b9e8f0a1b2c3d4e5f60718293a4b5c6d7";

afbus::SaslServerConfig make_config(std::uint8_t flags) {
    afbus::SaslServerConfig config;
    config.mechanisms = {afbus::SaslMechanism::External, afbus::SaslMechanism::Anonymous,
                         afbus::SaslMechanism::DbusCookieSha1};
    config.allow_anonymous = (flags & 1) != 0;
    if ((flags & 2) != 0) config.peer_uid = kPeerUid;
    config.unix_fd_possible = (flags & 4) != 0;
    if ((flags & 8) != 0) config.max_line_length = 64;
    config.max_rejections = 1 + (flags >> 4) % 8;
    config.guid = "0123456789abcdef0123456789abcdef";
    if ((flags & 0x80) != 0) {
        afbus::SaslCookieConfig cookie;
        cookie.server_uid = kServerUid;
        cookie.cookie = [](uid_t, std::string_view) -> afbus::Expected<afbus::KeyringCookie, std::string> {
            return afbus::KeyringCookie{42, 0, kCookieSecret};
        };
        cookie.lookup_user = [](const std::string& name) -> std::optional<uid_t> {
            if (name == "alice") return kServerUid;
            if (name == "bob") return kServerUid + 1;
            return std::nullopt;
        };
        // The challenge is 000102...0f every time.
        cookie.random_bytes = [](std::size_t count) -> afbus::Expected<std::string, std::string> {
            std::string bytes;
            for (std::size_t i = 0; i < count; ++i) bytes += static_cast<char>(i);
            return bytes;
        };
        config.cookie_sha1 = std::move(cookie);
    }
    return config;
}

bool finished(const afbus::SaslServer& server) {
    return server.authenticated() || server.failed();
}

void check_result(const afbus::SaslServer& server, const afbus::SaslServerConfig& config,
                  std::string_view consumed) {
    if (server.failed()) check(server.error().has_value(), "failure without an error code");
    if (!server.authenticated()) return;
    // Like dbus-daemon, BEGIN ignores arguments: the last consumed line must be BEGIN[ ...].
    check(consumed.ends_with("\r\n"), "authenticated in the middle of a line");
    const std::string_view without_crlf = consumed.substr(0, consumed.size() - 2);
    const std::size_t line_start = without_crlf.rfind("\r\n");
    const std::string_view last_line =
        line_start == std::string_view::npos ? without_crlf.substr(1) : without_crlf.substr(line_start + 2);
    check(last_line == "BEGIN" || last_line.starts_with("BEGIN "), "authenticated without BEGIN");
    check(server.mechanism().has_value(), "authenticated without a mechanism");
    if (server.mechanism() == afbus::SaslMechanism::External) {
        check(config.peer_uid.has_value() && server.authenticated_uid() == config.peer_uid,
              "EXTERNAL authenticated someone other than the kernel's uid");
    } else if (server.mechanism() == afbus::SaslMechanism::DbusCookieSha1) {
        check(config.cookie_sha1.has_value(), "DBUS_COOKIE_SHA1 authenticated without being offered");
        check(server.authenticated_uid() == kServerUid,
              "DBUS_COOKIE_SHA1 authenticated someone other than the server's user");
    } else {
        check(server.mechanism() == afbus::SaslMechanism::Anonymous && config.allow_anonymous,
              "authenticated by a mechanism that is not offered");
        check(!server.authenticated_uid().has_value(), "anonymous client with a uid");
    }
    if (server.unix_fd_agreed()) check(config.unix_fd_possible, "fds agreed on a transport without them");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const afbus::SaslServerConfig config = make_config(data[0]);
    std::uint32_t chunk_seed = data[1];
    const std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);

    afbus::SaslServer chunked(config);
    std::string chunked_output;
    std::size_t offset = 0;
    while (offset < input.size()) {
        chunk_seed = chunk_seed * 1103515245u + 12345u;
        const std::size_t length = std::min<std::size_t>(1 + (chunk_seed >> 16) % 32, input.size() - offset);
        const bool was_finished = finished(chunked);
        const std::size_t consumed = chunked.feed(input.substr(offset, length));
        const std::string output = chunked.take_output();
        check(consumed <= length, "consumed more than given");
        if (was_finished) {
            check(consumed == 0, "consumed after the conversation finished");
            check(output.empty(), "answered after the conversation finished");
            break;
        }
        check(consumed > 0, "made no progress on fresh input");
        if (consumed < length) check(finished(chunked), "stopped early without finishing");
        check(output.empty() || output.ends_with("\r\n"), "reply is not whole lines");
        for (char c : output) check(c > 0 && static_cast<unsigned char>(c) < 0x80, "reply is not ASCII");
        chunked_output += output;
        offset += consumed;
        check_result(chunked, config, input.substr(0, offset));
        if (consumed < length) break;
    }

    afbus::SaslServer whole(config);
    const std::size_t consumed_whole = whole.feed(input);
    check(consumed_whole == offset, "consumption depends on the split");
    check(whole.take_output() == chunked_output, "replies depend on the split");
    check(whole.state() == chunked.state(), "final state depends on the split");
    check(whole.authenticated_uid() == chunked.authenticated_uid(), "uid depends on the split");
    return 0;
}
